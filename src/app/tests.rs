//! The application layer without a terminal: runs started, watched through a channel,
//! approved, resumed, listed and shown in one process, against a real SQLite store.

use super::*;
use crate::event::{RunEvent, RunStatus};
use crate::store::{Owner, StoreError};
use std::path::Path;
use tokio_util::sync::CancellationToken;

const ASKS: &str = "version: 1
name: asks
steps:
  - id: settle
    sleep: 50ms
  - id: go
    approval: { prompt: Go on? }
  - id: after
    sleep: 10ms
";

const SLEEPS: &str = "version: 1
name: sleeps
steps:
  - id: one
    sleep: 100ms
  - id: two
    sleep: 10ms
";

fn request(dir: &Path, name: &str, text: &str, store: &str) -> StartRequest {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    StartRequest {
        bundle: load(&file, &[]).unwrap(),
        file: file.display().to_string(),
        inputs: Default::default(),
        run_id: Some(name.to_owned()),
        store: Some(store.to_owned()),
        max_parallel: None,
        window_until: None,
        origin: None,
        started_by: None,
    }
}

/// Runs a claimed run, collecting its events from a channel.
async fn watch(run: ClaimedRun) -> (RunResult, Vec<RunEvent>) {
    let (channel, mut events) = EventChannel::new();
    let result = run
        .execute(Watch {
            sink: std::sync::Arc::new(channel),
            interrupt: CancellationToken::new(),
        })
        .await;
    let mut seen = Vec::new();
    while let Ok(envelope) = events.try_recv() {
        assert_eq!(envelope.run_id, result.run_id);
        seen.push(envelope.event);
    }
    (result, seen)
}

fn ended_steps(events: &[RunEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::StepEnded { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_in_one_process_are_started_watched_approved_resumed_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("runs.db").display());
    let asks = start(request(dir.path(), "asks", ASKS, &store_url))
        .await
        .unwrap();
    let sleeps = start(request(dir.path(), "sleeps", SLEEPS, &store_url))
        .await
        .unwrap();
    assert_eq!((asks.run_id(), sleeps.run_id()), ("asks", "sleeps"));
    let ((parked, parked_events), (done, done_events)) = tokio::join!(watch(asks), watch(sleeps));

    assert_eq!(parked.outcome.status, RunStatus::Waiting);
    assert!(parked.journal_error.is_none());
    assert!(
        parked_events
            .iter()
            .any(|e| matches!(e, RunEvent::ApprovalRequested { path, .. } if path == "go"))
    );
    assert_eq!(ended_steps(&parked_events), ["settle"]);
    assert_eq!(done.outcome.status, RunStatus::Succeeded);
    assert_eq!(ended_steps(&done_events), ["one", "two"]);

    let store = open_store(Some(&store_url)).await.unwrap();
    let not_waiting = approve(
        store.as_ref(),
        ApproveRequest {
            run_id: "asks".into(),
            step: "goo".into(),
            approved: true,
            by: Some("ops".into()),
            comment: None,
        },
    )
    .await;
    match not_waiting {
        Err(AppError::NotWaiting {
            closest, waiting, ..
        }) => {
            assert_eq!(closest.as_deref(), Some("go"));
            assert_eq!(waiting, ["go"]);
        }
        other => panic!("expected NotWaiting, got {:?}", other.err()),
    }
    let recorded = approve(
        store.as_ref(),
        ApproveRequest {
            run_id: "asks".into(),
            step: "go".into(),
            approved: true,
            by: Some("ops".into()),
            comment: Some("looks fine".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(recorded.decision.by, "ops");
    assert!(
        recorded.picked_up_by.is_none(),
        "the parked run has no live owner"
    );

    let notices = std::sync::Mutex::new(Vec::new());
    let notice = |n: Notice| notices.lock().unwrap().push(n);
    let resumed = resume(
        store.clone(),
        ResumeRequest {
            run_id: "asks".into(),
            max_parallel: None,
            window_until: None,
        },
        &notice,
    )
    .await
    .unwrap();
    let (finished, finished_events) = watch(resumed).await;
    assert_eq!(finished.outcome.status, RunStatus::Succeeded);
    assert_eq!(ended_steps(&finished_events), ["go", "after"]);
    assert!(
        notices.lock().unwrap().is_empty(),
        "the runbook file is unchanged"
    );

    // Execution closed the store it ran with; a fresh handle reads what was recorded.
    let store = open_store(Some(&store_url)).await.unwrap();
    let listed = list(store.as_ref(), &RunFilter::default()).await.unwrap();
    let mut statuses: Vec<_> = listed
        .runs
        .iter()
        .map(|r| (r.id.as_str(), r.status))
        .collect();
    statuses.sort_by_key(|(id, _)| *id);
    assert_eq!(
        statuses,
        [
            ("asks", RunStatus::Succeeded),
            ("sleeps", RunStatus::Succeeded)
        ]
    );
    let shown = show(store.as_ref(), "asks").await.unwrap();
    assert!(shown.events.iter().any(|e| matches!(
        &e.event,
        RunEvent::ApprovalGiven { by, .. } if by == "ops"
    )));

    match resume(
        store.clone(),
        ResumeRequest {
            run_id: "sleeps".into(),
            max_parallel: None,
            window_until: None,
        },
        &notice,
    )
    .await
    {
        Err(AppError::AlreadyEnded { status, wanted, .. }) => {
            assert_eq!((status, wanted), (RunStatus::Succeeded, NothingTo::Resume))
        }
        other => panic!("expected AlreadyEnded, got {:?}", other.err()),
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_invalid_runbook_is_a_typed_error_with_its_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: bad\nsteps:\n  - id: x\n    sleep: soon\n",
    )
    .unwrap();
    match load(&file, &[]) {
        Err(AppError::InvalidRunbook(problems)) => assert!(!problems.is_empty()),
        other => panic!("expected InvalidRunbook, got {:?}", other.err()),
    }
}

const GATED: &str = "version: 1
name: gated
steps:
  - id: first
    sleep: 10ms
  - id: restart
    window: { needs: 30m }
    sleep: 10ms
";

/// What a scheduler does: a window given as `window_until` on the request. Too short, the
/// run parks with the gate's numbers; the next window, on resume, finishes it; an end that
/// has passed is refused before anything is created or claimed.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_until_on_the_requests_gates_the_run_and_its_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("runs.db").display());
    let now = jiff::Timestamp::now();
    let past = StartRequest {
        window_until: Some(now - jiff::SignedDuration::from_secs(1)),
        ..request(dir.path(), "late", GATED, &store_url)
    };
    assert!(matches!(
        start(past).await,
        Err(AppError::WindowOver { .. })
    ));
    let short = StartRequest {
        window_until: Some(now + jiff::SignedDuration::from_mins(10)),
        ..request(dir.path(), "gated", GATED, &store_url)
    };
    let (parked, events) = watch(start(short).await.unwrap()).await;
    assert_eq!(parked.outcome.status, RunStatus::Parked);
    assert_eq!(ended_steps(&events), ["first"]);
    let gate = events
        .iter()
        .find_map(|e| match e {
            RunEvent::WindowChecked(gate) => Some(gate.clone()),
            _ => None,
        })
        .expect("the gate is an event");
    assert_eq!(
        (gate.path.as_str(), gate.decision, gate.needed_ms),
        ("restart", crate::event::GateDecision::Park, 1_800_000)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::WindowOpened { .. }))
    );

    let store = open_store(Some(&store_url)).await.unwrap();
    let notice = |_: Notice| {};
    let next = ResumeRequest {
        run_id: "gated".into(),
        max_parallel: None,
        window_until: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)),
    };
    let (done, events) = watch(resume(store, next, &notice).await.unwrap()).await;
    assert_eq!(done.outcome.status, RunStatus::Succeeded);
    assert_eq!(ended_steps(&events), ["restart"], "first is not run again");
}

