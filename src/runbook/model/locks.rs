//! `locks` and `lock_wait`, on a runbook and on a step: names that one run (or one step of a
//! run) holds at a time, across every run sharing the store. The fields sit on `Runbook` and
//! `Step` (serde cannot flatten into a struct that denies unknown fields); what they mean is
//! here.

use super::{Runbook, Step};
use crate::runbook::duration::Duration;
use crate::runbook::spanned::Spanned;

/// Lock names as written: templates.
pub type LockNames = Spanned<Vec<Spanned<String>>>;

impl Runbook {
    /// The locks the whole run holds, from before its first step until it ends.
    pub fn lock_names(&self) -> &[Spanned<String>] {
        self.locks.as_ref().map_or(&[], |l| &l.value)
    }

    /// How long the run waits for one of its locks; `None`: until its deadline.
    pub fn lock_wait(&self) -> Option<std::time::Duration> {
        self.lock_wait.as_ref().map(|w| w.value.0)
    }
}

impl Step {
    /// The locks the step holds while it runs, retries and fallback included.
    pub fn lock_names(&self) -> &[Spanned<String>] {
        self.locks.as_ref().map_or(&[], |l| &l.value)
    }

    /// How long the step waits for one of its locks: its own `lock_wait`, else the runbook's.
    pub fn lock_wait(&self, runbook: &Runbook) -> Option<std::time::Duration> {
        self.lock_wait
            .as_ref()
            .map(|w: &Spanned<Duration>| w.value.0)
            .or_else(|| runbook.lock_wait())
    }
}
