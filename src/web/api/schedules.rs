//! `GET /api/schedules` and `GET /api/locks`.

use super::ApiError;
use crate::runbook::diagnostic::display_path;
use crate::serve::{Missed, Schedule};
use crate::web::WebState;
use crate::web::auth::Viewer;
use axum::Json;
use axum::extract::{Query, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SchedulesQuery {
    /// How many next fires of each schedule [default: 5, at most 100].
    pub count: Option<usize>,
}

/// A schedule of serve, with its next windows.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleItem {
    pub name: String,
    pub runbook: String,
    pub cron: String,
    pub time_zone: String,
    /// How long each fire's maintenance window lasts (`2h`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `skip`, `queue` or `cancel`.
    pub overlap: String,
    /// `skip`, or `run_latest_within DURATION`.
    pub missed: String,
    pub enabled: bool,
    /// The next fires that no blackout suppresses, as `runbook schedules` lists them (none
    /// for a disabled schedule).
    pub next: Vec<Fire>,
    /// Blackouts not over yet, soonest first.
    pub blackouts: Vec<BlackoutItem>,
}

/// One fire: when, and when its window closes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fire {
    /// RFC 3339 with the schedule's offset.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlackoutItem {
    pub start: String,
    pub end: String,
    /// Where it comes from: `date 2026-12-24`, `freeze.ics: Year-end freeze`.
    pub what: String,
}

/// Serve's schedules, each with its next fires (blackouts applied) and its blackouts.
#[utoipa::path(get, path = "/api/schedules", tag = "schedules", params(SchedulesQuery),
    responses((status = 200, body = [ScheduleItem])))]
pub async fn schedules(
    _viewer: Viewer,
    State(state): State<WebState>,
    Query(query): Query<SchedulesQuery>,
) -> Json<Vec<ScheduleItem>> {
    let count = query.count.unwrap_or(5).clamp(1, 100);
    let now = Timestamp::now();
    Json(
        state
            .schedules
            .iter()
            .map(|schedule| describe(schedule, now, count))
            .collect(),
    )
}

fn describe(schedule: &Schedule, now: Timestamp, count: usize) -> ScheduleItem {
    let next = if schedule.enabled {
        schedule
            .upcoming(now, count)
            .into_iter()
            .map(|fire| Fire {
                at: fire.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                window_until: schedule
                    .window_until(fire.timestamp())
                    .map(|until| until.to_string()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut blackouts: Vec<BlackoutItem> = schedule
        .blackouts
        .iter()
        .filter(|b| b.end > now)
        .map(|b| BlackoutItem {
            start: b.start.to_string(),
            end: b.end.to_string(),
            what: b.what.clone(),
        })
        .collect();
    blackouts.sort_by(|a, b| a.start.cmp(&b.start));
    ScheduleItem {
        name: schedule.name.clone(),
        runbook: display_path(&schedule.runbook),
        cron: schedule.cron_text.clone(),
        time_zone: schedule.zone_name.clone(),
        window: schedule
            .window
            .map(|w| crate::runbook::Duration(w).to_string()),
        overlap: format!("{:?}", schedule.overlap).to_lowercase(),
        missed: match &schedule.missed {
            Missed::Skip => "skip".to_owned(),
            Missed::RunLatestWithin(within) => format!("run_latest_within {within}"),
        },
        enabled: schedule.enabled,
        next,
        blackouts,
    }
}

/// A lock held now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockItem {
    pub name: String,
    pub run_id: String,
    /// The step holding it; empty when the whole run holds it.
    pub step: String,
    pub runbook: String,
    /// The process holding it.
    pub owner: String,
    pub acquired_at: String,
    /// When its lease runs out unless renewed; absent while its run is parked waiting for
    /// an approval (kept without a lease).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The locks runs hold now, by name.
#[utoipa::path(get, path = "/api/locks", tag = "locks",
    responses((status = 200, body = [LockItem]), (status = 503, body = super::ErrorBody)))]
pub async fn locks(
    _viewer: Viewer,
    State(state): State<WebState>,
) -> Result<Json<Vec<LockItem>>, ApiError> {
    let held = crate::app::locks(state.store.as_ref()).await?;
    Ok(Json(
        held.locks
            .into_iter()
            .map(|lock| LockItem {
                name: lock.name,
                run_id: lock.holder.run_id,
                step: lock.holder.step,
                runbook: lock.holder.runbook,
                owner: lock.holder.owner.to_string(),
                acquired_at: lock.acquired_at,
                expires_at: lock.expires_at,
            })
            .collect(),
    ))
}
