//! The `records` table: named records that runs share (see [`crate::store::RecordEntry`]).

use sqlx::Row;

use super::errors::Outcome;
use super::{SqliteStore, now};
use crate::store::RecordEntry;

impl SqliteStore {
    /// Adds each value the record does not hold yet, in one transaction; answers the values
    /// that were new.
    pub(super) async fn insert_records(
        &self,
        name: &str,
        run_id: &str,
        path: &str,
        values: &[String],
    ) -> Outcome<Vec<String>> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let mut added = Vec::new();
        for value in values {
            let inserted = sqlx::query(
                "INSERT INTO records (name, value, run_id, path, at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (name, value) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .bind(run_id)
            .bind(path)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                added.push(value.clone());
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Every value of a record, oldest first.
    pub(super) async fn read_records(&self, name: &str) -> Outcome<Vec<RecordEntry>> {
        let rows = sqlx::query(
            "SELECT value, run_id, path, at FROM records WHERE name = ? ORDER BY at, value",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let entry = |row: &sqlx::sqlite::SqliteRow| -> Result<RecordEntry, sqlx::Error> {
            Ok(RecordEntry {
                value: row.try_get("value")?,
                run_id: row.try_get("run_id")?,
                path: row.try_get("path")?,
                at: row.try_get("at")?,
            })
        };
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }
}
