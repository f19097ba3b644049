//! A step's `notice`: rendered once the step has ended, recorded as its own event so that the
//! journal keeps it for `runs show` and a resumed run, and shown again at the run's end.

use super::{Instance, Run, Scope};
use crate::event::{RunEvent, StepStatus};
use crate::runbook::Step;
use crate::template::{self, Escape};
use serde_json::Value;

impl Run {
    /// Renders and records the notice of a step instance that has just ended, when it has
    /// one and ended succeeded or failed: a skipped step has nothing to say, and a cancelled
    /// one runs again on resume.
    pub(super) async fn notice(&self, scope: &Scope<'_>, step: &Step, instance: &Instance) {
        let Some(notice) = &step.notice else {
            return;
        };
        let ended = self
            .state
            .lock()
            .expect("state lock")
            .steps
            .get(&instance.path)
            .and_then(|record| {
                record
                    .status
                    .map(|status| (status, record.outputs.clone(), record.error.clone()))
            });
        let Some((status, outputs, error)) = ended else {
            return;
        };
        if !matches!(status, StepStatus::Succeeded | StepStatus::Failed) {
            return;
        }
        let mut context = self.template_context(scope, step, instance);
        context["step"]["status"] = Value::String(status.name().to_owned());
        context["step"]["outputs"] = outputs;
        context["step"]["error"] = error.map_or(Value::Null, Value::String);
        let text = match template::render(&notice.value, &context, Escape::Plain) {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            // The person must still learn that the step had something to say.
            Err(error) => format!(
                "(the notice of step `{}` could not be rendered: {error})",
                instance.path
            ),
        };
        // A notice that renders to nothing (its `{{#if}}` did not hold) has nothing to say.
        if text.trim().is_empty() {
            return;
        }
        // Durable before the run goes on: a notice is what a person acts on after a failure.
        let _ = self
            .emit(RunEvent::StepNotice {
                path: instance.path.clone(),
                text,
            })
            .await;
    }
}
