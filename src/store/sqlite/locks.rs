//! The `locks` table: locks shared across runs (see [`crate::store::HeldLock`]).
//!
//! Every decision is one statement that compares a lease with the database's own clock, so
//! that processes whose clocks disagree still agree on who holds a lock, and a PostgreSQL
//! store can say the same with `now()`.

use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::errors::Outcome;
use super::{ATTEMPTS, SqliteStore, to_i64};
use crate::store::{HeldLock, LockAttempt, LockHolder, Owner, StoreError};

/// Now by SQLite's clock, in milliseconds since the Unix epoch (a macro, so that queries stay
/// static text). `'now'` is the same throughout one statement.
macro_rules! db_now_ms {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
}

impl SqliteStore {
    /// Takes the lock in one upsert: inserted when free; updated only when the row is the
    /// caller's own or its lease has run out. Of several processes asking at once, SQLite
    /// runs the statements one after the other, and only the first finds the lock free.
    pub(super) async fn take_lock(
        &self,
        name: &str,
        holder: &LockHolder,
        lease: Duration,
    ) -> Outcome<LockAttempt> {
        for _ in 0..ATTEMPTS {
            let taken = sqlx::query(concat!(
                "INSERT INTO locks (name, run_id, step, runbook, pid, host, process_start, \
                 acquired_at, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ",
                db_now_ms!(),
                " + ?) ON CONFLICT (name) DO UPDATE SET \
                 acquired_at = CASE WHEN locks.run_id = excluded.run_id \
                 AND locks.step = excluded.step THEN locks.acquired_at \
                 ELSE excluded.acquired_at END, \
                 run_id = excluded.run_id, step = excluded.step, runbook = excluded.runbook, \
                 pid = excluded.pid, host = excluded.host, \
                 process_start = excluded.process_start, expires_at_ms = excluded.expires_at_ms \
                 WHERE (locks.run_id = excluded.run_id AND locks.step = excluded.step) \
                 OR (locks.expires_at_ms IS NOT NULL AND locks.expires_at_ms < ",
                db_now_ms!(),
                ") RETURNING name, run_id, step, runbook, pid, host, process_start, \
                 acquired_at, expires_at_ms"
            ))
            .bind(name)
            .bind(&holder.run_id)
            .bind(&holder.step)
            .bind(&holder.runbook)
            .bind(i64::from(holder.owner.pid))
            .bind(&holder.owner.host)
            .bind(holder.owner.process_start.map(to_i64))
            .bind(&holder.owner.since)
            .bind(to_i64(lease.as_millis() as u64))
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = taken {
                return Ok(LockAttempt::Acquired(held_from(&row)?));
            }
            // Whoever the row names, even if its lease ran out since the upsert refused it:
            // the caller asks again shortly, and then takes it.
            let held = sqlx::query(
                "SELECT name, run_id, step, runbook, pid, host, process_start, acquired_at, \
                 expires_at_ms FROM locks WHERE name = ?",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = held {
                return Ok(LockAttempt::HeldBy(held_from(&row)?));
            }
            // Released between the two statements: ask again.
        }
        Err(StoreError::Database {
            location: self.location.clone(),
            detail: format!(
                "taking lock `{name}`: it changed hands {ATTEMPTS} times while this process \
                 tried to take it"
            ),
        }
        .into())
    }

    pub(super) async fn extend_locks(&self, run_id: &str, lease: Duration) -> Outcome<Vec<String>> {
        let rows = sqlx::query(concat!(
            "UPDATE locks SET expires_at_ms = ",
            db_now_ms!(),
            " + ? WHERE run_id = ? AND expires_at_ms IS NOT NULL RETURNING name"
        ))
        .bind(to_i64(lease.as_millis() as u64))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut names = rows
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(names)
    }

    pub(super) async fn let_go_of_lock(&self, name: &str, holder: &LockHolder) -> Outcome<bool> {
        let released = sqlx::query("DELETE FROM locks WHERE name = ? AND run_id = ? AND step = ?")
            .bind(name)
            .bind(&holder.run_id)
            .bind(&holder.step)
            .execute(&self.pool)
            .await?;
        Ok(released.rows_affected() == 1)
    }

    pub(super) async fn keep_locks_unleased(&self, run_id: &str) -> Outcome<()> {
        sqlx::query("UPDATE locks SET expires_at_ms = NULL WHERE run_id = ?")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn held_locks(&self) -> Outcome<Vec<HeldLock>> {
        let rows = sqlx::query(concat!(
            "SELECT name, run_id, step, runbook, pid, host, process_start, acquired_at, \
             expires_at_ms FROM locks WHERE expires_at_ms IS NULL OR expires_at_ms >= ",
            db_now_ms!(),
            " ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(held_from).collect::<Result<_, _>>()?)
    }
}

fn held_from(row: &SqliteRow) -> Result<HeldLock, sqlx::Error> {
    let expires: Option<i64> = row.try_get("expires_at_ms")?;
    let acquired_at: String = row.try_get("acquired_at")?;
    Ok(HeldLock {
        name: row.try_get("name")?,
        holder: LockHolder {
            run_id: row.try_get("run_id")?,
            step: row.try_get("step")?,
            runbook: row.try_get("runbook")?,
            owner: Owner {
                pid: u32::try_from(row.try_get::<i64, _>("pid")?).unwrap_or(0),
                host: row.try_get("host")?,
                process_start: row
                    .try_get::<Option<i64>, _>("process_start")?
                    .and_then(|t| u64::try_from(t).ok()),
                since: acquired_at.clone(),
            },
        },
        acquired_at,
        expires_at: expires
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(crate::event::timestamp::format),
    })
}
