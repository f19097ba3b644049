//! The floor of one step of a durable chain of `exec` steps, for `scripts/bench.sh`: what
//! any engine that journals each step before the next must do, and nothing else. A step's
//! start must be on disk before its program runs, and the next step is only known once the
//! program ended, so a chain can overlap neither: each step is one start and wait of the
//! program (as the shell does it: `posix_spawn` and `waitpid`, no runtime) and one commit's
//! disk work, an 8 KiB write and its `fdatasync` (SQLite's log is written over in place once
//! a checkpoint restarted it).
//!
//! Two options add what this engine's design asks of a step on top, each alone or both:
//!
//! - `--capture`: the program's output is kept and its processes are stopped with it, as an
//!   `exec` step does: stdin from `/dev/null`, stdout and stderr through pipes (a copy of
//!   each write end held until the program ended, so that its closing them wakes nobody), a
//!   process group of its own, its end seen on a pidfd polled beside the pipes, both pipes
//!   read to their end, and the group signalled once it exited (whatever it left behind).
//! - `--sqlite`: the commit is SQLite's rather than a bare write: one transaction in a
//!   write-ahead-log database with `synchronous=FULL`, inserting two rows of about the size
//!   of a step's end and the next step's start and updating one row, as the journal does.
//!
//! Two more spend CPU a step, as an engine's own work would, to measure what each
//! microsecond of it costs a chain in wall time (see docs/performance.md):
//!
//! - `--spin-us N`: N microseconds before the commit, where the engine does most of its
//!   work, on the way from one program's end to the next one's start;
//! - `--spin-running-us N`: N microseconds right after the program started, while it runs.
//!
//! Usage: `durable_floor DIR [COUNT] [--capture] [--sqlite] [--spin-us N]
//! [--spin-running-us N]` (COUNT defaults to 1000); prints nothing, so that it is timed from
//! outside like the runbook and the shell loop beside it. A process of its own, not a
//! criterion benchmark: inside the criterion harness the same start and wait of `/bin/true`
//! takes about 0.2 ms longer than in a small program, which would raise the floor.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// One step's commit, given the step's number.
type Commit = Box<dyn FnMut(u32) -> Result<(), Error>>;

/// What each step does besides starting and waiting for its program.
struct Floor {
    capture: bool,
    sqlite: bool,
    /// CPU spent a step before the commit.
    spin: Duration,
    /// CPU spent a step while the program runs.
    spin_running: Duration,
}

