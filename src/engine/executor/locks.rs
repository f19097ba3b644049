//! Locks shared across runs: taken for the whole run before its first step (the runbook's
//! `locks`), or for one step instance while it runs (the step's `locks`), kept in the store
//! with a lease that a heartbeat renews while this process holds them.
//!
//! What a run keeps when it stops: a run that ends (succeeded, failed, cancelled) lets go
//! of its locks; a run parked waiting for an approval keeps them, without a lease, until it
//! is resumed and ends; an interrupted run (a signal, a crash) keeps them until their lease
//! runs out, so that a prompt resume finds them still its own.

use super::*;
use crate::event::{LockAcquired, LockHolding, LockReleased, LockWaiting};
use crate::store::{HeldLock, LockAttempt, LockHolder, Owner};
use std::collections::BTreeMap;

/// How long a lock's lease lasts without renewal, unless [`LEASE_VARIABLE`] says otherwise.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(30);

/// The environment variable that sets the lease of the locks a run takes (`5s`, `2m`).
pub const LEASE_VARIABLE: &str = "RUNBOOK_LOCK_LEASE";

/// The shortest lease: renewed every third of it, a shorter one would be lost to a busy
/// store.
const MIN_LEASE: Duration = Duration::from_millis(500);

/// How often a waiting run asks again for a held lock.
const ASK_AGAIN: Duration = Duration::from_millis(250);

/// The lease of the locks this process takes.
pub fn lock_lease() -> Result<Duration, String> {
    let Ok(text) = std::env::var(LEASE_VARIABLE) else {
        return Ok(DEFAULT_LOCK_LEASE);
    };
    match crate::runbook::Duration::parse(text.trim()) {
        Some(lease) if lease.0 >= MIN_LEASE => Ok(lease.0),
        _ => Err(format!(
            "{LEASE_VARIABLE}={text:?} is not a lease: give a duration of at least 500ms, \
             such as 30s"
        )),
    }
}

/// The locks this process holds for a run, by name and holding step (empty for the run
/// itself), with when each was taken; and what the heartbeat found if one was lost.
#[derive(Default)]
pub(super) struct RunLocks {
    held: Arc<Mutex<BTreeMap<(String, String), Instant>>>,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Cancelled when a lock was lost: its lease ran out (this process was paused, or the
    /// store unreachable) and another run took it. The run must stop: the lock no longer
    /// protects what it does.
    pub(super) lost: CancellationToken,
    lost_reason: Arc<Mutex<Option<String>>>,
}

impl RunLocks {
    pub(super) fn lost_reason(&self) -> Option<String> {
        self.lost_reason.lock().expect("lost lock").clone()
    }

    /// Whether the run already holds lock `name` for `path` or for something around it: the
    /// run itself, or a `uses` step whose runbook `path` is part of. Taking it again would
    /// wait for itself.
    fn held_around(&self, name: &str, path: &str) -> bool {
        self.held
            .lock()
            .expect("held lock")
            .keys()
            .any(|(held, by)| held == name && encloses(by, path))
    }

    /// Renews every lock of the run each third of the lease, until the run lets go of them.
    fn start_heartbeat(&self, store: Arc<dyn Store>, run_id: String, lease: Duration) {
        let mut heartbeat = self.heartbeat.lock().expect("heartbeat lock");
        if heartbeat.is_some() {
            return;
        }
        let held = self.held.clone();
        let lost = self.lost.clone();
        let lost_reason = self.lost_reason.clone();
        *heartbeat = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                // A store that fails now may answer at the next beat, within the lease.
                let Ok(renewed) = store.renew_locks(&run_id, lease).await else {
                    continue;
                };
                let missing = held
                    .lock()
                    .expect("held lock")
                    .keys()
                    .map(|(name, _)| name.clone())
                    .find(|name| !renewed.contains(name));
                if let Some(name) = missing {
                    *lost_reason.lock().expect("lost lock") = Some(format!(
                        "lost lock `{name}`: its lease ran out before this process renewed \
                         it, and another run may hold it now"
                    ));
                    lost.cancel();
                    return;
                }
            }
        }));
    }

    fn stop_heartbeat(&self) {
        if let Some(heartbeat) = self.heartbeat.lock().expect("heartbeat lock").take() {
            heartbeat.abort();
        }
    }
}

