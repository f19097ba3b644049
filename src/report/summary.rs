//! The summary printed when a run ends: every step with its status, attempts and time.

use super::run_report::StepReport;
use super::step_table::{self, StepColumns};
use crate::engine::{Notice, RunOutcome};
use crate::event::{GateDecision, RunStatus, WindowGate};
use std::fmt::Write;

pub fn render(outcome: &RunOutcome, run_id: &str) -> String {
    let mut out = String::new();
    let state = &outcome.state;
    // Row by row: a run of many steps never holds a copy of all of them.
    let columns = StepColumns::default();
    let width = step_table::header(&mut out, state.order.iter().map(|p| &**p), columns);
    for path in &state.order {
        if let Some(record) = state.steps.get(&**path) {
            step_table::row(
                &mut out,
                width,
                &StepReport::new(path, record, false),
                columns,
            );
        }
    }
    // How the window stopped the run: the numbers behind the reason below.
    if matches!(outcome.status, RunStatus::Parked | RunStatus::Failed) {
        let closing: Vec<WindowGate> = state
            .run
            .gates
            .iter()
            .filter(|gate| gate.decision != GateDecision::Start)
            .cloned()
            .collect();
        window_gates(&mut out, &closing);
    }
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

/// The decisions of steps gated by `window`, one a line with its numbers.
pub fn window_gates(out: &mut String, gates: &[WindowGate]) {
    if gates.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nWindow");
    for gate in gates {
        let _ = writeln!(out, "  {}", gate.describe());
    }
}
