//! Approvals: the answers to a run's questions.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::errors::Outcome;
use crate::store::{Decision, StoreError};

impl SqliteStore {
    pub(super) async fn record_decision(
        &self,
        run_id: &str,
        decision: &Decision,
        needed: u32,
    ) -> Outcome<()> {
        // One statement, so that two people answering at once cannot both complete a quorum:
        // SQLite runs one writer at a time, and the statement reads what it checks under the
        // write lock it takes.
        let inserted = sqlx::query(
            "INSERT INTO approvals (run_id, path, approved, \"by\", comment, at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
             WHERE NOT EXISTS (SELECT 1 FROM approvals WHERE run_id = ?1 AND path = ?2 \
                               AND (approved = 0 OR \"by\" = ?4)) \
               AND (SELECT COUNT(*) FROM approvals WHERE run_id = ?1 AND path = ?2) < ?7",
        )
        .bind(run_id)
        .bind(&decision.path)
        .bind(decision.approved)
        .bind(&decision.by)
        .bind(&decision.comment)
        .bind(&decision.at)
        .bind(i64::from(needed.max(1)))
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
        let earlier = self.read_decisions(run_id).await?;
        Err(crate::store::answer_refused(run_id, decision, &earlier).into())
    }

    pub(super) async fn read_decisions(&self, run_id: &str) -> Outcome<Vec<Decision>> {
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
