use super::AppError;
use crate::event::{Envelope, RunStatus};
use crate::report::run_report::shown_status;
use crate::store::{HeldLock, RunSummary, RunsPage, Store};
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
    /// Only runs older than this one (newest first): the next page after a run listed.
    pub after: Option<String>,
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
/// Runs are read a page at a time, so that a short list of a large store reads little more
/// than what it shows; the status and the time are checked here, as lists show them.
pub async fn list(store: &dyn Store, filter: &RunFilter) -> Result<RunList, AppError> {
    let wanted = filter.limit.unwrap_or(usize::MAX);
    // A page a little larger than asked for: most filters admit most runs.
    let page_size = u32::try_from(wanted.saturating_add(1).clamp(100, 2_000)).unwrap_or(2_000);
    let mut page = RunsPage {
        runbook: filter.runbook.clone(),
        after: filter.after.clone(),
        limit: page_size,
    };
    let mut runs = Vec::new();
    while runs.len() < wanted {
        let read = store.runs_page(&page).await?;
        let last_page = read.len() < page_size as usize;
        page.after = read.last().map(|run| run.id.clone());
        runs.extend(
            read.into_iter()
                .filter(|run| filter.admits(run))
                .take(wanted - runs.len()),
        );
        if last_page {
            break;
        }
    }
    Ok(RunList {
        location: store.location(),
        runs,
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
