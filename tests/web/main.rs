//! The HTTP API and the web pages of `runbook serve`, through the real binary: a serve
//! started on a free port with its own store and users file, asked over real HTTP.

mod support;

mod api;
mod api_bench;
mod api_controls;
mod api_events;
mod api_openapi;
mod auth;
mod browser;
mod browser_runs_figure;
mod browser_support;
mod smoke;
