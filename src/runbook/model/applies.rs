//! What applies to an action: its own `retry` and `timeout`, else the runbook's `defaults`
//! (a key of `defaults` is replaced, never merged). The executor and `plan` both resolve
//! them here, so that the plan shows the retry and timeout the run will use.

use super::{Retry, Runbook};
use crate::runbook::{Duration, Spanned};

/// The retry and timeout an action (a step's, or its fallback's) runs with.
#[derive(Debug, Clone, Copy)]
pub struct Applies<'a> {
    pub retry: Option<&'a Spanned<Retry>>,
    /// Bound on one attempt; `None` means no bound.
    pub timeout: Option<std::time::Duration>,
    /// Whether each came from `defaults` rather than the action itself.
    pub retry_from_defaults: bool,
    pub timeout_from_defaults: bool,
}

impl Runbook {
    /// The runbook's `defaults.retry`.
    pub fn default_retry(&self) -> Option<&Spanned<Retry>> {
        self.defaults.as_ref().and_then(|d| d.retry.as_ref())
    }

    /// The runbook's `defaults.timeout`.
    pub fn default_timeout(&self) -> Option<std::time::Duration> {
        self.defaults
            .as_ref()
            .and_then(|d| d.timeout.as_ref())
            .map(|t| t.value.0)
    }

    /// What applies to an action that sets `retry` and `timeout` as given.
    pub fn applies<'a>(
        &'a self,
        retry: Option<&'a Spanned<Retry>>,
        timeout: Option<&Spanned<Duration>>,
    ) -> Applies<'a> {
        Applies {
            retry: retry.or(self.default_retry()),
            timeout: timeout.map(|t| t.value.0).or(self.default_timeout()),
            retry_from_defaults: retry.is_none() && self.default_retry().is_some(),
            timeout_from_defaults: timeout.is_none() && self.default_timeout().is_some(),
        }
    }
}

impl Applies<'_> {
    /// How `plan` shows the retry: `3 attempts, 1s apart (×2, at most 30s, jittered)`;
    /// `None` when the action runs once.
    pub fn retry_text(&self) -> Option<String> {
        let retry = &self.retry?.value;
        if retry.attempts.value <= 1 {
            return None;
        }
        let mut text = format!("{} attempts", retry.attempts.value);
        if let Some(delay) = &retry.delay {
            text.push_str(&format!(", {delay} apart"));
        }
        let mut how = Vec::new();
        if let Some(backoff) = &retry.backoff
            && backoff.value != 1.0
        {
            how.push(format!("×{}", backoff.value));
        }
        if let Some(max) = &retry.max_delay {
            how.push(format!("at most {max}"));
        }
        if retry.jitter == Some(true) {
            how.push("jittered".to_owned());
        }
        if !how.is_empty() {
            text.push_str(&format!(" ({})", how.join(", ")));
        }
        Some(text)
    }
}
