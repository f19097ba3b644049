//! A person asks `runbook serve`'s workers to take a parked run of their queue up again (from
//! the web, where no run executes in the request's process). The request goes through the
//! store, as a pause does: a worker sees it within seconds, claims the run and resumes it
//! through the same path as `runbook resume`.

use super::AppError;
use super::controls::person;
use crate::event::{Envelope, RunStatus};
use crate::report::run_report::shown_status;
use crate::store::{QUEUE_RECORD, Store};
use serde::{Deserialize, Serialize};

/// A resume request, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeAsked {
    pub by: String,
    pub reason: String,
    /// RFC 3339: a worker honours a request made after the run's last pause only.
    pub asked_at: String,
}

impl ResumeAsked {
    /// The name of the store's record that carries the resume requests of run `run_id`.
    pub fn record(run_id: &str) -> String {
        format!("runbook:resume:{run_id}")
    }

    /// Whether a request of `requests` was made after the run's journal last changed: one
    /// made before (and answered by a resume since, or overtaken by a later pause) is spent.
    pub fn pending(requests: &[ResumeAsked], events: &[Envelope]) -> bool {
        let last = events.last().map_or(i64::MIN, |e| millis(&e.at));
        requests
            .iter()
            .any(|request| millis(&request.asked_at) > last)
    }
}

fn millis(at: &str) -> i64 {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or(i64::MIN)
}

/// Asks serve's workers to resume run `run_id`: it must be parked (`interrupted`, `parked`
/// by its window, or left so by a retry or an abort) and a run of serve's queue (a run started elsewhere is resumed
/// where it was started, with `runbook resume`).
pub async fn ask_resume(
    store: &dyn Store,
    run_id: &str,
    by: Option<String>,
    reason: String,
) -> Result<ResumeAsked, AppError> {
    let summary = store.run(run_id).await?;
    let status = shown_status(&summary);
    let refused = match status {
        RunStatus::Running | RunStatus::Queued => Some("is under way already".to_owned()),
        RunStatus::Waiting => Some("waits for an approval: answer it, and it goes on".to_owned()),
        status if status.is_over() => Some(format!("is over ({})", status.name())),
        _ => None,
    };
    if let Some(why) = refused {
        return Err(AppError::NotResumable(format!("run {run_id} {why}")));
    }
    let queued = store
        .records(QUEUE_RECORD)
        .await?
        .iter()
        .any(|entry| entry.value == run_id);
    if !queued {
        return Err(AppError::NotResumable(format!(
            "run {run_id} was not started through serve's queue: resume it where it was \
             started, with `runbook resume {run_id}`"
        )));
    }
    let asked = ResumeAsked {
        by: person(by),
        reason,
        asked_at: crate::event::timestamp::now(),
    };
    let value = serde_json::to_string(&asked).expect("a resume request serializes");
    store
        .add_records(
            &ResumeAsked::record(run_id),
            run_id,
            "",
            std::slice::from_ref(&value),
        )
        .await?;
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PauseRequest, RunEvent};

    fn event(at: &str) -> Envelope {
        Envelope {
            run_id: "r".to_owned(),
            at: at.to_owned(),
            event: RunEvent::RunPaused(PauseRequest {
                by: "otto".to_owned(),
                reason: "wait".to_owned(),
                now: false,
                asked_at: at.to_owned(),
            }),
        }
    }

    fn asked(at: &str) -> ResumeAsked {
        ResumeAsked {
            by: "olga".to_owned(),
            reason: "go on".to_owned(),
            asked_at: at.to_owned(),
        }
    }

    #[test]
    fn a_request_counts_only_when_made_after_the_journal_last_changed() {
        let journal = [event("2026-12-06T02:00:00Z"), event("2026-12-06T02:05:00Z")];
        assert!(!ResumeAsked::pending(&[], &journal));
        // Made before the run last parked: spent (a resume answered it, or a pause overtook it).
        assert!(!ResumeAsked::pending(&[asked("2026-12-06T02:01:00Z")], &journal));
        assert!(ResumeAsked::pending(
            &[asked("2026-12-06T02:01:00Z"), asked("2026-12-06T02:06:00Z")],
            &journal
        ));
    }
}
