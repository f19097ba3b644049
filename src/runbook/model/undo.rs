//! Undo in the language: what a failed run does with what its steps did (`on_failure:` on
//! the runbook). The body of a step's `undo:` is [`super::Undo`], beside the other bodies
//! that carry one action.

use schemars::JsonSchema;
use serde::Deserialize;

/// What a failed run does with what its succeeded steps did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Leave it as it is; `finally` runs.
    #[default]
    Keep,
    /// Run the `undo` of every step that succeeded, in reverse order of the graph, then
    /// `finally`.
    Undo,
}

impl OnFailure {
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Keep => "keep",
            OnFailure::Undo => "undo",
        }
    }
}
