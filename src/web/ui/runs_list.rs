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
use std::collections::BTreeSet;
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
    #[serde(default)]
    page: Option<usize>,
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
    let all = match app::list(state.store.as_ref(), &RunFilter::default()).await {
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
    let runbooks: BTreeSet<&str> = all.iter().map(|run| run.runbook.as_str()).collect();
    let filter = RunFilter {
        runbook: Some(query.runbook.clone()).filter(|name| !name.is_empty()),
        status,
        since,
        limit: None,
    };
    let shown: Vec<_> = all.iter().filter(|run| filter.admits(run)).collect();
    let pages = shown.len().div_ceil(PAGE_SIZE).max(1);
    let number = query.page.unwrap_or(1).clamp(1, pages);

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
    filters(&mut body, &query, &runbooks);
    let _ = writeln!(
        body,
        "<p id=\"count\">{} run(s){}, newest first.</p>",
        shown.len(),
        if shown.len() == all.len() {
            String::new()
        } else {
            format!(" of {}", all.len())
        }
    );
    body.push_str(
        "<table class=\"runs\">\n<caption class=\"hint\">Runs</caption>\n<thead><tr><th scope=\"col\">Run</th>\
         <th scope=\"col\">Runbook</th><th scope=\"col\">Status</th><th scope=\"col\">Created</th>\
         <th scope=\"col\">Ended</th></tr></thead>\n<tbody>\n",
    );
    for run in shown.iter().skip((number - 1) * PAGE_SIZE).take(PAGE_SIZE) {
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
    pagination(&mut body, &query, number, pages);
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

fn filters(body: &mut String, query: &RunsQuery, runbooks: &BTreeSet<&str>) {
    body.push_str(
        "<form method=\"get\" action=\"/runs\" class=\"filters\" role=\"search\" aria-label=\"Filter the runs\">\n\
         <div><label for=\"f-runbook\">Runbook</label><select id=\"f-runbook\" name=\"runbook\">\
         <option value=\"\">any</option>",
    );
    for name in runbooks {
        let selected = if *name == query.runbook {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{n}\"{selected}>{n}</option>",
            n = escape(name)
        );
    }
    body.push_str(
        "</select></div>\n<div><label for=\"f-status\">Status</label><select id=\"f-status\" \
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

fn pagination(body: &mut String, query: &RunsQuery, number: usize, pages: usize) {
    if pages <= 1 {
        return;
    }
    let at = |n: usize| {
        let n = n.to_string();
        link(
            "/runs",
            &[
                ("runbook", &query.runbook),
                ("status", &query.status),
                ("since", &query.since),
                ("page", &n),
            ],
        )
    };
    body.push_str("<nav class=\"pages\" aria-label=\"Pages of runs\">");
    if number > 1 {
        let _ = write!(
            body,
            "<a href=\"{}\" rel=\"prev\">← Newer</a>",
            at(number - 1)
        );
    }
    let _ = write!(body, "<span>Page {number} of {pages}</span>");
    if number < pages {
        let _ = write!(
            body,
            "<a href=\"{}\" rel=\"next\">Older →</a>",
            at(number + 1)
        );
    }
    body.push_str("</nav>\n");
}
