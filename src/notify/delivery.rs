//! Delivering one notification to one webhook: recorded in the store first, so that it goes
//! out once even when several serve processes follow the store or serve restarts, then
//! POSTed with retries.

use super::{Notification, Webhook};
use crate::engine::redact::Redactor;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Attempts in all, the first included.
const ATTEMPTS: u32 = 5;
/// The wait before the second attempt; it doubles after each, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);

pub(super) struct Delivery {
    pub webhook: Arc<Vec<Webhook>>,
    pub number: usize,
    pub notification: Notification,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub redactor: Arc<Redactor>,
}

pub(super) async fn deliver(delivery: Delivery) {
    let webhook = &delivery.webhook[delivery.number];
    let notification = &delivery.notification;
    // The claim: the store keeps each value of a record once, and answers whether this
    // call added it. Whoever adds it delivers; a crash after the claim loses this one
    // notification rather than sending it twice. A store that cannot be written to does
    // not stop the notification: a duplicate is better than a page that never came.
    match delivery
        .store
        .add_records(
            &webhook.record,
            &notification.run_id,
            notification.event.name(),
            std::slice::from_ref(&notification.id),
        )
        .await
    {
        Ok(added) if added.is_empty() => return,
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(
                webhook = %webhook.shown,
                "notifications: cannot record the delivery of {} in the store ({error}); sending it anyway",
                notification.id
            );
        }
    }
    let body = delivery.redactor.value(&notification.body(webhook.format));
    let body = serde_json::to_vec(&body).expect("a JSON value always serialises");
    let mut delay = FIRST_DELAY;
    for attempt in 1..=ATTEMPTS {
        let mut request = delivery
            .client
            .post(webhook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        for (name, value) in &webhook.headers {
            request = request.header(name, value);
        }
        let problem = match request.send().await {
            Ok(response) if response.status().is_success() => {
                tracing::info!(
                    webhook = %webhook.shown,
                    event = notification.event.name(),
                    run = %notification.run_id,
                    attempt,
                    "notification delivered"
                );
                return;
            }
            Ok(response) => {
                let status = response.status();
                // A receiver that refuses the request itself will refuse it again.
                if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                    tracing::warn!(
                        webhook = %webhook.shown,
                        event = notification.event.name(),
                        run = %notification.run_id,
                        "notification refused with HTTP {status}; not retried"
                    );
                    return;
                }
                format!("HTTP {status}")
            }
            // Without the URL: it may hold the webhook's token.
            Err(error) => error.without_url().to_string(),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(
                webhook = %webhook.shown,
                event = notification.event.name(),
                run = %notification.run_id,
                "notification not delivered after {ATTEMPTS} attempts: {problem}"
            );
            return;
        }
        tracing::info!(
            webhook = %webhook.shown,
            event = notification.event.name(),
            run = %notification.run_id,
            attempt,
            "notification not delivered ({problem}); trying again in {}ms",
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}
