//! Objectives measured on synthetic journals: the edge cases a drill meets.

use super::*;
use crate::event::{RunStatus, Via};
use crate::runbook::Runbook;

const RUNBOOK: &str = r#"
version: 1
name: drill
steps:
  - { id: disaster, exec: { command: ["true"] } }
  - { id: restore, exec: { command: ["true"] } }
  - { id: verify, exec: { command: ["true"] } }
objectives:
  rto: { description: disaster to verified, from: disaster, to: verify, target: 15m }
  whole: { from: run.started, to: verify, target: 1h }
  rpo: { value: '.steps.restore.outputs.age_seconds', target: 5m }
"#;

fn runbook() -> Runbook {
    let (loaded, problems) = load::load(SourceFile::new("drill.yaml", RUNBOOK));
    assert!(problems.is_empty(), "{problems:?}");
    loaded.expect("loads").runbook
}

fn at(event: RunEvent, at: &str) -> Envelope {
    Envelope {
        run_id: "r1".to_owned(),
        at: at.to_owned(),
        event,
    }
}

fn started(path: &str, attempt: u32, fallback: bool) -> RunEvent {
    RunEvent::StepStarted {
        path: path.to_owned(),
        attempt,
        attempts: 3,
        fallback,
    }
}

fn ended(path: &str, status: StepStatus, via: Via, outputs: Value) -> RunEvent {
    RunEvent::StepEnded {
        path: path.to_owned(),
        status,
        attempts: 1,
        via: Some(via),
        outputs,
        error: None,
        item: None,
        duration_ms: 1,
        sealed: None,
    }
}

fn ok(path: &str) -> RunEvent {
    ended(path, StepStatus::Succeeded, Via::Action, json!({}))
}

fn run_started() -> RunEvent {
    RunEvent::RunStarted {
        runbook: "drill".to_owned(),
        file: "drill.yaml".to_owned(),
        inputs: json!({}),
        sources: vec![],
        origin: None,
        by: None,
    }
}

fn measured(events: &[Envelope]) -> Vec<ObjectiveReport> {
    let runbook = runbook();
    let objectives: Vec<(&str, &Objective)> = runbook
        .objectives
        .iter()
        .map(|(name, objective)| (name.value.as_str(), objective))
        .collect();
    measure(&objectives, events)
}

fn find<'a>(reports: &'a [ObjectiveReport], name: &str) -> &'a ObjectiveReport {
    reports.iter().find(|r| r.name == name).expect(name)
}

/// A drill whose restore reports `age` seconds and whose verify ends at `verified`.
fn drill(verified: &str, age: Value) -> Vec<Envelope> {
    vec![
        at(run_started(), "2026-11-20T10:00:00.000000Z"),
        at(started("disaster", 1, false), "2026-11-20T10:01:00.000000Z"),
        at(ok("disaster"), "2026-11-20T10:01:05.000000Z"),
        at(started("restore", 1, false), "2026-11-20T10:01:06.000000Z"),
        at(
            ended(
                "restore",
                StepStatus::Succeeded,
                Via::Action,
                json!({ "age_seconds": age }),
            ),
            "2026-11-20T10:02:00.000000Z",
        ),
        at(started("verify", 1, false), "2026-11-20T10:02:01.000000Z"),
        at(ok("verify"), verified),
    ]
}

#[test]
fn a_drill_within_its_targets_meets_them_and_one_beyond_misses() {
    let reports = measured(&drill("2026-11-20T10:11:00.000000Z", json!(90)));
    let rto = find(&reports, "rto");
    assert_eq!(rto.outcome, Outcome::Met);
    assert_eq!(rto.measured_ms, Some(10 * 60_000));
    assert_eq!(rto.target_ms, 15 * 60_000);
    assert_eq!(rto.description.as_deref(), Some("disaster to verified"));
    assert_eq!(find(&reports, "whole").measured_ms, Some(11 * 60_000));
    let rpo = find(&reports, "rpo");
    assert_eq!((rpo.outcome, rpo.measured_ms), (Outcome::Met, Some(90_000)));

    let reports = measured(&drill("2026-11-20T10:16:00.500000Z", json!(301.5)));
    let rto = find(&reports, "rto");
    assert_eq!(rto.outcome, Outcome::Missed);
    assert_eq!(rto.measured_ms, Some(15 * 60_000 + 500));
    assert_eq!(find(&reports, "rpo").outcome, Outcome::Missed);
}

#[test]
fn a_step_never_reached_leaves_the_objective_not_measurable_not_met() {
    let mut events = drill("2026-11-20T10:11:00.000000Z", json!(1));
    events.truncate(4); // the restore started and never ended; verify never ran
    let reports = measured(&events);
    let rto = find(&reports, "rto");
    assert_eq!(rto.outcome, Outcome::NotMeasurable);
    assert_eq!(rto.measured_ms, None);
    assert!(
        rto.detail.contains("`verify` was never reached"),
        "{}",
        rto.detail
    );
    // The value reads a step that never ended: null, not a number of seconds.
    let rpo = find(&reports, "rpo");
    assert_eq!(rpo.outcome, Outcome::NotMeasurable);
    assert!(rpo.detail.contains("gave null"), "{}", rpo.detail);
}

