//! The actions a step runs: `exec`, `http`, `kubernetes`, `assert`, `sleep`.
//!
//! Each action lives in its own file behind the small [`Action`] trait and is found by its
//! YAML key through [`action_for`]. An action gets its body exactly as the runbook wrote it
//! (templates not rendered yet) and renders it itself, because only the action knows how each
//! field is rendered: an exec `script` gets its values as environment variables, everything
//! else is plain, and some
//! fields (`sleep`'s duration, `assert.that`) are not templates at all.
//!
//! Results are JSON objects (the contract in the language docs); a failure is an
//! [`ActionError`] that still carries the result when there is one, so that a non-zero exit
//! or an unexpected HTTP status can be shown and polled on.

pub mod assert;
mod body;
pub mod exec;
pub mod http;
pub mod kubernetes;
pub mod sleep;

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::process::RunProcesses;
use crate::runbook::validate::Bundle;

use crate::template::{Escape, Piece, RenderError};

/// Renders every template inside a value against the step's context.
pub type RenderFn<'a> = dyn Fn(&Value, Escape) -> Result<Value, RenderError> + Sync + 'a;

/// Renders one template against the step's context, keeping its values apart from its text
/// ([`crate::template::render_pieces`]), for fields where a value must stay data: an exec
/// script, a URL.
pub type RenderPiecesFn<'a> = dyn Fn(&str) -> Result<Vec<Piece>, RenderError> + Sync + 'a;

/// Evaluates one jq expression over the step's context, to its first value.
pub type EvalFn<'a> = dyn Fn(&str) -> Result<Value, String> + Sync + 'a;

/// Evaluates one jq expression over a value (a resource, a response), with the step's context
/// at `$ctx`, to its first value.
pub type EvalOverFn<'a> = dyn Fn(&str, &Value) -> Result<Value, String> + Sync + 'a;

/// Shows the user a message they must see (a warning), wherever the engine sends output.
pub type WarnFn<'a> = dyn Fn(String) + Sync + 'a;

/// What an action gets when it runs.
pub struct ActionInput<'a> {
    /// Its body from the runbook, as JSON, with templates not yet rendered.
    pub body: &'a Value,
    /// Renders templates against the step's context.
    pub render: &'a RenderFn<'a>,
    /// Renders one template with its values kept apart: an exec `script` makes them
    /// environment variables, an http `url` percent-encodes them.
    pub render_pieces: &'a RenderPiecesFn<'a>,
    /// Evaluates a jq expression over the context (used by `assert`).
    pub eval: &'a EvalFn<'a>,
    /// Evaluates a jq expression over a value, the context at `$ctx` (`kubernetes.wait`).
    pub eval_over: &'a EvalOverFn<'a>,
    /// Cancelled when the attempt times out, the run reaches its deadline or the user
    /// interrupts it: the action stops promptly and cleans up after itself.
    pub cancel: CancellationToken,
    /// Where to say something the user must see, such as a disabled TLS check.
    pub warn: &'a WarnFn<'a>,
    /// The step path (`snapshot[2]/trigger`), for messages.
    pub step_path: &'a str,
    /// The processes of the run: how a step command is started, so that it is marked,
    /// supervised and stopped with the run it belongs to.
    pub processes: &'a RunProcesses,
    /// No other step of the run is under way: nothing else of it needs the thread the
    /// action runs on, which may wait there a moment (see
    /// [`StepChild::wait_here`](crate::process::StepChild::wait_here)).
    pub alone_in_run: bool,
}

/// The future an action returns. `Send` so the engine can run steps on any worker thread.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send + 'a>>;

/// The future of a preflight check.
pub type PreflightFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), PreflightError>> + Send + 'a>>;

/// One kind of action: how it runs, and what it adds to a plan and to the checks before a
/// run starts. What the language knows of it (its fields, their rules, its one-line
/// summary) is in `runbook::model`, in a file of the same name.
pub trait Action: Send + Sync {
    /// Its key in YAML (`"exec"`).
    fn key(&self) -> &'static str;

    /// Runs it once. Dropping the future stops it too, as cancelling does (with less
    /// grace: no asynchronous clean-up can run in a destructor).
    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a>;

    /// How a dry run shows a body of this action whose templates are rendered as far as
    /// the inputs allow, when the action can say more than its one-line summary (the
    /// request a `kubernetes` step would send). `None`: the summary and the body as written.
    fn plan_view(&self, _body: &Value) -> Option<PlanView> {
        None
    }

