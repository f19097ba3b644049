//! Reading a run's JSON-lines events, and checking what it left behind.

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

/// Whether a process is gone: no such process, or a zombie (dead, waiting for a parent that
/// may never reap it: inside a container the adopting init often does not).
pub fn process_is_gone(pid: i32) -> bool {
    if unsafe { libc::kill(pid, 0) } != 0 {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}
