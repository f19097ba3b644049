//! `/metrics`, in Prometheus text format.

use super::WebState;
use axum::Router;

pub fn routes() -> Router<WebState> {
    Router::new()
}
