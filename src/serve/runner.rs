//! The loop of `runbook serve`: looks at the clock, fires what is due, follows its runs, and
//! on a stop request drains. Runs are started and resumed through [`crate::app`], as the
//! command line does; every decision is a `tracing` event.
//!
//! Which runs are serve's own: a run it starts carries a [`RunOrigin`] (the schedule and the
//! fire time) in its `run_started` event. At start, serve takes over every run whose origin
//! names one of its schedules and that is `interrupted`, or `running` with its owner gone
//! (killed), and resumes it. A run interrupted because the `cancel` overlap policy replaced
//! it is listed in the store's record `serve.superseded` and left alone.

use super::clock::Clock;
use super::config::Overlap;
use super::due::{self, Fire};
use super::schedule::{Schedule, SkipReason};
use crate::app::{self, AppError, ResumeRequest, StartRequest, Watch};
use crate::event::{Envelope, EventSink, RunEvent, RunOrigin, RunStatus};
use crate::runbook::diagnostic::{Diagnostic, display_path};
use crate::store::{Store, StoreError, StoreLocation};
use jiff::Timestamp;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How `serve` runs.
pub struct ServeOptions {
    /// The store's URL; `None` for the default store (or `RUNBOOK_STORE`).
    pub store: Option<String>,
    /// Cancelled to stop: no new fire starts, runs are interrupted (they park), serve
    /// waits for them to be journaled, then returns.
    pub stop: CancellationToken,
    /// Runs this process executes at once: queued runs, taken-over runs and schedules'
    /// fires alike. A fire that finds every worker busy waits in its schedule's queue.
    pub workers: usize,
    /// Where the runner reports what `/metrics` shows of it.
    pub metrics: std::sync::Arc<super::ServeMetrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    StoreLocation(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest serve sleeps between two looks at the clock: a clock that jumps is noticed
/// within this, and an idle serve wakes no more often.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Fires waiting for the previous run of a `queue` schedule, at most.
const QUEUE_LIMIT: usize = 16;

/// The store record that remembers a schedule's last fire time.
pub fn last_fire_record(schedule: &str) -> String {
    format!("serve.last-fire.{schedule}")
}

/// The store record of runs the `cancel` overlap policy interrupted.
const SUPERSEDED: &str = "serve.superseded";

/// The `path` written with serve's records, where a step path would be.
const RECORD_PATH: &str = "serve";

/// What a run reports to the loop when it ends or parks.
struct RunEnded {
    /// The schedule it was fired by; `None` for a run of the queue.
    schedule: Option<usize>,
    run_id: String,
}

/// How often serve looks at the queue when nothing woke it.
const QUEUE_POLL: Duration = Duration::from_millis(500);

/// How often serve looks for queued runs whose owner's lease ran out.
const TAKEOVER_POLL: Duration = Duration::from_secs(1);

/// How often serve looks for queued runs parked for an approval that was answered, when no
/// notification woke it (PostgreSQL notifies at once; SQLite has only this).
const ANSWERS_POLL: Duration = Duration::from_secs(10);

struct Active {
    run_id: String,
    interrupt: CancellationToken,
}

/// What every decision of the loop reaches: the store, the options, the channel runs
/// report their end on.
struct Loop<'a> {
    store: &'a dyn Store,
    options: &'a ServeOptions,
    ended_tx: &'a mpsc::UnboundedSender<RunEnded>,
}

/// The runs of the queue this process executes (its schedules' are in their slots).
#[derive(Default)]
struct Queue {
    active: Vec<Active>,
    /// When serve last looked for runs to take over.
    last_takeover: Option<std::time::Instant>,
    /// When serve last looked for parked runs whose approval was answered.
    last_answers: Option<std::time::Instant>,
}

/// Runs under way in this process, scheduled and queued.
fn busy(slots: &[Slot], queue: &Queue) -> usize {
    slots.iter().map(|s| s.active.len()).sum::<usize>() + queue.active.len()
}

/// One schedule and where it stands.
struct Slot {
    schedule: Schedule,
    last: Timestamp,
    active: Vec<Active>,
    queued: VecDeque<Fire>,
}

/// Runs the schedules until `options.stop` is cancelled and every run has parked or ended.
/// Must run inside a [`tokio::task::LocalSet`]: each run is a local task.
pub async fn serve(
    schedules: Vec<Schedule>,
    options: ServeOptions,
    clock: Arc<dyn Clock>,
) -> Result<(), ServeError> {
    let location = StoreLocation::resolve(options.store.as_deref())
        .map_err(|e| ServeError::StoreLocation(e.to_string()))?;
    let store = crate::store::open(&location).await?;
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<RunEnded>();
    let mut slots = Vec::with_capacity(schedules.len());
    let mut owed = Vec::new();
    let now = clock.now();
    for schedule in schedules {
        let stored = last_fire(store.as_ref(), &schedule.name).await?;
        let (last, missed) = due::on_start(&schedule, stored, now);
        if let Some(fire) = missed {
            owed.push((slots.len(), fire));
        }
        slots.push(Slot {
            schedule,
            last,
            active: Vec::new(),
            queued: VecDeque::new(),
        });
    }
    let ctx = Loop {
        store: store.as_ref(),
        options: &options,
        ended_tx: &ended_tx,
    };
    let mut queue = Queue::default();
    take_over(&mut slots, &ctx).await?;
    // The fires that fell while serve was down, as each schedule's `missed` policy says.
    for (index, fire) in owed {
        info!(schedule = %slots[index].schedule.name, fire = %fire.at, "a fire fell while serve was not running");
        handle(index, &mut slots, &queue, fire, &ctx, now).await;
    }
    info!(
        schedules = slots.len(),
        workers = options.workers,
        lease_ms = crate::store::run_lease().as_millis() as u64,
        store = %store.location(),
        "serving"
    );
    let wakeups = crate::store::wakeups(
        &location,
        &[
            crate::store::postgres::QUEUE_CHANNEL,
            crate::store::postgres::APPROVALS_CHANNEL,
        ],
    )
    .await;
    loop {
        let now = clock.now();
        for index in 0..slots.len() {
            if let Some(fire) = due::due(&slots[index].schedule, slots[index].last, now) {
                handle(index, &mut slots, &queue, fire, &ctx, now).await;
            }
        }
        work_queue(&mut slots, &mut queue, &ctx).await;
        let next = slots
            .iter()
            .filter_map(|s| due::next_due(&s.schedule, s.last))
            .min();
        let sleep = next.map_or(MAX_SLEEP, |next| {
            let wait = next.duration_since(clock.now());
            Duration::try_from(wait)
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP)
        });
        tokio::select! {
            _ = options.stop.cancelled() => break,
            _ = tokio::time::sleep(sleep.min(QUEUE_POLL)) => {}
            _ = wakeups.next() => {
                // An enqueue or an answer: look at once, not at the next poll.
                queue.last_answers = None;
            }
            Some(ended) = ended_rx.recv() => {
                run_ended(ended, &mut slots, &mut queue, &ctx, clock.now()).await;
            }
        }
    }
    drain(&mut slots, &mut queue, &mut ended_rx).await;
    let _ = store.close().await;
    Ok(())
}

