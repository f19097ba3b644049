//! The executor: runs a validated bundle as a DAG of steps on tokio.
//!
//! Every change of state is an event; the executor folds its own state from the events it
//! emits (see [`RunState`]), so a journal of them is enough to rebuild a run.

use super::event::{Envelope, EventSink, RunEvent, RunStatus, Sealed, StepStatus, Via};
use super::limits;
use super::redact::{Redact, Redactor, Revealed};
use super::retry::RetryPolicy;
use super::seal::{OpenError, RunKey, SecretKey};
use super::state::{RunState, StepRecord};
use super::step_output::step_output_event;
use crate::actions::{ActionError, ActionErrorKind, ActionInput, action_for};
use crate::plan::{Dag, Section};
use crate::runbook::load::Loaded;
use crate::runbook::validate::Bundle;
use crate::runbook::{
    ActionRef, Approval, Fallback, Poll, Retry, Spanned, SpannedMap, Step, Verify,
};
use crate::store::{Durable, Journal, Store, StoreError};
use crate::template::{self, Escape, jq};
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
    /// What each step's templates read of `steps`, worked out once per step.
    template_refs: Mutex<HashMap<usize, Option<Vec<String>>>>,
    journal: Arc<Journal>,
    store: Option<Arc<dyn Store>>,
    /// Steps that were in flight when the run was resumed: `verify` probes them first.
    in_flight: Mutex<HashSet<String>>,
    /// Step instances under way, not counting `uses` steps (their own steps count), and how
    /// many of those wait for an approval; `activity` changes whenever a step is scheduled or
    /// ends. A run parks when every step under way waits and nothing has moved for a while.
    busy: AtomicUsize,
    waiting: Mutex<BTreeSet<String>>,
    activity: AtomicU64,
    park: CancellationToken,
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
    let any_withheld = state.steps.values().any(|r| !r.withheld.is_empty());
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
        .unwrap_or_else(crate::engine::timestamp::now);
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
        template_refs: Mutex::new(HashMap::new()),
        journal: config.journal,
        store: config.store,
        in_flight: Mutex::new(in_flight),
        busy: AtomicUsize::new(0),
        waiting: Mutex::new(BTreeSet::new()),
        activity: AtomicU64::new(0),
        park: CancellationToken::new(),
    };
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

    // Deadline, interrupt, parking and a broken journal cancel the main steps; `finally` runs
    // with its own token (and not at all when parking or when the journal is broken).
    let main_cancel = CancellationToken::new();
    let deadline = runbook.deadline.as_ref().map(|d| match &d.value {
        crate::runbook::Deadline::After(duration) => tokio::time::Instant::now() + duration.0,
        crate::runbook::Deadline::At(at) => {
            let left = at.duration_since(jiff::Timestamp::now());
            let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
            tokio::time::Instant::now() + left
        }
    });
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
    let body = run.run_scope(&scope, main_cancel.clone());
    tokio::pin!(body);
    tokio::pin!(watch);
    let mut watching = true;
    let result = loop {
        tokio::select! {
            result = &mut body => break result,
            _ = &mut watch, if watching => watching = false,
        }
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
        (Some(StopReason::Deadline), _) => (RunStatus::Failed, Some("deadline".to_owned())),
        (None, Ok(_)) => (RunStatus::Succeeded, None),
        (None, Err(reason)) => (RunStatus::Failed, Some(reason)),
    };
    let outputs = run.state.lock().expect("state lock").outputs.clone();
    let outputs = if status == RunStatus::Succeeded {
        outputs
    } else {
        Value::Null
    };
    let run_ended = RunEvent::RunEnded {
        status,
        reason: reason.clone(),
        outputs: outputs.clone(),
        duration_ms: run.started.elapsed().as_millis() as u64,
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
                at: crate::engine::timestamp::now(),
                event: RunEvent::RunEnded {
                    status: RunStatus::Interrupted,
                    reason: Some(reason.clone()),
                    outputs: Value::Null,
                    duration_ms: run.started.elapsed().as_millis() as u64,
                },
            });
            (RunStatus::Interrupted, Some(reason), Value::Null)
        }
    };
    let state = run.state.lock().expect("state lock").clone();
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
    steps_val: Mutex<Val>,
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
            steps_val: Mutex::new(Val::obj(jaq_json::Map::default())),
        }
    }
}

/// Where an instance of a step runs.
#[derive(Clone)]
struct Instance {
    path: String,
    item: Option<(Value, usize)>,
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

impl Run {
    /// The first value of a jq expression over `input`, with the context at `$ctx`.
    /// The first value of a jq expression over `input` (a jq value: the context itself,
    /// or an action's result), with the context at `$ctx`.
    fn evaluate(&self, expression: &str, input: Val, context: &Val) -> Result<Value, String> {
        let cached = self
            .programs
            .lock()
            .expect("programs lock")
            .get(expression)
            .cloned();
        let program = match cached {
            Some(program) => program,
            None => {
                let program = Arc::new(compile(expression)?);
                self.programs
                    .lock()
                    .expect("programs lock")
                    .insert(expression.to_owned(), program.clone());
                program
            }
        };
        program.first_with(input, context)
    }

    /// Records an event: it is folded into the state, queued for the journal in the same
    /// order, and shown. Await the result where later work must not start before the event
    /// is durable.
    fn emit(&self, event: RunEvent) -> Durable {
        self.emit_with(event, true)
    }

    /// Records an event that nothing waits for on disk: it shares the next commit.
    fn emit_soon(&self, event: RunEvent) -> Durable {
        self.emit_with(event, false)
    }

    /// Every event is masked before anything sees it: the journal, the terminal and the
    /// run's own state get the same masked event. Values that later steps may read are put
    /// back in clear in the state only, and sealed in the event when the run has a key.
    fn emit_with(&self, mut event: RunEvent, urgent: bool) -> Durable {
        let revealed = event.redact(&self.redactor);
        let revealed = if revealed.is_empty() {
            None
        } else {
            let masked = masked_names(&revealed, &event);
            event.sealed_slot().map(|(path, slot)| {
                let ciphertext = self.run_key.as_ref().and_then(|k| k.seal(path, &revealed));
                *slot = Some(Sealed { masked, ciphertext });
                (path.to_owned(), revealed)
            })
        };
        let envelope = self.envelope(event);
        let durable = {
            let mut state = self.state.lock().expect("state lock");
            state.apply_at(&envelope.event, &envelope.at);
            if let Some((path, revealed)) = revealed {
                state.reveal(&path, revealed);
            }
            if urgent {
                self.journal.record(envelope.clone())
            } else {
                self.journal.record_soon(envelope.clone())
            }
        };
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.sink.emit(&envelope);
        durable
    }

