//! `runbook runs show`: one run, rebuilt from its journal. Each format renders this model
//! in a file of its own: `text.rs`, `json.rs`, `markdown.rs`.

use super::objectives::{ObjectiveReport, measure_run};
use crate::engine::state::{RunState, StepRecord};
use crate::event::{Envelope, Notice, RunEvent, RunStatus, StepStatus, Via, WindowGate};
use crate::store::RunSummary;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub id: String,
    pub runbook: String,
    pub file: String,
    /// As `runs list` shows it: a `running` run whose process is gone is `interrupted`.
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    /// Who started it (`$USER@host`), when the journal says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
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
    /// What people did to the run from outside it (`runbook skip`, `runbook retry`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<ControlReport>,
    pub warnings: Vec<WarningReport>,
    /// What the steps' `notice` said, one per step path (the latest), in order.
    pub notices: Vec<Notice>,
    /// Each time the run or a step took (or waited for) a lock shared across runs.
    pub locks: Vec<super::locks::LockReport>,
    /// When the window of the run's latest segment closes, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_until: Option<String>,
    /// Every decision of a step gated by `window`, with its numbers, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub window_gates: Vec<WindowGate>,
    /// The head of the run's hash chain as the store keeps it (hex SHA-256).
    #[serde(skip)]
    pub journal_head: String,
    /// The runbook's objectives, measured on this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<ObjectiveReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub path: String,
    pub status: StepState,
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
    /// Who marked the step done by hand, and why (`runbook skip`); unlike a step whose
    /// `when` did not hold, it carries the outputs given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_by_hand: Option<String>,
    /// Attempts the step made in all, those before a `runbook retry` included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_in_all: Option<u32>,
}

/// Where a step stands in a report: how it ended, or why it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Started in a run that is still running.
    Running,
    /// An approval step waiting for its answer.
    Waiting,
    /// Started in a run that is no longer running, and never ended.
    Unfinished,
}

impl StepState {
    pub fn name(self) -> &'static str {
        match self {
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Cancelled => "cancelled",
            StepState::Running => "running",
            StepState::Waiting => "waiting",
            StepState::Unfinished => "unfinished",
        }
    }
}

impl From<StepStatus> for StepState {
    fn from(status: StepStatus) -> Self {
        match status {
            StepStatus::Succeeded => StepState::Succeeded,
            StepStatus::Failed => StepState::Failed,
            StepStatus::Skipped => StepState::Skipped,
            StepStatus::Cancelled => StepState::Cancelled,
        }
    }
}

/// An approval step's question and its answers. `approved`, `by`, `comment` and
/// `answered_at` give the verdict once the step is settled (`by` names every approver, or
/// whoever rejected it); `answers` holds each person's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    pub path: String,
    pub prompt: String,
    pub asked_at: String,
    /// Different people who must approve.
    pub needed: u32,
    /// Whoever started the run may not answer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub distinct_from_starter: bool,
    /// Every answer, in the order given: one per person.
    pub answers: Vec<AnswerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
}

/// One person's answer to an approval step.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    pub approved: bool,
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub answered_at: String,
}

impl AnswerReport {
    /// `approved by ana: looks right`.
    pub fn line(&self) -> String {
        format!(
            "{} by {}{}",
            if self.approved {
                "approved"
            } else {
                "rejected"
            },
            self.by,
            self.comment
                .as_ref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )
    }
}

