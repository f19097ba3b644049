//! `/runs/{id}`: one run. The live part (status, timeline, approvals, steps) is also served
//! alone at `/runs/{id}/timeline`, and the controls at `/runs/{id}/controls`: the page's
//! script fetches them again as the run's events arrive.

use super::dag_svg;
use super::page::{PageUser, Section, escape, page, problem, status_badge};
use super::runs_list::encode;
use crate::app;
use crate::event::{Envelope, RunStatus};
use crate::plan::Picture;
use crate::report::run_report::{RunReport, StepState};
use crate::web::WebState;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write;

/// A run as the page shows it.
pub struct LoadedRun {
    pub report: RunReport,
    pub events: Vec<Envelope>,
}

impl LoadedRun {
    pub async fn load(state: &WebState, run_id: &str) -> Result<LoadedRun, String> {
        let details = app::show(state.store.as_ref(), run_id)
            .await
            .map_err(|error| error.to_string())?;
        Ok(LoadedRun {
            report: RunReport::new(&details.summary, &details.events),
            events: details.events,
        })
    }

    fn status(&self) -> RunStatus {
        self.report.status
    }

    /// The approval steps waiting for an answer.
    fn waiting(&self) -> Vec<&crate::report::run_report::ApprovalReport> {
        self.report
            .approvals
            .iter()
            .filter(|approval| approval.approved.is_none())
            .filter(|approval| {
                self.report
                    .steps
                    .iter()
                    .any(|s| s.path == approval.path && s.status == StepState::Waiting)
            })
            .collect()
    }

    /// What the controls offer depends on only this: the page fetches them again when it
    /// changes.
    fn controls_key(&self) -> String {
        let waiting: Vec<&str> = self.waiting().iter().map(|a| a.path.as_str()).collect();
        format!("{}:{}", self.status().name(), waiting.join(","))
    }
}

/// A message after a control, chosen from fixed texts (nothing from the request is shown).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "started" => "The run is queued: a worker of serve starts it.",
        "approved" => "Approved: the run goes on.",
        "rejected" => "Rejected: the approval step fails.",
        "paused" => "Pause asked: the run parks once its running steps end.",
        "resumed" => "Resumed: serve runs the run again from where it stopped.",
        "abort-asked" => "Abort asked: the run stops.",
        "aborted" => "Aborted: serve ends the run (and undoes it when asked).",
        "retried" => "Retried: serve runs the steps again.",
        "skipped" => "Step marked done by hand.",
        _ => return None,
    })
}

pub async fn run_page(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let run = match LoadedRun::load(&state, &run_id).await {
        Ok(run) => run,
        Err(message) => {
            return problem(
                StatusCode::NOT_FOUND,
                &user,
                Section::Runs,
                &message,
                "/runs",
            );
        }
    };
    let mut body = String::with_capacity(64 * 1024);
    if let Some(text) = done_text(&done.done) {
        let _ = writeln!(
            body,
            "<p class=\"done\" role=\"status\"><span aria-hidden=\"true\">✓ </span>{text}</p>"
        );
    }
    body.push_str(&run_body(&user, &run));
    let title = format!("Run {} of {}", run.report.id, run.report.runbook);
    page(&user, Section::Runs, &title, &body).into_response()
}

/// The page's content below its title (also shown, with a message, after a control
/// that was refused).
pub fn run_body(user: &PageUser, run: &LoadedRun) -> String {
    let report = &run.report;
    let mut body = String::with_capacity(64 * 1024);
    let _ = writeln!(
        body,
        "<table class=\"facts\">\n<tr><th scope=\"row\">Runbook</th><td><code>{}</code> ({})</td></tr>\n\
         <tr><th scope=\"row\">Run</th><td><code id=\"run-id\">{}</code></td></tr>\n\
         <tr><th scope=\"row\">Started</th><td>{}{}</td></tr>\n</table>",
        escape(&report.runbook),
        escape(&report.file),
        escape(&report.id),
        escape(&report.created_at),
        report
            .started_by
            .as_ref()
            .map(|by| format!(" by {}", escape(by)))
            .unwrap_or_default(),
    );
    body.push_str(&controls(user, run));
    // Outside the live part, which is replaced: says how the page follows the run.
    body.push_str("<p class=\"live-state\" id=\"live-state\"></p>\n");
    body.push_str(&live(run));
    body.push_str(&dag(run));
    let _ = writeln!(
        body,
        "<p><a href=\"/runs/{}/report\">The run's report as one page</a></p>",
        escape(&encode(&report.id))
    );
    body
}

