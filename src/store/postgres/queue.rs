//! The queue: runs enqueued with `runbook run --queue`, claimed by `serve` workers. Of
//! several workers claiming at once, each locks the oldest queued run that no other claim
//! holds (`FOR UPDATE SKIP LOCKED`): they never wait for each other, nor take one run twice.

use super::PostgresStore;
use crate::store::sqlite::errors::Outcome;
use crate::store::{Lease, Owner};

impl PostgresStore {
    pub(super) async fn take_queued(&self, owner: &Owner) -> Outcome<Option<Lease>> {
        let mut tx = self.pool.begin().await?;
        let run_id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1 \
             FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_id) = run_id else {
            return Ok(None);
        };
        let token = super::journal::new_token();
        super::journal::set_owner(&mut tx, &run_id, &token, owner).await?;
        sqlx::query("UPDATE runs SET status = 'running' WHERE id = $1")
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
