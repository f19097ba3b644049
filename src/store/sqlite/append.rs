//! Appending events: what every step of every run waits for, so it costs the one disk sync
//! of SQLite's commit and as little else as it can.
//!
//! - Appends go through one connection kept for them. SQLite drops a connection's page
//!   cache whenever another connection has written since it last looked, and the pool hands
//!   its connections out in turn: each append read back from the file the pages it was
//!   about to change.
//! - An append is two round trips to that connection's thread, not seven (begin, fence,
//!   read, insert, update, commit, and the pool's own): the first takes the write lock,
//!   fences the lease, renews it and reads the run's row; the second inserts the events,
//!   updates the run's row and commits. SQLite runs the statements of one string in order,
//!   and nothing else uses the connection in between.
//! - Most appends are one round trip. After an append, and after the run's creation, the
//!   writer keeps what it wrote last to the run (its number, last event, chain link and
//!   summary: its [`Tail`]). The next small append under the same lease, while the lease
//!   was renewed less than a third of it ago, sends everything at once: the events and the
//!   run's row, each written only if the lease holds and the run's last event is still the
//!   one kept, in one transaction. When either does not (the lease was taken over or ran
//!   out, or the run moved on), nothing is written, and the append is made again the long
//!   way, which tells which it was. This read-only fence also leaves the lease's row alone,
//!   one page fewer to write and sync; the lease is renewed by the long way at least every
//!   third of it, and by the journal while it is idle.
//! - A process that runs one run (`runbook run`, `runbook resume`) has these one-trip
//!   appends written on its own thread instead, through a connection of their own, with the
//!   same statements (see `inline.rs`): no hand-off to another thread and back.
//! - The statements of small appends (a chain's step ending and the next starting) are
//!   prepared once and kept; those of large groups are prepared for the one use, since the
//!   text differs with the number of rows and a kept statement of hundreds of rows holds
//!   hundreds of kilobytes.

use std::collections::HashMap;
use std::time::Instant;

use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use rusqlite::types::Value;

use super::errors::Outcome;
use super::inline::{AfterStatements, Inline, InlineWriter};
use super::journal::{EventRow, StoredTime, encode_batch, link, link_bytes, stored_body};
use super::leases::lease_end;
use super::{SqliteStore, now, now_ms, to_i64};
use crate::event::{Envelope, RunFold, RunStatus};
use crate::store::rows::status_from;
use crate::store::{Lease, StoreError, run_lease};

/// Events per INSERT statement: 7 parameters each stays far below SQLite's limit on bound
/// parameters, while a group of thousands of events still costs only a few statements.
const INSERT_CHUNK: usize = 500;

/// Appends of at most this many events keep their prepared statements: one statement text
/// per count, so a few.
const KEPT_UP_TO: usize = 8;

/// BEGIN IMMEDIATE, then a write: the write lock is taken at the start, where SQLite waits
/// for it, rather than on a later upgrade, where it would fail at once. The write is the
/// fencing: a lease taken over, or one that ran out (its holder was paused past it and
/// cannot know that nobody resumed the run meanwhile), renews nothing and returns no row,
/// and the append is refused. The row it returns is the run's, read under the write lock.
const BEGIN: &str = "BEGIN IMMEDIATE; \
     UPDATE owners SET expires_at_ms = ? \
     WHERE run_id = ? AND token = ? AND expires_at_ms >= ? \
     RETURNING \
     (SELECT no FROM runs WHERE id = owners.run_id) AS no, \
     (SELECT last_seq FROM runs WHERE id = owners.run_id) AS last_seq, \
     (SELECT last_chain FROM runs WHERE id = owners.run_id) AS last_chain, \
     (SELECT status FROM runs WHERE id = owners.run_id) AS status, \
     (SELECT ended_at FROM runs WHERE id = owners.run_id) AS ended_at, \
     (SELECT duration_ms FROM runs WHERE id = owners.run_id) AS duration_ms";

/// The connection appends go through, and what it wrote last to each run.
pub(super) type Writer = tokio::sync::Mutex<WriterState>;

#[derive(Default)]
pub(super) struct WriterState {
    /// Opened at the first append. `None` between a failed append and the next: a
    /// connection a failure (or a cancelled append) may have left inside a transaction is
    /// closed, never used again.
    connection: Option<SqliteConnection>,
    /// By run id; forgotten when the run is released, and all of them with the connection.
    tails: HashMap<String, Tail>,
    /// Set when small appends are written on the caller's thread (see `inline.rs`).
    inline: Option<InlineWriter>,
}

