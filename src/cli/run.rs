use super::args::RunArgs;
use super::execute::{self, app_failure, runtime};
use super::plan::resolve_inputs;
use super::{ExitStatus, Printer};
use crate::app::{self, AppError, EnqueueRequest, StartRequest};
use crate::runbook::diagnostic::display_path;
use crate::store::StoreError;

/// `runbook run FILE`: validate, check inputs and secrets, create the run in the store with
/// its sources, then run it to the end.
pub fn run(args: &RunArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let bundle = match app::load(&args.file, &args.uses.allowed) {
        Ok(bundle) => bundle,
        Err(error) => return Ok(app_failure(&error, printer)),
    };
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
    if args.queue {
        return enqueue(args, bundle, inputs, printer);
    }
    let request = StartRequest {
        bundle: bundle.clone(),
        file: display_path(&args.file),
        inputs,
        run_id: args.run_id.clone(),
        store: args.store.store.clone(),
        max_parallel: args.max_parallel,
        window_until: args.window.until(),
        origin: None,
        started_by: None,
    };
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        match app::start(request).await {
            Ok(run) => {
                let shown = execute::Shown {
                    output: args.output,
                    step_output: args.verbose.verbose,
                };
                execute::execute(run, shown, printer).await
            },
            Err(error) => {
                let status = app_failure(&error, printer);
                if let AppError::Store(StoreError::Exists(run_id)) = &error {
                    printer.note(&format!(
                        "to continue that run: runbook resume {run_id}; to start a new one, drop --run-id"
                    ));
                }
                status
            }
        }
    });
    // Do not wait for what a cancelled step left behind; its process group is already killed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}

/// `runbook run --queue FILE`: creates the run as `queued` and prints its id; a `serve`
/// worker runs it.
fn enqueue(
    args: &RunArgs,
    bundle: std::sync::Arc<crate::runbook::validate::Bundle>,
    inputs: serde_json::Map<String, serde_json::Value>,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let request = EnqueueRequest {
        bundle,
        file: display_path(&args.file),
        inputs,
        run_id: args.run_id.clone(),
        store: args.store.store.clone(),
        started_by: None,
    };
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        match app::enqueue(request).await {
            Ok(run_id) => {
                printer.out(&format!("{run_id}\n"));
                printer.note_on_terminal(&format!(
                    "queued: a runbook serve worker sharing the store runs it; follow it with: \
                     runbook runs show {run_id}"
                ));
                ExitStatus::Success
            }
            Err(error) => app_failure(&error, printer),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}
