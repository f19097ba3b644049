//! The executor: runs a validated bundle as a DAG of steps on tokio.
//!
//! Every change of state is an event; the executor folds its own state from the events it
//! emits (see [`RunState`]), so a journal of them is enough to rebuild a run.

mod approval;
mod attempt;
mod context;
mod controls;
mod emit;
mod locks;
mod notice;
mod record;
mod resume;
mod schedule;
mod step;
mod undo;
mod uses;
mod window;

use super::limits;
use super::redact::{Redact, Redactor, Revealed};
use super::retry::RetryPolicy;
use super::seal::{OpenError, RunKey, SecretKey};
use super::state::{RunState, StepRecord};
use crate::actions::{ActionError, ActionErrorKind, ActionInput, action_for};
use crate::event::{Envelope, EventSink, RunEvent, RunStatus, Sealed, StepStatus, Via};
use crate::process::RunProcesses;
use crate::runbook::dag::{Dag, Section};
use crate::runbook::load::Loaded;
use crate::runbook::validate::Bundle;
use crate::runbook::{
    ActionRef, Approval, Fallback, Poll, Retry, Spanned, SpannedMap, Step, Verify,
};
use crate::store::{Durable, Journal, Store, StoreError};
use crate::template::{self, Escape, jq};
use attempt::Phase;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jaq_json::Val;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Deadline,
    Interrupted,
    /// Every step still running waits for an approval.
    Parked,
    /// The journal cannot be written: nothing more may happen that it could not record.
    Journal,
    /// A step reads a value the journal keeps encrypted, and this process has no key that
    /// opens it: the run waits for a resume with the key.
    Withheld,
    /// A lock the run held was lost (its lease ran out): what it protects is no longer
    /// protected, so the run stops, interrupted, to be resumed.
    LockLost,
    /// A gated step had less time left in the run's window than it needs, and the runbook
    /// parks (`on_window_close: park`): nothing more starts, running steps finish.
    WindowClosed,
    /// A person paused the run (`runbook pause`): nothing more starts; running steps finish,
    /// or are interrupted when the pause says now. The run parks `interrupted`.
    Paused,
    /// A person aborted the run (`runbook abort`): nothing more starts, running steps are
    /// interrupted, the run is undone when the abort says so, `finally` runs, and the run
    /// ends `cancelled` (or how its undo ended).
    Aborted,
}

/// What a run needs besides the runbook.
pub struct RunConfig {
    pub run_id: String,
    /// Inputs of the root runbook, already checked against their types.
    pub inputs: Map<String, Value>,
    /// Resolved secrets of every runbook in the bundle, by canonical path.
    pub secrets: HashMap<PathBuf, Map<String, Value>>,
    /// Overrides the runbook's `max_parallel`.
    pub max_parallel: Option<usize>,
    /// Cancelled on Ctrl-C or SIGTERM: running steps stop, `finally` runs, the run is
    /// left interrupted.
    pub interrupt: CancellationToken,
    /// Where events are made durable.
    pub journal: Arc<Journal>,
    /// The journal so far: the run's first event for a new run, everything for a resumed one.
    /// The run starts from its fold.
    pub prior: Vec<Envelope>,
    /// Set when this process resumes the run: who it is, for the `run_resumed` event.
    pub resumed_by: Option<String>,
    /// Where approval answers are read; without one, an approval step fails.
    pub store: Option<Arc<dyn Store>>,
    /// Encrypts the values that carried a secret in the journal, so that a resumed run can
    /// read them; without one they are kept masked only.
    pub secret_key: Option<SecretKey>,
    /// The run's step processes: marked and supervised for a run the application layer
    /// claimed, only grouped with the default.
    pub processes: RunProcesses,
    /// When this run's window (of this segment, for a resumed run) closes: steps with a
    /// `window` start only while they fit before it. `None`: nothing is gated.
    pub window_until: Option<jiff::Timestamp>,
    /// When this process took the run up (RFC 3339, as its lease says): pause and abort
    /// requests made before were meant for an earlier process. The lease's time, not the
    /// moment the run starts here: a person sees the run live from the claim on, and a
    /// request made in between is for this process.
    pub taken_up_at: String,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub reason: Option<String>,
    pub outputs: Value,
    pub state: RunState,
    /// Set when the journal could not be written: the run stopped where it was, and can be
    /// resumed once the store works again.
    pub journal_error: Option<Arc<StoreError>>,
}

