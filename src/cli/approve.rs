use super::args::ApproveArgs;
use super::execute::{open_store, runtime, store_failure};
use super::{ExitStatus, Printer};
use crate::engine::state::RunState;
use crate::runbook::de::closest;
use crate::store::{Decision, owner::this_host};

/// `runbook approve RUN_ID STEP`: records an answer to an approval step that is waiting. The
/// run's owner (or the next `runbook resume`) journals it and carries on.
pub fn approve(args: &ApproveArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match open_store(args.store.store.as_deref(), printer).await {
            Ok(store) => store,
            Err(status) => return Ok(status),
        };
        let run_id = &args.run_id;
        let events = match store.events(run_id).await {
            Ok(events) => events,
            Err(error) => return Ok(store_failure(&error, printer)),
        };
        let mut state = RunState::default();
        for envelope in &events {
            state.apply_at(&envelope.event, &envelope.at);
        }
        if let Some(status) = state.status.filter(|s| s.is_over()) {
            printer.error(&format!(
                "run {run_id} has already ended ({}); there is nothing to approve",
                status.name()
            ));
            return Ok(ExitStatus::Invalid);
        }
        let asking: Vec<&str> = state
            .steps
            .iter()
            .filter(|(_, r)| r.approval_requested_at.is_some() && r.decision.is_none())
            .map(|(path, _)| path.as_str())
            .collect();
        // An answer may be recorded and not yet journaled (the run is parked): look at both.
        let recorded = match store.decisions(run_id).await {
            Ok(decisions) => decisions
                .into_iter()
                .find(|d| d.path == args.step)
                .map(|d| (d.approved, d.by)),
            Err(error) => return Ok(store_failure(&error, printer)),
        };
        let journaled = state
            .steps
            .get(&args.step)
            .and_then(|r| r.decision.as_ref())
            .map(|a| (a.approved, a.by.clone()));
        if let Some((approved, by)) = journaled.or(recorded) {
            let verdict = if approved { "approved" } else { "rejected" };
            printer.error(&format!(
                "step `{}` of run {run_id} was already {verdict} by {by}",
                args.step
            ));
            return Ok(ExitStatus::Invalid);
        }
        if !asking.contains(&args.step.as_str()) {
            let waiting = if asking.is_empty() {
                "no step of it is waiting for approval now".to_owned()
            } else {
                format!("waiting for approval: {}", asking.join(", "))
            };
            let hint = closest(&args.step, asking.iter().copied())
                .map(|near| format!(" (did you mean `{near}`?)"))
                .unwrap_or_default();
            printer.error(&format!(
                "step `{}` of run {run_id} is not waiting for approval{hint}; {waiting}",
                args.step
            ));
            return Ok(ExitStatus::Invalid);
        }
        let by = args.by.clone().unwrap_or_else(|| {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".to_owned());
            format!("{user}@{}", this_host())
        });
        let decision = Decision {
            path: args.step.clone(),
            approved: !args.reject,
            by: by.clone(),
            comment: args.comment.clone(),
            at: crate::engine::timestamp::now(),
        };
        if let Err(error) = store.decide(run_id, &decision).await {
            return Ok(store_failure(&error, printer));
        }
        let verdict = if args.reject { "rejected" } else { "approved" };
        let next = match store.run(run_id).await.ok().and_then(|r| r.owner) {
            Some(owner) if !owner.is_gone() => {
                format!("the run's process ({owner}) will pick it up")
            }
            _ => format!("continue the run with: runbook resume {run_id}"),
        };
        let _ = store.close().await;
        printer.note(&format!(
            "{verdict} `{}` of run {run_id} as {by}; {next}",
            args.step
        ));
        Ok(ExitStatus::Success)
    })
}
