//! What serve measures as it runs, for `/metrics`: the lag of each schedule's fires. The
//! runner writes, the web side reads; everything else `/metrics` shows comes from the store.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Shared by the runner and the web server.
#[derive(Debug, Default)]
pub struct ServeMetrics {
    fire_lag: Mutex<BTreeMap<String, f64>>,
}

impl ServeMetrics {
    /// A schedule's fire started its run `seconds` after its fire time.
    pub fn fired(&self, schedule: &str, seconds: f64) {
        self.fire_lag
            .lock()
            .expect("metrics lock")
            .insert(schedule.to_owned(), seconds);
    }

    /// The lag of each schedule's last fire that started a run, in seconds, by schedule.
    pub fn fire_lags(&self) -> BTreeMap<String, f64> {
        self.fire_lag.lock().expect("metrics lock").clone()
    }
}