/// The whole executor: shared by every step of a run.
struct Run {
    bundle: Arc<Bundle>,
    run_id: String,
    runbook_name: String,
    started_at: String,
    started: Instant,
    secrets: HashMap<PathBuf, Map<String, Value>>,
    redactor: Redactor,
    run_key: Option<RunKey>,
    /// Some values of the journal could not be opened: steps must be checked before they
    /// read them. Only a resume finds this, before the run goes on.
    any_withheld: bool,
    /// Why the run stopped for [`StopReason::Withheld`].
    withheld_reason: Mutex<Option<String>>,
    halt: CancellationToken,
    sink: Arc<dyn EventSink>,
    state: Mutex<RunState>,
    /// Bounds how many actions run at once, run-wide.
    permits: Semaphore,
    /// Set once something has failed the run.
    failed: Mutex<bool>,
    stop: Mutex<Option<StopReason>>,
    /// Set when the root runbook's `finally` starts.
    finishing: Mutex<bool>,
    /// Compiled jq programs by source: compiling costs far more than running, and the same
    /// expression runs for every item, poll and attempt.
    programs: Mutex<HashMap<String, Arc<jq::Program>>>,
    /// What the context's entries of steps share.
    shared_entries: context::SharedEntries,
    /// The context's `run`, by the run's status: the rest of it does not change.
    run_vals: Mutex<HashMap<&'static str, Val>>,
    /// What each step's templates read of `steps`, worked out once per step.
    template_refs: Mutex<HashMap<usize, Option<Vec<String>>>>,
    journal: Arc<Journal>,
    store: Option<Arc<dyn Store>>,
    processes: RunProcesses,
    /// Steps that were in flight when the run was resumed: `verify` probes them first.
    in_flight: Mutex<HashSet<String>>,
    /// Step instances under way, not counting `uses` steps (their own steps count), and how
    /// many of those wait for an approval; `activity` changes whenever a step is scheduled or
    /// ends. A run parks when every step under way waits and nothing has moved for a while.
    busy: AtomicUsize,
    waiting: Mutex<BTreeSet<String>>,
    activity: AtomicU64,
    park: CancellationToken,
    /// The locks shared across runs that this process holds for the run.
    locks: locks::RunLocks,
    /// When the window closes, if the run has one.
    window_until: Option<jiff::Timestamp>,
    on_window_close: crate::runbook::OnWindowClose,
    /// Why the run parks for its window, once a gate decided so.
    window_parked: Mutex<Option<String>>,
    /// What a gate said when it failed a step (`on_window_close: fail`): the run's reason.
    window_failure: Mutex<Option<String>>,
    /// The pause request this process picked up, if any.
    paused: Mutex<Option<crate::event::PauseRequest>>,
    /// When this process took the run up (RFC 3339): older pause requests are not for it.
    taken_up_at: String,
    /// Cancelled on Ctrl-C or SIGTERM: an undo under way stops, to be resumed.
    interrupt: CancellationToken,
    /// The abort this run obeys: from its journal, or picked up from the store while it ran.
    aborted: Mutex<Option<crate::event::AbortRequest>>,
    /// How the undo of the run went, once it ran.
    undo_outcome: Mutex<Option<undo::UndoOutcome>>,
    /// The root runbook's `on_failure`.
    on_failure: crate::runbook::OnFailure,
}

