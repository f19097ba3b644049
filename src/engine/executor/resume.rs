//! A resumed run: where a step stood, and `verify` probes that find work already done.

use super::*;

impl Run {
    /// Where a step instance stood in the journal the run started from, when it had started
    /// and not ended for good.
    pub(super) fn resume_point(&self, path: &str) -> Option<StepRecord> {
        let state = self.state.lock().expect("state lock");
        state
            .steps
            .get(path)
            .filter(|r| r.attempts > 0 && matches!(r.status, None | Some(StepStatus::Cancelled)))
            .cloned()
    }

    /// Where the undo of a step instance stood, when it had started and not ended: the
    /// attempt under way is made again.
    pub(super) fn undo_resume_point(&self, path: &str) -> Option<crate::engine::state::UndoRecord> {
        let state = self.state.lock().expect("state lock");
        state
            .undos
            .get(path)
            .filter(|r| r.attempts > 0 && r.status.is_none())
            .cloned()
    }

    /// The `verify` probe of a step that a crash left in flight: `Some(outputs)` when it
    /// says the work is done. A probe that fails or cannot be read means "not done".
    pub(super) async fn verify(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
        verify: &Spanned<Verify>,
        cancel: &CancellationToken,
    ) -> Option<Value> {
        let action = verify.action()?;
        let node = step.node.get("verify");
        let body = Body {
            node: node.and_then(|n| n.get(action.key())),
            action,
            retry: None,
            // A probe is bounded as the step's action is.
            timeout: scope
                .loaded
                .runbook
                .applies(None, step.timeout.as_ref())
                .timeout,
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
}
