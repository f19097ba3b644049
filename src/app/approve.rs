use super::{AppError, NothingTo};
use crate::engine::state::{Answer, RunState, Verdict, verdict};
use crate::event::RunEvent;
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
        .filter(|(_, r)| r.awaits_answers())
        .map(|(path, _)| path.as_str())
        .collect();
    let by = super::controls::person(request.by);
    let record = state.steps.get(&request.step);
    // An answer may be recorded and not yet journaled (the run is parked): look at both,
    // the journal's first.
    let mut answers: Vec<Answer> = record.map(|r| r.answers().to_vec()).unwrap_or_default();
    for decision in store.decisions(run_id).await? {
        if decision.path == request.step && !answers.iter().any(|a| a.by == decision.by) {
            answers.push(Answer {
                approved: decision.approved,
                by: decision.by,
                comment: decision.comment,
                at: decision.at,
            });
        }
    }
    let needed = record.map_or(1, |r| r.approvals_needed());
    match verdict(&answers, needed) {
        Verdict::Rejected(answer) => {
            return Err(AppError::AlreadyAnswered {
                run_id: run_id.clone(),
                step: request.step,
                approved: false,
                by: answer.by.clone(),
            });
        }
        Verdict::Approved(approvals) => {
            return Err(AppError::AlreadyAnswered {
                run_id: run_id.clone(),
                step: request.step,
                approved: true,
                by: names(&approvals),
            });
        }
        Verdict::Open { approvals, needed } => {
            if answers.iter().any(|a| a.by == by) {
                return Err(AppError::AnsweredTwice {
                    run_id: run_id.clone(),
                    step: request.step,
                    by,
                    approvals,
                    needed,
                });
            }
        }
    }
    if !asking.contains(&request.step.as_str()) {
        return Err(AppError::NotWaiting {
            run_id: run_id.clone(),
            closest: closest(&request.step, asking.iter().copied()).map(str::to_owned),
            waiting: asking.iter().map(|s| (*s).to_owned()).collect(),
            step: request.step,
        });
    }
    let starter = events.iter().find_map(|envelope| match &envelope.event {
        RunEvent::RunStarted { by, .. } => by.clone(),
        _ => None,
    });
    let distinct = record
        .and_then(|r| r.approval_rule())
        .is_some_and(|rule| rule.distinct_from_starter);
    if distinct && starter.as_deref() == Some(by.as_str()) {
        return Err(AppError::StarterMayNotAnswer {
            run_id: run_id.clone(),
            step: request.step,
            by,
        });
    }
    let decision = Decision {
        path: request.step,
        approved: request.approved,
        by,
        comment: request.comment,
        at: crate::event::timestamp::now(),
    };
    store.decide(run_id, &decision, needed).await?;
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

/// Who approved, for a message: `ana, bo`.
fn names(answers: &[&Answer]) -> String {
    answers
        .iter()
        .map(|a| a.by.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
