//! The queue: enqueued runs wait without an owner; each is claimed by one worker.

use super::{StoreFactory, ended, started, step};
use crate::event::RunStatus;
use crate::store::{Owner, QUEUE_RECORD, StoreError};
use std::collections::BTreeSet;

/// A queued run is listed `queued`, owned by nobody and in the queue's record; of workers
/// claiming at once each gets a different run, oldest first, which is then `running` under
/// the claimer's lease; an empty queue answers none.
pub async fn queued_runs_are_claimed_once_each(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let ids: Vec<String> = (0..6).map(|n| format!("queued-{n}")).collect();
    for id in &ids {
        store.enqueue(id, &started(id)).await.unwrap();
    }
    assert!(matches!(
        store.enqueue(&ids[0], &started(&ids[0])).await,
        Err(StoreError::Exists(_))
    ));
    let first = store.run(&ids[0]).await.unwrap();
    assert_eq!(first.status, RunStatus::Queued);
    assert_eq!(first.owner, None);
    assert_eq!(store.events(&ids[0]).await.unwrap().len(), 1);
    let listed: BTreeSet<String> = store
        .records(QUEUE_RECORD)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.value)
        .collect();
    assert!(ids.iter().all(|id| listed.contains(id)), "{listed:?}");

    let workers = [
        factory.open().await,
        factory.open().await,
        factory.open().await,
    ];
    let owner = Owner::current();
    let mut claimed = Vec::new();
    for _ in 0..2 {
        let (a, b, c) = tokio::join!(
            workers[0].claim_queued(&owner),
            workers[1].claim_queued(&owner),
            workers[2].claim_queued(&owner),
        );
        for lease in [a, b, c] {
            claimed.push(lease.unwrap().expect("a queued run for each claim"));
        }
    }
    let mut taken: Vec<String> = claimed.iter().map(|lease| lease.run_id.clone()).collect();
    taken.sort();
    assert_eq!(taken, ids, "each queued run claimed exactly once");
    assert_eq!(store.claim_queued(&owner).await.unwrap(), None);
    for lease in &claimed {
        let run = store.run(&lease.run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.owner.as_ref(), Some(&owner));
        store
            .append(lease, 2, &[step(&lease.run_id, "a")])
            .await
            .unwrap();
    }
}

/// The queue's runs that have not ended are listed for serve's takeover, newest first;
/// neither a run of the queue that ended nor a run outside the queue is.
pub async fn the_queue_lists_its_runs_that_are_not_over(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let ids = ["unended-0", "unended-1", "unended-2"];
    for id in ids {
        store.enqueue(id, &started(id)).await.unwrap();
    }
    let owner = Owner::current();
    let outside = store
        .create("unended-outside", &owner, &started("unended-outside"))
        .await
        .unwrap();
    let over = store.claim(ids[0], &owner).await.unwrap();
    store
        .append(&over, 2, &[ended(ids[0], RunStatus::Succeeded, 5)])
        .await
        .unwrap();
    let running = store.claim(ids[1], &owner).await.unwrap();
    store
        .append(&running, 2, &[step(ids[1], "a")])
        .await
        .unwrap();

    let listed: Vec<String> = store
        .queue_not_over()
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .filter(|id| id.starts_with("unended-"))
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    store.release(&outside).await.unwrap();
}