/// Stops every run: each is interrupted (its running steps cancelled, `finally` run, the run
/// parked `interrupted`), and serve waits until each has been journaled.
async fn drain(
    slots: &mut [Slot],
    queue: &mut Queue,
    ended_rx: &mut mpsc::UnboundedReceiver<RunEnded>,
) {
    let mut running = 0;
    for active in &queue.active {
        active.interrupt.cancel();
        running += 1;
    }
    for slot in slots.iter_mut() {
        for fire in slot.queued.drain(..) {
            info!(schedule = %slot.schedule.name, fire = %fire.at, reason = "draining", "skip");
        }
        for active in &slot.active {
            active.interrupt.cancel();
            running += 1;
        }
    }
    info!(runs = running, "drain");
    let parked = async {
        while running > 0 {
            let Some(ended) = ended_rx.recv().await else {
                break;
            };
            running -= 1;
            match ended.schedule {
                Some(index) => slots[index].active.retain(|a| a.run_id != ended.run_id),
                None => queue.active.retain(|a| a.run_id != ended.run_id),
            }
        }
    };
    if tokio::time::timeout(DRAIN_LIMIT, parked).await.is_err() {
        // Whatever did not park is still `running` in the journal, with this process gone:
        // the next start takes it over, as after a crash.
        error!(
            limit_s = DRAIN_LIMIT.as_secs(),
            "runs did not park in time; exiting anyway (they are taken over at the next start)"
        );
        return;
    }
    info!("drained");
}

