//! The run's journal as the executor sees it: events go in as they happen, in order, and a
//! writer, driven beside the run, commits them in groups. Each event comes back with a
//! [`Durable`] that resolves once it is on disk, so the executor waits exactly where it must
//! (before an action starts, before dependents of an ended step start) and nowhere else. Events that arrive while a
//! commit is under way are committed together in the next one: many steps starting at once
//! cost one disk sync, not one each.

use super::{Lease, Store, StoreError, run_lease};
use crate::event::Envelope;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most events in one commit; bounds the transaction when thousands of steps start at once.
const MAX_GROUP: usize = 4096;

/// How long an event that nothing waits for may wait for company before it is committed on
/// its own: a step's end is followed at once by its dependent's start, and the two then cost
/// one disk sync instead of two.
const SOON: std::time::Duration = std::time::Duration::from_millis(2);

type Ack = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// A queued event (or, without one, a marker acknowledged once everything queued before it
/// is written or refused): its acknowledgement, and whether someone waits for it (commit at
/// once).
type Item = (Option<Envelope>, Ack, bool);

pub struct Journal {
    sender: Mutex<Option<mpsc::UnboundedSender<Item>>>,
    /// Resolves once the writer has ended (or was dropped unfinished).
    writer: Mutex<Option<oneshot::Receiver<()>>>,
    failure: Arc<Mutex<Option<Arc<StoreError>>>>,
    /// The events that could not be written: the group whose commit failed and everything
    /// queued after it. Empty while the journal works.
    unwritten: Arc<Mutex<Vec<Envelope>>>,
    /// Cancelled when a write fails or the lease is lost: the run must stop, since nothing
    /// it does from then on could be recorded.
    broken: CancellationToken,
    store: Option<(Arc<dyn Store>, Lease)>,
}

impl Journal {
    /// A journal that keeps nothing: every event is "durable" at once. For benchmarks of the
    /// executor alone.
    pub fn none() -> Self {
        Journal {
            sender: Mutex::new(None),
            writer: Mutex::new(None),
            failure: Arc::new(Mutex::new(None)),
            unwritten: Arc::new(Mutex::new(Vec::new())),
            broken: CancellationToken::new(),
            store: None,
        }
    }

    /// A journal writing to `store` under `lease`, the next event numbered `next_seq`, and
    /// the future that writes it, for the caller to drive beside the run (`tokio::join!`)
    /// or to spawn. Beside the run, the run's events reach the writer, and its
    /// acknowledgements the run, without waking another thread: a wake-up costs more than
    /// the rest of a step of a chain but its disk sync. Nothing is written until the future
    /// is polled, and [`Journal::close`] waits for it to end.
    pub fn with_writer(
        store: Arc<dyn Store>,
        lease: Lease,
        next_seq: u64,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let failure = Arc::new(Mutex::new(None));
        let unwritten = Arc::new(Mutex::new(Vec::new()));
        let broken = CancellationToken::new();
        let (ended, writer_ended) = oneshot::channel();
        let writing = write(
            store.clone(),
            lease.clone(),
            next_seq,
            receiver,
            Outcome {
                failure: failure.clone(),
                unwritten: unwritten.clone(),
                broken: broken.clone(),
            },
        );
        let writer = async move {
            writing.await;
            let _ = ended.send(());
        };
        let journal = Journal {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer_ended)),
            failure,
            unwritten,
            broken,
            store: Some((store, lease)),
        };
        (journal, writer)
    }

    /// Queues an event to be committed at once. Events are written in the order they are
    /// queued, whichever way.
    pub fn record(&self, envelope: Envelope) -> Durable {
        self.queue(envelope, true)
    }

    /// Queues an event that nothing needs on disk right away: it is committed with the next
    /// event, or on its own a moment later.
    pub fn record_soon(&self, envelope: Envelope) -> Durable {
        self.queue(envelope, false)
    }

    /// Resolves once every event queued before it is written, or refused after a failure:
    /// then [`Journal::unwritten`] is complete up to here.
    pub fn settled(&self) -> Durable {
        self.send(None, true)
    }

    fn queue(&self, envelope: Envelope, urgent: bool) -> Durable {
        self.send(Some(envelope), urgent)
    }

    fn send(&self, envelope: Option<Envelope>, urgent: bool) -> Durable {
        let sender = self.sender.lock().expect("journal lock");
        let Some(sender) = sender.as_ref() else {
            let failure = self.failure();
            if failure.is_some() {
                self.unwritten
                    .lock()
                    .expect("unwritten lock")
                    .extend(envelope);
            }
            return Durable(DurableState::Ready(failure));
        };
        let (ack, done) = oneshot::channel();
        if sender.send((envelope, ack, urgent)).is_err() {
            return Durable(DurableState::Ready(Some(self.failure().unwrap_or_else(
                || Arc::new(StoreError::Location("the journal is closed".to_owned())),
            ))));
        }
        Durable(DurableState::Waiting(done))
    }

    /// Cancelled once the journal cannot be written any more.
    pub fn broken(&self) -> CancellationToken {
        self.broken.clone()
    }

    /// The events that could not be written, in order. They all come after every event that
    /// was: the writer refuses everything after its first failure.
    pub fn unwritten(&self) -> Vec<Envelope> {
        self.unwritten.lock().expect("unwritten lock").clone()
    }

    /// Why the journal stopped, if it did.
    pub fn failure(&self) -> Option<Arc<StoreError>> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Writes what is queued, then gives up the lease (unless the journal broke: then the
    /// lease is left to expire, or to the next process on this host to see we are gone).
    pub async fn close(&self) -> Result<(), Arc<StoreError>> {
        self.sender.lock().expect("journal lock").take();
        let writer = self.writer.lock().expect("journal lock").take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        if let Some((store, lease)) = &self.store {
            store.release(lease).await.map_err(Arc::new)?;
        }
        Ok(())
    }
}

