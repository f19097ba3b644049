use super::{claim, person};
use crate::app::execute::ClaimedRun;
use crate::app::{AppError, NothingTo, Notice, ResumeRequest};
use crate::event::{AbortRequest, RunEvent, RunStatus};
use crate::report::run_report::shown_status;
use crate::store::{Owner, Store};
use std::sync::Arc;

/// A run to stop for good, and undo when `undo` is set.
pub struct AbortRunRequest {
    pub run_id: String,
    /// Run the `undo` of every step that succeeded, in reverse order of the graph.
    pub undo: bool,
    /// Who aborts it; `$USER@host` when `None`.
    pub by: Option<String>,
    pub reason: String,
    /// Actions running at once, run-wide, in this process.
    pub max_parallel: Option<u32>,
}

/// What an abort did.
pub enum Aborted {
    /// The run is live in another process: the request is in the store, and that process
    /// picks it up within a second, stops, undoes the run if asked, and ends it.
    Asked { request: AbortRequest, owner: Owner },
    /// The run was stopped, and is claimed for this process to finish it: no step starts,
    /// the undo runs if asked, then `finally`.
    Claimed {
        request: AbortRequest,
        run: Box<ClaimedRun>,
    },
}

/// Aborts a run: parked, waiting, interrupted (or crashed), or failed when undoing it; a
/// live run through the store, as `pause` does.
pub async fn abort(
    store: Arc<dyn Store>,
    request: AbortRunRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<Aborted, AppError> {
    let asked = AbortRequest {
        by: person(request.by.clone()),
        reason: request.reason.clone(),
        undo: request.undo,
        asked_at: crate::event::timestamp::now(),
    };
    let summary = store.run(&request.run_id).await?;
    let live = summary.owner.clone().filter(|owner| !owner.is_gone());
    if let (RunStatus::Running, Some(owner)) = (summary.status, live) {
        let value = serde_json::to_string(&asked).expect("an abort request serializes");
        store
            .add_records(
                &AbortRequest::record(&request.run_id),
                &request.run_id,
                "",
                std::slice::from_ref(&value),
            )
            .await?;
        return Ok(Aborted::Asked {
            request: asked,
            owner,
        });
    }
    let shown = shown_status(&summary);
    // A failed run is over: only undoing it is left to do.
    let abortable = shown.is_parked() || (shown == RunStatus::Failed && request.undo);
    if !abortable {
        return Err(AppError::AlreadyEnded {
            run_id: request.run_id,
            status: shown,
            wanted: if request.undo {
                NothingTo::Undo
            } else {
                NothingTo::Abort
            },
        });
    }
    let claimed = claim(store.as_ref(), &request.run_id).await?;
    if let Err(error) = claimed
        .journal(store.as_ref(), RunEvent::RunAborted(asked.clone()))
        .await
    {
        let _ = store.release(&claimed.lease).await;
        return Err(error);
    }
    let resume = ResumeRequest {
        run_id: request.run_id.clone(),
        max_parallel: request.max_parallel,
        window_until: None,
    };
    // The claim is kept: nobody can take the run between the abort and its end.
    let run = crate::app::resume_claimed(store, claimed.lease, &resume, notice).await?;
    Ok(Aborted::Claimed {
        request: asked,
        run: Box::new(run),
    })
}
