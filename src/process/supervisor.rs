//! The supervisor: a small process the engine starts beside itself for each run, which stops
//! the step processes of the run once the engine is gone, however it went (kill -9 included).
//!
//! It reads the engine's registrations from a pipe on its stdin: `+PID` when a step command
//! has started (its process group is numbered PID), `-PID` when the engine has stopped that
//! step's group. Only the engine holds the write end, so end-of-file means the engine has
//! exited, or the run is over. The supervisor then stops every process in a registered
//! process group and every process carrying the run's mark, and exits.
//!
//! The supervisor reads its pipe in batches: it pauses a few milliseconds after each read,
//! so that a chain of short steps does not wake it twice a step. Registrations are kept in
//! the pipe meanwhile, and end-of-file still comes after all of them. The engine's going
//! away cuts a pause short: a run's end does not wait for it.
//!
//! A step command is registered right after it started, not before: one the engine started
//! in the moment before it died carries the run's mark from its first instruction, and is
//! found by it.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
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

/// How long the supervisor leaves its pipe alone after reading it, unless the engine goes
/// away meanwhile; the registrations a pause lets pile up are a few bytes each, far below
/// what the pipe holds (64 KiB), so the engine's writes never block.
const READ_PAUSE: Duration = Duration::from_millis(5);

/// The engine's side: the supervisor process and the write end of its pipe (`None` once
/// the engine has let it go: see [`Supervisor::let_go`]).
pub struct Supervisor {
    child: Child,
    pipe: Option<io::PipeWriter>,
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
        Ok(Supervisor {
            child,
            pipe: Some(pipe),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells it a step command leads the group `leader`. Fails with `BrokenPipe` when the
    /// supervisor is gone.
    pub fn register(&mut self, leader: i32) -> io::Result<()> {
        match &mut self.pipe {
            // A short write to a pipe is atomic.
            Some(pipe) => pipe.write_all(format!("+{leader}\n").as_bytes()),
            // Let go of: it stops what it knows of and exits.
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Tells it the engine has stopped a step's group itself.
    pub fn forget(&mut self, leader: i32) {
        // If the supervisor is gone there is no one to tell.
        if let Some(pipe) = &mut self.pipe {
            let _ = pipe.write_all(format!("-{leader}\n").as_bytes());
        }
    }

    /// Closes the pipe without waiting: the supervisor stops what is left and exits while
    /// the engine goes on. [`Supervisor::finish`] then waits for it.
    pub fn let_go(&mut self) {
        self.pipe = None;
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

/// The step groups the engine has registered, from the bytes read off the pipe so far.
#[derive(Default)]
struct Registrations {
    leaders: BTreeSet<i32>,
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
}

impl Registrations {
    /// Takes in what one read gave: whole lines, maybe ending with the start of one.
    fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let whole = self
            .partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let lines: Vec<u8> = self.partial.drain(..whole).collect();
        for line in lines.split(|&b| b == b'\n') {
            let (sign, number) = line.split_at(line.len().min(1));
            let number = std::str::from_utf8(number)
                .ok()
                .and_then(|n| n.parse().ok());
            match (sign, number) {
                (b"+", Some(pid)) if pid > 1 => {
                    self.leaders.insert(pid);
                }
                (b"-", Some(pid)) => {
                    self.leaders.remove(&pid);
                }
                _ => {}
            }
        }
    }
}

/// The supervisor's life: remember registrations until the engine is gone, then stop what
/// is left of the run. Returns once nothing is left (or what is left cannot be killed).
pub fn serve(mark: &str) {
    let _ = ignore_stop_signals();
    // What carries the run's mark started after the engine did, which started this
    // supervisor: the mark came into being with the run, and what an earlier engine of the
    // run left was stopped before this one ran a step (see `runbook resume`). Only processes
    // that started since are read for the mark: reading a process's environment costs more
    // than its stat, and the run's end waits for this sweep. An engine already gone (this
    // process then belongs to another parent) leaves nothing to go by: everything is read.
    let engine_started =
        scan::stat(std::os::unix::process::parent_id() as i32).map_or(0, |engine| engine.started);
    let mut registrations = Registrations::default();
    let mut stdin = io::stdin().lock();
    let mut chunk = [0u8; 8192];
    loop {
        match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => registrations.feed(&chunk[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        // Registrations wait in the pipe meanwhile: a supervisor blocked in `read` would be
        // woken twice a step, and on a busy machine each wake-up takes a core from the run.
        pause(io::stdin().as_fd(), READ_PAUSE);
    }
    let leaders = registrations.leaders;
    let mark = RunMark::from_value(mark.to_owned());
    let entry = mark.env_entry();
    let belongs = |pid: i32, stat: &scan::Stat| {
        leaders.contains(&stat.pgid)
            || (stat.started >= engine_started && scan::environ_has(pid, &entry))
    };
    let _ = scan::stop_matching(&belongs, GRACE, &|| true);
}

/// How a pause between two reads of the pipe ended.
#[derive(Debug, PartialEq)]
enum Pause {
    Elapsed,
    /// Every write end of the pipe is closed: the engine is gone, or the run is over.
    EngineGone,
}

/// Leaves `pipe` alone for `length`, or less once the engine is gone. `poll` is asked for no
/// event at all: it reports a hang-up (every write end closed) even so, and never what waits
/// to be read, so registrations still pile up while the engine lives, and a run's end, which
/// waits for the supervisor, does not wait for the rest of a pause (up to `READ_PAUSE`).
fn pause(pipe: BorrowedFd<'_>, length: Duration) -> Pause {
    let mut watched = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    let millis = libc::c_int::try_from(length.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, borrowed for the call only.
    let polled = unsafe { libc::poll(&mut watched, 1, millis) };
    // An interrupted or failed poll ends the pause early; the next read says what is left.
    if polled > 0 && watched.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        Pause::EngineGone
    } else {
        Pause::Elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_ends_at_once_when_the_engine_is_gone_and_not_for_a_registration() {
        let (reader, mut writer) = io::pipe().unwrap();
        writer.write_all(b"+12\n").unwrap();
        // Something to read does not end the pause: registrations pile up in the pipe.
        let started = std::time::Instant::now();
        assert_eq!(
            pause(reader.as_fd(), Duration::from_millis(50)),
            Pause::Elapsed
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(writer);
        // The write end closed: told at once, though what was written is still to be read.
        assert_eq!(
            pause(reader.as_fd(), Duration::from_secs(60)),
            Pause::EngineGone
        );
    }

    #[test]
    fn registrations_cut_anywhere_by_reads_are_read_whole() {
        let mut registrations = Registrations::default();
        registrations.feed(b"+12\n+13\n-1");
        assert_eq!(registrations.leaders, BTreeSet::from([12, 13]));
        registrations.feed(b"2\n+");
        assert_eq!(registrations.leaders, BTreeSet::from([13]));
        registrations.feed(b"14\n+1\nnonsense\n-99\n");
        // Pid 1 is never a step's group; unknown lines and unknown groups change nothing.
        assert_eq!(registrations.leaders, BTreeSet::from([13, 14]));
        assert!(registrations.partial.is_empty());
    }
}
