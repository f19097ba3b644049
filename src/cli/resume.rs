use super::args::ResumeArgs;
use super::execute::{self, app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app::{self, ResumeRequest};

/// `runbook resume RUN_ID`: claim the run, rebuild it from its journal (with the runbook
/// sources stored there, not the files on disk), resolve secrets again, and carry on.
pub fn resume(args: &ResumeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let runtime = runtime()?;
    let status = runtime.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return app_failure(&error, printer),
        };
        let request = ResumeRequest {
            run_id: args.run_id.clone(),
            max_parallel: args.execution.max_parallel,
            window_until: args.window.until(),
        };
        let notice = |notice: app::Notice| printer.note(&notice.to_string());
        match app::resume(store, request, &notice).await {
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
