//! The HTTP side of `runbook serve`: a JSON API under `/api/` ([`api`]), server-rendered web
//! pages ([`ui`]), Prometheus metrics at `/metrics` ([`metrics`]), and who may do what
//! ([`auth`]). Every action goes through the application layer (`crate::app`), exactly as
//! the command line's do: a run started, approved or controlled here is journaled the same
//! way, with who did it.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod listen;
pub mod live;
pub mod metrics;
mod server;
mod state;
pub mod ui;

pub use listen::ListenAddress;
pub use server::{WebError, WebServer};
pub use state::WebState;