/// Runs a bundle to its end (or until stopped) and returns how it ended. The run starts
/// from the fold of `config.prior`: a new run and a resumed one take the same path.
pub async fn run(bundle: Arc<Bundle>, config: RunConfig, sink: Arc<dyn EventSink>) -> RunOutcome {
    let root = bundle.root().expect("a valid bundle has its root runbook");
    let runbook = &root.runbook;
    let redactor = Redactor::new(
        config
            .secrets
            .values()
            .flat_map(|m| m.values())
            .filter_map(|v| v.as_str().map(str::to_owned)),
    );
    let max_parallel = config
        .max_parallel
        .or(runbook.max_parallel.as_ref().map(|m| m.value as usize))
        .unwrap_or(Semaphore::MAX_PERMITS)
        .clamp(1, Semaphore::MAX_PERMITS);
    let run_key = config
        .secret_key
        .as_ref()
        .map(|k| k.for_run(&config.run_id));
    let mut state = RunState::default();
    for envelope in &config.prior {
        state.apply_at(&envelope.event, &envelope.at);
        if let Some((path, sealed)) = envelope.event.sealed() {
            let opened = match (&run_key, &sealed.ciphertext) {
                (_, None) => Err(OpenError::NotKept),
                (None, Some(_)) => Err(OpenError::NoKey),
                (Some(key), Some(ciphertext)) => key.open(path, ciphertext),
            };
            match opened {
                Ok(revealed) => state.reveal(path, revealed),
                Err(reason) => state.withhold(path, &sealed.masked, &reason),
            }
        }
    }
    let any_withheld = state.steps.values().any(|r| !r.withheld().is_empty());
    let in_flight = state
        .steps
        .iter()
        .filter(|(_, record)| {
            record.attempts > 0 && matches!(record.status, None | Some(StepStatus::Cancelled))
        })
        .map(|(path, _)| path.clone())
        .collect();
    let started_at = state
        .created_at
        .clone()
        .unwrap_or_else(crate::event::timestamp::now);
    let run = Run {
        bundle: bundle.clone(),
        run_id: config.run_id.clone(),
        runbook_name: runbook.name.value.clone(),
        started_at,
        started: Instant::now(),
        secrets: config.secrets,
        redactor,
        run_key,
        any_withheld,
        withheld_reason: Mutex::new(None),
        halt: CancellationToken::new(),
        sink,
        state: Mutex::new(state),
        permits: Semaphore::new(max_parallel),
        failed: Mutex::new(false),
        stop: Mutex::new(None),
        finishing: Mutex::new(false),
        programs: Mutex::new(HashMap::new()),
        shared_entries: context::SharedEntries::default(),
        run_vals: Mutex::new(HashMap::new()),
        template_refs: Mutex::new(HashMap::new()),
        journal: config.journal,
        store: config.store,
        processes: config.processes,
        in_flight: Mutex::new(in_flight),
        busy: AtomicUsize::new(0),
        waiting: Mutex::new(BTreeSet::new()),
        activity: AtomicU64::new(0),
        park: CancellationToken::new(),
        locks: locks::RunLocks::default(),
        window_until: config.window_until,
        on_window_close: window::policy(runbook),
        window_parked: Mutex::new(None),
        window_failure: Mutex::new(None),
        paused: Mutex::new(None),
        taken_up_at: config.taken_up_at,
        interrupt: config.interrupt.clone(),
        aborted: Mutex::new(None),
        undo_outcome: Mutex::new(None),
        on_failure: runbook
            .on_failure
            .as_ref()
            .map_or(crate::runbook::OnFailure::Keep, |p| p.value),
    };
    // An abort journaled while no process ran the run: no step starts again.
    let journaled_abort = run.state.lock().expect("state lock").run.aborted.clone();
    if let Some(abort) = journaled_abort {
        *run.aborted.lock().expect("abort lock") = Some(abort);
        run.stop_because(StopReason::Aborted);
    }
    match &config.resumed_by {
        // Durable before anything else happens, so the journal shows where each process began.
        Some(by) => {
            let _ = run.emit(RunEvent::RunResumed { by: by.clone() }).await;
        }
        // The run's first event is already in the journal: it was written to create the run.
        None => {
            for envelope in &config.prior {
                run.sink.emit(envelope);
            }
        }
    }
    if let Some(until) = run.window_until {
        let _ = run
            .emit(RunEvent::WindowOpened {
                until: until.to_string(),
            })
            .await;
    }

    // Deadline, interrupt, parking and a broken journal cancel the main steps; `finally` runs
    // with its own token (and not at all when parking or when the journal is broken).
    let main_cancel = CancellationToken::new();
    // An aborted run starts no step; nor does one whose undo had begun: it goes on undoing.
    let undoing = run.state.lock().expect("state lock").run.undoing.is_some();
    if run.aborting() || undoing {
        main_cancel.cancel();
    }
    let deadline = run.deadline_instant().map(tokio::time::Instant::from_std);
    let broken = run.journal.broken();
    let watch = async {
        let reason = tokio::select! {
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => StopReason::Deadline,
            _ = config.interrupt.cancelled() => StopReason::Interrupted,
            _ = run.park.cancelled() => StopReason::Parked,
            _ = broken.cancelled() => StopReason::Journal,
            _ = run.halt.cancelled() => StopReason::Withheld,
            _ = run.locks.lost.cancelled() => StopReason::LockLost,
            _ = run.watch_for_pause() => StopReason::Paused,
            _ = run.watch_for_abort() => StopReason::Aborted,
        };
        run.stop_because(reason);
        main_cancel.cancel();
    };
    let scope = Scope::new(
        root,
        String::new(),
        Value::Object(config.inputs),
        run.secrets.get(&bundle.root).cloned().unwrap_or_default(),
    );
    // The runbook's locks come before its first step; without them nothing runs.
    let locked = run.take_run_locks(&scope.inputs, &config.interrupt).await;
    let body = run.run_scope(&scope, main_cancel.clone());
    tokio::pin!(body);
    tokio::pin!(watch);
    let mut watching = true;
    let result = match locked {
        Err(reason) => Err(reason),
        Ok(()) => loop {
            tokio::select! {
                result = &mut body => break result,
                _ = &mut watch, if watching => watching = false,
            }
        },
    };
    // The body may finish before the watch has seen why it stopped.
    if run.park.is_cancelled() {
        run.stop_because(StopReason::Parked);
    }
    if config.interrupt.is_cancelled() {
        run.stop_because(StopReason::Interrupted);
    }
    // Everything queued is written or refused before the run says how it ended: a journal
    // that broke at the very end still means the end was not recorded.
    let _ = run.journal.settled().await;
    if run.journal.failure().is_some() {
        run.stop_because(StopReason::Journal);
    }
    let stop = *run.stop.lock().expect("stop lock");
    let (status, reason) = match (stop, result) {
        (Some(StopReason::Interrupted), _) => {
            (RunStatus::Interrupted, Some("interrupted".to_owned()))
        }
        (Some(StopReason::Journal), _) => (RunStatus::Interrupted, Some(run.unrecorded_reason())),
        (Some(StopReason::Parked), _) => {
            let waiting = run.waiting_paths();
            (
                RunStatus::Waiting,
                Some(format!("waiting for approval of {}", waiting.join(", "))),
            )
        }
        (Some(StopReason::Withheld), _) => (
            RunStatus::Interrupted,
            run.withheld_reason.lock().expect("withheld lock").clone(),
        ),
        (Some(StopReason::LockLost), _) => (RunStatus::Interrupted, run.locks.lost_reason()),
        (Some(StopReason::WindowClosed), _) => (
            RunStatus::Parked,
            run.window_parked.lock().expect("window lock").clone(),
        ),
        (Some(StopReason::Paused), _) => (RunStatus::Interrupted, run.pause_reason()),
        (Some(StopReason::Aborted), _) => (RunStatus::Cancelled, run.abort_reason()),
        (Some(StopReason::Deadline), _) => (RunStatus::Failed, Some("deadline".to_owned())),
        (None, Ok(_)) => (RunStatus::Succeeded, None),
        (None, Err(reason)) => {
            let gate = run.window_failure.lock().expect("window lock").clone();
            (RunStatus::Failed, Some(gate.unwrap_or(reason)))
        }
    };
    // An undo that ran says how the run ended, unless the journal broke under it.
    let (status, reason) = match run.undo_outcome.lock().expect("undo lock").clone() {
        Some(outcome) if stop != Some(StopReason::Journal) => outcome.ending(),
        _ => (status, reason),
    };
    let (outputs, notices) = {
        let state = run.state.lock().expect("state lock");
        (state.run.outputs.clone(), state.run.notices.clone())
    };
    let outputs = if status == RunStatus::Succeeded {
        outputs
    } else {
        Value::Null
    };
    // No step runs any more: the supervisor's sweep for what the run left goes on beside the
    // last commits (the locks settled, the run's end), not after them. The lease is kept
    // until the sweep is over (see `ClaimedRun::execute`).
    run.processes.let_the_supervisor_go();
    run.settle_run_locks(status).await;
    let run_ended = RunEvent::RunEnded {
        status,
        reason: reason.clone(),
        outputs: outputs.clone(),
        duration_ms: run.started.elapsed().as_millis() as u64,
        notices: notices.clone(),
    };
    // Shown only once durable: a run the journal does not hold as ended is not shown ended.
    let (status, reason, outputs) = match run.emit_durable(run_ended).await {
        Ok(()) => (status, reason, outputs),
        Err(_) => {
            let reason = match (stop, reason) {
                (Some(StopReason::Journal), Some(reason)) => reason,
                _ => run.unrecorded_reason(),
            };
            run.sink.emit(&Envelope {
                run_id: run.run_id.clone(),
                at: crate::event::timestamp::now(),
                event: RunEvent::RunEnded {
                    status: RunStatus::Interrupted,
                    reason: Some(reason.clone()),
                    outputs: Value::Null,
                    duration_ms: run.started.elapsed().as_millis() as u64,
                    notices,
                },
            });
            (RunStatus::Interrupted, Some(reason), Value::Null)
        }
    };
    // Taken, not copied: nothing reads the state once the run has ended, and a copy
    // doubled the memory of a run of many steps at its very end.
    let state = std::mem::take(&mut *run.state.lock().expect("state lock"));
    RunOutcome {
        status,
        reason: reason.map(|r| run.redactor.text(&r)),
        outputs: run.redactor.outputs(&outputs),
        state,
        journal_error: run.journal.failure(),
    }
}

