//! The runbook language: loading YAML into the typed model, and validating it.

pub mod bounded_read;
pub mod dag;
pub mod de;
pub mod diagnostic;
pub mod diff;
pub mod duration;
pub mod inputs;
pub mod load;
pub mod model;
pub mod node;
pub mod schema;
pub mod spanned;
pub mod validate;

pub use duration::{Deadline, Duration};
pub use model::*;
pub use node::{Node, NodeKind, Span};
pub use spanned::{Spanned, SpannedMap};