impl Drop for RunLocks {
    /// A run that ends without settling its locks (a panic) must not leave a task renewing
    /// them for as long as the runtime lives.
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

/// Why a wait for a lock ended without it.
pub(super) enum NotTaken {
    /// The wait was over (`lock_wait`, the deadline), or the lock could not be asked for.
    GaveUp(String),
    /// The run or the step was cancelled while it waited.
    Cancelled,
}

/// When a wait for a lock must end, and why.
pub(super) struct WaitBound {
    pub(super) until: Instant,
    pub(super) why: String,
    /// The run's window closes then: the runbook's `on_window_close` says what follows.
    pub(super) window: bool,
}

impl Run {
    /// Until when a wait for a lock may last: the `lock_wait` that applies, the run's
    /// deadline and the end of its window, whichever comes first. The one place that
    /// decides it.
    pub(super) fn lock_wait_bound(
        &self,
        asked: Instant,
        lock_wait: Option<Duration>,
    ) -> Option<WaitBound> {
        let by_wait = lock_wait.map(|wait| WaitBound {
            until: asked + wait,
            window: false,
            why: if wait.is_zero() {
                "`lock_wait` is 0s".to_owned()
            } else {
                format!(
                    "gave up after waiting {} (`lock_wait`)",
                    crate::runbook::Duration(wait)
                )
            },
        });
        let by_deadline = self.deadline_instant().map(|until| WaitBound {
            until,
            why: "the run's deadline came while it waited".to_owned(),
            window: false,
        });
        let by_window = self.window_until.map(|end| WaitBound {
            until: asked + left_until(end),
            why: format!("the run's window closed at {end} while it waited"),
            window: true,
        });
        [by_wait, by_deadline, by_window]
            .into_iter()
            .flatten()
            .min_by_key(|bound| bound.until)
    }

    /// When the run's deadline falls, counted from when this process started the run: the
    /// one reading of `deadline` for the run's own watch and for waits on locks.
    pub(super) fn deadline_instant(&self) -> Option<Instant> {
        let root = self.bundle.root()?;
        let deadline = root.runbook.deadline.as_ref()?;
        Some(match &deadline.value {
            crate::runbook::Deadline::After(after) => self.started + after.0,
            crate::runbook::Deadline::At(at) => Instant::now() + left_until(*at),
        })
    }

    /// Renders lock names: each must be non-empty text and carry no secret. Sorted and
    /// without repeats, so that runs taking several locks take them in one order and never
    /// wait for each other in a circle.
    fn render_lock_names(
        &self,
        names: &[Spanned<String>],
        context: &Value,
    ) -> Result<Vec<String>, String> {
        let mut rendered = Vec::new();
        for name in names {
            let text = match template::render(&name.value, context, Escape::Plain) {
                Ok(Value::String(text)) => text,
                Ok(other) => other.to_string(),
                Err(error) => return Err(format!("lock `{}`: {error}", name.value)),
            };
            if text.trim().is_empty() {
                return Err(format!("lock `{}` renders to an empty name", name.value));
            }
            if self.redactor.text(&text) != text {
                return Err(format!(
                    "lock `{}` renders to a name that carries a secret; lock names are kept \
                     in the store and shown to everyone",
                    name.value
                ));
            }
            rendered.push(text);
        }
        rendered.sort();
        rendered.dedup();
        Ok(rendered)
    }

    /// Takes the root runbook's locks before the run's first step, in name order; on
    /// failure lets go of those already taken and says why (`Err`).
    pub(super) async fn take_run_locks(
        &self,
        inputs: &Value,
        interrupt: &CancellationToken,
    ) -> Result<(), String> {
        let root = self
            .bundle
            .root()
            .expect("a valid bundle has its root runbook");
        let runbook = &root.runbook;
        if runbook.lock_names().is_empty() {
            return Ok(());
        }
        let context = json!({ "inputs": inputs, "run": self.run_json() });
        let names = self.render_lock_names(runbook.lock_names(), &context)?;
        match self
            .take_locks(&names, "", runbook.lock_wait(), interrupt)
            .await
        {
            Ok(()) => Ok(()),
            Err(NotTaken::GaveUp(reason)) => Err(reason),
            Err(NotTaken::Cancelled) => Err("interrupted while waiting for a lock".to_owned()),
        }
    }

    /// Runs the runbook a `uses` step calls, holding that runbook's own `locks` (for the
    /// step, under the runbook's prefix `deploy/`) while it runs.
    pub(super) async fn run_locked_scope(
        &self,
        child: &Scope<'_>,
        cancel: &CancellationToken,
    ) -> Result<Value, String> {
        let runbook = &child.loaded.runbook;
        if runbook.lock_names().is_empty() {
            return self.run_scope(child, cancel.clone()).await;
        }
        let context = json!({ "inputs": child.inputs, "run": self.run_json() });
        let names: Vec<String> = self
            .render_lock_names(runbook.lock_names(), &context)?
            .into_iter()
            .filter(|name| !self.locks.held_around(name, &child.prefix))
            .collect();
        match self
            .take_locks(&names, &child.prefix, runbook.lock_wait(), cancel)
            .await
        {
            Ok(()) => {}
            Err(NotTaken::GaveUp(reason)) => return Err(reason),
            Err(NotTaken::Cancelled) => return Err("cancelled while waiting for a lock".to_owned()),
        }
        let result = self.run_scope(child, cancel.clone()).await;
        self.release_locks(&names, &child.prefix).await;
        result
    }

