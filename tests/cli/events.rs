//! Reading a run's JSON-lines events, and checking what it left behind.

use crate::support::{Output, Test};
use serde_json::Value;

pub fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The position of the first event of `kind` for step `path`.
pub fn position(events: &[Value], kind: &str, path: &str) -> usize {
    events
        .iter()
        .position(|e| e["event"] == kind && e["path"] == path)
        .unwrap_or_else(|| panic!("no {kind} for {path} in {events:#?}"))
}

pub fn ended<'a>(events: &'a [Value], path: &str) -> &'a Value {
    &events[position(events, "step_ended", path)]
}

pub fn count(events: &[Value], kind: &str, path: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["path"] == path)
        .count()
}

#[path = "../common/process.rs"]
mod process;
pub use process::process_is_gone;

/// Runs `runbook run FILE --output json` and reads its events.
pub fn run_json(test: Test, file: &str, extra: &[&str]) -> (Output, Vec<Value>) {
    let output = test
        .args(["run", file, "--output", "json"])
        .args(extra.iter().copied())
        .run();
    let parsed = events(&output.stdout);
    (output, parsed)
}
