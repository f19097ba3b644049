//! When a schedule fires: the clock rule.
//!
//! - A schedule remembers its last fire time: the cron time of the last fire it handled
//!   (started, or skipped for a reason), kept in the store so a restart knows it too.
//! - The next fire time is the first cron time strictly after the last fire time, never
//!   computed from "now". A fire is due when the wall clock reads at or after it.
//! - When the clock is found past several fire times at once (a forward jump: NTP step,
//!   suspend, a loaded machine), the latest of them fires, once; the earlier ones are logged
//!   as passed over. Running a maintenance runbook several times back to back is never
//!   what was meant.
//! - After a backward jump nothing fires twice: the next fire time is after the last fire
//!   time, which the clock must reach again.
//! - DST does not change this: cron times are wall-clock times of the schedule's zone turned
//!   into instants (see [`Schedule::next_after`]); each instant fires once.
//! - Fires that fell while serve was not running (before its start, after the stored last
//!   fire) follow the schedule's `missed` policy: `skip`, or run the latest of them when it is
//!   no older than `run_latest_within`. With no stored last fire (the schedule is new), the
//!   first fire is the first cron time after serve starts.

use super::config::Missed;
use super::schedule::{Schedule, SkipReason};
use jiff::{Timestamp, Zoned};

/// What to do about one fire time.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub at: Zoned,
    /// Set when the fire does not start a run.
    pub skip: Option<SkipReason>,
    /// Earlier fire times that were passed over because the clock jumped past them.
    pub passed_over: bool,
}

/// The fire serve owes a schedule at start, from its stored last fire time, if any.
/// Returns the last fire time to continue from and the fire to handle now.
pub fn on_start(
    schedule: &Schedule,
    stored_last: Option<Timestamp>,
    now: Timestamp,
) -> (Timestamp, Option<Fire>) {
    let Some(last) = stored_last else {
        return (now, None);
    };
    let Some(latest) = latest_at_or_before(schedule, now).filter(|l| l.timestamp() > last) else {
        return (last, None);
    };
    let skip = match &schedule.missed {
        Missed::RunLatestWithin(within)
            if now.duration_since(latest.timestamp()).unsigned_abs() <= within.0 =>
        {
            fire_skip(schedule, &latest)
        }
        _ => Some(SkipReason::Missed),
    };
    let next = latest.timestamp();
    let passed_over = schedule
        .next_after(last)
        .is_some_and(|first| first.timestamp() < next);
    (
        next,
        Some(Fire {
            at: latest,
            skip,
            passed_over,
        }),
    )
}

/// The fire due now after `last`, if the clock has reached one. The caller remembers the
/// returned fire's time as the new last fire time.
pub fn due(schedule: &Schedule, last: Timestamp, now: Timestamp) -> Option<Fire> {
    let next = schedule.next_after(last)?;
    if now < next.timestamp() {
        return None;
    }
    let latest = latest_at_or_before(schedule, now).unwrap_or_else(|| next.clone());
    let passed_over = latest.timestamp() > next.timestamp();
    Some(Fire {
        skip: fire_skip(schedule, &latest),
        at: latest,
        passed_over,
    })
}

/// When the next fire after `last` is due, for sleeping until then.
pub fn next_due(schedule: &Schedule, last: Timestamp) -> Option<Timestamp> {
    schedule.next_after(last).map(|z| z.timestamp())
}

fn fire_skip(schedule: &Schedule, at: &Zoned) -> Option<SkipReason> {
    if !schedule.enabled {
        return Some(SkipReason::Disabled);
    }
    schedule
        .blackout_at(at.timestamp())
        .map(|b| SkipReason::Blackout(b.what.clone()))
}

fn latest_at_or_before(schedule: &Schedule, now: Timestamp) -> Option<Zoned> {
    let now = now.to_zoned(schedule.zone.clone());
    schedule.cron.find_previous_occurrence(&now, true).ok()
}

#[cfg(test)]
mod tests;
