//! What `run` and `resume` share once the run is claimed: signals, progress, the summary and
//! the exit status; and how every failure of the application layer is told and mapped.

use super::args::OutputFormat;
use super::{ExitStatus, Printer};
use crate::app::{AppError, ClaimedRun, Watch};
use crate::event::{EventSink, RunStatus};
use crate::process::RunProcesses;
use crate::report::{self, JsonLines, Progress};
use crate::store::StoreError;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How a run is shown while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    pub output: OutputFormat,
    /// `--verbose`: show what each step prints, prefixed by its step.
    pub step_output: bool,
}

/// Runs a claimed run until it ends or parks, showing it on the terminal.
pub async fn execute(run: ClaimedRun, shown: Shown, printer: &Printer) -> ExitStatus {
    let output = shown.output;
    let interrupt = CancellationToken::new();
    // Handlers are in place before the first step starts: a Ctrl-C at any moment of the run
    // interrupts it cleanly, never kills it outright. SIGHUP (the terminal or SSH session is
    // gone) is a request to stop like SIGTERM: the default would kill the engine on the spot.
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(terminate), Ok(int), Ok(hangup)) => {
            tokio::spawn(watch_signals(
                [terminate, int, hangup],
                interrupt.clone(),
                run.processes().clone(),
            ));
        }
        _ => printer.note("warning: cannot watch for Ctrl-C; an interrupted run stops at once"),
    }
    let progress = Progress::new();
    let progress = Arc::new(if shown.step_output {
        progress.with_step_output()
    } else {
        progress
    });
    let sink: Arc<dyn EventSink> = match output {
        OutputFormat::Human => progress.clone(),
        OutputFormat::Json => Arc::new(JsonLines),
    };
    // This process runs this one run: its thread has nothing else to do while the journal
    // is written or a short step command runs, and a chain's steps are not each handed to
    // another thread and back.
    run.append_on_its_thread().await;
    run.processes().wait_on_the_runs_thread();
    let result = run.execute(Watch { sink, interrupt }).await;
    let (run_id, outcome) = (result.run_id, result.outcome);
    if output == OutputFormat::Human {
        progress.finish();
        printer.note(&report::summary::render(&outcome, &run_id));
        if outcome.status == RunStatus::Succeeded
            && outcome.outputs.as_object().is_some_and(|o| !o.is_empty())
            && let Ok(mut text) = serde_json::to_string_pretty(&outcome.outputs)
        {
            text.push('\n');
            printer.out(&text);
        }
    }
    if let Some(error) = result.journal_error {
        let when = match *error {
            StoreError::Full(_) => "Once there is room on the disk again",
            _ => "Once the store works again",
        };
        printer.error(&format!(
            "run {run_id} stopped because its journal could not be written: {error}\n\
             Everything recorded before is intact. {when}, continue with: \
             runbook resume {run_id}"
        ));
        return ExitStatus::Unavailable;
    }
    match outcome.status {
        RunStatus::Succeeded => ExitStatus::Success,
        RunStatus::Interrupted | RunStatus::Waiting => {
            printer.note(&format!("continue with: runbook resume {run_id}"));
            ExitStatus::Parked
        }
        RunStatus::Parked => {
            printer.note(&format!(
                "continue in a later window with: runbook resume {run_id} --window DURATION"
            ));
            ExitStatus::Parked
        }
        RunStatus::Failed
        | RunStatus::Cancelled
        | RunStatus::Undone
        | RunStatus::Running
        | RunStatus::Queued => ExitStatus::Failure,
    }
}

/// The first Ctrl-C, SIGTERM or SIGHUP interrupts the run: running steps are cancelled and
/// `finally` runs. A second one exits at once, after SIGKILL to every process of every
/// running step (a child that ignores SIGTERM must not outlive the engine).
async fn watch_signals(
    [mut terminate, mut int, mut hangup]: [tokio::signal::unix::Signal; 3],
    interrupt: CancellationToken,
    processes: RunProcesses,
) {
    use std::io::Write;
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = int.recv() => {}
            _ = hangup.recv() => {}
        }
        seen += 1;
        // A terminal that hung up cannot be written to; that must not stop the run ending.
        let mut stderr = std::io::stderr();
        if seen == 1 {
            let _ = writeln!(
                stderr,
                "interrupted: cancelling running steps, then running `finally` (press Ctrl-C again to exit now)"
            );
            interrupt.cancel();
        } else {
            processes.kill_every_step_process();
            let _ = writeln!(stderr, "exiting now");
            std::process::exit(3);
        }
    }
}

/// Tells why the application layer did nothing, and picks the exit status: a mistake in the
/// runbook or on the command line is `Invalid`; a journal that cannot be used right now is
/// `Unavailable`.
/// Opens the store a command reads, telling why it cannot on the terminal.
pub async fn open_store(
    url: Option<&str>,
    printer: &Printer,
) -> Result<Arc<dyn crate::store::Store>, ExitStatus> {
    crate::app::open_store(url)
        .await
        .map_err(|error| app_failure(&error, printer))
}

pub fn app_failure(error: &AppError, printer: &Printer) -> ExitStatus {
    match error {
        AppError::InvalidRunbook(problems) => {
            printer.diagnostics(problems);
            ExitStatus::Invalid
        }
        AppError::StoredRunbookInvalid { problems, .. }
        | AppError::EditInvalid { problems, .. } => {
            printer.diagnostics(problems);
            printer.error(&error.to_string());
            ExitStatus::Invalid
        }
        AppError::Store(error) => store_failure(error, printer),
        AppError::NotResumable(_) | AppError::Leftovers(_) | AppError::LeftoverScan { .. } => {
            printer.error(&error.to_string());
            ExitStatus::Unavailable
        }
        AppError::Secret(_)
        | AppError::SecretKey(_)
        | AppError::StoreLocation(_)
        | AppError::Preflight(_)
        | AppError::AlreadyEnded { .. }
        | AppError::AlreadyAnswered { .. }
        | AppError::AnsweredTwice { .. }
        | AppError::StarterMayNotAnswer { .. }
        | AppError::NotWaiting { .. }
        | AppError::UnknownStep { .. }
        | AppError::NotSkippable { .. }
        | AppError::UnknownOutput { .. }
        | AppError::NothingFailed { .. }
        | AppError::BadInputs(_)
        | AppError::EditRefused { .. }
        | AppError::StepPathRefused { .. }
        | AppError::NotLive { .. }
        | AppError::SecretOutput { .. }
        | AppError::WindowOver { .. } => {
            printer.error(&error.to_string());
            ExitStatus::Invalid
        }
    }
}

/// Reports a store error and picks the exit status: a run that does not exist is a mistake
/// on the command line; everything else means the journal cannot be used right now.
pub fn store_failure(error: &StoreError, printer: &Printer) -> ExitStatus {
    match error {
        StoreError::NotFound(_)
        | StoreError::Missing(_)
        | StoreError::Exists(_)
        | StoreError::Location(_)
        | StoreError::AlreadyDecided { .. }
        | StoreError::AlreadyAnsweredBy { .. } => {
            printer.error(&error.to_string());
            ExitStatus::Invalid
        }
        StoreError::Owned { run_id, owner } => {
            printer.error(&format!(
                "run {run_id} is already being run by {owner}; \
                 wait for it to end, or stop that process and resume again"
            ));
            ExitStatus::Unavailable
        }
        _ => {
            printer.error(&error.to_string());
            ExitStatus::Unavailable
        }
    }
}

/// A multi-threaded runtime for the commands that talk to a store.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
