//! Integration tests through the real binary.

mod approval_reason;
mod bad_input;
mod durable;
mod events;
mod examples;
mod graph;
mod injection;
mod not_retried;
mod notices;
mod plan;
mod processes;
mod record;
mod reliability;
mod run;
mod run_http;
mod schema;
mod secrets;
mod support;
mod validate;
