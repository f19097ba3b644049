//! Everything but the journal: run summaries and pruning, approvals, records, locks, and the
//! durations of earlier runs.

use crate::store::RunsPage;
use crate::store::rows::summary_from;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, db_now_ms, summary, to_i64};
use crate::event::timestamp::now;
use crate::store::sqlite::errors::Outcome;
use crate::store::{
    Decision, HeldLock, LockAttempt, LockHolder, Owner, RecordEntry, RunSummary, StepSpan,
    StoreError,
};

/// Times a lock is asked for when it is released between the upsert and the look at its
/// holder.
const ATTEMPTS: u32 = 3;

impl PostgresStore {
    pub(super) async fn summary(&self, run_id: &str) -> Outcome<RunSummary> {
        let row = sqlx::query(concat!(summary!(), " WHERE r.id = $1"))
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

    pub(super) async fn queue_summaries(&self) -> Outcome<Vec<RunSummary>> {
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE r.status IN ('queued', 'running', 'interrupted', 'waiting', 'parked') \
             AND r.id IN (SELECT value FROM records WHERE name = $1) \
             ORDER BY r.created_at DESC, r.id DESC"
        ))
        .bind(crate::store::QUEUE_RECORD)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    pub(super) async fn summaries_page(&self, page: &RunsPage) -> Outcome<Vec<RunSummary>> {
        // The order of `summaries`, read through the index on (created_at, id) from the
        // cursor's run on: a page costs its own rows, whatever the store holds.
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE ($1::text IS NULL OR r.runbook = $1) \
             AND ($2::text IS NULL OR (r.created_at, r.id) < \
                  (SELECT a.created_at, a.id FROM runs a WHERE a.id = $2)) \
             ORDER BY r.created_at DESC, r.id DESC LIMIT $3"
        ))
        .bind(page.runbook.as_deref())
        .bind(page.after.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    pub(super) async fn delete_ended_before(&self, ended_before: &str) -> Outcome<Vec<RunSummary>> {
        let mut tx = self.pool.begin().await?;
        // The ended runs' rows locked until the commit: a claim (which locks the run's row
        // first) waits, and finds the run gone. Their owners are read in a second statement,
        // which sees leases taken before the lock was had.
        let ended: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled', 'undone') \
             AND ended_at IS NOT NULL AND ended_at < $1 ORDER BY id FOR UPDATE",
        )
        .bind(ended_before)
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query(concat!(
            summary!(),
            " WHERE r.id = ANY($1) AND o.run_id IS NULL ORDER BY r.created_at, r.id"
        ))
        .bind(&ended)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Vec<RunSummary> = rows.iter().map(summary_from).collect::<Result<_, _>>()?;
        let ids: Vec<String> = runs.iter().map(|run| run.id.clone()).collect();
        for delete in [
            "DELETE FROM approvals WHERE run_id = ANY($1)",
            "DELETE FROM owners WHERE run_id = ANY($1)",
            "DELETE FROM events WHERE run_id = ANY($1)",
            "DELETE FROM runs WHERE id = ANY($1)",
        ] {
            sqlx::query(delete).bind(&ids).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        // PostgreSQL's autovacuum gives the space back to the tables in its own time.
        Ok(runs)
    }

    pub(super) async fn record_decision(
        &self,
        run_id: &str,
        decision: &Decision,
        needed: u32,
    ) -> Outcome<()> {
        let mut tx = self.pool.begin().await?;
        // Two people answering one step at once take turns, so that they cannot both complete
        // a quorum: the check below then sees the other's answer once it is committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("approval\n{run_id}\n{}", decision.path))
            .execute(&mut *tx)
            .await?;
        // One statement: the answer, and (only when it was recorded) a notification that
        // wakes the workers waiting for it, delivered at its commit.
        let inserted = sqlx::query(
            "WITH inserted AS (\
               INSERT INTO approvals (run_id, path, approved, \"by\", comment, at) \
               SELECT $1, $2, $3, $4, $5, $6 \
               WHERE NOT EXISTS (SELECT 1 FROM approvals WHERE run_id = $1 AND path = $2 \
                                 AND (NOT approved OR \"by\" = $4)) \
                 AND (SELECT COUNT(*) FROM approvals WHERE run_id = $1 AND path = $2) < $8 \
               RETURNING run_id) \
             SELECT pg_notify($7, run_id) FROM inserted",
        )
        .bind(run_id)
        .bind(&decision.path)
        .bind(decision.approved)
        .bind(&decision.by)
        .bind(&decision.comment)
        .bind(&decision.at)
        .bind(super::APPROVALS_CHANNEL)
        .bind(i64::from(needed.max(1)))
        .fetch_all(&mut *tx)
        .await;
        let inserted = match inserted {
            Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
                return Err(StoreError::NotFound(run_id.to_owned()).into());
            }
            other => other?,
        };
        tx.commit().await?;
        if inserted.len() == 1 {
            return Ok(());
        }
        let earlier = self.read_decisions(run_id).await?;
        Err(crate::store::answer_refused(run_id, decision, &earlier).into())
    }

    pub(super) async fn read_decisions(&self, run_id: &str) -> Outcome<Vec<Decision>> {
        let known: Option<i32> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound(run_id.to_owned()).into());
        }
        let rows = sqlx::query(
            "SELECT path, approved, \"by\", comment, at FROM approvals WHERE run_id = $1 \
             ORDER BY at, path",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let decision = |row: &PgRow| -> Result<Decision, sqlx::Error> {
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

    /// Adds each value the record does not hold yet, in one statement; answers the values
    /// that were new, in the order given.
    pub(super) async fn insert_records(
        &self,
        name: &str,
        run_id: &str,
        path: &str,
        values: &[String],
    ) -> Outcome<Vec<String>> {
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO records (name, value, run_id, path, at) \
             SELECT $1, v, $2, $3, $4 FROM unnest($5::text[]) AS v \
             ON CONFLICT (name, value) DO NOTHING RETURNING value",
        )
        .bind(name)
        .bind(run_id)
        .bind(path)
        .bind(now())
        .bind(values)
        .fetch_all(&self.pool)
        .await?;
        let mut added = Vec::with_capacity(inserted.len());
        for value in values {
            if inserted.contains(value) && !added.contains(value) {
                added.push(value.clone());
            }
        }
        Ok(added)
    }

    pub(super) async fn read_records(&self, name: &str) -> Outcome<Vec<RecordEntry>> {
        let rows = sqlx::query(
            "SELECT value, run_id, path, at FROM records WHERE name = $1 ORDER BY at, value",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let entry = |row: &PgRow| -> Result<RecordEntry, sqlx::Error> {
            Ok(RecordEntry {
                value: row.try_get("value")?,
                run_id: row.try_get("run_id")?,
                path: row.try_get("path")?,
                at: row.try_get("at")?,
            })
        };
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }

    /// Takes the lock in one upsert: inserted when free; updated only when the row is the
    /// caller's own or its lease has run out by the database's clock. Concurrent upserts of
    /// one name wait for each other on the row, and only the first finds it free.
    pub(super) async fn take_lock(
        &self,
        name: &str,
        holder: &LockHolder,
        lease: Duration,
    ) -> Outcome<LockAttempt> {
        for _ in 0..ATTEMPTS {
            let taken = sqlx::query(concat!(
                "INSERT INTO locks (name, run_id, step, runbook, pid, host, process_start, \
                 acquired_at, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ",
                db_now_ms!(),
                " + $9) ON CONFLICT (name) DO UPDATE SET \
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
            let held = sqlx::query(
                "SELECT name, run_id, step, runbook, pid, host, process_start, acquired_at, \
                 expires_at_ms FROM locks WHERE name = $1",
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
        let mut names: Vec<String> = sqlx::query_scalar(concat!(
            "UPDATE locks SET expires_at_ms = ",
            db_now_ms!(),
            " + $1 WHERE run_id = $2 AND expires_at_ms IS NOT NULL RETURNING name"
        ))
        .bind(to_i64(lease.as_millis() as u64))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        names.sort();
        Ok(names)
    }

    pub(super) async fn let_go_of_lock(&self, name: &str, holder: &LockHolder) -> Outcome<bool> {
        let released =
            sqlx::query("DELETE FROM locks WHERE name = $1 AND run_id = $2 AND step = $3")
                .bind(name)
                .bind(&holder.run_id)
                .bind(&holder.step)
                .execute(&self.pool)
                .await?;
        Ok(released.rows_affected() == 1)
    }

    pub(super) async fn keep_locks_unleased(&self, run_id: &str) -> Outcome<()> {
        sqlx::query("UPDATE locks SET expires_at_ms = NULL WHERE run_id = $1")
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

    /// The durations of `span` where it succeeded, in the `runs` latest succeeded runs of
    /// `runbook`, newest first.
    pub(super) async fn read_step_durations(
        &self,
        runbook: &str,
        span: StepSpan<'_>,
        runs: usize,
    ) -> Outcome<Vec<u64>> {
        let limit = i64::try_from(runs).unwrap_or(i64::MAX);
        if span.from == span.through {
            let durations: Vec<Option<i64>> = sqlx::query_scalar(
                "SELECT (e.body::jsonb ->> 'duration_ms')::bigint FROM events e \
                 JOIN runs r ON r.id = e.run_id \
                 WHERE e.run_id IN (SELECT id FROM runs WHERE runbook = $1 \
                                    AND status = 'succeeded' \
                                    ORDER BY created_at DESC, id DESC LIMIT $2) \
                   AND e.kind = 'step_ended' \
                   AND e.body::jsonb ->> 'path' = $3 \
                   AND e.body::jsonb ->> 'status' = 'succeeded' \
                 ORDER BY r.created_at DESC, r.id DESC, e.seq DESC",
            )
            .bind(runbook)
            .bind(limit)
            .bind(span.from)
            .fetch_all(&self.pool)
            .await?;
            return Ok(durations
                .into_iter()
                .flatten()
                .filter_map(|ms| u64::try_from(ms).ok())
                .collect());
        }
        // Timestamps are RFC 3339 in UTC with six fractional digits: they sort as text.
        let rows = sqlx::query(
            "SELECT \
               (SELECT MIN(s.at) FROM events s WHERE s.run_id = r.id \
                  AND s.kind IN ('step_started', 'step_expanded') \
                  AND s.body::jsonb ->> 'path' = $1) AS started, \
               (SELECT MAX(t.at) FROM events t WHERE t.run_id = r.id \
                  AND t.kind = 'step_ended' \
                  AND t.body::jsonb ->> 'path' = $2 \
                  AND t.body::jsonb ->> 'status' = 'succeeded') AS ended \
             FROM runs r WHERE r.runbook = $3 AND r.status = 'succeeded' \
             ORDER BY r.created_at DESC, r.id DESC LIMIT $4",
        )
        .bind(span.from)
        .bind(span.through)
        .bind(runbook)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut durations = Vec::with_capacity(rows.len());
        for row in &rows {
            let started: Option<String> = row.try_get("started")?;
            let ended: Option<String> = row.try_get("ended")?;
            let (Some(Ok(started)), Some(Ok(ended))) = (
                started.map(|at| at.parse::<jiff::Timestamp>()),
                ended.map(|at| at.parse::<jiff::Timestamp>()),
            ) else {
                continue;
            };
            if let Ok(ms) = u64::try_from(ended.as_millisecond() - started.as_millisecond()) {
                durations.push(ms);
            }
        }
        Ok(durations)
    }
}

fn held_from(row: &PgRow) -> Result<HeldLock, sqlx::Error> {
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
