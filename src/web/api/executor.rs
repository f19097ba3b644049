//! Runs that a request claimed (a retry, a resume, an abort of a parked run) go on in serve's
//! own process: serve runs them as it runs its workers' runs, on its thread (a run's future is
//! not `Send`), and a stop request interrupts them and waits until they have parked, as it
//! does for the rest.

use crate::app::{AppError, ClaimedRun, Watch};
use crate::event::{Envelope, EventSink};
use crate::store::{QUEUE_PATH, QUEUE_RECORD, Store};
use crate::web::WebState;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Hands claimed runs to serve's thread; cheap to clone.
#[derive(Clone)]
pub struct WebRuns {
    sender: mpsc::UnboundedSender<ClaimedRun>,
    stop: CancellationToken,
}

/// Why a claimed run could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("serve is stopping; the run stays parked for the next serve or `runbook resume`")]
pub struct Stopping;

impl WebRuns {
    /// The handle, and the loop that runs what it is given: spawn the loop on serve's
    /// `LocalSet` and await it before serve exits (it returns once `stop` is cancelled and
    /// every run it ran has parked or ended).
    pub fn new(stop: CancellationToken) -> (WebRuns, impl Future<Output = ()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let runs = WebRuns {
            sender,
            stop: stop.clone(),
        };
        (runs, run_loop(receiver, stop))
    }

    /// Whether serve is stopping: a control that would claim a run is refused first.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Runs `run` to its end (or until it parks) in serve's process.
    pub fn execute(&self, run: ClaimedRun) -> Result<(), Stopping> {
        if self.stop.is_cancelled() {
            return Err(Stopping);
        }
        self.sender.send(run).map_err(|_| Stopping)
    }
}

async fn run_loop(mut receiver: mpsc::UnboundedReceiver<ClaimedRun>, stop: CancellationToken) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            run = receiver.recv() => match run {
                Some(run) => {
                    let interrupt = stop.child_token();
                    running.spawn_local(execute(run, interrupt));
                }
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stop.cancelled() => break,
        }
    }
    // Each run saw the stop through its interrupt: wait until it has parked.
    while running.join_next().await.is_some() {}
}

async fn execute(run: ClaimedRun, interrupt: CancellationToken) {
    let run_id = run.run_id().to_owned();
    let watch = Watch {
        sink: Arc::new(Quiet),
        interrupt,
    };
    let result = run.execute(watch).await;
    match &result.journal_error {
        Some(error) => {
            tracing::error!(run_id = %run_id, %error, "run stopped: its journal cannot be written")
        }
        None => tracing::info!(
            run_id = %run_id,
            status = result.outcome.status.name(),
            "run ended"
        ),
    }
}

/// The journal has every event; live views read it from there.
struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _envelope: &Envelope) {}
}

/// A store of a claimed run's own: a run closes its store when it ends, and serve's store is
/// shared by every request.
pub async fn own_store(state: &WebState) -> Result<Arc<dyn Store>, AppError> {
    crate::app::open_store(state.store_url.as_deref()).await
}

/// Closes a store of its own that no run took, and passes the error on.
pub fn closing(store: &Arc<dyn Store>, error: AppError) -> AppError {
    let store = store.clone();
    tokio::spawn(async move {
        let _ = store.close().await;
    });
    error
}

/// Whether a run is one of serve's queue (enqueued, or handed to serve by a request).
pub async fn in_serves_queue(state: &WebState, run_id: &str) -> bool {
    state
        .store
        .records(QUEUE_RECORD)
        .await
        .is_ok_and(|entries| entries.iter().any(|e| e.value == run_id))
}

/// Runs a claimed run in serve, journaling who asked for it. It is listed in serve's queue
/// first: if serve dies, another serve (or this one, restarted) takes it over when its lease
/// runs out, as for a run started here.
pub async fn run_in_serve(
    state: &WebState,
    run_id: &str,
    run: ClaimedRun,
    by: &str,
) -> Result<(), Stopping> {
    if let Err(error) = state
        .store
        .add_records(QUEUE_RECORD, run_id, QUEUE_PATH, &[run_id.to_owned()])
        .await
    {
        tracing::warn!(run_id = %run_id, %error, "cannot list the run in serve's queue");
    }
    state.runs.execute(run.asked_by(by))
}
