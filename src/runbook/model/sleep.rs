//! `sleep: 30s`: what the language knows of it. Its body is a duration, read when the
//! runbook loads; it runs in `actions::sleep`.

use super::*;

impl ActionBody for Duration {
    fn describe(&self) -> String {
        format!("sleep {self}")
    }

    /// A duration is not a template.
    fn check_values<'a>(&'a self, _checks: &dyn ActionChecks<'a>) {}
}
