//! Leases: which process owns a run, claimed, renewed and released.

use sqlx::Row;

use super::errors::Outcome;
use super::{ATTEMPTS, SqliteStore, now_ms, to_i64};
use crate::store::rows::owner_from;
use crate::store::{Lease, Owner, StoreError, run_lease};

impl SqliteStore {
    /// Reads the lease, and takes it with a compare-and-swap on what was read: of several
    /// processes claiming at once, exactly one changes the row. Reading and writing in one
    /// transaction would not do: SQLite cannot wait for the write lock once a transaction
    /// has read, and fails at once instead.
    pub(super) async fn claim_run(&self, run_id: &str, owner: &Owner) -> Outcome<Lease> {
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

    pub(super) async fn renew_lease(&self, lease: &Lease) -> Outcome<()> {
        // A lease that ran out is not renewed: see the fencing of appends.
        let renewed = sqlx::query(
            "UPDATE owners SET expires_at_ms = ? \
             WHERE run_id = ? AND token = ? AND expires_at_ms >= ?",
        )
        .bind(lease_end())
        .bind(&lease.run_id)
        .bind(&lease.token)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::LostOwnership(lease.run_id.clone()).into());
        }
        Ok(())
    }

    /// Gives the run up. On the appends' connection when it is open: by a run's end the
    /// appends have taken the pool's connection for themselves, and the pool would open
    /// another (a thread, the files, a sync of the directory at its first commit) for this
    /// one statement.
    pub(super) async fn release_lease(&self, lease: &Lease) -> Outcome<()> {
        // A lease already taken over is not ours to release: nothing to do.
        let release = || {
            sqlx::query(
                "UPDATE owners SET token = NULL, expires_at_ms = NULL \
                 WHERE run_id = ? AND token = ?",
            )
            .bind(&lease.run_id)
            .bind(&lease.token)
        };
        let mut writer = self.writer.lock().await;
        writer.forget(&lease.run_id);
        if let Some(connection) = writer.idle_connection() {
            if let Err(error) = release().execute(connection).await {
                writer.close_connection().await;
                return Err(error.into());
            }
            return Ok(());
        }
        drop(writer);
        release().execute(&self.pool).await?;
        Ok(())
    }
}

/// Gives run `run_id` to `owner` under `token`, with a lease from now, in the caller's
/// immediate transaction (no other writer between its look and this).
pub(super) async fn set_owner(
    tx: &mut sqlx::SqliteConnection,
    run_id: &str,
    token: &str,
    owner: &Owner,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO owners (run_id, token, pid, host, process_start, since, expires_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET \
         token = excluded.token, pid = excluded.pid, host = excluded.host, \
         process_start = excluded.process_start, since = excluded.since, \
         expires_at_ms = excluded.expires_at_ms",
    )
    .bind(run_id)
    .bind(token)
    .bind(i64::from(owner.pid))
    .bind(&owner.host)
    .bind(owner.process_start.map(to_i64))
    .bind(&owner.since)
    .bind(lease_end())
    .execute(tx)
    .await?;
    Ok(())
}

/// A fresh lease token: 128 random bits in hex.
pub(super) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// When a lease taken or renewed now runs out.
pub(super) fn lease_end() -> i64 {
    now_ms().saturating_add(i64::try_from(run_lease().as_millis()).unwrap_or(i64::MAX))
}
