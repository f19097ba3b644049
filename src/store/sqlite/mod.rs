//! The embedded default store: one SQLite file in write-ahead-log mode.
//!
//! Each run's events are rows numbered from 1 and chained by SHA-256, so that reading a run
//! notices an event changed or lost underneath SQLite (a damaged page it does not detect
//! itself). Every append is one transaction that first renews the writer's lease, so a
//! process whose run was taken over can no longer write; with `synchronous=FULL` a commit
//! that returns is on disk. Several processes may share the file: SQLite lets one write at a
//! time, and each waits up to [`BUSY_TIMEOUT`] for the others.

use super::{
    Decision, HeldLock, Lease, LockAttempt, LockHolder, Owner, RecordEntry, RunSummary, StepSpan,
    Store, StoreFuture,
};
use crate::event::Envelope;

use sqlx::sqlite::SqlitePool;
use std::time::Duration;

/// How long a statement waits for another process's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process: one writer at a time is all SQLite allows, and readers are few.
const MAX_CONNECTIONS: u32 = 4;

/// Times a contested step (migrating a new file, a claim that lost a race) is tried.
const ATTEMPTS: u32 = 3;

/// A run with its current lease holder, if any (a macro, so that queries can extend it and
/// stay static text).
macro_rules! summary {
    () => {
        "SELECT r.id, r.runbook, r.file, r.status, r.created_at, r.updated_at, r.ended_at, \
         r.duration_ms, o.pid, o.host, o.process_start, o.since \
         FROM runs r LEFT JOIN owners o ON o.run_id = r.id AND o.token IS NOT NULL"
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
}

mod approvals;
mod durations;
mod errors;
mod journal;
pub use journal::chain_head;
mod leases;
mod locks;
mod open;
mod records;
mod summaries;
#[cfg(test)]
mod tests;

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a Owner,
        first: &'a Envelope,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            self.create_run(run_id, owner, first)
                .await
                .map_err(|f| self.explain(f, || format!("creating run `{run_id}`")))
        })
    }

    fn claim<'a>(&'a self, run_id: &'a str, owner: &'a Owner) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            self.claim_run(run_id, owner)
                .await
                .map_err(|f| self.explain(f, || format!("claiming run `{run_id}`")))
        })
    }

    fn renew<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.renew_lease(lease).await.map_err(|f| {
                self.explain(f, || {
                    format!("renewing the lease on run `{}`", lease.run_id)
                })
            })
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.release_lease(lease).await.map_err(|f| {
                self.explain(f, || {
                    format!("releasing the lease on run `{}`", lease.run_id)
                })
            })
        })
    }

    fn append<'a>(
        &'a self,
        lease: &'a Lease,
        first_seq: u64,
        events: &'a [Envelope],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.append_events(lease, first_seq, events)
                .await
                .map_err(|f| self.explain(f, || format!("appending to run `{}`", lease.run_id)))
        })
    }

    fn events<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            self.read_events(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
        })
    }

    fn run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunSummary> {
        Box::pin(async move {
            self.summary(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
        })
    }

    fn runs<'a>(&'a self) -> StoreFuture<'a, Vec<RunSummary>> {
        Box::pin(async move {
            self.summaries()
                .await
                .map_err(|f| self.explain(f, || "listing runs".to_owned()))
        })
    }

    fn prune<'a>(&'a self, ended_before: &'a str) -> StoreFuture<'a, Vec<RunSummary>> {
        Box::pin(async move {
            self.delete_ended_before(ended_before)
                .await
                .map_err(|f| self.explain(f, || "pruning old runs".to_owned()))
        })
    }

    fn decide<'a>(&'a self, run_id: &'a str, decision: &'a Decision) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.record_decision(run_id, decision).await.map_err(|f| {
                self.explain(f, || {
                    format!(
                        "recording the answer to `{}` of run `{run_id}`",
                        decision.path
                    )
                })
            })
        })
    }

    fn acquire_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a LockHolder,
        lease: Duration,
    ) -> StoreFuture<'a, LockAttempt> {
        Box::pin(async move {
            self.take_lock(name, holder, lease)
                .await
                .map_err(|f| self.explain(f, || format!("taking lock `{name}`")))
        })
    }

    fn renew_locks<'a>(&'a self, run_id: &'a str, lease: Duration) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.extend_locks(run_id, lease)
                .await
                .map_err(|f| self.explain(f, || format!("renewing the locks of run `{run_id}`")))
        })
    }

    fn release_lock<'a>(&'a self, name: &'a str, holder: &'a LockHolder) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.let_go_of_lock(name, holder)
                .await
                .map_err(|f| self.explain(f, || format!("releasing lock `{name}`")))
        })
    }

    fn keep_locks<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.keep_locks_unleased(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("keeping the locks of run `{run_id}`")))
        })
    }

    fn locks(&self) -> StoreFuture<'_, Vec<HeldLock>> {
        Box::pin(async move {
            self.held_locks()
                .await
                .map_err(|f| self.explain(f, || "listing locks".to_owned()))
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }

    fn add_records<'a>(
        &'a self,
        name: &'a str,
        run_id: &'a str,
        path: &'a str,
        values: &'a [String],
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.insert_records(name, run_id, path, values)
                .await
                .map_err(|f| self.explain(f, || format!("adding to record `{name}`")))
        })
    }

    fn records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<RecordEntry>> {
        Box::pin(async move {
            self.read_records(name)
                .await
                .map_err(|f| self.explain(f, || format!("reading record `{name}`")))
        })
    }

    fn step_durations<'a>(
        &'a self,
        runbook: &'a str,
        span: StepSpan<'a>,
        runs: usize,
    ) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            self.read_step_durations(runbook, span, runs)
                .await
                .map_err(|f| {
                    self.explain(f, || {
                        format!("reading the durations of step `{}`", span.from)
                    })
                })
        })
    }

    fn decisions<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Decision>> {
        Box::pin(async move {
            self.read_decisions(run_id)
                .await
                .map_err(|f| self.explain(f, || format!("reading the answers of run `{run_id}`")))
        })
    }
}

/// Now, with microseconds always written out, so that text order is time order.
fn now() -> String {
    crate::event::timestamp::now()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// SQLite integers are signed; the values stored here (tick counts, milliseconds) are far
/// below the limit, and a larger one is kept at the limit rather than wrapped.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
