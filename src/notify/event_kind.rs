//! The kinds of run events a webhook may ask for.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happened to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run started (or was taken from the queue and started).
    RunStarted,
    /// An approval step asked its question; the payload carries the link to answer it.
    ApprovalWaiting,
    /// A run ended failed.
    RunFailed,
    /// A run ended succeeded.
    RunSucceeded,
    /// The window of a run that is not over closes within `window_closing_before`.
    WindowClosing,
    /// A run (or a step) has waited longer than `lock_wait_over` for a lock another holds.
    LockWaited,
}

impl NotifyEvent {
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::RunStarted => "run_started",
            NotifyEvent::ApprovalWaiting => "approval_waiting",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::RunSucceeded => "run_succeeded",
            NotifyEvent::WindowClosing => "window_closing",
            NotifyEvent::LockWaited => "lock_waited",
        }
    }

    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::RunStarted,
        NotifyEvent::ApprovalWaiting,
        NotifyEvent::RunFailed,
        NotifyEvent::RunSucceeded,
        NotifyEvent::WindowClosing,
        NotifyEvent::LockWaited,
    ];
}
