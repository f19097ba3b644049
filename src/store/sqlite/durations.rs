//! How long a step took in earlier runs, for `needs: auto` and the plan's expectations.

use sqlx::Row;

use super::SqliteStore;
use super::errors::Outcome;

impl SqliteStore {
    /// The durations of step `path` where it succeeded, in the `runs` latest succeeded runs
    /// of `runbook`, newest first.
    pub(super) async fn read_step_durations(
        &self,
        runbook: &str,
        path: &str,
        runs: usize,
    ) -> Outcome<Vec<u64>> {
        let rows = sqlx::query(
            "SELECT json_extract(e.body, '$.duration_ms') AS ms FROM events e \
             JOIN runs r ON r.id = e.run_id \
             WHERE e.run_id IN (SELECT id FROM runs WHERE runbook = ? AND status = 'succeeded' \
                                ORDER BY created_at DESC, id DESC LIMIT ?) \
               AND e.kind = 'step_ended' \
               AND json_extract(e.body, '$.path') = ? \
               AND json_extract(e.body, '$.status') = 'succeeded' \
             ORDER BY r.created_at DESC, r.id DESC, e.seq DESC",
        )
        .bind(runbook)
        .bind(i64::try_from(runs).unwrap_or(i64::MAX))
        .bind(path)
        .fetch_all(&self.pool)
        .await?;
        let mut durations = Vec::with_capacity(rows.len());
        for row in &rows {
            let ms: Option<i64> = row.try_get("ms")?;
            if let Some(ms) = ms.and_then(|ms| u64::try_from(ms).ok()) {
                durations.push(ms);
            }
        }
        Ok(durations)
    }
}
