//! What every front end does with runs: start, resume, approve, list and show, as typed
//! functions. They print nothing and pick no exit code; a run's events go to the
//! [`EventSink`](crate::event::EventSink) the caller gives (a terminal's progress, JSON lines,
//! or an [`EventChannel`] a server reads), and what is worth telling a person besides the
//! events comes as [`Notice`]s. The command line in `cli/` is one caller; a server is another.

mod approve;
mod controls;
mod error;
mod event_channel;
mod execute;
mod query;
mod resume;
mod start;

pub use approve::{ApprovalRecorded, ApproveRequest, approve};
pub use controls::{
    AbortRunRequest, Aborted, EditRequest, Edited, EditedStep, PauseAsked, PauseRunRequest,
    Retried, RetryRequest, SkipRequest, Standing, StepSkipped, abort, edit, pause, retry, skip,
};
pub use error::{AppError, NothingTo, Notice};
pub use event_channel::EventChannel;
pub use execute::{ClaimedRun, RunResult, Watch};
pub use query::{LockList, RunDetails, RunFilter, RunList, list, locks, show};
pub use resume::{ResumeRequest, resume, resume_claimed, stored_bundle};
pub use start::{EnqueueRequest, StartRequest, enqueue, load, sources, start};

use crate::store::{Store, StoreLocation};
use std::sync::Arc;

/// Opens the existing store at `url` (or `RUNBOOK_STORE`'s default). Only starting a run
/// creates a store: reading or answering runs in a new one would only hide a mistyped URL.
pub async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, AppError> {
    let location = StoreLocation::resolve(url).map_err(AppError::StoreLocation)?;
    crate::store::open_existing(&location)
        .await
        .map_err(AppError::Store)
}

#[cfg(test)]
mod tests;

/// Who this process acts for, as the journal records who started, approved or controlled a
/// run: `$USER@host` (`unknown@host` without a user name in the environment).
pub fn this_user() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{user}@{}", crate::store::owner::this_host())
}
