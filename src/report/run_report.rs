//! `runbook runs show`: one run, rebuilt from its journal, as text for the terminal, JSON
//! for tools, or Markdown to file as a report (a drill report, an upgrade record).

use crate::engine::{Envelope, RunEvent, Via};
use crate::store::RunSummary;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub id: String,
    pub runbook: String,
    pub file: String,
    /// As `runs list` shows it: a `running` run whose process is gone is `interrupted`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub inputs: Value,
    pub outputs: Value,
    pub steps: Vec<StepReport>,
    pub approvals: Vec<ApprovalReport>,
    /// Each time a process took the run up again: when, and who.
    pub resumes: Vec<Resume>,
    pub warnings: Vec<WarningReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub path: String,
    /// `succeeded`, `failed`, `skipped`, `cancelled`; `running`, `waiting` or `unfinished`
    /// when it has not ended.
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    pub outputs: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    pub path: String,
    pub prompt: String,
    pub asked_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resume {
    pub at: String,
    pub by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WarningReport {
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

/// The status `runs list` and `runs show` give a run: the journal's, except that a run
/// still marked `running` whose owner is gone was interrupted (by a crash or a kill).
pub fn shown_status(summary: &RunSummary) -> String {
    if summary.status == "running" && summary.owner.as_ref().is_none_or(|o| o.is_gone()) {
        "interrupted".to_owned()
    } else {
        summary.status.clone()
    }
}

impl RunReport {
    pub fn new(summary: &RunSummary, events: &[Envelope]) -> Self {
        let status = shown_status(summary);
        let mut report = RunReport {
            id: summary.id.clone(),
            runbook: summary.runbook.clone(),
            file: summary.file.clone(),
            status: status.clone(),
            reason: None,
            created_at: summary.created_at.clone(),
            ended_at: summary.ended_at.clone(),
            duration_ms: summary.duration_ms,
            inputs: Value::Null,
            outputs: Value::Null,
            steps: Vec::new(),
            approvals: Vec::new(),
            resumes: Vec::new(),
            warnings: Vec::new(),
        };
        let unfinished = match status.as_str() {
            "running" => "running",
            _ => "unfinished",
        };
        let mut steps: IndexMap<String, StepReport> = IndexMap::new();
        fn entry<'m>(
            steps: &'m mut IndexMap<String, StepReport>,
            path: &str,
            unfinished: &str,
        ) -> &'m mut StepReport {
            steps.entry(path.to_owned()).or_insert_with(|| StepReport {
                path: path.to_owned(),
                status: unfinished.to_owned(),
                attempts: 0,
                started_at: None,
                ended_at: None,
                duration_ms: None,
                via: None,
                item: None,
                outputs: Value::Null,
                error: None,
            })
        }
        // Steps are listed in the order they ran: one that runs again in a later process
        // (a `finally` step, a step a resume takes up again) moves to where it ran last.
        let mut segment = 0;
        let mut started_in: HashMap<String, usize> = HashMap::new();
        let mut runs_again =
            |steps: &mut IndexMap<String, StepReport>, path: &str, at: &str, segment: usize| {
                let again = steps.get(path).is_some_and(|step| {
                    step.ended_at.is_some() || started_in.get(path).is_some_and(|s| *s < segment)
                });
                started_in.insert(path.to_owned(), segment);
                if again && let Some(mut step) = steps.shift_remove(path) {
                    step.started_at = Some(at.to_owned());
                    step.ended_at = None;
                    steps.insert(path.to_owned(), step);
                }
            };
        for envelope in events {
            let at = &envelope.at;
            match &envelope.event {
                RunEvent::RunStarted { inputs, .. } => report.inputs = inputs.clone(),
                RunEvent::RunResumed { by } => {
                    segment += 1;
                    report.resumes.push(Resume {
                        at: at.clone(),
                        by: by.clone(),
                    })
                }
                RunEvent::StepStarted { path, attempt, .. } => {
                    runs_again(&mut steps, path, at, segment);
                    let step = entry(&mut steps, path, unfinished);
                    step.started_at.get_or_insert_with(|| at.clone());
                    step.attempts = step.attempts.max(*attempt);
                    step.status = unfinished.to_owned();
                }
                RunEvent::StepExpanded { path, .. } => {
                    runs_again(&mut steps, path, at, segment);
                    entry(&mut steps, path, unfinished)
                        .started_at
                        .get_or_insert_with(|| at.clone());
                }
                RunEvent::StepEnded {
                    path,
                    status,
                    attempts,
                    via,
                    outputs,
                    error,
                    item,
                    duration_ms,
                    ..
                } => {
                    let step = entry(&mut steps, path, unfinished);
                    step.started_at.get_or_insert_with(|| at.clone());
                    step.status = status.name().to_owned();
                    step.attempts = *attempts;
                    step.via = *via;
                    step.outputs = outputs.clone();
                    step.error = error.clone();
                    step.item = item.clone();
                    step.ended_at = Some(at.clone());
                    step.duration_ms = Some(*duration_ms);
                }
                RunEvent::ApprovalRequested { path, prompt, .. } => {
                    let step = entry(&mut steps, path, unfinished);
                    if step.ended_at.is_none() {
                        step.status = "waiting".to_owned();
                    }
                    report.approvals.push(ApprovalReport {
                        path: path.clone(),
                        prompt: prompt.clone(),
                        asked_at: at.clone(),
                        approved: None,
                        by: None,
                        comment: None,
                        answered_at: None,
                    });
                }
                RunEvent::ApprovalGiven {
                    path,
                    approved,
                    by,
                    comment,
                    answered_at,
                } => {
                    if let Some(approval) =
                        report.approvals.iter_mut().rev().find(|a| a.path == *path)
                    {
                        approval.approved = Some(*approved);
                        approval.by = Some(by.clone());
                        approval.comment = comment.clone();
                        approval.answered_at = Some(answered_at.clone());
                    }
                }
                RunEvent::Warning { path, message } => report.warnings.push(WarningReport {
                    at: at.clone(),
                    path: path.clone(),
                    message: message.clone(),
                }),
                RunEvent::RunEnded {
                    reason, outputs, ..
                } => {
                    report.reason = reason.clone();
                    report.outputs = outputs.clone();
                }
                RunEvent::StepPolling { .. }
                | RunEvent::StepAttemptFailed { .. }
                | RunEvent::StepOutput { .. } => {}
            }
        }
        report.steps = steps.into_values().collect();
        report
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "run       {}", self.id);
        let _ = writeln!(out, "runbook   {} ({})", self.runbook, self.file);
        let reason = self
            .reason
            .as_ref()
            .filter(|_| self.status != "succeeded")
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(out, "status    {}{reason}", self.status);
        let _ = writeln!(out, "started   {}", self.created_at);
        if let Some(ended) = &self.ended_at {
            let _ = writeln!(out, "ended     {ended}");
        }
        if let Some(ms) = self.duration_ms {
            let _ = writeln!(out, "duration  {}", duration(ms));
        }
        let _ = writeln!(out, "inputs    {}", compact(&self.inputs));
        for resume in &self.resumes {
            let _ = writeln!(out, "resumed   {} by {}", resume.at, resume.by);
        }
        let width = self
            .steps
            .iter()
            .map(|s| s.path.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "\n{:<width$}  {:<10}  {:>8}  {:>9}  started",
            "step", "status", "attempts", "time"
        );
        for step in &self.steps {
            let via = match step.via {
                Some(Via::Fallback) => "  via fallback",
                Some(Via::Verify) => "  verified done",
                _ => "",
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:<10}  {:>8}  {:>9}  {}{via}",
                step.path,
                step.status,
                step.attempts,
                step.duration_ms.map(duration).unwrap_or_default(),
                step.started_at.as_deref().unwrap_or("-"),
            );
            if !is_empty(&step.outputs) {
                let _ = writeln!(out, "{:width$}  outputs: {}", "", compact(&step.outputs));
            }
            if let Some(error) = &step.error {
                let _ = writeln!(out, "{:width$}  error: {error}", "");
            }
        }
        for approval in &self.approvals {
            let _ = writeln!(out, "\napproval  {}: {}", approval.path, approval.prompt);
            match (&approval.approved, &approval.by) {
                (Some(approved), Some(by)) => {
                    let verdict = if *approved { "approved" } else { "rejected" };
                    let comment = approval
                        .comment
                        .as_ref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "          {verdict} by {by}{comment}");
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "          waiting: runbook approve {} {}",
                        self.id, approval.path
                    );
                }
            }
        }
        if !is_empty(&self.outputs) {
            let _ = writeln!(
                out,
                "\noutputs\n{}",
                serde_json::to_string_pretty(&self.outputs).unwrap_or_default()
            );
        }
        out
    }

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
        let _ = writeln!(out, "| Status | **{}** |", self.status);
        if let Some(reason) = self.reason.as_ref().filter(|_| self.status != "succeeded") {
            let _ = writeln!(out, "| Reason | {} |", cell(reason));
        }
        let _ = writeln!(out, "| Started | {} |", self.created_at);
        if let Some(ended) = &self.ended_at {
            let _ = writeln!(out, "| Ended | {ended} |");
        }
        if let Some(ms) = self.duration_ms {
            let _ = writeln!(out, "| Duration | {} |", duration(ms));
        }
        for resume in &self.resumes {
            let _ = writeln!(out, "| Resumed | {} by {} |", resume.at, cell(&resume.by));
        }
        let _ = writeln!(out, "\n## Inputs\n\n```json\n{}\n```", pretty(&self.inputs));
        let _ = writeln!(
            out,
            "\n## Steps\n\n| Step | Status | Attempts | Started | Duration | Outputs | Error |\n|---|---|---|---|---|---|---|"
        );
        for step in &self.steps {
            let status = match step.via {
                Some(Via::Fallback) => format!("{} (via fallback)", step.status),
                Some(Via::Verify) => format!("{} (verified done)", step.status),
                _ => step.status.clone(),
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
                let answer = match (&approval.approved, &approval.by) {
                    (Some(true), Some(by)) => format!("approved by {by}"),
                    (Some(false), Some(by)) => format!("rejected by {by}"),
                    _ => "waiting".to_owned(),
                };
                let comment = approval
                    .comment
                    .as_ref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    approval.path,
                    approval.asked_at,
                    cell(&approval.prompt),
                    cell(&format!("{answer}{comment}"))
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
        let _ = writeln!(
            out,
            "\n## Outputs\n\n```json\n{}\n```",
            pretty(&self.outputs)
        );
        out
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn duration(ms: u64) -> String {
    crate::runbook::Duration(Duration::from_millis(ms)).to_string()
}
