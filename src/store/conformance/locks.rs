//! Locks shared across runs: one holder at a time, atomic acquisition, leases that run out,
//! renewal, and locks kept without a lease while a run is parked.

use super::StoreFactory;
use crate::store::{HeldLock, LockAttempt, LockHolder, Owner};
use std::time::Duration;

/// Lock names of each property are their own: the store is shared by the whole suite.
fn holder(run_id: &str, step: &str) -> LockHolder {
    LockHolder {
        run_id: run_id.to_owned(),
        step: step.to_owned(),
        runbook: "deploy".to_owned(),
        owner: Owner::current(),
    }
}

const LONG: Duration = Duration::from_secs(60);

fn acquired(attempt: LockAttempt) -> HeldLock {
    match attempt {
        LockAttempt::Acquired(held) => held,
        LockAttempt::HeldBy(held) => panic!("expected to take the lock, {held:?} holds it"),
    }
}

fn refused(attempt: LockAttempt) -> HeldLock {
    match attempt {
        LockAttempt::HeldBy(held) => held,
        LockAttempt::Acquired(held) => panic!("expected a refusal, took {held:?}"),
    }
}

/// Acquire, acquire again by the same holder, refuse another run and another step of the
/// same run, release only by the holder, list what is held.
pub async fn a_lock_has_one_holder_at_a_time(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let first = holder("lock-run-a", "");
    let taken = acquired(store.acquire_lock("lk-one", &first, LONG).await.unwrap());
    assert_eq!(taken.name, "lk-one");
    assert_eq!(taken.holder.run_id, "lock-run-a");
    assert!(taken.expires_at.is_some());
    // The same run in another process (a resume) takes it again, keeping when it took it.
    let resumed = LockHolder {
        owner: Owner {
            pid: taken.holder.owner.pid + 1,
            since: crate::event::timestamp::now(),
            ..Owner::current()
        },
        ..first.clone()
    };
    let again = acquired(store.acquire_lock("lk-one", &resumed, LONG).await.unwrap());
    assert_eq!(again.acquired_at, taken.acquired_at);
    assert_eq!(again.holder.owner.pid, resumed.owner.pid);
    // Another run, and another step of the same run, are refused and told who holds it.
    let other = holder("lock-run-b", "");
    let by = refused(store.acquire_lock("lk-one", &other, LONG).await.unwrap());
    assert_eq!(by.holder.run_id, "lock-run-a");
    assert_eq!(by.holder.step, "");
    assert_eq!(by.holder.runbook, "deploy");
    assert_eq!(by.holder.owner.host, first.owner.host);
    assert_eq!(by.acquired_at, taken.acquired_at);
    let step = holder("lock-run-a", "restart[1]");
    refused(store.acquire_lock("lk-one", &step, LONG).await.unwrap());
    // A second lock of the same run, held by a step.
    acquired(store.acquire_lock("lk-two", &step, LONG).await.unwrap());
    let names = |held: Vec<HeldLock>| -> Vec<(String, String, String)> {
        held.into_iter()
            .filter(|h| h.name.starts_with("lk-"))
            .map(|h| (h.name, h.holder.run_id, h.holder.step))
            .collect()
    };
    assert_eq!(
        names(store.locks().await.unwrap()),
        [
            ("lk-one".into(), "lock-run-a".into(), "".into()),
            ("lk-two".into(), "lock-run-a".into(), "restart[1]".into()),
        ]
    );
    // Only the holder releases; then the other run takes it at once.
    assert!(!store.release_lock("lk-one", &other).await.unwrap());
    assert!(!store.release_lock("lk-one", &step).await.unwrap());
    assert!(store.release_lock("lk-one", &first).await.unwrap());
    assert!(!store.release_lock("lk-one", &first).await.unwrap());
    let taken = acquired(store.acquire_lock("lk-one", &other, LONG).await.unwrap());
    assert_eq!(taken.holder.run_id, "lock-run-b");
    assert!(store.release_lock("lk-one", &other).await.unwrap());
    assert!(store.release_lock("lk-two", &step).await.unwrap());
    assert_eq!(names(store.locks().await.unwrap()), []);
}

