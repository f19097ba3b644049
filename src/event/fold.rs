//! The run-level reading of a run's events: one fold, shared by the store (its list of
//! runs) and the reports, so that they cannot disagree on where a run stands.

use super::{AbortRequest, Notice, RunEvent, RunStatus, WindowGate};
use serde_json::Value;

/// Where a run stands by its run-level events (created, resumed, ended).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFold {
    /// `None` before the run's first event.
    pub status: Option<RunStatus>,
    /// When it last ended or parked (RFC 3339); `None` while it runs.
    pub ended_at: Option<String>,
    /// The time of every process that worked on it, added up: each reports its own segment.
    /// `None` until it first ends or parks.
    pub duration_ms: Option<u64>,
    /// Why it last ended or parked as it did.
    pub reason: Option<String>,
    /// Its outputs when it last ended (the executor sets them as soon as it has them).
    pub outputs: Value,
    /// How many times it was parked (interrupted or waiting).
    pub parks: u32,
    /// The steps' notices, one per step path (the latest, when a step ran again after a
    /// resume), in the order they were given.
    pub notices: Vec<Notice>,
    /// When the window the run (or its latest segment) was given closes (RFC 3339); `None`
    /// for a segment without a window.
    pub window_until: Option<String>,
    /// Every decision of a step gated by `window`, in order.
    pub gates: Vec<WindowGate>,
    /// The abort of the run's current end, if a person asked for one: a process that takes
    /// the run up starts no step and, when it says so, undoes the run.
    pub aborted: Option<AbortRequest>,
    /// Why the run is being undone, once its undo has begun: a process that takes the run
    /// up goes on with the undo, not the steps.
    pub undoing: Option<String>,
}

impl RunFold {
    /// Applies one event that happened at `at` (RFC 3339); step events change nothing.
    pub fn apply(&mut self, event: &RunEvent, at: &str) {
        match event {
            RunEvent::RunStarted { .. } => self.status = Some(RunStatus::Running),
            RunEvent::RunResumed { .. } => {
                self.status = Some(RunStatus::Running);
                self.ended_at = None;
                // A resumed segment has a window only when it is given one.
                self.window_until = None;
            }
            RunEvent::WindowOpened { until } => self.window_until = Some(until.clone()),
            RunEvent::WindowChecked(gate) => self.gates.push(gate.clone()),
            RunEvent::RunEnded {
                status,
                reason,
                outputs,
                duration_ms,
                ..
            } => {
                self.status = Some(*status);
                self.ended_at = Some(at.to_owned());
                self.duration_ms = Some(self.duration_ms.unwrap_or(0).saturating_add(*duration_ms));
                self.reason = reason.clone();
                self.outputs = outputs.clone();
                if status.is_parked() {
                    self.parks += 1;
                } else {
                    // Over: a later abort or retry starts afresh.
                    self.aborted = None;
                    self.undoing = None;
                }
            }
            RunEvent::StepSkippedByHand(skipped) => self.reopen(format!(
                "step `{}` skipped by hand by {}: {}; continue with runbook resume",
                skipped.path, skipped.by, skipped.reason
            )),
            RunEvent::RunAborted(abort) => {
                // A live run keeps running: its process stops and undoes it. One that no
                // process runs is reopened for the process that aborts it.
                if self.status != Some(RunStatus::Running) {
                    self.reopen(abort.describe());
                }
                self.aborted = Some(abort.clone());
            }
            RunEvent::RunUndoing { reason } => self.undoing = Some(reason.clone()),
            RunEvent::RunRetried(retried) => self.reopen(format!(
                "retried from {} by {}: {}; it runs again with runbook resume",
                retried.from.join(", "),
                retried.by,
                retried.reason
            )),
            // A step skipped when it came up again (a `finally` step at a new end) has
            // nothing to say any more.
            RunEvent::StepEnded {
                path,
                status: super::StepStatus::Skipped,
                ..
            } => self.notices.retain(|notice| notice.step != *path),
            RunEvent::RunEdited(edited) => self.reopen(format!(
                "runbook edited by {}: {}; it continues with runbook resume",
                edited.by, edited.reason
            )),
            RunEvent::StepNotice { path, text } => {
                self.notices.retain(|notice| notice.step != *path);
                self.notices.push(Notice {
                    step: path.clone(),
                    text: text.clone(),
                });
            }
            _ => {}
        }
    }
}