/// The end of a run's journal as this process last wrote it, under one lease.
struct Tail {
    token: String,
    /// The run's number, which its events name it by.
    number: i64,
    last_seq: i64,
    last_chain: String,
    status: RunStatus,
    ended_at: Option<String>,
    duration_ms: Option<u64>,
    /// When the append that wrote it last renewed the lease.
    renewed_at: Instant,
}

impl Tail {
    /// Whether the next append of `count` events, numbered from `first_seq`, may go in one
    /// round trip: same lease, renewed less than a third of it ago, small, and following on.
    fn takes(&self, lease: &Lease, first_seq: u64, count: usize) -> bool {
        self.token == lease.token
            && count <= KEPT_UP_TO
            && self.renewed_at.elapsed() < run_lease() / 3
            && i64::try_from(first_seq).ok() == self.last_seq.checked_add(1)
    }

    /// The tail after a write under `lease` that left the run at `last_seq`, `last_chain`,
    /// and `fold`.
    fn written(
        lease: &Lease,
        number: i64,
        (last_seq, last_chain): (i64, String),
        fold: RunFold,
        renewed_at: Instant,
    ) -> Tail {
        Tail {
            token: lease.token.clone(),
            number,
            last_seq,
            last_chain,
            status: fold.status.unwrap_or(RunStatus::Running),
            ended_at: fold.ended_at,
            duration_ms: fold.duration_ms,
            renewed_at,
        }
    }

    fn fold(&self) -> RunFold {
        RunFold {
            status: Some(self.status),
            ended_at: self.ended_at.clone(),
            duration_ms: self.duration_ms,
            ..RunFold::default()
        }
    }
}

impl WriterState {
    /// Forgets what was written to `run_id`: its lease is given up.
    pub(super) fn forget(&mut self, run_id: &str) {
        self.tails.remove(run_id);
    }

    /// Keeps what creating run `lease.run_id` wrote: its first event, with link `chain`, as
    /// run `number`, its lease taken at `renewed_at`. The run's first append then goes in
    /// one round trip, as the ones after it do (on the caller's thread where appends are
    /// written there), rather than the long way, which would read back what the creation
    /// just wrote. Like every tail, it is written only if the lease and the run's last event
    /// are still what it says; otherwise nothing is, and the long way follows.
    pub(super) fn created(
        &mut self,
        lease: &Lease,
        number: i64,
        chain: String,
        renewed_at: Instant,
    ) {
        let fold = RunFold {
            status: Some(RunStatus::Running),
            ..RunFold::default()
        };
        let tail = Tail::written(lease, number, (1, chain), fold, renewed_at);
        self.tails.insert(lease.run_id.clone(), tail);
    }

    /// The appends' connection while it is open, and idle since the writer is held: for a
    /// statement that would otherwise have the pool open a connection of its own (see
    /// `release_lease`).
    pub(super) fn idle_connection(&mut self) -> Option<&mut SqliteConnection> {
        self.connection.as_mut()
    }

    /// Closes the appends' connection, after a statement on it failed.
    pub(super) async fn close_connection(&mut self) {
        self.tails.clear();
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
    }

    /// From now on, small appends are written on the caller's thread.
    pub(super) fn write_inline(&mut self) {
        self.inline.get_or_insert_default();
    }

    /// How many appends were written on the caller's thread.
    #[cfg(test)]
    pub(super) fn written_inline(&self) -> u64 {
        self.inline.as_ref().map_or(0, |inline| inline.written)
    }
}

