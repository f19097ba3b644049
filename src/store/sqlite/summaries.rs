//! Run summaries: one run, the list of runs, and pruning ended runs.

use crate::store::rows::summary_from;

use super::SqliteStore;
use super::errors::Outcome;
use crate::store::{QUEUE_RECORD, RunSummary, RunsPage, StoreError};

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

    pub(super) async fn summaries_page(&self, page: &RunsPage) -> Outcome<Vec<RunSummary>> {
        // The order of `summaries`, read through the index on (created_at, id) from the
        // cursor's run on: a page costs its own rows, whatever the store holds.
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE (?1 IS NULL OR r.runbook = ?1) \
             AND (?2 IS NULL OR (r.created_at, r.id) < \
                  (SELECT a.created_at, a.id FROM runs a WHERE a.id = ?2)) \
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?3"
        ))
        .bind(page.runbook.as_deref())
        .bind(page.after.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    pub(super) async fn queue_summaries(&self) -> Outcome<Vec<RunSummary>> {
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE r.status IN ('queued', 'running', 'interrupted', 'waiting', 'parked') \
             AND r.id IN (SELECT value FROM records WHERE name = ?) \
             ORDER BY r.created_at DESC, r.id DESC"
        ))
        .bind(QUEUE_RECORD)
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
            " WHERE r.status IN ('succeeded', 'failed', 'cancelled', 'undone') \
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
                "DELETE FROM events WHERE run = (SELECT no FROM runs WHERE id = ?)",
                "DELETE FROM runs WHERE id = ?",
            ] {
                sqlx::query(delete).bind(&run.id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if !runs.is_empty() {
            // Deleted rows only free pages inside the file.
            self.give_space_back().await?;
        }
        Ok(runs)
    }
}
