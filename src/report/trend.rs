//! `runbook report trend RUNBOOK`: the runs of one runbook over time, their durations and
//! objectives, as a table (text), a document (JSON) or a page with SVG charts (HTML), and
//! whether the latest run fell short of a target (the command's exit status).

use super::html::{STYLE, escape};
use super::objectives::{ObjectiveReport, Outcome};
use super::run_report::{RunReport, duration};
use crate::event::RunStatus;
use serde::Serialize;
use std::fmt::Write;

/// One run as the trend shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrendRun {
    pub id: String,
    pub started_at: String,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub objectives: Vec<ObjectiveReport>,
}

/// The runs of one runbook, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub runbook: String,
    pub runs: Vec<TrendRun>,
    /// The objectives the latest run missed or could not measure: what the command's exit
    /// status reports.
    pub latest_short_of: Vec<String>,
}

impl Trend {
    /// The trend of `reports`, given newest first (as the store lists runs).
    pub fn new(runbook: &str, reports: &[RunReport]) -> Trend {
        let runs: Vec<TrendRun> = reports
            .iter()
            .rev()
            .map(|report| TrendRun {
                id: report.id.clone(),
                started_at: report.created_at.clone(),
                status: report.status,
                duration_ms: report.duration_ms,
                objectives: report.objectives.clone(),
            })
            .collect();
        let latest_short_of = runs
            .last()
            .map(|run| {
                run.objectives
                    .iter()
                    .filter(|o| o.outcome != Outcome::Met)
                    .map(|o| o.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Trend {
            runbook: runbook.to_owned(),
            runs,
            latest_short_of,
        }
    }

    /// Every objective name, in the order the runs first declare them.
    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for objective in self.runs.iter().flat_map(|r| &r.objectives) {
            if !names.contains(&objective.name.as_str()) {
                names.push(&objective.name);
            }
        }
        names
    }

    /// A one-line verdict on the latest run.
    pub fn verdict(&self) -> String {
        match (self.runs.last(), self.latest_short_of.as_slice()) {
            (None, _) => format!("no runs of {}", self.runbook),
            (Some(run), []) if run.objectives.is_empty() => {
                format!("latest run {}: no objectives declared", run.id)
            }
            (Some(run), []) => format!("latest run {}: every objective met", run.id),
            (Some(run), short) => format!(
                "latest run {}: short of a target: {}",
                run.id,
                short.join(", ")
            ),
        }
    }

    pub fn text(&self) -> String {
        let names = self.names();
        let id_width = self
            .runs
            .iter()
            .map(|r| r.id.len())
            .max()
            .unwrap_or(2)
            .max(3);
        let mut out = String::new();
        let _ = write!(
            out,
            "{:<id_width$}  {:<20}  {:<11}  {:>9}",
            "run", "started", "status", "duration"
        );
        for name in &names {
            let _ = write!(out, "  {:>16}", name);
        }
        out.push('\n');
        for run in &self.runs {
            let started = run.started_at.get(..19).unwrap_or(&run.started_at);
            let _ = write!(
                out,
                "{:<id_width$}  {:<20}  {:<11}  {:>9}",
                run.id,
                format!("{started}Z"),
                run.status.name(),
                run.duration_ms.map(duration).unwrap_or_else(|| "-".into())
            );
            for name in &names {
                let cell = run
                    .objectives
                    .iter()
                    .find(|o| o.name == *name)
                    .map(cell)
                    .unwrap_or_else(|| "-".to_owned());
                let _ = write!(out, "  {cell:>16}");
            }
            out.push('\n');
        }
        let targets: Vec<String> = names
            .iter()
            .filter_map(|name| {
                let latest = self
                    .runs
                    .iter()
                    .rev()
                    .flat_map(|r| &r.objectives)
                    .find(|o| o.name == *name)?;
                Some(format!("{name} ≤ {}", duration(latest.target_ms)))
            })
            .collect();
        if !targets.is_empty() {
            let _ = writeln!(out, "\ntargets: {}", targets.join(", "));
        }
        let _ = writeln!(out, "{}", self.verdict());
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn html(&self) -> String {
        let mut out = String::new();
        let title = format!("Runs of {}", self.runbook);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
             <p class=\"verdict\">{}</p>\n",
            escape(&self.verdict()),
            title = escape(&title),
        );
        let durations: Vec<Point> = self
            .runs
            .iter()
            .map(|run| Point {
                run: &run.id,
                value_ms: run.duration_ms,
                outcome: match run.status {
                    RunStatus::Succeeded => Outcome::Met,
                    RunStatus::Failed => Outcome::Missed,
                    _ => Outcome::NotMeasurable,
                },
            })
            .collect();
        chart(&mut out, "Duration", "duration", &durations, None);
        for name in self.names() {
            let points: Vec<Point> = self
                .runs
                .iter()
                .map(|run| {
                    let objective = run.objectives.iter().find(|o| o.name == name);
                    Point {
                        run: &run.id,
                        value_ms: objective.and_then(|o| o.measured_ms),
                        outcome: objective.map_or(Outcome::NotMeasurable, |o| o.outcome),
                    }
                })
                .collect();
            let target = self
                .runs
                .iter()
                .rev()
                .flat_map(|r| &r.objectives)
                .find(|o| o.name == name)
                .map(|o| o.target_ms);
            chart(
                &mut out,
                &format!("Objective {name}"),
                name,
                &points,
                target,
            );
        }
        let _ = writeln!(
            out,
            "<h2>Runs</h2>\n<pre class=\"trend\">{}</pre>\n</body>\n</html>",
            escape(&self.text())
        );
        out
    }
}

/// An objective in the table: what was measured and the verdict as a mark.
fn cell(objective: &ObjectiveReport) -> String {
    match (objective.measured_ms, objective.outcome) {
        (Some(ms), Outcome::Met) => format!("{} ✓", duration(ms)),
        (Some(ms), _) => format!("{} ✗", duration(ms)),
        (None, _) => "not measurable ?".to_owned(),
    }
}

struct Point<'a> {
    run: &'a str,
    value_ms: Option<u64>,
    /// For durations: met is a run that succeeded, missed one that failed.
    outcome: Outcome,
}

/// A line chart in SVG of one measure across the runs, with its target as a dashed line.
/// Each point's verdict is told by its shape and a label, not its colour alone.
fn chart(out: &mut String, title: &str, id: &str, points: &[Point], target: Option<u64>) {
    const WIDTH: f64 = 960.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 40.0;
    const TOP: f64 = 24.0;
    let top_value = points
        .iter()
        .filter_map(|p| p.value_ms)
        .chain(target)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y = |ms: u64| TOP + plot_height * (1.0 - ms as f64 / top_value);
    let step = (WIDTH - LEFT - 30.0) / points.len().max(1) as f64;
    let x = |index: usize| LEFT + step * (index as f64 + 0.5);
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"{}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{}\">\n<line class=\"tick\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{WIDTH}\" y2=\"{:.1}\"/>\
         <text x=\"4\" y=\"{:.1}\">0s</text><text x=\"4\" y=\"{:.1}\">{}</text>",
        escape(title),
        escape(id),
        escape(title),
        y(0),
        y(0),
        y(0),
        TOP + 4.0,
        escape(&duration((top_value / 1.15) as u64)),
    );
    if let Some(target) = target {
        let _ = writeln!(
            out,
            "<line class=\"target\" x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{WIDTH}\" y2=\"{ty:.1}\" \
             stroke=\"#a40e26\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">target {}</text>",
            WIDTH - 4.0,
            y(target) - 4.0,
            escape(&duration(target)),
            ty = y(target),
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.value_ms.map(|ms| format!("{:.1},{:.1}", x(i), y(ms))))
        .collect();
    if line.len() > 1 {
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#57606a\" stroke-width=\"1.5\"/>",
            line.join(" ")
        );
    }
    for (i, point) in points.iter().enumerate() {
        let px = x(i);
        let verdict = point.outcome.name();
        let _ = write!(
            out,
            "<g class=\"point {}\" data-run=\"{}\">",
            verdict.replace(' ', "-"),
            escape(point.run)
        );
        match point.value_ms {
            Some(ms) => {
                let py = y(ms);
                if point.outcome == Outcome::Met {
                    let _ = write!(
                        out,
                        "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"5\" fill=\"#116329\"/>"
                    );
                } else {
                    let _ = write!(
                        out,
                        "<path d=\"M{:.1},{:.1} l10,10 m0,-10 l-10,10\" stroke=\"#a40e26\" stroke-width=\"3\"/>",
                        px - 5.0,
                        py - 5.0
                    );
                }
                let _ = write!(
                    out,
                    "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} {}</text>",
                    py - 9.0,
                    escape(&duration(ms)),
                    if point.outcome == Outcome::Met {
                        "✓"
                    } else {
                        "✗"
                    }
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">? not measurable</text>",
                    y(0) - 6.0
                );
            }
        }
        let label: String = point
            .run
            .chars()
            .rev()
            .take(14)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let _ = writeln!(
            out,
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><title>{}: {}</title></g>",
            HEIGHT - BOTTOM + 16.0,
            escape(&label),
            escape(point.run),
            verdict
        );
    }
    let _ = writeln!(out, "</svg>");
}
