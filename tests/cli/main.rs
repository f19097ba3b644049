//! Integration tests through the real binary.

mod approval_reason;
mod bad_input;
mod durable;
mod events;
mod examples;
mod graph;
mod hints;
mod housekeeping;
mod init;
mod injection;
mod logs;
mod not_retried;
mod notices;
mod plan;
mod processes;
mod record;
mod reliability;
mod run;
mod run_http;
mod said_once;
mod schema;
mod secrets;
mod serve;
mod shell;
mod support;
mod validate;
