use super::args::{OutputFormat, RunArgs};
use super::plan::resolve_inputs;
use super::{ExitStatus, Printer};
use crate::engine::{self, EventSink, RunConfig, RunStatus, secrets};
use crate::report::{self, JsonLines, Progress};
use crate::runbook::validate::validate_file;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `runbook run FILE`: validate, check inputs and secrets, then run to the end.
pub fn run(args: &RunArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let validation = validate_file(&args.file);
    if !validation.is_valid() {
        printer.diagnostics(&validation.problems);
        return Ok(ExitStatus::Invalid);
    }
    let bundle = Arc::new(validation.bundle);
    let root = bundle.root().expect("a valid runbook has loaded");
    let inputs = match resolve_inputs(&root.runbook, &args.inputs)? {
        Ok(values) => values,
        Err(errors) => {
            for error in errors {
                printer.error(&error);
            }
            return Ok(ExitStatus::Invalid);
        }
    };
    let mut resolved = HashMap::new();
    for (path, loaded) in &bundle.runbooks {
        match secrets::resolve(loaded) {
            Ok(values) => {
                resolved.insert(path.clone(), values);
            }
            Err(error) => {
                printer.error(&error.to_string());
                return Ok(ExitStatus::Invalid);
            }
        }
    }
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let interrupt = CancellationToken::new();
    let progress = Arc::new(Progress::new());
    let sink: Arc<dyn EventSink> = match args.output {
        OutputFormat::Human => progress.clone(),
        OutputFormat::Json => Arc::new(JsonLines),
    };
    let config = RunConfig {
        run_id: run_id.clone(),
        inputs,
        secrets: resolved,
        max_parallel: args.max_parallel.map(|n| n as usize),
        interrupt: interrupt.clone(),
    };
    let outcome = runtime.block_on(async {
        // Handlers are in place before the first step starts: a Ctrl-C at any moment of
        // the run interrupts it cleanly, never kills it outright.
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(int)) => {
                tokio::spawn(watch_signals(terminate, int, interrupt));
            }
            _ => printer.note("warning: cannot watch for Ctrl-C; an interrupted run stops at once"),
        }
        engine::run(bundle.clone(), config, sink).await
    });
    if args.output == OutputFormat::Human {
        progress.finish();
        printer.note(&report::summary::render(&outcome, &run_id));
        if outcome.status == RunStatus::Succeeded
            && outcome.outputs.as_object().is_some_and(|o| !o.is_empty())
        {
            let mut text = serde_json::to_string_pretty(&outcome.outputs)?;
            text.push('\n');
            printer.out(&text);
        }
    }
    // Do not wait for what a cancelled step left behind; its process group is already killed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(match outcome.status {
        RunStatus::Succeeded => ExitStatus::Success,
        RunStatus::Interrupted | RunStatus::Waiting => ExitStatus::Parked,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Running => ExitStatus::Failure,
    })
}

/// The first Ctrl-C or SIGTERM interrupts the run: running steps are cancelled and
/// `finally` runs. A second one exits at once.
async fn watch_signals(
    mut terminate: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    interrupt: CancellationToken,
) {
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = int.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            eprintln!(
                "interrupted: cancelling running steps, then running `finally` (press Ctrl-C again to exit now)"
            );
            interrupt.cancel();
        } else {
            eprintln!("exiting now");
            std::process::exit(3);
        }
    }
}

/// A run id that sorts by start time and does not collide: `20261121T061530Z-3f9a2c`.
fn new_run_id() -> String {
    let now = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    format!("{now}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