/// A process that claimed a run and lost it before its first step (paused past its lease,
/// another process took the run over) stops none of the new owner's processes, which carry
/// the same mark, and says it no longer owns the run. It stopped the new owner's step and
/// supervisor before: the run then failed with the step killed by SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_that_lost_its_claim_stops_none_of_the_new_owners_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("runs.db").display());
    let created = start(request(dir.path(), "held", SLEEPS, &store_url))
        .await
        .unwrap();
    let (store, lease) = (created.store.clone(), created.lease.clone());
    let mark = crate::process::RunMark::new("held", &created.prior[0].at);
    store.release(&lease).await.unwrap();
    drop(created);

    // This process claims the run; the claim is lost before it stops leftovers: here
    // given up, which leaves the store as a takeover after a lapsed lease does.
    let lost = store.claim("held", &Owner::current()).await.unwrap();
    store.release(&lost).await.unwrap();
    let _owner = store.claim("held", &Owner::current()).await.unwrap();
    // A step of the new owner: it carries the run's mark.
    let mut step = std::process::Command::new("sleep")
        .arg("30")
        .env(crate::process::MARK_VAR, mark.as_str())
        .spawn()
        .unwrap();

    let request = ResumeRequest {
        run_id: "held".to_owned(),
        max_parallel: None,
        window_until: None,
    };
    let resumed = resume_claimed(store.clone(), lost, &request, &|_| {}).await;
    let alive = step.try_wait().unwrap().is_none();
    let _ = step.kill();
    let _ = step.wait();
    match resumed {
        Err(AppError::Store(StoreError::LostOwnership(_))) => {}
        Err(other) => panic!("expected LostOwnership, got {other}"),
        Ok(_) => panic!("a process that lost the run resumed it"),
    }
    assert!(alive, "the new owner's step was stopped");
}

/// A person sees a run live from the moment a process claims it, before its first step
/// starts there: a pause asked in between is for that process, and it parks the run. It
/// was taken for a request meant for an earlier process, and the run went on to its end.
#[tokio::test(flavor = "multi_thread")]
async fn a_pause_asked_between_the_claim_and_the_first_step_parks_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("runs.db").display());
    // Long enough for the run to look for a pause request (every half second).
    let slow = SLEEPS.replace("100ms", "900ms");
    let claimed = start(request(dir.path(), "sleeps", &slow, &store_url))
        .await
        .unwrap();
    let store = claimed.store.clone();
    pause(
        store.as_ref(),
        PauseRunRequest {
            run_id: "sleeps".to_owned(),
            now: false,
            by: Some("otto".to_owned()),
            reason: "the pager went off".to_owned(),
        },
    )
    .await
    .unwrap();
    // The run starts here only once the clock has moved past the request.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (paused, events) = watch(claimed).await;
    assert_eq!(paused.outcome.status, RunStatus::Interrupted, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::RunPaused(p) if p.reason == "the pager went off")),
        "{events:?}"
    );
    assert_eq!(ended_steps(&events), ["one"], "two never starts");
}
