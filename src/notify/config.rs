//! `notifications:` in serve.yaml, as written. The types are part of serve's schema
//! (`schemas/serve.schema.json`).

use super::NotifyEvent;
use crate::runbook::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Where run events are sent.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Each webhook gets an HTTP POST for every event it asks for.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One receiver of run events.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL each notification is POSTed to (http or https). It is never logged whole:
    /// chat webhooks carry their secret in it.
    pub url: String,
    /// The events sent [default: all of them].
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
    /// The body: `json` (every field, for programs) or `slack` (`{"text": ...}`, which
    /// Slack, Mattermost and Rocket.Chat incoming webhooks take) [default: json].
    #[serde(default)]
    pub format: WebhookFormat,
    /// Headers sent with each request, each a text or `{env: NAME}` (read when serve
    /// starts; never logged, and masked in every body).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    /// `lock_waited` is sent once a run has waited this long for a lock [default: 10m].
    #[serde(default)]
    pub lock_wait_over: Option<Duration>,
    /// `window_closing` is sent this long before the window of a run that is not over
    /// closes [default: 15m].
    #[serde(default)]
    pub window_closing_before: Option<Duration>,
}

/// The body's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// A header's value: as written, or read from the environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Env {
        /// The environment variable holding the value.
        env: String,
    },
}
