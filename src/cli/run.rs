use super::args::RunArgs;
use super::execute::{self, Execution, resolve_secrets, runtime, store_failure, store_location};
use super::plan::resolve_inputs;
use super::{ExitStatus, Printer};
use crate::engine::{Envelope, RunEvent, RunbookSource};
use crate::runbook::diagnostic::display_path;
use crate::runbook::validate::{Bundle, validate_file_allowing};
use crate::store::{self, Owner};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// `runbook run FILE`: validate, check inputs and secrets, create the run in the store with
/// its sources, then run it to the end.
pub fn run(args: &RunArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let validation = validate_file_allowing(&args.file, &args.uses.allowed);
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
    let resolved = match resolve_secrets(&bundle, printer) {
        Ok(resolved) => resolved,
        Err(status) => return Ok(status),
    };
    let secret_key = match execute::secret_key(printer) {
        Ok(key) => key,
        Err(status) => return Ok(status),
    };
    let location = match store_location(args.store.store.as_deref(), printer) {
        Ok(location) => location,
        Err(status) => return Ok(status),
    };
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    let first = Envelope {
        run_id: run_id.clone(),
        at: crate::engine::timestamp::now(),
        event: RunEvent::RunStarted {
            runbook: root.runbook.name.value.clone(),
            file: display_path(&args.file),
            inputs: Value::Object(inputs.clone()),
            sources: sources(&bundle),
        },
    };
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        if let Err(status) = execute::check_kubernetes(&bundle, &inputs, printer).await {
            return status;
        }
        let store = match store::open(&location).await {
            Ok(store) => store,
            Err(error) => return store_failure(&error, printer),
        };
        let lease = match store.create(&run_id, &Owner::current(), &first).await {
            Ok(lease) => lease,
            Err(error) => {
                let status = store_failure(&error, printer);
                if matches!(error, store::StoreError::Exists(_)) {
                    printer.note(&format!(
                        "to continue that run: runbook resume {run_id}; to start a new one, drop --run-id"
                    ));
                }
                return status;
            }
        };
        let execution = Execution {
            bundle: bundle.clone(),
            run_id: run_id.clone(),
            inputs,
            secrets: resolved,
            max_parallel: args.max_parallel,
            output: args.output,
        show_step_output: args.verbose.verbose,
            store,
            lease,
            prior: vec![first],
            resumed_by: None,
            secret_key,
        };
        execute::execute(execution, printer).await
    });
    // Do not wait for what a cancelled step left behind; its process group is already killed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}

/// The text of every runbook of the bundle, the root first: a resume runs exactly these.
pub fn sources(bundle: &Bundle) -> Vec<RunbookSource> {
    let root = bundle.runbooks.get_key_value(&bundle.root);
    let others = bundle
        .runbooks
        .iter()
        .filter(|(path, _)| **path != bundle.root);
    root.into_iter()
        .chain(others)
        .map(|(path, loaded)| RunbookSource {
            path: path.display().to_string(),
            sha256: sha256_hex(&loaded.file.text),
            text: loaded.file.text.to_string(),
        })
        .collect()
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run id that sorts by start time and does not collide: `20261121T061530Z-3f9a2c`.
fn new_run_id() -> String {
    let now = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    format!("{now}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
