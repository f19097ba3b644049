//! `runbook logs RUN_ID [STEP] [--follow]`: what the steps of a run printed, read from its
//! journal. With `--follow` it keeps reading while the run goes on, and stops once it ends
//! or parks.

use super::args::LogsArgs;
use super::execute::{open_store, runtime, store_failure};
use super::{ExitStatus, Printer};
use crate::event::{Envelope, RunEvent};
use crate::report::step_output::prefixed;
use std::collections::HashMap;
use std::time::Duration;

/// How often `--follow` reads the journal again.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

pub fn logs(args: &LogsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match open_store(args.store.store.as_deref(), printer).await {
            Ok(store) => store,
            Err(status) => return Ok(status),
        };
        let mut view = LogView::new(args.step.clone());
        loop {
            let events = match store.events(&args.run_id).await {
                Ok(events) => events,
                Err(error) => {
                    let _ = store.close().await;
                    return Ok(store_failure(&error, printer));
                }
            };
            let text = view.read(&events);
            if !text.is_empty() {
                printer.out(&text);
            }
            if !args.follow || view.over {
                break;
            }
            // A run whose process died without ending it has no owner left: nothing more
            // will be written until someone resumes it.
            match store.run(&args.run_id).await {
                Ok(summary) if summary.owner.is_none() && !events.is_empty() => break,
                Ok(_) => {}
                Err(error) => {
                    let _ = store.close().await;
                    return Ok(store_failure(&error, printer));
                }
            }
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
        let _ = store.close().await;
        if let Some(step) = &args.step
            && !view.step_seen
        {
            printer.error(&format!(
                "run `{}` has no step `{step}` that started (see `runbook runs show {}`)",
                args.run_id, args.run_id
            ));
            return Ok(ExitStatus::Invalid);
        }
        Ok(ExitStatus::Success)
    })
}

/// Reads a journal, event after event, into the lines `logs` prints.
struct LogView {
    /// Only this step (and its `for_each` items and called steps), when given.
    step: Option<String>,
    /// Events already read.
    seen: usize,
    /// The attempt under way of each step path: output belongs to it.
    attempts: HashMap<String, (u32, bool)>,
    /// Whether a step the filter names has started.
    step_seen: bool,
    /// Whether the run ended or parked: a `run_ended` was read.
    over: bool,
}

impl LogView {
    fn new(step: Option<String>) -> Self {
        LogView {
            step,
            seen: 0,
            attempts: HashMap::new(),
            step_seen: false,
            over: false,
        }
    }

    fn wanted(&self, path: &str) -> bool {
        match &self.step {
            None => true,
            Some(step) => {
                path == step
                    || path
                        .strip_prefix(step.as_str())
                        .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('/'))
            }
        }
    }

    /// The text for the events not read yet.
    fn read(&mut self, events: &[Envelope]) -> String {
        let mut out = String::new();
        for envelope in events.iter().skip(self.seen) {
            match &envelope.event {
                RunEvent::StepStarted {
                    path,
                    attempt,
                    fallback,
                    ..
                } => {
                    self.step_seen |= self.wanted(path);
                    self.attempts.insert(path.clone(), (*attempt, *fallback));
                }
                RunEvent::StepOutput {
                    path,
                    stdout,
                    stderr,
                    cut_bytes,
                } if self.wanted(path) => {
                    let (attempt, fallback) =
                        self.attempts.get(path).copied().unwrap_or((1, false));
                    let which = if fallback {
                        "fallback attempt"
                    } else {
                        "attempt"
                    };
                    out.push_str(&format!("-- {path}, {which} {attempt}\n"));
                    out.push_str(&prefixed(path, stdout, stderr, *cut_bytes));
                    out.push('\n');
                }
                RunEvent::RunEnded { .. } => self.over = true,
                RunEvent::RunResumed { .. } => self.over = false,
                _ => {}
            }
        }
        self.seen = events.len();
        out
    }
}
