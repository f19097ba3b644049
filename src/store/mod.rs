//! Where runs are kept: for each run an append-only journal of its events, who owns it, and
//! the approvals given to it. The engine speaks only to the [`Store`] trait; SQLite is the
//! embedded default, and a shared database can implement the same trait.
//!
//! A store knows nothing of steps: it keeps events in order, durably, and reads the run-level
//! ones (created, resumed, ended) to keep its list of runs current.

mod answer_refused;
mod forward;
pub mod journal;
pub mod location;
mod lock;
mod migrations;
pub mod owner;
pub mod postgres;
mod record;
mod rows;
mod run_lease;
pub mod sqlite;
mod wakeups;
mod wal;

#[cfg(test)]
pub(crate) mod conformance;

pub(crate) use answer_refused::answer_refused;
pub use journal::{Durable, Journal};
pub use location::{StoreLocation, open, open_existing};
pub use lock::{HeldLock, LockAttempt, LockHolder};
pub use owner::Owner;
pub use record::RecordEntry;
pub use wakeups::{Wakeups, wakeups};

use crate::event::{Envelope, RunStatus};
use futures::future::BoxFuture;

/// What every store operation returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

pub use run_lease::{
    DEFAULT_RUN_LEASE, RUN_LEASE_VARIABLE, parse_run_lease, run_lease, set_run_lease,
};

/// The shared record that lists every run that went through the queue: the runs `serve`
/// workers take over when their owner's lease runs out.
pub const QUEUE_RECORD: &str = "serve.queue";

/// The `path` of the queue's record entries, where a step path would be.
pub const QUEUE_PATH: &str = "queue";

/// The right to append to one run's journal, held by one process at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub run_id: String,
    /// Random and unique per claim: appends and renewals name it, so a process whose lease
    /// was taken over can no longer write.
    pub token: String,
    pub owner: Owner,
}

/// How a run is created: owned by the process that runs it, or queued for a worker.
#[derive(Debug, Clone, Copy)]
pub enum NewRun<'a> {
    Owned(&'a Owner),
    Queued,
}

impl NewRun<'_> {
    /// The status its row starts with.
    pub fn status(self) -> RunStatus {
        match self {
            NewRun::Owned(_) => RunStatus::Running,
            NewRun::Queued => RunStatus::Queued,
        }
    }
}

/// One line of `runbook runs list`.
/// Which runs [`Store::runs_page`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsPage {
    /// Only runs of the runbook with this `name`.
    pub runbook: Option<String>,
    /// The page starts after this run (in newest-first order).
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub id: String,
    /// The runbook's `name`.
    pub runbook: String,
    /// The runbook file as it was given to `runbook run`.
    pub file: String,
    /// The status the journal last recorded. A `running` run whose owner is gone was
    /// interrupted by a crash; [`RunSummary::owner`] tells.
    pub status: RunStatus,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    /// Total time the run's processes spent on it, once it has ended.
    pub duration_ms: Option<u64>,
    /// The current holder of the lease, if any (a released lease is none).
    pub owner: Option<Owner>,
    /// The link of the run's last event as the store keeps it: the head of its hash chain
    /// (hex SHA-256). A report shows it so that a copy of the journal can be checked against
    /// it later; it is read, not recomputed, since older events were linked in an older form.
    pub chain_head: String,
}

/// A person's answer to an `approval` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The step path, as in events: `go_ahead`, `jobs[1]/confirm`.
    pub path: String,
    pub approved: bool,
    /// Who answered: `user@host` unless they said otherwise.
    pub by: String,
    pub comment: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no run `{0}` in the store")]
    NotFound(String),
    #[error("a run `{0}` already exists in the store")]
    Exists(String),
    #[error("run `{run_id}` is owned by {owner}")]
    Owned { run_id: String, owner: Owner },
    #[error(
        "this process no longer owns run `{0}`: its lease ran out (the process was paused or \
         cut off from the store) or another process took the run over; it stops here"
    )]
    LostOwnership(String),
    #[error("the journal of run `{run_id}` is corrupt: {detail}")]
    Corrupt { run_id: String, detail: String },
    /// The store's own files are damaged (a torn write-ahead log, a damaged page): refusing
    /// is the only safe answer, since resuming would repeat or skip recorded work.
    #[error("the store {location} is damaged: {detail}")]
    Damaged { location: String, detail: String },
    #[error("the store is full: {0}")]
    Full(String),
    #[error("step `{path}` of run `{run_id}` was already answered by {by}")]
    AlreadyDecided {
        run_id: String,
        path: String,
        by: String,
    },
    /// One person answers a step that asks several people at most once.
    #[error("{by} has already answered step `{path}` of run `{run_id}`")]
    AlreadyAnsweredBy {
        run_id: String,
        path: String,
        by: String,
    },
    #[error("{0}")]
    Location(String),
    /// A command that reads or answers runs names a store that was never created: it is
    /// not created for it, since an empty store would only hide the mistake.
    #[error("there is no store at {0}: the file does not exist (check --store or RUNBOOK_STORE)")]
    Missing(String),
    #[error("the store {location}: {detail}")]
    Database { location: String, detail: String },
}