impl SqliteStore {
    pub(super) async fn append_events(
        &self,
        lease: &Lease,
        first_seq: u64,
        events: &[Envelope],
    ) -> Outcome<()> {
        let run_id = lease.run_id.as_str();
        if events.is_empty() {
            return self.renew_lease(lease).await;
        }
        // Everything that needs no database first, to hold the write lock briefly.
        let encoded = encode_batch(run_id, first_seq, events)?;
        let mut writer = self.writer.lock().await;
        let writer = &mut *writer;
        let mut tail = writer
            .tails
            .remove(run_id)
            .filter(|tail| tail.takes(lease, first_seq, events.len()));
        let mut encoded = Some(encoded);
        if let Some(inline) = writer.inline.as_mut()
            && let Some(kept) = tail.take()
        {
            let write = after_write(lease, kept, events, encoded.take().unwrap_or_default())?;
            let (insert, update) = (insert_after_sql(write.rows), UPDATE_AFTER);
            let statements = AfterStatements {
                insert: &insert,
                insert_params: write.insert,
                update,
                update_params: write.update,
            };
            let written = inline.write(&self.path, &self.location, statements);
            match written {
                Ok(Inline::Written) => {
                    writer.tails.insert(run_id.to_owned(), write.tail);
                    return Ok(());
                }
                Ok(Inline::NotWritten) => {}
                // The failed connection is gone with what it knew; so is every tail.
                Err(error) => {
                    writer.tails.clear();
                    return Err(error.into());
                }
            }
        }
        // The long way, or one round trip through the pool's connection.
        let encoded = match encoded {
            Some(encoded) => encoded,
            None => encode_batch(run_id, first_seq, events)?,
        };
        // Taken out while in use, the tail too: an append cancelled half-way drops them, and
        // closing the connection rolls back whatever it had begun.
        let mut connection = match writer.connection.take() {
            Some(connection) => connection,
            None => {
                writer.tails.clear();
                tail = None;
                self.pool.acquire().await?.detach()
            }
        };
        let appended = match tail {
            Some(tail) => {
                let write = after_write(lease, tail, events, encoded);
                let written = match write {
                    Ok(write) => write_after(&mut connection, write).await,
                    Err(failure) => Err(failure),
                };
                match written {
                    Ok(Some(tail)) => Ok(tail),
                    // Refused, with nothing written: the long way says why, or writes.
                    Ok(None) => match encode_batch(run_id, first_seq, events) {
                        Ok(encoded) => {
                            append(&mut connection, lease, first_seq, events, encoded).await
                        }
                        Err(error) => Err(error.into()),
                    },
                    Err(failure) => Err(failure),
                }
            }
            None => append(&mut connection, lease, first_seq, events, encoded).await,
        };
        match appended {
            Ok(tail) => {
                writer.connection = Some(connection);
                writer.tails.insert(run_id.to_owned(), tail);
                Ok(())
            }
            Err(failure) => {
                // Nothing of the append stays: the transaction is rolled back (refused,
                // harmlessly, when SQLite already ended it), and the connection is closed.
                let _ = sqlx::query("ROLLBACK").execute(&mut connection).await;
                let _ = connection.close().await;
                writer.tails.clear();
                Err(failure)
            }
        }
    }

    /// From now on, small appends are written on the caller's thread (see `inline.rs`).
    pub(super) async fn write_appends_inline(&self) {
        self.writer.lock().await.write_inline();
    }

    /// Closes the appends' connection, then the pool: SQLite folds its write-ahead log back
    /// into the database file when the last connection closes.
    pub(super) async fn close_connections(&self) {
        let mut writer = self.writer.lock().await;
        writer.tails.clear();
        // Closed first: the pool's last connection then folds the log back.
        if let Some(inline) = writer.inline.as_mut() {
            inline.close();
        }
        if let Some(connection) = writer.connection.take() {
            let _ = connection.close().await;
        }
        self.pool.close().await;
    }
}

/// One append on `connection`: two round trips, the second ending in the commit. Returns
/// the run's new tail.
async fn append(
    connection: &mut SqliteConnection,
    lease: &Lease,
    first_seq: u64,
    events: &[Envelope],
    encoded: Vec<super::journal::Encoded>,
) -> Outcome<Tail> {
    let run_id = lease.run_id.as_str();
    let renewed_at = Instant::now();
    let run = sqlx::query(BEGIN)
        .bind(lease_end())
        .bind(run_id)
        .bind(&lease.token)
        .bind(now_ms())
        // All rows, so that the statement runs to its end before the next round trip.
        .fetch_all(&mut *connection)
        .await?;
    let Some(run) = run.first() else {
        return Err(StoreError::LostOwnership(run_id.to_owned()).into());
    };
    let last_seq: i64 = run
        .try_get::<Option<i64>, _>("last_seq")?
        .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
    let number: i64 = run.try_get("no")?;
    let mut last_chain: String = run.try_get("last_chain")?;
    // The list of runs follows the run-level events, read as every report reads them.
    let mut fold = RunFold {
        status: Some(status_from(run.try_get("status")?)?),
        ended_at: run.try_get("ended_at")?,
        duration_ms: run
            .try_get::<Option<i64>, _>("duration_ms")?
            .and_then(|ms| u64::try_from(ms).ok()),
        ..RunFold::default()
    };
    let rows = link(
        run_id,
        first_seq,
        last_seq,
        &mut last_chain,
        &mut fold,
        encoded,
        events,
    )?;
    let last_seq = last_seq + rows.len() as i64;
    let count = rows.len();
    let write = bind_rows(sqlx::query(AssertSqlSafe(write_sql(count))), number, rows);
    run_row_values(last_seq, &last_chain, &fold)
        .into_iter()
        .fold(write, bind_value)
        .bind(run_id)
        .persistent(count <= KEPT_UP_TO)
        .execute(&mut *connection)
        .await?;
    Ok(Tail::written(
        lease,
        number,
        (last_seq, last_chain),
        fold,
        renewed_at,
    ))
}

