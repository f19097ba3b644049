use super::step_path::StepPath;
use super::{Claimed, claim, person};
use crate::app::{AppError, NothingTo};
use crate::event::{RunEvent, StepSkippedByHand, StepStatus};
use crate::store::Store;
use serde_json::{Map, Value};

/// A failed or not-yet-run step to mark done by hand.
pub struct SkipRequest {
    pub run_id: String,
    /// The step's id in the root runbook, or one item of a `for_each` step of it
    /// (`step[3]`).
    pub step: String,
    /// The outputs its dependents read, by the names the step declares.
    pub outputs: Map<String, Value>,
    /// Who skips it; `$USER@host` when `None`.
    pub by: Option<String>,
    pub reason: String,
}

/// A skip the journal holds.
pub struct StepSkipped {
    pub by: String,
    /// The run's status now (`interrupted`: a resume continues it).
    pub status: crate::event::RunStatus,
}

/// Marks a failed or not-yet-run step of a run no process runs now as done by hand, with
/// the outputs given; the next resume continues with it done.
pub async fn skip(store: &dyn Store, request: SkipRequest) -> Result<StepSkipped, AppError> {
    let claimed = claim(store, &request.run_id).await?;
    let skipped = journal_skip(store, &claimed, request).await;
    let _ = store.release(&claimed.lease).await;
    skipped
}

async fn journal_skip(
    store: &dyn Store,
    claimed: &Claimed,
    request: SkipRequest,
) -> Result<StepSkipped, AppError> {
    let run_id = &request.run_id;
    if let Some(status) = claimed
        .state
        .status()
        .filter(|s| *s == crate::event::RunStatus::Succeeded)
    {
        return Err(AppError::AlreadyEnded {
            run_id: run_id.clone(),
            status,
            wanted: NothingTo::Skip,
        });
    }
    let named = StepPath::known(claimed, &request.step)?;
    if let Some(status @ (StepStatus::Succeeded | StepStatus::Skipped)) = named.status(claimed) {
        return Err(AppError::NotSkippable {
            run_id: run_id.clone(),
            step: request.step,
            status,
        });
    }
    let root = claimed.bundle.root().expect("a valid bundle has its root");
    let step = root
        .runbook
        .all_steps()
        .find(|s| s.id.value == named.step())
        .expect("the step is known");
    let declared: Vec<String> = step
        .outputs
        .iter()
        .flat_map(|o| o.value.keys())
        .chain(
            step.fallback
                .iter()
                .flat_map(|f| f.value.outputs.iter().flat_map(|o| o.value.keys())),
        )
        .map(|k| k.value.clone())
        .collect();
    if let Some(unknown) = request.outputs.keys().find(|k| !declared.contains(k)) {
        return Err(AppError::UnknownOutput {
            step: request.step.clone(),
            name: unknown.clone(),
            declared,
        });
    }
    // A value typed by hand may be a secret's: it must not reach the journal. When the
    // secrets cannot be resolved here, there is nothing to compare with.
    if let Ok(secrets) = crate::app::start::resolve_secrets(&claimed.bundle) {
        let redactor = crate::engine::redact::Redactor::new(
            secrets
                .values()
                .flat_map(|m| m.values())
                .filter_map(|v| v.as_str().map(str::to_owned)),
        );
        let mut names: Vec<&String> = request.outputs.keys().collect();
        names.retain(|name| {
            let value = &request.outputs[name.as_str()];
            redactor.value(value) != *value
        });
        if let Some(name) = names.first() {
            return Err(AppError::SecretOutput {
                step: request.step.clone(),
                name: (*name).clone(),
            });
        }
    }
    let by = person(request.by);
    let event = RunEvent::StepSkippedByHand(StepSkippedByHand {
        path: named.path(),
        outputs: Value::Object(request.outputs),
        by: by.clone(),
        reason: request.reason,
    });
    claimed.journal(store, event.clone()).await?;
    let mut state = claimed.state.clone();
    state.apply_at(&event, "");
    Ok(StepSkipped {
        by,
        status: state
            .status()
            .unwrap_or(crate::event::RunStatus::Interrupted),
    })
}