/// How long a drain waits for runs to park. Interrupting a run cancels its steps (SIGTERM,
/// then SIGKILL after a grace period) and runs its `finally`, which is bounded too.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// A run has ended or parked: a fire waiting for its schedule's previous run, or for a free
/// worker, may start now.
async fn run_ended(
    ended: RunEnded,
    slots: &mut [Slot],
    queue: &mut Queue,
    ctx: &Loop<'_>,
    now: Timestamp,
) {
    match ended.schedule {
        Some(index) => slots[index].active.retain(|a| a.run_id != ended.run_id),
        None => queue.active.retain(|a| a.run_id != ended.run_id),
    }
    for index in 0..slots.len() {
        if busy(slots, queue) >= ctx.options.workers {
            return;
        }
        let slot = &mut slots[index];
        if slot.active.is_empty()
            && let Some(fire) = slot.queued.pop_front()
        {
            info!(schedule = %slot.schedule.name, fire = %fire.at, "queued fire starts");
            start_fire(index, slots, fire, ctx, now).await;
        }
    }
}

/// Claims queued runs while a worker is free, and now and then takes over the queue's
/// runs whose owner's lease ran out. A fire waiting for a worker goes first.
async fn work_queue(slots: &mut [Slot], queue: &mut Queue, ctx: &Loop<'_>) {
    let workers = ctx.options.workers;
    let waiting_fires = slots
        .iter()
        .any(|s| s.active.is_empty() && !s.queued.is_empty());
    if waiting_fires || ctx.options.stop.is_cancelled() {
        return;
    }
    let owner = crate::store::Owner::current();
    while busy(slots, queue) < workers {
        let lease = match ctx.store.claim_queued(&owner).await {
            Ok(Some(lease)) => lease,
            Ok(None) => break,
            Err(error) => {
                warn!(%error, "cannot look at the queue; trying again shortly");
                return;
            }
        };
        info!(run_id = %lease.run_id, "claimed from the queue");
        start_queued(queue, lease, "queued", ctx).await;
    }
    let expired_due = queue
        .last_takeover
        .is_none_or(|at| at.elapsed() >= TAKEOVER_POLL);
    let answers_due = queue
        .last_answers
        .is_none_or(|at| at.elapsed() >= ANSWERS_POLL);
    if (expired_due || answers_due) && busy(slots, queue) < workers {
        let now = Some(std::time::Instant::now());
        queue.last_takeover = now;
        if answers_due {
            queue.last_answers = now;
        }
        let looking = Looking {
            parked: answers_due,
        };
        if let Err(error) = take_over_expired(slots, queue, looking, ctx).await {
            warn!(%error, "cannot look for runs to take over; trying again shortly");
        }
    }
}

/// What a look for runs to take over includes besides runs whose owner's lease ran out.
#[derive(Clone, Copy)]
struct Looking {
    /// Parked runs that can go on: see [`can_go_on`].
    parked: bool,
}

