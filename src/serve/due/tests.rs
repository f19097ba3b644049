//! The clock rule and the scheduling arithmetic, on a clock the tests move.

use super::*;
use crate::serve::blackout::{Blackout, parse_moment};
use crate::serve::clock::{Clock, FakeClock};
use crate::serve::config::Overlap;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;

fn schedule(cron: &str, zone: &str) -> Schedule {
    Schedule {
        name: "s".into(),
        runbook: "r.yaml".into(),
        inputs: Default::default(),
        cron_text: cron.into(),
        cron: CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .unwrap(),
        zone_name: zone.into(),
        zone: TimeZone::get(zone).unwrap(),
        window: None,
        overlap: Overlap::Skip,
        missed: Missed::Skip,
        enabled: true,
        blackouts: Vec::new(),
    }
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Fire times after `from`, as RFC 3339 with offsets, for readable expectations.
fn fires(schedule: &Schedule, from: &str, count: usize) -> Vec<String> {
    schedule
        .upcoming(ts(from), count)
        .iter()
        .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

/// Runs the loop's rule against the fake clock: each look at the clock may fire once.
fn look(schedule: &Schedule, last: &mut Timestamp, clock: &FakeClock) -> Option<Fire> {
    let fire = due(schedule, *last, clock.now())?;
    *last = fire.at.timestamp();
    Some(fire)
}

#[test]
fn a_fire_is_due_when_the_clock_reaches_it_and_not_before() {
    let every_2s = schedule("*/2 * * * * *", "UTC");
    let clock = FakeClock::at("2026-12-02T10:00:00.500Z");
    let mut last = clock.now();
    assert_eq!(look(&every_2s, &mut last, &clock), None);
    clock.set("2026-12-02T10:00:01.999Z");
    assert_eq!(look(&every_2s, &mut last, &clock), None);
    clock.set("2026-12-02T10:00:02Z");
    let fire = look(&every_2s, &mut last, &clock).expect("due at 10:00:02");
    assert_eq!(fire.at.timestamp(), ts("2026-12-02T10:00:02Z"));
    assert!(!fire.passed_over && fire.skip.is_none());
    // Looking again at the same instant fires nothing more.
    assert_eq!(look(&every_2s, &mut last, &clock), None);
    assert_eq!(next_due(&every_2s, last), Some(ts("2026-12-02T10:00:04Z")));
}

#[test]
fn after_a_backward_jump_nothing_fires_twice() {
    let every_minute = schedule("0 * * * * *", "UTC");
    let clock = FakeClock::at("2026-12-02T10:00:00Z");
    let mut last = ts("2026-12-02T09:59:59Z");
    assert!(look(&every_minute, &mut last, &clock).is_some());
    // NTP steps the clock back five minutes: 09:56..10:00 have all fired or were before.
    clock.set("2026-12-02T09:55:30Z");
    for second in ["09:56:00", "09:58:00", "10:00:00", "10:00:59"] {
        clock.set(&format!("2026-12-02T{second}Z"));
        assert_eq!(look(&every_minute, &mut last, &clock), None, "at {second}");
    }
    clock.set("2026-12-02T10:01:00Z");
    let fire = look(&every_minute, &mut last, &clock).expect("10:01 is new");
    assert_eq!(fire.at.timestamp(), ts("2026-12-02T10:01:00Z"));
}

#[test]
fn after_a_forward_jump_the_latest_fire_runs_once() {
    let every_minute = schedule("* * * * *", "UTC");
    let clock = FakeClock::at("2026-12-02T10:00:30Z");
    let mut last = ts("2026-12-02T10:00:00Z");
    clock.set("2026-12-02T10:05:03Z");
    let fire = look(&every_minute, &mut last, &clock).expect("a fire is due");
    assert_eq!(fire.at.timestamp(), ts("2026-12-02T10:05:00Z"));
    assert!(fire.passed_over, "10:01 to 10:04 were passed over");
    assert_eq!(look(&every_minute, &mut last, &clock), None);
}

#[test]
fn berlin_spring_forward_fires_a_skipped_time_once_after_the_gap() {
    // 2026-03-29: clocks go from 02:00 CET straight to 03:00 CEST; 02:30 does not exist.
    let daily = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&daily, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    );
}

#[test]
fn berlin_fall_back_fires_a_repeated_time_once() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    let daily = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&daily, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    // An hourly schedule fires at both 02:00s: they are different instants, an hour apart.
    let hourly = schedule("0 * * * *", "Europe/Berlin");
    assert_eq!(
        fires(&hourly, "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
            "2026-10-25T04:00:00+01:00"
        ]
    );
}

