//! What every [`Store`] must do, as one function per property, each taking a
//! [`StoreFactory`]. The SQLite store runs the whole suite (see `sqlite/tests/mod.rs`); another store
//! (PostgreSQL) runs it unchanged by implementing the factory:
//!
//! ```ignore
//! store::conformance::run_all(&MyFactory::new().await).await;
//! ```
//!
//! Two handles from one factory share their runs, as two processes on one database do: that
//! is how the lease and fencing properties stand for two contending processes.
//!
//! The `runs list` filters (runbook, status, since, limit) are not the store's: the command
//! applies them to [`Store::runs`], whose order (newest first) is a property here.

mod durations;
mod locks;
mod queue;

pub use durations::*;
pub use locks::*;
pub use queue::*;

use super::{Decision, Owner, Store, StoreError};
use crate::event::{Envelope, RunEvent, RunStatus};
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;

/// Makes handles on one empty store, and breaks it the way only the storage itself can.
pub trait StoreFactory: Sync {
    /// A new handle on the store; every handle sees the same runs.
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>>;
    /// Rewrites the stored body of event `seq` of `run_id`, replacing `from` with `to` in
    /// its text and leaving its chain link as it was: what a hand edit of the storage does.
    fn tamper<'a>(
        &'a self,
        run_id: &'a str,
        seq: u64,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, ()>;
    /// Deletes the stored event `seq` of `run_id`.
    fn lose_event<'a>(&'a self, run_id: &'a str, seq: u64) -> BoxFuture<'a, ()>;
    /// Moves the end of every lease a minute into the past.
    fn expire_leases(&self) -> BoxFuture<'_, ()>;
}

/// Every property, in turn.
pub async fn run_all(factory: &dyn StoreFactory) {
    events_come_back_as_written(factory).await;
    unknown_runs_are_not_found(factory).await;
    a_run_id_is_created_once(factory).await;
    appends_check_the_numbering(factory).await;
    a_changed_event_breaks_the_chain(factory).await;
    a_lost_event_is_noticed(factory).await;
    a_live_owner_keeps_its_run(factory).await;
    of_two_contenders_one_claims_the_run(factory).await;
    a_lease_taken_over_fences_the_old_owner(factory).await;
    an_expired_lease_can_be_taken(factory).await;
    a_lease_that_ran_out_fences_its_writer(factory).await;
    summaries_follow_the_run(factory).await;
    pages_of_runs_are_slices_of_the_list(factory).await;
    queued_runs_are_claimed_once_each(factory).await;
    the_queue_lists_its_runs_that_are_not_over(factory).await;
    a_step_is_answered_once(factory).await;
    a_quorum_takes_each_person_once(factory).await;
    a_record_keeps_who_added_a_value_first(factory).await;
    step_output_comes_back_with_its_step(factory).await;
    a_lock_has_one_holder_at_a_time(factory).await;
    of_many_contenders_one_takes_a_lock(factory).await;
    a_lock_whose_lease_ran_out_is_taken_over(factory).await;
    a_renewed_lock_stays_held(factory).await;
    a_kept_lock_outlives_its_lease(factory).await;
    step_durations_come_from_succeeded_runs(factory).await;
    a_span_runs_from_a_step_start_through_another_step_end(factory).await;
    // Last: it deletes the runs of the other properties that are over.
    prune_keeps_running_and_parked_runs(factory).await;
}

pub fn envelope(run_id: &str, event: RunEvent) -> Envelope {
    Envelope {
        run_id: run_id.to_owned(),
        // As the engine writes times: a store may keep them in a form of its own (SQLite
        // keeps microseconds), and gives them back as this text.
        at: crate::event::timestamp::now(),
        event,
    }
}

pub fn started(run_id: &str) -> Envelope {
    envelope(
        run_id,
        RunEvent::RunStarted {
            runbook: "deploy".to_owned(),
            file: "runbooks/deploy.yaml".to_owned(),
            inputs: json!({ "env": "prod" }),
            sources: vec![],
            origin: None,
            by: None,
        },
    )
}

pub fn step(run_id: &str, path: &str) -> Envelope {
    envelope(
        run_id,
        RunEvent::StepStarted {
            path: path.to_owned(),
            attempt: 1,
            attempts: 3,
            fallback: false,
        },
    )
}