/// Whether a parked run of the queue can go on: one `waiting` with an answer to an approval
/// that its journal does not hold yet (resuming it journals the answer), or one
/// `interrupted` by a stopping worker or a lost lock, not paused by a person. A run still
/// waiting for every answer stays parked: resuming it would only park it again.
async fn can_go_on(store: &dyn Store, run_id: &str, status: RunStatus) -> Result<bool, StoreError> {
    match status {
        RunStatus::Waiting => {
            let decisions = store.decisions(run_id).await?;
            if decisions.is_empty() {
                return Ok(false);
            }
            // One answer per person and step: a step that needs several approvers gets a
            // new answer while the journal already holds an earlier one.
            let journaled: Vec<(String, String)> = store
                .events(run_id)
                .await?
                .into_iter()
                .filter_map(|envelope| match envelope.event {
                    RunEvent::ApprovalGiven { path, by, .. } => Some((path, by)),
                    _ => None,
                })
                .collect();
            Ok(decisions.iter().any(|d| {
                !journaled
                    .iter()
                    .any(|(path, by)| *path == d.path && *by == d.by)
            }))
        }
        RunStatus::Interrupted => {
            let events = store.events(run_id).await?;
            let segment = events
                .iter()
                .rposition(|e| matches!(e.event, RunEvent::RunResumed { .. }))
                .unwrap_or(0);
            Ok(!events[segment..]
                .iter()
                .any(|e| matches!(e.event, RunEvent::RunPaused(_))))
        }
        _ => Ok(false),
    }
}

/// Takes over the queue's runs still `running` whose owner's lease ran out (a worker killed,
/// paused or cut off, on any host): the claim decides, by the store's clock. With
/// `looking.parked`, also resumes the queue's parked runs that can go on ([`can_go_on`]).
async fn take_over_expired(
    slots: &mut [Slot],
    queue: &mut Queue,
    looking: Looking,
    ctx: &Loop<'_>,
) -> Result<(), StoreError> {
    let store = ctx.store;
    let owner = crate::store::Owner::current();
    // Only the queue's runs that are not over: every second, whatever the store keeps.
    for summary in store.queue_not_over().await? {
        if busy(slots, queue) >= ctx.options.workers {
            break;
        }
        if queue.active.iter().any(|a| a.run_id == summary.id) {
            continue;
        }
        let goes_on = summary.status != RunStatus::Running
            && looking.parked
            && can_go_on(store, &summary.id, summary.status).await?;
        if summary.status != RunStatus::Running && !goes_on {
            continue;
        }
        match store.claim(&summary.id, &owner).await {
            Ok(lease) => {
                if goes_on {
                    info!(run_id = %summary.id, was = summary.status.name(), "resuming a parked run of the queue");
                    start_queued(queue, lease, "resumed", ctx).await;
                } else {
                    let was = summary.owner.map(|o| o.to_string()).unwrap_or_default();
                    info!(run_id = %summary.id, was_owned_by = %was, "takeover: its owner's lease ran out");
                    start_queued(queue, lease, "taken over", ctx).await;
                }
            }
            Err(StoreError::Owned { .. }) => {}
            Err(error) => warn!(run_id = %summary.id, %error, "cannot take the run over"),
        }
    }
    Ok(())
}

/// Resumes a run of the queue this process has claimed (from its journal: a new run starts,
/// a taken-over one goes on, its in-flight steps through their `verify`) in a task of its
/// own.
async fn start_queued(queue: &mut Queue, lease: crate::store::Lease, how: &str, ctx: &Loop<'_>) {
    let run_id = lease.run_id.clone();
    let own_store = match open_own_store(ctx.options).await {
        Ok(store) => store,
        Err(error) => {
            error!(run_id = %run_id, %error, "cannot open the store for the run; it goes back to the queue's takeover");
            let _ = ctx.store.release(&lease).await;
            return;
        }
    };
    let notice = |notice: app::Notice| info!(run_id = %run_id, "{notice}");
    let request = ResumeRequest {
        run_id: run_id.clone(),
        max_parallel: None,
        window_until: None,
    };
    match app::resume_claimed(own_store, lease, &request, &notice).await {
        Ok(run) => {
            info!(run_id = %run_id, how, "run started");
            let interrupt = CancellationToken::new();
            queue.active.push(Active {
                run_id: run_id.clone(),
                interrupt: interrupt.clone(),
            });
            spawn_run(
                None,
                "queue".to_owned(),
                run,
                interrupt,
                ctx.ended_tx.clone(),
            );
        }
        Err(failure) => {
            error!(run_id = %run_id, error = %describe_failure(&failure), "cannot run the queued run");
        }
    }
}

