//! The embedded default store: one SQLite file in write-ahead-log mode.
//!
//! Each run's events are rows numbered from 1 and chained by SHA-256, so that reading a run
//! notices an event changed or lost underneath SQLite (a damaged page it does not detect
//! itself). Every append is one transaction that writes only while the writer's lease holds
//! (checked under the write lock, and renewed by an append at least every third of the
//! lease), so a process whose run was taken over, or whose lease ran out, can no longer
//! write; with `synchronous=FULL` a commit that returns is on disk. Several processes may share the file: SQLite lets one write at a
//! time, and each waits up to [`BUSY_TIMEOUT`] for the others.

use sqlx::sqlite::SqlitePool;
use std::time::Duration;

/// How long a statement waits for another process's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process: one writer at a time is all SQLite allows, and readers are few.
const MAX_CONNECTIONS: u32 = 4;

/// Times a contested step (migrating a new file, a claim that lost a race) is tried.
const ATTEMPTS: u32 = 3;

/// A run with its current lease holder, if any (a macro, so that queries can extend it and
/// stay static text).
macro_rules! summary {
    () => {
        "SELECT r.id, r.runbook, r.file, r.status, r.created_at, r.updated_at, r.ended_at, \
         r.duration_ms, r.last_chain, o.pid, o.host, o.process_start, o.since \
         FROM runs r LEFT JOIN owners o ON o.run_id = r.id AND o.token IS NOT NULL"
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection appends go through (see [`append`]).
    writer: append::Writer,
    /// The database file, for the connection of appends made on the caller's thread.
    path: std::path::PathBuf,
    location: String,
}

mod append;
mod approvals;
mod durations;
pub(super) mod errors;
mod inline;
pub(super) mod journal;
mod leases;
mod locks;
mod open;
mod queue;
mod records;
mod summaries;
#[cfg(test)]
mod tests;

crate::store::forward::forward_store!(SqliteStore);

/// Now, with microseconds always written out, so that text order is time order.
fn now() -> String {
    crate::event::timestamp::now()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// SQLite integers are signed; the values stored here (tick counts, milliseconds) are far
/// below the limit, and a larger one is kept at the limit rather than wrapped.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
