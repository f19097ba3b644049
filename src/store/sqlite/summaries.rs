//! Run summaries: one run, the list of runs, and pruning ended runs.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::errors::Outcome;
use crate::event::RunStatus;
use crate::store::{Owner, RunSummary, StoreError};

impl SqliteStore {
    pub(super) async fn summary(&self, run_id: &str) -> Outcome<RunSummary> {
        let row = sqlx::query(concat!(summary!(), " WHERE r.id = ?"))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        Ok(summary_from(&row)?)
    }

    pub(super) async fn summaries(&self) -> Outcome<Vec<RunSummary>> {
        let rows = sqlx::query(concat!(
            summary!(),
            " ORDER BY r.created_at DESC, r.id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    pub(super) async fn delete_ended_before(&self, ended_before: &str) -> Outcome<Vec<RunSummary>> {
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
pub(super) fn status_from(name: String) -> Result<RunStatus, sqlx::Error> {
    RunStatus::from_name(&name)
        .ok_or_else(|| sqlx::Error::Decode(format!("`{name}` is not the status of a run").into()))
}

/// The owner recorded in a row's `pid`, `host`, `process_start` and `since`, if any.
pub(super) fn owner_from(row: &SqliteRow) -> Result<Option<Owner>, sqlx::Error> {
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
