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

/// What `GET /api/runs` selects.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of the runbook with this `name`.
    pub runbook: Option<String>,
    /// Only runs with this status, as `runbook runs list` shows it (`running`, `succeeded`,
    /// `failed`, `cancelled`, `interrupted`, `waiting`, `parked`, `undone`, `queued`).
    pub status: Option<String>,
    /// Only runs created at or after this moment (RFC 3339).
    pub since: Option<String>,
    /// At most this many runs [default: 50, at most 500].
    pub limit: Option<usize>,
    /// Only runs older than this one (a run id: the `next` of the previous page).
    pub before: Option<String>,
}

/// One run, as `runbook runs list` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunItem {
    pub id: String,
    /// The runbook's `name`.
    pub runbook: String,
    pub file: String,
    /// As `runbook runs list` shows it: a `running` run whose process is gone is
    /// `interrupted`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The process that runs it now, if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunItem>,
    /// The `before` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl RunItem {
    pub fn new(summary: &crate::store::RunSummary) -> RunItem {
        RunItem {
            id: summary.id.clone(),
            runbook: summary.runbook.clone(),
            file: summary.file.clone(),
            status: crate::report::run_report::shown_status(summary)
                .name()
                .to_owned(),
            created_at: summary.created_at.clone(),
            updated_at: summary.updated_at.clone(),
            ended_at: summary.ended_at.clone(),
            duration_ms: summary.duration_ms,
            owner: summary
                .owner
                .as_ref()
                .filter(|o| !o.is_gone())
                .map(|o| o.to_string()),
        }
    }
}

/// The most runs one page holds.
const MAX_PAGE: usize = 500;

/// The runs of the store, newest first, a page at a time.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, body = RunPage), (status = 422, body = super::ErrorBody)))]
pub async fn list(
    _viewer: Viewer,
    State(state): State<WebState>,
    query: Result<axum::extract::Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    let status = match &query.status {
        None => None,
        Some(name) => Some(
            serde_json::from_value::<crate::event::RunStatus>(Value::String(name.clone()))
                .map_err(|_| {
                    ApiError::field(
                        "status",
                        format!(
                            "`{name}` is not a run status: running, succeeded, failed, \
                             cancelled, interrupted, waiting, parked, undone or queued"
                        ),
                    )
                })?,
        ),
    };
    let since = match &query.since {
        None => None,
        Some(text) => Some(text.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::field(
                "since",
                format!("`{text}` is not an RFC 3339 moment: write 2026-12-06T01:00:00Z"),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = crate::app::RunFilter {
        runbook: query.runbook.clone(),
        status,
        since,
        limit: None,
    };
    let all = crate::app::list(state.store.as_ref(), &filter).await?;
    let mut runs = all.runs.iter();
    if let Some(before) = &query.before {
        // Newest first: the page starts after the cursor's run.
        if !all.runs.iter().any(|r| &r.id == before) {
            return Err(ApiError::field(
                "before",
                format!("no run `{before}` among the runs selected"),
            ));
        }
        for run in runs.by_ref() {
            if &run.id == before {
                break;
            }
        }
    }
    let page: Vec<RunItem> = runs.by_ref().take(limit).map(RunItem::new).collect();
    let next = match runs.next() {
        Some(_) => page.last().map(|r| r.id.clone()),
        None => None,
    };
    Ok(Json(RunPage { runs: page, next }))
}