    /// Why the run stopped when its journal broke, naming the steps whose end was not
    /// written: they ended in this process, but a resume runs them again. Forgets those ends
    /// in the state, so that the summary shows them as not ended.
    fn unrecorded_reason(&self) -> String {
        let unwritten = self.journal.unwritten();
        let forgotten = self
            .state
            .lock()
            .expect("state lock")
            .forget_unrecorded_ends(&unwritten);
        let reason = "the journal could not be written".to_owned();
        match forgotten.len() {
            0 => reason,
            1 => format!(
                "{reason}; the end of {} was not recorded: resume runs it again",
                forgotten[0]
            ),
            n => {
                const SHOWN: usize = 5;
                let mut names = forgotten[..n.min(SHOWN)].join(", ");
                if n > SHOWN {
                    names.push_str(&format!(" and {} more", n - SHOWN));
                }
                format!("{reason}; the ends of {names} were not recorded: resume runs them again")
            }
        }
    }

    /// The event as it leaves the engine: this run's, stamped now.
    fn envelope(&self, event: RunEvent) -> Envelope {
        Envelope {
            run_id: self.run_id.clone(),
            at: crate::engine::timestamp::now(),
            event,
        }
    }

    /// Records an event and shows it only once it is durable (or not at all).
    async fn emit_durable(&self, mut event: RunEvent) -> Result<(), Arc<StoreError>> {
        // The run's end carries nothing a later step reads: masked is all it needs.
        let _ = event.redact(&self.redactor);
        let envelope = self.envelope(event);
        let durable = {
            let mut state = self.state.lock().expect("state lock");
            state.apply_at(&envelope.event, &envelope.at);
            self.journal.record(envelope.clone())
        };
        durable.await?;
        self.sink.emit(&envelope);
        Ok(())
    }

    /// How a step ended in the journal this run started from, if it ended for good: a
    /// cancelled step runs again, and so does a `finally` step that ran for a park.
    fn recorded_end(&self, path: &str, finally: bool) -> Option<StepStatus> {
        let state = self.state.lock().expect("state lock");
        let record = state.steps.get(path)?;
        match record.status? {
            StepStatus::Cancelled => None,
            _ if finally && record.segment != state.segment => None,
            status => Some(status),
        }
    }

    /// The approval steps the run waits for: asked and not ended, from the journal's own
    /// record (each approval stops waiting in memory as the run parks, before it ends).
    fn waiting_paths(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("state lock")
            .steps
            .iter()
            .filter(|(_, record)| record.approval_requested_at.is_some() && record.status.is_none())
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// The first value withheld from this process (see [`StopReason::Withheld`]) that one
    /// of `texts` reads, as `steps.a.outputs.token`, with why it is withheld. Templates and
    /// jq expressions are both looked at in every text: a text that is not one of them
    /// names nothing.
    fn withheld_read<'t>(
        &self,
        scope: &Scope<'_>,
        texts: impl Iterator<Item = &'t str>,
    ) -> Option<(String, OpenError)> {
        if !self.any_withheld {
            return None;
        }
        let withheld = self
            .state
            .lock()
            .expect("state lock")
            .withheld_paths(&scope.prefix);
        if withheld.is_empty() {
            return None;
        }
        for text in texts {
            let mut references = jq::references(text, jq::Root::Context);
            references.extend(jq::references(text, jq::Root::Result));
            if text.contains("{{") {
                references.extend(template::check_template(text).unwrap_or_default());
            }
            for reference in references {
                let read = &reference.path;
                for (path, reason) in &withheld {
                    let n = read.len().min(path.len());
                    if read[..n] == path[..n] {
                        return Some((crate::template::reference::dotted(path), reason.clone()));
                    }
                }
            }
        }
        None
    }

    /// Stops a step that would read a withheld value. Without the key (or with another one)
    /// the run is left interrupted, for a resume with the key; a value that was never kept
    /// fails the step, since no resume can bring it back.
    async fn refuse_withheld(
        &self,
        path: &str,
        started: Instant,
        read: String,
        reason: OpenError,
    ) -> StepStatus {
        let message = format!(
            "step `{path}` reads `{read}`, which carried a secret and is kept masked in the journal: {reason}"
        );
        if reason == OpenError::NotKept {
            return self
                .end(
                    path,
                    None,
                    started,
                    Ending::without_outputs(StepStatus::Failed, 0, Some(message)),
                )
                .await;
        }
        self.withheld_reason
            .lock()
            .expect("withheld lock")
            .get_or_insert(message);
        self.stop_because(StopReason::Withheld);
        self.halt.cancel();
        StepStatus::Cancelled
    }

    /// Records why the run stops early; the first reason wins.
    fn stop_because(&self, reason: StopReason) {
        self.stop.lock().expect("stop lock").get_or_insert(reason);
    }

    fn fail_run(&self) {
        *self.failed.lock().expect("failed lock") = true;
    }

    fn run_failed(&self) -> bool {
        *self.failed.lock().expect("failed lock")
    }

    fn run_json(&self) -> Value {
        // What `finally` steps see: how the run is ending, before it has ended.
        let stop = *self.stop.lock().expect("stop lock");
        let status = match stop {
            Some(StopReason::Interrupted | StopReason::Journal | StopReason::Withheld) => {
                RunStatus::Interrupted
            }
            Some(StopReason::Parked) => RunStatus::Waiting,
            Some(StopReason::Deadline) => RunStatus::Failed,
            None if self.run_failed() => RunStatus::Failed,
            None if *self.finishing.lock().expect("finishing lock") => RunStatus::Succeeded,
            None => RunStatus::Running,
        }
        .name();
        json!({
            "id": self.run_id,
            "name": self.runbook_name,
            "started_at": self.started_at,
            "status": status,
        })
    }

    fn step_json(&self, step: &Step, instance: &Instance) -> Value {
        json!({ "id": step.id.value, "key": step_key(&self.run_id, &instance.path) })
    }

