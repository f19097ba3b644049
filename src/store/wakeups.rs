//! Being woken when another process changes the store, rather than at the next poll. On
//! PostgreSQL a listener (LISTEN on the channels given) wakes its holder at each
//! notification; SQLite has no such thing, and its holder relies on its poll alone. Either
//! way the poll stays: a notification sent while the listener was reconnecting is lost.

use super::StoreLocation;
use std::sync::Arc;
use tokio::sync::Notify;

/// Wakes its holder when a notification arrives on one of its channels.
pub struct Wakeups {
    notify: Arc<Notify>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Wakeups {
    /// Resolves at the next notification (or one that arrived since the last call); never,
    /// for a store without notifications. Safe to cancel.
    pub async fn next(&self) {
        if self.listener.is_none() {
            return std::future::pending().await;
        }
        self.notify.notified().await;
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

/// Listens on `channels` of the store at `location`. A listener that cannot start is
/// logged, and its holder polls.
pub async fn wakeups(location: &StoreLocation, channels: &[&str]) -> Wakeups {
    let notify = Arc::new(Notify::new());
    let listener = match location {
        StoreLocation::Sqlite(_) => None,
        StoreLocation::Postgres(location) => {
            match super::postgres::listen(location, channels, notify.clone()).await {
                Ok(task) => Some(task),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for the store's notifications: polling only");
                    None
                }
            }
        }
    };
    Wakeups { notify, listener }
}
