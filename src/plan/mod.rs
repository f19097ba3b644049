//! From a validated runbook to what would run: the DAG, its stages, and pictures of it.

pub mod dot;
pub mod dry_run;
pub mod mermaid;
pub mod picture;

pub use crate::runbook::dag::{Dag, Need, Section};
pub use picture::Picture;
pub mod window;