/// Resolves once an event is durable, or with the error that kept it from being written.
#[must_use = "an event is durable only once this resolves"]
pub struct Durable(DurableState);

enum DurableState {
    Ready(Option<Arc<StoreError>>),
    Waiting(oneshot::Receiver<Result<(), Arc<StoreError>>>),
}

impl Future for Durable {
    type Output = Result<(), Arc<StoreError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            DurableState::Ready(failure) => Poll::Ready(match failure.take() {
                Some(failure) => Err(failure),
                None => Ok(()),
            }),
            DurableState::Waiting(receiver) => Pin::new(receiver).poll(cx).map(|r| {
                r.unwrap_or_else(|_| {
                    Err(Arc::new(StoreError::Location(
                        "the journal writer stopped".to_owned(),
                    )))
                })
            }),
        }
    }
}

/// What the writer reports back to the journal.
struct Outcome {
    failure: Arc<Mutex<Option<Arc<StoreError>>>>,
    unwritten: Arc<Mutex<Vec<Envelope>>>,
    broken: CancellationToken,
}

/// The writer: commits whatever has queued up since the last commit, renews the lease
/// every third of it, and refuses everything after the first failure so the journal has no
/// gaps. The lease is renewed on its timer even while appends go on: a store may fence an
/// append without renewing the lease (SQLite does, between renewals of its own).
async fn write(
    store: Arc<dyn Store>,
    lease: Lease,
    mut next_seq: u64,
    mut receiver: mpsc::UnboundedReceiver<Item>,
    outcome: Outcome,
) {
    let Outcome {
        failure,
        unwritten,
        broken,
    } = outcome;
    let mut renew = renewals(run_lease() / 3);
    let fail = |error: StoreError| {
        let error = Arc::new(error);
        failure
            .lock()
            .expect("failure lock")
            .get_or_insert(error.clone());
        broken.cancel();
        error
    };
    loop {
        let first = tokio::select! {
            item = receiver.recv() => item,
            _ = renew.tick() => {
                if broken.is_cancelled() {
                    continue;
                }
                if let Err(error) = store.renew(&lease).await {
                    fail(error);
                }
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        let mut closed = false;
        loop {
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(item) => group.push(item),
                    Err(_) => break,
                }
            }
            let urgent = group.iter().any(|(_, _, urgent)| *urgent);
            if urgent || closed || group.len() >= MAX_GROUP {
                break;
            }
            match tokio::time::timeout(SOON, receiver.recv()).await {
                Ok(Some(item)) => group.push(item),
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        let existing = failure.lock().expect("failure lock").clone();
        let result = match existing {
            Some(failure) => Err(failure),
            None => {
                let (envelopes, acks): (Vec<Option<Envelope>>, Vec<Ack>) =
                    group.into_iter().map(|(e, a, _)| (e, a)).unzip();
                let envelopes: Arc<Vec<Envelope>> =
                    Arc::new(envelopes.into_iter().flatten().collect());
                match append(&store, &lease, next_seq, envelopes.clone()).await {
                    Ok(()) => {
                        next_seq += envelopes.len() as u64;
                        for ack in acks {
                            let _ = ack.send(Ok(()));
                        }
                        continue;
                    }
                    Err(error) => {
                        unwritten
                            .lock()
                            .expect("unwritten lock")
                            .extend(envelopes.iter().cloned());
                        let error = fail(error);
                        for ack in acks {
                            let _ = ack.send(Err(error.clone()));
                        }
                        continue;
                    }
                }
            }
        };
        let mut refused = unwritten.lock().expect("unwritten lock");
        for (envelope, ack, _) in group {
            refused.extend(envelope);
            let _ = ack.send(result.clone());
        }
    }
}

/// The writer's timer for renewing the lease: due every `period`, the first time one period
/// from now. Not tokio's `interval`, whose first tick is due at once: a timer due at once
/// still waits for the runtime's clock to turn (up to a millisecond, its resolution), and
/// the writer, which awaited that first tick before taking any event, held back every run's
/// first event by that much, while nothing else ran.
fn renewals(period: std::time::Duration) -> tokio::time::Interval {
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew
}

/// Groups of at least this many events are appended from a worker thread.
const WIDE_GROUP: usize = 64;

/// Appends a group of events. A small group (a chain's step ending and the next starting) is
/// appended from the writer's own task, on the run's thread, where a hand-off to another
/// thread would cost more than the append's own work. A wide group (thousands of items of a
/// fan-out starting at once) is appended from a task of its own, on a worker thread: its
/// encoding and hash chain, milliseconds of work, then run beside the run, which meanwhile
/// goes on starting and ending items.
async fn append(
    store: &Arc<dyn Store>,
    lease: &Lease,
    first_seq: u64,
    envelopes: Arc<Vec<Envelope>>,
) -> Result<(), StoreError> {
    if envelopes.is_empty() {
        return Ok(());
    }
    if envelopes.len() < WIDE_GROUP {
        return store.append(lease, first_seq, &envelopes).await;
    }
    let (store, lease) = (store.clone(), lease.clone());
    tokio::spawn(async move { store.append(&lease, first_seq, &envelopes).await })
        .await
        .unwrap_or_else(|stopped| {
            Err(StoreError::Location(format!(
                "the journal's append stopped: {stopped}"
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_lease_is_first_renewed_a_period_after_the_writer_starts_not_at_once() {
        let mut renew = renewals(Duration::from_secs(30));
        let first = tokio::time::timeout(Duration::from_millis(100), renew.tick()).await;
        assert!(first.is_err(), "the first renewal was due at once");
    }
}