/// Acquiring is atomic: of many handles asking for a free lock at once, exactly one takes
/// it, and every other is told that one holds it.
pub async fn of_many_contenders_one_takes_a_lock(factory: &dyn StoreFactory) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(factory.open().await);
    }
    for round in 0..5 {
        let name = format!("lk-contended-{round}");
        let holders: Vec<LockHolder> = (0..stores.len())
            .map(|n| holder(&format!("contender-{n}"), ""))
            .collect();
        let attempts = futures::future::join_all(
            stores
                .iter()
                .zip(&holders)
                .map(|(store, holder)| store.acquire_lock(&name, holder, LONG)),
        )
        .await;
        let winners: Vec<&HeldLock> = attempts
            .iter()
            .filter_map(|a| match a.as_ref().unwrap() {
                LockAttempt::Acquired(held) => Some(held),
                LockAttempt::HeldBy(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{attempts:?}");
        let winner = &winners[0].holder.run_id;
        for attempt in &attempts {
            if let LockAttempt::HeldBy(held) = attempt.as_ref().unwrap() {
                assert_eq!(&held.holder.run_id, winner);
            }
        }
        let won = holders.iter().find(|h| &h.run_id == winner).unwrap();
        assert!(stores[0].release_lock(&name, won).await.unwrap());
    }
}

/// A holder that stops renewing (its process died) loses the lock once its lease runs out:
/// another run takes it, the lock is no longer listed as the old holder's, and the old
/// holder learns from its renewal that the lock is gone.
pub async fn a_lock_whose_lease_ran_out_is_taken_over(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let crashed = holder("lock-crashed", "");
    // Long enough that a busy machine (CI runs Flink beside the tests) still asks again
    // before it runs out: at 100 ms the refusal below was once a takeover.
    let short = Duration::from_secs(2);
    acquired(
        store
            .acquire_lock("lk-expiring", &crashed, short)
            .await
            .unwrap(),
    );
    let next = holder("lock-next", "");
    refused(
        store
            .acquire_lock("lk-expiring", &next, LONG)
            .await
            .unwrap(),
    );
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    // Run out: no longer listed as held.
    assert!(
        !store
            .locks()
            .await
            .unwrap()
            .iter()
            .any(|h| h.name == "lk-expiring")
    );
    let taken = acquired(
        store
            .acquire_lock("lk-expiring", &next, LONG)
            .await
            .unwrap(),
    );
    assert_eq!(taken.holder.run_id, "lock-next");
    assert_ne!(taken.acquired_at, "");
    assert!(
        store
            .renew_locks("lock-crashed", LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.release_lock("lk-expiring", &crashed).await.unwrap());
    assert_eq!(
        store.renew_locks("lock-next", LONG).await.unwrap(),
        ["lk-expiring"]
    );
    assert!(store.release_lock("lk-expiring", &next).await.unwrap());
}

/// Renewing extends the lease of every lock the run holds: past the first lease, the lock is
/// still the run's.
pub async fn a_renewed_lock_stays_held(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let alive = holder("lock-alive", "");
    let step = holder("lock-alive", "migrate");
    // Renewed every 0.6 s: a busy machine still renews well before the lease runs out.
    let short = Duration::from_millis(1500);
    acquired(
        store
            .acquire_lock("lk-renewed-b", &alive, short)
            .await
            .unwrap(),
    );
    acquired(
        store
            .acquire_lock("lk-renewed-a", &step, short)
            .await
            .unwrap(),
    );
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            store.renew_locks("lock-alive", short).await.unwrap(),
            ["lk-renewed-a", "lk-renewed-b"]
        );
    }
    let other = holder("lock-other", "");
    refused(
        store
            .acquire_lock("lk-renewed-a", &other, LONG)
            .await
            .unwrap(),
    );
    refused(
        store
            .acquire_lock("lk-renewed-b", &other, LONG)
            .await
            .unwrap(),
    );
    assert!(store.release_lock("lk-renewed-a", &step).await.unwrap());
    assert!(store.release_lock("lk-renewed-b", &alive).await.unwrap());
}

/// A run parked for an approval keeps its locks with no lease; its resume takes them again
/// with a lease.
pub async fn a_kept_lock_outlives_its_lease(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let parked = holder("lock-parked", "");
    // Long enough that a busy machine (CI runs Flink beside the tests) still asks again
    // before it runs out: at 100 ms the refusal below was once a takeover.
    let short = Duration::from_secs(2);
    acquired(store.acquire_lock("lk-kept", &parked, short).await.unwrap());
    store.keep_locks("lock-parked").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = holder("lock-other-run", "");
    let by = refused(store.acquire_lock("lk-kept", &other, LONG).await.unwrap());
    assert_eq!(by.holder.run_id, "lock-parked");
    assert_eq!(by.expires_at, None);
    assert!(
        store
            .locks()
            .await
            .unwrap()
            .iter()
            .any(|h| h.name == "lk-kept" && h.expires_at.is_none())
    );
    // Renewal leaves a kept lock kept: only a resume (acquiring again) gives it a lease.
    assert!(
        store
            .renew_locks("lock-parked", LONG)
            .await
            .unwrap()
            .is_empty()
    );
    let resumed = acquired(store.acquire_lock("lk-kept", &parked, LONG).await.unwrap());
    assert!(resumed.expires_at.is_some());
    assert!(store.release_lock("lk-kept", &parked).await.unwrap());
}
