use super::args::ApproveArgs;
use super::execute::{app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app::{self, ApproveRequest};

/// `runbook approve RUN_ID STEP`: records an answer to an approval step that is waiting. The
/// run's owner (or the next `runbook resume`) journals it and carries on.
pub fn approve(args: &ApproveArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let request = ApproveRequest {
            run_id: args.run_id.clone(),
            step: args.step.clone(),
            approved: !args.reject,
            by: args.by.clone(),
            comment: args.comment.clone(),
        };
        let recorded = app::approve(store.as_ref(), request).await;
        let _ = store.close().await;
        let recorded = match recorded {
            Ok(recorded) => recorded,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let run_id = &args.run_id;
        let verdict = if args.reject { "rejected" } else { "approved" };
        let next = match recorded.picked_up_by {
            Some(owner) => format!("the run's process ({owner}) will pick it up"),
            None => format!("continue the run with: runbook resume {run_id}"),
        };
        printer.note(&format!(
            "{verdict} `{}` of run {run_id} as {}; {next}",
            args.step, recorded.decision.by
        ));
        Ok(ExitStatus::Success)
    })
}