/// Decides what a due fire does, remembers it as the last fire, and does it.
async fn handle(
    index: usize,
    slots: &mut [Slot],
    queue: &Queue,
    fire: Fire,
    ctx: &Loop<'_>,
    now: Timestamp,
) {
    let store = ctx.store;
    let slot = &mut slots[index];
    slot.last = fire.at.timestamp();
    let name = slot.schedule.name.clone();
    if fire.passed_over {
        warn!(schedule = %name, fire = %fire.at, "the clock passed over earlier fire times: only the latest fires");
    }
    if let Some(reason) = &fire.skip {
        log_skip(&name, &fire, reason);
        remember(store, &name, &fire, "-").await;
        return;
    }
    if let Some(previous) = slot.active.last() {
        match slot.schedule.overlap {
            Overlap::Skip => {
                let reason = SkipReason::Overlap {
                    running: previous.run_id.clone(),
                };
                log_skip(&name, &fire, &reason);
                remember(store, &name, &fire, "-").await;
                return;
            }
            Overlap::Queue => {
                let behind = previous.run_id.clone();
                hold_fire(slot, store, fire, Some(&behind)).await;
                return;
            }
            Overlap::Cancel => {
                for active in &slot.active {
                    info!(schedule = %name, run_id = %active.run_id, "interrupting the previous run (overlap: cancel)");
                    let superseded = [active.run_id.clone()];
                    if let Err(error) = store
                        .add_records(SUPERSEDED, &active.run_id, RECORD_PATH, &superseded)
                        .await
                    {
                        warn!(run_id = %active.run_id, %error, "cannot record the run as superseded");
                    }
                    active.interrupt.cancel();
                }
            }
        }
    }
    if busy(slots, queue) >= ctx.options.workers {
        hold_fire(&mut slots[index], store, fire, None).await;
        return;
    }
    start_fire(index, slots, fire, ctx, now).await;
}

/// Keeps a fire in its schedule's queue, waiting for the schedule's `running` run, or
/// without one for a free worker; a full queue skips it.
async fn hold_fire(slot: &mut Slot, store: &dyn Store, fire: Fire, running: Option<&str>) {
    let name = &slot.schedule.name;
    remember(store, name, &fire, "-").await;
    if slot.queued.len() >= QUEUE_LIMIT {
        log_skip(name, &fire, &SkipReason::Failed("the queue is full".into()));
        return;
    }
    match running {
        Some(running) => {
            info!(schedule = %name, fire = %fire.at, running, "queued behind the running run")
        }
        None => {
            info!(schedule = %name, fire = %fire.at, "every worker is busy: the fire waits for one")
        }
    }
    slot.queued.push_back(fire);
}

fn log_skip(schedule: &str, fire: &Fire, reason: &SkipReason) {
    match reason {
        SkipReason::Blackout(what) => {
            info!(schedule, fire = %fire.at, reason = reason.name(), blackout = %what, "skip")
        }
        SkipReason::Overlap { running } => {
            info!(schedule, fire = %fire.at, reason = reason.name(), running = %running, "skip")
        }
        SkipReason::Failed(why) => {
            error!(schedule, fire = %fire.at, reason = reason.name(), error = %why, "skip")
        }
        SkipReason::Disabled | SkipReason::Missed | SkipReason::QueueFull => {
            info!(schedule, fire = %fire.at, reason = reason.name(), "skip")
        }
    }
}

/// Keeps the fire time in the store, so that a restart neither repeats nor re-decides it.
async fn remember(store: &dyn Store, schedule: &str, fire: &Fire, run_id: &str) {
    let value = [fire.at.timestamp().to_string()];
    if let Err(error) = store
        .add_records(&last_fire_record(schedule), run_id, RECORD_PATH, &value)
        .await
    {
        error!(schedule, fire = %fire.at, %error, "cannot record the fire in the store: a restart may repeat it");
    }
}

/// The last fire time a schedule recorded, if any.
pub async fn last_fire(store: &dyn Store, schedule: &str) -> Result<Option<Timestamp>, StoreError> {
    let entries = store.records(&last_fire_record(schedule)).await?;
    Ok(entries
        .iter()
        .filter_map(|entry| entry.value.parse::<Timestamp>().ok())
        .max())
}