/// What an earlier duration measures: one step (`from` and `through` the same path), or from
/// the first start of step `from` to the last succeeded end of step `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpan<'a> {
    pub from: &'a str,
    pub through: &'a str,
}

impl<'a> StepSpan<'a> {
    /// One step's own durations.
    pub fn step(path: &'a str) -> Self {
        StepSpan {
            from: path,
            through: path,
        }
    }
}

/// Durable storage of runs. Every method is safe to call from several processes at once.
pub trait Store: Send + Sync {
    /// Where the store is, for messages: `sqlite:/home/me/.local/state/runbook/runbook.db`.
    fn location(&self) -> String;

    /// Creates run `run_id` with its first event (a `run_started`), owned by `owner`.
    /// [`StoreError::Exists`] if the id is taken.
    fn create<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a Owner,
        first: &'a Envelope,
    ) -> StoreFuture<'a, Lease>;

    /// Creates run `run_id` with its first event (a `run_started`), queued: status `queued`,
    /// no owner, listed in the record [`QUEUE_RECORD`], until a worker takes it with
    /// [`Store::claim_queued`]. [`StoreError::Exists`] if the id is taken.
    fn enqueue<'a>(&'a self, run_id: &'a str, first: &'a Envelope) -> StoreFuture<'a, ()>;

    /// Takes the oldest queued run for `owner`, which becomes `running` under its lease;
    /// `None` when nothing is queued. Of several workers claiming at once, each gets a
    /// different run (PostgreSQL skips the rows another claim has locked).
    fn claim_queued<'a>(&'a self, owner: &'a Owner) -> StoreFuture<'a, Option<Lease>>;

    /// Takes ownership of an existing run. Refused with [`StoreError::Owned`] while another
    /// owner holds a lease that has not expired and, on this host, while that process lives.
    fn claim<'a>(&'a self, run_id: &'a str, owner: &'a Owner) -> StoreFuture<'a, Lease>;

    /// Extends the lease by [`run_lease`]. [`StoreError::LostOwnership`] when another process
    /// has taken the run over.
    fn renew<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()>;

    /// Gives up the lease so that another process may resume at once.
    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()>;

    /// Appends events as numbers `first_seq`, `first_seq + 1`, ... in one durable
    /// transaction: when this returns `Ok`, all of them survive a crash or a power cut;
    /// when it returns `Err`, none was written. Renews the lease as it goes;
    /// [`StoreError::LostOwnership`] if the lease is no longer this one.
    fn append<'a>(
        &'a self,
        lease: &'a Lease,
        first_seq: u64,
        events: &'a [Envelope],
    ) -> StoreFuture<'a, ()>;

    /// From now on, writes a chain's small appends (a step ending and the next starting) on
    /// the calling thread, which blocks until their commit and its disk sync, instead of
    /// handing them to a thread of the store's and waiting to be woken: for a process that
    /// runs one run and has nothing else for its thread to do meanwhile (`runbook run`,
    /// `runbook resume`), never for one whose thread carries other work (`serve`). What is
    /// durable, and the fencing of the lease, are the same either way. A store without such
    /// a path goes on as before.
    fn append_on_calling_thread(&self) -> StoreFuture<'_, ()>;

    /// Every event of a run, in order, checked: numbers without gaps from 1, and each event
    /// as it was written ([`StoreError::Corrupt`] otherwise).
    fn events<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Envelope>>;

    /// The events of a run after number `after` (0: every event), in order, checked as
    /// [`Store::events`] checks them: what a live view reads at each look. The default reads
    /// every event; a store may read only the new ones.
    fn events_after<'a>(&'a self, run_id: &'a str, after: u64) -> StoreFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            let mut events = self.events(run_id).await?;
            let skipped = (after as usize).min(events.len());
            events.drain(..skipped);
            Ok(events)
        })
    }

    /// One run's summary.
    fn run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunSummary>;

    /// Every run, newest first.
    fn runs<'a>(&'a self) -> StoreFuture<'a, Vec<RunSummary>>;

    /// A page of runs, newest first (as [`Store::runs`] orders them): those of one runbook
    /// when `page.runbook` says, from after the run `page.after` (none when that run is
    /// unknown), at most `page.limit`. A list of a few runs out of many reads only those.
    fn runs_page<'a>(&'a self, page: &'a RunsPage) -> StoreFuture<'a, Vec<RunSummary>>;

    /// The runs of the queue (listed in the record [`QUEUE_RECORD`]) that have not ended:
    /// queued, running, interrupted, waiting or parked; newest first. What `serve` looks at
    /// every second to take runs over, read without the runs that are over, however many the
    /// store keeps.
    fn queue_not_over(&self) -> StoreFuture<'_, Vec<RunSummary>>;

    /// Deletes every run that is over (succeeded, failed or cancelled) and ended before
    /// `ended_before` (RFC 3339, UTC), with its events, owner and answers, then gives the
    /// space back. Never a run that is running (or was, until its process died), parked
    /// (interrupted, waiting, parked) or held by an owner. Returns the runs deleted, oldest first.
    fn prune<'a>(&'a self, ended_before: &'a str) -> StoreFuture<'a, Vec<RunSummary>>;

    /// Records a person's answer to an approval step that asks for `needed` distinct
    /// approvals, in one atomic step: refused with [`StoreError::AlreadyDecided`] once the
    /// step is settled (a rejection, or `needed` approvals), and with
    /// [`StoreError::AlreadyAnsweredBy`] when this person has answered it already. Needs no
    /// lease: the run's owner reads answers with [`Store::decisions`] and journals them itself.
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        decision: &'a Decision,
        needed: u32,
    ) -> StoreFuture<'a, ()>;

    /// Every answer given to a run's approval steps.
    fn decisions<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Decision>>;

    /// Adds values to the named record that all runs share, as added now by step `path` of
    /// run `run_id`; a value already there keeps its first entry. Answers the values that
    /// were new. Needs no lease.
    fn add_records<'a>(
        &'a self,
        name: &'a str,
        run_id: &'a str,
        path: &'a str,
        values: &'a [String],
    ) -> StoreFuture<'a, Vec<String>>;

    /// Every value of a named record, oldest first (none for a record never written).
    fn records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<RecordEntry>>;

    /// Takes lock `name` for `holder` with a lease of `lease`, in one atomic step: when
    /// nobody holds it, when `holder` already does (a resumed run takes its locks again),
    /// or when the holder's lease has run out by the store's clock. Otherwise answers who
    /// holds it. Needs no run lease: a lock is not part of a journal.
    fn acquire_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a LockHolder,
        lease: std::time::Duration,
    ) -> StoreFuture<'a, LockAttempt>;

    /// Extends by `lease` every lock that run `run_id` holds with a lease; answers the names
    /// it still holds (a lock missing from them was lost: its lease ran out and another run
    /// took it).
    fn renew_locks<'a>(
        &'a self,
        run_id: &'a str,
        lease: std::time::Duration,
    ) -> StoreFuture<'a, Vec<String>>;

    /// Lets go of lock `name` if `holder` holds it; answers whether it did.
    fn release_lock<'a>(&'a self, name: &'a str, holder: &'a LockHolder) -> StoreFuture<'a, bool>;

    /// Keeps every lock run `run_id` holds without a lease, while the run is parked waiting
    /// for an approval and no process renews them; they stay its until it is resumed (which
    /// takes them again, with a lease) and ends.
    fn keep_locks<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, ()>;

    /// Every lock held now (a lease that ran out is not held), by name.
    fn locks(&self) -> StoreFuture<'_, Vec<HeldLock>>;

    /// The durations (milliseconds) of `span` where it succeeded, in the `runs` latest
    /// succeeded runs of the runbook named `runbook`, newest first: what `needs: auto`
    /// reads. A run that did not succeed says nothing of how long the work takes.
    fn step_durations<'a>(
        &'a self,
        runbook: &'a str,
        span: StepSpan<'a>,
        runs: usize,
    ) -> StoreFuture<'a, Vec<u64>>;

    /// Finishes with the store: waits for connections to close, so that SQLite folds its
    /// write-ahead log back into the database file when no other process uses it.
    fn close(&self) -> StoreFuture<'_, ()>;
}
