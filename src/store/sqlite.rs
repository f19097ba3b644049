//! The embedded default store: one SQLite file in write-ahead-log mode.
//!
//! Each run's events are rows numbered from 1 and chained by SHA-256, so that reading a run
//! notices an event changed or lost underneath SQLite (a damaged page it does not detect
//! itself). Every append is one transaction that first renews the writer's lease, so a
//! process whose run was taken over can no longer write; with `synchronous=FULL` a commit
//! that returns is on disk. Several processes may share the file: SQLite lets one write at a
//! time, and each waits up to [`BUSY_TIMEOUT`] for the others.

use super::{
    Decision, LEASE, Lease, Owner, RecordEntry, RunSummary, Store, StoreError, StoreFuture, wal,
};
use crate::event::{Envelope, RunEvent, RunFold, RunStatus};

mod records;
use sha2::{Digest, Sha256};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another process's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process: one writer at a time is all SQLite allows, and readers are few.
const MAX_CONNECTIONS: u32 = 4;

/// Events per INSERT statement: 6 parameters each stays far below SQLite's limit on bound
/// parameters, while a group of thousands of events still costs only a few statements.
const INSERT_CHUNK: usize = 500;

/// Times a contested step (migrating a new file, a claim that lost a race) is tried.
const ATTEMPTS: u32 = 3;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

// SQLite's primary result codes (https://www.sqlite.org/rescode.html): the low byte of an
// extended code.
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_AUTH: i32 = 23;
/// SQLITE_IOERR_SHMSIZE: the wal-index (`-shm`) could not be grown, which on Linux means the
/// disk (or the tmpfs) has no room left.
const SQLITE_IOERR_SHMSIZE: i32 = SQLITE_IOERR | (19 << 8);
const SQLITE_NOTADB: i32 = 26;

/// A run with its current lease holder, if any (a macro, so that queries can extend it and
/// stay static text).
macro_rules! summary {
    () => {
        "SELECT r.id, r.runbook, r.file, r.status, r.created_at, r.updated_at, r.ended_at, \
         r.duration_ms, o.pid, o.host, o.process_start, o.since \
         FROM runs r LEFT JOIN owners o ON o.run_id = r.id AND o.token IS NOT NULL"
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
}

/// Why an operation failed, before it is put into words: an answer of the store's own, or a
/// database error that still needs to say what the store was doing.
enum Failure {
    Store(StoreError),
    Sql(sqlx::Error),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Sql(error)
    }
}

