//! Running runbooks: the executor, its events and state, retries, secrets and redaction.

pub mod executor;
pub mod limits;
pub mod redact;
pub mod retry;
pub mod seal;
pub mod secrets;
pub mod state;
pub mod step_output;

// The event types live in `event`, below the store; they stay reachable here too.
pub use crate::event::{
    Envelope, EventSink, Notice, RunEvent, RunStatus, RunbookSource, Sealed, StepStatus, Via,
};
pub use executor::{RunConfig, RunOutcome, run, step_key};
