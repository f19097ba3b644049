//! `approval` steps: asking, waiting for an answer, parking the run while nobody answers.

use super::*;

impl Run {
    /// An approval: asks once (journaled), then waits for an answer recorded by
    /// `runbook approve`. When every step still under way waits like this and nothing else has
    /// happened for a moment, the run parks as `waiting` and a resume takes the wait up again.
    pub(super) async fn approval(
        &self,
        instance: &Instance,
        approval: &Spanned<Approval>,
        context: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let path = &instance.path;
        let Some(store) = self.store.clone() else {
            return Err(failure("an approval needs a store to record the answer in"));
        };
        let (asked_at, answer) = {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(path);
            (
                record.and_then(|r| r.approval_requested_at.clone()),
                record.and_then(|r| r.decision.clone()),
            )
        };
        if let Some(answer) = answer {
            return answer_result(answer.approved, &answer.by, answer.comment, &answer.at);
        }
        let timeout = approval.value.timeout.as_ref().map(|t| t.value.0);
        let asked_at = match asked_at.and_then(|at| at.parse::<jiff::Timestamp>().ok()) {
            Some(at) => at,
            None => {
                let prompt =
                    match template::render(&approval.value.prompt.value, context, Escape::Plain) {
                        Ok(Value::String(text)) => text,
                        Ok(other) => other.to_string(),
                        Err(e) => return Err(failure(format!("`prompt`: {e}"))),
                    };
                let asked = self.emit(RunEvent::ApprovalRequested {
                    path: path.clone(),
                    prompt,
                    timeout_ms: timeout.map(|t| t.as_millis() as u64),
                });
                if asked.await.is_err() {
                    return Err(cancelled());
                }
                jiff::Timestamp::now()
            }
        };
        let _waiting = WaitingGuard::new(self, path);
        // Parking needs the run to have been still for a moment: a step that just ended may be
        // about to start its dependents.
        let mut last_activity = (self.activity.load(Ordering::Relaxed), Instant::now());
        loop {
            let decisions = store
                .decisions(&self.run_id)
                .await
                .map_err(|e| failure(format!("cannot read the answers to approvals: {e}")))?;
            if let Some(decision) = decisions.into_iter().find(|d| d.path == *path) {
                let given = self.emit(RunEvent::ApprovalGiven {
                    path: path.clone(),
                    approved: decision.approved,
                    by: decision.by.clone(),
                    comment: decision.comment.clone(),
                    answered_at: decision.at.clone(),
                });
                if given.await.is_err() {
                    return Err(cancelled());
                }
                return answer_result(
                    decision.approved,
                    &decision.by,
                    decision.comment,
                    &decision.at,
                );
            }
            if let Some(limit) = timeout {
                let waited = jiff::Timestamp::now().duration_since(asked_at);
                if Duration::try_from(waited).unwrap_or_default() >= limit {
                    return Err(failure(format!(
                        "no answer within {}",
                        crate::runbook::Duration(limit)
                    )));
                }
            }
            let activity = self.activity.load(Ordering::Relaxed);
            if activity != last_activity.0 {
                last_activity = (activity, Instant::now());
            } else if last_activity.1.elapsed() >= PARK_AFTER
                && self.busy.load(Ordering::SeqCst)
                    <= self.waiting.lock().expect("waiting lock").len()
            {
                self.stop_because(StopReason::Parked);
                self.park.cancel();
            }
            // Parking cancels the run's token too: parked must win over cancelled, or a
            // parked approval would end as cancelled and drop out of what the run waits for.
            tokio::select! {
                biased;
                _ = self.park.cancelled() => return Err(parked()),
                _ = tokio::time::sleep(APPROVAL_POLL) => {}
                _ = cancel.cancelled() => return Err(cancelled()),
            }
        }
    }
}

/// How often a waiting approval looks for an answer.
const APPROVAL_POLL: Duration = Duration::from_millis(250);

/// How long the run must have been still, with every step under way waiting for an answer,
/// before it parks.
const PARK_AFTER: Duration = Duration::from_millis(750);

/// The result of an answered approval step: its outputs, or the failure of a rejection.
fn answer_result(
    approved: bool,
    by: &str,
    comment: Option<String>,
    at: &str,
) -> Result<Value, Failure> {
    if approved {
        Ok(json!({ "approved_by": by, "at": at, "comment": comment }))
    } else {
        let comment = comment.map(|c| format!(": {c}")).unwrap_or_default();
        Err(Failure {
            message: format!("rejected by {by}{comment}"),
            cancelled: false,
            parked: false,
            permanent: false,
        })
    }
}

/// Marks an approval step as waiting until the guard drops.
struct WaitingGuard<'r>(&'r Run, String);

impl<'r> WaitingGuard<'r> {
    fn new(run: &'r Run, path: &str) -> Self {
        run.waiting
            .lock()
            .expect("waiting lock")
            .insert(path.to_owned());
        WaitingGuard(run, path.to_owned())
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().expect("waiting lock").remove(&self.1);
    }
}
