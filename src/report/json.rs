//! `runbook runs show --format json`: the run report as it is, for tools.

use super::run_report::RunReport;

impl RunReport {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
