//! `runbook runs show`: the run report as text for the terminal.

use super::run_report::{HistoryEntry, RunReport, compact, duration, is_empty};
use super::step_table::{self, StepColumns};
use crate::event::RunStatus;
use std::fmt::Write;

impl RunReport {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "run       {}", self.id);
        let _ = writeln!(out, "runbook   {} ({})", self.runbook, self.file);
        let reason = self
            .reason
            .as_ref()
            .filter(|_| self.status != RunStatus::Succeeded)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(out, "status    {}{reason}", self.status.name());
        let by = self
            .started_by
            .as_ref()
            .map(|by| format!(" by {by}"))
            .unwrap_or_default();
        let _ = writeln!(out, "started   {}{by}", self.created_at);
        if let Some(ended) = &self.ended_at {
            let _ = writeln!(out, "ended     {ended}");
        }
        if let Some(ms) = self.duration_ms {
            let _ = writeln!(out, "duration  {}", duration(ms));
        }
        let _ = writeln!(out, "inputs    {}", compact(&self.inputs));
        // In the order they happened: a control is read with the resume that followed it.
        for entry in self.history() {
            match entry {
                HistoryEntry::Resumed(resume) => {
                    let _ = writeln!(out, "resumed   {} by {}", resume.at, resume.by);
                }
                HistoryEntry::Control(control) => {
                    let _ = writeln!(out, "control   {}", control.describe());
                }
            }
        }
        if let Some(until) = &self.window_until {
            let _ = writeln!(out, "window    until {until}");
        }
        let columns = StepColumns {
            started: true,
            details: true,
        };
        step_table::render(&mut out, &self.steps, columns);
        super::objectives::render_text(&mut out, &self.objectives);
        for approval in &self.approvals {
            let _ = writeln!(out, "\napproval  {}: {}", approval.path, approval.prompt);
            if approval.needed > 1 || approval.distinct_from_starter {
                let mut needs = vec![format!(
                    "{} different {}",
                    approval.needed,
                    if approval.needed == 1 {
                        "approver"
                    } else {
                        "approvers"
                    }
                )];
                if approval.distinct_from_starter {
                    needs.push("not whoever started the run".to_owned());
                }
                let _ = writeln!(out, "          needs {}", needs.join(", "));
            }
            for answer in &approval.answers {
                let _ = writeln!(out, "          {}", answer.line());
            }
            if approval.approved.is_none() {
                let more =
                    approval.needed as usize - approval.approvals().min(approval.needed as usize);
                let _ = writeln!(
                    out,
                    "          waiting for {more} more {}: runbook approve {} {}",
                    if more == 1 { "approval" } else { "approvals" },
                    self.id,
                    approval.path
                );
            }
        }
        super::locks::text(&mut out, &self.locks);
        crate::report::summary::window_gates(&mut out, &self.window_gates);
        crate::report::summary::notices(&mut out, &self.notices);
        if !is_empty(&self.outputs) {
            let _ = writeln!(
                out,
                "\noutputs\n{}",
                serde_json::to_string_pretty(&self.outputs).unwrap_or_default()
            );
        }
        out
    }
}
