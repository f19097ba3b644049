//! `runbook locks`: who holds which lock, as the store says now.

use super::args::{ListFormat, LocksArgs};
use super::execute::{app_failure, runtime};
use super::{ExitStatus, Printer};
use crate::app;
use serde_json::json;
use std::fmt::Write;

pub fn locks(args: &LocksArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match app::open_store(args.store.store.as_deref()).await {
            Ok(store) => store,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        let listed = app::locks(store.as_ref()).await;
        let _ = store.close().await;
        let list = match listed {
            Ok(list) => list,
            Err(error) => return Ok(app_failure(&error, printer)),
        };
        match args.format {
            ListFormat::Json => {
                let rows: Vec<_> = list
                    .locks
                    .iter()
                    .map(|lock| {
                        json!({
                            "lock": lock.name,
                            "run_id": lock.holder.run_id,
                            "step": (!lock.holder.step.is_empty()).then_some(&lock.holder.step),
                            "runbook": lock.holder.runbook,
                            "host": lock.holder.owner.host,
                            "pid": lock.holder.owner.pid,
                            "since": lock.acquired_at,
                            "expires_at": lock.expires_at,
                        })
                    })
                    .collect();
                printer.out(&(serde_json::to_string_pretty(&rows)? + "\n"));
            }
            ListFormat::Text if list.locks.is_empty() => {
                printer.note(&format!("no locks held in {}", list.location));
            }
            ListFormat::Text => {
                let rows: Vec<[String; 6]> = list
                    .locks
                    .iter()
                    .map(|lock| {
                        let run = if lock.holder.step.is_empty() {
                            lock.holder.run_id.clone()
                        } else {
                            format!("{} ({})", lock.holder.run_id, lock.holder.step)
                        };
                        [
                            lock.name.clone(),
                            run,
                            lock.holder.runbook.clone(),
                            format!("{} (pid {})", lock.holder.owner.host, lock.holder.owner.pid),
                            second(&lock.acquired_at),
                            lock.expires_at.as_deref().map_or_else(
                                || "when its run ends (waiting for approval)".to_owned(),
                                second,
                            ),
                        ]
                    })
                    .collect();
                let header = ["lock", "run", "runbook", "host", "since", "expires"];
                let mut widths = header.map(str::len);
                for row in &rows {
                    for (width, cell) in widths.iter_mut().zip(row) {
                        *width = (*width).max(cell.chars().count());
                    }
                }
                let mut out = String::new();
                for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
                    let cells: Vec<String> = row
                        .iter()
                        .zip(widths)
                        .map(|(cell, width)| format!("{cell:<width$}"))
                        .collect();
                    let _ = writeln!(out, "{}", cells.join("  ").trim_end());
                }
                printer.out(&out);
            }
        }
        Ok(ExitStatus::Success)
    })
}

/// A timestamp to the second, as `runs list` shows them.
fn second(at: &str) -> String {
    format!("{}Z", at.get(..19).unwrap_or(at))
}
