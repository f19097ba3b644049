//! What a person (or a tool) sees of a run: views over its events.

pub mod html;
pub mod json;
pub mod json_lines;
pub mod junit;
pub mod locks;
pub mod markdown;
pub mod objectives;
pub mod progress;
pub mod run_report;
pub mod step_output;
pub mod step_table;
pub mod summary;
pub mod symbols;
pub mod text;
pub mod timeline;
pub mod trend;

pub use json_lines::JsonLines;
pub use progress::Progress;
