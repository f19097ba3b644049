//! The journal and its leases: creating a run, appending events to its hash chain under the
//! writer's lease, reading them back; claiming, renewing and releasing a run.

use sqlx::{Postgres, QueryBuilder, Row};

use super::QUEUE_CHANNEL;
use super::{PostgresStore, corrupt, db_now_ms, lease_ms, to_i64};
use crate::event::timestamp::now;
use crate::event::{Envelope, RunEvent, RunFold, RunStatus};
use crate::store::rows::{owner_from, status_from};
use crate::store::sqlite::errors::{Failure, Outcome};
use crate::store::sqlite::journal::{StoredEvent, chain, encode, encode_batch, link, verify};
use crate::store::{Lease, NewRun, Owner, QUEUE_PATH, QUEUE_RECORD, StoreError};

/// Events per INSERT statement: 6 parameters each stays far below PostgreSQL's limit of
/// 65535 bound parameters.
const INSERT_CHUNK: usize = 500;

/// Between two tries of a write whose connection was lost: a restarting server needs a
/// moment before it accepts connections again.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether a database error means the connection went away (the server restarted, shut
/// down or crashed, or the network dropped), rather than an answer about the statement.
pub(super) fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            // admin_shutdown, crash_shutdown, cannot_connect_now; class 08: connection
            // exception.
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
        }),
        _ => false,
    }
}

