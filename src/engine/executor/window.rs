//! The window gate: before a step with `window` starts, the time left in the run's window
//! against the time the step needs. Every decision is journaled with its numbers.

use super::*;
use crate::event::{GateDecision, NeedSource, WindowGate};
use crate::plan::window::{HISTORY_RUNS, decide, need};
use crate::runbook::{OnWindowClose, StepWindow, WindowNeed};

impl Run {
    /// Whether the run's window closed on a gated step, or a person paused the run, and the
    /// run parks: nothing more starts, what runs finishes.
    pub(super) fn window_closed(&self) -> bool {
        self.window_parked.lock().expect("window lock").is_some() || self.pausing()
    }

    /// Gates a step that is about to start: `None` lets it start; `Some(status)` is how the
    /// step stands when it may not (a park records nothing of the step, so that a resume in a
    /// later window gates it again; a failure records its end).
    pub(super) async fn gate(
        &self,
        path: &str,
        step: &Step,
        window: &StepWindow,
        started: Instant,
    ) -> Option<StepStatus> {
        let until = self.window_until?;
        let (needed, source) = self.step_need(path, window).await;
        let left = left_until(until);
        let decision = decide(left, needed, self.on_window_close);
        let gate = WindowGate {
            path: path.to_owned(),
            until: until.to_string(),
            left_ms: left.as_millis() as u64,
            needed_ms: needed.as_millis() as u64,
            source,
            decision,
        };
        let reason = format!("the window closes too soon: {}", gate.numbers());
        // Durable before the step starts or the run stops: the journal tells why.
        if self.emit(RunEvent::WindowChecked(gate)).await.is_err() {
            return Some(StepStatus::Cancelled);
        }
        match decision {
            GateDecision::Start => None,
            GateDecision::Park => {
                self.park_for_window(reason);
                Some(StepStatus::Cancelled)
            }
            GateDecision::Fail => {
                // The run's reason, unless the step's failure does not fail the run.
                if step.continue_on_failure != Some(true) {
                    self.window_failure
                        .lock()
                        .expect("window lock")
                        .get_or_insert(reason.clone());
                }
                Some(
                    self.end(
                        path,
                        None,
                        started,
                        Ending::without_outputs(StepStatus::Failed, 0, Some(reason)),
                    )
                    .await,
                )
            }
        }
    }

    /// Parks the run because its window closed (`on_window_close: park`): nothing more
    /// starts, what runs finishes, and `reason` (the first one given) is the run's.
    pub(super) fn park_for_window(&self, reason: String) {
        self.window_parked
            .lock()
            .expect("window lock")
            .get_or_insert(reason);
        self.stop_because(StopReason::WindowClosed);
    }

    /// What the step needs and where that came from: declared, or for `auto` its history in
    /// the store (the estimate when there is too little, or when the store cannot tell).
    async fn step_need(&self, path: &str, window: &StepWindow) -> (Duration, NeedSource) {
        if window.needs.value != WindowNeed::Auto {
            return need(window, &[]);
        }
        let through = window.through_path(path);
        let span = crate::store::StepSpan {
            from: path,
            through: &through,
        };
        let history = match &self.store {
            Some(store) => store
                .step_durations(&self.runbook_name, span, HISTORY_RUNS)
                .await
                .unwrap_or_else(|error| {
                    drop(self.emit(RunEvent::Warning {
                        path: Some(path.to_owned()),
                        message: format!(
                            "cannot read how long this step took before ({error}); \
                             its window need is the estimate"
                        ),
                    }));
                    Vec::new()
                }),
            None => Vec::new(),
        };
        need(window, &history)
    }
}

/// The policy a run follows when its window closes: the root runbook's, `park` by default.
pub(super) fn policy(runbook: &crate::runbook::Runbook) -> OnWindowClose {
    runbook
        .on_window_close
        .as_ref()
        .map_or(OnWindowClose::Park, |p| p.value)
}