pub fn ended(run_id: &str, status: RunStatus, duration_ms: u64) -> Envelope {
    envelope(
        run_id,
        RunEvent::RunEnded {
            status,
            reason: None,
            outputs: json!({}),
            duration_ms,
            notices: Vec::new(),
        },
    )
}

/// An owner elsewhere, alive as far as this host can tell: only its lease protects its run.
fn elsewhere() -> Owner {
    Owner {
        host: format!("{}-elsewhere", Owner::current().host),
        ..Owner::current()
    }
}

pub async fn events_come_back_as_written(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let first = started("written");
    let lease = store.create("written", &owner, &first).await.unwrap();
    assert_eq!(lease.run_id, "written");
    assert_eq!(lease.owner, owner);
    let more = vec![
        step("written", "build"),
        step("written", "jobs[1]/deploy"),
        ended("written", RunStatus::Succeeded, 1500),
    ];
    store.append(&lease, 2, &more[..1]).await.unwrap();
    store.append(&lease, 3, &more[1..]).await.unwrap();
    let mut expected = vec![first];
    expected.extend(more);
    assert_eq!(store.events("written").await.unwrap(), expected);
    // Another handle reads the same.
    let other = factory.open().await;
    assert_eq!(other.events("written").await.unwrap(), expected);
}