impl PostgresStore {
    /// Creates a run with its first event: owned (its lease returned), or queued (no owner,
    /// listed in the queue's record; workers are woken on the queue's channel).
    pub(super) async fn insert_run(
        &self,
        run_id: &str,
        new: NewRun<'_>,
        first: &Envelope,
    ) -> Outcome<Option<Lease>> {
        let event = encode(run_id, first)?;
        let RunEvent::RunStarted { runbook, file, .. } = &first.event else {
            return Err(corrupt(
                run_id,
                format!(
                    "its first event must be `run_started`, not `{}`",
                    event.kind
                ),
            ));
        };
        if first.run_id != run_id {
            return Err(corrupt(
                run_id,
                format!("its first event belongs to run `{}`", first.run_id),
            ));
        }
        let chain = chain("", 1, run_id, &first.at, &event.body);
        let token = new_token();
        let now = now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, runbook, file, status, created_at, updated_at, last_seq, \
             last_chain) VALUES ($1, $2, $3, $6, $4, $4, 1, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(run_id)
        .bind(runbook)
        .bind(file)
        .bind(&now)
        .bind(&chain)
        .bind(new.status().name())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Exists(run_id.to_owned()).into());
        }
        match new {
            NewRun::Owned(owner) => set_owner(&mut tx, run_id, &token, owner).await?,
            NewRun::Queued => {
                sqlx::query(
                    "INSERT INTO records (name, value, run_id, path, at) \
                     VALUES ($1, $2, $2, $3, $4) ON CONFLICT (name, value) DO NOTHING",
                )
                .bind(QUEUE_RECORD)
                .bind(run_id)
                .bind(QUEUE_PATH)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                // Delivered at the commit: workers listening claim it at once.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(QUEUE_CHANNEL)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO events (run_id, seq, at, kind, body, chain) \
             VALUES ($1, 1, $2, $3, $4, $5)",
        )
        .bind(run_id)
        .bind(&first.at)
        .bind(&event.kind)
        .bind(&event.body)
        .bind(&chain)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match new {
            NewRun::Owned(owner) => Some(Lease {
                run_id: run_id.to_owned(),
                token,
                owner: owner.clone(),
            }),
            NewRun::Queued => None,
        })
    }

    /// Appends, waiting out a lost connection (a restart of the server, a failover): the
    /// transaction is tried again on a new connection for as long as a connection is waited
    /// for. A connection lost while the COMMIT was under way leaves it unknown whether the
    /// events were written; the retry first looks for the last event's chain link, which only
    /// these events can have made, so that they are never written twice nor taken for lost.
    pub(super) async fn append_events(
        &self,
        lease: &Lease,
        first_seq: u64,
        events: &[Envelope],
    ) -> Outcome<()> {
        let give_up = tokio::time::Instant::now() + super::CONNECT_TIMEOUT;
        let mut written_chain = None;
        loop {
            if let Some(chain) = &written_chain {
                match self
                    .chain_at(&lease.run_id, first_seq + events.len() as u64 - 1)
                    .await
                {
                    Ok(Some(stored)) if &stored == chain => return Ok(()),
                    Ok(_) => {}
                    Err(Failure::Sql(error))
                        if connection_lost(&error) && tokio::time::Instant::now() < give_up =>
                    {
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                    Err(failure) => return Err(failure),
                }
            }
            match self
                .append_once(lease, first_seq, events, &mut written_chain)
                .await
            {
                Err(Failure::Sql(error))
                    if connection_lost(&error) && tokio::time::Instant::now() < give_up =>
                {
                    tracing::debug!(
                        "the connection to the store was lost while appending: {error}; trying again"
                    );
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// The chain link stored with one event of a run, if it is there.
    async fn chain_at(&self, run_id: &str, seq: u64) -> Outcome<Option<String>> {
        let row = sqlx::query("SELECT chain FROM events WHERE run_id = $1 AND seq = $2")
            .bind(run_id)
            .bind(to_i64(seq))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("chain")?),
            None => None,
        })
    }

    /// One try at an append, in one transaction. `written_chain` is set to the last event's
    /// chain link just before the COMMIT is sent.
    async fn append_once(
        &self,
        lease: &Lease,
        first_seq: u64,
        events: &[Envelope],
        written_chain: &mut Option<String>,
    ) -> Outcome<()> {
        let run_id = lease.run_id.as_str();
        if events.is_empty() {
            return self.renew_lease(lease).await;
        }
        let encoded = encode_batch(run_id, first_seq, events)?;
        let mut tx = self.pool.begin().await?;
        // The run's row first, locked until the commit: appends and claims of one run take
        // their turns on it, always in this order, so they cannot deadlock.
        let run = sqlx::query(
            "SELECT last_seq, last_chain, status, ended_at, duration_ms FROM runs \
             WHERE id = $1 FOR UPDATE",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        // Fencing: the lease is checked, and renewed, in the transaction that writes. A
        // lease that ran out is lost even if nobody took the run yet: its holder was paused
        // or cut off, and cannot know that no other process resumed the run meanwhile.
        let renewed = sqlx::query(concat!(
            "UPDATE owners SET expires_at_ms = ",
            db_now_ms!(),
            " + $1 WHERE run_id = $2 AND token = $3 AND expires_at_ms >= ",
            db_now_ms!()
        ))
        .bind(lease_ms())
        .bind(run_id)
        .bind(&lease.token)
        .execute(&mut *tx)
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::LostOwnership(run_id.to_owned()).into());
        }
        let last_seq: i64 = run.try_get("last_seq")?;
        let mut last_chain: String = run.try_get("last_chain")?;
        let mut fold = RunFold {
            status: Some(status_from(run.try_get("status")?)?),
            ended_at: run.try_get("ended_at")?,
            duration_ms: run
                .try_get::<Option<i64>, _>("duration_ms")?
                .and_then(|ms| u64::try_from(ms).ok()),
            ..RunFold::default()
        };
        let rows = link(
            run_id,
            first_seq,
            last_seq,
            &mut last_chain,
            &mut fold,
            encoded,
            events,
        )?;
        let last_seq = last_seq + rows.len() as i64;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO events (run_id, seq, at, kind, body, chain) ",
            );
            insert.push_values(rows.by_ref().take(INSERT_CHUNK), |mut values, row| {
                let (seq, at, kind, body, chain) = row;
                values
                    .push_bind(run_id)
                    .push_bind(seq)
                    .push_bind(at)
                    .push_bind(kind)
                    .push_bind(body)
                    .push_bind(chain);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE runs SET last_seq = $1, last_chain = $2, updated_at = $3, status = $4, \
             ended_at = $5, duration_ms = $6 WHERE id = $7",
        )
        .bind(last_seq)
        .bind(&last_chain)
        .bind(now())
        .bind(fold.status.unwrap_or(RunStatus::Running).name())
        .bind(&fold.ended_at)
        .bind(fold.duration_ms.map(to_i64))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        *written_chain = Some(last_chain);
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn read_events(&self, run_id: &str) -> Outcome<Vec<Envelope>> {
        // One snapshot for the run's row and its events, even while another process appends.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let run = sqlx::query("SELECT last_seq, last_chain FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        let last_seq: i64 = run.try_get("last_seq")?;
        let last_chain: String = run.try_get("last_chain")?;
        let rows =
            sqlx::query("SELECT seq, at, body, chain FROM events WHERE run_id = $1 ORDER BY seq")
                .bind(run_id)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push(StoredEvent {
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
                body: row.try_get("body")?,
                chain: row.try_get("chain")?,
            });
        }
        Ok(verify(run_id, last_seq, &last_chain, stored)?)
    }

    /// Takes the run in one transaction that locks its row: of several processes claiming at
    /// once, one decides at a time, and the next sees its lease.
    pub(super) async fn claim_run(&self, run_id: &str, owner: &Owner) -> Outcome<Lease> {
        let mut tx = self.pool.begin().await?;
        // The lock first, in a statement of its own: the next statement reads the lease as
        // the claim before this one left it (a statement that waits for a row lock would
        // still see the other tables as they were when it began).
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        // The lease's row locked too: a renewal or release by its holder waits for this
        // claim, then finds its token gone, rather than slipping in between the look at the
        // lease and the takeover.
        let row = sqlx::query(concat!(
            "SELECT token, pid, host, process_start, since, \
             (expires_at_ms IS NULL OR expires_at_ms < ",
            db_now_ms!(),
            ") AS expired FROM owners WHERE run_id = $1 FOR UPDATE"
        ))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let token: Option<String> = row.try_get("token")?;
            let expired: bool = row.try_get("expired")?;
            if let (Some(_), Some(holder)) = (&token, owner_from(&row)?)
                && !expired
                && !holder.is_gone()
            {
                return Err(StoreError::Owned {
                    run_id: run_id.to_owned(),
                    owner: holder,
                }
                .into());
            }
        }
        let new_token = new_token();
        set_owner(&mut tx, run_id, &new_token, owner).await?;
        tx.commit().await?;
        Ok(Lease {
            run_id: run_id.to_owned(),
            token: new_token,
            owner: owner.clone(),
        })
    }

    pub(super) async fn renew_lease(&self, lease: &Lease) -> Outcome<()> {
        // A lease that ran out is not renewed: see the fencing of appends.
        let renewed = sqlx::query(concat!(
            "UPDATE owners SET expires_at_ms = ",
            db_now_ms!(),
            " + $1 WHERE run_id = $2 AND token = $3 AND expires_at_ms >= ",
            db_now_ms!()
        ))
        .bind(lease_ms())
        .bind(&lease.run_id)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::LostOwnership(lease.run_id.clone()).into());
        }
        Ok(())
    }

    pub(super) async fn release_lease(&self, lease: &Lease) -> Outcome<()> {
        // A lease already taken over is not ours to release: nothing to do.
        sqlx::query(
            "UPDATE owners SET token = NULL, expires_at_ms = NULL \
             WHERE run_id = $1 AND token = $2",
        )
        .bind(&lease.run_id)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Gives run `run_id` to `owner` under `token`, with a lease from now by the database's
/// clock, in the caller's transaction (which has locked the run's row).
pub(super) async fn set_owner(
    tx: &mut sqlx::PgConnection,
    run_id: &str,
    token: &str,
    owner: &Owner,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO owners (run_id, token, pid, host, process_start, since, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, ",
        db_now_ms!(),
        " + $7) ON CONFLICT (run_id) DO UPDATE SET token = excluded.token, \
         pid = excluded.pid, host = excluded.host, process_start = excluded.process_start, \
         since = excluded.since, expires_at_ms = excluded.expires_at_ms"
    ))
    .bind(run_id)
    .bind(token)
    .bind(i64::from(owner.pid))
    .bind(&owner.host)
    .bind(owner.process_start.map(to_i64))
    .bind(&owner.since)
    .bind(lease_ms())
    .execute(tx)
    .await?;
    Ok(())
}

/// A fresh lease token: 128 random bits in hex.
pub(super) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