/// Starts a run for a fire through the application layer. A runbook that became invalid,
/// a missing secret or a store that fails: the fire fails, logged with the diagnostics, and
/// the other schedules go on.
async fn start_fire(index: usize, slots: &mut [Slot], fire: Fire, ctx: &Loop<'_>, now: Timestamp) {
    let (store, options) = (ctx.store, ctx.options);
    let slot = &mut slots[index];
    let schedule = &slot.schedule;
    let late_ms = now.duration_since(fire.at.timestamp()).as_millis();
    let window_until = schedule.window_until(fire.at.timestamp());
    info!(
        schedule = %schedule.name,
        fire = %fire.at,
        late_ms = late_ms as i64,
        window_until = window_until.map(|w| w.to_string()),
        "fire"
    );
    let claimed = async {
        let bundle = app::load(&schedule.runbook, &[])?;
        let root = bundle.root().expect("a valid runbook has loaded");
        let inputs = crate::runbook::inputs::resolve(&root.runbook, Some(&schedule.inputs), &[])
            .map_err(|errors| {
                AppError::InvalidRunbook(
                    errors
                        .into_iter()
                        .map(|e| {
                            Diagnostic::plain(e.message.replace("the inputs file", "the schedule"))
                        })
                        .collect(),
                )
            })?;
        app::start(StartRequest {
            bundle,
            file: display_path(&schedule.runbook),
            inputs,
            run_id: None,
            store: options.store.clone(),
            max_parallel: None,
            origin: Some(RunOrigin {
                schedule: schedule.name.clone(),
                fire: fire.at.timestamp().to_string(),
            }),
            window_until,
            // The user serve runs as; `origin` says which schedule fired.
            started_by: None,
        })
        .await
    }
    .await;
    let run = match claimed {
        Ok(run) => run,
        Err(failure) => {
            let reason = SkipReason::Failed(describe_failure(&failure));
            log_skip(&schedule.name, &fire, &reason);
            remember(store, &schedule.name, &fire, "-").await;
            return;
        }
    };
    let run_id = run.run_id().to_owned();
    // From the fire time to the run's start: a busy machine or a slow store shows here.
    let lag = jiff::Timestamp::now().duration_since(fire.at.timestamp());
    options
        .metrics
        .fired(&schedule.name, lag.as_secs_f64().max(0.0));
    remember(store, &schedule.name, &fire, &run_id).await;
    info!(schedule = %schedule.name, run_id = %run_id, fire = %fire.at, "run started");
    let interrupt = CancellationToken::new();
    slot.active.push(Active {
        run_id: run_id.clone(),
        interrupt: interrupt.clone(),
    });
    spawn_run(
        Some(index),
        schedule.name.clone(),
        run,
        interrupt,
        ctx.ended_tx.clone(),
    );
}

/// Runs a claimed run to its end (or until it parks) in a task of its own, logs how it ended
/// and tells the loop.
fn spawn_run(
    index: Option<usize>,
    schedule: String,
    run: app::ClaimedRun,
    interrupt: CancellationToken,
    ended_tx: mpsc::UnboundedSender<RunEnded>,
) {
    // A run's future is not `Send` (the engine's is not): it runs on serve's own thread, in
    // the `LocalSet` serve is run in, while its actions use the runtime's workers.
    tokio::task::spawn_local(async move {
        // Tells the loop when this task ends, whichever way: a run that panicked must not
        // leave a drain waiting for it.
        let _ended = EndNotice {
            tx: ended_tx,
            schedule: index,
            run_id: run.run_id().to_owned(),
        };
        let watch = Watch {
            sink: Arc::new(QuietSink),
            interrupt,
        };
        let result = run.execute(watch).await;
        let status = result.outcome.status;
        match (&result.journal_error, status) {
            (Some(error), _) => {
                error!(%schedule, run_id = %result.run_id, %error, "run stopped: its journal cannot be written")
            }
            (None, RunStatus::Succeeded) => {
                info!(%schedule, run_id = %result.run_id, status = status.name(), "run ended")
            }
            (None, _) => warn!(
                %schedule,
                run_id = %result.run_id,
                status = status.name(),
                reason = result.outcome.reason.as_deref().unwrap_or(""),
                "run ended"
            ),
        }
    });
}