/// One runbook being run: the root, or one called through `uses`.
struct Scope<'b> {
    loaded: &'b Loaded,
    /// Prepended to step ids to make step paths: `""` or `snapshot[2]/`.
    prefix: String,
    inputs: Value,
    secrets: Map<String, Value>,
    /// `inputs` and `secrets` as jq values, converted once.
    inputs_val: Val,
    secrets_val: Val,
    /// The context's `steps` as a jq value, updated as each step ends. Its objects are
    /// shared, so an evaluation does not copy them: the cost of a step does not grow with
    /// the number of steps before it.
    steps_val: Mutex<StepsVal>,
    /// The steps that changed since `steps_val` was last brought up to date, in the order
    /// they changed. Their entries are made when an expression is next evaluated, not when
    /// they end: many steps ending at once change the map once, and the entry of a
    /// `for_each` of many items (about 0.8 KB an item) is not made when nothing reads it.
    stale_steps: Mutex<StaleSteps>,
}

/// The context's `steps` as a jq value, and the context without a step at hand made from it.
struct StepsVal {
    steps: Val,
    /// The context a step's `when` and `for_each` read, with the run's status it was made
    /// with: every step that starts before anything changes shares it (10,000 independent
    /// steps start at once, each holding its context). Dropped whenever `steps` changes,
    /// so that `steps` is changed in place, not copied.
    bare_context: Option<(&'static str, Val)>,
}

/// Step ids in the order they were first named, each once.
#[derive(Default)]
struct StaleSteps {
    order: Vec<String>,
    named: HashSet<String>,
}

impl<'b> Scope<'b> {
    fn new(loaded: &'b Loaded, prefix: String, inputs: Value, secrets: Map<String, Value>) -> Self {
        let secrets_json = Value::Object(secrets.clone());
        Scope {
            loaded,
            prefix,
            inputs_val: jq::to_val(&inputs),
            secrets_val: jq::to_val(&secrets_json),
            inputs,
            secrets,
            steps_val: Mutex::new(StepsVal {
                steps: Val::obj(jaq_json::Map::default()),
                bare_context: None,
            }),
            stale_steps: Mutex::new(StaleSteps::default()),
        }
    }
}

/// Where an instance of a step runs.
#[derive(Clone)]
struct Instance {
    path: String,
    item: Option<(Value, usize)>,
    /// The instance's undo runs: its context reads the step's own end (`step.outputs`).
    undoing: bool,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// An attempt's failure: the message and whether it was a cancellation.
struct Failure {
    message: String,
    cancelled: bool,
    /// The attempt did not end: it waits for an approval and the run is parking. Nothing is
    /// recorded, so a resume takes the attempt up again.
    parked: bool,
    /// Another attempt made the same way cannot succeed (a missing program, a malformed
    /// URL): the retries are skipped, the fallback still runs.
    permanent: bool,
}

impl From<ActionError> for Failure {
    fn from(error: ActionError) -> Self {
        Failure {
            cancelled: error.kind == ActionErrorKind::Cancelled,
            permanent: error.kind == ActionErrorKind::Invalid,
            message: error.message,
            parked: false,
        }
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        cancelled: false,
        parked: false,
        permanent: false,
    }
}

fn cancelled() -> Failure {
    Failure {
        message: "cancelled".to_owned(),
        cancelled: true,
        parked: false,
        permanent: false,
    }
}

fn parked() -> Failure {
    Failure {
        message: "waiting for approval".to_owned(),
        cancelled: true,
        parked: true,
        permanent: false,
    }
}

fn parked_for_window() -> Failure {
    Failure {
        message: "parked until a later window".to_owned(),
        cancelled: true,
        parked: true,
        permanent: false,
    }
}

/// How a step (or one instance of it) ended.
struct Ending {
    status: StepStatus,
    attempts: u32,
    via: Option<Via>,
    outputs: Value,
    error: Option<String>,
}

impl Ending {
    /// An end with no outputs: skipped, failed or cancelled.
    fn without_outputs(status: StepStatus, attempts: u32, error: Option<String>) -> Self {
        Ending {
            status,
            attempts,
            via: None,
            outputs: Value::Null,
            error,
        }
    }
}

/// The parts of a step or fallback that decide how its action runs.
struct Body<'s> {
    node: Option<&'s crate::runbook::Node>,
    action: ActionRef<'s>,
    retry: Option<&'s Spanned<Retry>>,
    timeout: Option<Duration>,
    until: Option<&'s Spanned<String>>,
    poll: Option<&'s Spanned<Poll>>,
    outputs: Option<&'s Spanned<SpannedMap<Spanned<String>>>>,
}

/// Where a step instance stood when the run was resumed: what `run_instance` needs of its
/// record, small because every step's future holds it.
struct Resumed {
    attempts: u32,
    fallback: bool,
    action_attempts: u32,
    action_error: Option<String>,
}

/// The stable key of a step instance: the same across retries and resumes of one run.
pub fn step_key(run_id: &str, path: &str) -> String {
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0u8])
        .chain_update(path.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;

/// The time from now until `at`; zero once it has passed.
fn left_until(at: jiff::Timestamp) -> Duration {
    Duration::try_from(at.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO)
}
