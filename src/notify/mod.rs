//! Notifications of run events to webhooks, configured under `notifications:` in serve.yaml:
//! a run started, waits for an approval (with the link to approve it), failed or succeeded,
//! its window is about to close, or a lock has been waited for too long. `runbook serve`
//! follows every run of its store ([`Notifier`]), wherever it runs, and delivers each
//! notification with retries, apart from the runs so that a slow receiver never holds one
//! up.

pub mod config;
mod delivery;
mod event_kind;
mod follower;
mod notification;
mod notifier;
mod webhook;

pub use config::{HeaderValue, NotificationsConfig, WebhookConfig, WebhookFormat};
pub use event_kind::NotifyEvent;
pub use notification::Notification;
pub use notifier::{Notifier, NotifyError};
pub use webhook::Webhook;
