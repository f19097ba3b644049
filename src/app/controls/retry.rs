use super::step_path::StepPath;
use super::{Claimed, claim, person};
use crate::app::execute::ClaimedRun;
use crate::app::{AppError, Notice, ResumeRequest};
use crate::engine::state::RunState;
use crate::event::{InputChange, RunEvent, RunRetried, StepStatus};
use crate::runbook::dag::Dag;
use crate::store::Store;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A run to run again from some of its steps.
pub struct RetryRequest {
    pub run_id: String,
    /// The steps to run again (ids of the root runbook, or items of its `for_each` steps:
    /// `step[3]`); every failed step when empty.
    pub from: Vec<String>,
    /// Inputs to change, as `name` and the text given: read as the runbook declares them.
    pub inputs: Vec<(String, String)>,
    /// Who retries; `$USER@host` when `None`.
    pub by: Option<String>,
    pub reason: String,
    /// Actions running at once, run-wide, in this process.
    pub max_parallel: Option<u32>,
}

/// What a retry journaled, and the run claimed to run it in this process.
pub struct Retried {
    pub event: RunRetried,
    pub run: ClaimedRun,
}

/// Journals that the run runs again from `from` (and everything downstream of it), with
/// changed inputs if any, then rebuilds it as a resume does: the caller runs it.
pub async fn retry(
    store: Arc<dyn Store>,
    request: RetryRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<Retried, AppError> {
    let claimed = claim(store.as_ref(), &request.run_id).await?;
    let event = match journal_retry(store.as_ref(), &claimed, &request).await {
        Ok(event) => event,
        Err(error) => {
            let _ = store.release(&claimed.lease).await;
            return Err(error);
        }
    };
    let resume = ResumeRequest {
        run_id: request.run_id.clone(),
        max_parallel: request.max_parallel,
        window_until: None,
    };
    // The claim is kept: nobody can take the run between the retry and its run.
    let run = crate::app::resume_claimed(store, claimed.lease, &resume, notice).await?;
    Ok(Retried { event, run })
}

async fn journal_retry(
    store: &dyn Store,
    claimed: &Claimed,
    request: &RetryRequest,
) -> Result<RunRetried, AppError> {
    let run_id = &request.run_id;
    let named = request
        .from
        .iter()
        .map(|text| StepPath::known(claimed, text))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = claimed.step_ids();
    let from: Vec<String> = if request.from.is_empty() {
        failed_steps(&claimed.state, &ids)
    } else {
        named.iter().map(StepPath::path).collect()
    };
    if from.is_empty() {
        return Err(AppError::NothingFailed {
            run_id: run_id.clone(),
            steps: ids,
        });
    }
    let root = claimed.bundle.root().expect("a valid bundle has its root");
    let rerun = rerun(&Dag::new(&root.runbook), &from, &named);
    let old = current_inputs(claimed);
    let (inputs, changed) = if request.inputs.is_empty() {
        (None, Vec::new())
    } else {
        let new = crate::runbook::inputs::resolve(&root.runbook, Some(&old), &request.inputs)
            .map_err(|errors| {
                AppError::BadInputs(errors.into_iter().map(|e| e.message).collect())
            })?;
        let changed: Vec<InputChange> = new
            .iter()
            .filter(|(name, value)| old.get(*name) != Some(*value))
            .map(|(name, value)| InputChange {
                name: name.clone(),
                old: old.get(name).cloned(),
                new: value.clone(),
            })
            .collect();
        ((!changed.is_empty()).then(|| Value::Object(new)), changed)
    };
    let retried = RunRetried {
        from,
        rerun,
        inputs,
        changed,
        by: person(request.by.clone()),
        reason: request.reason.clone(),
    };
    claimed
        .journal(store, RunEvent::RunRetried(retried.clone()))
        .await?;
    Ok(retried)
}

/// The root steps that failed, in file order.
fn failed_steps(state: &RunState, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            state
                .steps
                .get(id.as_str())
                .is_some_and(|r| r.status == Some(StepStatus::Failed))
        })
        .cloned()
        .collect()
}

/// What runs again: the steps named and every step downstream of them; for an item named
/// (`step[3]`), that item and what is downstream of its whole step (the step itself ends
/// again from its items, the others keeping their ends).
fn rerun(dag: &Dag, from: &[String], named: &[StepPath]) -> Vec<String> {
    if named.is_empty() {
        return downstream(dag, from);
    }
    let mut items = Vec::new();
    let mut starts = Vec::new();
    for name in named {
        match name {
            StepPath::Step(step) => starts.push(step.clone()),
            StepPath::Item { step, .. } => {
                items.push(name.path());
                // What needs the step runs again; the step itself does not.
                let index = dag.index_of[step.as_str()];
                starts.extend(
                    (0..dag.len())
                        .filter(|&i| dag.needs[i].iter().any(|need| need.step == index))
                        .map(|i| dag.ids[i].clone()),
                );
            }
        }
    }
    items.extend(downstream(dag, &starts));
    items
}

/// `from` and every step that needs one of them, directly or not, in file order.
pub(super) fn downstream(dag: &Dag, from: &[String]) -> Vec<String> {
    let mut again: Vec<bool> = dag.ids.iter().map(|id| from.contains(id)).collect();
    // Needs point backwards in file order only when the file is ordered; go until stable.
    loop {
        let mut grew = false;
        for (index, needs) in dag.needs.iter().enumerate() {
            if !again[index] && needs.iter().any(|need| again[need.step]) {
                again[index] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    dag.ids
        .iter()
        .zip(again)
        .filter(|(_, again)| *again)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The run's inputs as the last retry that changed them left them, or as it started.
fn current_inputs(claimed: &Claimed) -> Map<String, Value> {
    latest_inputs(&claimed.prior)
}

/// The inputs a run's journal gives it now: those of its latest retry or edit that changed
/// them, or those it started with.
pub(in crate::app) fn latest_inputs(prior: &[crate::event::Envelope]) -> Map<String, Value> {
    prior
        .iter()
        .rev()
        .find_map(|envelope| match &envelope.event {
            RunEvent::RunRetried(RunRetried {
                inputs: Some(inputs),
                ..
            })
            | RunEvent::RunEdited(crate::event::RunEdited {
                inputs: Some(inputs),
                ..
            })
            | RunEvent::RunStarted { inputs, .. } => inputs.as_object().cloned(),
            _ => None,
        })
        .unwrap_or_default()
}
