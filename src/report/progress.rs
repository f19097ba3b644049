//! Live progress on the terminal: which steps run, their attempt, polling, elapsed time.
//! Off a terminal (CI logs, pipes) the same events become plain lines.

use super::symbols::Symbols;
use crate::event::{Envelope, EventSink, GateDecision, RunEvent, StepStatus};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    /// The live line on a terminal; `None` writes plain lines.
    bar: Option<ProgressBar>,
    running: Mutex<BTreeMap<String, (String, Instant)>>,
    /// Shows what each step printed (`--verbose`), each line prefixed by its step.
    step_output: bool,
    symbols: Symbols,
    /// The last failed attempt of each step, not shown yet: the step's end usually says the
    /// same, and then it is shown once, there.
    last_failure: Mutex<BTreeMap<String, (String, String)>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            running: Mutex::new(BTreeMap::new()),
            step_output: false,
            symbols: Symbols::from_env(),
            last_failure: Mutex::new(BTreeMap::new()),
        }
    }

    /// Also shows what each step prints, as each run of its action ends.
    pub fn with_step_output(mut self) -> Self {
        self.step_output = true;
        self
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                // One write for the line and its end: stderr is not buffered, and `writeln!`
                // would make two, a system call each, for every step's start and end.
                let mut line = String::with_capacity(text.len() + 1);
                line.push_str(text);
                line.push('\n');
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn refresh(&self) {
        let Some(bar) = &self.bar else { return };
        let running = self.running.lock().expect("progress lock");
        if running.is_empty() {
            bar.set_message("");
            return;
        }
        let parts: Vec<String> = running
            .iter()
            .map(|(path, (what, since))| format!("{path} {what} {}s", since.elapsed().as_secs()))
            .collect();
        bar.set_message(format!("running: {}", parts.join(" · ")));
    }

    /// Shows the last failed attempt of a step held back, unless the step's end says the
    /// same (`error`).
    fn flush_failure(&self, path: &str, error: Option<&str>) {
        let held = self
            .last_failure
            .lock()
            .expect("progress lock")
            .remove(path);
        if let Some((line, held_error)) = held
            && !error.is_some_and(|error| error.contains(held_error.as_str()))
        {
            self.line(&line);
        }
    }

    /// Clears the live line before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, envelope: &Envelope) {
        match &envelope.event {
            RunEvent::RunStarted { runbook, .. } => {
                self.line(&format!("run {} of `{runbook}` started", envelope.run_id));
            }
            RunEvent::StepSkippedByHand(skipped) => {
                self.line(&format!(
                    "{}: skipped by hand by {}: {}",
                    skipped.path, skipped.by, skipped.reason
                ));
            }
            RunEvent::RunPaused(pause) => {
                let running = if pause.now {
                    "running steps are interrupted"
                } else {
                    "running steps finish"
                };
                self.line(&format!(
                    "{}; nothing more starts, {running}",
                    pause.describe()
                ));
            }
            RunEvent::RunAborted(abort) => {
                self.line(&format!("{}; nothing more starts", abort.describe()));
            }
            RunEvent::RunUndoing { reason } => {
                self.line(&format!("undoing: {reason}"));
            }
            RunEvent::UndoStarted {
                path,
                attempt,
                attempts,
            } => {
                let suffix = if *attempts > 1 {
                    format!(" (attempt {attempt}/{attempts})")
                } else {
                    String::new()
                };
                self.line(&format!("{} undo {path}{suffix}", self.symbols.started));
            }
            RunEvent::UndoAttemptFailed {
                path,
                attempt,
                error,
                ..
            } => {
                self.line(&format!(
                    "{} undo {path} attempt {attempt} failed: {error}",
                    self.symbols.retrying
                ));
            }
            RunEvent::UndoEnded {
                path,
                status,
                error,
                ..
            } => {
                let why = error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
                self.line(&format!("undo {path} {}{why}", status.name()));
            }
            RunEvent::RunRetried(retried) => {
                self.line(&format!(
                    "retried by {}: {}; running again: {}",
                    retried.by,
                    retried.reason,
                    retried.rerun.join(", ")
                ));
            }
            RunEvent::RunEdited(edited) => {
                let rerun = if edited.rerun.is_empty() {
                    String::new()
                } else {
                    format!("; running again: {}", edited.rerun.join(", "))
                };
                self.line(&format!(
                    "runbook edited by {}: {}{rerun}",
                    edited.by, edited.reason
                ));
            }
            RunEvent::StepStarted {
                path,
                attempt,
                attempts,
                fallback,
            } => {
                // The action failed for good and its fallback starts: the failure first.
                self.flush_failure(path, None);
                let what = match (fallback, attempts) {
                    (true, _) => format!("fallback attempt {attempt}/{attempts}"),
                    (false, 1) => String::new(),
                    (false, _) => format!("attempt {attempt}/{attempts}"),
                };
                if self.bar.is_none() {
                    let suffix = if what.is_empty() {
                        String::new()
                    } else {
                        format!(" ({what})")
                    };
                    self.line(&format!("{} {path}{suffix}", self.symbols.started));
                }
                let mut running = self.running.lock().expect("progress lock");
                let since = running
                    .get(path)
                    .map_or_else(Instant::now, |(_, since)| *since);
                running.insert(path.clone(), (what, since));
            }
            RunEvent::StepExpanded { path, items, .. } => {
                self.line(&format!(
                    "{} {path}: {} items",
                    self.symbols.started,
                    items.len()
                ));
            }
            RunEvent::StepPolling {
                path,
                attempt,
                poll,
            } => {
                let mut running = self.running.lock().expect("progress lock");
                if let Some(entry) = running.get_mut(path) {
                    entry.0 = format!("attempt {attempt}, poll {poll}");
                }
            }
            RunEvent::StepAttemptFailed {
                path,
                attempt,
                error,
                retry_in_ms,
                fallback,
            } => {
                let which = if *fallback {
                    "fallback attempt"
                } else {
                    "attempt"
                };
                let next = match retry_in_ms {
                    Some(ms) => format!(
                        "; retrying in {}",
                        crate::runbook::Duration(Duration::from_millis(*ms))
                    ),
                    None => String::new(),
                };
                let line = format!(
                    "{} {path} {which} {attempt} failed: {error}{next}",
                    self.symbols.retrying
                );
                if retry_in_ms.is_some() {
                    self.line(&line);
                } else {
                    self.last_failure
                        .lock()
                        .expect("progress lock")
                        .insert(path.clone(), (line, error.clone()));
                }
            }
            RunEvent::StepEnded {
                path,
                status,
                via,
                error,
                duration_ms,
                ..
            } => {
                self.running.lock().expect("progress lock").remove(path);
                self.flush_failure(path, error.as_deref());
                let mark = match status {
                    StepStatus::Succeeded => self.symbols.succeeded,
                    StepStatus::Failed => self.symbols.failed,
                    StepStatus::Skipped => self.symbols.skipped,
                    StepStatus::Cancelled => self.symbols.cancelled,
                };
                let via = if *via == Some(crate::engine::Via::Fallback) {
                    " via fallback"
                } else {
                    ""
                };
                // `cancelled in 2s: cancelled` would say it twice.
                let error = error
                    .as_ref()
                    .filter(|e| e.as_str() != status.name())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                self.line(&format!(
                    "{mark} {path} {}{via} in {}{error}",
                    status.name(),
                    crate::runbook::Duration(Duration::from_millis(*duration_ms))
                ));
            }
            RunEvent::StepOutput {
                path,
                stdout,
                stderr,
                cut_bytes,
            } if self.step_output => {
                self.line(&crate::report::step_output::prefixed(
                    path, stdout, stderr, *cut_bytes,
                ));
            }
            RunEvent::StepOutput { .. } => {}
            RunEvent::Warning { path, message } => {
                let at = path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default();
                self.line(&format!("warning: {at}{message}"));
            }
            RunEvent::RunResumed { by } => {
                self.line(&format!("run {} resumed by {by}", envelope.run_id));
            }
            RunEvent::ApprovalRequested { path, prompt, .. } => {
                self.line(&format!(
                    "? {path} waits for approval: {prompt}\n  answer with: runbook approve {} {path} [--reject] [--comment TEXT]",
                    envelope.run_id
                ));
            }
            RunEvent::ApprovalGiven {
                path,
                approved,
                by,
                comment,
                ..
            } => {
                let verdict = if *approved { "approved" } else { "rejected" };
                let comment = comment
                    .as_ref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                self.line(&format!("{path} {verdict} by {by}{comment}"));
            }
            RunEvent::LockWaiting(waiting) => {
                self.line(&format!(
                    "{}waiting for lock {} held by {}",
                    step_prefix(&waiting.step),
                    waiting.lock,
                    waiting.held_by
                ));
            }
            RunEvent::LockAcquired(acquired) => {
                // Said only after a wait: a lock taken at once is no news on the terminal.
                if acquired.waited_ms > 0 {
                    self.line(&format!(
                        "{}lock {} acquired after {}",
                        step_prefix(&acquired.step),
                        acquired.lock,
                        super::run_report::duration(acquired.waited_ms)
                    ));
                }
            }
            RunEvent::LockReleased(_) => {}
            RunEvent::WindowOpened { until } => {
                self.line(&format!("window open until {until}"));
            }
            RunEvent::WindowChecked(gate) if gate.decision != GateDecision::Start => {
                self.line(&format!("window: {}", gate.describe()));
            }
            RunEvent::WindowChecked(_) => {}
            // Shown with the summary, at the end, where a person looks when the run is over.
            RunEvent::StepNotice { .. } | RunEvent::RunEnded { .. } => {}
        }
        self.refresh();
    }
}

/// `step: ` before a step's lock message; nothing for the run's own locks.
fn step_prefix(step: &str) -> String {
    if step.is_empty() {
        String::new()
    } else {
        format!("{step}: ")
    }
}