    /// The context jq expressions see, as a jq value.
    fn jq_context(&self, scope: &Scope<'_>, step: Option<(&Step, &Instance)>) -> Val {
        let key = |name: &str| jq::to_val(&Value::String(name.to_owned()));
        let mut context = jaq_json::Map::default();
        context.insert(key("inputs"), scope.inputs_val.clone());
        context.insert(key("secrets"), scope.secrets_val.clone());
        context.insert(
            key("steps"),
            scope.steps_val.lock().expect("steps lock").clone(),
        );
        context.insert(key("run"), jq::to_val(&self.run_json()));
        if let Some((step, instance)) = step {
            context.insert(key("step"), jq::to_val(&self.step_json(step, instance)));
            if let Some((item, index)) = &instance.item {
                context.insert(key("item"), jq::to_val(item));
                context.insert(key("index"), jq::to_val(&json!(index)));
            }
        }
        Val::obj(context)
    }

    /// The context templates see. Handlebars needs plain JSON, so only the steps the
    /// step's templates name are put in it; templates are strict, so a step left out by
    /// mistake would be a loud error, never a silently wrong value.
    fn template_context(&self, scope: &Scope<'_>, step: &Step, instance: &Instance) -> Value {
        let steps = {
            let state = self.state.lock().expect("state lock");
            match self.template_steps(step) {
                Some(ids) => state.steps_context(&scope.prefix, ids.iter().map(String::as_str)),
                None => state.steps_context(
                    &scope.prefix,
                    scope
                        .loaded
                        .runbook
                        .all_steps()
                        .map(|s| s.id.value.as_str()),
                ),
            }
        };
        let mut context = json!({
            "inputs": scope.inputs,
            "secrets": scope.secrets,
            "steps": steps,
            "run": self.run_json(),
            "step": self.step_json(step, instance),
        });
        if let Some((item, index)) = &instance.item {
            context["item"] = item.clone();
            context["index"] = json!(index);
        }
        context
    }

    /// The step ids the templates of a step name; `None` when one names `steps` as a whole.
    fn template_steps(&self, step: &Step) -> Option<Vec<String>> {
        let key = step as *const Step as usize;
        if let Some(known) = self.template_refs.lock().expect("refs lock").get(&key) {
            return known.clone();
        }
        let mut ids = Vec::new();
        let mut whole = false;
        step.node.for_each_string(&mut |text, _| {
            if !text.contains("{{") {
                return;
            }
            for reference in template::check_template(text).unwrap_or_default() {
                match reference.path.as_slice() {
                    [root, id, ..] if root == "steps" => ids.push(id.clone()),
                    [root] if root == "steps" => whole = true,
                    _ => {}
                }
            }
        });
        ids.sort();
        ids.dedup();
        let found = (!whole).then_some(ids);
        self.template_refs
            .lock()
            .expect("refs lock")
            .insert(key, found.clone());
        found
    }

    /// Brings the context's `steps.<id>` up to date after the step changed.
    fn refresh(&self, scope: &Scope<'_>, id: &str) {
        let entry = self
            .state
            .lock()
            .expect("state lock")
            .steps_context(&scope.prefix, std::iter::once(id));
        let Some(value) = entry.get(id) else { return };
        let mut steps = scope.steps_val.lock().expect("steps lock");
        if let Val::Obj(map) = &mut *steps {
            std::sync::Arc::make_mut(map)
                .insert(jq::to_val(&Value::String(id.to_owned())), jq::to_val(value));
        }
    }

