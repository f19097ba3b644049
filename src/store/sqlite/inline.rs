//! Small appends written on the caller's thread, for a process that runs one run and has
//! nothing else for its thread to do while the run's journal is written (`runbook run` and
//! `runbook resume`; never `serve`, whose thread carries many runs and the web pages).
//!
//! An append through the store's connection pool is a message to that connection's thread
//! and at least one answer back: each wakes a sleeping thread, which on a virtual machine
//! costs about as much as the append's own work. A chain waits for every one of them. Here
//! the same statements, with the same fencing, run on the caller's thread through a
//! connection of its own, which it blocks for the commit and its disk sync.
//!
//! Only the one-round-trip append after a kept tail goes this way (see `append.rs`): when
//! it writes nothing (the lease was taken over or ran out, the run moved on, or another
//! connection holds the write lock), or fails before its commit, it is made again the long
//! way, through the pool, which waits for the lock without holding this thread and says why
//! an append is refused. A failed commit is not made again: it is reported.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use super::errors::explain_inline;
use crate::store::StoreError;

/// The connection of the appends made on the caller's thread: opened at the first of them,
/// dropped after a failure.
#[derive(Default)]
pub(super) struct InlineWriter {
    connection: Option<Connection>,
    /// How many appends were written this way: what tests look at.
    pub(super) written: u64,
}

/// An append after a tail: its statements and their parameters.
pub(super) struct AfterStatements<'a> {
    /// The events' rows, written only if the lease holds and the run's last event is the
    /// tail's.
    pub insert: &'a str,
    pub insert_params: Vec<Value>,
    /// The run's row on the same condition; returns a row when it was written.
    pub update: &'a str,
    pub update_params: Vec<Value>,
}

/// What became of an append tried on the caller's thread.
pub(super) enum Inline {
    Written,
    /// Nothing was written: make it the long way.
    NotWritten,
}

impl InlineWriter {
    /// Writes `write` in one transaction on this thread. `location` names the store in
    /// errors.
    pub(super) fn write(
        &mut self,
        path: &Path,
        location: &str,
        write: AfterStatements<'_>,
    ) -> Result<Inline, StoreError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => match open(path) {
                Ok(connection) => connection,
                // The long way opens the store as it always does, and says what is wrong.
                Err(_) => return Ok(Inline::NotWritten),
            },
        };
        match write_after(&connection, &write) {
            Ok(written) => {
                self.connection = Some(connection);
                if written {
                    self.written += 1;
                    Ok(Inline::Written)
                } else {
                    Ok(Inline::NotWritten)
                }
            }
            // Nothing stays of a transaction that did not commit; the connection is dropped
            // all the same, and with it whatever state the failure left.
            Err(Failed::BeforeCommit) => {
                let _ = connection.execute_batch("ROLLBACK");
                Ok(Inline::NotWritten)
            }
            Err(Failed::Commit(error)) => {
                let _ = connection.execute_batch("ROLLBACK");
                Err(explain_inline(location, "appending events", error))
            }
        }
    }

    /// Closes the connection; the next append opens another.
    pub(super) fn close(&mut self) {
        self.connection = None;
    }
}

enum Failed {
    BeforeCommit,
    Commit(rusqlite::Error),
}

/// The transaction: whether it wrote the events and the run's row (both or neither).
fn write_after(connection: &Connection, write: &AfterStatements<'_>) -> Result<bool, Failed> {
    let before = |_| Failed::BeforeCommit;
    // Kept prepared, as the statements between them are, rather than parsed anew at every
    // append: the cache holds 16 statements, and these, the update and the inserts (one
    // per group size, at most eight: `KEPT_UP_TO` in `append.rs`) take 11.
    connection
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]))
        .map_err(before)?;
    connection
        .prepare_cached(write.insert)
        .and_then(|mut insert| insert.execute(params_from_iter(&write.insert_params)))
        .map_err(before)?;
    let written = connection
        .prepare_cached(write.update)
        .and_then(|mut update| update.exists(params_from_iter(&write.update_params)))
        .map_err(before)?;
    // An empty transaction when nothing was written: its commit writes nothing either.
    connection
        .prepare_cached("COMMIT")
        .and_then(|mut commit| commit.execute([]))
        .map_err(Failed::Commit)?;
    Ok(written)
}

/// A connection as the store's own: every commit synced (in WAL mode, FULL syncs the log at
/// each commit, which the journal's promise rests on), foreign keys on. It never waits for
/// the write lock: while another connection holds it, the append goes the long way, which
/// waits without holding this thread.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")?;
    connection.busy_timeout(Duration::ZERO)?;
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Not the store's file as the pool left it: leave it to the pool.
        return Err(rusqlite::Error::InvalidQuery);
    }
    Ok(connection)
}
