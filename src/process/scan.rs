//! Finding processes in /proc: by process group, and by the mark a run puts in
//! the environment of its steps (which every descendant inherits unless it clears it).

use std::io::Read;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What /proc/PID/stat says of a process that matters here.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub pgid: i32,
    /// Dead and waiting to be reaped: nothing to stop any more.
    pub zombie: bool,
    /// When it started, in clock ticks since the machine booted: a clock no one sets.
    pub started: u64,
}

/// Reads /proc/PID/stat; `None` once the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    // One read into a buffer on the stack: the kernel writes the whole file at the first read
    // (well under 1 KiB: a name of at most 16 bytes and 50 numbers), where reading it to a
    // `String` also asks for its size (0 for a file of /proc) and probes for more. A sweep
    // reads this for every process on the machine.
    let mut buffer = [0u8; 4096];
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let read = file.read(&mut buffer).ok()?;
    let text = std::str::from_utf8(&buffer[..read]).ok()?;
    // The command name is in parentheses and may hold spaces or parentheses itself: the
    // fields start after the last `)`. Then: state, ppid, pgrp, and, 17 fields on, the start
    // time (fields 3, 4, 5 and 22 of proc(5)).
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    let started = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        pgid,
        zombie: state == "Z" || state == "X",
        started,
    })
}

/// Whether the environment a process started with holds exactly `entry` (`NAME=value`).
/// Processes of other users cannot be read, and do not match.
pub fn environ_has(pid: i32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|b| *b == 0)
            .any(|var| var == entry.as_bytes())
    })
}

/// Whether `pid` was started with exactly these arguments after its program name.
pub fn arguments_are(pid: i32, expected: &[&str]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let mut arguments = cmdline.split(|b| *b == 0).skip(1);
        expected
            .iter()
            .all(|want| arguments.next() == Some(want.as_bytes()))
            && arguments.all(<[u8]>::is_empty)
    })
}

/// Every live process but this one for which `matches` holds.
pub fn find(matches: &dyn Fn(i32, &Stat) -> bool) -> Vec<i32> {
    let own = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid > 1 && pid != own)
        .filter(|&pid| stat(pid).is_some_and(|stat| !stat.zombie && matches(pid, &stat)))
        .collect()
}

/// Sends `signal` to every live process `matches` finds.
pub fn signal_matching(matches: &dyn Fn(i32, &Stat) -> bool, signal: Signal) -> usize {
    let found = find(matches);
    for &pid in &found {
        // ESRCH: it ended meanwhile, which is what we want.
        let _ = kill(Pid::from_raw(pid), signal);
    }
    found.len()
}

/// Why [`stop_matching`] stopped before every match was gone.
#[derive(Debug, PartialEq, Eq)]
pub enum StopFailure {
    /// Still alive after SIGKILL and a wait: their pids.
    Unkillable(Vec<i32>),
    /// A process not signalled yet was found once `may_signal` said no more.
    NoLongerAllowed,
}

/// Stops every process `matches` finds: SIGTERM, up to `grace` for them to end, then
/// SIGKILL until none is left. Processes that appear meanwhile (forked by one being
/// stopped) are found by looking again. `may_signal` is asked before a process is first
/// signalled: once it says no, nothing not signalled already is touched. Returns how many
/// processes were stopped, or the ones still alive `KILL_WAIT` after SIGKILL (a process
/// stuck in the kernel).
pub fn stop_matching(
    matches: &dyn Fn(i32, &Stat) -> bool,
    grace: Duration,
    may_signal: &dyn Fn() -> bool,
) -> Result<usize, StopFailure> {
    const POLL: Duration = Duration::from_millis(20);
    const KILL_WAIT: Duration = Duration::from_secs(10);
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + grace;
    loop {
        let found = find(matches);
        if found.is_empty() {
            return Ok(seen.len());
        }
        for pid in found {
            // A process is told once; a second SIGTERM would only cut its shutdown short.
            if !seen.contains(&pid) {
                if !may_signal() {
                    return Err(StopFailure::NoLongerAllowed);
                }
                seen.insert(pid);
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let found = find(matches);
        if found.is_empty() {
            return Ok(seen.len());
        }
        if Instant::now() >= deadline {
            return Err(StopFailure::Unkillable(found));
        }
        for &pid in &found {
            if !seen.contains(&pid) && !may_signal() {
                return Err(StopFailure::NoLongerAllowed);
            }
            seen.insert(pid);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_and_never_found() {
        let own = std::process::id() as i32;
        let stat = stat(own).expect("this process has a stat");
        assert!(!stat.zombie);
        assert!(find(&|pid, _| pid == own).is_empty());
    }

    #[test]
    fn a_process_started_later_has_a_later_or_equal_start_time_than_one_before_it() {
        let own = stat(std::process::id() as i32).expect("this process has a stat");
        let parent = stat(std::os::unix::process::parent_id() as i32).expect("a parent");
        let (mut child, pid) = sleeping();
        let later = stat(pid).expect("the child has a stat");
        let _ = child.kill();
        let _ = child.wait();
        assert!(parent.started <= own.started, "{parent:?} {own:?}");
        assert!(own.started <= later.started, "{own:?} {later:?}");
        // Ticks since boot, not zero: read from the right field (the boot's processes aside).
        assert!(later.started > 0, "{later:?}");
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // SAFETY: sysconf reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let age = uptime - later.started as f64 / ticks;
        // Both clocks count from boot in hundredths: a start this instant may read as -0.01 s.
        assert!(
            (-0.1..5.0).contains(&age),
            "started {age} s ago by its stat"
        );
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped_over() {
        // The kernel names a process after the file it runs.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let odd = dir.path().join("a) b (c");
        std::os::unix::fs::symlink("/bin/sleep", &odd).expect("a symlink");
        let mut child = std::process::Command::new(&odd)
            .arg("5")
            .spawn()
            .expect("start sleep");
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains("a) b (c"))
        {
            assert!(Instant::now() < deadline, "the name never changed");
            std::thread::sleep(Duration::from_millis(10));
        }
        let read = stat(pid).expect("a stat");
        assert_eq!(read.pgid, stat(std::process::id() as i32).unwrap().pgid);
        let _ = child.kill();
        let _ = child.wait();
    }

    fn sleeping() -> (std::process::Child, i32) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        let pid = child.id() as i32;
        (child, pid)
    }

    #[test]
    fn once_signals_are_no_longer_allowed_nothing_new_is_signalled() {
        let (mut child, pid) = sleeping();
        let stopped = stop_matching(&|found, _| found == pid, Duration::ZERO, &|| false);
        let alive = child.try_wait().expect("a status").is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(stopped, Err(StopFailure::NoLongerAllowed));
        assert!(alive, "the process was signalled");

        let (mut child, pid) = sleeping();
        let stopped = stop_matching(&|found, _| found == pid, Duration::ZERO, &|| true);
        let status = child.wait().expect("a status");
        assert_eq!(stopped, Ok(1));
        assert!(!status.success(), "{status}");
    }
}
