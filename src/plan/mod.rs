//! From a validated runbook to what would run: the DAG, its stages, and pictures of it.

pub mod dag;
pub mod dot;
pub mod dry_run;
pub mod mermaid;
pub mod picture;

pub use dag::{Dag, Need, Section};
pub use picture::Picture;