    /// Runs the steps of one runbook, then its `finally`; evaluates its outputs.
    /// `Err` carries why the runbook failed.
    fn run_scope<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        cancel: CancellationToken,
    ) -> Boxed<'a, Result<Value, String>> {
        Box::pin(async move {
            let dag = Dag::new(&scope.loaded.runbook);
            let steps: Vec<&Step> = scope.loaded.runbook.all_steps().collect();
            let main: Vec<usize> = (0..steps.len())
                .filter(|&i| dag.sections[i] == Section::Steps)
                .collect();
            let finally: Vec<usize> = (0..steps.len())
                .filter(|&i| dag.sections[i] == Section::Finally)
                .collect();
            let mut ended: Vec<Option<StepStatus>> = vec![None; steps.len()];
            let main_error = self
                .run_steps(scope, &dag, &steps, &main, &mut ended, &cancel)
                .await;
            if scope.prefix.is_empty() {
                *self.finishing.lock().expect("finishing lock") = true;
            }
            // `finally` runs even after a failure, the first Ctrl-C or the deadline. It does
            // not run when the run parks (the run is not over), nor when the journal broke
            // (nothing it did could be recorded).
            let stop = *self.stop.lock().expect("stop lock");
            let finally_error = if matches!(
                stop,
                Some(StopReason::Parked | StopReason::Journal | StopReason::Withheld)
            ) {
                None
            } else {
                self.run_steps(
                    scope,
                    &dag,
                    &steps,
                    &finally,
                    &mut ended,
                    &self.journal.broken().child_token(),
                )
                .await
            };
            if let Some(error) = main_error.or(finally_error) {
                return Err(error);
            }
            if cancel.is_cancelled() {
                return Err("cancelled".to_owned());
            }
            let expressions = scope.loaded.runbook.outputs.iter();
            if let Some((read, reason)) =
                self.withheld_read(scope, expressions.map(|(_, e)| e.value.as_str()))
            {
                if reason != OpenError::NotKept {
                    self.withheld_reason
                        .lock()
                        .expect("withheld lock")
                        .get_or_insert(format!(
                            "the runbook's outputs read `{read}`, which carried a secret and is kept masked in the journal: {reason}"
                        ));
                    self.stop_because(StopReason::Withheld);
                    self.halt.cancel();
                }
                return Err(format!(
                    "runbook outputs read `{read}`, which carried a secret: {reason}"
                ));
            }
            let context = self.jq_context(scope, None);
            let mut outputs = Map::new();
            for (name, expression) in scope.loaded.runbook.outputs.iter() {
                let value = self
                    .evaluate(&expression.value, context.clone(), &context)
                    .map_err(|e| format!("runbook output `{}`: {e}", name.value))?;
                limits::check_output(&value)
                    .map_err(|e| format!("runbook output `{}`: {e}", name.value))?;
                outputs.insert(name.value.clone(), value);
            }
            let outputs = Value::Object(outputs);
            if scope.prefix.is_empty() {
                self.state.lock().expect("state lock").outputs = outputs.clone();
            }
            Ok(outputs)
        })
    }

    /// Runs a set of steps as their needs allow. Returns the first failure, if any.
    async fn run_steps(
        &self,
        scope: &Scope<'_>,
        dag: &Dag,
        steps: &[&Step],
        members: &[usize],
        ended: &mut [Option<StepStatus>],
        cancel: &CancellationToken,
    ) -> Option<String> {
        let satisfied = |index: usize, status: Option<StepStatus>| match status {
            Some(StepStatus::Succeeded | StepStatus::Skipped) => true,
            Some(StepStatus::Failed) => steps[index].continue_on_failure == Some(true),
            _ => false,
        };
        // Each step waits for a count of needs; an ending step only looks at the steps that
        // need it, so scheduling stays linear in the number of steps and needs.
        let mut unmet = vec![0usize; steps.len()];
        let mut blocked = vec![false; steps.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        let mut ready = Vec::new();
        let mut failure: Option<String> = None;
        // Steps the journal already saw end are not run again.
        for &index in members {
            let path = format!("{}{}", scope.prefix, steps[index].id.value);
            let finally = dag.sections[index] == Section::Finally;
            if let Some(status) = self.recorded_end(&path, finally) {
                ended[index] = Some(status);
                self.refresh(scope, &steps[index].id.value);
                if status == StepStatus::Failed
                    && steps[index].continue_on_failure != Some(true)
                    && failure.is_none()
                {
                    failure = Some(format!("step `{path}` failed"));
                    if scope.prefix.is_empty() {
                        self.fail_run();
                    }
                }
            }
        }
        for &index in members {
            if ended[index].is_some() {
                continue;
            }
            for need in &dag.needs[index] {
                match ended[need.step] {
                    None => {
                        unmet[index] += 1;
                        dependents[need.step].push(index);
                    }
                    status if !satisfied(need.step, status) => blocked[index] = true,
                    _ => {}
                }
            }
            if unmet[index] == 0 && !blocked[index] {
                ready.push(index);
            }
        }
        let mut running = FuturesUnordered::new();
        loop {
            if failure.is_none() && !cancel.is_cancelled() {
                for index in ready.drain(..) {
                    let step = steps[index];
                    running.push(async move { (index, self.run_step(scope, step, cancel).await) });
                }
            }
            let Some((index, status)) = running.next().await else {
                break;
            };
            ended[index] = Some(status);
            self.refresh(scope, &steps[index].id.value);
            for &dependent in &dependents[index] {
                if satisfied(index, Some(status)) {
                    unmet[dependent] -= 1;
                    if unmet[dependent] == 0 && !blocked[dependent] {
                        ready.push(dependent);
                    }
                } else {
                    blocked[dependent] = true;
                }
            }
            if status == StepStatus::Failed
                && steps[index].continue_on_failure != Some(true)
                && failure.is_none()
            {
                failure = Some(format!(
                    "step `{}{}` failed",
                    scope.prefix, steps[index].id.value
                ));
                // A failure inside a called runbook fails the run only if the calling step
                // fails too (it may still succeed through its fallback).
                if scope.prefix.is_empty() {
                    self.fail_run();
                }
            }
        }
        failure
    }

    /// One step: `when`, then one instance, or one per item of `for_each`.
    async fn run_step(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let path = format!("{}{}", scope.prefix, step.id.value);
        let started = Instant::now();
        let context = self.jq_context(scope, None);
        // A step the journal saw start has passed its `when` already.
        // Only what is needed is kept: this future is alive for every step at once.
        let (started_before, expanded, items_withheld) = {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(&path);
            (
                record.is_some(),
                record.and_then(|r| r.expanded.clone()),
                record.and_then(|r| r.withheld.get("items").cloned()),
            )
        };
        if self.any_withheld {
            let mut texts = Vec::new();
            step.node
                .for_each_string(&mut |text, _| texts.push(text.to_owned()));
            if let Some((read, reason)) =
                self.withheld_read(scope, texts.iter().map(String::as_str))
            {
                return self.refuse_withheld(&path, started, read, reason).await;
            }
        }
        if let Some(reason) = items_withheld {
            let read = format!("the items of `{path}`");
            return self.refuse_withheld(&path, started, read, reason).await;
        }
        if let Some(when) = step.when.as_ref().filter(|_| !started_before) {
            match self.evaluate(&when.value, context.clone(), &context) {
                Ok(Value::Null | Value::Bool(false)) => {
                    return self
                        .end(
                            &path,
                            None,
                            started,
                            Ending::without_outputs(StepStatus::Skipped, 0, None),
                        )
                        .await;
                }
                Ok(_) => {}
                Err(e) => {
                    return self
                        .end(
                            &path,
                            None,
                            started,
                            Ending::without_outputs(
                                StepStatus::Failed,
                                0,
                                Some(format!("`when` of step `{path}`: {e}")),
                            ),
                        )
                        .await;
                }
            }
        }
        let Some(for_each) = &step.for_each else {
            let instance = Instance { path, item: None };
            return self.run_instance(scope, step, &instance, cancel).await;
        };
        let evaluated = match expanded {
            Some(items) => Ok(Value::Array(items)),
            None => self.evaluate(&for_each.value, context.clone(), &context),
        };
        let items = match evaluated {
            Ok(Value::Array(items)) if items.len() <= limits::MAX_FOR_EACH_ITEMS => items,
            wrong => {
                let error = match wrong {
                    Ok(Value::Array(items)) => format!(
                        "`for_each` of step `{path}` gave {} items, more than {}, the most a \
                         for_each may expand into; split the work (a `uses` step can take a \
                         batch)",
                        items.len(),
                        limits::MAX_FOR_EACH_ITEMS
                    ),
                    Ok(other) => format!(
                        "`for_each` of step `{path}` must give an array, it gave {}",
                        kind_of(&other)
                    ),
                    Err(e) => format!("`for_each` of step `{path}`: {e}"),
                };
                return self
                    .end(
                        &path,
                        None,
                        started,
                        Ending::without_outputs(StepStatus::Failed, 0, Some(error)),
                    )
                    .await;
            }
        };
        let was_expanded = self
            .state
            .lock()
            .expect("state lock")
            .steps
            .get(&path)
            .is_some_and(|r| r.expanded.is_some());
        if !was_expanded {
            let expanded = self.emit(RunEvent::StepExpanded {
                path: path.clone(),
                items: items.clone(),
                sealed: None,
            });
            // The items are fixed before any of them runs: a resume works on the same ones.
            if expanded.await.is_err() {
                return StepStatus::Cancelled;
            }
        }
        let limit = Semaphore::new(
            step.max_parallel
                .as_ref()
                .map_or(Semaphore::MAX_PERMITS, |m| (m.value as usize).max(1)),
        );
        let mut instances: FuturesUnordered<_> = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let instance = Instance {
                    path: format!("{path}[{index}]"),
                    item: Some((item, index)),
                };
                let limit = &limit;
                async move {
                    if let Some(status) = self.recorded_end(&instance.path, false) {
                        return status;
                    }
                    let _permit = limit
                        .acquire()
                        .await
                        .expect("the item limit is never closed");
                    self.run_instance(scope, step, &instance, cancel).await
                }
            })
            .collect();
        let mut statuses = Vec::new();
        while let Some(status) = instances.next().await {
            statuses.push(status);
        }
        let status = if statuses
            .iter()
            .all(|s| matches!(s, StepStatus::Succeeded | StepStatus::Skipped))
        {
            StepStatus::Succeeded
        } else if statuses.contains(&StepStatus::Cancelled) {
            StepStatus::Cancelled
        } else {
            StepStatus::Failed
        };
        let error = (status == StepStatus::Failed).then(|| {
            let failed = statuses
                .iter()
                .filter(|s| **s == StepStatus::Failed)
                .count();
            format!("{failed} of {} items failed", statuses.len())
        });
        self.end(
            &path,
            None,
            started,
            Ending::without_outputs(status, 1, error),
        )
        .await;
        status
    }

    /// Records how a step (or one instance of it) ended.
    /// Queues the step's end without waiting for the disk. Nothing that depends on it can act
    /// before it is durable all the same: journal writes keep their order, and a dependent's
    /// action waits for its own start to be durable, which a commit makes durable together
    /// with (or after) this end. A chain of steps so costs one commit a step, not two.
    async fn end(
        &self,
        path: &str,
        item: Option<Value>,
        started: Instant,
        ending: Ending,
    ) -> StepStatus {
        let status = ending.status;
        drop(self.emit_soon(RunEvent::StepEnded {
            path: path.to_owned(),
            status: ending.status,
            attempts: ending.attempts,
            via: ending.via,
            outputs: ending.outputs,
            error: ending.error,
            item,
            duration_ms: started.elapsed().as_millis() as u64,
            sealed: None,
        }));
        status
    }

    /// One instance: attempts of the action with retries, then the fallback.
    async fn run_instance(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let started = Instant::now();
        let item = instance.item.as_ref().map(|(item, _)| item.clone());
        let defaults = scope.loaded.runbook.defaults.as_ref();
        let default_retry = defaults.and_then(|d| d.retry.as_ref());
        let default_timeout = defaults.and_then(|d| d.timeout.as_ref()).map(|t| t.value.0);
        let Some(action) = step.action() else {
            return self
                .end(
                    &instance.path,
                    item,
                    started,
                    Ending::without_outputs(
                        StepStatus::Failed,
                        0,
                        Some("the step has no action".to_owned()),
                    ),
                )
                .await;
        };
        // A `uses` step is not work of its own: the steps of the runbook it calls are.
        let _busy = (!matches!(action, ActionRef::Uses(..))).then(|| self.hold_busy());
        let resumed = self.resume_point(&instance.path).map(|r| Resumed {
            attempts: r.attempts,
            fallback: r.fallback,
            action_attempts: r.action_attempts,
            action_error: r.action_error,
        });
        let in_flight = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&instance.path);
        if in_flight
            && let Some(verify) = &step.verify
            && let Some(outputs) =
                Box::pin(self.verify(scope, step, instance, verify, default_timeout, cancel)).await
        {
            let attempts = resumed.as_ref().map_or(1, |r| r.attempts);
            return self
                .end(
                    &instance.path,
                    item,
                    started,
                    Ending {
                        status: StepStatus::Succeeded,
                        attempts,
                        via: Some(Via::Verify),
                        outputs,
                        error: None,
                    },
                )
                .await;
        }
        let body = Body {
            node: step.node.get(action.key()),
            action,
            retry: step.retry.as_ref().or(default_retry),
            timeout: step.timeout.as_ref().map(|t| t.value.0).or(default_timeout),
            until: step.until.as_ref(),
            poll: step.poll.as_ref(),
            outputs: step.outputs.as_ref(),
        };
        let (attempts, result) = match resumed {
            // The fallback had taken over before the run stopped: the action is done with.
            Some(record) if record.fallback => (
                record.action_attempts,
                Err(failure(record.action_error.unwrap_or_else(|| {
                    "the action failed before the run was resumed".to_owned()
                }))),
            ),
            _ => {
                self.attempts(scope, step, instance, &body, false, cancel)
                    .await
            }
        };
        match result {
            Err(failure) if failure.parked => StepStatus::Cancelled,
            Ok(outputs) => {
                self.end(
                    &instance.path,
                    item,
                    started,
                    Ending {
                        status: StepStatus::Succeeded,
                        attempts,
                        via: Some(Via::Action),
                        outputs,
                        error: None,
                    },
                )
                .await
            }
            Err(failure) if failure.cancelled => {
                self.end(
                    &instance.path,
                    item,
                    started,
                    Ending::without_outputs(StepStatus::Cancelled, attempts, Some(failure.message)),
                )
                .await
            }
            Err(failure) => {
                let Some(fallback) = &step.fallback else {
                    return self
                        .end(
                            &instance.path,
                            item,
                            started,
                            Ending::without_outputs(
                                StepStatus::Failed,
                                attempts,
                                Some(failure.message),
                            ),
                        )
                        .await;
                };
                let fallback_node = step.node.get("fallback");
                match Box::pin(self.run_fallback(
                    scope,
                    step,
                    instance,
                    fallback,
                    fallback_node,
                    default_retry,
                    default_timeout,
                    cancel,
                ))
                .await
                {
                    (fallback_attempts, Ok(outputs)) => {
                        self.end(
                            &instance.path,
                            item,
                            started,
                            Ending {
                                status: StepStatus::Succeeded,
                                attempts: attempts + fallback_attempts,
                                via: Some(Via::Fallback),
                                outputs,
                                error: None,
                            },
                        )
                        .await
                    }
                    (_, Err(fallback_failure)) if fallback_failure.parked => StepStatus::Cancelled,
                    (fallback_attempts, Err(fallback_failure)) => {
                        let status = if fallback_failure.cancelled {
                            StepStatus::Cancelled
                        } else {
                            StepStatus::Failed
                        };
                        let error = format!(
                            "{}; the fallback failed too: {}",
                            failure.message, fallback_failure.message
                        );
                        self.end(
                            &instance.path,
                            item,
                            started,
                            Ending::without_outputs(
                                status,
                                attempts + fallback_attempts,
                                Some(error),
                            ),
                        )
                        .await;
                        status
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_fallback(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        fallback: &Spanned<Fallback>,
        node: Option<&crate::runbook::Node>,
        default_retry: Option<&Spanned<Retry>>,
        default_timeout: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (u32, Result<Value, Failure>) {
        let Some(action) = fallback.action() else {
            return (0, Err(failure("the fallback has no action")));
        };
        let body = Body {
            node: node.and_then(|n| n.get(action.key())),
            action,
            retry: fallback.retry.as_ref().or(default_retry),
            timeout: fallback
                .timeout
                .as_ref()
                .map(|t| t.value.0)
                .or(default_timeout),
            until: fallback.until.as_ref(),
            poll: fallback.poll.as_ref(),
            outputs: fallback.outputs.as_ref(),
        };
        self.attempts(scope, step, instance, &body, true, cancel)
            .await
    }

    /// Attempts of one body until one succeeds or the policy is exhausted.
    async fn attempts(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        fallback: bool,
        cancel: &CancellationToken,
    ) -> (u32, Result<Value, Failure>) {
        let policy = body
            .retry
            .map(|r| RetryPolicy::from(&r.value))
            .unwrap_or_default();
        let mut last = failure("no attempt ran");
        // Where a resumed run left this body: the attempt under way is made again (with the
        // same step.key); one that had already failed is not.
        let mut first = 1;
        if let Some(record) = self
            .resume_point(&instance.path)
            .filter(|r| r.fallback == fallback)
        {
            first = record.attempts + u32::from(record.attempt_failed);
            if let Some(error) = record.action_error.filter(|_| !fallback) {
                last = failure(error);
            }
        }
        for attempt in first..=policy.attempts {
            if cancel.is_cancelled() {
                return (attempt - 1, Err(cancelled()));
            }
            // An attempt holds one of the run's permits while it runs (not while it waits to
            // retry); a called runbook holds none, its own steps do.
            let permit = if matches!(body.action, ActionRef::Uses(..)) {
                None
            } else {
                tokio::select! {
                    permit = self.permits.acquire() => Some(permit.expect("the run's permits are never closed")),
                    _ = cancel.cancelled() => return (attempt - 1, Err(cancelled())),
                }
            };
            let durable = self.emit(RunEvent::StepStarted {
                path: instance.path.clone(),
                attempt,
                attempts: policy.attempts,
                fallback,
            });
            // The start is on disk before the action runs: after a crash, the journal shows
            // every action that may have had an effect.
            if durable.await.is_err() {
                return (attempt - 1, Err(cancelled()));
            }
            // Boxed: the attempt's own state (the action, its polling) exists only while it
            // runs, not in every step still waiting for a permit or for its start to be durable.
            // With 10,000 steps started at once, that is most of the run's memory.
            let result = Box::pin(self.attempt(scope, step, instance, body, attempt, cancel)).await;
            drop(permit);
            match result {
                Ok(outputs) => return (attempt, Ok(outputs)),
                Err(error) if error.parked => return (attempt, Err(error)),
                Err(error) if error.cancelled || cancel.is_cancelled() => {
                    return (attempt, Err(cancelled()));
                }
                Err(mut error) => {
                    let retry_in = (attempt < policy.attempts && !error.permanent)
                        .then(|| policy.delay_after(attempt, rand::random::<f64>()));
                    if error.permanent && attempt < policy.attempts {
                        error.message.push_str(
                            " (not retried: another attempt cannot succeed until the runbook or what it names is fixed)",
                        );
                    }
                    let permanent = error.permanent;
                    drop(self.emit(RunEvent::StepAttemptFailed {
                        path: instance.path.clone(),
                        attempt,
                        error: error.message.clone(),
                        retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
                        fallback,
                    }));
                    last = error;
                    if permanent {
                        return (attempt, Err(last));
                    }
                    if let Some(wait) = retry_in {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = cancel.cancelled() => return (attempt, Err(cancelled())),
                        }
                    }
                }
            }
        }
        (policy.attempts.max(first.saturating_sub(1)), Err(last))
    }

    /// Where a step instance stood in the journal the run started from, when it had started
    /// and not ended for good.
    fn resume_point(&self, path: &str) -> Option<StepRecord> {
        let state = self.state.lock().expect("state lock");
        state
            .steps
            .get(path)
            .filter(|r| r.attempts > 0 && matches!(r.status, None | Some(StepStatus::Cancelled)))
            .cloned()
    }

    /// Counts a step instance as work under way until the guard drops.
    fn hold_busy(&self) -> BusyGuard<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.activity.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self)
    }

    /// The `verify` probe of a step that a crash left in flight: `Some(outputs)` when it
    /// says the work is done. A probe that fails or cannot be read means "not done".
    async fn verify(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        verify: &Spanned<Verify>,
        default_timeout: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Option<Value> {
        let action = verify.action()?;
        let node = step.node.get("verify");
        let body = Body {
            node: node.and_then(|n| n.get(action.key())),
            action,
            retry: None,
            timeout: step.timeout.as_ref().map(|t| t.value.0).or(default_timeout),
            until: None,
            poll: None,
            outputs: None,
        };
        let warn = |message: String| {
            drop(self.emit(RunEvent::Warning {
                path: Some(instance.path.clone()),
                message,
            }));
        };
        let probe = self.run_action(scope, step, instance, &body, cancel);
        let result = match body.timeout {
            Some(limit) => tokio::time::timeout(limit, probe)
                .await
                .unwrap_or_else(|_| Err(failure("timed out"))),
            None => probe.await,
        };
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                warn(format!(
                    "the verify probe failed ({}); running the step again",
                    error.message
                ));
                return None;
            }
        };
        let context = self.jq_context(scope, Some((step, instance)));
        let result = jq::to_val(&result);
        match self.evaluate(&verify.that.value, result.clone(), &context) {
            Ok(Value::Null | Value::Bool(false)) => {
                warn("verify: the work is not done; running the step again".to_owned());
                None
            }
            Ok(_) => {
                let mut outputs = Map::new();
                for (name, expression) in verify.outputs.iter().flat_map(|o| o.value.iter()) {
                    let value = self
                        .evaluate(&expression.value, result.clone(), &context)
                        .and_then(|value| {
                            limits::check_output(&value)
                                .map(|()| value)
                                .map_err(|e| e.to_string())
                        });
                    match value {
                        Ok(value) => {
                            outputs.insert(name.value.clone(), value);
                        }
                        Err(error) => {
                            warn(format!(
                                "verify output `{}`: {error}; running the step again",
                                name.value
                            ));
                            return None;
                        }
                    }
                }
                Some(Value::Object(outputs))
            }
            Err(error) => {
                warn(format!("verify `that`: {error}; running the step again"));
                None
            }
        }
    }

    /// One attempt: the action (polled until `until` holds), bounded by the timeout, then
    /// its outputs.
    async fn attempt(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        attempt: u32,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let attempt_cancel = cancel.child_token();
        let work = self.poll_action(scope, step, instance, body, attempt, &attempt_cancel);
        let result = match body.timeout {
            Some(limit) => tokio::select! {
                result = work => result,
                _ = tokio::time::sleep(limit) => {
                    attempt_cancel.cancel();
                    Err(failure(format!("timed out after {}", crate::runbook::Duration(limit))))
                }
            },
            None => work.await,
        }?;
        let context = self.jq_context(scope, Some((step, instance)));
        let result_val = jq::to_val(&result);
        match body.outputs {
            Some(outputs) => {
                let mut values = Map::new();
                for (name, expression) in outputs.value.iter() {
                    let value = self
                        .evaluate(&expression.value, result_val.clone(), &context)
                        .map_err(|e| failure(format!("output `{}`: {e}", name.value)))?;
                    limits::check_output(&value).map_err(|e| {
                        failure(format!(
                            "output `{}` of step `{}`: {e}",
                            name.value, instance.path
                        ))
                    })?;
                    values.insert(name.value.clone(), value);
                }
                Ok(Value::Object(values))
            }
            // A called runbook's outputs, or an approval's answer, are the step's, unless it
            // names its own.
            None if matches!(body.action, ActionRef::Uses(..) | ActionRef::Approval(..)) => {
                Ok(result)
            }
            None => Ok(Value::Object(Map::new())),
        }
    }

    /// Runs the action, again and again while `until` does not hold.
    async fn poll_action(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        attempt: u32,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let interval = body
            .poll
            .and_then(|p| p.interval.as_ref())
            .map_or(Duration::from_secs(1), |d| d.value.0);
        let limit = body
            .poll
            .and_then(|p| p.timeout.as_ref())
            .map(|d| d.value.0);
        let started = Instant::now();
        let mut poll = 0;
        loop {
            let result = self.run_action(scope, step, instance, body, cancel).await?;
            let Some(until) = body.until else {
                return Ok(result);
            };
            let context = self.jq_context(scope, Some((step, instance)));
            match self.evaluate(&until.value, jq::to_val(&result), &context) {
                Ok(Value::Null | Value::Bool(false)) => {}
                Ok(_) => return Ok(result),
                Err(e) => return Err(failure(format!("`until`: {e}"))),
            }
            if limit.is_some_and(|limit| started.elapsed() + interval > limit) {
                let limit = crate::runbook::Duration(limit.unwrap_or_default());
                return Err(failure(format!(
                    "`until` did not hold within {limit} ({} polls)",
                    poll + 1
                )));
            }
            poll += 1;
            drop(self.emit(RunEvent::StepPolling {
                path: instance.path.clone(),
                attempt,
                poll,
            }));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = cancel.cancelled() => return Err(cancelled()),
            }
        }
    }

    /// The action itself: a called runbook, or a registered action.
    async fn run_action(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let context = self.template_context(scope, step, instance);
        let jq_context = self.jq_context(scope, Some((step, instance)));
        if let ActionRef::Uses(uses, with) = body.action {
            return self
                .run_uses(
                    scope,
                    instance,
                    &uses.value,
                    with.map(|w| &w.value),
                    &context,
                    cancel,
                )
                .await;
        }
        if let ActionRef::Approval(approval) = body.action {
            return self.approval(instance, approval, &context, cancel).await;
        }
        let Some(action) = action_for(body.action.key()) else {
            return Err(failure(format!(
                "the `{}` action cannot run yet in this version",
                body.action.key()
            )));
        };
        let raw = body.node.map_or(Value::Null, |n| n.to_json());
        let render =
            |value: &Value, escape: Escape| template::render_value(value, &context, escape);
        let render_pieces = |text: &str| template::render_pieces(text, &context);
        let eval = |expression: &str| self.evaluate(expression, jq_context.clone(), &jq_context);
        let eval_over = |expression: &str, value: &Value| {
            self.evaluate(expression, jq::to_val(value), &jq_context)
        };
        let warn = |message: String| {
            drop(self.emit(RunEvent::Warning {
                path: Some(instance.path.clone()),
                message,
            }));
        };
        let input = ActionInput {
            body: &raw,
            render: &render,
            render_pieces: &render_pieces,
            eval: &eval,
            eval_over: &eval_over,
            cancel: cancel.clone(),
            warn: &warn,
            step_path: &instance.path,
        };
        let outcome = action.run(input).await;
        // What the program printed is journaled whether it succeeded or not: a failure is
        // when it matters most.
        let result = match &outcome {
            Ok(result) => Some(result),
            Err(error) => error.result.as_ref(),
        };
        if let Some(event) =
            result.and_then(|r| step_output_event(&instance.path, r, &self.redactor))
        {
            drop(self.emit_soon(event));
        }
        outcome.map_err(Failure::from)
    }

    /// An approval: asks once (journaled), then waits for an answer recorded by
    /// `runbook approve`. When every step still under way waits like this and nothing else has
    /// happened for a moment, the run parks as `waiting` and a resume takes the wait up again.
    async fn approval(
        &self,
        instance: &Instance,
        approval: &Spanned<Approval>,
        context: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let path = &instance.path;
        let Some(store) = self.store.clone() else {
            return Err(failure("an approval needs a store to record the answer in"));
        };
        let (asked_at, answer) = {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(path);
            (
                record.and_then(|r| r.approval_requested_at.clone()),
                record.and_then(|r| r.decision.clone()),
            )
        };
        if let Some(answer) = answer {
            return answer_result(answer.approved, &answer.by, answer.comment, &answer.at);
        }
        let timeout = approval.value.timeout.as_ref().map(|t| t.value.0);
        let asked_at = match asked_at.and_then(|at| at.parse::<jiff::Timestamp>().ok()) {
            Some(at) => at,
            None => {
                let prompt =
                    match template::render(&approval.value.prompt.value, context, Escape::Plain) {
                        Ok(Value::String(text)) => text,
                        Ok(other) => other.to_string(),
                        Err(e) => return Err(failure(format!("`prompt`: {e}"))),
                    };
                let asked = self.emit(RunEvent::ApprovalRequested {
                    path: path.clone(),
                    prompt,
                    timeout_ms: timeout.map(|t| t.as_millis() as u64),
                });
                if asked.await.is_err() {
                    return Err(cancelled());
                }
                jiff::Timestamp::now()
            }
        };
        let _waiting = WaitingGuard::new(self, path);
        // Parking needs the run to have been still for a moment: a step that just ended may be
        // about to start its dependents.
        let mut last_activity = (self.activity.load(Ordering::Relaxed), Instant::now());
        loop {
            let decisions = store
                .decisions(&self.run_id)
                .await
                .map_err(|e| failure(format!("cannot read the answers to approvals: {e}")))?;
            if let Some(decision) = decisions.into_iter().find(|d| d.path == *path) {
                let given = self.emit(RunEvent::ApprovalGiven {
                    path: path.clone(),
                    approved: decision.approved,
                    by: decision.by.clone(),
                    comment: decision.comment.clone(),
                    answered_at: decision.at.clone(),
                });
                if given.await.is_err() {
                    return Err(cancelled());
                }
                return answer_result(
                    decision.approved,
                    &decision.by,
                    decision.comment,
                    &decision.at,
                );
            }
            if let Some(limit) = timeout {
                let waited = jiff::Timestamp::now().duration_since(asked_at);
                if Duration::try_from(waited).unwrap_or_default() >= limit {
                    return Err(failure(format!(
                        "no answer within {}",
                        crate::runbook::Duration(limit)
                    )));
                }
            }
            let activity = self.activity.load(Ordering::Relaxed);
            if activity != last_activity.0 {
                last_activity = (activity, Instant::now());
            } else if last_activity.1.elapsed() >= PARK_AFTER
                && self.busy.load(Ordering::SeqCst)
                    <= self.waiting.lock().expect("waiting lock").len()
            {
                self.stop_because(StopReason::Parked);
                self.park.cancel();
            }
            // Parking cancels the run's token too: parked must win over cancelled, or a
            // parked approval would end as cancelled and drop out of what the run waits for.
            tokio::select! {
                biased;
                _ = self.park.cancelled() => return Err(parked()),
                _ = tokio::time::sleep(APPROVAL_POLL) => {}
                _ = cancel.cancelled() => return Err(cancelled()),
            }
        }
    }

    /// Runs a called runbook as this step's action; its outputs are the result.
    async fn run_uses(
        &self,
        scope: &Scope<'_>,
        instance: &Instance,
        uses: &str,
        with: Option<&SpannedMap<crate::runbook::Node>>,
        context: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let Some(called) = self.bundle.called(scope.loaded, uses) else {
            return Err(failure(format!("the runbook `{uses}` is not loaded")));
        };
        let mut inputs = Map::new();
        for (name, input) in called.runbook.inputs.iter() {
            if let Some(default) = &input.default {
                inputs.insert(name.value.clone(), default.to_json());
            }
        }
        for (name, value) in with.into_iter().flat_map(|w| w.iter()) {
            let rendered = template::render_value(&value.to_json(), context, Escape::Plain)
                .map_err(|e| failure(format!("`with.{}`: {e}", name.value)))?;
            if let Some(input) = called.runbook.inputs.get(&name.value)
                && !input.kind.accepts(&rendered)
            {
                return Err(failure(format!(
                    "`with.{}` gives {} to `{uses}`, whose input `{}` is {}",
                    name.value,
                    kind_of(&rendered),
                    name.value,
                    input.kind.name()
                )));
            }
            inputs.insert(name.value.clone(), rendered);
        }
        let secrets = self
            .bundle
            .called_path(scope.loaded, uses)
            .and_then(|path| self.secrets.get(path))
            .cloned()
            .unwrap_or_default();
        let child = Scope::new(
            called,
            format!("{}/", instance.path),
            Value::Object(inputs),
            secrets,
        );
        self.run_scope(&child, cancel.clone())
            .await
            .map_err(|reason| failure(format!("runbook `{uses}`: {reason}")))
    }
}

