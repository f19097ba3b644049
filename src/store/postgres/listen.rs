//! LISTEN on the store's notification channels, in a task of its own (the listener's
//! receive is not safe to cancel, so nothing selects on it): each notification wakes the
//! holder of the [`Notify`].

use super::{CONNECT_TIMEOUT, PostgresLocation, errors};
use crate::store::StoreError;
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::sync::Arc;
use tokio::sync::Notify;

/// How long the listener waits before it asks again, after the server was unreachable.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn listen(
    location: &PostgresLocation,
    channels: &[&str],
    notify: Arc<Notify>,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let shown = location.to_string();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(location.connect_options()?);
    let mut listener = PgListener::connect_with(&pool)
        .await
        .map_err(|error| errors::explain(&shown, "listening for notifications", error))?;
    listener
        .listen_all(channels.iter().copied())
        .await
        .map_err(|error| errors::explain(&shown, "listening for notifications", error))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(_) => notify.notify_one(),
                Err(error) => {
                    tracing::debug!(%error, "the store's notifications paused");
                    // Whatever was sent meanwhile is lost: wake the holder to look.
                    notify.notify_one();
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }))
}
