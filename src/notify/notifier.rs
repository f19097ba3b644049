//! The task `runbook serve` runs to notify webhooks: it follows every run of the store
//! (whichever process runs it), turns new events and ringing clocks into notifications, and
//! hands each to a delivery of its own.

use super::delivery::{Delivery, deliver};
use super::follower::Follower;
use super::{NotificationsConfig, Webhook};
use crate::engine::redact::Redactor;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the store's runs are looked at.
const POLL: Duration = Duration::from_millis(500);

/// A configuration the notifier cannot work with; serve refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifications.webhooks[{number}].url is not an http:// or https:// URL")]
    Url { number: usize },
    #[error(
        "notifications.webhooks[{number}].headers.{header}: the environment variable {env} is not set"
    )]
    MissingEnv {
        number: usize,
        header: String,
        env: String,
    },
    #[error(
        "notifications.webhooks[{number}].headers.{header}: not a valid HTTP header name and value"
    )]
    Header { number: usize, header: String },
    #[error("cannot make the HTTP client for webhooks: {0}")]
    Client(String),
}

pub struct Notifier {
    webhooks: Arc<Vec<Webhook>>,
    store: Arc<dyn Store>,
    follower: Follower,
    client: reqwest::Client,
    redactor: Arc<Redactor>,
}

impl Notifier {
    /// Checks the webhooks and reads their headers; `None` when there is none.
    /// `link_base` (`https://runbook.example.com`) makes the links to runs.
    pub fn new(
        config: &NotificationsConfig,
        store: Arc<dyn Store>,
        link_base: Option<String>,
    ) -> Result<Option<Notifier>, NotifyError> {
        if config.webhooks.is_empty() {
            return Ok(None);
        }
        let webhooks = config
            .webhooks
            .iter()
            .enumerate()
            .map(|(number, webhook)| Webhook::resolve(webhook, number))
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = webhooks.iter().flat_map(|w| w.secrets.clone());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        Ok(Some(Notifier {
            redactor: Arc::new(Redactor::new(secrets)),
            webhooks: Arc::new(webhooks),
            store,
            follower: Follower::new(jiff::Timestamp::now(), link_base),
            client,
        }))
    }

    /// Follows the store until `stop`. A store that cannot be read is tried again at the
    /// next poll: notifications wait, runs never do.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            if let Err(error) = self.poll().await {
                tracing::warn!("notifications: cannot read the runs: {error}");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn poll(&mut self) -> Result<(), crate::store::StoreError> {
        let mut runs = self.store.runs().await?;
        // Oldest first, so that a run's notifications go out in the order things happened.
        runs.reverse();
        let mut due = Vec::new();
        for run in &runs {
            if !self.follower.changed(run) {
                continue;
            }
            let events = match self.store.events(&run.id).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(run = %run.id, "notifications: cannot read the run: {error}");
                    continue;
                }
            };
            due.extend(self.follower.read(run, &events));
        }
        for notification in due {
            for (number, webhook) in self.webhooks.iter().enumerate() {
                if webhook.wants(notification.event) {
                    self.send(number, notification.clone());
                }
            }
        }
        let now = jiff::Timestamp::now();
        for (number, webhook) in self.webhooks.iter().enumerate() {
            for notification in self.follower.ringing(now, number, webhook) {
                self.send(number, notification);
            }
        }
        Ok(())
    }

    /// Delivers in a task of its own: a slow or failing receiver holds up nothing else.
    fn send(&self, number: usize, notification: super::Notification) {
        let delivery = Delivery {
            webhook: self.webhooks.clone(),
            number,
            notification,
            store: self.store.clone(),
            client: self.client.clone(),
            redactor: self.redactor.clone(),
        };
        tokio::spawn(deliver(delivery));
    }
}