#[test]
fn a_failed_end_step_is_not_measurable() {
    let mut events = drill("2026-11-20T10:11:00.000000Z", json!(1));
    events.pop();
    events.push(at(
        ended("verify", StepStatus::Failed, Via::Action, Value::Null),
        "2026-11-20T10:05:00.000000Z",
    ));
    let rto = find(&measured(&events), "rto").clone();
    assert_eq!(rto.outcome, Outcome::NotMeasurable);
    assert!(rto.detail.contains("`verify` failed"), "{}", rto.detail);
}

#[test]
fn a_run_resumed_the_next_day_counts_the_whole_wall_clock_time() {
    let mut events = vec![
        at(run_started(), "2026-11-20T23:40:00.000000Z"),
        at(started("disaster", 1, false), "2026-11-20T23:50:00.000000Z"),
        at(ok("disaster"), "2026-11-20T23:50:10.000000Z"),
        at(started("restore", 1, false), "2026-11-20T23:51:00.000000Z"),
        at(
            RunEvent::RunEnded {
                status: RunStatus::Interrupted,
                reason: None,
                outputs: Value::Null,
                duration_ms: 60_000,
                notices: vec![],
            },
            "2026-11-20T23:52:00.000000Z",
        ),
        at(
            RunEvent::RunResumed {
                by: "pid 2 on host-b".to_owned(),
            },
            "2026-11-21T00:20:00.000000Z",
        ),
    ];
    events.push(at(
        started("restore", 1, false),
        "2026-11-21T00:20:01.000000Z",
    ));
    events.push(at(ok("restore"), "2026-11-21T00:21:00.000000Z"));
    events.push(at(
        started("verify", 1, false),
        "2026-11-21T00:21:01.000000Z",
    ));
    events.push(at(ok("verify"), "2026-11-21T00:25:00.000000Z"));
    let rto = find(&measured(&events), "rto").clone();
    assert_eq!(rto.measured_ms, Some(35 * 60_000));
    assert_eq!(rto.outcome, Outcome::Missed);
}

#[test]
fn retries_count_from_the_first_attempt_and_a_fallback_end_counts() {
    let events = vec![
        at(run_started(), "2026-11-20T10:00:00.000000Z"),
        at(started("disaster", 1, false), "2026-11-20T10:00:00.000000Z"),
        at(
            RunEvent::StepAttemptFailed {
                path: "disaster".to_owned(),
                attempt: 1,
                error: "refused".to_owned(),
                retry_in_ms: Some(1000),
                fallback: false,
            },
            "2026-11-20T10:01:00.000000Z",
        ),
        at(started("disaster", 2, false), "2026-11-20T10:02:00.000000Z"),
        at(ok("disaster"), "2026-11-20T10:02:10.000000Z"),
        at(started("verify", 1, false), "2026-11-20T10:03:00.000000Z"),
        at(
            RunEvent::StepAttemptFailed {
                path: "verify".to_owned(),
                attempt: 1,
                error: "not running".to_owned(),
                retry_in_ms: None,
                fallback: false,
            },
            "2026-11-20T10:04:00.000000Z",
        ),
        at(started("verify", 1, true), "2026-11-20T10:04:01.000000Z"),
        at(
            ended("verify", StepStatus::Succeeded, Via::Fallback, json!({})),
            "2026-11-20T10:05:00.000000Z",
        ),
    ];
    let rto = find(&measured(&events), "rto").clone();
    assert_eq!(rto.measured_ms, Some(5 * 60_000));
    assert_eq!(rto.outcome, Outcome::Met);
}

#[test]
fn a_value_of_several_jobs_counts_the_worst_and_rejects_what_is_not_seconds() {
    let reports = measured(&drill("2026-11-20T10:11:00.000000Z", json!([12, 400, 3])));
    let rpo = find(&reports, "rpo");
    assert_eq!(
        (rpo.outcome, rpo.measured_ms),
        (Outcome::Missed, Some(400_000))
    );
    assert!(rpo.detail.contains("largest of 3"), "{}", rpo.detail);

    let reports = measured(&drill("2026-11-20T10:11:00.000000Z", json!("soon")));
    let rpo = find(&reports, "rpo");
    assert_eq!(rpo.outcome, Outcome::NotMeasurable);
    assert!(rpo.detail.contains("\"soon\""), "{}", rpo.detail);
    let reports = measured(&drill("2026-11-20T10:11:00.000000Z", json!(-4)));
    assert_eq!(find(&reports, "rpo").outcome, Outcome::NotMeasurable);
}

#[test]
fn a_journal_without_a_source_has_no_objectives() {
    assert!(measure_run(&drill("2026-11-20T10:11:00.000000Z", json!(1))).is_empty());
}
