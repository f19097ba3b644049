//! The HTTP API and the web pages of `runbook serve`, through the real binary: a serve
//! started on a free port with its own store and users file, asked over real HTTP.

mod support;
#[path = "../support/vendor_http.rs"]
mod vendor_http;

mod api;
mod api_bench;
mod api_controls;
mod api_events;
mod api_openapi;
mod auth;
mod auth_proxy;
mod auth_tls;
mod auth_users;
mod browser;
mod browser_runs_figure;
mod browser_support;
mod metrics;
mod notify;
mod security;
mod smoke;
