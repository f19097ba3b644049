use super::args::ResumeArgs;
use super::execute::{self, Execution, open_store, resolve_secrets, runtime, store_failure};
use super::run::sha256_hex;
use super::{ExitStatus, Printer};
use crate::engine::state::RunState;
use crate::engine::{Envelope, RunEvent};
use crate::process::{self, RunMark};
use crate::runbook::validate::validate_stored;
use crate::store::{Lease, Owner, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `runbook resume RUN_ID`: claim the run, rebuild it from its journal (with the runbook
/// sources stored there, not the files on disk), resolve secrets again, and carry on.
pub fn resume(args: &ResumeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        let store = match open_store(args.store.store.as_deref(), printer).await {
            Ok(store) => store,
            Err(status) => return status,
        };
        // Claim first: the journal read next cannot change under us.
        let lease = match store.claim(&args.run_id, &Owner::current()).await {
            Ok(lease) => lease,
            Err(error) => return store_failure(&error, printer),
        };
        let prepared = match prepare(args, store.clone(), lease.clone(), printer).await {
            Ok(execution) => stop_leftovers(execution, printer).await,
            Err(status) => Err(status),
        };
        match prepared {
            Ok(execution) => execute::execute(execution, printer).await,
            Err(status) => {
                // Nothing ran: let the next attempt claim the run at once.
                let _ = store.release(&lease).await;
                status
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}

/// Before any step runs again, stops every process an earlier engine of this run left
/// running (killed with its supervisor, nothing stopped them): a step never runs twice at
/// once. They are found by the run's mark in their environment.
async fn stop_leftovers(execution: Execution, printer: &Printer) -> Result<Execution, ExitStatus> {
    let Some(first) = execution.prior.first() else {
        return Ok(execution);
    };
    let run_id = execution.run_id.clone();
    let mark = RunMark::new(&run_id, &first.at);
    let stopped = tokio::task::spawn_blocking(move || {
        process::stop_leftovers(&run_id, &mark, LEFTOVER_GRACE)
    })
    .await;
    match stopped {
        Ok(Ok(0)) => Ok(execution),
        Ok(Ok(count)) => {
            printer.note(&format!(
                "note: stopped {count} {} left running by run {} before resuming it",
                if count == 1 { "process" } else { "processes" },
                execution.run_id
            ));
            Ok(execution)
        }
        Ok(Err(error)) => {
            printer.error(&error.to_string());
            Err(ExitStatus::Unavailable)
        }
        Err(error) => {
            printer.error(&format!(
                "cannot look for processes left by run {}: {error}",
                execution.run_id
            ));
            Err(ExitStatus::Unavailable)
        }
    }
}

/// How long a leftover process has between SIGTERM and SIGKILL: as long as a cancelled step.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn prepare(
    args: &ResumeArgs,
    store: Arc<dyn Store>,
    lease: Lease,
    printer: &Printer,
) -> Result<Execution, ExitStatus> {
    let run_id = &args.run_id;
    let prior = store
        .events(run_id)
        .await
        .map_err(|error| store_failure(&error, printer))?;
    let mut state = RunState::default();
    for envelope in &prior {
        state.apply(&envelope.event);
    }
    if let Some(status) = state.status.filter(|s| s.is_over()) {
        printer.error(&format!(
            "run {run_id} has already ended ({}); there is nothing to resume",
            status.name()
        ));
        return Err(ExitStatus::Invalid);
    }
    let Some(Envelope {
        event: RunEvent::RunStarted {
            inputs, sources, ..
        },
        ..
    }) = prior.first()
    else {
        printer.error(&format!(
            "the journal of run {run_id} does not start with the run's creation; it cannot be resumed"
        ));
        return Err(ExitStatus::Unavailable);
    };
    let Some(root) = sources.first() else {
        printer.error(&format!(
            "the journal of run {run_id} holds no runbook source; it cannot be resumed"
        ));
        return Err(ExitStatus::Unavailable);
    };
    let texts: HashMap<PathBuf, String> = sources
        .iter()
        .map(|s| (PathBuf::from(&s.path), s.text.clone()))
        .collect();
    // Edits since the run started do not apply to it; say so, so nobody is surprised.
    for source in sources {
        let current = crate::runbook::bounded_read::read_text_bounded(
            std::path::Path::new(&source.path),
            crate::runbook::load::MAX_FILE_BYTES,
        );
        match current {
            Ok(text) if sha256_hex(&text) == source.sha256 => {}
            Ok(_) => printer.note(&format!(
                "note: {} has changed since run {run_id} started; resuming with the runbook as it was then (kept in the journal)",
                source.path
            )),
            Err(_) => printer.note(&format!(
                "note: {} is gone; resuming with the runbook as it was when run {run_id} started (kept in the journal)",
                source.path
            )),
        }
    }
    let validation = validate_stored(&PathBuf::from(&root.path), &texts);
    if !validation.is_valid() {
        printer.diagnostics(&validation.problems);
        printer.error(&format!(
            "the runbook stored with run {run_id} is not valid for this version of runbook"
        ));
        return Err(ExitStatus::Invalid);
    }
    let bundle = Arc::new(validation.bundle);
    let resolved = resolve_secrets(&bundle, printer)?;
    let secret_key = execute::secret_key(printer)?;
    let inputs = inputs.as_object().cloned().unwrap_or_default();
    execute::check_kubernetes(&bundle, &inputs, printer).await?;
    Ok(Execution {
        bundle,
        run_id: run_id.clone(),
        inputs,
        secrets: resolved,
        max_parallel: args.max_parallel,
        output: args.output,
        show_step_output: args.verbose.verbose,
        store,
        resumed_by: Some(lease.owner.to_string()),
        lease,
        prior,
        secret_key,
    })
}
