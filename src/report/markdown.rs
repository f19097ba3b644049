//! `runbook runs show --format markdown`: the run report to file as a record (a drill
//! report, an upgrade record).

use super::run_report::{RunReport, cell, compact, duration, fence_for, is_empty, pretty};
use crate::event::{RunStatus, Via};
use std::fmt::Write;

impl RunReport {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Run `{}` of `{}`\n", self.id, self.runbook);
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(
            out,
            "| Runbook | `{}` ({}) |",
            self.runbook,
            cell(&self.file)
        );
        let _ = writeln!(out, "| Status | **{}** |", self.status.name());
        if let Some(reason) = self
            .reason
            .as_ref()
            .filter(|_| self.status != RunStatus::Succeeded)
        {
            let _ = writeln!(out, "| Reason | {} |", cell(reason));
        }
        let _ = writeln!(out, "| Started | {} |", self.created_at);
        if let Some(by) = &self.started_by {
            let _ = writeln!(out, "| Started by | {} |", cell(by));
        }
        if let Some(ended) = &self.ended_at {
            let _ = writeln!(out, "| Ended | {ended} |");
        }
        if let Some(ms) = self.duration_ms {
            let _ = writeln!(out, "| Duration | {} |", duration(ms));
        }
        for resume in &self.resumes {
            let _ = writeln!(out, "| Resumed | {} by {} |", resume.at, cell(&resume.by));
        }
        for control in &self.controls {
            let _ = writeln!(
                out,
                "| Control | {} by {}: {} ({}) |",
                control.at,
                cell(&control.by),
                cell(&control.what),
                cell(&control.reason)
            );
        }
        self.markdown_objectives(&mut out);
        let _ = writeln!(out, "\n## Inputs\n\n```json\n{}\n```", pretty(&self.inputs));
        let _ = writeln!(
            out,
            "\n## Steps\n\n| Step | Status | Attempts | Started | Duration | Outputs | Error |\n|---|---|---|---|---|---|---|"
        );
        for step in &self.steps {
            let status = match step.via {
                Some(Via::Fallback) => format!("{} (via fallback)", step.status.name()),
                Some(Via::Verify) => format!("{} (verified done)", step.status.name()),
                _ => step.status.name().to_owned(),
            };
            let outputs = if is_empty(&step.outputs) {
                String::new()
            } else {
                format!("`{}`", cell(&compact(&step.outputs)))
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                step.path,
                status,
                step.attempts,
                step.started_at.as_deref().unwrap_or(""),
                step.duration_ms.map(duration).unwrap_or_default(),
                outputs,
                cell(step.error.as_deref().unwrap_or("")),
            );
        }
        if !self.approvals.is_empty() {
            let _ = writeln!(
                out,
                "\n## Approvals\n\n| Step | Asked | Question | Answer |\n|---|---|---|---|"
            );
            for approval in &self.approvals {
                let mut lines: Vec<String> = approval.answers.iter().map(|a| a.line()).collect();
                if approval.approved.is_none() {
                    lines.push(format!(
                        "waiting ({} of {} approvals)",
                        approval.approvals(),
                        approval.needed
                    ));
                }
                let answer = lines.join("; ");
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    approval.path,
                    approval.asked_at,
                    cell(&approval.prompt),
                    cell(&answer)
                );
            }
        }
        super::locks::markdown(&mut out, &self.locks);
        if self.window_until.is_some() || !self.window_gates.is_empty() {
            let _ = writeln!(out, "\n## Window\n");
            if let Some(until) = &self.window_until {
                let _ = writeln!(out, "Open until {until}.\n");
            }
            if !self.window_gates.is_empty() {
                let _ = writeln!(
                    out,
                    "| Step | Needs | From | Left | Decision |\n|---|---|---|---|---|"
                );
            }
            for gate in &self.window_gates {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    gate.path,
                    duration(gate.needed_ms),
                    cell(&gate.source.describe()),
                    duration(gate.left_ms),
                    gate.decision.name()
                );
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\n## Warnings\n");
            for warning in &self.warnings {
                let at = warning
                    .path
                    .as_ref()
                    .map(|p| format!("`{p}`: "))
                    .unwrap_or_default();
                let _ = writeln!(out, "- {} {at}{}", warning.at, warning.message);
            }
        }
        if !self.notices.is_empty() {
            let _ = writeln!(out, "\n## Notices");
            for notice in &self.notices {
                // A fenced block keeps the text as the runbook wrote it: commands stay
                // copyable, and nothing in it is taken for Markdown.
                let fence = fence_for(&notice.text);
                let _ = writeln!(
                    out,
                    "\n`{}`:\n\n{fence}\n{}\n{fence}",
                    notice.step,
                    notice.text.trim_end()
                );
            }
        }
        let _ = writeln!(
            out,
            "\n## Outputs\n\n```json\n{}\n```",
            pretty(&self.outputs)
        );
        out
    }

    fn markdown_objectives(&self, out: &mut String) {
        if self.objectives.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n## Objectives\n\n| Objective | Target | Measured | Result | How |\n|---|---|---|---|---|"
        );
        for objective in &self.objectives {
            let name = match &objective.description {
                Some(description) => format!("`{}`: {}", objective.name, cell(description)),
                None => format!("`{}`", objective.name),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | **{}** | {} |",
                duration(objective.target_ms),
                objective.measured_ms.map(duration).unwrap_or_default(),
                objective.outcome.name(),
                cell(&objective.detail),
            );
        }
    }
}
