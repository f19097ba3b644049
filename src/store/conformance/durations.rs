//! How long steps took in earlier runs, as `needs: auto` reads it: one step's durations, and
//! spans from one step's start through another's end.

use super::{StoreFactory, ended, envelope};
use crate::event::{Envelope, RunEvent, RunStatus, StepStatus};
use crate::store::{Owner, StepSpan};
use serde_json::json;

/// `needs: auto` reads how long a step took where it succeeded, in the latest succeeded runs
/// of the same runbook (by name), newest first: not in failed or parked runs, not in other
/// runbooks, not other steps, not the step's failed ends.
pub async fn step_durations_come_from_succeeded_runs(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let step_ended = |id: &str, path: &str, status: StepStatus, ms: u64| {
        envelope(
            id,
            RunEvent::StepEnded {
                path: path.to_owned(),
                status,
                attempts: 1,
                via: None,
                outputs: json!({}),
                error: None,
                item: None,
                duration_ms: ms,
                sealed: None,
            },
        )
    };
    let runbook_started = |id: &str, runbook: &str| {
        envelope(
            id,
            RunEvent::RunStarted {
                runbook: runbook.to_owned(),
                file: format!("{runbook}.yaml"),
                inputs: json!({}),
                sources: vec![],
                origin: None,
                by: None,
            },
        )
    };
    // Oldest first: (id, runbook, the gated step's end, how the run ended).
    let runs = [
        (
            "durations-1",
            "upgrade",
            Some((StepStatus::Succeeded, 1000)),
            RunStatus::Succeeded,
        ),
        (
            "durations-2",
            "upgrade",
            Some((StepStatus::Succeeded, 3000)),
            RunStatus::Failed,
        ),
        (
            "durations-3",
            "upgrade",
            Some((StepStatus::Failed, 5000)),
            RunStatus::Succeeded,
        ),
        (
            "durations-4",
            "other",
            Some((StepStatus::Succeeded, 7000)),
            RunStatus::Succeeded,
        ),
        ("durations-5", "upgrade", None, RunStatus::Succeeded),
        (
            "durations-6",
            "upgrade",
            Some((StepStatus::Succeeded, 2000)),
            RunStatus::Parked,
        ),
        (
            "durations-7",
            "upgrade",
            Some((StepStatus::Succeeded, 4000)),
            RunStatus::Succeeded,
        ),
    ];
    for (id, runbook, gated, status) in runs {
        let lease = store
            .create(id, &owner, &runbook_started(id, runbook))
            .await
            .unwrap();
        let mut events = vec![step_ended(id, "other_step", StepStatus::Succeeded, 9000)];
        if let Some((step_status, ms)) = gated {
            events.push(step_ended(id, "phase/restart", step_status, ms));
        }
        events.push(ended(id, status, 10));
        store.append(&lease, 2, &events).await.unwrap();
        store.release(&lease).await.unwrap();
        // Runs are ordered by creation time: keep them apart.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let all = store
        .step_durations("upgrade", StepSpan::step("phase/restart"), 100)
        .await
        .unwrap();
    assert_eq!(
        all,
        [4000, 1000],
        "newest first, succeeded runs and ends only"
    );
    // The latest 2 succeeded runs of `upgrade` are 7 and 5; 5 did not run the step.
    let latest = store
        .step_durations("upgrade", StepSpan::step("phase/restart"), 2)
        .await
        .unwrap();
    assert_eq!(latest, [4000]);
    let none = store
        .step_durations("never-ran", StepSpan::step("phase/restart"), 100)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// `needs: auto` with `through` reads, in each of the latest succeeded runs, the time from the
/// first start of one step (a retry or a resume does not move it) to the last succeeded end
/// of another; a run that never got that far says nothing.
pub async fn a_span_runs_from_a_step_start_through_another_step_end(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let at = |second: u32, run_id: &str, event: RunEvent| Envelope {
        at: format!("2026-11-20T10:00:{second:02}.000000Z"),
        ..envelope(run_id, event)
    };
    let first = |run_id: &str| {
        at(
            0,
            run_id,
            RunEvent::RunStarted {
                runbook: "span".to_owned(),
                file: "span.yaml".to_owned(),
                inputs: json!({}),
                sources: vec![],
                origin: None,
                by: None,
            },
        )
    };
    let start = |second, run_id: &str, attempt| {
        at(
            second,
            run_id,
            RunEvent::StepStarted {
                path: "stop".to_owned(),
                attempt,
                attempts: 2,
                fallback: false,
            },
        )
    };
    let verified = |second, run_id: &str, status| {
        at(
            second,
            run_id,
            RunEvent::StepEnded {
                path: "verify".to_owned(),
                status,
                attempts: 1,
                via: None,
                outputs: json!({}),
                error: None,
                item: None,
                duration_ms: 1,
                sealed: None,
            },
        )
    };
    let expanded = |second, run_id: &str| {
        at(
            second,
            run_id,
            RunEvent::StepExpanded {
                path: "stop".to_owned(),
                items: vec![json!(1)],
                sealed: None,
            },
        )
    };
    let runs: [(&str, Vec<Envelope>, RunStatus); 4] = [
        (
            "span-1",
            vec![
                start(1, "span-1", 1),
                start(2, "span-1", 2),
                verified(11, "span-1", StepStatus::Succeeded),
            ],
            RunStatus::Succeeded,
        ),
        (
            "span-2",
            vec![
                expanded(1, "span-2"),
                verified(3, "span-2", StepStatus::Failed),
                verified(6, "span-2", StepStatus::Succeeded),
            ],
            RunStatus::Succeeded,
        ),
        (
            "span-3",
            vec![
                start(1, "span-3", 1),
                verified(2, "span-3", StepStatus::Succeeded),
            ],
            RunStatus::Failed,
        ),
        ("span-4", vec![start(1, "span-4", 1)], RunStatus::Succeeded),
    ];
    for (id, mut events, status) in runs {
        let lease = store.create(id, &owner, &first(id)).await.unwrap();
        events.push(ended(id, status, 10));
        store.append(&lease, 2, &events).await.unwrap();
        store.release(&lease).await.unwrap();
        // Runs are ordered by creation time: keep them apart.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let span = StepSpan {
        from: "stop",
        through: "verify",
    };
    let durations = store.step_durations("span", span, 100).await.unwrap();
    assert_eq!(
        durations,
        [5000, 10000],
        "newest first, succeeded runs that got there"
    );
}
