//! `runbook runs show --format html`: the run report as one self-contained page to hand to
//! auditors. Inline CSS and SVG only: no script, nothing fetched, and it prints to PDF as it
//! shows. Every status is told by a word and a shape as well as a colour, and every text
//! from the run is escaped, so that a step's output cannot become markup.

use super::objectives::Outcome;
use super::run_report::{HistoryEntry, RunReport, duration, is_empty, pretty};
use super::timeline::{Bar, BarEnd, BarKind, Lane, Timeline};
use crate::event::{Envelope, RunEvent, Via};
use std::collections::HashMap;
use std::fmt::Write;

/// Lines of each stream of a step's last output the page shows.
const OUTPUT_TAIL_LINES: usize = 20;

pub const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; color: #1b1f24; margin: 2em auto; max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
code, pre { font-family: ui-monospace, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .6em; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: .4em 0; } th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.facts th { width: 11em; }
.succeeded, .met, .approved { color: #116329; } .failed, .missed, .rejected { color: #a40e26; font-weight: bold; }
.not-measurable, .cancelled, .unfinished, .waiting, .interrupted { color: #7d4e00; } .skipped { color: #57606a; }
.hash { font-family: ui-monospace, monospace; word-break: break-all; }
svg text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
svg .tick { stroke: #d0d7de; } svg text.mark { fill: #fff; font-weight: bold; paint-order: stroke; stroke: #a40e26; stroke-width: 3px; } svg .park { stroke: #7d4e00; stroke-dasharray: 4 3; } svg .control line { stroke: #0550ae; stroke-width: 2; } svg .control text { fill: #0550ae; }
section.step { break-inside: avoid; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } svg { max-width: 100%; height: auto; } }
@page { margin: 15mm; }
"#;

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A status as the page shows it: a mark and a word, never the colour alone.
pub fn mark(name: &str) -> &'static str {
    match name {
        "succeeded" | "met" | "approved" => "✓",
        "failed" | "missed" | "rejected" => "✗",
        "skipped" => "–",
        "cancelled" => "⊘",
        "waiting" => "⏸",
        _ => "?",
    }
}

/// A status as a span with its class, mark and word.
pub fn status(name: &str) -> String {
    let class = name.replace(' ', "-");
    format!(
        "<span class=\"{class}\">{} {}</span>",
        mark(name),
        escape(name)
    )
}

impl RunReport {
    /// The page, from this report and the run's events (the timeline, what each step
    /// printed, and the journal's hash chain are read from them).
    pub fn html(&self, events: &[Envelope]) -> String {
        let mut out = String::new();
        let title = format!("Run {} of {}", self.id, self.runbook);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            escape(&title),
            escape(&title)
        );
        self.html_facts(&mut out, events);
        self.html_objectives(&mut out);
        html_timeline(&mut out, &Timeline::new(events), self);
        self.html_approvals(&mut out);
        self.html_window(&mut out);
        self.html_locks(&mut out);
        let _ = writeln!(
            out,
            "<h2>Inputs</h2>\n<p>As the journal holds them: secrets are never journaled, and \
             values that carried one are masked.</p>\n<pre>{}</pre>",
            escape(&pretty(&self.inputs))
        );
        self.html_steps(&mut out, events);
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "<h2>Warnings</h2>\n<ul>");
            for warning in &self.warnings {
                let at = warning
                    .path
                    .as_ref()
                    .map(|p| format!("<code>{}</code>: ", escape(p)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "<li>{} {at}{}</li>",
                    escape(&warning.at),
                    escape(&warning.message)
                );
            }
            let _ = writeln!(out, "</ul>");
        }
        if !self.notices.is_empty() {
            let _ = writeln!(out, "<h2>Notices</h2>");
            for notice in &self.notices {
                let _ = writeln!(
                    out,
                    "<h3><code>{}</code></h3>\n<pre>{}</pre>",
                    escape(&notice.step),
                    escape(notice.text.trim_end())
                );
            }
        }
        let _ = writeln!(
            out,
            "<h2>Outputs</h2>\n<pre>{}</pre>\n</body>\n</html>",
            escape(&pretty(&self.outputs))
        );
        out
    }

    /// The timeline (the SVG Gantt chart and its legend), alone: a web page shows it and
    /// replaces it as the run goes on. Empty when no step has started.
    pub fn html_timeline_section(&self, events: &[Envelope]) -> String {
        let mut out = String::new();
        html_timeline(&mut out, &Timeline::new(events), self);
        out
    }

    /// Every step with its status, attempts, outputs and the end of what it printed, alone.
    pub fn html_steps_section(&self, events: &[Envelope]) -> String {
        let mut out = String::new();
        self.html_steps(&mut out, events);
        out
    }

    /// The approvals asked for and their answers, alone (empty when none was asked).
    pub fn html_approvals_section(&self) -> String {
        let mut out = String::new();
        self.html_approvals(&mut out);
        out
    }

    fn html_facts(&self, out: &mut String, events: &[Envelope]) {
        let _ = writeln!(out, "<table class=\"facts\">");
        let row = |out: &mut String, name: &str, value: String| {
            let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
        };
        row(
            out,
            "Runbook",
            format!(
                "<code>{}</code> ({})",
                escape(&self.runbook),
                escape(&self.file)
            ),
        );
        row(out, "Run", format!("<code>{}</code>", escape(&self.id)));
        row(out, "Status", status(self.status.name()));
        if let Some(reason) = &self.reason {
            row(out, "Reason", escape(reason));
        }
        row(out, "Started", escape(&self.created_at));
        if let Some(by) = &self.started_by {
            row(out, "Started by", escape(by));
        }
        if let Some(ended) = &self.ended_at {
            row(out, "Ended", escape(ended));
        }
        if let Some(ms) = self.duration_ms {
            row(out, "Duration", escape(&duration(ms)));
        }
        // Resumes and controls in the order they happened: a control is read with the
        // resume that followed it.
        for entry in self.history() {
            match entry {
                HistoryEntry::Resumed(resume) => row(
                    out,
                    "Resumed",
                    format!("{} by {}", escape(&resume.at), escape(&resume.by)),
                ),
                HistoryEntry::Control(control) => row(
                    out,
                    "Control",
                    format!(
                        "<span class=\"control\">{} by {}: {} (why: {})</span>",
                        escape(&control.at),
                        escape(&control.by),
                        escape(&control.what),
                        escape(&control.reason)
                    ),
                ),
            }
        }
        for approval in &self.approvals {
            if let (Some(approved), Some(by)) = (approval.approved, &approval.by) {
                let verdict = if approved { "Approved" } else { "Rejected" };
                row(
                    out,
                    verdict,
                    format!("<code>{}</code> by {}", escape(&approval.path), escape(by)),
                );
            }
        }
        row(
            out,
            "Journal",
            format!(
                "{} events, checked against their hash chain when read. Head of the chain \
                 (SHA-256): <span class=\"hash\" id=\"journal-head\">{}</span>",
                events.len(),
                escape(&self.journal_head)
            ),
        );
        let _ = writeln!(out, "</table>");
    }

    fn html_objectives(&self, out: &mut String) {
        if self.objectives.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "<h2>Objectives</h2>\n<table class=\"objectives\">\n<tr><th>Objective</th>\
             <th>Target</th><th>Measured</th><th>Result</th><th>How</th></tr>"
        );
        for objective in &self.objectives {
            let description = objective
                .description
                .as_ref()
                .map(|d| format!("<br>{}", escape(d)))
                .unwrap_or_default();
            let outcome = match objective.outcome {
                Outcome::NotMeasurable => "not measurable",
                other => other.name(),
            };
            let _ = writeln!(
                out,
                "<tr data-objective=\"{name}\"><td><code>{name}</code>{description}</td>\
                 <td>{}</td><td>{}</td><td class=\"result\">{}</td><td>{}</td></tr>",
                escape(&duration(objective.target_ms)),
                objective
                    .measured_ms
                    .map(|ms| escape(&duration(ms)))
                    .unwrap_or_else(|| "–".to_owned()),
                status(outcome),
                escape(&objective.detail),
                name = escape(&objective.name),
            );
        }
        let _ = writeln!(out, "</table>");
    }

    /// The run's window and every decision a gated step met, with its numbers.
    fn html_window(&self, out: &mut String) {
        if self.window_until.is_none() && self.window_gates.is_empty() {
            return;
        }
        let _ = writeln!(out, "<h2>Window</h2>");
        if let Some(until) = &self.window_until {
            let _ = writeln!(out, "<p>Open until {}.</p>", escape(until));
        }
        if self.window_gates.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "<table>\n<tr><th>Step</th><th>Needs</th><th>From</th><th>Left</th>\
             <th>Decision</th></tr>"
        );
        for gate in &self.window_gates {
            let decision = gate.decision.name();
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"{decision}\">{decision}</td></tr>",
                escape(&gate.path),
                escape(&duration(gate.needed_ms)),
                escape(&gate.source.describe()),
                escape(&duration(gate.left_ms)),
            );
        }
        let _ = writeln!(out, "</table>");
    }

    /// Each lock the run or a step took or waited for: who held it, how long it waited.
    fn html_locks(&self, out: &mut String) {
        if self.locks.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "<h2>Locks</h2>\n<table>\n<tr><th>Lock</th><th>Step</th><th>Waited for</th>\
             <th>Acquired</th><th>Waited</th><th>Released</th><th>Held</th></tr>"
        );
        let or_dash = |text: Option<String>| escape(&text.unwrap_or_else(|| "-".to_owned()));
        for lock in &self.locks {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                escape(&lock.lock),
                or_dash(lock.step.clone()),
                or_dash(lock.waited_for.as_ref().map(|h| h.to_string())),
                or_dash(lock.acquired_at.clone()),
                or_dash(lock.waited_ms.map(duration)),
                or_dash(lock.released_at.clone()),
                or_dash(lock.held_ms.map(duration)),
            );
        }
        let _ = writeln!(out, "</table>");
    }

    fn html_approvals(&self, out: &mut String) {
        if self.approvals.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "<h2>Approvals</h2>\n<table>\n<tr><th>Step</th><th>Asked</th><th>Question</th>\
             <th>Answer</th><th>Answered</th></tr>"
        );
        for approval in &self.approvals {
            // Each person's answer on a line of its own, then the verdict or what is missing.
            let mut lines: Vec<String> = approval
                .answers
                .iter()
                .map(|a| {
                    format!(
                        "{} by {}{}",
                        status(if a.approved { "approved" } else { "rejected" }),
                        escape(&a.by),
                        a.comment
                            .as_ref()
                            .map(|c| format!(": {}", escape(c)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            if approval.approved.is_none() {
                lines.push(format!(
                    "{} ({} of {} approvals)",
                    status("waiting"),
                    approval.approvals(),
                    approval.needed
                ));
            }
            if approval.needed > 1 || approval.distinct_from_starter {
                lines.push(format!(
                    "needs {} different approver(s){}",
                    approval.needed,
                    if approval.distinct_from_starter {
                        ", not whoever started the run"
                    } else {
                        ""
                    }
                ));
            }
            let answer = lines.join("<br>");
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{answer}</td><td>{}</td></tr>",
                escape(&approval.path),
                escape(&approval.asked_at),
                escape(&approval.prompt),
                escape(approval.answered_at.as_deref().unwrap_or("")),
            );
        }
        let _ = writeln!(out, "</table>");
    }

    fn html_steps(&self, out: &mut String, events: &[Envelope]) {
        // The last output of each step: the end of what its last run printed.
        let mut printed: HashMap<&str, (&str, &str, u64)> = HashMap::new();
        for envelope in events {
            if let RunEvent::StepOutput {
                path,
                stdout,
                stderr,
                cut_bytes,
            } = &envelope.event
            {
                printed.insert(path, (stdout, stderr, *cut_bytes));
            }
        }
        let _ = writeln!(out, "<h2>Steps</h2>");
        for step in &self.steps {
            let via = match step.via {
                Some(Via::Fallback) => " (via its fallback)",
                Some(Via::Verify) => " (verified done)",
                _ => "",
            };
            let _ = writeln!(
                out,
                "<section class=\"step\" data-step=\"{path}\">\n<h3><code>{path}</code> {}{via}</h3>",
                status(step.status.name()),
                path = escape(&step.path),
            );
            let _ = write!(out, "<p>{} attempt(s)", step.attempts);
            if let Some(started) = &step.started_at {
                let _ = write!(out, ", started {}", escape(started));
            }
            if let Some(ms) = step.duration_ms {
                let _ = write!(out, ", took {}", escape(&duration(ms)));
            }
            let _ = writeln!(out, "</p>");
            if let Some(error) = &step.error {
                let _ = writeln!(out, "<p class=\"failed\">Error: {}</p>", escape(error));
            }
            if !is_empty(&step.outputs) {
                let _ = writeln!(
                    out,
                    "<p>Outputs:</p>\n<pre>{}</pre>",
                    escape(&pretty(&step.outputs))
                );
            }
            if let Some((stdout, stderr, cut)) = printed.get(step.path.as_str()) {
                for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
                    let lines: Vec<&str> = text.lines().collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let shown = &lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..];
                    let earlier = if lines.len() > shown.len() || *cut > 0 {
                        " (its end)"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "<p>What it printed on {name}{earlier}:</p>\n<pre class=\"{name}\">{}</pre>",
                        escape(&shown.join("\n"))
                    );
                }
            }
            let _ = writeln!(out, "</section>");
        }
    }
}

