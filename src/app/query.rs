use super::AppError;
use crate::event::{Envelope, RunStatus};
use crate::report::run_report::shown_status;
use crate::store::{HeldLock, RunSummary, Store};
use jiff::Timestamp;

/// The runs of a store, newest first.
pub struct RunList {
    /// Where the store is, for messages.
    pub location: String,
    pub runs: Vec<RunSummary>,
}

/// One run: its summary and every event of its journal.
pub struct RunDetails {
    pub summary: RunSummary,
    pub events: Vec<Envelope>,
}

/// Which runs a list shows; the default shows them all.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of the runbook with this `name`.
    pub runbook: Option<String>,
    /// Only runs with this status, as lists show it (a `running` run whose owner is gone is
    /// `interrupted`).
    pub status: Option<RunStatus>,
    /// Only runs created at or after this moment.
    pub since: Option<Timestamp>,
    /// At most this many runs: the newest.
    pub limit: Option<usize>,
}

impl RunFilter {
    pub fn admits(&self, run: &RunSummary) -> bool {
        let since = self.since.map(|since| since.as_millisecond());
        self.runbook
            .as_ref()
            .is_none_or(|name| &run.runbook == name)
            && self.status.is_none_or(|status| shown_status(run) == status)
            && since.is_none_or(|since| {
                run.created_at
                    .parse::<Timestamp>()
                    .is_ok_and(|created| created.as_millisecond() >= since)
            })
    }
}

/// The runs of the store that `filter` admits, newest first.
pub async fn list(store: &dyn Store, filter: &RunFilter) -> Result<RunList, AppError> {
    let runs = store.runs().await?;
    Ok(RunList {
        location: store.location(),
        runs: runs
            .into_iter()
            .filter(|run| filter.admits(run))
            .take(filter.limit.unwrap_or(usize::MAX))
            .collect(),
    })
}

/// One run, for a report.
pub async fn show(store: &dyn Store, run_id: &str) -> Result<RunDetails, AppError> {
    Ok(RunDetails {
        summary: store.run(run_id).await?,
        events: store.events(run_id).await?,
    })
}

/// The locks held in a store, by name.
pub struct LockList {
    /// Where the store is, for messages.
    pub location: String,
    pub locks: Vec<HeldLock>,
}

/// Every lock held now: who holds it, since when, until when.
pub async fn locks(store: &dyn Store) -> Result<LockList, AppError> {
    Ok(LockList {
        location: store.location(),
        locks: store.locks().await?,
    })
}
