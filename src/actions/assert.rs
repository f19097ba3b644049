//! `assert: {that, message}`: every jq condition over the context must hold.

use serde_json::{Value, json};

use super::body::{Fields, text, wrong_type};
use super::{Action, ActionError, ActionFuture, ActionInput};
use crate::runbook::keys_of;
use crate::template::Escape;
use std::sync::LazyLock;

/// The keys of an `assert` body: the fields of [`crate::runbook::Assert`].
static KEYS: LazyLock<Vec<String>> = LazyLock::new(keys_of::<crate::runbook::Assert>);

/// The `assert` action. `that` is jq (not a template); `message` is a template, rendered
/// only when a condition fails, since it often names values that only matter then.
pub struct Assert;

impl Action for Assert {
    fn key(&self) -> &'static str {
        "assert"
    }

    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a> {
        Box::pin(async move {
            let fields = Fields::new("assert", input.body, &KEYS)?;
            let conditions = conditions(&fields)?;
            for condition in &conditions {
                // jq evaluation is synchronous and quick; a cancel between conditions is
                // the only place there is to notice one.
                if input.cancel.is_cancelled() {
                    return Err(ActionError::cancelled("assert cancelled"));
                }
                let problem = match (input.eval)(condition) {
                    Ok(Value::Null | Value::Bool(false)) => None,
                    Ok(_) => continue,
                    Err(error) => Some(error),
                };
                return Err(failure(&fields, condition, problem, &input));
            }
            Ok(json!({}))
        })
    }
}

/// `that`: one expression or a list of them.
fn conditions(fields: &Fields<'_>) -> Result<Vec<String>, ActionError> {
    let name = fields.name("that");
    match fields.get("that") {
        None => Err(ActionError::invalid(format!("`{name}` is required"))),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(
                    &format!("{name}[{i}]"),
                    "a jq expression",
                    other,
                )),
            })
            .collect(),
        Some(other) => Err(wrong_type(
            &name,
            "a jq expression or a list of them",
            other,
        )),
    }
}

/// The error for a condition that is false (`problem` is `None`) or could not be evaluated.
fn failure(
    fields: &Fields<'_>,
    condition: &str,
    problem: Option<String>,
    input: &ActionInput<'_>,
) -> ActionError {
    let detail = match &problem {
        None => format!("assertion failed: {condition}"),
        Some(error) => format!("assertion failed: {condition}: {error}"),
    };
    let Some(template) = fields.get("message") else {
        return ActionError::failed(detail);
    };
    let rendered = (input.render)(template, Escape::Plain)
        .map_err(|e| e.to_string())
        .and_then(|v| text(&v, &fields.name("message")).map_err(|e| e.message));
    match (rendered, problem) {
        (Ok(message), None) => ActionError::failed(message),
        // The author's message assumes the condition was false; say that it did not even
        // evaluate, or the real problem (a typo in a path, a type error) stays hidden.
        (Ok(message), Some(error)) => ActionError::failed(format!(
            "{message} (could not evaluate `{condition}`: {error})"
        )),
        (Err(error), _) => ActionError::failed(format!(
            "{detail} (and its message could not be rendered: {error})"
        )),
    }
}
