use super::AppError;
use crate::event::Envelope;
use crate::store::{HeldLock, RunSummary, Store};

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

/// Every run of the store, newest first.
pub async fn list(store: &dyn Store) -> Result<RunList, AppError> {
    Ok(RunList {
        location: store.location(),
        runs: store.runs().await?,
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