    /// What becomes of the run's own locks as it stops: released when it is over, kept
    /// without a lease while it waits for an approval, left to their lease when it was
    /// interrupted.
    pub(super) async fn settle_run_locks(&self, status: RunStatus) {
        self.locks.stop_heartbeat();
        let Some(store) = &self.store else { return };
        let run_locks: Vec<String> = self
            .locks
            .held
            .lock()
            .expect("held lock")
            .keys()
            .filter(|(_, step)| step.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        if run_locks.is_empty() {
            return;
        }
        match status {
            // Parked half-way (for an answer, or for its next window): what the locks protect
            // may be half-changed, so they stay the run's until it is resumed and ends.
            RunStatus::Waiting | RunStatus::Parked => {
                let _ = store.keep_locks(&self.run_id).await;
            }
            RunStatus::Interrupted | RunStatus::Running | RunStatus::Queued => {}
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Undone => {
                self.release_locks(&run_locks, "").await;
            }
        }
    }

    /// A step instance, holding the step's locks while it runs (retries and fallback
    /// included). A lock the run holds for itself is not taken again.
    pub(super) async fn run_instance(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        cancel: &CancellationToken,
    ) -> StepStatus {
        if step.lock_names().is_empty() {
            return self
                .run_unlocked_instance(scope, step, instance, cancel)
                .await;
        }
        // Boxed: waiting for locks takes more room than running, and every instance of a
        // step (every item of a `for_each`) would carry that room while it waits to start.
        Box::pin(self.run_locked_instance(scope, step, instance, cancel)).await
    }

    /// [`Self::run_instance`] for a step that names locks.
    async fn run_locked_instance(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let started = Instant::now();
        let item = instance.item.as_ref().map(|(item, _)| item.clone());
        let context = self.template_context(scope, step, instance);
        let names = match self.render_lock_names(step.lock_names(), &context) {
            Ok(names) => names
                .into_iter()
                .filter(|name| !self.locks.held_around(name, &instance.path))
                .collect::<Vec<_>>(),
            Err(error) => {
                let ending = Ending::without_outputs(StepStatus::Failed, 0, Some(error));
                return self.end(&instance.path, item, started, ending).await;
            }
        };
        let wait = step.lock_wait(&scope.loaded.runbook);
        let ending = match self.take_locks(&names, &instance.path, wait, cancel).await {
            Ok(()) => None,
            Err(NotTaken::GaveUp(reason)) => Some((StepStatus::Failed, reason)),
            Err(NotTaken::Cancelled) => Some((
                StepStatus::Cancelled,
                "cancelled while waiting for a lock".to_owned(),
            )),
        };
        if let Some((status, error)) = ending {
            let ending = Ending::without_outputs(status, 0, Some(error));
            return self.end(&instance.path, item, started, ending).await;
        }
        let status = Box::pin(self.run_unlocked_instance(scope, step, instance, cancel)).await;
        self.release_locks(&names, &instance.path).await;
        status
    }

    /// Takes each lock in turn, waiting while another holds it; on failure lets go of those
    /// already taken.
    pub(super) async fn take_locks(
        &self,
        names: &[String],
        step: &str,
        lock_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<(), NotTaken> {
        for (index, name) in names.iter().enumerate() {
            if let Err(not_taken) = self.take_lock(name, step, lock_wait, cancel).await {
                self.release_locks(&names[..index], step).await;
                return Err(not_taken);
            }
        }
        Ok(())
    }

    async fn take_lock(
        &self,
        name: &str,
        step: &str,
        lock_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<(), NotTaken> {
        let Some(store) = self.store.clone() else {
            return Err(NotTaken::GaveUp(format!(
                "lock `{name}`: locks are kept in a store, and this run has none"
            )));
        };
        let lease = lock_lease().map_err(NotTaken::GaveUp)?;
        let holder = LockHolder {
            run_id: self.run_id.clone(),
            step: step.to_owned(),
            runbook: self.runbook_name.clone(),
            owner: Owner::current(),
        };
        let asked = Instant::now();
        let bound = self.lock_wait_bound(asked, lock_wait);
        let mut told: Option<(String, String)> = None;
        loop {
            let attempt = store
                .acquire_lock(name, &holder, lease)
                .await
                .map_err(|error| NotTaken::GaveUp(format!("lock `{name}`: {error}")))?;
            let held = match attempt {
                LockAttempt::Acquired(_) => {
                    self.locks
                        .held
                        .lock()
                        .expect("held lock")
                        .insert((name.to_owned(), step.to_owned()), Instant::now());
                    self.locks
                        .start_heartbeat(store, self.run_id.clone(), lease);
                    let _ = self
                        .emit(RunEvent::LockAcquired(LockAcquired {
                            lock: name.to_owned(),
                            step: step.to_owned(),
                            // Asking is not waiting: 0 when the lock was free at once.
                            waited_ms: if told.is_some() {
                                asked.elapsed().as_millis() as u64
                            } else {
                                0
                            },
                        }))
                        .await;
                    return Ok(());
                }
                LockAttempt::HeldBy(held) => held,
            };
            let holding = holding(&held);
            let who = (held.holder.run_id.clone(), held.holder.step.clone());
            if told.as_ref() != Some(&who) {
                told = Some(who);
                drop(self.emit(RunEvent::LockWaiting(LockWaiting {
                    lock: name.to_owned(),
                    step: step.to_owned(),
                    held_by: holding.clone(),
                })));
            }
            let now = Instant::now();
            let until = match &bound {
                Some(bound) if now >= bound.until => {
                    let reason = format!("lock `{name}` is held by {holding}; {}", bound.why);
                    if bound.window && self.on_window_close == crate::runbook::OnWindowClose::Park {
                        // As a window gate parks: nothing more starts, a later window resumes.
                        self.park_for_window(reason);
                        return Err(NotTaken::Cancelled);
                    }
                    return Err(NotTaken::GaveUp(reason));
                }
                Some(bound) => (now + ASK_AGAIN).min(bound.until),
                None => now + ASK_AGAIN,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = cancel.cancelled() => return Err(NotTaken::Cancelled),
            }
        }
    }

    /// Lets go of locks this process holds for `step` (empty: the run's own). Each is
    /// forgotten before it is released in the store, so that the heartbeat never takes a
    /// lock let go of for one lost.
    pub(super) async fn release_locks(&self, names: &[String], step: &str) {
        for name in names {
            let since = self
                .locks
                .held
                .lock()
                .expect("held lock")
                .remove(&(name.clone(), step.to_owned()));
            let Some(since) = since else { continue };
            let holder = LockHolder {
                run_id: self.run_id.clone(),
                step: step.to_owned(),
                runbook: self.runbook_name.clone(),
                owner: Owner::current(),
            };
            if let Some(store) = &self.store {
                // A release that fails leaves the lock to its lease, which runs out.
                let _ = store.release_lock(name, &holder).await;
            }
            drop(self.emit_soon(RunEvent::LockReleased(LockReleased {
                lock: name.clone(),
                step: step.to_owned(),
                held_ms: since.elapsed().as_millis() as u64,
            })));
        }
    }
}

/// Whether holder `by` (a step path, `deploy/` for the runbook a `uses` step runs, empty
/// for the run) encloses step path `path`.
fn encloses(by: &str, path: &str) -> bool {
    by.is_empty()
        || path == by
        || path
            .strip_prefix(by)
            .is_some_and(|rest| by.ends_with('/') || rest.starts_with('/') || rest.starts_with('['))
}

/// Who holds a lock, as the journal says it.
fn holding(held: &HeldLock) -> LockHolding {
    LockHolding {
        run_id: held.holder.run_id.clone(),
        runbook: held.holder.runbook.clone(),
        step: held.holder.step.clone(),
        host: held.holder.owner.host.clone(),
        pid: held.holder.owner.pid,
        since: held.acquired_at.clone(),
        expires_at: held.expires_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::encloses;

    #[test]
    fn a_holder_encloses_itself_its_items_and_what_its_runbook_runs() {
        assert!(encloses("", "anything"));
        assert!(encloses("deploy", "deploy"));
        assert!(encloses("deploy", "deploy[2]"));
        assert!(encloses("deploy", "deploy/restart"));
        assert!(encloses("deploy/", "deploy/restart"));
        assert!(encloses("deploy/", "deploy/inner/step"));
        assert!(!encloses("deploy", "deployment"));
        assert!(!encloses("deploy/", "deployment/x"));
        assert!(!encloses("deploy[1]", "deploy[10]"));
        assert!(!encloses("restart", "deploy/restart"));
    }
}