type Outcome<T> = Result<T, Failure>;

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its directory if needed: the
    /// directories owner-only (0700) and the file owner-only (0600), since the journal holds
    /// runbook sources, inputs and outputs. SQLite gives its `-wal` and `-shm` files the
    /// database file's mode.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        let (db, at) = (path.to_owned(), location.clone());
        tokio::task::spawn_blocking(move || create_private(&db, &at))
            .await
            .map_err(|error| StoreError::Database {
                location: location.clone(),
                detail: format!("creating it failed: {error}"),
            })??;
        Self::connect(path, location).await
    }

    /// Opens a store that must already exist, for commands that only read or answer runs:
    /// [`StoreError::Missing`] rather than a new, empty store.
    pub async fn open_existing(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        match tokio::fs::metadata(path).await {
            Ok(_) => Self::connect(path, location).await,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::Missing(location))
            }
            Err(error) => Err(StoreError::Database {
                location,
                detail: format!("cannot look at the file: {error}"),
            }),
        }
    }

    async fn connect(path: &Path, location: String) -> Result<Self, StoreError> {
        // Before any connection: the first one SQLite opens discards the evidence.
        let (db, at) = (path.to_owned(), location.clone());
        tokio::task::spawn_blocking(move || wal::check(&db, &at))
            .await
            .map_err(|error| StoreError::Database {
                location: location.clone(),
                detail: format!("checking the write-ahead log failed: {error}"),
            })??;
        let options = SqliteConnectOptions::new()
            .filename(path)
            // The file exists by now (`open` made it with its mode); a file that vanished
            // since is not silently replaced by an empty store.
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode FULL syncs the log at every commit: a commit that returns survives
            // a power cut, which the journal's promise rests on.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Turning a new file to WAL mode needs the file to itself, and SQLite does not wait
        // for that as it waits for writes: when two processes create the store at once, one
        // is refused at once, and tries again here.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options.clone())
                .await;
            match connected {
                Ok(pool) => break pool,
                Err(error) if is_busy(&error) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(explain(&location, "opening it", error)),
            }
        };
        let store = SqliteStore { pool, location };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema up to date. SQLite has no lock for migrations: two processes that
    /// create a new file at once both try the first migration, and the loser's transaction
    /// fails; it then finds the migration applied and has nothing left to do.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempt = 1;
        loop {
            let error = match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let retry = matches!(
                error,
                MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
            );
            if !retry || attempt >= ATTEMPTS {
                return Err(self.migration_failed(error));
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    fn migration_failed(&self, error: MigrateError) -> StoreError {
        let doing = "updating its tables";
        match error {
            MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
                explain(&self.location, doing, error)
            }
            MigrateError::VersionMissing(version) | MigrateError::VersionTooNew(version, _) => {
                StoreError::Database {
                    location: self.location.clone(),
                    detail: format!(
                        "a newer version of runbook has changed its tables (to version \
                         {version}); use that version, or another store"
                    ),
                }
            }
            other => StoreError::Database {
                location: self.location.clone(),
                detail: format!("{doing}: {other}"),
            },
        }
    }

    /// Turns a failure into the error callers see, saying what the store was doing.
    fn explain(&self, failure: Failure, doing: impl FnOnce() -> String) -> StoreError {
        match failure {
            Failure::Store(error) => error,
            Failure::Sql(error) => explain(&self.location, &doing(), error),
        }
    }

    async fn create_run(&self, run_id: &str, owner: &Owner, first: &Envelope) -> Outcome<Lease> {
        let RunEvent::RunStarted { runbook, file, .. } = &first.event else {
            return Err(corrupt(
                run_id,
                format!(
                    "its first event must be `run_started`, not `{}`",
                    encode(run_id, first)?.kind
                ),
            ));
        };
        if first.run_id != run_id {
            return Err(corrupt(
                run_id,
                format!("its first event belongs to run `{}`", first.run_id),
            ));
        }
        let event = encode(run_id, first)?;
        let chain = chain("", 1, &event.body);
        let token = new_token();
        let now = now();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, runbook, file, status, created_at, updated_at, last_seq, \
             last_chain) VALUES (?, ?, ?, 'running', ?, ?, 1, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(run_id)
        .bind(runbook)
        .bind(file)
        .bind(&now)
        .bind(&now)
        .bind(&chain)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Exists(run_id.to_owned()).into());
        }
        sqlx::query(
            "INSERT INTO owners (run_id, token, pid, host, process_start, since, expires_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(&token)
        .bind(i64::from(owner.pid))
        .bind(&owner.host)
        .bind(owner.process_start.map(to_i64))
        .bind(&owner.since)
        .bind(lease_end())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO events (run_id, seq, at, kind, body, chain) VALUES (?, 1, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(&first.at)
        .bind(&event.kind)
        .bind(&event.body)
        .bind(&chain)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Lease {
            run_id: run_id.to_owned(),
            token,
            owner: owner.clone(),
        })
    }

    /// Reads the lease, and takes it with a compare-and-swap on what was read: of several
    /// processes claiming at once, exactly one changes the row. Reading and writing in one
    /// transaction would not do: SQLite cannot wait for the write lock once a transaction
    /// has read, and fails at once instead.
    async fn claim_run(&self, run_id: &str, owner: &Owner) -> Outcome<Lease> {
        for _ in 0..ATTEMPTS {
            let row = sqlx::query(
                "SELECT o.run_id AS held, o.token, o.expires_at_ms, o.pid, o.host, \
                 o.process_start, o.since FROM runs r LEFT JOIN owners o ON o.run_id = r.id \
                 WHERE r.id = ?",
            )
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
            let has_row = row.try_get::<Option<String>, _>("held")?.is_some();
            let token: Option<String> = row.try_get("token")?;
            let expires: Option<i64> = row.try_get("expires_at_ms")?;
            let holder = owner_from(&row)?;
            if let (Some(_), Some(holder)) = (&token, &holder) {
                let expired = expires.is_none_or(|at| at < now_ms());
                if !expired && !holder.is_gone() {
                    return Err(StoreError::Owned {
                        run_id: run_id.to_owned(),
                        owner: holder.clone(),
                    }
                    .into());
                }
            }
            let new_token = new_token();
            let taken = if has_row {
                // Unchanged since it was read, down to the expiry: a renewal in between
                // means the holder is alive after all.
                sqlx::query(
                    "UPDATE owners SET token = ?, pid = ?, host = ?, process_start = ?, \
                     since = ?, expires_at_ms = ? \
                     WHERE run_id = ? AND token IS ? AND expires_at_ms IS ?",
                )
                .bind(&new_token)
                .bind(i64::from(owner.pid))
                .bind(&owner.host)
                .bind(owner.process_start.map(to_i64))
                .bind(&owner.since)
                .bind(lease_end())
                .bind(run_id)
                .bind(&token)
                .bind(expires)
                .execute(&self.pool)
                .await?
            } else {
                sqlx::query(
                    "INSERT INTO owners (run_id, token, pid, host, process_start, since, \
                     expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                )
                .bind(run_id)
                .bind(&new_token)
                .bind(i64::from(owner.pid))
                .bind(&owner.host)
                .bind(owner.process_start.map(to_i64))
                .bind(&owner.since)
                .bind(lease_end())
                .execute(&self.pool)
                .await?
            };
            if taken.rows_affected() == 1 {
                return Ok(Lease {
                    run_id: run_id.to_owned(),
                    token: new_token,
                    owner: owner.clone(),
                });
            }
            // Another process changed the row first: look again, which normally finds it
            // holding the run.
        }
        Err(StoreError::Database {
            location: self.location.clone(),
            detail: format!(
                "claiming run `{run_id}`: its lease changed hands {ATTEMPTS} times while this \
                 process tried to take it"
            ),
        }
        .into())
    }

    async fn renew_lease(&self, lease: &Lease) -> Outcome<()> {
        let renewed =
            sqlx::query("UPDATE owners SET expires_at_ms = ? WHERE run_id = ? AND token = ?")
                .bind(lease_end())
                .bind(&lease.run_id)
                .bind(&lease.token)
                .execute(&self.pool)
                .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::LostOwnership(lease.run_id.clone()).into());
        }
        Ok(())
    }

    async fn release_lease(&self, lease: &Lease) -> Outcome<()> {
        // A lease already taken over is not ours to release: nothing to do.
        sqlx::query(
            "UPDATE owners SET token = NULL, expires_at_ms = NULL WHERE run_id = ? AND token = ?",
        )
        .bind(&lease.run_id)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append_events(
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
        let mut encoded = Vec::with_capacity(events.len());
        for (n, envelope) in events.iter().enumerate() {
            if envelope.run_id != run_id {
                return Err(corrupt(
                    run_id,
                    format!(
                        "event {} to append belongs to run `{}`",
                        first_seq.saturating_add(n as u64),
                        envelope.run_id
                    ),
                ));
            }
            encoded.push(encode(run_id, envelope)?);
        }
        // BEGIN IMMEDIATE and a write first: the write lock is taken at the start, where
        // SQLite waits for it, rather than on a later upgrade, where it would fail at once.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let renewed =
            sqlx::query("UPDATE owners SET expires_at_ms = ? WHERE run_id = ? AND token = ?")
                .bind(lease_end())
                .bind(run_id)
                .bind(&lease.token)
                .execute(&mut *tx)
                .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::LostOwnership(run_id.to_owned()).into());
        }
        let run = sqlx::query(
            "SELECT last_seq, last_chain, status, ended_at, duration_ms FROM runs WHERE id = ?",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        let last_seq: i64 = run.try_get("last_seq")?;
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
        if i64::try_from(first_seq).ok() != last_seq.checked_add(1) {
            return Err(corrupt(
                run_id,
                format!(
                    "the next event is number {}, but this process was about to write number \
                     {first_seq}: its view of the journal is stale",
                    last_seq.saturating_add(1)
                ),
            ));
        }
        let mut rows = Vec::with_capacity(encoded.len());
        for (seq, (event, envelope)) in (last_seq + 1..).zip(encoded.into_iter().zip(events)) {
            last_chain = chain(&last_chain, seq, &event.body);
            rows.push((
                seq,
                envelope.at.clone(),
                event.kind,
                event.body,
                last_chain.clone(),
            ));
            fold.apply(&envelope.event, &envelope.at);
        }
        let last_seq = last_seq + rows.len() as i64;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (run_id, seq, at, kind, body, chain) ",
            );
            insert.push_values(rows.by_ref().take(INSERT_CHUNK), |mut values, row| {
                let (seq, at, kind, body, chain) = row;
                values
                    .push_bind(run_id)
                    .push_bind(seq)
                    .push_bind(at)
                    .push_bind(kind)
                    .push_bind(body)
                    .push_bind(chain);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE runs SET last_seq = ?, last_chain = ?, updated_at = ?, status = ?, \
             ended_at = ?, duration_ms = ? WHERE id = ?",
        )
        .bind(last_seq)
        .bind(&last_chain)
        .bind(now())
        .bind(fold.status.unwrap_or(RunStatus::Running).name())
        .bind(&fold.ended_at)
        .bind(fold.duration_ms.map(to_i64))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_events(&self, run_id: &str) -> Outcome<Vec<Envelope>> {
        // One read transaction, so that the run's row and its events are the same snapshot
        // even while another process appends.
        let mut tx = self.pool.begin().await?;
        let run = sqlx::query("SELECT last_seq, last_chain FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        let last_seq: i64 = run.try_get("last_seq")?;
        let last_chain: String = run.try_get("last_chain")?;
        let rows = sqlx::query("SELECT seq, body, chain FROM events WHERE run_id = ? ORDER BY seq")
            .bind(run_id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;

        let mut events = Vec::with_capacity(rows.len());
        let mut previous = String::new();
        for (expected, row) in (1i64..).zip(&rows) {
            let seq: i64 = row.try_get("seq")?;
            let body: String = row.try_get("body")?;
            let stored: String = row.try_get("chain")?;
            if seq != expected {
                return Err(corrupt(
                    run_id,
                    format!("event {expected} is missing (the next one stored is number {seq})"),
                ));
            }
            if seq > last_seq {
                return Err(corrupt(
                    run_id,
                    format!("event {seq} is stored, but the run records only {last_seq} events"),
                ));
            }
            let computed = chain(&previous, seq, &body);
            if computed != stored {
                return Err(corrupt(
                    run_id,
                    format!(
                        "event {seq} is not as it was written: its hash does not follow from \
                         its content and the events before it"
                    ),
                ));
            }
            let envelope: Envelope = serde_json::from_str(&body)
                .map_err(|error| corrupt(run_id, format!("event {seq} cannot be read: {error}")))?;
            if envelope.run_id != run_id {
                return Err(corrupt(
                    run_id,
                    format!("event {seq} belongs to run `{}`", envelope.run_id),
                ));
            }
            events.push(envelope);
            previous = computed;
        }
        let stored = events.len() as i64;
        if stored < last_seq {
            return Err(corrupt(
                run_id,
                format!(
                    "event {} is missing: the run records {last_seq} events, but only {stored} \
                     are stored",
                    stored + 1
                ),
            ));
        }
        if previous != last_chain {
            return Err(corrupt(
                run_id,
                format!(
                    "event {last_seq}, the last, does not match the hash the run recorded for it"
                ),
            ));
        }
        Ok(events)
    }

    async fn summary(&self, run_id: &str) -> Outcome<RunSummary> {
        let row = sqlx::query(concat!(summary!(), " WHERE r.id = ?"))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        Ok(summary_from(&row)?)
    }

    async fn summaries(&self) -> Outcome<Vec<RunSummary>> {
        let rows = sqlx::query(concat!(
            summary!(),
            " ORDER BY r.created_at DESC, r.id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    async fn delete_ended_before(&self, ended_before: &str) -> Outcome<Vec<RunSummary>> {
        // The write lock from the start: no run can be claimed or change status between
        // choosing the runs and deleting them.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE r.status IN ('succeeded', 'failed', 'cancelled') \
             AND r.ended_at IS NOT NULL AND r.ended_at < ? AND o.run_id IS NULL \
             ORDER BY r.created_at, r.id"
        ))
        .bind(ended_before)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Vec<RunSummary> = rows.iter().map(summary_from).collect::<Result<_, _>>()?;
        for run in &runs {
            for delete in [
                "DELETE FROM approvals WHERE run_id = ?",
                "DELETE FROM owners WHERE run_id = ?",
                "DELETE FROM events WHERE run_id = ?",
                "DELETE FROM runs WHERE id = ?",
            ] {
                sqlx::query(delete).bind(&run.id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if !runs.is_empty() {
            // Deleted rows only free pages inside the file; VACUUM rewrites it without them,
            // and the checkpoint folds that back from the write-ahead log, so the file shrinks.
            sqlx::query("VACUUM").execute(&self.pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(runs)
    }

    async fn record_decision(&self, run_id: &str, decision: &Decision) -> Outcome<()> {
        let inserted = sqlx::query(
            "INSERT INTO approvals (run_id, path, approved, \"by\", comment, at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, path) DO NOTHING",
        )
        .bind(run_id)
        .bind(&decision.path)
        .bind(decision.approved)
        .bind(&decision.by)
        .bind(&decision.comment)
        .bind(&decision.at)
        .execute(&self.pool)
        .await;
        let inserted = match inserted {
            Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
                return Err(StoreError::NotFound(run_id.to_owned()).into());
            }
            other => other?,
        };
        if inserted.rows_affected() == 1 {
            return Ok(());
        }
        let by: String =
            sqlx::query_scalar("SELECT \"by\" FROM approvals WHERE run_id = ? AND path = ?")
                .bind(run_id)
                .bind(&decision.path)
                .fetch_one(&self.pool)
                .await?;
        Err(StoreError::AlreadyDecided {
            run_id: run_id.to_owned(),
            path: decision.path.clone(),
            by,
        }
        .into())
    }

    async fn read_decisions(&self, run_id: &str) -> Outcome<Vec<Decision>> {
        let mut tx = self.pool.begin().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound(run_id.to_owned()).into());
        }
        let rows = sqlx::query(
            "SELECT path, approved, \"by\", comment, at FROM approvals WHERE run_id = ? \
             ORDER BY at, path",
        )
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let decision = |row: &SqliteRow| -> Result<Decision, sqlx::Error> {
            Ok(Decision {
                path: row.try_get("path")?,
                approved: row.try_get("approved")?,
                by: row.try_get("by")?,
                comment: row.try_get("comment")?,
                at: row.try_get("at")?,
            })
        };
        Ok(rows.iter().map(decision).collect::<Result<_, _>>()?)
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a Owner,
        first: &'a Envelope,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            self.create_run(run_id, owner, first)
                .await
                .map_err(|f| self.explain(f, || format!("creating run `{run_id}`")))
        })
    }

    fn claim<'a>(&'a self, run_id: &'a str, owner: &'a Owner) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            self.claim_run(run_id, owner)
                .await
                .map_err(|f| self.explain(f, || format!("claiming run `{run_id}`")))
        })
    }

    fn renew<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.renew_lease(lease).await.map_err(|f| {
                self.explain(f, || {
                    format!("renewing the lease on run `{}`", lease.run_id)
                })
            })
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.release_lease(lease).await.map_err(|f| {
                self.explain(f, || {
                    format!("releasing the lease on run `{}`", lease.run_id)
                })
            })
        })
    }

    fn append<'a>(
        &'a self,
        lease: &'a Lease,
        first_seq: u64,
        events: &'a [Envelope],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.append_events(lease, first_seq, events)
                .await
                .map_err(|f| self.explain(f, || format!("appending to run `{}`", lease.run_id)))
        })
    }

    fn events<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            self.read_events(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
        })
    }

    fn run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunSummary> {
        Box::pin(async move {
            self.summary(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
        })
    }

    fn runs<'a>(&'a self) -> StoreFuture<'a, Vec<RunSummary>> {
        Box::pin(async move {
            self.summaries()
                .await
                .map_err(|f| self.explain(f, || "listing runs".to_owned()))
        })
    }

    fn prune<'a>(&'a self, ended_before: &'a str) -> StoreFuture<'a, Vec<RunSummary>> {
        Box::pin(async move {
            self.delete_ended_before(ended_before)
                .await
                .map_err(|f| self.explain(f, || "pruning old runs".to_owned()))
        })
    }

    fn decide<'a>(&'a self, run_id: &'a str, decision: &'a Decision) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.record_decision(run_id, decision).await.map_err(|f| {
                self.explain(f, || {
                    format!(
                        "recording the answer to `{}` of run `{run_id}`",
                        decision.path
                    )
                })
            })
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }

    fn add_records<'a>(
        &'a self,
        name: &'a str,
        run_id: &'a str,
        path: &'a str,
        values: &'a [String],
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.insert_records(name, run_id, path, values)
                .await
                .map_err(|f| self.explain(f, || format!("adding to record `{name}`")))
        })
    }

    fn records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<RecordEntry>> {
        Box::pin(async move {
            self.read_records(name)
                .await
                .map_err(|f| self.explain(f, || format!("reading record `{name}`")))
        })
    }

    fn decisions<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Decision>> {
        Box::pin(async move {
            self.read_decisions(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading the answers of run `{run_id}`")))
        })
    }
}

