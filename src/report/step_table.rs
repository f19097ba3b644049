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
    let width = steps
        .iter()
        .map(|s| s.path.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let started = if columns.started { "  started" } else { "" };
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<10}  {:>8}  {:>9}{started}",
        "step", "status", "attempts", "time"
    );
    for step in steps {
        let via = match step.via {
            Some(Via::Fallback) => "  via fallback",
            Some(Via::Verify) => "  verified done",
            _ if step.skipped_by_hand.is_some() => "  by hand",
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
            continue;
        }
        if !is_empty(&step.outputs) {
            let _ = writeln!(out, "{:width$}  outputs: {}", "", compact(&step.outputs));
        }
        if let Some(error) = &step.error {
            let _ = writeln!(out, "{:width$}  error: {error}", "");
        }
        if let Some(skipped) = &step.skipped_by_hand {
            let _ = writeln!(out, "{:width$}  skipped by hand by {skipped}", "");
        }
        if let Some(all) = step.attempts_in_all {
            let _ = writeln!(
                out,
                "{:width$}  attempts in all, retries included: {all}",
                ""
            );
        }
    }
}