/// The live part: status, timeline, approvals and steps.
fn live(run: &LoadedRun) -> String {
    let report = &run.report;
    let status = run.status();
    let mut out = String::with_capacity(32 * 1024);
    let _ = writeln!(
        out,
        "<div id=\"live\" data-run=\"{}\" data-status=\"{}\" data-over=\"{}\" data-controls=\"{}\">\n\
         <p class=\"run-status\" aria-live=\"polite\">Status: <strong id=\"run-status\">{}</strong>{}{}</p>",
        escape(&report.id),
        status.name(),
        status.is_over(),
        escape(&run.controls_key()),
        status_badge(status.name()),
        report
            .reason
            .as_ref()
            .map(|r| format!(": {}", escape(r)))
            .unwrap_or_default(),
        report
            .ended_at
            .as_ref()
            .map(|at| {
                let what = if status.is_over() { "ended" } else { "parked" };
                format!(", {what} {}", escape(at))
            })
            .unwrap_or_default(),
    );
    let timeline = report.html_timeline_section(&run.events);
    if timeline.is_empty() {
        out.push_str("<h2>Timeline</h2>\n<p>No step has started yet.</p>\n");
    } else {
        let _ = writeln!(out, "<div class=\"timeline-wrap\">{timeline}</div>");
    }
    out.push_str(&report.html_approvals_section());
    out.push_str(&report.html_steps_section(&run.events));
    if !(report.outputs.is_null() || report.outputs.as_object().is_some_and(|m| m.is_empty())) {
        let _ = writeln!(
            out,
            "<h2>Outputs</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(&report.outputs).unwrap_or_default())
        );
    }
    out.push_str("</div>\n");
    out
}

/// The DAG as the run's own runbook (kept in its journal) draws it.
fn dag(run: &LoadedRun) -> String {
    let picture = app::stored_bundle(&run.report.id, &run.events, None)
        .ok()
        .and_then(|bundle| Picture::new(&bundle));
    match picture {
        Some(picture) => format!(
            "<h2>Steps and what they need</h2>\n<div class=\"dag\">{}</div>\n",
            dag_svg::render(&picture, &run.report)
        ),
        None => String::new(),
    }
}

/// `/runs/{id}/timeline`: the live part alone.
pub async fn timeline_fragment(
    _user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
) -> Response {
    match LoadedRun::load(&state, &run_id).await {
        Ok(run) => fragment(live(&run)),
        Err(message) => (StatusCode::NOT_FOUND, message).into_response(),
    }
}

/// `/runs/{id}/controls`: the controls alone.
pub async fn controls_fragment(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
) -> Response {
    match LoadedRun::load(&state, &run_id).await {
        Ok(run) => fragment(controls(&user, &run)),
        Err(message) => (StatusCode::NOT_FOUND, message).into_response(),
    }
}

/// `/runs/{id}/report`: the same page `runbook runs show --format html` writes.
pub async fn report_page(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
) -> Response {
    match LoadedRun::load(&state, &run_id).await {
        // The report is one self-contained page: its own inline style, no script.
        Ok(run) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
            )],
            Html(run.report.html(&run.events)),
        )
            .into_response(),
        Err(message) => problem(
            StatusCode::NOT_FOUND,
            &user,
            Section::Runs,
            &message,
            "/runs",
        ),
    }
}

