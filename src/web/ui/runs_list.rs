//! `/` and `/runs`: the runs of the store, newest first, filtered by runbook, status and
//! start time, a page at a time.

use super::page::{PageUser, Section, escape, link, page, problem, status_badge};
use crate::app::{self, RunFilter};
use crate::event::RunStatus;
use crate::report::run_report::shown_status;
use crate::web::WebState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write;

/// Runs a page shows.
pub const PAGE_SIZE: usize = 50;

/// The statuses the filter offers, as lists show them.
const STATUSES: [RunStatus; 9] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Waiting,
    RunStatus::Interrupted,
    RunStatus::Parked,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Undone,
];

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    runbook: String,
    #[serde(default)]
    status: String,
    /// `2026-12-06` (from the start of that day, UTC) or an RFC 3339 moment.
    #[serde(default)]
    since: String,
    /// The page starts after this run (the last of the previous page).
    #[serde(default)]
    before: String,
}

pub async fn runs_page(
    user: PageUser,
    State(state): State<WebState>,
    Query(query): Query<RunsQuery>,
) -> Response {
    let mut problems = Vec::new();
    let status = match query.status.as_str() {
        "" => None,
        name => match RunStatus::from_name(name) {
            Some(status) => Some(status),
            None => {
                problems.push(format!("`{name}` is not a status"));
                None
            }
        },
    };
    let since = match parse_since(&query.since) {
        Ok(since) => since,
        Err(message) => {
            problems.push(message);
            None
        }
    };
    let before = Some(query.before.clone()).filter(|id| !id.is_empty());
    let filter = RunFilter {
        runbook: Some(query.runbook.clone()).filter(|name| !name.is_empty()),
        status,
        since,
        // One more than a page: whether there are older runs.
        limit: Some(PAGE_SIZE + 1),
        after: before.clone(),
    };
    // A page of the store, read from the cursor on: the page costs its own runs, however
    // many the store holds.
    let mut shown = match app::list(state.store.as_ref(), &filter).await {
        Ok(list) => list.runs,
        Err(error) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                &user,
                Section::Runs,
                &format!("cannot read the runs: {error}"),
                "/runs",
            );
        }
    };
    let older = shown.len() > PAGE_SIZE;
    shown.truncate(PAGE_SIZE);

    let mut body = String::with_capacity(16 * 1024);
    if user.may_operate() {
        body.push_str("<p><a href=\"/runbooks\">Start a run…</a></p>\n");
    }
    for message in &problems {
        let _ = writeln!(
            body,
            "<p class=\"problem\" role=\"alert\">{}</p>",
            escape(message)
        );
    }
    filters(&mut body, &query);
    let _ = writeln!(
        body,
        "<p id=\"count\">{} run(s){}, newest first.</p>",
        shown.len(),
        if before.is_some() {
            " older than the previous page"
        } else {
            ""
        },
    );
    body.push_str(
        "<table class=\"runs\">\n<caption class=\"hint\">Runs</caption>\n<thead><tr><th scope=\"col\">Run</th>\
         <th scope=\"col\">Runbook</th><th scope=\"col\">Status</th><th scope=\"col\">Created</th>\
         <th scope=\"col\">Ended</th></tr></thead>\n<tbody>\n",
    );
    for run in &shown {
        let _ = writeln!(
            body,
            "<tr data-run=\"{id}\"><td><a href=\"/runs/{href}\"><code>{id}</code></a></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&run.runbook),
            status_badge(shown_status(run).name()),
            escape(&run.created_at),
            escape(run.ended_at.as_deref().unwrap_or("–")),
            id = escape(&run.id),
            href = escape(&encode(&run.id)),
        );
    }
    body.push_str("</tbody>\n</table>\n");
    pagination(
        &mut body,
        &query,
        before.is_some(),
        older
            .then(|| shown.last().map(|run| run.id.as_str()))
            .flatten(),
    );
    page(&user, Section::Runs, "Runs", &body).into_response()
}

/// A path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn parse_since(text: &str) -> Result<Option<jiff::Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(at));
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| Some(zoned.timestamp()))
        .ok_or_else(|| {
            format!("`{text}` is not a date (2026-12-06) or a moment (2026-12-06T02:00:00Z)")
        })
}

fn filters(body: &mut String, query: &RunsQuery) {
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/runs\" class=\"filters\" role=\"search\" aria-label=\"Filter the runs\">\n\
         <div><label for=\"f-runbook\">Runbook</label><input id=\"f-runbook\" name=\"runbook\" \
         value=\"{}\" placeholder=\"any\"></div>\n",
        escape(&query.runbook)
    );
    body.push_str(
        "<div><label for=\"f-status\">Status</label><select id=\"f-status\" \
         name=\"status\"><option value=\"\">any</option>",
    );
    for status in STATUSES {
        let selected = if status.name() == query.status {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{n}\"{selected}>{n}</option>",
            n = status.name()
        );
    }
    let _ = writeln!(
        body,
        "</select></div>\n<div><label for=\"f-since\">Created since</label>\
         <input id=\"f-since\" name=\"since\" value=\"{}\" placeholder=\"2026-12-06\" \
         aria-describedby=\"f-since-hint\"><p class=\"hint\" id=\"f-since-hint\">A date (UTC) \
         or a moment</p></div>\n<div><button type=\"submit\">Filter</button> \
         <a href=\"/runs\">Clear</a></div>\n</form>",
        escape(&query.since)
    );
}

/// Newest first, a page after another: back to the newest, or on to the older runs
/// after the last one shown (`before` is that run's id).
fn pagination(body: &mut String, query: &RunsQuery, paged: bool, older_than: Option<&str>) {
    if !paged && older_than.is_none() {
        return;
    }
    let at = |before: &str| {
        link(
            "/runs",
            &[
                ("runbook", &query.runbook),
                ("status", &query.status),
                ("since", &query.since),
                ("before", before),
            ],
        )
    };
    body.push_str("<nav class=\"pages\" aria-label=\"Pages of runs\">");
    if paged {
        let _ = write!(body, "<a href=\"{}\" rel=\"first\">← Newest</a>", at(""));
    }
    if let Some(last) = older_than {
        let _ = write!(body, "<a href=\"{}\" rel=\"next\">Older →</a>", at(last));
    }
    body.push_str("</nav>\n");
}
