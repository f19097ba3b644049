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
    /// Refuse an answer from whoever started the run: someone else must approve.
    #[serde(default)]
    pub distinct_from_starter: Option<Spanned<bool>>,
    /// How many different people must approve before the step succeeds (1 by default); one
    /// rejection fails it.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub count: Option<Spanned<u32>>,
}

/// The most approvers a step may ask for: more is a typo, not a process.
pub const MOST_APPROVERS: u32 = 100;

impl Approval {
    /// How many distinct people must approve.
    pub fn needed(&self) -> u32 {
        self.count.as_ref().map_or(1, |c| c.value)
    }

    /// Whether the run's starter is refused as an approver.
    pub fn distinct_from_starter(&self) -> bool {
        self.distinct_from_starter.as_ref().is_some_and(|d| d.value)
    }
}

impl ActionBody for Approval {
    fn describe(&self) -> String {
        let mut who = Vec::new();
        if self.needed() > 1 {
            who.push(format!("{} approvers", self.needed()));
        }
        if self.distinct_from_starter() {
            who.push("not the starter".to_owned());
        }
        if who.is_empty() {
            "approval".to_owned()
        } else {
            format!("approval ({})", who.join(", "))
        }
    }

    fn check_rules<'a>(&'a self, _at: Span, checks: &dyn ActionChecks<'a>) {
        checks.timeout(self.timeout.as_ref(), "approval.timeout");
        if let Some(count) = &self.count
            && !(1..=MOST_APPROVERS).contains(&count.value)
        {
            checks.error(
                count.span,
                format!(
                    "`approval.count` is {}: it must be between 1 and {MOST_APPROVERS}",
                    count.value
                ),
                Some("`count` is how many different people must approve the step".to_owned()),
            );
        }
    }
}
