//! Keeping the store tidy: the moments `runs list --since` and `runs prune --older-than`
//! read, and `runs prune`, which deletes runs that are over and old.

use super::args::RunsPruneArgs;
use super::execute::{open_store, runtime, store_failure};
use super::{ExitStatus, Printer};
use jiff::{SignedDuration, Timestamp};
use std::fmt::Write;

/// A moment given on the command line: an age (`90d`, `2w`, `12h`, `30m`), meaning that
/// long before now, or a date (`2026-11-01`, midnight UTC) or an RFC 3339 timestamp.
pub fn parse_moment(text: &str) -> Result<Timestamp, String> {
    let expected = || {
        format!(
            "expected an age such as 90d, 2w, 12h or 30m, or a date such as 2026-11-01 or \
             2026-11-01T08:00:00Z, found `{text}`"
        )
    };
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|zoned| zoned.timestamp())
            .map_err(|_| expected());
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0));
    let number: i64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "w" => 7 * 86_400,
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(expected()),
    };
    let age = number
        .checked_mul(seconds)
        .map(SignedDuration::from_secs)
        .ok_or_else(expected)?;
    Timestamp::now().checked_sub(age).map_err(|_| expected())
}

/// `runbook runs prune --older-than AGE`.
pub fn prune(args: &RunsPruneArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let store = match open_store(args.store.store.as_deref(), printer).await {
            Ok(store) => store,
            Err(status) => return Ok(status),
        };
        let cutoff = crate::event::timestamp::format(args.older_than);
        let pruned = store.prune(&cutoff).await;
        let _ = store.close().await;
        let pruned = match pruned {
            Ok(pruned) => pruned,
            Err(error) => return Ok(store_failure(&error, printer)),
        };
        let mut out = String::new();
        for run in &pruned {
            let ended = run.ended_at.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "removed {} ({}, {}, ended {ended})",
                run.id,
                run.runbook,
                run.status.name()
            );
        }
        printer.out(&out);
        printer.note(&match pruned.len() {
            0 => format!("no run that is over ended before {cutoff}: nothing removed"),
            1 => format!("removed 1 run that ended before {cutoff}"),
            n => format!("removed {n} runs that ended before {cutoff}"),
        });
        Ok(ExitStatus::Success)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ages_dates_and_timestamps() {
        let now = Timestamp::now().as_second();
        let ninety_days = parse_moment("90d").expect("an age").as_second();
        assert!((now - 90 * 86_400 - ninety_days).abs() <= 2);
        assert_eq!(
            parse_moment("2026-11-01").map(|t| t.to_string()),
            Ok("2026-11-01T00:00:00Z".to_owned())
        );
        assert!(parse_moment("2026-11-01T08:00:00Z").is_ok());
        for wrong in ["", "d", "90", "90y", "ninety days", "-5d"] {
            assert!(parse_moment(wrong).is_err(), "{wrong}");
        }
    }
}
