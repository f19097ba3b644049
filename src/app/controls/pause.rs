use super::person;
use crate::app::AppError;
use crate::event::{PauseRequest, RunStatus};
use crate::report::run_report::shown_status;
use crate::store::{Owner, Store};

/// A live run to pause.
pub struct PauseRunRequest {
    pub run_id: String,
    /// Interrupt the running steps too, rather than let them finish.
    pub now: bool,
    /// Who pauses it; `$USER@host` when `None`.
    pub by: Option<String>,
    pub reason: String,
}

/// A pause request the store holds, and the process that will pick it up.
pub struct PauseAsked {
    pub request: PauseRequest,
    pub owner: Owner,
}

/// Asks the process that runs a run to pause it: the request goes through the store, and
/// that process picks it up within a second, journals it, and parks the run.
pub async fn pause(store: &dyn Store, request: PauseRunRequest) -> Result<PauseAsked, AppError> {
    let summary = store.run(&request.run_id).await?;
    let live = summary.owner.clone().filter(|owner| !owner.is_gone());
    let (RunStatus::Running, Some(owner)) = (summary.status, live) else {
        return Err(AppError::NotLive {
            run_id: request.run_id,
            status: shown_status(&summary),
        });
    };
    let asked = PauseRequest {
        by: person(request.by),
        reason: request.reason,
        now: request.now,
        asked_at: crate::event::timestamp::now(),
    };
    let value = serde_json::to_string(&asked).expect("a pause request serializes");
    store
        .add_records(
            &PauseRequest::record(&request.run_id),
            &request.run_id,
            "",
            std::slice::from_ref(&value),
        )
        .await?;
    Ok(PauseAsked {
        request: asked,
        owner,
    })
}
