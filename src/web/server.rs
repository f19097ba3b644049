//! Binds the address and serves every route until serve stops.

use super::auth::PeerAddress;
use super::tls::TlsListener;
use super::{ListenAddress, WebState};
use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
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
    /// Set: serve HTTPS with it.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl WebServer {
    pub async fn bind(address: ListenAddress) -> Result<Self, WebError> {
        let listener = TcpListener::bind(address.0)
            .await
            .map_err(|source| WebError::Bind { address, source })?;
        Ok(Self {
            listener,
            tls: None,
        })
    }

    /// Serves HTTPS with this certificate ([`super::tls::server_config`]).
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// `https` with a certificate, else `http`: what the address is reached with.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The address bound (the port chosen when `:0` was asked for).
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` is cancelled; requests under way are finished first.
    pub async fn serve(self, state: WebState, stop: CancellationToken) -> Result<(), WebError> {
        let app = router(state).into_make_service_with_connect_info::<PeerAddress>();
        match self.tls {
            None => axum::serve(self.listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(WebError::Serve),
            Some(config) => {
                let listener = TlsListener::new(self.listener, config, stop.clone())
                    .map_err(WebError::Serve)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .map_err(WebError::Serve)
            }
        }
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

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}
