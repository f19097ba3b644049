//! `runbook skip` and `runbook retry`: controls on a run no process runs now, journaled with
//! who and why.

use super::args::{ExecutionArgs, StoreArgs};
use super::execute::{self, app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app::{self, AbortRunRequest, PauseRunRequest, RetryRequest, SkipRequest};
use clap::Args;
use serde_json::{Map, Value};

#[derive(Debug, Args)]
pub struct SkipArgs {
    /// The run (failed, cancelled or parked; not one a live process runs).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// The step to mark done: a failed step, or one that has not run.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// An output of the step, as name=value, by a name the step declares; JSON values
    /// (numbers, true, arrays, objects) are read as JSON, anything else as a string.
    /// Repeatable.
    #[arg(long = "output", value_name = "NAME=VALUE")]
    pub outputs: Vec<String>,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run (failed, cancelled, succeeded or parked; not one a live process runs).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Run again from this step: it and every step downstream of it run again, the others
    /// keep their outputs. Repeatable [default: every failed step].
    #[arg(long = "from", value_name = "STEP")]
    pub from: Vec<String>,
    /// Change an input, as name=value (read as the runbook declares it). Repeatable.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// What every control takes: why, who, and the store.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Why, kept in the journal.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who does it [default: $USER@host].
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The run, live in another process (or terminal, or host).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Interrupt the running steps too (they run again on resume) rather than let them finish.
    #[arg(long)]
    pub now: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// `name=value` pairs; the error names the one that is not.
fn pairs(texts: &[String], flag: &str) -> Result<Vec<(String, String)>, String> {
    texts
        .iter()
        .map(|text| match text.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(format!("`{flag} {text}` is not of the form name=value")),
        })
        .collect()
}

/// `runbook skip RUN_ID STEP`: marks the step done by hand; `runbook resume` continues.
pub fn skip(args: &SkipArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let outputs = match pairs(&args.outputs, "--output") {
        Ok(pairs) => pairs,
        Err(message) => {
            printer.error(&message);
            return Ok(ExitStatus::Invalid);
        }
    };
    let mut values = Map::new();
    for (name, text) in outputs {
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        values.insert(name, value);
    }
    runtime()?.block_on(async {
        let store = match app::open_store(args.control.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let request = SkipRequest {
            run_id: args.run_id.clone(),
            step: args.step.clone(),
            outputs: values,
            by: args.control.by.clone(),
            reason: args.control.reason.clone(),
        };
        let skipped = app::skip(store.as_ref(), request).await;
        let _ = store.close().await;
        match skipped {
            Ok(skipped) => {
                printer.note(&format!(
                    "skipped `{}` of run {} by hand as {}; the run is {}; continue it with: \
                     runbook resume {}",
                    args.step,
                    args.run_id,
                    skipped.by,
                    skipped.status.name(),
                    args.run_id
                ));
                Ok(ExitStatus::Success)
            }
            Err(error) => Ok(app_failure(&error, printer)),
        }
    })
}

/// `runbook retry RUN_ID`: journals the retry, shows what changed, and runs the run again
/// in this process, as `runbook resume` does.
pub fn retry(args: &RetryArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let inputs = match pairs(&args.inputs, "--input") {
        Ok(pairs) => pairs,
        Err(message) => {
            printer.error(&message);
            return Ok(ExitStatus::Invalid);
        }
    };
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        let store = match app::open_store(args.control.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return app_failure(&error, printer),
        };
        let request = RetryRequest {
            run_id: args.run_id.clone(),
            from: args.from.clone(),
            inputs,
            by: args.control.by.clone(),
            reason: args.control.reason.clone(),
            max_parallel: args.execution.max_parallel,
        };
        let notice = |notice: app::Notice| printer.note(&notice.to_string());
        match app::retry(store, request, &notice).await {
            Ok(retried) => {
                let event = &retried.event;
                printer.note(&format!(
                    "retrying run {} from {} as {}; running again: {}",
                    args.run_id,
                    event.from.join(", "),
                    event.by,
                    event.rerun.join(", ")
                ));
                for change in &event.changed {
                    printer.note(&format!("input {}", change.describe()));
                }
                let shown = execute::Shown {
                    output: args.execution.output,
                    step_output: args.execution.verbose.verbose,
                };
                execute::execute(retried.run, shown, printer).await
            }
            Err(error) => app_failure(&error, printer),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}

/// `runbook pause RUN_ID`: asks the process that runs the run to park it; `runbook resume`
/// continues it.
pub fn pause(args: &PauseArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match app::open_store(args.control.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let request = PauseRunRequest {
            run_id: args.run_id.clone(),
            now: args.now,
            by: args.control.by.clone(),
            reason: args.control.reason.clone(),
        };
        let asked = app::pause(store.as_ref(), request).await;
        let _ = store.close().await;
        match asked {
            Ok(asked) => {
                let running = if args.now {
                    "its running steps are interrupted"
                } else {
                    "once its running steps finish"
                };
                printer.note(&format!(
                    "asked {} to pause run {} as {}: nothing more starts, and it parks {running}; \
                     continue it with: runbook resume {}",
                    asked.owner, args.run_id, asked.request.by, args.run_id
                ));
                Ok(ExitStatus::Success)
            }
            Err(error) => Ok(app_failure(&error, printer)),
        }
    })
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The run: parked, waiting, interrupted, failed (with --undo), or live in another
    /// process.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Run the `undo` of every step that succeeded, in reverse order of the graph.
    #[arg(long)]
    pub undo: bool,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// `runbook abort RUN_ID`: a stopped run is finished in this process (its undo, if asked,
/// then `finally`); a live one is asked, through the store, to do the same.
pub fn abort(args: &AbortArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        let store = match app::open_store(args.control.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return app_failure(&error, printer),
        };
        let request = AbortRunRequest {
            run_id: args.run_id.clone(),
            undo: args.undo,
            by: args.control.by.clone(),
            reason: args.control.reason.clone(),
            max_parallel: args.execution.max_parallel,
        };
        let notice = |notice: app::Notice| printer.note(&notice.to_string());
        match app::abort(store.clone(), request, &notice).await {
            Ok(app::Aborted::Asked { request, owner }) => {
                let _ = store.close().await;
                let undo = if request.undo { ", undo it" } else { "" };
                printer.note(&format!(
                    "asked {owner} to abort run {} as {}: it stops its steps{undo}, runs \
                     `finally` and ends",
                    args.run_id, request.by
                ));
                ExitStatus::Success
            }
            Ok(app::Aborted::Claimed { request, run }) => {
                let undo = if request.undo { "; undoing it" } else { "" };
                printer.note(&format!(
                    "aborting run {} as {}{undo}",
                    args.run_id, request.by
                ));
                let shown = execute::Shown {
                    output: args.execution.output,
                    step_output: args.execution.verbose.verbose,
                };
                execute::execute(*run, shown, printer).await
            }
            Err(error) => app_failure(&error, printer),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}
