//! runbook: run declarative YAML runbooks, durably.

pub mod actions;
pub mod app;
pub mod cli;
pub mod engine;
pub mod event;
pub mod notify;
pub mod plan;
pub mod process;
pub mod report;
pub mod runbook;
pub mod serve;
pub mod store;
pub mod template;
pub mod web;

#[cfg(test)]
mod layers;
