//! Attempts of a step's action: retries with backoff, `until` polling, timeouts, and
//! the fallback once the action has given up.

use super::*;

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_fallback(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        fallback: &Spanned<Fallback>,
        node: Option<&crate::runbook::Node>,
        cancel: &CancellationToken,
    ) -> (u32, Result<Value, Failure>) {
        let Some(action) = fallback.action() else {
            return (0, Err(failure("the fallback has no action")));
        };
        let applies = scope
            .loaded
            .runbook
            .applies(fallback.retry.as_ref(), fallback.timeout.as_ref());
        let body = Body {
            node: node.and_then(|n| n.get(action.key())),
            action,
            retry: applies.retry,
            timeout: applies.timeout,
            until: fallback.until.as_ref(),
            poll: fallback.poll.as_ref(),
            outputs: fallback.outputs.as_ref(),
        };
        self.attempts(scope, step, instance, &body, Phase::Fallback, cancel)
            .await
    }

    /// Attempts of one body until one succeeds or the policy is exhausted.
    pub(super) async fn attempts(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        phase: Phase,
        cancel: &CancellationToken,
    ) -> (u32, Result<Value, Failure>) {
        let fallback = phase == Phase::Fallback;
        let policy = body
            .retry
            .map(|r| RetryPolicy::from(&r.value))
            .unwrap_or_default();
        let mut last = failure("no attempt ran");
        // Where a resumed run left this body: the attempt under way is made again (with the
        // same step.key); one that had already failed is not.
        let mut first = 1;
        if phase == Phase::Undo {
            if let Some(record) = self.undo_resume_point(&instance.path) {
                first = record.attempts + u32::from(record.attempt_failed);
            }
        } else if let Some(record) = self
            .resume_point(&instance.path)
            .filter(|r| r.fallback == fallback)
        {
            first = record.attempts + u32::from(record.attempt_failed);
            if let Some(error) = record.action_error().filter(|_| !fallback) {
                last = failure(error);
            }
        }
        let first = first.max(1);
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
            let durable = self.emit(match phase {
                Phase::Undo => RunEvent::UndoStarted {
                    path: instance.path.clone(),
                    attempt,
                    attempts: policy.attempts,
                },
                _ => RunEvent::StepStarted {
                    path: instance.path.clone(),
                    attempt,
                    attempts: policy.attempts,
                    fallback,
                },
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
                    let path = instance.path.clone();
                    let (message, retry_in_ms) = (
                        error.message.clone(),
                        retry_in.map(|d| d.as_millis() as u64),
                    );
                    drop(self.emit(match phase {
                        Phase::Undo => RunEvent::UndoAttemptFailed {
                            path,
                            attempt,
                            error: message,
                            retry_in_ms,
                        },
                        _ => RunEvent::StepAttemptFailed {
                            path,
                            attempt,
                            error: message,
                            retry_in_ms,
                            fallback,
                        },
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

    /// Counts a step instance as work under way until the guard drops.
    pub(super) fn hold_busy(&self) -> BusyGuard<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.activity.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self)
    }

    /// One attempt: the action (polled until `until` holds), bounded by the timeout, then
    /// its outputs.
    pub(super) async fn attempt(
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
        match body.outputs {
            Some(outputs) => {
                let context = self.jq_context(scope, Some((step, instance)));
                let result_val = jq::to_val(&result);
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
    pub(super) async fn poll_action(
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
    pub(super) async fn run_action(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        body: &Body<'_>,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        // The contexts are made when the action first reads them, and only for text that
        // has a template: an item of a wide fan-out holds them from its start until its
        // program ends, most commands have no template, and `[/bin/true]` renders to
        // itself whatever the context.
        let template_cell = std::sync::OnceLock::new();
        let context = || template_cell.get_or_init(|| self.template_context(scope, step, instance));
        let jq_cell = std::sync::OnceLock::new();
        let jq_context = || jq_cell.get_or_init(|| self.jq_context(scope, Some((step, instance))));
        if let ActionRef::Uses(uses, with) = body.action {
            return self
                .run_uses(
                    scope,
                    instance,
                    &uses.value,
                    with.map(|w| &w.value),
                    context(),
                    cancel,
                )
                .await;
        }
        if let ActionRef::Approval(approval) = body.action {
            return self.approval(instance, approval, context(), cancel).await;
        }
        if let ActionRef::Record(record) = body.action {
            return self.record(instance, record, context()).await;
        }
        let Some(action) = action_for(body.action.key()) else {
            return Err(failure(format!(
                "the `{}` action cannot run yet in this version",
                body.action.key()
            )));
        };
        let raw = body.node.map_or(Value::Null, |n| n.to_json());
        let render = |value: &Value, escape: Escape| match has_template(value) {
            true => template::render_value(value, context(), escape),
            false => template::render_value(value, &Value::Null, escape),
        };
        let render_pieces = |text: &str| match text.contains("{{") {
            true => template::render_pieces(text, context()),
            false => template::render_pieces(text, &Value::Null),
        };
        let eval = |expression: &str| {
            let context = jq_context();
            self.evaluate(expression, context.clone(), context)
        };
        let eval_over = |expression: &str, value: &Value| {
            self.evaluate(expression, jq::to_val(value), jq_context())
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
            processes: &self.processes,
            // This step counts itself.
            alone_in_run: self.busy.load(Ordering::SeqCst) == 1,
        };
        let outcome = action.run(input).await;
        // What the program printed is journaled whether it succeeded or not: a failure is
        // when it matters most.
        let result = match &outcome {
            Ok(result) => Some(result),
            Err(error) => error.result.as_ref(),
        };
        if let Some(event) = result.and_then(|r| {
            crate::engine::step_output::step_output_event(&instance.path, r, &self.redactor)
        }) {
            drop(self.emit_soon(event));
        }
        outcome.map_err(Failure::from)
    }
}

/// Whether a string inside `value` is a template: one without `{{` renders to itself.
fn has_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("{{"),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// Which body of a step its attempts are of: each is journaled as its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Action,
    Fallback,
    Undo,
}

/// Drops a step instance from the work under way.
pub(super) struct BusyGuard<'r>(&'r Run);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.activity.fetch_add(1, Ordering::Relaxed);
    }
}