impl RunFold {
    /// A control changed the run while no process ran it: it is parked (`interrupted`), for
    /// a resume to continue. A run that had ended counts one more park, so that its
    /// `finally` steps run again at its real end.
    fn reopen(&mut self, reason: String) {
        self.undoing = None;
        if self.status.is_some_and(RunStatus::is_over) {
            self.parks += 1;
        }
        self.status = Some(RunStatus::Interrupted);
        self.outputs = Value::Null;
        self.reason = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ended(status: RunStatus, ms: u64) -> RunEvent {
        RunEvent::RunEnded {
            status,
            reason: Some(format!("{} here", status.name())),
            outputs: json!({ "n": ms }),
            duration_ms: ms,
            notices: Vec::new(),
        }
    }

    #[test]
    fn a_parked_then_resumed_run_adds_up_its_segments() {
        let mut run = RunFold::default();
        assert_eq!(run.status, None);
        let started = RunEvent::RunStarted {
            runbook: "r".into(),
            file: "r.yaml".into(),
            inputs: json!({}),
            sources: vec![],
            origin: None,
            by: None,
        };
        run.apply(&started, "t0");
        assert_eq!(
            (run.status, run.duration_ms),
            (Some(RunStatus::Running), None)
        );
        run.apply(&ended(RunStatus::Waiting, 1200), "t1");
        assert_eq!(run.status, Some(RunStatus::Waiting));
        assert_eq!((run.ended_at.as_deref(), run.parks), (Some("t1"), 1));
        run.apply(&RunEvent::RunResumed { by: "pid 1".into() }, "t2");
        assert_eq!(
            (run.status, run.ended_at.as_deref()),
            (Some(RunStatus::Running), None)
        );
        assert_eq!(run.duration_ms, Some(1200));
        run.apply(&ended(RunStatus::Failed, 300), "t3");
        assert_eq!(run.status, Some(RunStatus::Failed));
        assert_eq!(run.duration_ms, Some(1500));
        assert_eq!(run.reason.as_deref(), Some("failed here"));
        assert_eq!(run.outputs, json!({ "n": 300 }));
        assert_eq!(run.parks, 1);
    }

    #[test]
    fn a_control_reopens_an_ended_run_as_interrupted_and_counts_a_park() {
        let mut run = RunFold::default();
        run.apply(&ended(RunStatus::Failed, 10), "t1");
        assert_eq!(run.parks, 0);
        let skipped = RunEvent::StepSkippedByHand(crate::event::StepSkippedByHand {
            path: "b".into(),
            outputs: json!({ "v": 1 }),
            by: "alice".into(),
            reason: "by hand".into(),
        });
        run.apply(&skipped, "t2");
        assert_eq!(run.status, Some(RunStatus::Interrupted));
        assert_eq!(run.parks, 1, "finally runs again at the real end");
        assert_eq!(run.outputs, Value::Null);
        assert!(
            run.reason
                .as_deref()
                .is_some_and(|r| r.contains("alice: by hand"))
        );
        // A second control on a run already parked counts no other park.
        run.apply(&skipped, "t3");
        assert_eq!(run.parks, 1);
    }

    #[test]
    fn an_abort_reopens_a_stopped_run_but_not_a_live_one_and_an_end_clears_it() {
        let abort = RunEvent::RunAborted(crate::event::AbortRequest {
            by: "ann".into(),
            reason: "roll back".into(),
            undo: true,
            asked_at: "t".into(),
        });
        let mut stopped = RunFold::default();
        stopped.apply(&ended(RunStatus::Failed, 10), "t1");
        stopped.apply(&abort, "t2");
        assert_eq!(stopped.status, Some(RunStatus::Interrupted));
        assert_eq!(stopped.parks, 1, "finally runs again at the new end");
        assert!(stopped.aborted.as_ref().is_some_and(|a| a.undo));

        let mut live = RunFold::default();
        live.apply(&RunEvent::RunResumed { by: "pid 1".into() }, "t1");
        live.apply(&abort, "t2");
        live.apply(
            &RunEvent::RunUndoing {
                reason: "asked".into(),
            },
            "t3",
        );
        assert_eq!(live.status, Some(RunStatus::Running));
        assert_eq!(live.undoing.as_deref(), Some("asked"));
        live.apply(&ended(RunStatus::Undone, 5), "t4");
        assert_eq!(
            (live.aborted.is_none(), live.undoing.is_none()),
            (true, true)
        );
    }
}
