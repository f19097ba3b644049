use super::{Claimed, claim, person};
use crate::app::execute::ClaimedRun;
use crate::app::start::{check_actions, check_window, resolve_secrets, sources};
use crate::app::{AppError, Notice, ResumeRequest};
use crate::engine::state::RunState;
use crate::event::{RunEdited, RunEvent, StepChange, StepChangeKind, StepStatus};
use crate::runbook::dag::Dag;
use crate::runbook::diff::{RunbookDiff, diff};
use crate::runbook::validate::{Bundle, validate_file};
use crate::store::Store;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// A run to continue with an edited runbook.
pub struct EditRequest {
    pub run_id: String,
    /// The edited root runbook, as the person named it.
    pub file: PathBuf,
    /// Steps that had ended or were running whose body changed run again with the new
    /// body, and everything downstream of them; without it they keep their ends.
    pub rerun_changed: bool,
    /// Who edits; `$USER@host` when `None`.
    pub by: Option<String>,
    pub reason: String,
    /// Actions running at once, run-wide, in this process.
    pub max_parallel: Option<u32>,
    /// The window of this segment of the run, as for a resume.
    pub window_until: Option<jiff::Timestamp>,
}

/// Where a step of the run stood when it was edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    NotRun,
    /// Succeeded or skipped.
    Finished(StepStatus),
    Failed,
    /// Started and not ended (a crash, a signal, a pause with `--now`), or cancelled.
    InFlight,
}

/// What the edit does to one changed step, for the person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditedStep {
    pub change: StepChange,
    pub standing: Standing,
    /// It runs again (its record is forgotten, its attempts count on).
    pub rerun: bool,
}

impl std::fmt::Display for EditedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let change = self.change.describe();
        let body = self.change.body;
        let note = match (self.change.kind, self.standing, self.rerun) {
            (StepChangeKind::Added, ..) | (_, Standing::NotRun, _) => String::new(),
            (StepChangeKind::Removed, Standing::InFlight, _) => {
                return write!(
                    f,
                    "- {} (removed; it was running: its processes are stopped, it never ends)",
                    self.change.step
                );
            }
            (StepChangeKind::Removed, standing, _) => {
                return write!(
                    f,
                    "- {} (removed; it had {}: its record stays in the run)",
                    self.change.step,
                    standing_name(standing)
                );
            }
            (_, Standing::InFlight, true) => {
                " (it was running: it runs again with the new body)".to_owned()
            }
            (_, Standing::InFlight, false) if body => {
                " (it was running: its new verify decides whether it runs again)".to_owned()
            }
            (_, standing, true) => {
                format!(" (it had {}: it runs again)", standing_name(standing))
            }
            (_, standing @ Standing::Finished(_), false) if body => format!(
                " (it had {}: kept; --rerun-changed runs it again)",
                standing_name(standing)
            ),
            (_, standing, false) => format!(" (it had {}: kept)", standing_name(standing)),
        };
        write!(f, "{change}{note}")
    }
}

fn standing_name(standing: Standing) -> &'static str {
    match standing {
        Standing::NotRun => "not run",
        Standing::Finished(status) => status.name(),
        Standing::Failed => "failed",
        Standing::InFlight => "been running",
    }
}

/// What an edit journaled (nothing when the runbook is the one the run has), and the run
/// claimed to continue it in this process.
pub struct Edited {
    /// `None`: the runbook given is the one the run already has; the run just resumes.
    pub event: Option<RunEdited>,
    /// The changed steps, each with what becomes of it.
    pub steps: Vec<EditedStep>,
    /// Steps that failed and did not change: they stay failed (`runbook retry` runs them
    /// again).
    pub still_failed: Vec<String>,
    pub run: ClaimedRun,
}

