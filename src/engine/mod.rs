//! Running runbooks: the executor, its events and state, retries, secrets and redaction.

pub mod event;
pub mod executor;
pub mod limits;
pub mod redact;
pub mod retry;
pub mod seal;
pub mod secrets;
pub mod state;
pub mod step_output;
pub mod timestamp;

pub use event::{Envelope, EventSink, RunEvent, RunStatus, RunbookSource, Sealed, StepStatus, Via};
pub use executor::{RunConfig, RunOutcome, run, step_key};
