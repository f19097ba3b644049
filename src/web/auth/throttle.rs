//! Slows down password guessing: after a few failed sign-ins under one name, that name is
//! refused for a while, whether or not it exists (so the refusal tells nothing either).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that lock a name.
pub const FAILURES: u32 = 5;
/// How long a name stays locked.
pub const LOCKED_FOR: Duration = Duration::from_secs(30);
/// Names tracked at most: past that the oldest entries are dropped, so that guessing many
/// names cannot fill serve's memory.
const TRACKED: usize = 10_000;

#[derive(Default)]
pub struct SignInThrottle {
    names: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl SignInThrottle {
    /// How long `name` must still wait before it may try again, if it is locked.
    pub fn locked(&self, name: &str) -> Option<Duration> {
        let now = Instant::now();
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let until = names.get(name)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// A failed sign-in under `name`.
    pub fn failed(&self, name: &str) {
        let now = Instant::now();
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() >= TRACKED && !names.contains_key(name) {
            names.retain(|_, f| now.duration_since(f.last) < LOCKED_FOR);
            if names.len() >= TRACKED {
                return;
            }
        }
        let entry = names.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        // A lock served starts the count again.
        if entry.locked_until.is_some_and(|until| until <= now) {
            entry.count = 0;
            entry.locked_until = None;
        }
        entry.count += 1;
        entry.last = now;
        if entry.count >= FAILURES {
            entry.locked_until = Some(now + LOCKED_FOR);
        }
    }

    /// A successful sign-in clears the name's failures.
    pub fn succeeded(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_locked_after_five_failures_and_others_are_not() {
        let throttle = SignInThrottle::default();
        for _ in 0..FAILURES - 1 {
            throttle.failed("otto");
        }
        assert!(throttle.locked("otto").is_none());
        throttle.failed("otto");
        let wait = throttle.locked("otto").expect("locked");
        assert!(wait <= LOCKED_FOR && wait > LOCKED_FOR - Duration::from_secs(5));
        assert!(throttle.locked("ada").is_none());
        throttle.succeeded("otto");
        assert!(throttle.locked("otto").is_none());
    }
}
