//! `runbook report trend RUNBOOK`: the runs of one runbook over time.

use super::args::{ReportArgs, ReportCommand, TrendArgs, TrendFormat};
use super::execute::{app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app;
use crate::report::run_report::RunReport;
use crate::report::trend::Trend;
use crate::runbook::load;
use std::path::Path;

pub fn report(args: &ReportArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match &args.command {
        ReportCommand::Trend(args) => trend(args, printer),
    }
}

/// The runbook's name: RUNBOOK itself, or the `name` in the file it names.
fn runbook_name(runbook: &str, printer: &Printer) -> Result<String, ExitStatus> {
    let path = Path::new(runbook);
    if !path.is_file() {
        return Ok(runbook.to_owned());
    }
    let source = load::read_source(path).map_err(|problem| {
        printer.diagnostics(&[problem]);
        ExitStatus::Invalid
    })?;
    match load::load(source) {
        (Some(loaded), _) => Ok(loaded.runbook.name.value),
        (None, problems) => {
            printer.diagnostics(&problems);
            Err(ExitStatus::Invalid)
        }
    }
}

fn trend(args: &TrendArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let name = match runbook_name(&args.runbook, printer) {
        Ok(name) => name,
        Err(status) => return Ok(status),
    };
    runtime()?.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let filter = app::RunFilter {
            runbook: Some(name.clone()),
            limit: Some(args.last as usize),
            ..app::RunFilter::default()
        };
        let mut reports = Vec::new();
        let listed = app::list(store.as_ref(), &filter).await;
        let runs = match listed {
            Ok(list) => list.runs,
            Err(error) => {
                let _ = store.close().await;
                return Ok(app_failure(&error, printer));
            }
        };
        for run in &runs {
            match app::show(store.as_ref(), &run.id).await {
                Ok(run) => reports.push(RunReport::new(&run.summary, &run.events)),
                Err(error) => {
                    let _ = store.close().await;
                    return Ok(app_failure(&error, printer));
                }
            }
        }
        let _ = store.close().await;
        let trend = Trend::new(&name, &reports);
        if trend.runs.is_empty() {
            // No run is no evidence: a pipeline gated on the drill must not pass.
            printer.error(&trend.verdict());
            return Ok(ExitStatus::Failure);
        } else {
            printer.out(&match args.format {
                TrendFormat::Text => trend.text(),
                TrendFormat::Json => trend.json(),
                TrendFormat::Html => trend.html(),
            });
        }
        Ok(if trend.latest_short_of.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        })
    })
}
