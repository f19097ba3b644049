//! Locks shared across runs: a name that one run (or one step of it) holds at a time, with a
//! lease that its process renews while it holds it, so that a holder that dies stops
//! blocking others once its lease runs out.

use super::Owner;

/// Who asks for, or holds, a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub run_id: String,
    /// The step instance holding it (`restart[1]`); empty when the whole run holds it. Two
    /// steps of one run are two holders: they take turns like two runs.
    pub step: String,
    /// The runbook's `name`, for people.
    pub runbook: String,
    /// The process holding it; `since` is when it asked.
    pub owner: Owner,
}

impl LockHolder {
    /// Whether `other` is the same holder (the same run and step, in whatever process).
    pub fn is(&self, other: &LockHolder) -> bool {
        self.run_id == other.run_id && self.step == other.step
    }
}

/// A lock and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub name: String,
    pub holder: LockHolder,
    /// When the holder took it (RFC 3339, UTC).
    pub acquired_at: String,
    /// When its lease runs out unless renewed (RFC 3339, UTC). `None`: kept without a lease,
    /// because its run is parked waiting for an approval.
    pub expires_at: Option<String>,
}

/// What [`Store::acquire_lock`](super::Store::acquire_lock) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is the caller's, with a fresh lease (taken, taken again by the same holder,
    /// or taken over from a holder whose lease had run out).
    Acquired(HeldLock),
    /// Someone else holds it and their lease has not run out.
    HeldBy(HeldLock),
}
