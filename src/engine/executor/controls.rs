//! `runbook pause` as the run's process sees it: a request in the store, picked up within
//! half a second, journaled, and then the run parks as when its window closes.

use super::*;
use crate::event::PauseRequest;

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
        let record = PauseRequest::record(&self.run_id);
        let request = loop {
            tokio::time::sleep(PAUSE_POLL).await;
            // A store that cannot answer now is asked again; the journal has its own watch.
            let Ok(entries) = store.records(&record).await else {
                continue;
            };
            let found = entries
                .iter()
                .filter_map(|entry| serde_json::from_str::<PauseRequest>(&entry.value).ok())
                .find(|request| request.asked_at >= self.segment_started_at);
            if let Some(request) = found {
                break request;
            }
        };
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
