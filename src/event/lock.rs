//! The events of locks shared across runs: waiting for one (and who holds it), taking it,
//! letting go of it. Each names the step instance that takes the lock, or none when the
//! whole run does.

use serde::{Deserialize, Serialize};

fn is_empty(text: &str) -> bool {
    text.is_empty()
}

/// Who held a lock that a run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolding {
    pub run_id: String,
    pub runbook: String,
    /// The step of that run holding it; empty when the whole run does.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub step: String,
    pub host: String,
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub since: String,
    /// When its lease runs out unless renewed; absent while that run is parked waiting for
    /// an approval, which keeps its locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl std::fmt::Display for LockHolding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {}", self.run_id)?;
        if !self.step.is_empty() {
            write!(f, " (step {})", self.step)?;
        }
        write!(
            f,
            " of {} on {} (pid {}) since {}",
            self.runbook, self.host, self.pid, self.since
        )
    }
}

/// A lock the run (or a step) needs is held by someone else: it waits. Written again when
/// the holder changes while it waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWaiting {
    pub lock: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub step: String,
    pub held_by: LockHolding,
}

/// The run (or a step) took a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAcquired {
    pub lock: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub step: String,
    /// How long it waited for the lock.
    pub waited_ms: u64,
}

/// The run (or a step) let go of a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockReleased {
    pub lock: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub step: String,
    /// How long this process held it.
    pub held_ms: u64,
}