impl ApprovalReport {
    /// Approvals given so far by different people.
    pub fn approvals(&self) -> usize {
        self.answers.iter().filter(|a| a.approved).count()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resume {
    pub at: String,
    pub by: String,
}

/// A control a person applied to the run: when, who, what and why.
#[derive(Debug, Clone, Serialize)]
pub struct ControlReport {
    pub at: String,
    pub by: String,
    pub what: String,
    pub reason: String,
}

impl ControlReport {
    /// `AT by WHO: WHAT (WHY)`.
    pub fn describe(&self) -> String {
        format!(
            "{} by {}: {} ({})",
            self.at, self.by, self.what, self.reason
        )
    }
}

/// One entry of a run's history besides its steps: a process took it up again, or a person
/// applied a control.
pub enum HistoryEntry<'a> {
    Resumed(&'a Resume),
    Control(&'a ControlReport),
}

impl RunReport {
    /// Resumes and controls in the order they happened (times are written at one width,
    /// so they sort as text; at the same moment, the control comes first).
    pub fn history(&self) -> Vec<HistoryEntry<'_>> {
        let mut entries: Vec<(&str, u8, HistoryEntry<'_>)> = self
            .resumes
            .iter()
            .map(|r| (r.at.as_str(), 1, HistoryEntry::Resumed(r)))
            .chain(
                self.controls
                    .iter()
                    .map(|c| (c.at.as_str(), 0, HistoryEntry::Control(c))),
            )
            .collect();
        entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        entries.into_iter().map(|(_, _, entry)| entry).collect()
    }
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
pub fn shown_status(summary: &RunSummary) -> RunStatus {
    if summary.status == RunStatus::Running && summary.owner.as_ref().is_none_or(|o| o.is_gone()) {
        RunStatus::Interrupted
    } else {
        summary.status
    }
}

impl RunReport {
    pub fn new(summary: &RunSummary, events: &[Envelope]) -> Self {
        let status = shown_status(summary);
        let mut report = RunReport {
            id: summary.id.clone(),
            runbook: summary.runbook.clone(),
            file: summary.file.clone(),
            status,
            reason: None,
            created_at: summary.created_at.clone(),
            started_by: None,
            ended_at: summary.ended_at.clone(),
            duration_ms: summary.duration_ms,
            inputs: Value::Null,
            outputs: Value::Null,
            steps: Vec::new(),
            approvals: Vec::new(),
            resumes: Vec::new(),
            controls: Vec::new(),
            warnings: Vec::new(),
            notices: Vec::new(),
            locks: Vec::new(),
            window_until: None,
            window_gates: Vec::new(),
            objectives: measure_run(events),
            journal_head: summary.chain_head.clone(),
        };
        // Where each step stands: the executor's own fold of the events, so that a report
        // cannot disagree with what a resume would do.
        let mut state = RunState::default();
        for envelope in events {
            let at = &envelope.at;
            state.apply_at(&envelope.event, at);
            match &envelope.event {
                RunEvent::RunStarted { inputs, by, .. } => {
                    report.inputs = inputs.clone();
                    report.started_by = by.clone();
                }
                RunEvent::RunResumed { by } => report.resumes.push(Resume {
                    at: at.clone(),
                    by: by.clone(),
                }),
                RunEvent::ApprovalRequested {
                    path,
                    prompt,
                    needed,
                    distinct_from_starter,
                    ..
                } => {
                    report.approvals.push(ApprovalReport {
                        path: path.clone(),
                        prompt: prompt.clone(),
                        asked_at: at.clone(),
                        needed: needed.unwrap_or(1),
                        distinct_from_starter: *distinct_from_starter,
                        answers: Vec::new(),
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
                        && approval.approved.is_none()
                        && !approval.answers.iter().any(|a| a.by == *by)
                    {
                        approval.answers.push(AnswerReport {
                            approved: *approved,
                            by: by.clone(),
                            comment: comment.clone(),
                            answered_at: answered_at.clone(),
                        });
                        // Settled by a rejection, or by the last approval the step needed.
                        if !*approved || approval.approvals() >= approval.needed as usize {
                            approval.approved = Some(*approved);
                            approval.by = Some(if *approved {
                                approval
                                    .answers
                                    .iter()
                                    .map(|a| a.by.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            } else {
                                by.clone()
                            });
                            approval.comment = comment.clone();
                            approval.answered_at = Some(answered_at.clone());
                        }
                    }
                }
                RunEvent::StepSkippedByHand(skipped) => report.controls.push(ControlReport {
                    at: at.clone(),
                    by: skipped.by.clone(),
                    what: format!(
                        "skipped `{}` by hand, outputs {}",
                        skipped.path,
                        compact(&skipped.outputs)
                    ),
                    reason: skipped.reason.clone(),
                }),
                RunEvent::RunPaused(pause) => report.controls.push(ControlReport {
                    at: at.clone(),
                    by: pause.by.clone(),
                    what: if pause.now { "paused now" } else { "paused" }.to_owned(),
                    reason: pause.reason.clone(),
                }),
                RunEvent::RunRetried(retried) => {
                    if let Some(inputs) = &retried.inputs {
                        report.inputs = inputs.clone();
                    }
                    let mut what = format!(
                        "retried from {} (running again: {})",
                        retried.from.join(", "),
                        retried.rerun.join(", ")
                    );
                    for change in &retried.changed {
                        what.push_str(&format!("; input {}", change.describe()));
                    }
                    report.controls.push(ControlReport {
                        at: at.clone(),
                        by: retried.by.clone(),
                        what,
                        reason: retried.reason.clone(),
                    })
                }
                RunEvent::RunEdited(edited) => {
                    if let Some(inputs) = &edited.inputs {
                        report.inputs = inputs.clone();
                    }
                    report.controls.push(ControlReport {
                        at: at.clone(),
                        by: edited.by.clone(),
                        what: edited_summary(edited),
                        reason: edited.reason.clone(),
                    })
                }
                RunEvent::Warning { path, message } => report.warnings.push(WarningReport {
                    at: at.clone(),
                    path: path.clone(),
                    message: message.clone(),
                }),
                RunEvent::LockWaiting(_)
                | RunEvent::LockAcquired(_)
                | RunEvent::LockReleased(_) => {
                    super::locks::apply(&mut report.locks, &envelope.event, at)
                }
                RunEvent::RunAborted(abort) => report.controls.push(ControlReport {
                    at: at.clone(),
                    by: abort.by.clone(),
                    what: if abort.undo { "aborted, with undo" } else { "aborted" }.to_owned(),
                    reason: abort.reason.clone(),
                }),
                RunEvent::RunEnded { .. }
                | RunEvent::RunUndoing { .. }
                | RunEvent::UndoStarted { .. }
                | RunEvent::UndoAttemptFailed { .. }
                | RunEvent::UndoEnded { .. }
                | RunEvent::StepPolling { .. }
                | RunEvent::StepNotice { .. }
                | RunEvent::StepOutput { .. }
                | RunEvent::StepAttemptFailed { .. }
                // The steps are the executor's fold's, above.
                | RunEvent::StepStarted { .. }
                | RunEvent::StepExpanded { .. }
                | RunEvent::StepEnded { .. }
                | RunEvent::WindowOpened { .. }
                | RunEvent::WindowChecked(_) => {}
            }
        }
        let running = status == RunStatus::Running;
        report.steps = state
            .order
            .iter()
            .filter_map(|path| {
                let record = state.steps.get(&**path)?;
                Some(StepReport::new(path, record, running))
            })
            .collect();
        report.reason = state.run.reason;
        report.outputs = state.run.outputs;
        report.notices = state.run.notices;
        report.window_until = state.run.window_until;
        report.window_gates = state.run.gates;
        report
    }
}

impl StepReport {
    /// A step as the run's fold left it; `running` says whether the run still runs.
    pub fn new(path: &str, record: &StepRecord, running: bool) -> StepReport {
        let status = match record.status {
            Some(status) => status.into(),
            None if record.approval_requested_at().is_some() => StepState::Waiting,
            None if running => StepState::Running,
            None => StepState::Unfinished,
        };
        let ended = record.ended_at().is_some();
        StepReport {
            path: path.to_owned(),
            status,
            attempts: record.attempts,
            started_at: record.started_at().map(crate::event::timestamp::format),
            ended_at: record.ended_at().map(crate::event::timestamp::format),
            duration_ms: ended.then_some(record.duration_ms),
            via: record.via.filter(|_| ended),
            item: record.item.clone(),
            outputs: if ended {
                record.outputs.clone()
            } else {
                Value::Null
            },
            error: record.error.clone().filter(|_| ended),
            skipped_by_hand: record.skipped_by_hand().map(str::to_owned),
            attempts_in_all: (record.earlier_attempts > 0)
                .then(|| record.earlier_attempts + record.attempts),
        }
    }
}

pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

pub(super) fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Text safe inside a Markdown table cell.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(super) fn duration(ms: u64) -> String {
    crate::runbook::Duration(Duration::from_millis(ms)).to_string()
}

/// A code fence longer than any run of backticks in `text`.
pub(super) fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// One line for an edit: the file and its hash, what changed, what runs again.
fn edited_summary(edited: &crate::event::RunEdited) -> String {
    let sha = edited.root_sha256();
    let mut what = format!(
        "edited the runbook: {} (sha256 {})",
        edited.file,
        &sha[..sha.len().min(12)]
    );
    let changes: Vec<String> = edited.changes.iter().map(|c| c.describe()).collect();
    if !changes.is_empty() {
        what.push_str(&format!("; {}", changes.join("; ")));
    }
    if !edited.settings.is_empty() {
        what.push_str(&format!(
            "; settings changed: {}",
            edited.settings.join(", ")
        ));
    }
    if !edited.rerun.is_empty() {
        what.push_str(&format!(" (running again: {})", edited.rerun.join(", ")));
    }
    what
}