/// Where a step instance stood when the run was resumed: what `run_instance` needs of its
/// record, small because every step's future holds it.
struct Resumed {
    attempts: u32,
    fallback: bool,
    action_attempts: u32,
    action_error: Option<String>,
}

/// How often a waiting approval looks for an answer.
const APPROVAL_POLL: Duration = Duration::from_millis(250);

/// How long the run must have been still, with every step under way waiting for an answer,
/// before it parks.
const PARK_AFTER: Duration = Duration::from_millis(750);

/// The result of an answered approval step: its outputs, or the failure of a rejection.
fn answer_result(
    approved: bool,
    by: &str,
    comment: Option<String>,
    at: &str,
) -> Result<Value, Failure> {
    if approved {
        Ok(json!({ "approved_by": by, "at": at, "comment": comment }))
    } else {
        let comment = comment.map(|c| format!(": {c}")).unwrap_or_default();
        Err(Failure {
            message: format!("rejected by {by}{comment}"),
            cancelled: false,
            parked: false,
            permanent: false,
        })
    }
}

/// Marks an approval step as waiting until the guard drops.
struct WaitingGuard<'r>(&'r Run, String);

impl<'r> WaitingGuard<'r> {
    fn new(run: &'r Run, path: &str) -> Self {
        run.waiting
            .lock()
            .expect("waiting lock")
            .insert(path.to_owned());
        WaitingGuard(run, path.to_owned())
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().expect("waiting lock").remove(&self.1);
    }
}

/// Drops a step instance from the work under way.
struct BusyGuard<'r>(&'r Run);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.activity.fetch_add(1, Ordering::Relaxed);
    }
}

/// The stable key of a step instance: the same across retries and resumes of one run.
pub fn step_key(run_id: &str, path: &str) -> String {
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0u8])
        .chain_update(path.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The values masking changed in an event: `outputs.<name>` for each output, `item`, `items`.
fn masked_names(revealed: &Revealed, event: &RunEvent) -> Vec<String> {
    let mut names = Vec::new();
    for (field, real) in revealed {
        match (field.as_str(), real, event) {
            ("outputs", Value::Object(real), RunEvent::StepEnded { outputs, .. }) => {
                for (name, value) in real {
                    if outputs.get(name) != Some(value) {
                        names.push(format!("outputs.{name}"));
                    }
                }
            }
            _ => names.push(field.clone()),
        }
    }
    names
}

/// Compiles a jq expression; the message joins every compile error.
fn compile(expression: &str) -> Result<jq::Program, String> {
    jq::compile(expression).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ")
    })
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
