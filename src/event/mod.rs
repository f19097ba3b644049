//! What happens in a run, as a stream of events. Everything else is a view over them: the
//! executor's own state is folded from them, the terminal shows them, `--output json` prints
//! them, and the journal will store them.

mod control;
mod fold;
mod lock;
pub mod timestamp;
mod window;

pub use control::{
    AbortRequest, InputChange, NeedsChange, PauseRequest, RunEdited, RunRetried, StepChange,
    StepChangeKind, StepSkippedByHand,
};
pub use fold::RunFold;
pub use lock::{LockAcquired, LockHolding, LockReleased, LockWaiting};
pub use window::{GateDecision, NeedSource, WindowGate};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

/// Which body produced a step's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Action,
    Fallback,
    /// A resumed run's `verify` probe found the work already done.
    Verify,
}

/// How a run ended (or where it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Stopped by a signal; `runbook resume` will continue it.
    Interrupted,
    /// Parked until someone answers an approval; `runbook resume` will continue it.
    Waiting,
    /// Parked because its window closed before a gated step could start;
    /// `runbook resume --window` continues it in a later window.
    Parked,
    /// Ended after the `undo` of every step that had succeeded ran and succeeded: what the
    /// run did is taken back.
    Undone,
    /// Enqueued (`runbook run --queue`): created, not started, waiting for a `serve` worker
    /// to claim it. Only the store's list of runs says so; its journal holds its creation.
    Queued,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Waiting => "waiting",
            RunStatus::Parked => "parked",
            RunStatus::Undone => "undone",
            RunStatus::Queued => "queued",
        }
    }

    /// The status of a [`name`](RunStatus::name), as a store keeps it.
    pub fn from_name(name: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
            RunStatus::Waiting,
            RunStatus::Parked,
            RunStatus::Undone,
            RunStatus::Queued,
        ]
        .into_iter()
        .find(|status| status.name() == name)
    }

    /// Whether `runbook resume` can continue a run that ended this way.
    pub fn is_parked(self) -> bool {
        matches!(
            self,
            RunStatus::Interrupted | RunStatus::Waiting | RunStatus::Parked
        )
    }

    /// Whether the run is over for good: neither running nor parked.
    pub fn is_over(self) -> bool {
        !self.is_parked() && !matches!(self, RunStatus::Running | RunStatus::Queued)
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One thing that happened. Step paths name a step instance: `snapshot`, `snapshot[2]` for
/// an item of a `for_each`, `snapshot[2]/trigger` inside a runbook it `uses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run is created: the journal's first event. It carries everything a resume needs
    /// besides secrets: the source of every runbook the run uses, and the inputs.
    RunStarted {
        runbook: String,
        /// The root runbook file as it was named on the command line.
        #[serde(default)]
        file: String,
        /// Inputs as given, secrets never among them.
        inputs: Value,
        /// The root runbook first, then every runbook it uses.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sources: Vec<RunbookSource>,
        /// Who started the run when it was not a person: `runbook serve` records its schedule,
        /// and takes the run over after its own restart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<RunOrigin>,
        /// Who started it: `$USER@host` of the process that did (or a name it was given).
        /// Absent from runs journaled before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A process took the run over to continue it.
    RunResumed {
        /// `pid 4242 on host-a`.
        by: String,
    },
    /// An attempt of a step's action (or of its fallback) starts.
    StepStarted {
        path: String,
        attempt: u32,
        attempts: u32,
        #[serde(default, skip_serializing_if = "is_false")]
        fallback: bool,
    },
    /// A `for_each` step expanded into its items. They are journaled so that a resumed run
    /// works on the same items, whatever the expression would give now.
    StepExpanded {
        path: String,
        items: Vec<Value>,
        /// Set when the items carried a secret: they are masked above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed: Option<Sealed>,
    },
    /// `until` did not hold yet; the action runs again after the poll interval.
    StepPolling {
        path: String,
        attempt: u32,
        poll: u32,
    },
    /// An attempt failed; `retry_in_ms` is set when another attempt follows.
    StepAttemptFailed {
        path: String,
        attempt: u32,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_in_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "is_false")]
        fallback: bool,
    },
    StepEnded {
        path: String,
        status: StepStatus,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<Via>,
        #[serde(default)]
        outputs: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The element a `for_each` instance ran for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<Value>,
        duration_ms: u64,
        /// Set when the outputs or the item carried a secret: they are masked above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed: Option<Sealed>,
    },
    /// What one run of an action printed (an `exec` program's stdout and stderr), masked,
    /// the last [`crate::engine::step_output::KEPT_BYTES`] of each stream. It follows the
    /// `step_started` of its attempt (one per poll when the step polls with `until`).
    StepOutput {
        path: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        stdout: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        stderr: String,
        /// Bytes left out at the start of each stream to keep it within bounds.
        #[serde(default, skip_serializing_if = "is_zero")]
        cut_bytes: u64,
    },
    /// An approval step asks its question and waits.
    ApprovalRequested {
        path: String,
        prompt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// How many different people must approve; absent means one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        needed: Option<u32>,
        /// Whoever started the run may not approve.
        #[serde(default, skip_serializing_if = "is_false")]
        distinct_from_starter: bool,
    },
    /// Someone answered an approval step.
    ApprovalGiven {
        path: String,
        approved: bool,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// When they answered (RFC 3339).
        answered_at: String,
    },
    /// Something a person must see that is not a failure (TLS verification turned off).
    Warning {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        message: String,
    },
    /// The run (or a resumed segment of it) has a window: gated steps start only while
    /// enough of it is left.
    WindowOpened {
        /// When the window closes (RFC 3339).
        until: String,
    },
    /// A step gated by `window` was about to start: the time left, the time it needs, where
    /// that need came from, and what was decided.
    WindowChecked(WindowGate),
    /// A step's `notice`, rendered when the step ended: something for the person running
    /// the runbook, shown again at the end of the run.
    StepNotice {
        path: String,
        text: String,
    },
    /// A lock of the run or of a step is held by another: it waits (see [`LockWaiting`]).
    LockWaiting(LockWaiting),
    LockAcquired(LockAcquired),
    LockReleased(LockReleased),
    /// A person marked a step done by hand (`runbook skip`).
    StepSkippedByHand(StepSkippedByHand),
    /// A person had the run run again from some of its steps (`runbook retry`).
    RunRetried(RunRetried),
    /// The run's process picked up a pause request (`runbook pause`): nothing more starts,
    /// and the run parks `interrupted`.
    RunPaused(PauseRequest),
    RunEnded {
        status: RunStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default)]
        outputs: Value,
        duration_ms: u64,
        /// Every notice of the run, resumed segments included, in the order the steps gave
        /// them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notices: Vec<Notice>,
    },
    /// A person aborted the run (`runbook abort`): nothing more starts, and its succeeded
    /// steps are undone when the request says so.
    RunAborted(AbortRequest),
    /// The run starts undoing what its steps did, and why: `on_failure: undo`,
    /// `on_window_close: undo`, or an abort with undo. Journaled once per undo, before the
    /// first undo starts.
    RunUndoing {
        reason: String,
    },
    /// An attempt of a step's `undo` starts (one per succeeded item of a `for_each` step).
    UndoStarted {
        path: String,
        attempt: u32,
        attempts: u32,
    },
    /// An attempt of an undo failed; `retry_in_ms` is set when another follows.
    UndoAttemptFailed {
        path: String,
        attempt: u32,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_in_ms: Option<u64>,
    },
    /// An undo ended: `succeeded`, `failed` (after its retries) or `cancelled`.
    UndoEnded {
        path: String,
        status: StepStatus,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
    },
    /// A person had the run continue with an edited runbook (`runbook resume --runbook`).
    RunEdited(RunEdited),
}

