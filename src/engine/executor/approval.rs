//! `approval` steps: asking, waiting for an answer, parking the run while nobody answers.

use super::*;
use crate::engine::state::Verdict;
use crate::store::Decision;

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
        let (asked_at, settled) = {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(path);
            (
                record.and_then(|r| r.approval_requested_at().map(str::to_owned)),
                record.and_then(settled_result),
            )
        };
        if let Some(result) = settled {
            return result;
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
                let needed = approval.value.needed();
                let asked = self.emit(RunEvent::ApprovalRequested {
                    path: path.clone(),
                    prompt,
                    timeout_ms: timeout.map(|t| t.as_millis() as u64),
                    needed: (needed > 1).then_some(needed),
                    distinct_from_starter: approval.value.distinct_from_starter(),
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
            // Each answer not journaled yet is journaled, one person once, in the order given;
            // a crash between two answers keeps the first in the journal.
            let journaled: Vec<String> = {
                let state = self.state.lock().expect("state lock");
                state
                    .steps
                    .get(path)
                    .map(|r| r.answers().iter().map(|a| a.by.clone()).collect())
                    .unwrap_or_default()
            };
            let mut new_answers: Vec<Decision> = Vec::new();
            for decision in decisions.into_iter().filter(|d| d.path == *path) {
                if !journaled.contains(&decision.by)
                    && !new_answers.iter().any(|d| d.by == decision.by)
                {
                    new_answers.push(decision);
                }
            }
            for decision in new_answers {
                let given = self.emit(RunEvent::ApprovalGiven {
                    path: path.clone(),
                    approved: decision.approved,
                    by: decision.by,
                    comment: decision.comment,
                    answered_at: decision.at,
                });
                if given.await.is_err() {
                    return Err(cancelled());
                }
            }
            let settled = {
                let state = self.state.lock().expect("state lock");
                state.steps.get(path).and_then(settled_result)
            };
            if let Some(result) = settled {
                return result;
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

/// The result of an approval step whose journaled answers settle it: its outputs, or the
/// failure of a rejection; `None` while it waits for more answers.
fn settled_result(record: &StepRecord) -> Option<Result<Value, Failure>> {
    match record.verdict() {
        Verdict::Open { .. } => None,
        Verdict::Approved(answers) => {
            let last = answers.last().expect("an approval has an answer");
            let approvers: Vec<Value> = answers
                .iter()
                .map(|a| json!({ "by": a.by, "at": a.at, "comment": a.comment }))
                .collect();
            Some(Ok(json!({
                "approved_by": last.by,
                "at": last.at,
                "comment": last.comment,
                "approvers": approvers,
            })))
        }
        Verdict::Rejected(answer) => {
            let comment = answer
                .comment
                .as_ref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Some(Err(Failure {
                message: format!("rejected by {}{comment}", answer.by),
                cancelled: false,
                parked: false,
                permanent: false,
            }))
        }
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
