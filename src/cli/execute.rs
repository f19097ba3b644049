//! What `run` and `resume` share once the run is claimed: signals, the journal, the executor,
//! the summary and the exit status.

use super::args::OutputFormat;
use super::{ExitStatus, Printer};
use crate::engine::seal::SecretKey;
use crate::engine::{self, Envelope, EventSink, RunConfig, RunStatus};
use crate::report::{self, JsonLines, Progress};
use crate::runbook::validate::Bundle;
use crate::store::{Journal, Lease, Store, StoreError, StoreLocation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A claimed run, ready to go.
pub struct Execution {
    pub bundle: Arc<Bundle>,
    pub run_id: String,
    pub inputs: Map<String, Value>,
    pub secrets: HashMap<PathBuf, Map<String, Value>>,
    pub max_parallel: Option<u32>,
    pub output: OutputFormat,
    /// `--verbose`: show what each step prints.
    pub show_step_output: bool,
    pub store: Arc<dyn Store>,
    pub lease: Lease,
    /// The journal so far; the next event is number `prior.len() + 1`.
    pub prior: Vec<Envelope>,
    pub resumed_by: Option<String>,
    pub secret_key: Option<SecretKey>,
}

/// Runs a claimed run until it ends or parks.
pub async fn execute(execution: Execution, printer: &Printer) -> ExitStatus {
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
            tokio::spawn(watch_signals([terminate, int, hangup], interrupt.clone()));
        }
        _ => printer.note("warning: cannot watch for Ctrl-C; an interrupted run stops at once"),
    }
    // Every step command from now on is tied to this process: when it ends, however it
    // ends, so do they.
    if let Some(first) = execution.prior.first() {
        crate::process::supervise(
            &execution.run_id,
            crate::process::RunMark::new(&execution.run_id, &first.at),
        );
    }
    let progress = Progress::new();
    let progress = Arc::new(if execution.show_step_output {
        progress.with_step_output()
    } else {
        progress
    });
    let sink: Arc<dyn EventSink> = match execution.output {
        OutputFormat::Human => progress.clone(),
        OutputFormat::Json => Arc::new(JsonLines),
    };
    let store = execution.store.clone();
    let journal = Arc::new(Journal::start(
        execution.store.clone(),
        execution.lease,
        execution.prior.len() as u64 + 1,
    ));
    let run_id = execution.run_id;
    let config = RunConfig {
        run_id: run_id.clone(),
        inputs: execution.inputs,
        secrets: execution.secrets,
        max_parallel: execution.max_parallel.map(|n| n as usize),
        interrupt,
        journal: journal.clone(),
        prior: execution.prior,
        resumed_by: execution.resumed_by,
        store: Some(execution.store.clone()),
        secret_key: execution.secret_key,
    };
    let outcome = engine::run(execution.bundle, config, sink).await;
    // Waits for the supervisor to stop what the run left behind (a process that escaped its
    // step's process group) before the run is reported over.
    let _ = tokio::task::spawn_blocking(crate::process::end_supervision).await;
    let closed = journal.close().await;
    let _ = store.close().await;
    if execution.output == OutputFormat::Human {
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
    if let Some(error) = outcome.journal_error.or(closed.err()) {
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
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Running => ExitStatus::Failure,
    }
}

/// The first Ctrl-C, SIGTERM or SIGHUP interrupts the run: running steps are cancelled and
/// `finally` runs. A second one exits at once, after SIGKILL to every process of every
/// running step (a child that ignores SIGTERM must not outlive the engine).
async fn watch_signals(
    [mut terminate, mut int, mut hangup]: [tokio::signal::unix::Signal; 3],
    interrupt: CancellationToken,
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
            crate::process::kill_every_step_process();
            let _ = writeln!(stderr, "exiting now");
            std::process::exit(3);
        }
    }
}

/// The store named by `--store` or `RUNBOOK_STORE`, else the default one.
pub fn store_location(url: Option<&str>, printer: &Printer) -> Result<StoreLocation, ExitStatus> {
    StoreLocation::resolve(url).map_err(|error| {
        printer.error(&error.to_string());
        ExitStatus::Invalid
    })
}

/// Reports a store error and picks the exit status: a run that does not exist is a mistake
/// on the command line; everything else means the journal cannot be used right now.
pub fn store_failure(error: &StoreError, printer: &Printer) -> ExitStatus {
    match error {
        StoreError::NotFound(_)
        | StoreError::Missing(_)
        | StoreError::Exists(_)
        | StoreError::Location(_)
        | StoreError::AlreadyDecided { .. } => {
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

/// The secrets of every runbook of the bundle, from their `env` or `file`; a missing one is
/// reported, and nothing runs.
pub fn resolve_secrets(
    bundle: &Bundle,
    printer: &Printer,
) -> Result<HashMap<PathBuf, Map<String, Value>>, ExitStatus> {
    let mut resolved = HashMap::new();
    for (path, loaded) in &bundle.runbooks {
        match crate::engine::secrets::resolve(loaded) {
            Ok(values) => {
                resolved.insert(path.clone(), values);
            }
            Err(error) => {
                printer.error(&error.to_string());
                return Err(ExitStatus::Invalid);
            }
        }
    }
    Ok(resolved)
}

/// The key that keeps values carrying a secret readable across a resume, when one is set.
pub fn secret_key(printer: &Printer) -> Result<Option<SecretKey>, ExitStatus> {
    SecretKey::from_environment().map_err(|error| {
        printer.error(&error.to_string());
        ExitStatus::Invalid
    })
}

/// Opens the existing store named on the command line, reporting why it cannot be. Only
/// `run` creates a store: the commands that read or answer runs have nothing to do in a new
/// one, and creating it would hide a mistyped `--store`.
pub async fn open_store(
    url: Option<&str>,
    printer: &Printer,
) -> Result<Arc<dyn Store>, ExitStatus> {
    let location = store_location(url, printer)?;
    crate::store::open_existing(&location)
        .await
        .map_err(|error| store_failure(&error, printer))
}

/// Refuses to start a run whose `kubernetes` steps cannot reach a cluster configuration: a
/// broken kubeconfig or a missing context is found before anything runs.
pub async fn check_kubernetes(
    bundle: &Bundle,
    inputs: &Map<String, Value>,
    printer: &Printer,
) -> Result<(), ExitStatus> {
    crate::actions::kubernetes::preflight(bundle, inputs)
        .await
        .map_err(|error| {
            printer.error(&format!("kubernetes: {error}"));
            ExitStatus::Invalid
        })
}