/// Sends [`RunEnded`] when dropped: at the end of a run's task, or when it unwinds.
struct EndNotice {
    tx: mpsc::UnboundedSender<RunEnded>,
    schedule: Option<usize>,
    run_id: String,
}

impl Drop for EndNotice {
    fn drop(&mut self) {
        let _ = self.tx.send(RunEnded {
            schedule: self.schedule,
            run_id: std::mem::take(&mut self.run_id),
        });
    }
}

/// What a person reads in the log about a fire that could not start a run: the diagnostics
/// as `file:line:col: message`, one per line.
fn describe_failure(failure: &AppError) -> String {
    let problems = match failure {
        AppError::InvalidRunbook(problems) | AppError::StoredRunbookInvalid { problems, .. } => {
            problems
        }
        other => return other.to_string(),
    };
    problems
        .iter()
        .map(|p| match p.location() {
            Some(at) => format!("{at}: {}", p.message),
            None => p.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Takes over the runs serve owned that were interrupted or whose process died, and resumes
/// each through [`app::resume`]: finished steps stay done, a step that was running goes
/// through its `verify`.
async fn take_over(slots: &mut [Slot], ctx: &Loop<'_>) -> Result<(), ServeError> {
    let (store, options) = (ctx.store, ctx.options);
    let superseded: Vec<String> = store
        .records(SUPERSEDED)
        .await?
        .into_iter()
        .map(|e| e.value)
        .collect();
    for summary in store.runs().await? {
        if !matches!(summary.status, RunStatus::Running | RunStatus::Interrupted)
            || superseded.contains(&summary.id)
        {
            continue;
        }
        let events = store.events(&summary.id).await?;
        let Some(Envelope {
            event:
                RunEvent::RunStarted {
                    origin: Some(origin),
                    ..
                },
            ..
        }) = events.first()
        else {
            continue;
        };
        let Some(index) = slots
            .iter()
            .position(|s| s.schedule.name == origin.schedule)
        else {
            continue;
        };
        let run_id = summary.id.clone();
        let own_store = open_own_store(options).await?;
        let notice = |notice: app::Notice| info!(run_id = %run_id, "{notice}");
        let window_until = origin
            .fire
            .parse()
            .ok()
            .and_then(|fire| slots[index].schedule.window_until(fire));
        let request = ResumeRequest {
            run_id: run_id.clone(),
            max_parallel: None,
            // The window of the run's fire: a window already over is refused, and the run
            // stays parked for a person (or the schedule's next window) to resume.
            window_until,
        };
        match app::resume(own_store, request, &notice).await {
            Ok(run) => {
                info!(
                    schedule = %origin.schedule,
                    run_id = %run_id,
                    was = summary.status.name(),
                    window_until = window_until.map(|w| w.to_string()),
                    "takeover"
                );
                let interrupt = CancellationToken::new();
                slots[index].active.push(Active {
                    run_id: run_id.clone(),
                    interrupt: interrupt.clone(),
                });
                spawn_run(
                    Some(index),
                    origin.schedule.clone(),
                    run,
                    interrupt,
                    ctx.ended_tx.clone(),
                );
            }
            Err(AppError::Store(StoreError::Owned { owner, .. })) => {
                info!(run_id = %run_id, %owner, "not taken over: another process runs it");
            }
            Err(failure) => {
                error!(run_id = %run_id, error = %describe_failure(&failure), "cannot take the run over");
            }
        }
    }
    Ok(())
}

/// A store handle for one run: the run closes the store it runs with when it ends, so each
/// gets one of its own.
async fn open_own_store(options: &ServeOptions) -> Result<Arc<dyn Store>, ServeError> {
    let location = StoreLocation::resolve(options.store.as_deref())
        .map_err(|e| ServeError::StoreLocation(e.to_string()))?;
    Ok(crate::store::open(&location).await?)
}

/// Serve logs the runs' beginnings and ends itself; their step events are in the journal
/// (`runbook runs show`, `runbook logs`).
struct QuietSink;

impl EventSink for QuietSink {
    fn emit(&self, _envelope: &Envelope) {}
}
