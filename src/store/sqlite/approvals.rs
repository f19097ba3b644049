//! Approvals: the answers to a run's questions.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::errors::Outcome;
use crate::store::{Decision, StoreError};

impl SqliteStore {
    pub(super) async fn record_decision(&self, run_id: &str, decision: &Decision) -> Outcome<()> {
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
