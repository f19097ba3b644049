use crate::engine::seal::SecretKey;
use crate::engine::{self, RunConfig, RunOutcome};
use crate::event::{Envelope, EventSink};
use crate::process::{RunMark, RunProcesses};
use crate::runbook::validate::Bundle;
use crate::store::{Journal, Lease, Store, StoreError};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A run this process owns (created by [`start`](super::start) or claimed by
/// [`resume`](super::resume)), ready to go.
pub struct ClaimedRun {
    pub(super) bundle: Arc<Bundle>,
    pub(super) run_id: String,
    pub(super) inputs: Map<String, Value>,
    pub(super) secrets: HashMap<PathBuf, Map<String, Value>>,
    pub(super) max_parallel: Option<u32>,
    pub(super) store: Arc<dyn Store>,
    pub(super) lease: Lease,
    /// The journal so far; the next event is number `prior.len() + 1`.
    pub(super) prior: Vec<Envelope>,
    pub(super) resumed_by: Option<String>,
    pub(super) secret_key: Option<SecretKey>,
    /// Its step processes: marked with the run and supervised, apart from any other run.
    pub(super) processes: RunProcesses,
    /// When the run's window (of this segment) closes.
    pub(super) window_until: Option<jiff::Timestamp>,
}

/// How the caller follows and steers a run.
pub struct Watch {
    /// Receives every event as it happens, inline: it must be quick.
    pub sink: Arc<dyn EventSink>,
    /// Cancelling it interrupts the run: running steps are cancelled, `finally` runs, and
    /// the run is parked `interrupted`, to be resumed.
    pub interrupt: CancellationToken,
}

/// How a run ended (or parked), once this process has let go of it.
pub struct RunResult {
    pub run_id: String,
    pub outcome: RunOutcome,
    /// Set when the journal could not be written (or closed): the run stopped where it was,
    /// everything recorded before is intact, and it can be resumed once the store works.
    pub journal_error: Option<Arc<StoreError>>,
}

impl ClaimedRun {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's step processes, to kill them all at once when leaving now (a second
    /// Ctrl-C). Only this run's: other runs of the process are left alone.
    pub fn processes(&self) -> &RunProcesses {
        &self.processes
    }

    /// Names the person who asked for this resume (from a web page, say) besides the
    /// process that runs it: the journal's `run_resumed` says `otto via pid 4242 on host-a`.
    /// A new run is left as it is: its `run_started` says who started it.
    pub fn asked_by(mut self, person: &str) -> ClaimedRun {
        self.resumed_by = self
            .resumed_by
            .map(|process| format!("{person} via {process}"));
        self
    }

    /// Has the run's step processes supervised by `program` rather than by this program.
    /// `program __supervise MARK` must serve as the runbook binary does: for a program that
    /// embeds the library without the command line (a test harness).
    pub fn supervised_by(mut self, program: impl Into<PathBuf>) -> ClaimedRun {
        self.processes = run_processes(&self.run_id, &self.prior, program);
        self
    }

    /// Has the run's journal written on the thread that runs it (see
    /// [`Store::append_on_calling_thread`]): for a process that runs this one run only.
    pub async fn append_on_its_thread(&self) {
        // A store that cannot only goes on as before.
        let _ = self.store.append_on_calling_thread().await;
    }

    /// Runs until the run ends or parks, then releases it and closes the store.
    pub async fn execute(self, watch: Watch) -> RunResult {
        let taken_up_at = self.lease.owner.since.clone();
        // The journal is written on the run's own thread: see `Journal::with_writer`.
        let (journal, writer) =
            Journal::with_writer(self.store.clone(), self.lease, self.prior.len() as u64 + 1);
        let journal = Arc::new(journal);
        let run_id = self.run_id;
        let config = RunConfig {
            run_id: run_id.clone(),
            inputs: self.inputs,
            secrets: self.secrets,
            max_parallel: self.max_parallel.map(|n| n as usize),
            interrupt: watch.interrupt,
            journal: journal.clone(),
            prior: self.prior,
            resumed_by: self.resumed_by,
            store: Some(self.store.clone()),
            secret_key: self.secret_key,
            processes: self.processes.clone(),
            window_until: self.window_until,
            taken_up_at,
        };
        let run = async {
            let outcome = engine::run(self.bundle, config, watch.sink).await;
            // Waits for the supervisor to stop what the run left behind (a process that
            // escaped its step's process group) before the run is reported over.
            let processes = self.processes;
            let _ = tokio::task::spawn_blocking(move || processes.finish()).await;
            let closed = journal.close().await;
            (outcome, closed)
        };
        let ((outcome, closed), ()) = tokio::join!(run, writer);
        let _ = self.store.close().await;
        let journal_error = outcome.journal_error.clone().or(closed.err());
        RunResult {
            run_id,
            outcome,
            journal_error,
        }
    }
}

/// The processes of a run whose journal starts with `prior`: every step command from now on
/// is tied to this process, and when it ends, however it ends, so do they.
pub(super) fn run_processes(
    run_id: &str,
    prior: &[Envelope],
    program: impl Into<PathBuf>,
) -> RunProcesses {
    match prior.first() {
        Some(first) => RunProcesses::supervised(run_id, RunMark::new(run_id, &first.at), program),
        None => RunProcesses::default(),
    }
}