/// Geometry of the Gantt chart.
const CHART_WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 190.0;
const STATUS_WIDTH: f64 = 250.0;
const ROW: f64 = 24.0;
const TOP: f64 = 28.0;

fn html_timeline(out: &mut String, timeline: &Timeline, report: &RunReport) {
    if timeline.lanes.is_empty() {
        return;
    }
    let plot = CHART_WIDTH - LABEL_WIDTH - STATUS_WIDTH;
    let span = timeline.span_ms.max(1) as f64;
    let x = |ms: i64| LABEL_WIDTH + plot * (ms as f64 / span);
    let height = TOP + ROW * timeline.lanes.len() as f64 + 10.0;
    let _ = writeln!(
        out,
        "<h2>Timeline</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" \
         width=\"{CHART_WIDTH}\" height=\"{height}\" viewBox=\"0 0 {CHART_WIDTH} {height}\" \
         role=\"img\" aria-label=\"Timeline of the run's steps\">\n<defs><pattern id=\"hatch\" \
         width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"6\" height=\"6\" fill=\"#cf222e\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" \
         stroke=\"#fff\" stroke-width=\"2\"/></pattern></defs>"
    );
    for tick in 0..=4 {
        let ms = timeline.span_ms * tick / 4;
        let at = x(ms);
        let _ = writeln!(
            out,
            "<line class=\"tick\" x1=\"{at:.1}\" y1=\"{}\" x2=\"{at:.1}\" y2=\"{height}\"/>\
             <text x=\"{at:.1}\" y=\"14\" text-anchor=\"middle\">+{}</text>",
            TOP - 8.0,
            escape(&duration(ms.max(0) as u64))
        );
    }
    for park in &timeline.parks {
        let at = x(*park);
        let _ = writeln!(
            out,
            "<line class=\"park\" x1=\"{at:.1}\" y1=\"{}\" x2=\"{at:.1}\" y2=\"{height}\"><title>the run parked here</title></line>",
            TOP - 8.0
        );
    }
    for (number, (at_ms, control)) in timeline.controls.iter().zip(&report.controls).enumerate() {
        let at = x(*at_ms);
        let _ = writeln!(
            out,
            "<g class=\"control\" data-control=\"{number}\"><line x1=\"{at:.1}\" y1=\"{}\" \
             x2=\"{at:.1}\" y2=\"{height}\"/><text x=\"{at:.1}\" y=\"{}\" \
             text-anchor=\"middle\">⚑</text><title>{}</title></g>",
            TOP - 8.0,
            TOP - 10.0,
            escape(&control.describe())
        );
    }
    for (row, lane) in timeline.lanes.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        let state = report
            .steps
            .iter()
            .find(|s| s.path == lane.path)
            .map_or("unfinished", |s| s.status.name());
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-step=\"{path}\" data-status=\"{state}\">\
             <text x=\"4\" y=\"{:.1}\">{label}</text>",
            y + 15.0,
            path = escape(&lane.path),
            label = escape(&shorten(&lane.path, 30)),
        );
        for bar in &lane.bars {
            html_bar(out, bar, lane, y, &x);
        }
        let _ = writeln!(
            out,
            "<text class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\">{} {state}{retries}</text></g>",
            CHART_WIDTH - STATUS_WIDTH + 6.0,
            y + 15.0,
            mark(state),
            class = state,
            retries = retries(lane),
        );
    }
    let _ = writeln!(out, "</svg>");
    let _ = writeln!(
        out,
        "<p>Each bar is one attempt. <b>Solid green</b>: succeeded; <b>hatched red, ✗</b>: the \
         attempt failed; <b>dashed outline</b>: the fallback; <b>thin amber</b>: waiting for an \
         approval; <b>thin violet, dotted</b>: waiting for a lock another run holds (the \
         <code>(run)</code> row: the run's own locks, before its first step); <b>grey, dotted</b>: cut short by a park or still running; a <b>diamond</b>: \
         skipped. Dashed vertical lines: the run parked; <b>blue lines with a flag</b>: a \
         person's control (skip, retry, pause, edit: hover for who and why). The word at the right of each row is \
         the step's status (and its retries).</p>"
    );
}

