//! The actions a step runs, exercised for real: processes, an HTTP(S) server on
//! 127.0.0.1, jq conditions and timers, through the same `Action` interface the engine uses.

mod assert;
mod exec;
mod http;
mod sleep;
mod support;
mod tls;
