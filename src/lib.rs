//! runbook: run declarative YAML runbooks, durably.

pub mod cli;
pub mod plan;
pub mod runbook;
pub mod template;
