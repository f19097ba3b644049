//! The supervisor: a small process the engine starts beside itself for each run, which stops
//! the step processes of the run once the engine is gone, however it went (kill -9 included).
//!
//! It reads the engine's registrations from a pipe on its stdin: `+PID` when a step command
//! has started (its process group is numbered PID), `-PID` when the engine has stopped that
//! step's group. Only the engine holds the write end, so end-of-file means the engine has
//! exited, or the run is over. The supervisor then stops every process in a registered
//! process group and every process carrying the run's mark, and exits.
//!
//! A step command is registered right after it started, not before: one the engine started
//! in the moment before it died carries the run's mark from its first instruction, and is
//! found by it.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{SigHandler, Signal, signal};

use super::RunMark;
use super::scan;

/// The hidden subcommand that runs the supervisor: `runbook __supervise MARK`.
pub const SUBCOMMAND: &str = "__supervise";

/// How long step processes have between SIGTERM and SIGKILL once the engine is gone.
const GRACE: Duration = Duration::from_secs(2);

/// The engine's side: the supervisor process and the write end of its pipe.
pub struct Supervisor {
    child: Child,
    pipe: io::PipeWriter,
}

impl Supervisor {
    /// Starts the supervisor: `program __supervise MARK`. Its stdout and stderr are
    /// /dev/null, so it never holds the engine's output open. It leads a process group of
    /// its own, so Ctrl-C at the terminal or a dropped SSH session (signals to the
    /// foreground group) reach the engine, not it; and once running it ignores SIGINT,
    /// SIGTERM and SIGHUP. Nothing runs between fork and exec, so this is a `posix_spawn`
    /// too.
    pub fn start(program: &Path, mark: &RunMark) -> io::Result<Supervisor> {
        // Both ends are close-on-exec: only the supervisor's stdin (a dup) survives its exec,
        // and no step command ever holds the write end open.
        let (reader, pipe) = io::pipe()?;
        let mut command = Command::new(program);
        // Named as people know the program in `ps`, not after the path it was started by.
        command
            .arg0("runbook")
            .arg(SUBCOMMAND)
            .arg(mark.as_str())
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command.spawn()?;
        Ok(Supervisor { child, pipe })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells it a step command leads the group `leader`. Fails with `BrokenPipe` when the
    /// supervisor is gone.
    pub fn register(&mut self, leader: i32) -> io::Result<()> {
        // A short write to a pipe is atomic.
        self.pipe.write_all(format!("+{leader}\n").as_bytes())
    }

    /// Tells it the engine has stopped a step's group itself.
    pub fn forget(&mut self, leader: i32) {
        // If the supervisor is gone there is no one to tell.
        let _ = self.pipe.write_all(format!("-{leader}\n").as_bytes());
    }

    /// Closes the pipe and waits for it to stop what is left and exit.
    pub fn finish(self) {
        let Supervisor { mut child, pipe } = self;
        drop(pipe);
        let _ = child.wait();
    }
}

fn ignore_stop_signals() -> nix::Result<()> {
    for stop in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installs no handler, only ignores the signal.
        unsafe { signal(stop, SigHandler::SigIgn) }?;
    }
    Ok(())
}

/// The supervisor's life: remember registrations until the engine is gone, then stop what
/// is left of the run. Returns once nothing is left (or what is left cannot be killed).
pub fn serve(mark: &str) {
    let _ = ignore_stop_signals();
    let mut leaders = BTreeSet::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at(line.len().min(1));
        match (sign, number.parse::<i32>()) {
            ("+", Ok(pid)) if pid > 1 => {
                leaders.insert(pid);
            }
            ("-", Ok(pid)) => {
                leaders.remove(&pid);
            }
            _ => {}
        }
    }
    let mark = RunMark::from_value(mark.to_owned());
    let entry = mark.env_entry();
    let belongs = |pid: i32, stat: &scan::Stat| {
        leaders.contains(&stat.pgid) || scan::environ_has(pid, &entry)
    };
    let _ = scan::stop_matching(&belongs, GRACE);
}
