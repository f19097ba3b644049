//! `sleep: 30s`: waits, and stops waiting when cancelled.

use serde_json::{Value, json};

use super::body::wrong_type;
use super::{Action, ActionError, ActionFuture, ActionInput};
use crate::runbook::Duration;

/// The `sleep` action. Its body is a duration string; durations are not templates.
pub struct Sleep;

impl Action for Sleep {
    fn key(&self) -> &'static str {
        "sleep"
    }

    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a> {
        Box::pin(async move {
            let duration = parse(input.body)?;
            tokio::select! {
                () = tokio::time::sleep(duration.0) => Ok(json!({})),
                () = input.cancel.cancelled() => {
                    Err(ActionError::cancelled(format!("sleep {duration} cancelled")))
                }
            }
        })
    }
}

fn parse(body: &Value) -> Result<Duration, ActionError> {
    let Value::String(text) = body else {
        return Err(wrong_type("sleep", "a duration such as 30s", body));
    };
    Duration::parse(text).ok_or_else(|| {
        ActionError::invalid(format!(
            "invalid duration `{text}` in `sleep`: expected a duration such as 250ms, 10s, 5m or 1h30m"
        ))
    })
}
