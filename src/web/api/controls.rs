//! The writes on a run: approve or reject a waiting step, and the operator's controls
//! (retry, skip, pause, resume, abort). Each goes through [`crate::app`] exactly as the
//! command line's `runbook approve`, `retry`, ... do, with the signed-in identity's name as
//! who did it; a control that claims the run (retry, resume, abort of a parked run) runs it
//! on in serve's process.

use super::runs::bad_body;
use super::{ApiError, Stopping, closing, in_serves_queue, own_store, run_in_serve};
use crate::app::{self, AbortRunRequest, Aborted, ApproveRequest, Notice, ResumeRequest};
use crate::web::WebState;
use crate::web::auth::{Identity, Operator};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An answer to an approval step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The approval step's path, as the run's `waiting` lists it.
    pub step: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Run again from a step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// The step to run again, with everything downstream of it (an item of a `for_each`
    /// step: `step[3]`) [default: every failed step].
    #[serde(default)]
    pub from: Option<String>,
    /// Inputs to change, as `runbook retry --input NAME=TEXT` reads them.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Why, kept in the journal.
    #[serde(default)]
    pub reason: String,
}

/// Mark a step done by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Skip {
    /// A failed step, or one that has not run.
    pub step: String,
    /// The outputs its dependents read, by the names the step declares.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub outputs: Map<String, Value>,
    /// Why, kept in the journal.
    #[serde(default)]
    pub reason: String,
}

/// Park a live run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    /// Interrupt the running steps too (they run again on resume) rather than let them
    /// finish.
    #[serde(default)]
    pub now: bool,
    /// Why, kept in the journal.
    #[serde(default)]
    pub reason: String,
}

/// Stop a run for good.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Abort {
    /// Run the `undo` of every step that succeeded, in reverse order.
    #[serde(default)]
    pub undo: bool,
    /// Why, kept in the journal.
    #[serde(default)]
    pub reason: String,
}

/// What a write did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub run_id: String,
    /// What happened, for a person: `approved go_ahead`, `paused: asked pid 41 on db1`.
    pub message: String,
    /// Who did it, as journaled.
    pub by: String,
}

fn reason_given(reason: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::field(
            "reason",
            "a reason is required: it is kept in the journal with who did it",
        ));
    }
    Ok(reason.to_owned())
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(bad_body)
}

fn log(identity: &Identity, run_id: &str, what: &str) {
    tracing::info!(run_id = %run_id, by = %identity.name, "{what} (web)");
}

fn notice(run_id: &str) -> impl Fn(Notice) + Send + Sync + use<> {
    let run_id = run_id.to_owned();
    move |notice| tracing::info!(run_id = %run_id, "{notice}")
}

/// Approves a step that waits for an answer.
#[utoipa::path(post, path = "/api/runs/{id}/approve", tag = "controls", request_body = Answer,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, description = "the run has ended, or the step is not waiting or was answered", body = super::ErrorBody)))]
pub async fn approve(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    answer: Result<Json<Answer>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    answer_step(identity, state, id, body(answer)?, true).await
}

/// Rejects a step that waits for an answer: the step fails (its `fallback` runs, if any).
#[utoipa::path(post, path = "/api/runs/{id}/reject", tag = "controls", request_body = Answer,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn reject(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    answer: Result<Json<Answer>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    answer_step(identity, state, id, body(answer)?, false).await
}

async fn answer_step(
    identity: Identity,
    state: WebState,
    id: String,
    answer: Answer,
    approved: bool,
) -> Result<Json<Done>, ApiError> {
    let request = ApproveRequest {
        run_id: id.clone(),
        step: answer.step.clone(),
        approved,
        by: Some(identity.name.clone()),
        comment: answer.comment.filter(|c| !c.trim().is_empty()),
    };
    let recorded = app::approve(state.store.as_ref(), request).await?;
    let verb = if approved { "approved" } else { "rejected" };
    log(&identity, &id, &format!("{verb} {}", answer.step));
    let message = match &recorded.picked_up_by {
        Some(owner) => format!("{verb} {}; {owner} runs the run and goes on", answer.step),
        None => match resume_if_served(&state, &id, &identity.name).await {
            true => format!("{verb} {}; serve resumes the run", answer.step),
            false => format!(
                "{verb} {}; the run is parked: resume it to go on",
                answer.step
            ),
        },
    };
    Ok(Json(Done {
        run_id: id,
        message,
        by: recorded.decision.by,
    }))
}

/// After an answer to a parked run of serve's queue, resumes it here at once (serve would
/// within its next look for answers). A run another process took meanwhile is left to it.
async fn resume_if_served(state: &WebState, run_id: &str, by: &str) -> bool {
    if !in_serves_queue(state, run_id).await || state.runs.stopping() {
        return false;
    }
    let request = ResumeRequest {
        run_id: run_id.to_owned(),
        max_parallel: None,
        window_until: None,
    };
    let Ok(store) = own_store(state).await else {
        return false;
    };
    match app::resume(store.clone(), request, &notice(run_id)).await {
        Ok(run) => state.runs.execute(run.asked_by(by)).is_ok(),
        Err(error) => {
            let _ = store.close().await;
            // Another worker of serve took it first (woken by the answer): it goes on there.
            matches!(
                error,
                app::AppError::Store(crate::store::StoreError::Owned { .. })
            )
        }
    }
}

