//! The stylesheet and the little script of the pages, built into the binary: the pages
//! work offline and fetch nothing from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;

const APP_CSS: &str = include_str!("assets/app.css");
const LIVE_JS: &str = include_str!("assets/live.js");

/// The run report's rules (timeline, statuses) and the pages' own.
pub async fn stylesheet() -> impl IntoResponse {
    let css = format!("{}\n{APP_CSS}", crate::report::html::STYLE);
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        css,
    )
}

pub async fn live_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        LIVE_JS,
    )
}
