//! The web pages, rendered on the server.

use super::WebState;
use axum::Router;

pub fn routes() -> Router<WebState> {
    Router::new()
}
