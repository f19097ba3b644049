//! `runbook serve`: runs runbooks on schedules, through the same application layer as the
//! command line. The configuration and its checks ([`config`], [`schedule`]), blackouts and
//! freeze calendars ([`blackout`], [`ics`]), the clock rule ([`due`]) on a [`clock`] the
//! tests control, and the loop that fires, drains and takes runs over ([`runner`]).

pub mod blackout;
pub mod clock;
pub mod config;
pub mod due;
pub mod ics;
pub mod metrics;
pub mod runner;
pub mod schedule;

pub use config::{
    HttpConfig, Missed, Overlap, ProxyRole, ServeSetup, TlsConfig, TrustProxyConfig, load,
};
pub use metrics::ServeMetrics;
pub use runner::{ServeOptions, serve};
pub use schedule::{Schedule, SkipReason};
