//! A webhook ready to send to: its headers read, its thresholds set.

use super::{HeaderValue, NotifyError, NotifyEvent, WebhookConfig, WebhookFormat};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The default of `lock_wait_over`.
const LOCK_WAIT_OVER: Duration = Duration::from_secs(10 * 60);
/// The default of `window_closing_before`.
const WINDOW_CLOSING_BEFORE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: reqwest::Url,
    pub events: Vec<NotifyEvent>,
    pub format: WebhookFormat,
    /// Names and values; values may be secrets.
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// Values of headers read from the environment: masked in every body.
    pub secrets: Vec<String>,
    pub lock_wait_over: Duration,
    pub window_closing_before: Duration,
    /// The record its deliveries are kept in: from a digest of its URL, so that it stays
    /// the same when webhooks are reordered, and the URL (which may hold a token) is not
    /// written anywhere.
    pub record: String,
    /// How logs name it: scheme, host and port only.
    pub shown: String,
}

impl Webhook {
    /// Checks a configured webhook and reads its headers from the environment.
    pub fn resolve(config: &WebhookConfig, number: usize) -> Result<Webhook, NotifyError> {
        let url = reqwest::Url::parse(&config.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or(NotifyError::Url { number })?;
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let mut headers = Vec::new();
        let mut secrets = Vec::new();
        for (name, value) in &config.headers {
            let text = match value {
                HeaderValue::Text(text) => text.clone(),
                HeaderValue::Env { env } => {
                    let value = std::env::var(env).map_err(|_| NotifyError::MissingEnv {
                        number,
                        header: name.clone(),
                        env: env.clone(),
                    })?;
                    secrets.push(value.clone());
                    value
                }
            };
            let header_name =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    NotifyError::Header {
                        number,
                        header: name.clone(),
                    }
                })?;
            let mut header_value =
                reqwest::header::HeaderValue::from_str(&text).map_err(|_| NotifyError::Header {
                    number,
                    header: name.clone(),
                })?;
            header_value.set_sensitive(true);
            headers.push((header_name, header_value));
        }
        let digest = Sha256::digest(config.url.as_bytes());
        let hex = hex::encode(&digest[..8]);
        Ok(Webhook {
            url,
            events: config
                .events
                .clone()
                .unwrap_or_else(|| NotifyEvent::ALL.to_vec()),
            format: config.format,
            headers,
            secrets,
            lock_wait_over: config.lock_wait_over.map_or(LOCK_WAIT_OVER, |d| d.0),
            window_closing_before: config
                .window_closing_before
                .map_or(WINDOW_CLOSING_BEFORE, |d| d.0),
            record: format!("notified:{hex}"),
            shown,
        })
    }

    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }
}
