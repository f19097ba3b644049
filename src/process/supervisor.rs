//! The supervisor: a small process the engine starts beside itself, which stops the step
//! processes of the run once the engine is gone, however it went (kill -9 included).
//!
//! It reads the engine's registrations from a pipe on its stdin: `+PID` when a step command
//! starts (written by the command itself, between fork and exec, so it is registered before
//! it can start anything), `-PID` when the engine has stopped that step's group. Only the
//! engine holds the write end, so end-of-file means the engine has exited. The supervisor
//! then stops every process in a registered process group or session, and every process
//! carrying the run's mark, and exits.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
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
    /// Starts the supervisor as this same program. Its stdout and stderr are /dev/null, so
    /// it never holds the engine's output open; it leads a process group of its own and
    /// ignores SIGINT, SIGTERM and SIGHUP, so Ctrl-C at the terminal or a dropped SSH session
    /// reach the engine, not it.
    pub fn start(mark: &RunMark) -> io::Result<Supervisor> {
        // Both ends are close-on-exec: only the supervisor's stdin (a dup) survives its exec.
        let (reader, pipe) = io::pipe()?;
        let mut command = Command::new("/proc/self/exe");
        // Named as people know the program in `ps`, not after the path it was started by.
        command
            .arg0("runbook")
            .arg(SUBCOMMAND)
            .arg(mark.as_str())
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: runs in the child between fork and exec and only calls signal(2), which is
        // async-signal-safe. An ignored disposition survives exec, so there is no moment
        // when the supervisor could be stopped by a signal meant for the engine.
        unsafe {
            command.pre_exec(|| {
                ignore_stop_signals().map_err(io::Error::from)?;
                Ok(())
            });
        }
        let child = command.spawn()?;
        Ok(Supervisor { child, pipe })
    }

    /// Whether it still runs (someone may have killed it).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The write end of the pipe, for the step command to register itself with.
    pub fn pipe_fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Tells it the engine has stopped a step's group itself.
    pub fn forget(&mut self, leader: i32) {
        // A short write to a pipe is atomic; if the supervisor is gone there is no one to tell.
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

/// Registers the calling process with the supervisor: writes `+PID\n` to `fd` in one
/// write(2). Meant for the child between fork and exec, so it only makes system calls that
/// are async-signal-safe and formats into a stack buffer.
pub fn register_self(fd: RawFd) -> io::Result<()> {
    let mut buffer = [0u8; 24];
    let pid = nix::unistd::getpid().as_raw();
    let mut digits = [0u8; 20];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buffer[0] = b'+';
    for i in 0..len {
        buffer[1 + i] = digits[len - 1 - i];
    }
    buffer[1 + len] = b'\n';
    let message = &buffer[..len + 2];
    // A supervisor that is gone would kill this child with SIGPIPE before it could say
    // why; with SIGPIPE ignored for the one write, the spawn fails with EPIPE instead.
    // SAFETY: only sets signal dispositions; the default is restored right after.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.map_err(io::Error::from)?;
    // SAFETY: the fd is the engine's open pipe, kept open while the step is spawned.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let written = nix::unistd::write(fd, message);
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map_err(io::Error::from)?;
    match written {
        Ok(n) if n == message.len() => Ok(()),
        Ok(_) => Err(io::Error::other("short write to the process supervisor")),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// The supervisor's life: remember registrations until the engine is gone, then stop what
/// is left of the run. Returns once nothing is left (or what is left cannot be killed).
pub fn serve(mark: &str) {
    // Already ignored since before exec; again in case it was started another way.
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
        leaders.contains(&stat.pgid)
            || leaders.contains(&stat.sid)
            || scan::environ_has(pid, &entry)
    };
    let _ = scan::stop_matching(&belongs, GRACE);
}
