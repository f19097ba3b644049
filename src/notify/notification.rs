//! One notification: what happened to which run, and the bodies a webhook sends for it.

use super::{NotifyEvent, WebhookFormat};
use serde_json::{Map, Value, json};

/// Something to tell the webhooks that ask for its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub event: NotifyEvent,
    /// Unique for the run and the event (`RUN#7` for the run's 7th event): each webhook
    /// gets a notification once, and the store records it under this.
    pub id: String,
    pub run_id: String,
    pub runbook: String,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// One line for people: what chat webhooks show.
    pub text: String,
    /// The rest, by name: `step`, `prompt`, `link`, `status`, `reason`, `lock`, ...
    pub fields: Map<String, Value>,
}

impl Notification {
    /// The body to POST in `format`.
    pub fn body(&self, format: WebhookFormat) -> Value {
        match format {
            WebhookFormat::Slack => json!({ "text": self.text }),
            WebhookFormat::Json => {
                let mut body = Map::new();
                body.insert("event".into(), self.event.name().into());
                body.insert("id".into(), self.id.clone().into());
                body.insert("run_id".into(), self.run_id.clone().into());
                body.insert("runbook".into(), self.runbook.clone().into());
                body.insert("at".into(), self.at.clone().into());
                body.insert("text".into(), self.text.clone().into());
                for (name, value) in &self.fields {
                    body.insert(name.clone(), value.clone());
                }
                Value::Object(body)
            }
        }
    }
}
