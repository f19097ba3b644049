//! `runbook pause` as the run's process sees it: a request in the store, picked up within
//! half a second, journaled, and then the run parks as when its window closes.

use super::*;
use crate::event::{AbortRequest, PauseRequest};

/// How often the store is asked for a pause request: cheap, and quick enough for a person.
const PAUSE_POLL: Duration = Duration::from_millis(500);

impl Run {
    /// Whether a pause was picked up: nothing more starts.
    pub(super) fn pausing(&self) -> bool {
        self.paused.lock().expect("pause lock").is_some()
    }

    /// Why the run parks for a pause.
    pub(super) fn pause_reason(&self) -> Option<String> {
        self.paused
            .lock()
            .expect("pause lock")
            .as_ref()
            .map(PauseRequest::describe)
    }

    /// Watches the store for a pause request made since this process took the run up. Once
    /// one is journaled, nothing more starts; this returns only when it asks to interrupt
    /// the running steps too, so that they are cancelled.
    pub(super) async fn watch_for_pause(&self) {
        let Some(store) = self.store.clone() else {
            return std::future::pending().await;
        };
        let request = self
            .watch_record(
                store,
                PauseRequest::record(&self.run_id),
                |r: &PauseRequest| r.asked_at.clone(),
            )
            .await;
        let now = request.now;
        // Durable before the run stops, so that the journal says who paused it and why.
        let _ = self.emit(RunEvent::RunPaused(request.clone())).await;
        *self.paused.lock().expect("pause lock") = Some(request);
        self.stop_because(StopReason::Paused);
        if !now {
            std::future::pending::<()>().await;
        }
    }
}

impl Run {
    /// Waits for the first request in the store's `record` made since this process took the
    /// run up (`asked_at` says when each was made): older ones were meant for an earlier one.
    async fn watch_record<T: serde::de::DeserializeOwned>(
        &self,
        store: Arc<dyn Store>,
        record: String,
        asked_at: impl Fn(&T) -> String,
    ) -> T {
        loop {
            tokio::time::sleep(PAUSE_POLL).await;
            // A store that cannot answer now is asked again; the journal has its own watch.
            let Ok(entries) = store.records(&record).await else {
                continue;
            };
            let found = entries
                .iter()
                .filter_map(|entry| serde_json::from_str::<T>(&entry.value).ok())
                .find(|request| asked_at(request) >= self.taken_up_at);
            if let Some(request) = found {
                return request;
            }
        }
    }

    /// Whether the run obeys an abort: no step starts.
    pub(super) fn aborting(&self) -> bool {
        self.aborted.lock().expect("abort lock").is_some()
    }

    /// Whether the abort asks for the run to be undone.
    pub(super) fn abort_undoes(&self) -> Option<String> {
        self.aborted
            .lock()
            .expect("abort lock")
            .as_ref()
            .filter(|abort| abort.undo)
            .map(AbortRequest::describe)
    }

    /// Why the run ends for an abort.
    pub(super) fn abort_reason(&self) -> Option<String> {
        self.aborted
            .lock()
            .expect("abort lock")
            .as_ref()
            .map(AbortRequest::describe)
    }

    /// Watches the store for an abort of this live run (`runbook abort` from another
    /// process), as [`Run::watch_for_pause`] does for a pause. Once one is journaled this
    /// returns, so that the running steps are interrupted.
    pub(super) async fn watch_for_abort(&self) {
        let Some(store) = self.store.clone() else {
            return std::future::pending().await;
        };
        let request = self
            .watch_record(
                store,
                AbortRequest::record(&self.run_id),
                |r: &AbortRequest| r.asked_at.clone(),
            )
            .await;
        // Once `finally` has started the run is ending already: an abort would only relabel
        // an end it no longer changes.
        if *self.finishing.lock().expect("finishing lock") {
            return std::future::pending().await;
        }
        // Durable before the run stops, so that the journal says who aborted it and why.
        let _ = self.emit(RunEvent::RunAborted(request.clone())).await;
        *self.aborted.lock().expect("abort lock") = Some(request);
        self.stop_because(StopReason::Aborted);
    }
}