fn fragment(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The controls the run's status allows, for an operator; a note for a viewer.
fn controls(user: &PageUser, run: &LoadedRun) -> String {
    let report = &run.report;
    let status = run.status();
    let mut out = format!(
        "<section id=\"controls\" data-controls=\"{}\" aria-labelledby=\"controls-title\">\n\
         <h2 id=\"controls-title\">Controls</h2>\n",
        escape(&run.controls_key())
    );
    if !user.may_operate() {
        out.push_str(
            "<p>You may watch this run; starting, approving and controlling runs needs the \
             operator role.</p>\n</section>\n",
        );
        return out;
    }
    if status.is_over() && status != RunStatus::Failed {
        out.push_str("<p>The run is over: nothing is left to do.</p>\n</section>\n");
        return out;
    }
    let action = |what: &str| format!("/runs/{}/{what}", escape(&encode(&report.id)));
    let csrf = user.csrf_field();
    out.push_str("<div class=\"controls\">\n");
    for (number, approval) in run.waiting().iter().enumerate() {
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" class=\"approval\" data-step=\"{step}\">{csrf}\
             <h3>Approve <code>{step}</code>?</h3><p class=\"prompt\">{}</p>\
             <input type=\"hidden\" name=\"step\" value=\"{step}\">\
             <label for=\"comment-{number}\">Comment</label>\
             <textarea id=\"comment-{number}\" name=\"comment\"></textarea>\
             <p><button type=\"submit\" name=\"decision\" value=\"approve\" class=\"primary\">✓ Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"reject\" class=\"danger\">✗ Reject</button></p></form>",
            action("approve"),
            escape(&approval.prompt),
            step = escape(&approval.path),
        );
    }
    if status == RunStatus::Running {
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" id=\"pause-form\">{csrf}<h3>Pause</h3>\
             <p class=\"hint\">The run parks once its running steps end; resume it later.</p>\
             <label for=\"pause-reason\">Reason</label>\
             <input id=\"pause-reason\" name=\"reason\" autocomplete=\"off\">\
             <p><input type=\"checkbox\" id=\"pause-now\" name=\"now\" value=\"true\"> \
             <label class=\"check\" for=\"pause-now\">Interrupt the running steps now (they run again on resume)</label></p>\
             <p><button type=\"submit\">⏸ Pause</button></p></form>",
            action("pause")
        );
    }
    if matches!(status, RunStatus::Interrupted | RunStatus::Parked) {
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" id=\"resume-form\">{csrf}<h3>Resume</h3>\
             <p class=\"hint\">serve takes the run up where it stopped.</p>\
             <label for=\"resume-reason\">Reason</label>\
             <input id=\"resume-reason\" name=\"reason\" autocomplete=\"off\">\
             <p><button type=\"submit\" class=\"primary\">▶ Resume</button></p></form>",
            action("resume")
        );
    }
    let parked_or_failed = status.is_parked() || status == RunStatus::Failed;
    if parked_or_failed {
        let steps: String = report
            .steps
            .iter()
            .map(|step| {
                format!(
                    "<option value=\"{p}\">{p} ({})</option>",
                    step.status.name(),
                    p = escape(&step.path)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" id=\"retry-form\">{csrf}<h3>Retry from a step</h3>\
             <label for=\"retry-step\">Step</label><select id=\"retry-step\" name=\"step\">\
             <option value=\"\">every failed step</option>{steps}</select>\
             <label for=\"retry-reason\">Reason</label>\
             <input id=\"retry-reason\" name=\"reason\" autocomplete=\"off\">\
             <p><button type=\"submit\">↻ Retry</button></p></form>",
            action("retry")
        );
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" id=\"skip-form\">{csrf}<h3>Skip a step</h3>\
             <p class=\"hint\">Marks the step done by hand; the steps after it go on.</p>\
             <label for=\"skip-step\">Step</label><select id=\"skip-step\" name=\"step\">{steps}</select>\
             <label for=\"skip-reason\">Reason</label>\
             <input id=\"skip-reason\" name=\"reason\" autocomplete=\"off\">\
             <p><button type=\"submit\">– Skip</button></p></form>",
            action("skip")
        );
    }
    if status == RunStatus::Running || parked_or_failed {
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\" id=\"abort-form\">{csrf}<h3>Abort</h3>\
             <p class=\"hint\">Stops the run for good.</p>\
             <label for=\"abort-reason\">Reason</label>\
             <input id=\"abort-reason\" name=\"reason\" autocomplete=\"off\">\
             <p><input type=\"checkbox\" id=\"abort-undo\" name=\"undo\" value=\"true\"> \
             <label class=\"check\" for=\"abort-undo\">Undo what the steps did (each succeeded step's <code>undo</code>, in reverse order)</label></p>\
             <p><button type=\"submit\" class=\"danger\">■ Abort</button></p></form>",
            action("abort")
        );
    }
    out.push_str("</div>\n</section>\n");
    out
}
