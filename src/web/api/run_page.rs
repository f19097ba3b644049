//! `GET /api/runs/{id}`: one run with its steps, what it waits for and what may be done to it.

use super::ApiError;
use super::runs::RunItem;
use crate::event::RunStatus;
use crate::report::run_report::{RunReport, shown_status};
use crate::web::WebState;
use crate::web::auth::Viewer;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

/// One run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub summary: RunItem,
    /// The run as `runbook runs show --format json` gives it: inputs, outputs, every step
    /// with its status, attempts, timings, outputs (secrets masked as in every report) and
    /// error, approvals, resumes, controls, locks, objectives.
    #[schema(value_type = Object)]
    pub report: RunReport,
    /// Approval steps waiting for an answer now.
    pub waiting: Vec<WaitingApproval>,
    /// Which controls apply to the run as it stands.
    pub controls: Controls,
}

/// An approval step waiting for an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingApproval {
    pub step: String,
    pub prompt: String,
    pub asked_at: String,
}

/// What may be done to the run now (an operator may; a viewer sees them too).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Controls {
    /// Approve or reject a waiting step.
    pub approve: bool,
    /// Park a live run.
    pub pause: bool,
    /// Continue a parked run in serve.
    pub resume: bool,
    /// Run again from a step (every failed step by default).
    pub retry: bool,
    /// Mark a failed or not-yet-run step done by hand.
    pub skip: bool,
    /// Stop it for good.
    pub abort: bool,
    /// Stop it and run the `undo` of every step that succeeded (a failed run too).
    pub undo: bool,
}

impl Controls {
    fn of(status: RunStatus, live: bool, waiting: bool) -> Controls {
        let parked = status.is_parked() && !live;
        Controls {
            approve: waiting,
            pause: live && status == RunStatus::Running,
            resume: parked,
            retry: !live && !matches!(status, RunStatus::Queued | RunStatus::Running),
            skip: !live
                && !matches!(
                    status,
                    RunStatus::Queued | RunStatus::Running | RunStatus::Succeeded
                ),
            abort: parked || (live && status == RunStatus::Running),
            undo: parked || status == RunStatus::Failed || (live && status == RunStatus::Running),
        }
    }
}

/// One run with its steps.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, body = RunDetail), (status = 404, body = super::ErrorBody)))]
pub async fn show(
    _viewer: Viewer,
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let details = crate::app::show(state.store.as_ref(), &id).await?;
    let report = RunReport::new(&details.summary, &details.events);
    let waiting: Vec<WaitingApproval> = report
        .approvals
        .iter()
        .filter(|a| a.approved.is_none())
        .map(|a| WaitingApproval {
            step: a.path.clone(),
            prompt: a.prompt.clone(),
            asked_at: a.asked_at.clone(),
        })
        .collect();
    let live = details
        .summary
        .owner
        .as_ref()
        .is_some_and(|owner| !owner.is_gone());
    let status = shown_status(&details.summary);
    let controls = Controls::of(status, live, !waiting.is_empty() && !status.is_over());
    Ok(Json(RunDetail {
        summary: RunItem::new(&details.summary),
        report,
        waiting,
        controls,
    }))
}