/// An append after a kept tail, ready to write: its statements' parameters, and the tail
/// it leaves once written.
struct AfterWrite {
    rows: usize,
    /// The events' rows, then the INSERT's condition: the lease holds, the run's last event
    /// and link are the tail's.
    insert: Vec<Value>,
    /// The run's row, then the UPDATE's condition: the same.
    update: Vec<Value>,
    tail: Tail,
}

/// Numbers, chains and lays out an append after `tail`, for [`write_after`] or the
/// caller's thread (see `inline.rs`).
fn after_write(
    lease: &Lease,
    tail: Tail,
    events: &[Envelope],
    encoded: Vec<super::journal::Encoded>,
) -> Outcome<AfterWrite> {
    let run_id = lease.run_id.as_str();
    let mut fold = tail.fold();
    let Tail {
        number,
        last_seq: previous_seq,
        mut last_chain,
        renewed_at,
        ..
    } = tail;
    let previous_chain = last_chain.clone();
    let first_seq = u64::try_from(previous_seq + 1).unwrap_or(u64::MAX);
    let rows = link(
        run_id,
        first_seq,
        previous_seq,
        &mut last_chain,
        &mut fold,
        encoded,
        events,
    )?;
    let last_seq = previous_seq + rows.len() as i64;
    let count = rows.len();
    let at_ms = now_ms();
    let lease_holds = [
        Value::Text(run_id.to_owned()),
        Value::Text(lease.token.clone()),
        Value::Integer(at_ms),
    ];
    let mut insert = row_values(number, rows);
    insert.extend(lease_holds.iter().cloned());
    insert.extend([
        Value::Integer(previous_seq),
        Value::Text(previous_chain.clone()),
        Value::Text(run_id.to_owned()),
    ]);
    let mut update = run_row_values(last_seq, &last_chain, &fold);
    update.extend([
        Value::Text(run_id.to_owned()),
        Value::Integer(previous_seq),
        Value::Text(previous_chain),
    ]);
    update.extend(lease_holds);
    Ok(AfterWrite {
        rows: count,
        insert,
        update,
        tail: Tail::written(lease, number, (last_seq, last_chain), fold, renewed_at),
    })
}

/// One append after a tail on `connection`, in one round trip. Returns the new tail, or
/// `None` when nothing was written.
async fn write_after(
    connection: &mut SqliteConnection,
    write: AfterWrite,
) -> Outcome<Option<Tail>> {
    let AfterWrite {
        rows,
        insert,
        update,
        tail,
    } = write;
    let written = insert
        .into_iter()
        .chain(update)
        .fold(
            sqlx::query(AssertSqlSafe(write_after_sql(rows))),
            bind_value,
        )
        .persistent(true)
        .fetch_all(&mut *connection)
        .await?;
    Ok((!written.is_empty()).then_some(tail))
}

const LEASE_HOLDS: &str = "EXISTS (SELECT 1 FROM owners \
     WHERE run_id = ? AND token = ? AND expires_at_ms >= ?)";

/// The one round trip of an append of `rows` events after a known tail: its INSERT, the
/// run's row, the commit; the row is returned when it was written.
fn write_after_sql(rows: usize) -> String {
    format!(
        "BEGIN IMMEDIATE; {}; {UPDATE_AFTER}; COMMIT",
        insert_after_sql(rows)
    )
}

/// The INSERT of an append after a tail: `rows` events, if the lease holds and the run's
/// last event and link are still the tail's.
fn insert_after_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(rows * (ROW.len() + 2) + 384);
    sql.push_str(
        "INSERT INTO events (run, seq, at_us, at_text, kind, body, chain) \
         SELECT * FROM (VALUES ",
    );
    push_rows(&mut sql, rows);
    sql.push_str(") WHERE ");
    sql.push_str(LEASE_HOLDS);
    sql.push_str(" AND (SELECT last_seq = ? AND last_chain = ? FROM runs WHERE id = ?)");
    sql
}

