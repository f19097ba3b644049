//! The locks of a run in its report: each time the run (or a step) took a lock, who it
//! waited for, how long, and when it let go.

use super::run_report::{cell, duration};
use crate::event::{LockHolding, RunEvent};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct LockReport {
    pub lock: String,
    /// The step that took it; absent when the whole run did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Who held it when the run (or step) started to wait; the last one when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_for: Option<LockHolding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_ms: Option<u64>,
}

impl LockReport {
    fn new(lock: &str, step: &str) -> Self {
        LockReport {
            lock: lock.to_owned(),
            step: (!step.is_empty()).then(|| step.to_owned()),
            waited_for: None,
            waiting_since: None,
            acquired_at: None,
            waited_ms: None,
            released_at: None,
            held_ms: None,
        }
    }

    fn is(&self, lock: &str, step: &str) -> bool {
        self.lock == lock && self.step.as_deref().unwrap_or("") == step
    }

    /// Where it stands, in words.
    fn state(&self) -> String {
        match (&self.acquired_at, &self.released_at) {
            (Some(_), Some(_)) => "released",
            (Some(_), None) => "held",
            (None, _) => "not acquired",
        }
        .to_owned()
    }
}

/// Applies one lock event to the run's list; other events change nothing.
pub(super) fn apply(locks: &mut Vec<LockReport>, event: &RunEvent, at: &str) {
    // The entry of this lock and step still under way (waiting, or held), else a new one.
    fn current<'l>(locks: &'l mut Vec<LockReport>, lock: &str, step: &str) -> &'l mut LockReport {
        let open = locks
            .iter()
            .rposition(|l| l.is(lock, step) && l.released_at.is_none());
        let index = open.unwrap_or_else(|| {
            locks.push(LockReport::new(lock, step));
            locks.len() - 1
        });
        &mut locks[index]
    }
    match event {
        RunEvent::LockWaiting(waiting) => {
            let report = current(locks, &waiting.lock, &waiting.step);
            report.waiting_since.get_or_insert_with(|| at.to_owned());
            report.waited_for = Some(waiting.held_by.clone());
        }
        RunEvent::LockAcquired(acquired) => {
            let report = current(locks, &acquired.lock, &acquired.step);
            report.acquired_at = Some(at.to_owned());
            report.waited_ms = Some(acquired.waited_ms);
        }
        RunEvent::LockReleased(released) => {
            let report = current(locks, &released.lock, &released.step);
            report.released_at = Some(at.to_owned());
            report.held_ms = Some(released.held_ms);
        }
        _ => {}
    }
}

/// The locks as text, for `runs show`.
pub(super) fn text(out: &mut String, locks: &[LockReport]) {
    for lock in locks {
        let step = lock
            .step
            .as_ref()
            .map(|s| format!(" (step {s})"))
            .unwrap_or_default();
        let _ = writeln!(out, "\nlock      {}{step}: {}", lock.lock, lock.state());
        if let (Some(holder), Some(since)) = (&lock.waited_for, &lock.waiting_since) {
            let _ = writeln!(out, "          waited from {since} for {holder}");
        }
        if let (Some(at), Some(waited)) = (&lock.acquired_at, lock.waited_ms) {
            let _ = writeln!(out, "          acquired {at} after {}", duration(waited));
        }
        if let (Some(at), Some(held)) = (&lock.released_at, lock.held_ms) {
            let _ = writeln!(out, "          released {at}, held {}", duration(held));
        }
    }
}

/// The locks as a Markdown table, for `runs show --format markdown`.
pub(super) fn markdown(out: &mut String, locks: &[LockReport]) {
    if locks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Locks\n\n| Lock | Step | Waited for | Acquired | Waited | Released | Held |\n|---|---|---|---|---|---|---|"
    );
    for lock in locks {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            cell(&lock.lock),
            lock.step
                .as_ref()
                .map(|s| format!("`{s}`"))
                .unwrap_or_default(),
            lock.waited_for
                .as_ref()
                .map(|h| cell(&h.to_string()))
                .unwrap_or_default(),
            lock.acquired_at.as_deref().unwrap_or(""),
            lock.waited_ms.map(duration).unwrap_or_default(),
            lock.released_at.as_deref().unwrap_or(""),
            lock.held_ms.map(duration).unwrap_or_default(),
        );
    }
}
