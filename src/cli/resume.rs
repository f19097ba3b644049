use super::args::ResumeArgs;
use super::execute::{self, app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app::{self, EditRequest, Edited, ResumeRequest};

/// `runbook resume RUN_ID`: claim the run, rebuild it from its journal (with the runbook
/// sources stored there, not the files on disk), resolve secrets again, and carry on.
/// With `--runbook FILE`, the run continues with that edited runbook: the edit is checked
/// against the journal, shown step by step and journaled first.
pub fn resume(args: &ResumeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return app_failure(&error, printer),
        };
        let notice = |notice: app::Notice| printer.note(&notice.to_string());
        let claimed = match &args.runbook {
            Some(file) => {
                let request = EditRequest {
                    run_id: args.run_id.clone(),
                    file: file.clone(),
                    rerun_changed: args.rerun_changed,
                    by: args.by.clone(),
                    reason: args.reason.clone().unwrap_or_default(),
                    max_parallel: args.execution.max_parallel,
                    window_until: args.window.until(),
                };
                app::edit(store, request, &notice).await.map(|edited| {
                    show_edit(&args.run_id, &edited, printer);
                    edited.run
                })
            }
            None => {
                let request = ResumeRequest {
                    run_id: args.run_id.clone(),
                    max_parallel: args.execution.max_parallel,
                    window_until: args.window.until(),
                };
                app::resume(store, request, &notice).await
            }
        };
        match claimed {
            Ok(run) => {
                let shown = execute::Shown {
                    output: args.execution.output,
                    step_output: args.execution.verbose.verbose,
                };
                execute::execute(run, shown, printer).await
            }
            Err(error) => app_failure(&error, printer),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status)
}

/// What the edit changes, step by step, and what runs again.
fn show_edit(run_id: &str, edited: &Edited, printer: &Printer) {
    let Some(event) = &edited.event else {
        printer.note(&format!(
            "the runbook given is the one run {run_id} has; resuming it as it is"
        ));
        return;
    };
    let sha = event.root_sha256();
    printer.note(&format!(
        "run {run_id} continues with the edited runbook {} (sha256 {}), edited by {}: {}",
        event.file,
        &sha[..sha.len().min(12)],
        event.by,
        event.reason
    ));
    if edited.steps.is_empty() {
        printer.note("  no step changed");
    }
    for step in &edited.steps {
        printer.note(&format!("  {step}"));
    }
    if !event.settings.is_empty() {
        printer.note(&format!(
            "  settings changed: {}",
            event.settings.join(", ")
        ));
    }
    if !event.rerun.is_empty() {
        printer.note(&format!("running again: {}", event.rerun.join(", ")));
    }
    if !edited.still_failed.is_empty() {
        printer.note(&format!(
            "note: {} failed and did not change: still failed (runbook retry {run_id} runs it again)",
            edited
                .still_failed
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}