/// The run's row after a tail, on the INSERT's condition; returns a row when written.
const UPDATE_AFTER: &str = "UPDATE runs SET last_seq = ?, last_chain = ?, updated_at = ?, \
     status = ?, ended_at = ?, duration_ms = ? \
     WHERE id = ? AND last_seq = ? AND last_chain = ? AND EXISTS (SELECT 1 FROM owners \
     WHERE run_id = ? AND token = ? AND expires_at_ms >= ?) RETURNING no";

/// An event's row of run `number`, in the order of the columns the INSERTs name.
fn event_row(number: i64, (seq, at, kind, body, chain): EventRow) -> [Value; 7] {
    let time = StoredTime::of(&at);
    let body = stored_body(&kind, &body).to_owned();
    [
        Value::Integer(number),
        Value::Integer(seq),
        time.micros.map_or(Value::Null, Value::Integer),
        time.text
            .map_or(Value::Null, |text| Value::Text(text.to_owned())),
        Value::Text(kind),
        Value::Text(body),
        Value::Blob(link_bytes(&chain)),
    ]
}

/// The events' rows, one after the other.
fn row_values(number: i64, rows: Vec<EventRow>) -> Vec<Value> {
    rows.into_iter()
        .flat_map(|row| event_row(number, row))
        .collect()
}

/// Binds the events' rows.
fn bind_rows(write: RowsQuery<'_>, number: i64, rows: Vec<EventRow>) -> RowsQuery<'_> {
    rows.into_iter()
        .flat_map(|row| event_row(number, row))
        .fold(write, bind_value)
}

/// The run's row as the events left it: last event, link, time, status, end and duration
/// (the columns of every `UPDATE runs` of an append, in order).
fn run_row_values(last_seq: i64, last_chain: &str, fold: &RunFold) -> Vec<Value> {
    vec![
        Value::Integer(last_seq),
        Value::Text(last_chain.to_owned()),
        Value::Text(now()),
        Value::Text(fold.status.unwrap_or(RunStatus::Running).name().to_owned()),
        fold.ended_at.clone().map_or(Value::Null, Value::Text),
        fold.duration_ms
            .map_or(Value::Null, |ms| Value::Integer(to_i64(ms))),
    ]
}

/// Binds one parameter, whichever its type.
fn bind_value(write: RowsQuery<'_>, value: Value) -> RowsQuery<'_> {
    match value {
        Value::Null => write.bind(None::<i64>),
        Value::Integer(number) => write.bind(number),
        Value::Real(number) => write.bind(number),
        Value::Text(text) => write.bind(text),
        Value::Blob(bytes) => write.bind(bytes),
    }
}

type RowsQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// `rows` placeholders of an event row, comma-separated.
fn push_rows(sql: &mut String, rows: usize) {
    for n in 0..rows {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
}

/// The placeholders of one event row, one per column the INSERTs name.
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?)";

/// The second round trip of an append of `rows` events: their INSERTs, the run's row, the
/// commit.
fn write_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(rows * (ROW.len() + 2) + 256);
    let mut left = rows;
    while left > 0 {
        let chunk = left.min(INSERT_CHUNK);
        sql.push_str("INSERT INTO events (run, seq, at_us, at_text, kind, body, chain) VALUES ");
        push_rows(&mut sql, chunk);
        sql.push_str("; ");
        left -= chunk;
    }
    sql.push_str(
        "UPDATE runs SET last_seq = ?, last_chain = ?, updated_at = ?, status = ?, \
         ended_at = ?, duration_ms = ? WHERE id = ?; COMMIT",
    );
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_of_a_large_group_is_split_into_inserts_of_a_few_hundred_rows() {
        let sql = write_sql(1);
        assert_eq!(sql.matches("INSERT INTO events").count(), 1);
        assert_eq!(sql.matches('?').count(), 7 + 7);
        let sql = write_sql(INSERT_CHUNK * 2 + 1);
        assert_eq!(sql.matches("INSERT INTO events").count(), 3);
        assert_eq!(sql.matches('?').count(), (INSERT_CHUNK * 2 + 1) * 7 + 7);
        assert!(sql.ends_with("; COMMIT"));
    }
}