/// Checks an edited runbook against the run's journal, journals the edit (who, why, the
/// new sources and their hashes, what changed and what runs again), then rebuilds the run
/// from its journal as a resume does, with the edited runbook: the caller runs it. A crash
/// after the edit is journaled leaves a parked run that continues with the edited runbook.
pub async fn edit(
    store: Arc<dyn Store>,
    request: EditRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<Edited, AppError> {
    check_window(request.window_until)?;
    let validation = validate_file(&request.file);
    let claimed = claim(store.as_ref(), &request.run_id).await?;
    let planned = async {
        let planned = plan(&claimed, &request, validation).await?;
        if let Some(event) = &planned.event {
            let event = RunEvent::RunEdited(event.clone());
            claimed.journal(store.as_ref(), event).await?;
        }
        Ok::<_, AppError>(planned)
    };
    let planned = match planned.await {
        Ok(planned) => planned,
        Err(error) => {
            let _ = store.release(&claimed.lease).await;
            return Err(error);
        }
    };
    let resume = ResumeRequest {
        run_id: request.run_id.clone(),
        max_parallel: request.max_parallel,
        window_until: request.window_until,
    };
    // The claim is kept: nobody can take the run between the edit and its run.
    let run = crate::app::resume_claimed(store, claimed.lease, &resume, notice).await?;
    Ok(Edited {
        event: planned.event,
        steps: planned.steps,
        still_failed: planned.still_failed,
        run,
    })
}

struct Planned {
    event: Option<RunEdited>,
    steps: Vec<EditedStep>,
    still_failed: Vec<String>,
}

async fn plan(
    claimed: &Claimed,
    request: &EditRequest,
    validation: crate::runbook::validate::Validation,
) -> Result<Planned, AppError> {
    let run_id = &request.run_id;
    let file = request.file.display().to_string();
    if !validation.is_valid() {
        return Err(AppError::EditInvalid {
            run_id: run_id.clone(),
            removed: removed_but_read(claimed, &validation),
            file,
            problems: validation.problems,
        });
    }
    let new = Arc::new(validation.bundle);
    let old_sources = sources(&claimed.bundle);
    let new_sources = sources(&new);
    let same = |a: &[crate::event::RunbookSource], b: &[crate::event::RunbookSource]| {
        a.iter().map(|s| &s.sha256).eq(b.iter().map(|s| &s.sha256))
    };
    if same(&old_sources, &new_sources) {
        return Ok(Planned {
            event: None,
            steps: Vec::new(),
            still_failed: Vec::new(),
        });
    }
    let changes = diff(&claimed.bundle, &new);
    let root = new.root().expect("a valid bundle has its root");
    let mut reasons = Vec::new();
    let mut steps = Vec::new();
    let mut changed_again = Vec::new();
    for change in &changes.changes {
        let standing = standing(&claimed.state, &change.step);
        let step = root.runbook.all_steps().find(|s| s.id.value == change.step);
        let rerun = match (change.kind, standing) {
            (StepChangeKind::Changed, Standing::Failed) if change.body => true,
            (StepChangeKind::Changed, Standing::Finished(_)) if change.body => {
                request.rerun_changed
            }
            (StepChangeKind::Changed, Standing::InFlight) if change.body => {
                let step = step.expect("a changed step is in the new runbook");
                let calls = step.uses.is_some()
                    || step
                        .fallback
                        .as_ref()
                        .is_some_and(|f| f.value.uses.is_some());
                if !request.rerun_changed && (step.verify.is_none() || calls) {
                    reasons.push(format!(
                        "step `{}` was running when the run stopped and its body changed: \
                         what it did with the old body is not known{}; pass --rerun-changed \
                         to run it again with the new body",
                        change.step,
                        if calls {
                            " (it calls a runbook, whose steps' records belong to the old one)"
                        } else {
                            " (it has no verify to find out)"
                        }
                    ));
                }
                request.rerun_changed
            }
            _ => false,
        };
        if rerun {
            changed_again.push(change.step.clone());
        }
        steps.push(EditedStep {
            change: change.clone(),
            standing,
            rerun,
        });
    }
    if !reasons.is_empty() {
        return Err(AppError::EditRefused {
            run_id: run_id.clone(),
            file,
            reasons,
        });
    }
    // Everything downstream of a step that runs again runs again, in the new DAG; only
    // steps that have a record need forgetting.
    let dag = Dag::new(&root.runbook);
    let rerun: Vec<String> = super::retry::downstream(&dag, &changed_again)
        .into_iter()
        .filter(|id| standing(&claimed.state, id) != Standing::NotRun)
        .collect();
    for edited in &mut steps {
        edited.rerun = rerun.contains(&edited.change.step);
    }
    let still_failed = dag
        .ids
        .iter()
        .filter(|id| standing(&claimed.state, id) == Standing::Failed && !rerun.contains(id))
        .cloned()
        .collect();
    resolve_secrets(&new)?;
    let inputs = edited_inputs(claimed, &new)?;
    check_actions(
        &new,
        inputs
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&super::latest_inputs(&claimed.prior)),
    )
    .await?;
    let RunbookDiff { changes, settings } = changes;
    Ok(Planned {
        event: Some(RunEdited {
            file,
            sources: new_sources,
            changes,
            settings,
            rerun,
            inputs,
            by: person(request.by.clone()),
            reason: request.reason.clone(),
        }),
        steps,
        still_failed,
    })
}

/// Where a root step of the run stands, by its journal.
fn standing(state: &RunState, id: &str) -> Standing {
    match state.steps.get(id).map(|record| record.status) {
        None => Standing::NotRun,
        Some(Some(status @ (StepStatus::Succeeded | StepStatus::Skipped))) => {
            Standing::Finished(status)
        }
        Some(Some(StepStatus::Failed)) => Standing::Failed,
        Some(None | Some(StepStatus::Cancelled)) => Standing::InFlight,
    }
}

/// The run's inputs checked against the edited runbook: those it no longer declares are
/// dropped, new ones take their defaults. `Some` when that changed them.
fn edited_inputs(claimed: &Claimed, new: &Bundle) -> Result<Option<Value>, AppError> {
    let root = new.root().expect("a valid bundle has its root");
    let old = super::latest_inputs(&claimed.prior);
    let kept: serde_json::Map<String, Value> = old
        .iter()
        .filter(|(name, _)| root.runbook.inputs.keys().any(|k| k.value == **name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let resolved = crate::runbook::inputs::resolve(&root.runbook, Some(&kept), &[])
        .map_err(|errors| AppError::BadInputs(errors.into_iter().map(|e| e.message).collect()))?;
    Ok((resolved != old).then_some(Value::Object(resolved)))
}

/// Steps the edit removes that had finished in the run and that the edited runbook still
/// reads or needs (which is why it does not validate).
fn removed_but_read(
    claimed: &Claimed,
    validation: &crate::runbook::validate::Validation,
) -> Vec<String> {
    let Some(new_root) = validation.bundle.root() else {
        return Vec::new();
    };
    let kept: Vec<&str> = new_root
        .runbook
        .all_steps()
        .map(|s| s.id.value.as_str())
        .collect();
    claimed
        .step_ids()
        .into_iter()
        .filter(|id| !kept.contains(&id.as_str()))
        .filter(|id| matches!(standing(&claimed.state, id), Standing::Finished(_)))
        .filter(|id| {
            let read = format!("`steps.{id}`");
            let needed = format!("needs `{id}`");
            validation
                .problems
                .iter()
                .any(|p| p.message.contains(&read) || p.message.contains(&needed))
        })
        .collect()
}