fn summary_from(row: &SqliteRow) -> Result<RunSummary, sqlx::Error> {
    let ended_at: Option<String> = row.try_get("ended_at")?;
    let duration_ms: Option<i64> = row.try_get("duration_ms")?;
    Ok(RunSummary {
        id: row.try_get("id")?,
        runbook: row.try_get("runbook")?,
        file: row.try_get("file")?,
        status: status_from(row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        // The total is kept across a resume, but is the run's duration only once it ended.
        duration_ms: ended_at
            .as_ref()
            .and(duration_ms)
            .and_then(|ms| u64::try_from(ms).ok()),
        ended_at,
        owner: owner_from(row)?,
    })
}

/// A status as the `runs` table keeps it: the name of a [`RunStatus`].
fn status_from(name: String) -> Result<RunStatus, sqlx::Error> {
    RunStatus::from_name(&name)
        .ok_or_else(|| sqlx::Error::Decode(format!("`{name}` is not the status of a run").into()))
}

/// The owner recorded in a row's `pid`, `host`, `process_start` and `since`, if any.
fn owner_from(row: &SqliteRow) -> Result<Option<Owner>, sqlx::Error> {
    let pid: Option<i64> = row.try_get("pid")?;
    let host: Option<String> = row.try_get("host")?;
    let process_start: Option<i64> = row.try_get("process_start")?;
    let since: Option<String> = row.try_get("since")?;
    let (Some(pid), Some(host)) = (pid.and_then(|p| u32::try_from(p).ok()), host) else {
        return Ok(None);
    };
    Ok(Some(Owner {
        pid,
        host,
        process_start: process_start.and_then(|t| u64::try_from(t).ok()),
        since: since.unwrap_or_default(),
    }))
}

/// An event as stored: its tag and the JSON of the whole envelope.
struct Encoded {
    kind: String,
    body: String,
}

fn encode(run_id: &str, envelope: &Envelope) -> Result<Encoded, Failure> {
    let value = serde_json::to_value(envelope).map_err(|error| {
        corrupt(
            run_id,
            format!("an event cannot be written as JSON: {error}"),
        )
    })?;
    let kind = value
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    Ok(Encoded {
        kind,
        body: value.to_string(),
    })
}

/// The hash chain: each event's link covers the one before, its number and its content, so
/// that an event changed, moved or dropped breaks every link from there on.
fn chain(previous: &str, seq: i64, body: &str) -> String {
    let digest = Sha256::new()
        .chain_update(previous.as_bytes())
        .chain_update(b"\n")
        .chain_update(seq.to_string().as_bytes())
        .chain_update(b"\n")
        .chain_update(body.as_bytes())
        .finalize();
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A fresh lease token: 128 random bits in hex.
fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Now, with microseconds always written out, so that text order is time order.
fn now() -> String {
    crate::event::timestamp::now()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// When a lease taken or renewed now runs out.
/// Creates the missing directories of `db` (0700) and the file itself (0600), whatever the
/// umask; existing ones are left as they are.
fn create_private(db: &Path, location: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let failed = |what: String, error: std::io::Error| StoreError::Database {
        location: location.to_owned(),
        detail: format!("cannot create {what}: {error}"),
    };
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut missing = Vec::new();
        let mut dir = Some(parent);
        while let Some(at) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(at.to_owned());
            dir = at.parent();
        }
        for dir in missing.iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| failed(format!("the directory {}", dir.display()), e))?,
                // Another process made it in the meantime.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    return Err(failed(format!("the directory {}", dir.display()), error));
                }
            }
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(format!("the file {}", db.display()), e)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(failed(format!("the file {}", db.display()), error)),
    }
}

