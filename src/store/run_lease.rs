//! How long a claim on a run lasts without renewal: the run lease. An owner renews it every
//! third of that; a process that dies or is paused stops renewing, and its run can be taken
//! over once the lease ends, by the store's clock (at once on the same host, where the store
//! can see that the process is gone). A writer whose lease ended may no longer append, even
//! before another process takes the run: it cannot know that none did.
//!
//! One value per process: `runbook serve --lease`, else [`RUN_LEASE_VARIABLE`], else
//! [`DEFAULT_RUN_LEASE`]. Processes sharing a store may use different leases; each claim
//! carries its holder's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The run lease unless told otherwise.
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(30);

/// The environment variable that sets the run lease (`10s`, `2m`).
pub const RUN_LEASE_VARIABLE: &str = "RUNBOOK_RUN_LEASE";

/// The shortest run lease: renewed every third of it, a shorter one would be lost to a busy
/// store or a busy machine.
const MIN_RUN_LEASE: Duration = Duration::from_secs(1);

/// Milliseconds; 0 until set or first read.
static RUN_LEASE_MS: AtomicU64 = AtomicU64::new(0);

/// Reads a run lease given as text (`30s`), refusing one too short to be renewed in time.
pub fn parse_run_lease(text: &str) -> Result<Duration, String> {
    match crate::runbook::Duration::parse(text.trim()) {
        Some(lease) if lease.0 >= MIN_RUN_LEASE => Ok(lease.0),
        _ => Err(format!(
            "{text:?} is not a run lease: give a duration of at least 1s, such as 30s"
        )),
    }
}

/// Sets this process's run lease, for every claim and renewal from now on.
pub fn set_run_lease(lease: Duration) {
    let ms = u64::try_from(lease.max(MIN_RUN_LEASE).as_millis()).unwrap_or(u64::MAX);
    RUN_LEASE_MS.store(ms, Ordering::Relaxed);
}

/// This process's run lease: as set, else from [`RUN_LEASE_VARIABLE`] (a value that is not a
/// lease is reported by the commands that read it, and ignored here), else the default.
pub fn run_lease() -> Duration {
    let ms = RUN_LEASE_MS.load(Ordering::Relaxed);
    if ms != 0 {
        return Duration::from_millis(ms);
    }
    let lease = std::env::var(RUN_LEASE_VARIABLE)
        .ok()
        .and_then(|text| parse_run_lease(&text).ok())
        .unwrap_or(DEFAULT_RUN_LEASE);
    set_run_lease(lease);
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_a_duration_of_a_second_or_more() {
        assert_eq!(parse_run_lease("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_run_lease(" 2m "), Ok(Duration::from_secs(120)));
        assert!(
            parse_run_lease("500ms")
                .unwrap_err()
                .contains("at least 1s")
        );
        assert!(parse_run_lease("soon").is_err());
    }
}
