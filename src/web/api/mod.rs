//! The JSON API under `/api/`: runs (list, show, live events, start), approvals and the
//! operator's controls, schedules, locks and the runbooks that may be started. Every action
//! goes through [`crate::app`] with the signed-in identity's name as who did it. The OpenAPI
//! document is generated from the handlers and types here ([`openapi`]), served at
//! `/api/openapi.json` and kept in `schemas/openapi.json`.

mod controls;
mod error;
mod events;
mod executor;
mod run_page;
mod runs;
mod schedules;

pub use error::{ApiError, ErrorBody};
pub use executor::{Stopping, WebRuns, closing, in_serves_queue, own_store, run_in_serve};

use super::WebState;
use super::auth::Viewer;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use utoipa::OpenApi;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/runbooks", get(runs::runbooks))
        .route("/api/runs", get(runs::list).post(runs::start))
        .route("/api/runs/{id}", get(run_page::show))
        .route("/api/runs/{id}/events", get(events::events))
        .route("/api/runs/{id}/approve", post(controls::approve))
        .route("/api/runs/{id}/reject", post(controls::reject))
        .route("/api/runs/{id}/retry", post(controls::retry))
        .route("/api/runs/{id}/skip", post(controls::skip))
        .route("/api/runs/{id}/pause", post(controls::pause))
        .route("/api/runs/{id}/resume", post(controls::resume))
        .route("/api/runs/{id}/abort", post(controls::abort))
        .route("/api/schedules", get(schedules::schedules))
        .route("/api/locks", get(schedules::locks))
}

/// Who the request is signed in as, and with which role.
#[utoipa::path(get, path = "/api/whoami", tag = "auth",
    responses((status = 200, description = "`{name, role}`", body = Object),
        (status = 401, body = ErrorBody)))]
async fn whoami(Viewer(identity): Viewer) -> Json<Value> {
    Json(json!({"name": identity.name, "role": identity.role}))
}

/// The OpenAPI document of this API (no sign-in needed).
async fn openapi_json() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi(),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runbook serve HTTP API",
        description = "Runs, their live events, approvals and controls, schedules and locks. \
            Sign in with `Authorization: Bearer TOKEN` (a token of the users file); viewers \
            read, operators also start, approve and control. Errors are `{error, fields?}`.",
        license(name = "see the repository"),
    ),
    paths(
        whoami,
        runs::runbooks,
        runs::start,
        runs::list,
        run_page::show,
        events::events,
        controls::approve,
        controls::reject,
        controls::retry,
        controls::skip,
        controls::pause,
        controls::resume,
        controls::abort,
        schedules::schedules,
        schedules::locks,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, as served and as checked in under `schemas/openapi.json`. The
/// version is left out of it, so that the checked-in file changes only with the API.
pub fn openapi() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = "1".to_owned();
    let mut text = doc
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