    /// Refuses a run before anything starts when this action's steps cannot work at all
    /// (a `kubernetes` step without a usable cluster configuration). `inputs` are the root
    /// runbook's. Most actions have nothing to check.
    fn preflight<'a>(
        &'a self,
        _bundle: &'a Bundle,
        _inputs: &'a Map<String, Value>,
    ) -> PreflightFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A step's action as a dry run shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    /// One line: `kubernetes PATCH flink.apache.org/v1beta1 FlinkDeployment flink/orders`.
    pub summary: String,
    /// The part of the body worth showing whole (the patch, the manifest).
    pub shown: Value,
}

/// A run refused before it starts, by the action whose steps cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: {message}")]
pub struct PreflightError {
    /// The action's key.
    pub action: &'static str,
    pub message: String,
}

/// A failed action: a message naming what failed, and the result when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    /// What failed, for people: `` `flink` exited with status 3: job not found``.
    pub message: String,
    /// The result despite the failure (a non-zero exit still has stdout and stderr, an
    /// unexpected HTTP status still has the response), so outputs, `until` and reports can
    /// show it.
    pub result: Option<Value>,
    /// Why it failed, which decides whether trying again can help.
    pub kind: ActionErrorKind,
}

/// Why an action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionErrorKind {
    /// The action ran and did not succeed: a non-zero exit, an unexpected status, a
    /// connection error, a false assertion. Another attempt may succeed.
    Failed,
    /// The action was cancelled (timeout, deadline, interrupt) and stopped.
    Cancelled,
    /// The body is wrong at run time: a template value of the wrong type, a name missing
    /// from the context, a file that does not exist. Trying again the same way will not help.
    Invalid,
}

impl ActionError {
    /// The action ran and did not succeed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ActionErrorKind::Failed, message)
    }

    /// The body cannot be run as it is.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ActionErrorKind::Invalid, message)
    }

    /// The action was cancelled.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ActionErrorKind::Cancelled, message)
    }

    fn new(kind: ActionErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            result: None,
            kind,
        }
    }

    /// Attach the result the action had when it failed.
    pub fn with_result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }
}

/// Every action this build can run: adding an action is one line here (and its files).
static ACTIONS: &[&dyn Action] = &[
    &exec::Exec::DEFAULT,
    &http::Http::DEFAULT,
    &kubernetes::Kubernetes,
    &assert::Assert,
    &sleep::Sleep,
];

/// The actions of the language that the engine runs itself rather than through [`Action`]:
/// `uses` runs another runbook, and `approval` and `record` need the run's store. Their
/// fields, rules and summaries are in `runbook::model` like every other action's.
pub const ENGINE_ACTIONS: &[&str] = &["uses", "approval", "record"];

/// Every action this build can run, in the order the language lists them.
pub fn all() -> impl Iterator<Item = &'static dyn Action> {
    ACTIONS.iter().copied()
}

/// Runs the [preflight](Action::preflight) check of every action, in order; the first
/// refusal stops the run from starting.
pub async fn preflight(bundle: &Bundle, inputs: &Map<String, Value>) -> Result<(), PreflightError> {
    for action in all() {
        action.preflight(bundle, inputs).await?;
    }
    Ok(())
}

/// The action for a YAML key, if this build can run it.
pub fn action_for(key: &str) -> Option<&'static dyn Action> {
    ACTIONS.iter().copied().find(|action| action.key() == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_found_by_its_own_key() {
        for action in ACTIONS {
            let found = action_for(action.key()).map(Action::key);
            assert_eq!(found, Some(action.key()));
        }
        // `uses` and `approval` are the executor's own, not actions.
        assert!(action_for("uses").is_none());
        assert!(action_for("approval").is_none());
        assert!(action_for("").is_none());
    }

    #[test]
    fn every_action_key_is_a_key_of_the_language() {
        for action in ACTIONS {
            assert!(
                crate::runbook::model::ACTION_KEYS.contains(&action.key()),
                "{}",
                action.key()
            );
        }
    }

    /// The walkthrough in docs/contributing.md holds: every action the language names (and
    /// the schema offers on a step) runs somewhere, registered in `ACTIONS` or run by the
    /// engine, never both and never neither.
    #[test]
    fn every_action_the_schema_names_is_registered_once() {
        let schema: Value = serde_json::from_str(&crate::runbook::schema::json_schema()).unwrap();
        let step = &schema["$defs"]["Step"]["properties"];
        for key in crate::runbook::model::ACTION_KEYS {
            assert!(
                step.get(key).is_some(),
                "the schema offers no `{key}` on a step"
            );
            let registered = action_for(key).is_some();
            let engine = ENGINE_ACTIONS.contains(key);
            assert!(
                registered != engine,
                "`{key}`: in ACTIONS {registered}, run by the engine {engine}"
            );
        }
        assert_eq!(
            ACTIONS.len() + ENGINE_ACTIONS.len(),
            crate::runbook::model::ACTION_KEYS.len()
        );
    }
}
