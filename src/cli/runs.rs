use super::args::{ListFormat, RunsArgs, RunsCommand, RunsListArgs, RunsShowArgs, ShowFormat};
use super::execute::{app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app;
use crate::report::run_report::{RunReport, shown_status};
use serde_json::json;
use std::fmt::Write;

/// `runbook runs list` and `runbook runs show RUN_ID`.
pub fn runs(args: &RunsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match &args.command {
        RunsCommand::List(args) => list(args, printer),
        RunsCommand::Show(args) => show(args, printer),
        RunsCommand::Prune(args) => super::housekeeping::prune(args, printer),
    }
}

fn list(args: &RunsListArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let filter = app::RunFilter {
            runbook: args.runbook.clone(),
            status: args.status,
            since: args.since,
            limit: args.limit,
            after: None,
        };
        let listed = app::list(store.as_ref(), &filter).await;
        let _ = store.close().await;
        let (runs, location) = match listed {
            Ok(list) => (list.runs, list.location),
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        match args.format {
            ListFormat::Json => {
                let rows: Vec<_> = runs
                    .iter()
                    .map(|run| {
                        json!({
                            "id": run.id,
                            "runbook": run.runbook,
                            "file": run.file,
                            "status": shown_status(run),
                            "started_at": run.created_at,
                            "ended_at": run.ended_at,
                            "duration_ms": run.duration_ms,
                        })
                    })
                    .collect();
                printer.out(&(serde_json::to_string_pretty(&rows)? + "\n"));
            }
            ListFormat::Text if runs.is_empty() => {
                printer.note(&format!("no runs in {location}"));
            }
            ListFormat::Text => {
                let id_width = runs.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
                let name_width = runs
                    .iter()
                    .map(|r| r.runbook.chars().count())
                    .max()
                    .unwrap_or(7)
                    .max(7);
                let mut out = String::new();
                let _ = writeln!(
                    out,
                    "{:<id_width$}  {:<name_width$}  {:<11}  {:<20}  duration",
                    "id", "runbook", "status", "started"
                );
                for run in &runs {
                    let started = run.created_at.get(..19).unwrap_or(&run.created_at);
                    let duration = run
                        .duration_ms
                        .map(|ms| {
                            crate::runbook::Duration(std::time::Duration::from_millis(ms))
                                .to_string()
                        })
                        .unwrap_or_else(|| "-".to_owned());
                    let _ = writeln!(
                        out,
                        "{:<id_width$}  {:<name_width$}  {:<11}  {:<20}  {duration}",
                        run.id,
                        run.runbook,
                        shown_status(run).name(),
                        format!("{started}Z"),
                    );
                }
                printer.out(&out);
            }
        }
        Ok(ExitStatus::Success)
    })
}

fn show(args: &RunsShowArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let shown = app::show(store.as_ref(), &args.run_id).await;
        let _ = store.close().await;
        let run = match shown {
            Ok(run) => run,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let report = RunReport::new(&run.summary, &run.events);
        printer.out(&match args.format {
            ShowFormat::Text => report.text(),
            ShowFormat::Json => report.json(),
            ShowFormat::Markdown => report.markdown(),
            ShowFormat::Html => report.html(&run.events),
            ShowFormat::Junit => report.junit(),
        });
        Ok(ExitStatus::Success)
    })
}
