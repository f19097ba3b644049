//! Binds the address and serves every route until serve stops.

use super::{ListenAddress, WebState};
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: ListenAddress,
        source: std::io::Error,
    },
    #[error("the web server stopped: {0}")]
    Serve(std::io::Error),
}

/// A bound listener, before it serves: binding first lets serve report a port in use (or the
/// port the system chose for `:0`) before anything else starts.
pub struct WebServer {
    listener: TcpListener,
}

impl WebServer {
    pub async fn bind(address: ListenAddress) -> Result<Self, WebError> {
        let listener = TcpListener::bind(address.0)
            .await
            .map_err(|source| WebError::Bind { address, source })?;
        Ok(Self { listener })
    }

    /// The address bound (the port chosen when `:0` was asked for).
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` is cancelled; requests under way are finished first.
    pub async fn serve(self, state: WebState, stop: CancellationToken) -> Result<(), WebError> {
        let app = router(state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .map_err(WebError::Serve)
    }
}

/// Every route: the API, the pages, the metrics; who is asking is found out first.
pub fn router(state: WebState) -> Router {
    Router::new()
        .merge(super::api::routes())
        .merge(super::ui::routes())
        .merge(super::metrics::routes())
        .merge(super::auth::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::auth::authenticate,
        ))
        .with_state(state)
}
