//! The summary printed when a run ends: every step with its status, attempts and time.

use super::run_report::StepReport;
use super::step_table::{self, StepColumns};
use crate::engine::{Notice, RunOutcome};
use std::fmt::Write;

pub fn render(outcome: &RunOutcome, run_id: &str) -> String {
    let mut out = String::new();
    let state = &outcome.state;
    let steps: Vec<StepReport> = state
        .order
        .iter()
        .filter_map(|path| Some(StepReport::new(path, state.steps.get(path)?, false)))
        .collect();
    step_table::render(&mut out, &steps, StepColumns::default());
    notices(&mut out, &state.run.notices);
    // `run r1 interrupted (interrupted)` would say it twice.
    let reason = outcome
        .reason
        .as_ref()
        .filter(|r| r.as_str() != outcome.status.name())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let _ = writeln!(out, "\nrun {run_id} {}{reason}", outcome.status.name());
    out
}

/// The steps' notices, each under the step that gave it, its lines indented: what the
/// runbook wants the person who ran it to read once it is over.
pub fn notices(out: &mut String, notices: &[Notice]) {
    if notices.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nNotices");
    for notice in notices {
        let _ = writeln!(out, "  {}:", notice.step);
        for line in notice.text.trim_end().lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
}
