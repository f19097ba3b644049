//! Runs: start one, list them, show one.

use super::ApiError;
use crate::web::WebState;
use crate::web::auth::{Operator, Viewer};
use crate::web::catalog::{self, CatalogRunbook};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, extract::rejection::JsonRejection};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The `name` of a runbook of the catalog (`GET /api/runbooks`).
    pub runbook: String,
    /// Values of its inputs by name: a JSON value of the input's type, or a string read as
    /// `runbook run --input NAME=TEXT` reads it. Never a secret.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Value,
}

/// A run started: queued for serve's workers.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: String,
    /// `queued`: a worker of serve runs it.
    pub status: String,
}

/// The runbooks that may be started here, with their typed inputs.
#[utoipa::path(get, path = "/api/runbooks", tag = "runbooks",
    responses((status = 200, body = [CatalogRunbook])))]
pub async fn runbooks(_viewer: Viewer, State(state): State<WebState>) -> Json<Vec<CatalogRunbook>> {
    let listed = tokio::task::spawn_blocking(move || catalog::list(&state))
        .await
        .unwrap_or_default();
    Json(listed)
}

/// Starts a run of a runbook of the catalog: its inputs are checked as `runbook run` checks
/// them, and it is queued for serve's workers.
#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = StartRun,
    responses(
        (status = 201, body = RunStarted),
        (status = 404, description = "no runbook of that name may be started", body = super::ErrorBody),
        (status = 422, description = "an input is wrong; `fields` says which", body = super::ErrorBody),
    ))]
pub async fn start(
    Operator(identity): Operator,
    State(state): State<WebState>,
    body: Result<Json<StartRun>, JsonRejection>,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let Json(request) = body.map_err(bad_body)?;
    let run_id = catalog::start_run(&state, &identity, &request.runbook, &request.inputs).await?;
    Ok((
        StatusCode::CREATED,
        Json(RunStarted {
            run_id,
            status: "queued".to_owned(),
        }),
    ))
}

/// A body that is not the JSON asked for: 422 (400 when it is not JSON at all).
pub fn bad_body(rejection: JsonRejection) -> ApiError {
    ApiError::new(rejection.status(), rejection.body_text())
}
