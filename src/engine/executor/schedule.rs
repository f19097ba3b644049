//! Scheduling: which steps of a runbook are ready, running them as their needs end,
//! `finally` after the rest, and the run-wide limit on steps at once.

use super::*;

impl Run {
    /// Runs the steps of one runbook, then its `finally`; evaluates its outputs.
    /// `Err` carries why the runbook failed.
    pub(super) fn run_scope<'a>(
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
            // The root runbook is undone, when it is, before its `finally`.
            if scope.prefix.is_empty()
                && let Some(why) = self.undo_reason(main_error.as_ref())
            {
                let token = self.journal.broken().child_token();
                let undo = self.undo_run(scope, why, &token);
                tokio::pin!(undo);
                tokio::select! {
                    _ = &mut undo => {}
                    _ = self.interrupt.cancelled() => {
                        token.cancel();
                        undo.await;
                    }
                }
            }
            if scope.prefix.is_empty() {
                *self.finishing.lock().expect("finishing lock") = true;
            }
            // `finally` runs even after a failure, the first Ctrl-C or the deadline. It does
            // not run when the run parks (the run is not over), nor when the journal broke
            // (nothing it did could be recorded).
            let stop = *self.stop.lock().expect("stop lock");
            let finally_error = if matches!(
                stop,
                Some(
                    StopReason::Parked
                        | StopReason::Journal
                        | StopReason::Withheld
                        | StopReason::WindowClosed
                        | StopReason::Paused
                )
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
            // Steps of this runbook were left unstarted for a later window: it is not over.
            if self.window_closed() {
                return Err("parked until a later window".to_owned());
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
            let mut outputs = Map::new();
            // Made only when there is something to read it: see `Scope::stale_steps`.
            let context = if scope.loaded.runbook.outputs.is_empty() {
                Val::Null
            } else {
                self.jq_context(scope, None)
            };
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
                self.state.lock().expect("state lock").run.outputs = outputs.clone();
            }
            Ok(outputs)
        })
    }

    /// Runs a set of steps as their needs allow. Returns the first failure, if any.
    pub(super) async fn run_steps(
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
            // Once the window has closed on a gated step, nothing more starts; what runs
            // finishes, and the rest waits for a later window.
            if failure.is_none() && !cancel.is_cancelled() && !self.window_closed() {
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
}
