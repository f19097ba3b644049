//! Who owns a run: a process on a host. On the owner's own host a store can tell at once
//! whether that process is still alive, so a run whose process was killed -9 can be resumed
//! without waiting for its lease to run out.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// When the process started, in clock ticks since boot (Linux `/proc/PID/stat`): tells
    /// a live owner from a new process that reuses its pid.
    pub process_start: Option<u64>,
    /// When it took the run (RFC 3339, UTC).
    pub since: String,
}

impl Owner {
    /// This process, now.
    pub fn current() -> Self {
        let pid = std::process::id();
        Owner {
            pid,
            host: this_host(),
            process_start: process_start(pid),
            since: crate::event::timestamp::now(),
        }
    }

    /// Whether the owning process is known to be gone: only answerable on its own host.
    pub fn is_gone(&self) -> bool {
        if self.host != this_host() {
            return false;
        }
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
            .map_or_else(|errno| errno == nix::errno::Errno::EPERM, |()| true);
        if !alive || is_zombie(self.pid) {
            return true;
        }
        // The pid is in use; it is our owner only if it started when the owner did.
        match (self.process_start, process_start(self.pid)) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on {} (since {})",
            self.pid, self.host, self.since
        )
    }
}

/// This machine's host name.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A process that has exited but not been reaped still answers signals; it is gone all the
/// same.
fn is_zombie(pid: u32) -> bool {
    crate::process::stat(pid as i32).is_some_and(|stat| stat.zombie)
}

/// The process's start time in ticks since boot (field 22 of `/proc/PID/stat`).
fn process_start(pid: u32) -> Option<u64> {
    crate::process::stat(pid as i32).map(|stat| stat.started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_gone() {
        let owner = Owner::current();
        assert!(owner.process_start.is_some());
        assert!(!owner.is_gone());
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let mut owner = Owner::current();
        owner.process_start = owner.process_start.map(|t| t + 1);
        assert!(owner.is_gone());
    }

    #[test]
    fn an_owner_elsewhere_is_never_known_gone() {
        let mut owner = Owner::current();
        owner.host = format!("{}-elsewhere", owner.host);
        owner.pid = u32::MAX / 2;
        assert!(!owner.is_gone());
    }
}
