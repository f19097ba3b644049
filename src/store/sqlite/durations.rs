//! How long a step took in earlier runs, for `needs: auto` and the plan's expectations.

use sqlx::Row;

use super::SqliteStore;
use super::errors::Outcome;
use crate::store::StepSpan;

impl SqliteStore {
    /// The durations of `span` where it succeeded, in the `runs` latest succeeded runs of
    /// `runbook`, newest first.
    pub(super) async fn read_step_durations(
        &self,
        runbook: &str,
        span: StepSpan<'_>,
        runs: usize,
    ) -> Outcome<Vec<u64>> {
        if span.from != span.through {
            return self.read_span_durations(runbook, span, runs).await;
        }
        let path = span.from;
        let rows = sqlx::query(
            "SELECT json_extract(e.body, '$.duration_ms') AS ms FROM event_rows e \
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

    /// From the first start of `span.from` to the last succeeded end of `span.through`, in
    /// each of the `runs` latest succeeded runs of `runbook` that have both, newest first.
    async fn read_span_durations(
        &self,
        runbook: &str,
        span: StepSpan<'_>,
        runs: usize,
    ) -> Outcome<Vec<u64>> {
        // Timestamps are RFC 3339 in UTC with six fractional digits: they sort as text.
        let rows = sqlx::query(
            "SELECT \
               (SELECT MIN(s.at) FROM event_rows s WHERE s.run_id = r.id \
                  AND s.kind IN ('step_started', 'step_expanded') \
                  AND json_extract(s.body, '$.path') = ?) AS started, \
               (SELECT MAX(t.at) FROM event_rows t WHERE t.run_id = r.id \
                  AND t.kind = 'step_ended' \
                  AND json_extract(t.body, '$.path') = ? \
                  AND json_extract(t.body, '$.status') = 'succeeded') AS ended \
             FROM runs r WHERE r.runbook = ? AND r.status = 'succeeded' \
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
        )
        .bind(span.from)
        .bind(span.through)
        .bind(runbook)
        .bind(i64::try_from(runs).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut durations = Vec::with_capacity(rows.len());
        for row in &rows {
            let started: Option<String> = row.try_get("started")?;
            let ended: Option<String> = row.try_get("ended")?;
            let (Some(started), Some(ended)) = (started, ended) else {
                continue;
            };
            let (Ok(started), Ok(ended)) = (
                started.parse::<jiff::Timestamp>(),
                ended.parse::<jiff::Timestamp>(),
            ) else {
                continue;
            };
            let ms = ended.as_millisecond() - started.as_millisecond();
            if let Ok(ms) = u64::try_from(ms) {
                durations.push(ms);
            }
        }
        Ok(durations)
    }
}