pub async fn unknown_runs_are_not_found(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    assert!(matches!(
        store.events("nope").await,
        Err(StoreError::NotFound(id)) if id == "nope"
    ));
    assert!(matches!(
        store.run("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.claim("nope", &owner).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.decisions("nope").await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn a_run_id_is_created_once(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    store
        .create("once", &owner, &started("once"))
        .await
        .unwrap();
    let error = store
        .create("once", &owner, &started("once"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Exists(id) if id == "once"),
        "{error}"
    );
    // Nothing of the second attempt was kept.
    assert_eq!(store.events("once").await.unwrap().len(), 1);
    // The first event must start the run.
    let error = store
        .create("headless", &owner, &step("headless", "build"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
}

pub async fn appends_check_the_numbering(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let lease = store
        .create("numbered", &Owner::current(), &started("numbered"))
        .await
        .unwrap();
    for wrong in [1, 3, 0] {
        let error = store
            .append(&lease, wrong, &[step("numbered", "a")])
            .await
            .unwrap_err();
        match &error {
            StoreError::Corrupt { run_id, detail } => {
                assert_eq!(run_id, "numbered");
                assert!(detail.contains("the next event is number 2"), "{detail}");
            }
            other => panic!("expected Corrupt, got {other}"),
        }
    }
    // Nothing was written, and the right number still works.
    store
        .append(&lease, 2, &[step("numbered", "a")])
        .await
        .unwrap();
    assert_eq!(store.events("numbered").await.unwrap().len(), 2);
    // An event of another run is refused.
    let error = store
        .append(&lease, 3, &[step("another", "a")])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
}

/// The hash chain: an event changed in the storage (still valid JSON, still a valid event)
/// is noticed when the journal is read.
pub async fn a_changed_event_breaks_the_chain(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let lease = store
        .create("chained", &Owner::current(), &started("chained"))
        .await
        .unwrap();
    let events = [
        step("chained", "build"),
        step("chained", "deploy"),
        step("chained", "notify"),
    ];
    store.append(&lease, 2, &events).await.unwrap();
    store.events("chained").await.unwrap();
    factory.tamper("chained", 3, "deploy", "destroy").await;
    match store.events("chained").await.unwrap_err() {
        StoreError::Corrupt { run_id, detail } => {
            assert_eq!(run_id, "chained");
            assert!(
                detail.starts_with("event 3 is not as it was written"),
                "{detail}"
            );
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

pub async fn a_lost_event_is_noticed(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let lease = store
        .create("lossy", &Owner::current(), &started("lossy"))
        .await
        .unwrap();
    let events = [step("lossy", "a"), step("lossy", "b"), step("lossy", "c")];
    store.append(&lease, 2, &events).await.unwrap();
    factory.lose_event("lossy", 4).await;
    let error = store.events("lossy").await.unwrap_err();
    assert!(error.to_string().contains("event 4 is missing"), "{error}");
    // The last ones gone leave no gap, but the run knows how many it had.
    factory.lose_event("lossy", 3).await;
    let error = store.events("lossy").await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("event 3 is missing: the run records 4 events"),
        "{error}"
    );
}

pub async fn a_live_owner_keeps_its_run(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let lease = store
        .create("kept", &owner, &started("kept"))
        .await
        .unwrap();
    match store.claim("kept", &owner).await.unwrap_err() {
        StoreError::Owned { run_id, owner: by } => {
            assert_eq!(run_id, "kept");
            assert_eq!(by, owner);
        }
        other => panic!("expected Owned, got {other}"),
    }
    // Once released, it may be taken at once, under a new token; then it is held again.
    store.release(&lease).await.unwrap();
    assert_eq!(store.run("kept").await.unwrap().owner, None);
    let taken = store.claim("kept", &owner).await.unwrap();
    assert_ne!(taken.token, lease.token);
    assert!(matches!(
        store.claim("kept", &owner).await,
        Err(StoreError::Owned { .. })
    ));
}

/// The claim is a compare-and-swap: of two handles claiming a free run at once, exactly one
/// wins, and only the winner's token may append.
pub async fn of_two_contenders_one_claims_the_run(factory: &dyn StoreFactory) {
    let one = factory.open().await;
    let two = factory.open().await;
    let owner = Owner::current();
    for n in 0..10 {
        let id = format!("contended-{n}");
        let lease = one.create(&id, &owner, &started(&id)).await.unwrap();
        one.release(&lease).await.unwrap();
        let (a, b) = tokio::join!(one.claim(&id, &owner), two.claim(&id, &owner));
        let (won, lost) = match (a, b) {
            (Ok(lease), Err(error)) | (Err(error), Ok(lease)) => (lease, error),
            (a, b) => panic!("expected exactly one winner, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(&lost, StoreError::Owned { owner: by, .. } if *by == owner),
            "{lost}"
        );
        two.append(&won, 2, &[step(&id, "a")]).await.unwrap();
        assert!(matches!(
            one.append(&lease, 3, &[step(&id, "b")]).await,
            Err(StoreError::LostOwnership(_))
        ));
    }
}

/// An owner on this host whose process has exited.
fn gone_owner() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner {
        pid,
        process_start: None,
        ..Owner::current()
    }
}

/// A run whose owner on this host is gone can be taken at once, lease or not; and fencing:
/// once a run is taken over, its old owner can no longer append, renew or release.
pub async fn a_lease_taken_over_fences_the_old_owner(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let dead = gone_owner();
    assert!(dead.is_gone());
    let old = store
        .create("fenced", &dead, &started("fenced"))
        .await
        .unwrap();
    // Written before the takeover: a store that remembers what it wrote last must still
    // look at the lease.
    store
        .append(&old, 2, &[step("fenced", "before")])
        .await
        .unwrap();
    let me = Owner::current();
    let lease = factory.open().await.claim("fenced", &me).await.unwrap();
    assert_eq!(store.run("fenced").await.unwrap().owner, Some(me));
    assert!(matches!(
        store.append(&old, 3, &[step("fenced", "a")]).await,
        Err(StoreError::LostOwnership(id)) if id == "fenced"
    ));
    assert!(matches!(
        store.renew(&old).await,
        Err(StoreError::LostOwnership(_))
    ));
    // Releasing a lease that is no longer yours leaves the new owner's in place.
    store.release(&old).await.unwrap();
    assert!(store.run("fenced").await.unwrap().owner.is_some());
    store.renew(&lease).await.unwrap();
    store
        .append(&lease, 3, &[step("fenced", "a")])
        .await
        .unwrap();
    assert_eq!(store.events("fenced").await.unwrap().len(), 3);
}

pub async fn an_expired_lease_can_be_taken(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    store
        .create("expired", &elsewhere(), &started("expired"))
        .await
        .unwrap();
    assert!(matches!(
        store.claim("expired", &Owner::current()).await,
        Err(StoreError::Owned { .. })
    ));
    factory.expire_leases().await;
    store.claim("expired", &Owner::current()).await.unwrap();
}

/// Fencing by time: a writer whose lease ran out (paused past it) can neither append nor
/// renew, even before anyone takes the run over; a claim then takes it, and only the new
/// owner writes.
pub async fn a_lease_that_ran_out_fences_its_writer(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let paused = store
        .create("paused", &elsewhere(), &started("paused"))
        .await
        .unwrap();
    store
        .append(&paused, 2, &[step("paused", "a")])
        .await
        .unwrap();
    factory.expire_leases().await;
    assert!(matches!(
        store.append(&paused, 3, &[step("paused", "b")]).await,
        Err(StoreError::LostOwnership(id)) if id == "paused"
    ));
    assert!(matches!(
        store.renew(&paused).await,
        Err(StoreError::LostOwnership(_))
    ));
    assert_eq!(store.events("paused").await.unwrap().len(), 2);
    let taken = factory
        .open()
        .await
        .claim("paused", &Owner::current())
        .await
        .unwrap();
    store
        .append(&taken, 3, &[step("paused", "b")])
        .await
        .unwrap();
    assert!(matches!(
        store.append(&paused, 4, &[step("paused", "c")]).await,
        Err(StoreError::LostOwnership(_))
    ));
}

/// The summary follows the run-level events: status, end, the time of every segment, the
/// owner; and the list is newest first.
/// `runs_page` walks the list `runs` gives, a page at a time from a cursor, and narrows it
/// to one runbook; a cursor naming no run gives nothing.
pub async fn pages_of_runs_are_slices_of_the_list(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    for number in 0..7 {
        let run_id = format!("paged-{number}");
        let mut first = started(&run_id);
        if let (3, RunEvent::RunStarted { runbook, .. }) = (number, &mut first.event) {
            *runbook = "other".to_owned();
        }
        store.create(&run_id, &owner, &first).await.unwrap();
    }
    let all: Vec<String> = store
        .runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut walked = Vec::new();
    let mut page = crate::store::RunsPage {
        limit: 2,
        ..Default::default()
    };
    loop {
        let read = store.runs_page(&page).await.unwrap();
        assert!(read.len() <= 2, "a page holds at most its limit");
        if read.is_empty() {
            break;
        }
        page.after = read.last().map(|r| r.id.clone());
        walked.extend(read.into_iter().map(|r| r.id));
    }
    assert_eq!(walked, all, "the pages, one after another, are the list");
    let others = store
        .runs_page(&crate::store::RunsPage {
            runbook: Some("other".to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = others.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["paged-3"]);
    let unknown = store
        .runs_page(&crate::store::RunsPage {
            after: Some("no-such-run".to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(unknown.is_empty(), "after an unknown run: {unknown:?}");
}

pub async fn summaries_follow_the_run(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let first = store
        .create("listed-1", &owner, &started("listed-1"))
        .await
        .unwrap();
    let second = store
        .create("listed-2", &owner, &started("listed-2"))
        .await
        .unwrap();
    store
        .append(&second, 2, &[step("listed-2", "a")])
        .await
        .unwrap();
    store
        .append(
            &first,
            2,
            &[ended("listed-1", RunStatus::Interrupted, 1200)],
        )
        .await
        .unwrap();
    store.release(&first).await.unwrap();
    let runs = store.runs().await.unwrap();
    let ours: Vec<_> = runs
        .iter()
        .filter(|r| r.id.starts_with("listed-"))
        .collect();
    let ids: Vec<&str> = ours.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["listed-2", "listed-1"]);
    let (running, parked) = (ours[0], ours[1]);
    assert_eq!(running.runbook, "deploy");
    assert_eq!(running.file, "runbooks/deploy.yaml");
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(
        (running.ended_at.as_ref(), running.duration_ms),
        (None, None)
    );
    assert_eq!(running.owner.as_ref(), Some(&owner));
    assert_eq!(parked.status, RunStatus::Interrupted);
    assert_eq!(parked.duration_ms, Some(1200));
    assert!(parked.ended_at.is_some());
    assert_eq!(parked.owner, None);
    assert!(parked.updated_at >= parked.created_at);

    // Resumed: running again, until it ends; the time of both segments adds up.
    let resumed = store.claim("listed-1", &owner).await.unwrap();
    let by = RunEvent::RunResumed {
        by: format!("pid {}", owner.pid),
    };
    store
        .append(&resumed, 3, &[envelope("listed-1", by)])
        .await
        .unwrap();
    let run = store.run("listed-1").await.unwrap();
    assert_eq!(
        (run.status, run.ended_at, run.duration_ms),
        (RunStatus::Running, None, None)
    );
    let end = ended("listed-1", RunStatus::Failed, 300);
    store
        .append(&resumed, 4, std::slice::from_ref(&end))
        .await
        .unwrap();
    let run = store.run("listed-1").await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.duration_ms, Some(1500));
    assert_eq!(run.ended_at.as_deref(), Some(end.at.as_str()));
}

/// Approvals: one answer per step, kept in the order given, for existing runs only.
pub async fn a_step_is_answered_once(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    store
        .create("asked", &Owner::current(), &started("asked"))
        .await
        .unwrap();
    let yes = Decision {
        path: "jobs[1]/confirm".to_owned(),
        approved: true,
        by: "ana@host-a".to_owned(),
        comment: Some("looks right".to_owned()),
        at: "2025-01-02T03:04:05Z".to_owned(),
    };
    store.decide("asked", &yes, 1).await.unwrap();
    let no = Decision {
        approved: false,
        by: "bo@host-b".to_owned(),
        comment: None,
        ..yes.clone()
    };
    match factory
        .open()
        .await
        .decide("asked", &no, 1)
        .await
        .unwrap_err()
    {
        StoreError::AlreadyDecided { run_id, path, by } => assert_eq!(
            (run_id.as_str(), path.as_str(), by.as_str()),
            ("asked", "jobs[1]/confirm", "ana@host-a")
        ),
        other => panic!("expected AlreadyDecided, got {other}"),
    }
    let other_step = Decision {
        path: "go_ahead".to_owned(),
        at: "2025-01-02T03:09:00Z".to_owned(),
        ..no.clone()
    };
    store.decide("asked", &other_step, 1).await.unwrap();
    assert_eq!(
        store.decisions("asked").await.unwrap(),
        vec![yes, other_step.clone()]
    );
    assert!(matches!(
        store.decide("nope", &other_step, 1).await,
        Err(StoreError::NotFound(id)) if id == "nope"
    ));
}

/// Approvals by several people: each person once, until the quorum or a rejection settles
/// the step.
pub async fn a_quorum_takes_each_person_once(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    store
        .create("quorum", &Owner::current(), &started("quorum"))
        .await
        .unwrap();
    let answer = |by: &str, approved: bool, second: u32| Decision {
        path: "go".to_owned(),
        approved,
        by: by.to_owned(),
        comment: None,
        at: format!("2025-01-02T03:04:{second:02}Z"),
    };
    store
        .decide("quorum", &answer("ana", true, 1), 2)
        .await
        .unwrap();
    match store.decide("quorum", &answer("ana", true, 2), 2).await {
        Err(StoreError::AlreadyAnsweredBy { by, path, .. }) => {
            assert_eq!((by.as_str(), path.as_str()), ("ana", "go"))
        }
        other => panic!("expected AlreadyAnsweredBy, got {other:?}"),
    }
    store
        .decide("quorum", &answer("bo", true, 3), 2)
        .await
        .unwrap();
    match store.decide("quorum", &answer("cy", false, 4), 2).await {
        Err(StoreError::AlreadyDecided { by, .. }) => assert_eq!(by, "ana, bo"),
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
    assert_eq!(
        store.decisions("quorum").await.unwrap(),
        vec![answer("ana", true, 1), answer("bo", true, 3)]
    );
    // A rejection settles a step at once, however many approvals it still needed.
    let rejected = |by: &str, approved: bool, second: u32| Decision {
        path: "other".to_owned(),
        ..answer(by, approved, second)
    };
    store
        .decide("quorum", &rejected("cy", false, 5), 3)
        .await
        .unwrap();
    match store.decide("quorum", &rejected("dan", true, 6), 3).await {
        Err(StoreError::AlreadyDecided { by, .. }) => assert_eq!(by, "cy"),
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
}

/// Records: a value is kept once, with the run and step that added it first; adding answers
/// only the values that were new; records are apart by name, oldest value first.
pub async fn a_record_keeps_who_added_a_value_first(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    for run_id in ["recorder-1", "recorder-2"] {
        store
            .create(run_id, &owner, &started(run_id))
            .await
            .unwrap();
    }
    assert_eq!(store.records("seen-jobs").await.unwrap(), vec![]);
    let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let added = store
        .add_records("seen-jobs", "recorder-1", "save", &values(&["a", "b"]))
        .await
        .unwrap();
    assert_eq!(added, values(&["a", "b"]));
    let added = factory
        .open()
        .await
        .add_records(
            "seen-jobs",
            "recorder-2",
            "jobs[0]/save",
            &values(&["b", "c"]),
        )
        .await
        .unwrap();
    assert_eq!(added, values(&["c"]));
    store
        .add_records("other-record", "recorder-2", "save", &values(&["a"]))
        .await
        .unwrap();
    let entries = store.records("seen-jobs").await.unwrap();
    let kept: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e.value.as_str(), e.run_id.as_str(), e.path.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("a", "recorder-1", "save"),
            ("b", "recorder-1", "save"),
            ("c", "recorder-2", "jobs[0]/save"),
        ]
    );
    assert!(entries.iter().all(|e| !e.at.is_empty()));
    assert!(entries.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(store.records("other-record").await.unwrap().len(), 1);
}

/// Pruning deletes the runs that are over and ended before the cutoff, with their events;
/// never a run that is running (owned, or left running by a process that died), parked
/// (interrupted, waiting or parked) or still held by an owner. Runs last: it deletes every run that
/// is over, including those of the other properties.
pub async fn prune_keeps_running_and_parked_runs(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let owner = Owner::current();
    let run = |id: &'static str, end: Option<RunStatus>, release: bool| {
        let store = store.clone();
        let owner = owner.clone();
        async move {
            let lease = store.create(id, &owner, &started(id)).await.unwrap();
            if let Some(status) = end {
                store
                    .append(&lease, 2, &[ended(id, status, 10)])
                    .await
                    .unwrap();
            }
            if release {
                store.release(&lease).await.unwrap();
            }
        }
    };
    run("pruned-succeeded", Some(RunStatus::Succeeded), true).await;
    run("pruned-failed", Some(RunStatus::Failed), true).await;
    run("pruned-cancelled", Some(RunStatus::Cancelled), true).await;
    run("pruned-undone", Some(RunStatus::Undone), true).await;
    run("kept-running", None, false).await;
    run("kept-orphaned", None, true).await;
    run("kept-interrupted", Some(RunStatus::Interrupted), true).await;
    run("kept-waiting", Some(RunStatus::Waiting), true).await;
    run("kept-parked", Some(RunStatus::Parked), true).await;
    run("kept-held", Some(RunStatus::Succeeded), false).await;

    // A cutoff before every end deletes nothing.
    let none = store.prune("2000-01-01T00:00:00Z").await.unwrap();
    let ours = |id: &str| id.starts_with("pruned-") || id.starts_with("kept-");
    assert!(none.iter().all(|r| !ours(&r.id)), "{none:?}");
    assert_eq!(
        store.run("pruned-failed").await.unwrap().status,
        RunStatus::Failed
    );

    let deleted = store.prune("9999-12-31T00:00:00Z").await.unwrap();
    let mut deleted: Vec<&str> = deleted
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| ours(id))
        .collect();
    deleted.sort_unstable();
    assert_eq!(
        deleted,
        [
            "pruned-cancelled",
            "pruned-failed",
            "pruned-succeeded",
            "pruned-undone"
        ]
    );
    for id in [
        "pruned-succeeded",
        "pruned-failed",
        "pruned-cancelled",
        "pruned-undone",
    ] {
        assert!(matches!(store.run(id).await, Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.events(id).await,
            Err(StoreError::NotFound(_))
        ));
    }
    for id in [
        "kept-running",
        "kept-orphaned",
        "kept-interrupted",
        "kept-waiting",
        "kept-parked",
        "kept-held",
    ] {
        assert!(store.run(id).await.is_ok(), "{id} was pruned");
        assert_eq!(store.events(id).await.unwrap()[0].run_id, id);
    }
    let listed: Vec<String> = store
        .runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(listed.iter().all(|id| !id.starts_with("pruned-")));
    assert_eq!(
        listed.iter().filter(|id| id.starts_with("kept-")).count(),
        6
    );
}

/// What a step printed travels in the journal: each `step_output` comes back whole (lines,
/// non-ASCII text, both streams, the bytes cut) and right after its `step_started`.
pub async fn step_output_comes_back_with_its_step(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let lease = store
        .create("printed", &Owner::current(), &started("printed"))
        .await
        .unwrap();
    let output = |stdout: &str, stderr: &str, cut_bytes| {
        envelope(
            "printed",
            RunEvent::StepOutput {
                path: "jobs[0]/check".to_owned(),
                stdout: stdout.to_owned(),
                stderr: stderr.to_owned(),
                cut_bytes,
            },
        )
    };
    let written = vec![
        step("printed", "jobs[0]/check"),
        output("savepoint: s3://sp/7\nstatus: RUNNING ✓\n", "", 0),
        step("printed", "jobs[0]/check"),
        output("", "warning: \"slow\"\t€\n", 4096),
    ];
    store.append(&lease, 2, &written).await.unwrap();
    let events = factory.open().await.events("printed").await.unwrap();
    assert_eq!(events[1..], written[..]);
}