fn main() -> ExitCode {
    let mut positional = Vec::new();
    let mut floor = Floor {
        capture: false,
        sqlite: false,
        spin: Duration::ZERO,
        spin_running: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let spin = match arg.as_str() {
            "--capture" => {
                floor.capture = true;
                continue;
            }
            "--sqlite" => {
                floor.sqlite = true;
                continue;
            }
            "--spin-us" => &mut floor.spin,
            "--spin-running-us" => &mut floor.spin_running,
            _ => {
                positional.push(arg);
                continue;
            }
        };
        match args.next().map(|us| us.parse()) {
            Some(Ok(us)) => *spin = Duration::from_micros(us),
            Some(Err(error)) => {
                eprintln!("durable_floor: {arg}: {error}");
                return ExitCode::from(2);
            }
            None => {
                eprintln!("durable_floor: {arg} needs a number of microseconds");
                return ExitCode::from(2);
            }
        }
    }
    let mut positional = positional.into_iter();
    let (Some(dir), count) = (positional.next(), positional.next()) else {
        eprintln!(
            "usage: durable_floor DIR [COUNT] [--capture] [--sqlite] [--spin-us N] \
             [--spin-running-us N]"
        );
        return ExitCode::from(2);
    };
    let count: u32 = match count.as_deref().unwrap_or("1000").parse() {
        Ok(count) => count,
        Err(error) => {
            eprintln!("durable_floor: COUNT: {error}");
            return ExitCode::from(2);
        }
    };
    match run(Path::new(&dir), count, &floor) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("durable_floor: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, count: u32, floor: &Floor) -> Result<(), Error> {
    let mut commit: Commit = if floor.sqlite {
        let path = dir.join("durable-floor.db");
        let _ = std::fs::remove_file(&path);
        let db = rusqlite::Connection::open(&path)?;
        db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        db.execute_batch(
            "PRAGMA synchronous = FULL;
                 CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
                 CREATE TABLE runs (id INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL);
                 INSERT INTO runs VALUES (1, 0);",
        )?;
        let body = "x".repeat(300);
        Box::new(move |step| {
            let seq = i64::from(step) * 2;
            let tx = db.unchecked_transaction()?;
            tx.prepare_cached("INSERT INTO events VALUES (?1, ?2), (?3, ?2)")?
                .execute(rusqlite::params![seq + 1, body, seq + 2])?;
            tx.prepare_cached("UPDATE runs SET last_seq = ?1 WHERE id = 1")?
                .execute([seq + 2])?;
            tx.commit()?;
            Ok(())
        })
    } else {
        let path = dir.join("durable-floor.log");
        let mut log = std::fs::File::create(&path)?;
        let page = [0u8; 8192];
        Box::new(move |_| {
            log.rewind()?;
            log.write_all(&page)?;
            log.sync_data()?;
            Ok(())
        })
    };
    for step in 0..count {
        let status = if floor.capture {
            captured_true(floor.spin_running)?
        } else {
            let mut child = Command::new("/bin/true").spawn()?;
            spin(floor.spin_running);
            child.wait()?
        };
        if !status.success() {
            return Err(format!("/bin/true: {status}").into());
        }
        spin(floor.spin);
        commit(step)?;
    }
    drop(commit);
    for name in [
        "durable-floor.log",
        "durable-floor.db",
        "durable-floor.db-wal",
        "durable-floor.db-shm",
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(())
}

/// Keeps this thread busy for `time`, as an engine's own work would: no sleep, which would
/// hand the processor back. Nothing at all for none, not even a look at the clock, so that
/// the floor without the option stays what it was.
fn spin(time: Duration) {
    if time.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// Runs `/bin/true` as an `exec` step runs a program: its output read to its end while it
/// runs, its end seen on a pidfd, its process group signalled once it exited.
fn captured_true(spin_running: Duration) -> std::io::Result<std::process::ExitStatus> {
    let (stdout, stdout_end) = std::io::pipe()?;
    let (stderr, stderr_end) = std::io::pipe()?;
    let mut held = Some([stdout_end.try_clone()?, stderr_end.try_clone()?]);
    let mut child = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(stdout_end)
        .stderr(stderr_end)
        .process_group(0)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let raw = i32::try_from(raw).map_err(|_| std::io::Error::last_os_error())?;
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us, owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    spin(spin_running);
    let mut streams = [Some(OwnedFd::from(stdout)), Some(OwnedFd::from(stderr))];
    let mut status = None;
    let mut buffer = [0u8; 16 * 1024];
    while status.is_none() || streams.iter().any(Option::is_some) {
        let entry = |fd: i32| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            entry(if status.is_none() {
                pidfd.as_raw_fd()
            } else {
                -1
            }),
            entry(streams[0].as_ref().map_or(-1, AsRawFd::as_raw_fd)),
            entry(streams[1].as_ref().map_or(-1, AsRawFd::as_raw_fd)),
        ];
        // SAFETY: `fds` is a valid array of pollfd, alive for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if fds[0].revents != 0 {
            status = Some(child.wait()?);
            drop(held.take());
        }
        for (slot, fd) in streams.iter_mut().zip(&fds[1..]) {
            if fd.revents == 0 {
                continue;
            }
            let Some(stream) = slot.take() else { continue };
            // A hang-up alone: empty, and nobody writes to it any more.
            if fd.revents & (libc::POLLIN | libc::POLLERR) == 0 {
                continue;
            }
            let mut file = std::fs::File::from(stream);
            if file.read(&mut buffer)? > 0 {
                *slot = Some(file.into());
            }
        }
    }
    // SAFETY: kill takes a pid (here a group, negated) and a signal.
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    Ok(status.expect("the loop ends once the program has"))
}
