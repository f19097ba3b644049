//! A step command once started: the program, its pipes, and the wait for its end.
//!
//! The runtime is told about the program only when a step has to wait for it: its pipes and
//! the descriptor its end is seen on (a pidfd) join the event loop then, and the pidfd leaves
//! it again before the program is reaped. Reaping a process wakes whoever polls a pidfd of it,
//! so with the pidfd still in the event loop every step's end woke a thread of the runtime
//! for nothing, and the waker paid for that wake-up in the middle of the step.
//!
//! A program started while no other step of the run is under way (the next step of a
//! chain), in a process that runs this one run only (`runbook run`, `runbook resume`), is
//! first waited for right on the run's thread, as a shell waits for its commands, for a few
//! milliseconds (see [`StepChild::wait_here`]). A short command then ends without the event
//! loop in its way: its end wakes the run's thread itself, not a thread of the runtime which
//! then wakes the run's. Its output pipes meanwhile have a second write end, the engine's
//! (see [`super::OutputPipes`]), so that the program closing its own as it exits does not
//! wake the run's thread before its end does.

use std::fs::File;
use std::io::{self, PipeWriter, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::OutputPipes;
use super::child_process::ChildProcess;

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A started step command. Dropped before its end was seen, it is killed (the program
/// itself; its group is [`super::StepGroup`]'s) and reaped off the caller's thread.
pub struct StepChild {
    /// `None` only once dropped.
    child: Option<ChildProcess>,
    /// The write end of its stdin pipe, if it reads one, until taken.
    stdin: Option<PipeWriter>,
    /// What its end is seen on; `None` where the kernel has no pidfd (before Linux 5.3),
    /// where the end is polled for instead.
    pidfd: Option<PidFd>,
    status: Option<ExitStatus>,
    /// The read ends of its output pipes, until read to their end or handed to the event
    /// loop.
    stdout: Option<File>,
    stderr: Option<File>,
    /// Copies of the pipes' write ends, held while the program runs and is waited for here
    /// (see [`OutputPipes`]).
    held_write_ends: Option<[PipeWriter; 2]>,
    /// How many times [`Self::wait_here`] polled: what tests look at.
    polls: u32,
}

enum PidFd {
    Plain(OwnedFd),
    InEventLoop(AsyncFd<OwnedFd>),
}

impl StepChild {
    /// How long a program started alone is waited for on the run's thread before the wait
    /// is handed to the event loop. Long enough for a short command; short enough that what
    /// else the run's thread drives (a timer, a step that is not a command, Ctrl-C) is not
    /// held up noticeably.
    pub const WAIT_HERE_FOR: Duration = Duration::from_millis(10);

    /// Takes over `child`, started with its stdin from `stdin` (if it reads a pipe) and its
    /// stdout and stderr going to `output`.
    pub(super) fn new(
        child: ChildProcess,
        stdin: Option<PipeWriter>,
        output: OutputPipes,
    ) -> StepChild {
        let pidfd = pidfd_open(child.id()).map(PidFd::Plain);
        StepChild {
            child: Some(child),
            stdin,
            pidfd,
            status: None,
            stdout: Some(File::from(OwnedFd::from(output.stdout))),
            stderr: Some(File::from(OwnedFd::from(output.stderr))),
            held_write_ends: output.held,
            polls: 0,
        }
    }

    fn child(&mut self) -> &mut ChildProcess {
        self.child.as_mut().expect("only taken when dropped")
    }

    /// The program's stdin, for the event loop: the caller writes it.
    pub fn take_stdin(&mut self) -> io::Result<Option<pipe::Sender>> {
        self.stdin
            .take()
            .map(|stdin| pipe::Sender::from_owned_fd(OwnedFd::from(stdin)))
            .transpose()
    }

    fn pidfd_into_event_loop(&mut self) -> io::Result<()> {
        if let Some(PidFd::Plain(fd)) = self.pidfd.take() {
            // SAFETY: an `OwnedFd` holds its one descriptor open until it is dropped, and
            // hands out that same descriptor every time.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|error| error.into_parts().1)?;
            self.pidfd = Some(PidFd::InEventLoop(fd));
        }
        Ok(())
    }

    /// What is left to read of the program's stdout and stderr, for the event loop: `None`
    /// for a stream not piped or already read to its end.
    pub fn take_output(&mut self) -> io::Result<(Option<pipe::Receiver>, Option<pipe::Receiver>)> {
        // The event loop reads to the end of the output: that end comes only once no write
        // end is left, the program's or these.
        self.held_write_ends = None;
        let stdout = self
            .stdout
            .take()
            .map(|out| pipe::Receiver::from_owned_fd(OwnedFd::from(out)))
            .transpose()?;
        let stderr = self
            .stderr
            .take()
            .map(|err| pipe::Receiver::from_owned_fd(OwnedFd::from(err)))
            .transpose()?;
        Ok((stdout, stderr))
    }

    /// Waits for the program on the calling thread, for `budget` at most (the engine's is
    /// [`Self::WAIT_HERE_FOR`]), and hands what it prints meanwhile to `output`. Returns its
    /// exit status once it ended and both its streams are read to their end, or `None` (at
    /// once for a zero budget, or once the wait is the event loop's): the rest of the wait is
    /// [`Self::wait`]'s, and the rest of the output [`Self::take_output`]'s.
    pub fn wait_here(
        &mut self,
        budget: Duration,
        mut output: impl FnMut(Stream, &[u8]),
    ) -> io::Result<Option<ExitStatus>> {
        let Some(PidFd::Plain(pidfd)) = &self.pidfd else {
            return Ok(None);
        };
        if budget.is_zero() {
            return Ok(None);
        }
        let pidfd = pidfd.as_raw_fd();
        let deadline = Instant::now() + budget;
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let streams = [
                self.stdout.as_ref().map(|s| s.as_fd()),
                self.stderr.as_ref().map(|s| s.as_fd()),
            ];
            let ended = self.status.is_some();
            if ended && streams.iter().all(Option::is_none) {
                return Ok(self.status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // What is not over yet goes on in the event loop; an end already reaped
                // stays known.
                return Ok(self.status.filter(|_| streams.iter().all(Option::is_none)));
            }
            let ready = poll((!ended).then_some(pidfd), streams, left)?;
            self.polls += 1;
            if ready.ended {
                self.status = Some(self.child().wait()?);
                // Reaped: the pidfd has nothing more to say, and the pipes can end once what
                // the program left behind (if anything) closes them too.
                self.pidfd = None;
                self.held_write_ends = None;
            }
            for (stream, readiness) in [
                (Stream::Stdout, ready.stdout),
                (Stream::Stderr, ready.stderr),
            ] {
                match readiness {
                    Readiness::Waiting => continue,
                    // Nothing left and no writer: the read would only say so.
                    Readiness::Ended => {
                        self.close(stream);
                        continue;
                    }
                    Readiness::Readable => {}
                }
                let pipe: &mut dyn Read = match stream {
                    Stream::Stdout => self.stdout.as_mut().expect("polled, so open"),
                    Stream::Stderr => self.stderr.as_mut().expect("polled, so open"),
                };
                // The poll said readable: this read does not block.
                match pipe.read(&mut buffer) {
                    Ok(0) => self.close(stream),
                    Ok(n) => output(stream, &buffer[..n]),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }

    fn close(&mut self, stream: Stream) {
        match stream {
            Stream::Stdout => self.stdout = None,
            Stream::Stderr => self.stderr = None,
        }
    }

    /// Waits for the program to end and reaps it. Cancel-safe: dropped half way, the next
    /// call goes on waiting; after the end, every call returns the same status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.pidfd_into_event_loop()?;
        if let Some(PidFd::InEventLoop(fd)) = &self.pidfd {
            // Readable once the program has ended; it stays readable until it is reaped.
            drop(fd.readable().await?);
        }
        if let Some(PidFd::InEventLoop(fd)) = self.pidfd.take() {
            // Out of the event loop before the reaping, which would wake it for nothing.
            drop(fd.into_inner());
        } else {
            // No pidfd: ask now and then.
            while self.child().try_wait()?.is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Ended, so this returns at once.
        let status = self.child().wait()?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for StepChild {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.status.is_some() {
            return;
        }
        // Not reaped, so its pid is still its own: the signal cannot reach another process.
        let _ = child.kill();
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // A killed process ends in a moment, but not always before this returns; its
        // reaping waits off this thread, which may be the run's.
        let reap = move || {
            let _ = child.wait();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(reap)),
            Err(_) => drop(std::thread::spawn(reap)),
        }
    }
}

/// What one poll found.
struct Ready {
    ended: bool,
    stdout: Readiness,
    stderr: Readiness,
}

/// What one poll found of an output stream.
#[derive(Clone, Copy)]
enum Readiness {
    /// Nothing yet.
    Waiting,
    /// Something to read: bytes, or an error the read reports.
    Readable,
    /// At its end: empty, and every writer has closed it (a hang-up without data).
    Ended,
}

impl Readiness {
    fn of(fd: &libc::pollfd) -> Readiness {
        if fd.fd < 0 || fd.revents == 0 {
            Readiness::Waiting
        } else if fd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLNVAL) != 0 {
            Readiness::Readable
        } else {
            Readiness::Ended
        }
    }
}

/// Polls `pidfd` (unless the end is already known) and the open streams, for at most
/// `timeout`.
fn poll(
    pidfd: Option<i32>,
    streams: [Option<BorrowedFd<'_>>; 2],
    timeout: Duration,
) -> io::Result<Ready> {
    let entry = |fd: Option<i32>| libc::pollfd {
        // A negative descriptor is skipped by poll(2).
        fd: fd.unwrap_or(-1),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [
        entry(pidfd),
        entry(streams[0].map(|s| s.as_raw_fd())),
        entry(streams[1].map(|s| s.as_raw_fd())),
    ];
    // Rounded up, so that a wait of less than a millisecond does not turn into a busy loop.
    let millis = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `fds` is a valid array of pollfd of the given length, alive for the call.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if polled < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready {
                ended: false,
                stdout: Readiness::Waiting,
                stderr: Readiness::Waiting,
            });
        }
        return Err(error);
    }
    // A pipe whose writers have all closed it reports a hang-up, with `POLLIN` as well while
    // bytes are left in it; an error is left to the read to report.
    Ok(Ready {
        ended: fds[0].fd >= 0 && fds[0].revents != 0,
        stdout: Readiness::of(&fds[1]),
        stderr: Readiness::of(&fds[2]),
    })
}

/// A pidfd for `pid`, or `None` where the kernel has none (before 5.3) or refuses it.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: a descriptor just returned to us, owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use tokio::io::AsyncReadExt;

    use super::{StepChild, Stream};
    use crate::process::child_process::ChildProcess;
    use crate::process::run_environment::RunEnvironment;
    use crate::process::signal_defaults::SignalDefaults;
    use crate::process::spawn::{StandardFds, spawn};
    use crate::process::{OutputPipes, StepCommand, WriteEnds};

    /// `sh -c SCRIPT` in a group of its own, its output's write ends held as `write_ends`
    /// says.
    fn start_with(script: &str, write_ends: WriteEnds) -> StepChild {
        let (pipes, ends) = OutputPipes::new(write_ends).expect("pipes");
        let command =
            StepCommand::new(&["sh".into(), "-c".into(), script.into()]).expect("a command");
        let dev_null = File::open("/dev/null").expect("/dev/null");
        let env = RunEnvironment::new(&[]);
        let fds = StandardFds {
            stdin: dev_null.as_fd(),
            stdout: ends.stdout.as_fd(),
            stderr: ends.stderr.as_fd(),
        };
        let signals = SignalDefaults::of_this_process();
        let pid =
            spawn(&command, &env.for_step(&[]).expect("made"), &fds, &signals).expect("sh starts");
        StepChild::new(ChildProcess::new(pid), None, pipes)
    }

    /// `sh -c SCRIPT`, its output's write ends the program's alone.
    fn start(script: &str) -> StepChild {
        start_with(script, WriteEnds::Given)
    }

    /// `sh -c SCRIPT` as `exec` starts a command it waits for on the run's thread: through
    /// pipes whose write ends it holds meanwhile.
    fn start_holding(script: &str) -> StepChild {
        start_with(script, WriteEnds::Held)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// What is left of the program's stdout, read in the event loop, once it ended well.
    fn rest_in_event_loop(mut child: StepChild) -> String {
        let runtime = runtime();
        let _entered = runtime.enter();
        let (stdout, _) = child.take_output().expect("pipes");
        let mut rest = String::new();
        runtime.block_on(async {
            let mut stdout = stdout.expect("still open");
            // Bounded: output whose write end nobody closes never ends.
            let read = stdout.read_to_string(&mut rest);
            tokio::time::timeout(Duration::from_secs(20), read)
                .await
                .expect("the output ends once the program has")
                .expect("reads");
            assert!(child.wait().await.expect("ends").success());
        });
        rest
    }

    /// Starts a short program with `start`, and checks that it ends while waited for here,
    /// with all its output.
    fn ends_here_with_its_output(start: fn(&str) -> StepChild) -> StepChild {
        let mut child = start("echo out; echo err >&2; exit 3");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = child
            // Longer than the engine's, so that a busy machine cannot make a short program
            // miss it.
            .wait_here(Duration::from_secs(10), |stream, bytes| match stream {
                Stream::Stdout => out.extend_from_slice(bytes),
                Stream::Stderr => err.extend_from_slice(bytes),
            })
            .expect("waits");
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        assert_eq!((&out[..], &err[..]), (&b"out\n"[..], &b"err\n"[..]));
        child
    }

    #[test]
    fn a_short_program_ends_on_the_calling_thread_with_all_its_output() {
        let mut child = ends_here_with_its_output(start);
        // Nothing is left for the event loop, and the status stays known.
        let (stdout, stderr) = child.take_output().expect("no pipes to convert");
        assert!(stdout.is_none() && stderr.is_none());
        let status = runtime().block_on(child.wait()).expect("known");
        assert_eq!(status.code(), Some(3));
    }

    /// Starts, with `start`, a program that closes its stdout, then its stderr, then ends, a
    /// moment apart each, and waits for it here until it ended.
    fn closes_one_by_one(start: fn(&str) -> StepChild) -> StepChild {
        let mut child = start("exec >&-; sleep 0.2; exec 2>&-; sleep 0.2");
        let status = child
            .wait_here(Duration::from_secs(10), |_, _| panic!("it prints nothing"))
            .expect("waits");
        assert!(status.is_some_and(|s| s.success()));
        child
    }

    #[test]
    fn a_program_closing_its_output_wakes_a_plain_wait_at_each_close() {
        let child = closes_one_by_one(start);
        // Once for each stream's hang-up, once for the end.
        assert_eq!(child.polls, 3);
    }

    #[test]
    fn with_the_write_ends_held_only_the_end_wakes_the_wait() {
        let child = closes_one_by_one(start_holding);
        // Once for the end, once more to find both streams at their end.
        assert_eq!(child.polls, 2);
        assert!(child.held_write_ends.is_none(), "closed once it ended");
    }

    #[test]
    fn with_the_write_ends_held_a_short_program_still_ends_here_with_its_output() {
        let child = ends_here_with_its_output(start_holding);
        assert!(child.held_write_ends.is_none(), "closed once it ended");
    }

    #[test]
    fn with_the_write_ends_held_the_event_loop_still_reads_to_the_end() {
        let mut child = start_holding("echo first; sleep 1; echo second");
        let status = child
            .wait_here(StepChild::WAIT_HERE_FOR, |_, _| {})
            .expect("returns");
        assert!(status.is_none(), "the program is still running");
        assert_eq!(rest_in_event_loop(child), "second\n");
    }

    #[test]
    fn a_program_not_started_to_be_waited_for_here_is_left_to_the_event_loop() {
        let mut child = start("echo out");
        let started = Instant::now();
        let status = child
            .wait_here(Duration::ZERO, |_, _| panic!("nothing is read here"))
            .expect("returns");
        assert!(status.is_none());
        assert!(started.elapsed() < StepChild::WAIT_HERE_FOR);
        assert_eq!(rest_in_event_loop(child), "out\n");
    }

    #[test]
    fn a_longer_program_goes_on_in_the_event_loop_with_the_rest_of_its_output() {
        let mut child = start("echo first; sleep 1; echo second");
        let mut early = Vec::new();
        let started = Instant::now();
        let status = child
            .wait_here(StepChild::WAIT_HERE_FOR, |stream, bytes| {
                assert_eq!(stream, Stream::Stdout);
                early.extend_from_slice(bytes);
            })
            .expect("returns");
        let held = started.elapsed();
        assert!(status.is_none(), "the program is still running");
        assert!(held >= StepChild::WAIT_HERE_FOR, "held for {held:?}");
        assert!(held < Duration::from_millis(900), "held for {held:?}");
        assert_eq!(early, b"first\n");
        assert_eq!(rest_in_event_loop(child), "second\n");
    }

    #[test]
    fn an_end_seen_here_is_kept_while_a_leftover_holds_the_output_open() {
        // The program ends at once; what it left in the background holds stdout open
        // for longer than it is waited for here.
        let mut child = start("sleep 5 & echo done");
        let group = nix::unistd::Pid::from_raw(child.child.as_ref().expect("running").id() as i32);
        let status = child
            .wait_here(Duration::from_millis(500), |_, _| {})
            .expect("returns");
        assert!(status.is_none(), "stdout is still open");
        assert!(child.status.is_some_and(|s| s.success()), "reaped here");
        let runtime = runtime();
        let status = runtime.block_on(child.wait()).expect("known");
        assert!(status.success());
        let (stdout, _) = {
            let _entered = runtime.enter();
            child.take_output().expect("pipes")
        };
        assert!(stdout.is_some(), "left to the event loop");
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }

    #[test]
    fn a_step_child_dropped_before_its_end_is_killed_and_reaped() {
        let child = start("exec sleep 30");
        let pid = child.child.as_ref().expect("running").id();
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(proc.exists());
        drop(child);
        // A zombie keeps its /proc entry: gone means killed and reaped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc.exists() {
            assert!(Instant::now() < deadline, "pid {pid} is still there");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