/// What a step's `notice` said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The step path: `restart[1]` for an item of a `for_each`.
    pub step: String,
    pub text: String,
}

/// What became of values that carried a secret: the event shows them masked, and later steps
/// read the real ones, from memory in the process that ran the step, or from `ciphertext`
/// in a resumed run that has the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sealed {
    /// The values masked: `outputs.<name>`, `item` or `items`.
    pub masked: Vec<String>,
    /// The real values of the masked fields (`outputs`, `item`, `items`), encrypted with the
    /// run's key; absent when the run had no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
}

impl RunEvent {
    /// The step path and sealed values of an event that has some.
    pub fn sealed(&self) -> Option<(&str, &Sealed)> {
        match self {
            RunEvent::StepEnded {
                path,
                sealed: Some(sealed),
                ..
            }
            | RunEvent::StepExpanded {
                path,
                sealed: Some(sealed),
                ..
            } => Some((path, sealed)),
            _ => None,
        }
    }

    /// Where an event keeps sealed values, for the executor to fill in.
    pub fn sealed_slot(&mut self) -> Option<(&str, &mut Option<Sealed>)> {
        match self {
            RunEvent::StepEnded { path, sealed, .. }
            | RunEvent::StepExpanded { path, sealed, .. } => Some((path, sealed)),
            _ => None,
        }
    }
}

/// A run started by a schedule of `runbook serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrigin {
    /// The schedule's name, unique within the store's serve configuration.
    pub schedule: String,
    /// The fire time the run is for, RFC 3339 (UTC).
    pub fire: String,
}

/// One runbook's text as the run read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookSource {
    /// The canonical path the text was read from.
    pub path: String,
    /// Hex SHA-256 of `text`: tells whether the file on disk has changed since.
    pub sha256: String,
    pub text: String,
}

/// An event as it leaves the engine: which run, when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub run_id: String,
    /// RFC 3339, UTC.
    pub at: String,
    #[serde(flatten)]
    pub event: RunEvent,
}

/// Where events go. Implementations must be quick: the executor calls them inline.
pub trait EventSink: Send + Sync {
    fn emit(&self, envelope: &Envelope);
}
