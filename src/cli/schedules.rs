//! `runbook schedules`: the next fire times of each schedule of a serve configuration;
//! `check` validates one; `schema` prints its JSON Schema.

use super::args::{SchedulesArgs, SchedulesCommand};
use super::{ExitStatus, Printer};
use crate::runbook::diagnostic::display_path;
use crate::serve::{Missed, Schedule};
use std::fmt::Write;

pub fn schedules(args: &SchedulesArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if let Some(SchedulesCommand::Schema) = args.command {
        printer.out(&crate::serve::config::json_schema());
        return Ok(ExitStatus::Success);
    }
    let Some(config) = &args.config else {
        printer.error("--config FILE is required: the serve configuration");
        return Ok(ExitStatus::Invalid);
    };
    let schedules = match crate::serve::load(config) {
        Ok(setup) => setup.schedules,
        Err(problems) => {
            printer.diagnostics(&problems);
            return Ok(ExitStatus::Invalid);
        }
    };
    if let Some(SchedulesCommand::Check) = args.command {
        printer.note_on_terminal(&format!(
            "{}: {} valid",
            display_path(config),
            match schedules.len() {
                1 => "1 schedule".to_owned(),
                n => format!("{n} schedules"),
            }
        ));
        return Ok(ExitStatus::Success);
    }
    let now = jiff::Timestamp::now();
    let mut out = String::new();
    for schedule in &schedules {
        describe(&mut out, schedule, now, args.count);
    }
    printer.out(&out);
    Ok(ExitStatus::Success)
}

/// A schedule's settings on one line, then its next fire times in its time zone.
fn describe(out: &mut String, schedule: &Schedule, now: jiff::Timestamp, count: usize) {
    let mut settings = vec![
        format!("cron `{}` in {}", schedule.cron_text, schedule.zone_name),
        format!("overlap {:?}", schedule.overlap).to_lowercase(),
    ];
    if let Some(window) = schedule.window {
        settings.push(format!("window {}", crate::runbook::Duration(window)));
    }
    settings.push(match &schedule.missed {
        Missed::Skip => "missed: skip".to_owned(),
        Missed::RunLatestWithin(within) => format!("missed: run the latest within {within}"),
    });
    if !schedule.blackouts.is_empty() {
        settings.push(format!("{} blackouts", schedule.blackouts.len()));
    }
    let _ = writeln!(
        out,
        "{}  {}\n  {}",
        schedule.name,
        display_path(&schedule.runbook),
        settings.join(", ")
    );
    if !schedule.enabled {
        let _ = writeln!(out, "  disabled: never fires\n");
        return;
    }
    let fires = schedule.upcoming(now, count);
    if fires.is_empty() {
        let _ = writeln!(out, "  no fire time ahead");
    }
    for fire in fires {
        let _ = writeln!(out, "  {}", fire.strftime("%Y-%m-%d %H:%M:%S %:z %a"));
    }
    out.push('\n');
}
