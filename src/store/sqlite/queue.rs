//! The queue: runs enqueued with `runbook run --queue`, claimed by `serve` workers. SQLite
//! has one writer at a time: a claim is one immediate transaction, and the next claim sees
//! the run taken.

use super::SqliteStore;
use super::errors::Outcome;
use super::leases::{new_token, set_owner};
use crate::store::{Lease, Owner};

impl SqliteStore {
    pub(super) async fn take_queued(&self, owner: &Owner) -> Outcome<Option<Lease>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let run_id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_id) = run_id else {
            return Ok(None);
        };
        let token = new_token();
        set_owner(&mut tx, &run_id, &token, owner).await?;
        sqlx::query("UPDATE runs SET status = 'running' WHERE id = ?")
            .bind(&run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            run_id,
            token,
            owner: owner.clone(),
        }))
    }
}