/// Runs a stopped run again from a step (every failed step by default) and everything
/// downstream of it, in serve.
#[utoipa::path(post, path = "/api/runs/{id}/retry", tag = "controls", request_body = Retry,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn retry(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    request: Result<Json<Retry>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let request = body(request)?;
    let reason = reason_given(&request.reason)?;
    not_stopping(&state)?;
    let inputs = request
        .inputs
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => (name, text),
            other => (name, other.to_string()),
        })
        .collect();
    let store = own_store(&state).await?;
    let retried = app::retry(
        store.clone(),
        app::RetryRequest {
            run_id: id.clone(),
            from: request.from.into_iter().collect(),
            inputs,
            by: Some(identity.name.clone()),
            reason,
            max_parallel: None,
        },
        &notice(&id),
    )
    .await
    .map_err(|error| closing(&store, error))?;
    let from = retried.event.from.join(", ");
    run_in_serve(&state, &id, retried.run, &identity.name).await?;
    log(&identity, &id, &format!("retried from {from}"));
    Ok(Json(Done {
        run_id: id,
        message: format!("runs again from {from}"),
        by: identity.name,
    }))
}

/// Marks a failed or not-yet-run step of a stopped run done by hand; resume continues.
#[utoipa::path(post, path = "/api/runs/{id}/skip", tag = "controls", request_body = Skip,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn skip(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    request: Result<Json<Skip>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let request = body(request)?;
    let reason = reason_given(&request.reason)?;
    let skipped = app::skip(
        state.store.as_ref(),
        app::SkipRequest {
            run_id: id.clone(),
            step: request.step.clone(),
            outputs: request.outputs,
            by: Some(identity.name.clone()),
            reason,
        },
    )
    .await?;
    log(&identity, &id, &format!("skipped {}", request.step));
    Ok(Json(Done {
        run_id: id,
        message: format!(
            "{} is marked done; the run is {}: resume it to go on",
            request.step,
            skipped.status.name()
        ),
        by: skipped.by,
    }))
}

/// Asks the process that runs a live run to park it (within a second).
#[utoipa::path(post, path = "/api/runs/{id}/pause", tag = "controls", request_body = Pause,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 202, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, description = "no live process runs it", body = super::ErrorBody)))]
pub async fn pause(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    request: Result<Json<Pause>, JsonRejection>,
) -> Result<(StatusCode, Json<Done>), ApiError> {
    let request = body(request)?;
    let reason = reason_given(&request.reason)?;
    let asked = app::pause(
        state.store.as_ref(),
        app::PauseRunRequest {
            run_id: id.clone(),
            now: request.now,
            by: Some(identity.name.clone()),
            reason,
        },
    )
    .await?;
    log(&identity, &id, "asked to pause");
    Ok((
        StatusCode::ACCEPTED,
        Json(Done {
            run_id: id,
            message: format!("asked {} to pause the run", asked.owner),
            by: asked.request.by,
        }),
    ))
}

/// Resumes a parked run (interrupted, paused, waiting with an answer, parked by its window)
/// in serve, from its journal.
#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "controls",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 202, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, description = "the run has ended, or a live process runs it", body = super::ErrorBody)))]
pub async fn resume(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Done>), ApiError> {
    not_stopping(&state)?;
    let summary = state.store.run(&id).await?;
    let status = crate::report::run_report::shown_status(&summary);
    if !status.is_parked() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {id} is {}: only a parked run (interrupted, waiting, parked) can be resumed",
                status.name()
            ),
        ));
    }
    let request = ResumeRequest {
        run_id: id.clone(),
        max_parallel: None,
        window_until: None,
    };
    let store = own_store(&state).await?;
    let run = app::resume(store.clone(), request, &notice(&id))
        .await
        .map_err(|error| closing(&store, error))?;
    run_in_serve(&state, &id, run, &identity.name).await?;
    log(&identity, &id, "resumed");
    Ok((
        StatusCode::ACCEPTED,
        Json(Done {
            run_id: id,
            message: "resumed in serve".to_owned(),
            by: identity.name,
        }),
    ))
}

/// Stops a run for good (a live one within a second), running the `undo` of every step
/// that succeeded when asked.
#[utoipa::path(post, path = "/api/runs/{id}/abort", tag = "controls", request_body = Abort,
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 202, body = Done), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn abort(
    Operator(identity): Operator,
    State(state): State<WebState>,
    Path(id): Path<String>,
    request: Result<Json<Abort>, JsonRejection>,
) -> Result<(StatusCode, Json<Done>), ApiError> {
    let request = body(request)?;
    let reason = reason_given(&request.reason)?;
    not_stopping(&state)?;
    let store = own_store(&state).await?;
    let aborted = app::abort(
        store.clone(),
        AbortRunRequest {
            run_id: id.clone(),
            undo: request.undo,
            by: Some(identity.name.clone()),
            reason,
            max_parallel: None,
        },
        &notice(&id),
    )
    .await
    .map_err(|error| closing(&store, error))?;
    let what = if request.undo {
        "abort and undo"
    } else {
        "abort"
    };
    let (message, by) = match aborted {
        Aborted::Asked { request, owner } => {
            (format!("asked {owner} to {what} the run"), request.by)
        }
        Aborted::Claimed { request, run } => {
            run_in_serve(&state, &id, *run, &identity.name).await?;
            (format!("{what}: serve ends the run"), request.by)
        }
    };
    log(&identity, &id, what);
    Ok((
        StatusCode::ACCEPTED,
        Json(Done {
            run_id: id,
            message,
            by,
        }),
    ))
}

/// A store of its own for a run this request claims: the run closes it when it ends, as a
/// worker's run does (the server's own store stays open).
fn not_stopping(state: &WebState) -> Result<(), ApiError> {
    if state.runs.stopping() {
        return Err(Stopping.into());
    }
    Ok(())
}

impl From<Stopping> for ApiError {
    fn from(stopping: Stopping) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, stopping.to_string())
    }
}
