//! Undoing a run: the `undo` of every step that succeeded (each succeeded item of a
//! `for_each` step), in reverse order of the graph. A step's undo starts once the undos of
//! every step that depends on it have ended, directly or through steps without one;
//! independent undos run at once, within `max_parallel`. Each attempt is journaled as an
//! undo event, so a resumed run goes on with the undos that had not ended.

use super::*;

/// How the undo of a run went.
#[derive(Debug, Clone)]
pub(super) enum UndoOutcome {
    /// Every undo that was due succeeded.
    Done { why: String, undone: usize },
    /// An undo failed after its retries: why, and what was left not undone.
    Failed(String),
    /// It stopped before the end (a signal, a broken journal): a resume continues it.
    Stopped,
}

impl UndoOutcome {
    /// The run's status and reason after its undo.
    pub(super) fn ending(&self) -> (RunStatus, Option<String>) {
        match self {
            UndoOutcome::Done { why, undone } => {
                let plural = if *undone == 1 { "" } else { "s" };
                (
                    RunStatus::Undone,
                    Some(format!("{why}; {undone} step{plural} undone")),
                )
            }
            UndoOutcome::Failed(reason) => (RunStatus::Failed, Some(reason.clone())),
            UndoOutcome::Stopped => (
                RunStatus::Interrupted,
                Some("interrupted while undoing; runbook resume goes on with the undo".to_owned()),
            ),
        }
    }
}

/// How the undo of one step (all its items) ended.
enum StepUndo {
    Succeeded,
    Failed(Vec<String>),
    Cancelled,
}

impl Run {
    /// Why the run is undone now, if it is: a journaled undo goes on, an abort with undo,
    /// or a failure the runbook undoes (`on_failure: undo`, `on_window_close: undo`).
    pub(super) fn undo_reason(&self, failure: Option<&String>) -> Option<String> {
        if let Some(why) = self.state.lock().expect("state lock").run.undoing.clone() {
            return Some(why);
        }
        let stop = *self.stop.lock().expect("stop lock");
        match stop {
            Some(StopReason::Aborted) => return self.abort_undoes(),
            None | Some(StopReason::Deadline) => {}
            // Parked or interrupted: the run is not over, nothing is undone.
            Some(_) => return None,
        }
        let window = self.window_failure.lock().expect("window lock").clone();
        let failure = if stop == Some(StopReason::Deadline) {
            "the deadline passed".to_owned()
        } else {
            failure?.clone()
        };
        if let Some(gate) = window
            && self.on_window_close == crate::runbook::OnWindowClose::Undo
        {
            return Some(format!("{gate} (on_window_close: undo)"));
        }
        (self.on_failure == crate::runbook::OnFailure::Undo)
            .then(|| format!("{failure} (on_failure: undo)"))
    }

    /// Undoes the run's root runbook and records how it went.
    pub(super) async fn undo_run(
        &self,
        scope: &Scope<'_>,
        why: String,
        cancel: &CancellationToken,
    ) {
        let outcome = self.undo_steps(scope, why, cancel).await;
        *self.undo_outcome.lock().expect("undo lock") = Some(outcome);
    }

