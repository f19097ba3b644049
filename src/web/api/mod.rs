//! The JSON API under `/api/`: runs (list, show, live events, start), the operator's
//! controls and approvals, schedules, locks and the runbooks that may be started. Every
//! action goes through [`crate::app`] with the signed-in identity's name as who did it.

mod error;
mod runs;

pub use error::{ApiError, ErrorBody};

use super::WebState;
use super::auth::Viewer;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/runbooks", get(runs::runbooks))
        .route("/api/runs", axum::routing::post(runs::start))
}

/// Who the request is signed in as, and with which role.
async fn whoami(Viewer(identity): Viewer) -> Json<Value> {
    Json(json!({"name": identity.name, "role": identity.role}))
}