fn retries(lane: &Lane) -> String {
    let failed = lane
        .bars
        .iter()
        .filter(|b| {
            b.end == BarEnd::Failed && matches!(b.kind, BarKind::Attempt | BarKind::Fallback)
        })
        .count();
    let fallback = lane.bars.iter().any(|b| b.kind == BarKind::Fallback);
    let mut extra = String::new();
    if failed > 0 && lane.bars.len() > 1 {
        let _ = write!(extra, ", {failed} failed attempt(s)");
    }
    if fallback {
        extra.push_str(", fallback");
    }
    extra
}

fn html_bar(out: &mut String, bar: &Bar, lane: &Lane, y: f64, x: &impl Fn(i64) -> f64) {
    let (start, end) = (x(bar.start_ms), x(bar.end_ms));
    let what = match bar.kind {
        BarKind::Attempt => format!("attempt {}", bar.attempt),
        BarKind::Fallback => format!("fallback attempt {}", bar.attempt),
        BarKind::Approval => "waiting for approval".to_owned(),
        BarKind::LockWait => "waiting for a lock".to_owned(),
    };
    let title = format!(
        "{}: {what}, {} ({})",
        lane.path,
        bar.end.name(),
        duration((bar.end_ms - bar.start_ms).max(0) as u64)
    );
    let class = format!("bar {}", bar.end.name());
    if bar.end == BarEnd::Skipped {
        let (cx, cy) = (start, y + 11.0);
        let _ = writeln!(
            out,
            "<polygon class=\"{class}\" points=\"{:.1},{cy:.1} {cx:.1},{:.1} {:.1},{cy:.1} {cx:.1},{:.1}\" \
             fill=\"#8c959f\"><title>{}</title></polygon>",
            cx - 6.0,
            cy - 6.0,
            cx + 6.0,
            cy + 6.0,
            escape(&title)
        );
        return;
    }
    let width = (end - start).max(3.0);
    let (top, tall) = match bar.kind {
        BarKind::Approval | BarKind::LockWait => (y + 7.0, 8.0),
        _ => (y + 3.0, 16.0),
    };
    let (fill, stroke, dash) = match (bar.kind, bar.end) {
        (BarKind::Approval, _) => ("#d4a72c", "#7d4e00", ""),
        (BarKind::LockWait, _) => ("#c297ff", "#6639ba", "1 2"),
        (_, BarEnd::Failed | BarEnd::Rejected) => ("url(#hatch)", "#a40e26", ""),
        (_, BarEnd::Unfinished | BarEnd::Cancelled) => ("#d0d7de", "#57606a", "2 2"),
        (BarKind::Fallback, _) => ("#4ac26b", "#116329", "5 3"),
        _ => ("#4ac26b", "#116329", ""),
    };
    let dash = match (bar.kind, dash) {
        (BarKind::Fallback, "") => "5 3",
        (_, dash) => dash,
    };
    let _ = writeln!(
        out,
        "<rect class=\"{class}\" x=\"{start:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{tall}\" \
         fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\" stroke-dasharray=\"{dash}\"><title>{}</title></rect>",
        escape(&title)
    );
    if bar.end == BarEnd::Failed {
        // The mark sits inside a bar wide enough to hold it, else just after it.
        let at = if width > 16.0 {
            start + 3.0
        } else {
            start + width + 2.0
        };
        let _ = writeln!(
            out,
            "<text x=\"{at:.1}\" y=\"{:.1}\" class=\"failed mark\">✗</text>",
            y + 15.0
        );
    }
}

/// A long step path cut to fit its column, its end kept (where it differs from its
/// neighbours).
fn shorten(path: &str, max: usize) -> String {
    let count = path.chars().count();
    if count <= max {
        return path.to_owned();
    }
    let tail: String = path.chars().skip(count - (max - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(super::shorten("abcdef", 4), "…def");
    }
}
