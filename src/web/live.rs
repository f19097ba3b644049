//! Live events of runs: one store poller per watched run, shared by every client watching it.
//!
//! The first client of a run starts its poller; the poller reads the journal's new events
//! every [`POLL`] and broadcasts them; when the last client leaves, it stops. A client that
//! falls behind the broadcast (a slow connection) reads what it missed from the store, so
//! nobody misses an event and nobody sees one twice.

use crate::event::Envelope;
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// How often a watched run's journal is read for new events.
pub const POLL: Duration = Duration::from_millis(250);

/// Events a poller keeps for clients that are a little behind, before they must read the
/// store again.
const BUFFER: usize = 1024;

/// One journal event with its sequence number (1 for the first).
#[derive(Debug, Clone)]
pub struct Numbered {
    pub seq: u64,
    pub envelope: Arc<Envelope>,
}

/// What a poller tells its clients.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    Event(Numbered),
    /// The run is over and every event of it was sent.
    Ended,
}

/// The pollers of every watched run; cheap to clone.
#[derive(Clone, Default)]
pub struct LiveEvents {
    watched: Arc<Mutex<HashMap<String, broadcast::Sender<LiveMessage>>>>,
}

/// A client's subscription: the broadcast of its run. Dropping it leaves.
pub struct Subscription {
    pub receiver: broadcast::Receiver<LiveMessage>,
}

impl LiveEvents {
    /// Subscribes to run `run_id`'s new events, starting its poller if nobody watches it
    /// yet. Events already journaled are the caller's to read ([`events_after`]): subscribe
    /// first, then read, then skip what the broadcast repeats.
    pub fn subscribe(&self, store: Arc<dyn Store>, run_id: &str) -> Subscription {
        let mut watched = self
            .watched
            .lock()
            .expect("the watch list is never poisoned");
        if let Some(sender) = watched.get(run_id) {
            return Subscription {
                receiver: sender.subscribe(),
            };
        }
        let (sender, receiver) = broadcast::channel(BUFFER);
        watched.insert(run_id.to_owned(), sender.clone());
        let this = self.clone();
        let run_id = run_id.to_owned();
        tokio::spawn(async move { this.poll(store, run_id, sender).await });
        Subscription { receiver }
    }

    /// How many runs have a poller now.
    pub fn pollers(&self) -> usize {
        self.watched.lock().map(|w| w.len()).unwrap_or(0)
    }

    async fn poll(
        &self,
        store: Arc<dyn Store>,
        run_id: String,
        sender: broadcast::Sender<LiveMessage>,
    ) {
        // Clients read what is journaled when they subscribe; the poller starts from there.
        let mut last = match store.events(&run_id).await {
            Ok(events) => events.len() as u64,
            Err(_) => 0,
        };
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if self.leave_if_unwatched(&run_id, &sender) {
                return;
            }
            let Ok(events) = events_after(store.as_ref(), &run_id, last).await else {
                continue;
            };
            for numbered in events {
                last = numbered.seq;
                let _ = sender.send(LiveMessage::Event(numbered));
            }
            if run_over(store.as_ref(), &run_id).await {
                // Events journaled between the read and the status are read once more.
                if let Ok(events) = events_after(store.as_ref(), &run_id, last).await {
                    for numbered in events {
                        let _ = sender.send(LiveMessage::Event(numbered));
                    }
                }
                let _ = sender.send(LiveMessage::Ended);
                self.forget(&run_id, &sender);
                return;
            }
        }
    }

    /// Stops watching when the last client has left (under the lock, so that a client
    /// subscribing now starts a new poller rather than joining a stopped one).
    fn leave_if_unwatched(&self, run_id: &str, sender: &broadcast::Sender<LiveMessage>) -> bool {
        let mut watched = self
            .watched
            .lock()
            .expect("the watch list is never poisoned");
        if sender.receiver_count() == 0 {
            if watched.get(run_id).is_some_and(|s| s.same_channel(sender)) {
                watched.remove(run_id);
            }
            return true;
        }
        false
    }

    fn forget(&self, run_id: &str, sender: &broadcast::Sender<LiveMessage>) {
        let mut watched = self
            .watched
            .lock()
            .expect("the watch list is never poisoned");
        if watched.get(run_id).is_some_and(|s| s.same_channel(sender)) {
            watched.remove(run_id);
        }
    }
}

/// Whether the run has ended for good (not parked: a parked run goes on later).
pub async fn run_over(store: &dyn Store, run_id: &str) -> bool {
    store
        .run(run_id)
        .await
        .is_ok_and(|summary| summary.status.is_over())
}

/// The events of a run after number `after`, numbered.
pub async fn events_after(
    store: &dyn Store,
    run_id: &str,
    after: u64,
) -> Result<Vec<Numbered>, StoreError> {
    let events = store.events_after(run_id, after).await?;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(index, envelope)| Numbered {
            seq: after + index as u64 + 1,
            envelope: Arc::new(envelope),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RunStatus;
    use crate::store::conformance::{ended, started, step};
    use crate::store::{Owner, sqlite::SqliteStore};

    async fn next_event(subscription: &mut Subscription) -> LiveMessage {
        tokio::time::timeout(Duration::from_secs(5), subscription.receiver.recv())
            .await
            .expect("a message within 5 s")
            .expect("the poller is there")
    }

    #[tokio::test]
    async fn one_poller_serves_every_client_of_a_run_and_stops_when_the_last_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("runs.db"))
                .await
                .unwrap(),
        );
        let lease = store
            .create("r1", &Owner::current(), &started("r1"))
            .await
            .unwrap();
        let live = LiveEvents::default();
        let mut first = live.subscribe(store.clone(), "r1");
        let mut second = live.subscribe(store.clone(), "r1");
        assert_eq!(
            live.pollers(),
            1,
            "the second client joins the first's poller"
        );

        store.append(&lease, 2, &[step("r1", "a")]).await.unwrap();
        for subscription in [&mut first, &mut second] {
            match next_event(subscription).await {
                LiveMessage::Event(numbered) => assert_eq!(numbered.seq, 2),
                other => panic!("expected event 2, got {other:?}"),
            }
        }

        drop(first);
        drop(second);
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(live.pollers(), 0, "the poller stops when nobody watches");

        // Watching again starts a new poller, which ends with the run.
        let mut third = live.subscribe(store.clone(), "r1");
        store
            .append(&lease, 3, &[ended("r1", RunStatus::Succeeded, 5)])
            .await
            .unwrap();
        assert!(matches!(next_event(&mut third).await, LiveMessage::Event(n) if n.seq == 3));
        assert!(matches!(next_event(&mut third).await, LiveMessage::Ended));
        tokio::time::sleep(POLL).await;
        assert_eq!(live.pollers(), 0);
    }
}