fn lease_end() -> i64 {
    now_ms().saturating_add(LEASE.as_millis() as i64)
}

/// SQLite integers are signed; the values stored here (tick counts, milliseconds) are far
/// below the limit, and a larger one is kept at the limit rather than wrapped.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn corrupt(run_id: &str, detail: String) -> Failure {
    Failure::Store(StoreError::Corrupt {
        run_id: run_id.to_owned(),
        detail,
    })
}

/// Whether SQLite refused because another connection held a lock.
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    let code: i32 = error.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)
}

/// A database error in words: what the store was doing, and what went wrong in terms a
/// person can act on.
fn explain(location: &str, doing: &str, error: sqlx::Error) -> StoreError {
    let database = |detail: String| StoreError::Database {
        location: location.to_owned(),
        detail,
    };
    match error {
        sqlx::Error::Database(error) => {
            let code: i32 = error.code().and_then(|c| c.parse().ok()).unwrap_or(0);
            let message = error.message();
            let full = code & 0xff == SQLITE_FULL || code == SQLITE_IOERR_SHMSIZE;
            match code & 0xff {
                _ if full => {
                    // SQLite calls a -shm file it cannot grow a "disk I/O error"; say what it is.
                    let cause = if code == SQLITE_IOERR_SHMSIZE {
                        "no room left for its -shm file"
                    } else {
                        message
                    };
                    StoreError::Full(format!(
                        "{location} could not grow while {doing} ({cause}): the disk is full; \
                         free some space on it"
                    ))
                }
                SQLITE_CORRUPT => StoreError::Damaged {
                    location: location.to_owned(),
                    detail: format!(
                        "{doing}: SQLite reports that {message}. Keep a copy of the file and its \
                         -wal and -shm files for inspection, and restore it from a backup"
                    ),
                },
                SQLITE_NOTADB => StoreError::Damaged {
                    location: location.to_owned(),
                    detail: format!(
                        "{doing}: the file is not a SQLite database, or its header is damaged \
                         ({message})"
                    ),
                },
                SQLITE_BUSY | SQLITE_LOCKED => database(format!(
                    "{doing}: another process kept it locked for more than {} s ({message})",
                    BUSY_TIMEOUT.as_secs()
                )),
                SQLITE_PERM | SQLITE_AUTH => {
                    database(format!("{doing}: permission denied ({message})"))
                }
                SQLITE_READONLY => database(format!(
                    "{doing}: it cannot be written: the file or its directory is read-only for \
                     this user ({message})"
                )),
                SQLITE_CANTOPEN => database(format!(
                    "{doing}: the file cannot be opened: check that it is a file, not a \
                     directory, and that this user may read and write both it and its \
                     directory ({message})"
                )),
                SQLITE_IOERR => database(format!(
                    "{doing}: input/output error ({message}, SQLite code {code})"
                )),
                _ => database(format!("{doing}: {message} (SQLite code {code})")),
            }
        }
        sqlx::Error::Io(error) if error.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(format!("{location} could not grow while {doing} ({error})"))
        }
        sqlx::Error::Io(error) => database(format!("{doing}: {error}")),
        sqlx::Error::PoolTimedOut => {
            database(format!("{doing}: no connection to it became free in time"))
        }
        other => database(format!("{doing}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, StoreFactory, ended, started, step};
    use futures::future::BoxFuture;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Handles on one SQLite file, as processes sharing it have; breaks it with plain SQL.
    struct SqliteFactory {
        dir: tempfile::TempDir,
        admin: SqliteStore,
    }

    impl SqliteFactory {
        async fn new() -> SqliteFactory {
            let dir = tempfile::tempdir().unwrap();
            let admin = open(&dir).await;
            SqliteFactory { dir, admin }
        }
    }

    impl StoreFactory for SqliteFactory {
        fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
            Box::pin(async { Arc::new(open(&self.dir).await) as Arc<dyn Store> })
        }

        fn tamper<'a>(
            &'a self,
            run_id: &'a str,
            seq: u64,
            from: &'a str,
            to: &'a str,
        ) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE events SET body = replace(body, ?, ?) WHERE run_id = ? AND seq = ?",
                )
                .bind(from)
                .bind(to)
                .bind(run_id)
                .bind(to_i64(seq))
                .execute(&self.admin.pool)
                .await
                .unwrap();
            })
        }

        fn lose_event<'a>(&'a self, run_id: &'a str, seq: u64) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                sqlx::query("DELETE FROM events WHERE run_id = ? AND seq = ?")
                    .bind(run_id)
                    .bind(to_i64(seq))
                    .execute(&self.admin.pool)
                    .await
                    .unwrap();
            })
        }

        fn expire_leases(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {
                sqlx::query("UPDATE owners SET expires_at_ms = expires_at_ms - 60000")
                    .execute(&self.admin.pool)
                    .await
                    .unwrap();
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_sqlite_store_passes_the_conformance_suite() {
        conformance::run_all(&SqliteFactory::new().await).await;
    }

    fn db_path(dir: &tempfile::TempDir) -> PathBuf {
        // A directory that does not exist yet: open creates it.
        dir.path().join("state").join("runbook.db")
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&db_path(dir)).await.unwrap()
    }

    /// What the conformance suite cannot see: the rows, and the chain formula they follow.
    #[tokio::test]
    async fn events_are_stored_chained_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        assert_eq!(
            store.location(),
            format!("sqlite:{}", db_path(&dir).display())
        );
        let lease = store
            .create("r1", &Owner::current(), &started("r1"))
            .await
            .unwrap();
        assert_eq!(lease.token.len(), 32);
        let more = [step("r1", "build"), ended("r1", RunStatus::Succeeded, 1500)];
        store.append(&lease, 2, &more).await.unwrap();

        // The chain as documented: sha256(previous + "\n" + seq + "\n" + body).
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, kind, body, chain FROM events WHERE run_id = 'r1' ORDER BY seq",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let mut previous = String::new();
        for (seq, _, body, link) in &rows {
            let digest = Sha256::digest(format!("{previous}\n{seq}\n{body}").as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&hex, link);
            previous = hex;
        }
        let kinds: Vec<&str> = rows.iter().map(|(_, kind, _, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["run_started", "step_started", "run_ended"]);
        let (last_seq, last_chain): (i64, String) =
            sqlx::query_as("SELECT last_seq, last_chain FROM runs WHERE id = 'r1'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!((last_seq, last_chain), (3, previous));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_processes_may_create_the_store_at_once() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = db_path(&dir);
            let (one, two) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
            let (one, two) = (one.unwrap(), two.unwrap());
            let lease = one
                .create("r1", &Owner::current(), &started("r1"))
                .await
                .unwrap();
            two.release(&lease).await.unwrap();
            assert_eq!(two.events("r1").await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn thousands_of_events_go_in_one_quick_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let lease = store
            .create("r1", &Owner::current(), &started("r1"))
            .await
            .unwrap();
        let events: Vec<Envelope> = (0..4096)
            .map(|n| step("r1", &format!("items[{n}]/fetch")))
            .collect();
        let start = std::time::Instant::now();
        store.append(&lease, 2, &events).await.unwrap();
        let took = start.elapsed();
        // Milliseconds in a release build; a generous bound for debug builds on slow disks.
        assert!(took < Duration::from_secs(5), "{took:?}");
        let read = store.events("r1").await.unwrap();
        assert_eq!(read.len(), 4097);
        assert_eq!(read[4096], events[4095]);
    }

    #[tokio::test]
    async fn files_that_are_not_stores_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        std::fs::write(
            &path,
            "these are not the pages you are looking for\n".repeat(100),
        )
        .unwrap();
        let error = SqliteStore::open(&path).await.err().unwrap();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("notes.db"), "{message}");
        assert!(message.contains("not a SQLite database"), "{message}");

        let error = SqliteStore::open(dir.path()).await.err().unwrap();
        assert!(matches!(error, StoreError::Database { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(&dir.path().display().to_string()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_as_such() {
        // SQLite answers SQLITE_FULL when a file reaches its page limit, as when the disk is
        // full.
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("small.db"))
            .create_if_missing(true)
            .pragma("max_page_count", "4");
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        let error = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&pool)
            .await
            .unwrap_err();
        let error = explain("sqlite:small.db", "appending to run `r1`", error);
        match &error {
            StoreError::Full(detail) => {
                assert!(
                    detail.starts_with("sqlite:small.db could not grow while appending"),
                    "{detail}"
                );
            }
            other => panic!("expected Full, got {other}"),
        }
        pool.close().await;
    }

    /// Copies the store's three files while it is open, as a crash would leave them.
    fn copy_open_store(from: &Path, to: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut source = from.as_os_str().to_owned();
            source.push(suffix);
            let mut target = to.as_os_str().to_owned();
            target.push(suffix);
            std::fs::copy(&source, &target).unwrap();
        }
    }

    fn wal_of(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }

    #[tokio::test]
    async fn a_torn_write_ahead_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        let store = open(&dir).await;
        let lease = store
            .create("r1", &Owner::current(), &started("r1"))
            .await
            .unwrap();
        for seq in 2..12 {
            store
                .append(&lease, seq, &[step("r1", &format!("s{seq}"))])
                .await
                .unwrap();
        }
        let events = store.events("r1").await.unwrap();

        // Untouched, the copy opens with every event: the checker agrees with SQLite's
        // own reading of the files.
        let whole = dir.path().join("whole.db");
        copy_open_store(&path, &whole);
        let (recorded, intact) = wal::inspect(&whole).expect("a usable wal-index");
        assert!(recorded > 10 && intact, "{recorded} {intact}");
        let copy = SqliteStore::open(&whole).await.unwrap();
        assert_eq!(copy.events("r1").await.unwrap(), events);

        // Half the log gone: SQLite alone would open it and forget the last events.
        let torn = dir.path().join("torn.db");
        copy_open_store(&path, &torn);
        let log = std::fs::OpenOptions::new()
            .write(true)
            .open(wal_of(&torn))
            .unwrap();
        let length = log.metadata().unwrap().len();
        log.set_len(length / 2).unwrap();
        drop(log);
        let error = SqliteStore::open(&torn).await.err().unwrap();
        match &error {
            StoreError::Damaged { location, detail } => {
                assert_eq!(location, &format!("sqlite:{}", torn.display()));
                assert!(
                    detail.starts_with("the write-ahead log is torn"),
                    "{detail}"
                );
                assert!(
                    detail.contains(&format!("records {recorded} committed frames")),
                    "{detail}"
                );
            }
            other => panic!("expected Damaged, got {other}"),
        }
        // Refused again on the next try: nothing was opened or rebuilt.
        assert!(matches!(
            SqliteStore::open(&torn).await,
            Err(StoreError::Damaged { .. })
        ));
        // What the check prevents: SQLite on its own opens the copy without complaint and
        // has forgotten committed events.
        let plain = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&torn))
            .await
            .unwrap();
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&plain)
            .await
            .unwrap_or(0);
        assert!(kept < events.len() as i64, "{kept}");
        plain.close().await;

        // One flipped bit in the first frame: SQLite would silently drop the whole log.
        let flipped = dir.path().join("flipped.db");
        copy_open_store(&path, &flipped);
        let mut bytes = std::fs::read(wal_of(&flipped)).unwrap();
        bytes[32 + 24 + 100] ^= 0x01;
        std::fs::write(wal_of(&flipped), bytes).unwrap();
        let error = SqliteStore::open(&flipped).await.err().unwrap();
        assert!(error.to_string().contains("only 0 are intact"), "{error}");
    }
}