#[test]
fn new_york_transitions() {
    // 2026-03-08: 02:00 EST -> 03:00 EDT. 2026-11-01: 02:00 EDT -> 01:00 EST.
    let daily = schedule("30 2 * * *", "America/New_York");
    assert_eq!(
        fires(&daily, "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    );
    let early = schedule("30 1 * * *", "America/New_York");
    assert_eq!(
        fires(&early, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
}

#[test]
fn leap_day_schedules_wait_for_the_next_leap_year() {
    let leap = schedule("0 0 29 2 *", "Europe/Berlin");
    assert_eq!(
        fires(&leap, "2026-03-01T00:00:00Z", 2),
        ["2028-02-29T00:00:00+01:00", "2032-02-29T00:00:00+01:00"]
    );
}

#[test]
fn blackout_start_is_inclusive_and_end_exclusive() {
    let mut hourly = schedule("0 * * * *", "Europe/Berlin");
    let zone = hourly.zone.clone();
    hourly.blackouts.push(Blackout {
        start: parse_moment("2026-12-20T02:00", &zone).unwrap(),
        end: parse_moment("2026-12-20T04:00", &zone).unwrap(),
        what: "range".into(),
    });
    let clock = FakeClock::at("2026-12-20T01:00:00+01:00[Europe/Berlin]");
    let mut last = clock.now();
    let mut seen = Vec::new();
    for hour in 2..=4 {
        clock.set(&format!("2026-12-20T0{hour}:00:00+01:00[Europe/Berlin]"));
        let fire = look(&hourly, &mut last, &clock).expect("a fire is due each hour");
        seen.push((hour, fire.skip.map(|s| s.name())));
    }
    assert_eq!(
        seen,
        [(2, Some("blackout")), (3, Some("blackout")), (4, None)]
    );
    assert_eq!(
        fires(&hourly, "2026-12-20T00:30:00Z", 2),
        ["2026-12-20T04:00:00+01:00", "2026-12-20T05:00:00+01:00"]
    );
}

#[test]
fn a_disabled_schedule_skips_each_fire() {
    let mut daily = schedule("0 2 * * *", "UTC");
    daily.enabled = false;
    let fire = due(
        &daily,
        ts("2026-12-01T03:00:00Z"),
        ts("2026-12-02T02:00:00Z"),
    )
    .unwrap();
    assert_eq!(fire.skip, Some(SkipReason::Disabled));
}

#[test]
fn missed_fires_follow_the_policy() {
    let mut daily = schedule("0 2 * * *", "UTC");
    // Down since the fire of Nov 30; back at 02:30 on Dec 2.
    let stored = Some(ts("2026-11-30T02:00:00Z"));
    let (last, fire) = on_start(&daily, stored, ts("2026-12-02T02:30:00Z"));
    let fire = fire.expect("the missed fires are handled");
    assert_eq!(fire.skip, Some(SkipReason::Missed), "the default is skip");
    assert_eq!(last, ts("2026-12-02T02:00:00Z"));
    assert!(fire.passed_over, "Dec 1 was missed too");

    daily.missed = Missed::RunLatestWithin(crate::runbook::Duration::parse("1h").unwrap());
    let (_, fire) = on_start(&daily, stored, ts("2026-12-02T02:30:00Z"));
    let fire = fire.unwrap();
    assert_eq!(
        (fire.at.timestamp(), fire.skip),
        (ts("2026-12-02T02:00:00Z"), None)
    );
    let (_, fire) = on_start(&daily, stored, ts("2026-12-02T03:00:01Z"));
    assert_eq!(
        fire.unwrap().skip,
        Some(SkipReason::Missed),
        "older than 1h"
    );

    // A new schedule (nothing stored) starts from now; a fire just handled is not repeated.
    assert_eq!(
        on_start(&daily, None, ts("2026-12-02T02:30:00Z")),
        (ts("2026-12-02T02:30:00Z"), None)
    );
    let just = Some(ts("2026-12-02T02:00:00Z"));
    assert_eq!(
        on_start(&daily, just, ts("2026-12-02T02:00:00.4Z")),
        (ts("2026-12-02T02:00:00Z"), None)
    );
}

#[test]
fn the_window_ends_its_length_after_the_fire() {
    let mut daily = schedule("0 2 * * *", "Europe/Berlin");
    assert_eq!(daily.window_until(ts("2026-03-29T00:00:00Z")), None);
    daily.window = Some(std::time::Duration::from_secs(2 * 3600));
    // Across the spring-forward gap the window is two real hours: 01:00 CET + 2h = 04:00 CEST.
    assert_eq!(
        daily.window_until(ts("2026-03-29T00:00:00Z")),
        Some(ts("2026-03-29T02:00:00Z"))
    );
}
