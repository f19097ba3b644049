//! The web pages, rendered on the server: the runs, a run with its live timeline and
//! controls, the start forms, the schedules and the locks. Every page needs someone signed
//! in; operator-only controls are shown to operators only and refused by the handlers to
//! anyone else. The stylesheet and the one script are built into the binary.

mod assets;
mod dag_svg;
mod page;
mod run_actions;
mod run_page;
mod runs_list;
mod schedules_page;
mod start_form;

use super::WebState;
use axum::Router;
use axum::routing::{get, post};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(runs_list::runs_page))
        .route("/runs", get(runs_list::runs_page))
        .route("/runs/{id}", get(run_page::run_page))
        .route("/runs/{id}/timeline", get(run_page::timeline_fragment))
        .route("/runs/{id}/controls", get(run_page::controls_fragment))
        .route("/runs/{id}/report", get(run_page::report_page))
        .route("/runs/{id}/approve", post(run_actions::approve))
        .route("/runs/{id}/pause", post(run_actions::pause))
        .route("/runs/{id}/resume", post(run_actions::resume))
        .route("/runs/{id}/retry", post(run_actions::retry))
        .route("/runs/{id}/skip", post(run_actions::skip))
        .route("/runs/{id}/abort", post(run_actions::abort))
        .route("/runbooks", get(start_form::runbooks_page))
        .route(
            "/runbooks/{name}/start",
            get(start_form::start_page).post(start_form::start),
        )
        .route("/schedules", get(schedules_page::schedules_page))
        .route("/locks", get(schedules_page::locks_page))
        .route("/assets/app.css", get(assets::stylesheet))
        .route("/assets/live.js", get(assets::live_script))
}
