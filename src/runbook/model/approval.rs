//! `approval`: what the language knows of it. The executor runs it, since the answer
//! comes through the run's store.

use super::*;

/// Ask a person.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// What the approver is asked.
    pub prompt: Spanned<String>,
    /// Fail the step when nobody answers in this time.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
}

impl ActionBody for Approval {
    fn describe(&self) -> String {
        "approval".to_owned()
    }

    fn check_rules<'a>(&'a self, _at: Span, checks: &dyn ActionChecks<'a>) {
        checks.timeout(self.timeout.as_ref(), "approval.timeout");
    }
}
