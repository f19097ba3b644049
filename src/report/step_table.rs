//! The table of steps, drawn the same way at the end of a run and by `runs show`.

use super::run_report::{StepReport, compact, duration, is_empty};
use crate::event::Via;
use std::fmt::Write;

/// What the table shows besides each step's status, attempts and time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepColumns {
    /// When each step started.
    pub started: bool,
    /// Each step's outputs and error, on lines of their own under it.
    pub details: bool,
}

pub fn render(out: &mut String, steps: &[StepReport], columns: StepColumns) {
    let width = header(out, steps.iter().map(|s| s.path.as_str()), columns);
    for step in steps {
        row(out, width, step, columns);
    }
}

/// Writes the header for steps with these paths; returns the width of the step column.
pub fn header<'p>(
    out: &mut String,
    paths: impl Iterator<Item = &'p str>,
    columns: StepColumns,
) -> usize {
    let width = paths.map(|p| p.chars().count()).max().unwrap_or(4).max(4);
    let started = if columns.started { "  started" } else { "" };
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<10}  {:>8}  {:>9}{started}",
        "step", "status", "attempts", "time"
    );
    width
}

/// Writes one step's row (and, with `details`, its outputs and error).
pub fn row(out: &mut String, width: usize, step: &StepReport, columns: StepColumns) {
    let via = match step.via {
        Some(Via::Fallback) => "  via fallback",
        Some(Via::Verify) => "  verified done",
        _ => "",
    };
    let started = match columns.started {
        true => format!("  {}", step.started_at.as_deref().unwrap_or("-")),
        false => String::new(),
    };
    let _ = writeln!(
        out,
        "{:<width$}  {:<10}  {:>8}  {:>9}{started}{via}",
        step.path,
        step.status.name(),
        step.attempts,
        step.duration_ms.map(duration).unwrap_or_default(),
    );
    if !columns.details {
        return;
    }
    if !is_empty(&step.outputs) {
        let _ = writeln!(out, "{:width$}  outputs: {}", "", compact(&step.outputs));
    }
    if let Some(error) = &step.error {
        let _ = writeln!(out, "{:width$}  error: {error}", "");
    }
}
