//! One step: its `when`, `for_each` instances, and how each instance ends.

use super::*;

impl Run {
    /// One step: `when`, then one instance, or one per item of `for_each`.
    pub(super) async fn run_step(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let path = format!("{}{}", scope.prefix, step.id.value);
        let started = Instant::now();
        // As the run stands when the step is taken up; made only for a step that asks (a
        // step of a chain has neither, and the context is built anew as each step ends).
        let context =
            (step.when.is_some() || step.for_each.is_some()).then(|| self.jq_context(scope, None));
        // A step the journal saw start has passed its `when` already.
        // Only what is needed is kept: this future is alive for every step at once.
        let (started_before, expanded, items_withheld) = {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(&path);
            // A `finally` step that ended before the run was parked (or reopened by a
            // control) runs for a new end: its `when` is asked again.
            let finally_again = record
                .is_some_and(|r| r.status.is_some() && r.segment != state.run.parks)
                && scope
                    .loaded
                    .runbook
                    .finally
                    .iter()
                    .any(|s| std::ptr::eq(s, step));
            (
                record.is_some() && !finally_again,
                record.and_then(|r| r.expanded().cloned()),
                record.and_then(|r| r.withheld().get("items").cloned()),
            )
        };
        if self.any_withheld {
            let mut texts = Vec::new();
            step.node
                .for_each_string(&mut |text, _| texts.push(text.to_owned()));
            if let Some((read, reason)) =
                self.withheld_read(scope, texts.iter().map(String::as_str))
            {
                return Box::pin(self.refuse_withheld(&path, started, read, reason)).await;
            }
        }
        if let Some(reason) = items_withheld {
            let read = format!("the items of `{path}`");
            return Box::pin(self.refuse_withheld(&path, started, read, reason)).await;
        }
        if let Some(when) = step.when.as_ref().filter(|_| !started_before)
            && let Some(context) = &context
        {
            match self.evaluate(&when.value, context.clone(), context) {
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
        if let Some(window) = step.window.as_ref().filter(|_| !started_before)
            && let Some(status) = Box::pin(self.gate(&path, step, &window.value, started)).await
        {
            return status;
        }
        let (Some(for_each), Some(context)) = (&step.for_each, context) else {
            let instance = Instance {
                path,
                item: None,
                undoing: false,
            };
            let status = self.run_instance(scope, step, &instance, cancel).await;
            self.notice(scope, step, &instance).await;
            return status;
        };
        // Boxed: a `for_each` needs room for its items that every other step would carry.
        let each = ForEach {
            expression: &for_each.value,
            path,
            expanded,
            started,
            context,
        };
        Box::pin(self.run_for_each(scope, step, each, cancel)).await
    }

    /// A `for_each` step: its items, expanded once and journaled, then one instance each.
    async fn run_for_each(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        each: ForEach<'_>,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let ForEach {
            expression,
            path,
            expanded,
            started,
            context,
        } = each;
        let evaluated = match expanded {
            Some(items) => Ok(Value::Array(items)),
            None => self.evaluate(expression, context.clone(), &context),
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
            .is_some_and(|r| r.expanded().is_some());
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
        // Items start in order, no more under way at once than the step's `max_parallel`
        // allows, or without one than the engine can hold open (see
        // [`limits::items_under_way`]): an item not yet started costs nothing, so a fan-out
        // of 50,000 holds the memory and the open files of a few thousand at most.
        let under_way = step
            .max_parallel
            .as_ref()
            .map_or_else(limits::items_under_way, |m| (m.value as usize).max(1));
        let instance = |(index, item)| {
            let instance = Instance {
                path: format!("{path}[{index}]"),
                item: Some((item, index)),
                undoing: false,
            };
            async move {
                if let Some(status) = self.recorded_end(&instance.path, false) {
                    return status;
                }
                let status = self.run_instance(scope, step, &instance, cancel).await;
                self.notice(scope, step, &instance).await;
                status
            }
        };
        let mut waiting = items.into_iter().enumerate();
        let mut instances: FuturesUnordered<_> =
            waiting.by_ref().take(under_way).map(instance).collect();
        let mut statuses = Vec::new();
        while let Some(status) = instances.next().await {
            statuses.push(status);
            if let Some(next) = waiting.next() {
                instances.push(instance(next));
            }
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
    pub(super) async fn end(
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

    /// One instance, its locks held (see `run_instance`): attempts of the action with
    /// retries, then the fallback.
    pub(super) async fn run_unlocked_instance(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        cancel: &CancellationToken,
    ) -> StepStatus {
        let started = Instant::now();
        // The item is copied for the step's end only: every instance waiting to start would
        // otherwise hold a second copy of it.
        let item = || instance.item.as_ref().map(|(item, _)| item.clone());
        let applies = scope
            .loaded
            .runbook
            .applies(step.retry.as_ref(), step.timeout.as_ref());
        let Some(action) = step.action() else {
            return self
                .end(
                    &instance.path,
                    item(),
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
            action_attempts: r.action_attempts(),
            action_error: r.action_error().map(str::to_owned),
        });
        let in_flight = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&instance.path);
        if in_flight
            && let Some(verify) = &step.verify
            && let Some(outputs) =
                Box::pin(self.verify(scope, step, instance, verify, cancel)).await
        {
            let attempts = resumed.as_ref().map_or(1, |r| r.attempts);
            return self
                .end(
                    &instance.path,
                    item(),
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
            retry: applies.retry,
            timeout: applies.timeout,
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
                self.attempts(scope, step, instance, &body, Phase::Action, cancel)
                    .await
            }
        };
        match result {
            Err(failure) if failure.parked => StepStatus::Cancelled,
            Ok(outputs) => {
                self.end(
                    &instance.path,
                    item(),
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
                    item(),
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
                            item(),
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
                    cancel,
                ))
                .await
                {
                    (fallback_attempts, Ok(outputs)) => {
                        self.end(
                            &instance.path,
                            item(),
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
                            item(),
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
}

/// What [`Run::run_step`] hands to [`Run::run_for_each`].
struct ForEach<'a> {
    /// The jq expression that gives the items.
    expression: &'a str,
    path: String,
    /// The items a journal this run resumed from had fixed.
    expanded: Option<Vec<Value>>,
    started: Instant,
    context: Val,
}
