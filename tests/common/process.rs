//! Shared by the test crates: whether a process a test started is gone.

/// Whether a process is gone: no such process, or a zombie (dead, waiting for a parent that
/// may never reap it: inside a container the adopting init often does not).
pub fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}
