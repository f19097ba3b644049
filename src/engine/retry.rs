//! How long to wait between attempts: delay, exponential backoff, a cap and jitter.

use crate::runbook::Retry;
use std::time::Duration;

/// A retry policy with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub delay: Duration,
    pub backoff: f64,
    pub max_delay: Option<Duration>,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// No `retry` anywhere: one attempt.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            delay: Duration::from_secs(1),
            backoff: 1.0,
            max_delay: None,
            jitter: false,
        }
    }
}

impl From<&Retry> for RetryPolicy {
    fn from(retry: &Retry) -> Self {
        let default = RetryPolicy::default();
        RetryPolicy {
            attempts: retry.attempts.value.max(1),
            delay: retry.delay.map_or(default.delay, |d| d.0),
            backoff: retry.backoff.as_ref().map_or(default.backoff, |b| b.value),
            max_delay: retry.max_delay.map(|d| d.0),
            jitter: retry.jitter.unwrap_or(false),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), before the next one.
    /// `random` is in [0, 1): with jitter the wait is between half and all of the delay.
    pub fn delay_after(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let factor = self.backoff.max(1.0).powi(exponent);
        let mut seconds = self.delay.as_secs_f64() * factor;
        if let Some(cap) = self.max_delay {
            seconds = seconds.min(cap.as_secs_f64());
        }
        if self.jitter {
            seconds *= 0.5 + 0.5 * random.clamp(0.0, 1.0);
        }
        // A day is longer than any sane wait and keeps the conversion finite.
        Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            delay: Duration::from_millis(100),
            backoff: 2.0,
            max_delay: Some(Duration::from_millis(300)),
            jitter: false,
        };
        let waits: Vec<u128> = (1..=4)
            .map(|a| policy.delay_after(a, 0.0).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 300, 300]);
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        let policy = RetryPolicy {
            jitter: true,
            delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay_after(1, 0.0).as_millis(), 500);
        assert_eq!(policy.delay_after(1, 0.999_999).as_millis(), 999);
    }
}