    async fn undo_steps(
        &self,
        scope: &Scope<'_>,
        why: String,
        cancel: &CancellationToken,
    ) -> UndoOutcome {
        let journaled = self.state.lock().expect("state lock").run.undoing.clone();
        let why = match journaled {
            Some(why) => why,
            None => {
                // Durable before the first undo: a resume knows to go on undoing.
                let begun = self.emit(RunEvent::RunUndoing {
                    reason: why.clone(),
                });
                if begun.await.is_err() {
                    return UndoOutcome::Stopped;
                }
                why
            }
        };
        let runbook = &scope.loaded.runbook;
        let dag = Dag::new(runbook);
        let steps: Vec<&Step> = runbook.all_steps().collect();
        for step in &steps {
            self.refresh(scope, &step.id.value);
        }
        let mut work = self.undo_work(scope, &dag, &steps);
        let members: Vec<usize> = (0..steps.len())
            .filter(|&i| dag.sections[i] == Section::Steps)
            .collect();
        // A step's undo waits for the undos of the steps that need it.
        let mut waiting = vec![0usize; steps.len()];
        for &index in &members {
            for need in &dag.needs[index] {
                waiting[need.step] += 1;
            }
        }
        let mut ready: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| waiting[i] == 0)
            .collect();
        let mut pending: Vec<bool> = work.iter().map(|w| !w.is_empty()).collect();
        let mut undone = 0;
        let mut failures = Vec::new();
        let mut stopped = false;
        let mut running = FuturesUnordered::new();
        loop {
            while let Some(index) = ready.pop() {
                if work[index].is_empty() {
                    // Nothing of its own to undo: the steps it needs may go on.
                    for need in &dag.needs[index] {
                        waiting[need.step] -= 1;
                        if waiting[need.step] == 0 {
                            ready.push(need.step);
                        }
                    }
                    continue;
                }
                if cancel.is_cancelled() {
                    continue;
                }
                let instances = std::mem::take(&mut work[index]);
                let step = steps[index];
                running.push(async move {
                    (index, self.undo_step(scope, step, instances, cancel).await)
                });
            }
            let Some((index, ended)) = running.next().await else {
                break;
            };
            match ended {
                StepUndo::Succeeded => {
                    pending[index] = false;
                    undone += 1;
                    ready.push(index);
                }
                StepUndo::Failed(errors) => {
                    pending[index] = false;
                    failures.extend(errors);
                }
                StepUndo::Cancelled => stopped = true,
            }
        }
        if stopped || cancel.is_cancelled() {
            return UndoOutcome::Stopped;
        }
        if failures.is_empty() {
            return UndoOutcome::Done { why, undone };
        }
        let left: Vec<&str> = members
            .iter()
            .filter(|&&i| pending[i])
            .map(|&i| dag.ids[i].as_str())
            .collect();
        let left = if left.is_empty() {
            String::new()
        } else {
            format!(
                "; not undone, since they come after it: {}",
                left.join(", ")
            )
        };
        UndoOutcome::Failed(format!("{}{left}", failures.join("; ")))
    }

    /// The instances whose undo is due, by step: those that succeeded (each succeeded item
    /// of a `for_each`), less those an earlier segment of the run already undid.
    fn undo_work(&self, scope: &Scope<'_>, dag: &Dag, steps: &[&Step]) -> Vec<Vec<Instance>> {
        let state = self.state.lock().expect("state lock");
        let due = |path: &str| {
            state.steps.get(path).and_then(|r| r.status) == Some(StepStatus::Succeeded)
                && state.undos.get(path).and_then(|u| u.status) != Some(StepStatus::Succeeded)
        };
        steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                if dag.sections[index] != Section::Steps || step.undo.is_none() {
                    return Vec::new();
                }
                let path = format!("{}{}", scope.prefix, step.id.value);
                if step.for_each.is_none() {
                    return if due(&path) {
                        vec![Instance {
                            path,
                            item: None,
                            undoing: true,
                        }]
                    } else {
                        Vec::new()
                    };
                }
                let items = state
                    .steps
                    .get(&path)
                    .and_then(|r| r.expanded().cloned())
                    .unwrap_or_default();
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| Instance {
                        path: format!("{path}[{index}]"),
                        item: Some((item, index)),
                        undoing: true,
                    })
                    .filter(|instance| due(&instance.path))
                    .collect()
            })
            .collect()
    }

    /// The undo of one step: each of its instances, at once within the step's
    /// `max_parallel`.
    async fn undo_step(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instances: Vec<Instance>,
        cancel: &CancellationToken,
    ) -> StepUndo {
        let limit = Semaphore::new(
            step.max_parallel
                .as_ref()
                .map_or(Semaphore::MAX_PERMITS, |m| (m.value as usize).max(1)),
        );
        let mut undos: FuturesUnordered<_> = instances
            .iter()
            .map(|instance| {
                let limit = &limit;
                async move {
                    let _permit = limit.acquire().await.expect("never closed");
                    self.undo_instance(scope, step, instance, cancel).await
                }
            })
            .collect();
        let mut failed = Vec::new();
        let mut cancelled = false;
        while let Some(ended) = undos.next().await {
            match ended {
                Ok(()) => {}
                Err(None) => cancelled = true,
                Err(Some(error)) => failed.push(error),
            }
        }
        if cancelled {
            StepUndo::Cancelled
        } else if failed.is_empty() {
            StepUndo::Succeeded
        } else {
            StepUndo::Failed(failed)
        }
    }

    /// One undo, with its retries; `Err(None)` when it was cancelled.
    async fn undo_instance(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        cancel: &CancellationToken,
    ) -> Result<(), Option<String>> {
        let started = Instant::now();
        let undo = step
            .undo
            .as_ref()
            .expect("only steps with an undo are undone");
        let (attempts, result) = match undo.action() {
            None => (0, Err(failure("the undo has no action"))),
            Some(action) => {
                let applies = scope
                    .loaded
                    .runbook
                    .applies(undo.retry.as_ref(), undo.timeout.as_ref());
                let body = Body {
                    node: step.node.get("undo").and_then(|n| n.get(action.key())),
                    action,
                    retry: applies.retry,
                    timeout: applies.timeout,
                    until: undo.until.as_ref(),
                    poll: undo.poll.as_ref(),
                    outputs: None,
                };
                self.attempts(scope, step, instance, &body, Phase::Undo, cancel)
                    .await
            }
        };
        let (status, error) = match result {
            Ok(_) => (StepStatus::Succeeded, None),
            Err(failure) if failure.cancelled => (StepStatus::Cancelled, Some(failure.message)),
            Err(failure) => (StepStatus::Failed, Some(failure.message)),
        };
        let ended = self.emit(RunEvent::UndoEnded {
            path: instance.path.clone(),
            status,
            attempts,
            error: error.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        // Durable before the undos that wait for it start.
        if ended.await.is_err() {
            return Err(None);
        }
        match status {
            StepStatus::Succeeded => Ok(()),
            StepStatus::Cancelled => Err(None),
            _ => Err(Some(format!(
                "the undo of `{}` failed: {}",
                instance.path,
                error.unwrap_or_default()
            ))),
        }
    }
}
