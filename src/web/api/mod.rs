//! The JSON API under `/api/`.

use super::WebState;
use super::auth::Viewer;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<WebState> {
    Router::new().route("/api/whoami", get(whoami))
}

/// Who the request is signed in as, and with which role.
async fn whoami(Viewer(identity): Viewer) -> Json<Value> {
    Json(json!({"name": identity.name, "role": identity.role}))
}
