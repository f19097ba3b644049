use super::{AppError, NothingTo};
use crate::engine::state::RunState;
use crate::runbook::de::closest;
use crate::store::{Decision, Owner, Store};

/// A person's answer to an approval step that is waiting.
pub struct ApproveRequest {
    pub run_id: String,
    /// The approval step's path, as events name it.
    pub step: String,
    /// `false` rejects: the step fails.
    pub approved: bool,
    /// Who answers; `$USER@host` when `None`.
    pub by: Option<String>,
    pub comment: Option<String>,
}

/// An answer the store has recorded.
pub struct ApprovalRecorded {
    pub decision: Decision,
    /// The live process that owns the run and will journal the answer; when `None`, the
    /// run is parked and continues with a resume.
    pub picked_up_by: Option<Owner>,
}

/// Records an answer to an approval step that is waiting. The run's owner (or the next
/// resume) journals it and carries on.
pub async fn approve(
    store: &dyn Store,
    request: ApproveRequest,
) -> Result<ApprovalRecorded, AppError> {
    let run_id = &request.run_id;
    let events = store.events(run_id).await?;
    let mut state = RunState::default();
    for envelope in &events {
        state.apply_at(&envelope.event, &envelope.at);
    }
    if let Some(status) = state.status().filter(|s| s.is_over()) {
        return Err(AppError::AlreadyEnded {
            run_id: run_id.clone(),
            status,
            wanted: NothingTo::Approve,
        });
    }
    let asking: Vec<&str> = state
        .steps
        .iter()
        .filter(|(_, r)| r.approval_requested_at.is_some() && r.decision.is_none())
        .map(|(path, _)| path.as_str())
        .collect();
    // An answer may be recorded and not yet journaled (the run is parked): look at both.
    let recorded = store
        .decisions(run_id)
        .await?
        .into_iter()
        .find(|d| d.path == request.step)
        .map(|d| (d.approved, d.by));
    let journaled = state
        .steps
        .get(&request.step)
        .and_then(|r| r.decision.as_ref())
        .map(|a| (a.approved, a.by.clone()));
    if let Some((approved, by)) = journaled.or(recorded) {
        return Err(AppError::AlreadyAnswered {
            run_id: run_id.clone(),
            step: request.step,
            approved,
            by,
        });
    }
    if !asking.contains(&request.step.as_str()) {
        return Err(AppError::NotWaiting {
            run_id: run_id.clone(),
            closest: closest(&request.step, asking.iter().copied()).map(str::to_owned),
            waiting: asking.iter().map(|s| (*s).to_owned()).collect(),
            step: request.step,
        });
    }
    let by = super::controls::person(request.by);
    let decision = Decision {
        path: request.step,
        approved: request.approved,
        by,
        comment: request.comment,
        at: crate::event::timestamp::now(),
    };
    store.decide(run_id, &decision).await?;
    let picked_up_by = store
        .run(run_id)
        .await
        .ok()
        .and_then(|r| r.owner)
        .filter(|owner| !owner.is_gone());
    Ok(ApprovalRecorded {
        decision,
        picked_up_by,
    })
}
