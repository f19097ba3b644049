//! The processes a run's steps start, and making sure none outlives the run or runs twice.
//!
//! - Each step command leads a session (and process group) of its own, so a step is stopped
//!   as a whole: its group gets the signals, and on cancel every process of its session too.
//! - Each carries the run's mark in its environment (`RUNBOOK_RUN_MARK`, with the run id in
//!   `RUNBOOK_RUN_ID`), inherited by everything it starts, even what leaves its session.
//! - A supervisor process (see [`supervisor`]) learns each step command's pid before the
//!   command runs, and stops what is left once the engine is gone, however it went.
//! - `resume` stops whatever still carries the run's mark before any step runs again,
//!   which holds even when the supervisor was killed too.
//!
//! Outside the command line (the library in tests) nothing installs the supervision: step
//! commands still get their own session, and are stopped when their step ends.

mod scan;
pub mod supervisor;

use std::collections::BTreeSet;
use std::io;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use supervisor::Supervisor;

/// The environment variable holding the id of the run a step process belongs to.
pub const RUN_ID_VAR: &str = "RUNBOOK_RUN_ID";
/// The environment variable holding the run's mark.
pub const MARK_VAR: &str = "RUNBOOK_RUN_MARK";

/// What tells the processes of one run from every other process on the host: a digest of
/// the run id and the moment the run was created. Two stores may both hold a run `r1`; they
/// were not created in the same nanosecond. The same run resumed from a copied store keeps
/// its mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMark(String);

impl RunMark {
    pub fn new(run_id: &str, created_at: &str) -> RunMark {
        let digest = Sha256::digest(format!("{run_id}\0{created_at}").as_bytes());
        RunMark(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    fn from_value(value: String) -> RunMark {
        RunMark(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `RUNBOOK_RUN_MARK=…`, as it appears in /proc/PID/environ.
    fn env_entry(&self) -> String {
        format!("{MARK_VAR}={}", self.0)
    }
}

/// Why processes could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start the process supervisor: {0}")]
    Supervisor(#[source] io::Error),
    #[error(
        "{} process(es) of run {run_id} are still alive after SIGKILL (pids {}); \
         it cannot be resumed safely until they are gone",
        pids.len(),
        pids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Unkillable { run_id: String, pids: Vec<i32> },
}

/// The run this engine process runs, and its supervisor once a step command started.
struct Supervision {
    run_id: String,
    mark: RunMark,
    supervisor: Option<Supervisor>,
}

static SUPERVISION: Mutex<Option<Supervision>> = Mutex::new(None);
/// The leaders of the step commands running now: what a second Ctrl-C kills.
static LIVE_LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Supervises the step commands of `run_id` from now on. The supervisor itself starts with
/// the first step command.
pub fn supervise(run_id: &str, mark: RunMark) {
    *lock(&SUPERVISION) = Some(Supervision {
        run_id: run_id.to_owned(),
        mark,
        supervisor: None,
    });
}

/// Ends the supervision: the supervisor stops whatever the run left (a process that left
/// its step's session but carries the run's mark) and exits; this waits for it. Blocking.
pub fn end_supervision() {
    let supervision = lock(&SUPERVISION).take();
    if let Some(supervisor) = supervision.and_then(|s| s.supervisor) {
        supervisor.finish();
    }
}

/// Why a step command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program itself could not be started (missing, not executable...).
    #[error(transparent)]
    Program(io::Error),
    #[error(transparent)]
    Supervision(ProcessError),
}

/// Starts a step command as the leader of its own session, marked with the run and
/// registered with the supervisor (when the command line installed one).
pub fn spawn(command: &mut Command) -> Result<(Child, StepGroup), SpawnError> {
    // Held until the child has exec'd: the pipe it writes to stays open meanwhile.
    let mut supervision = lock(&SUPERVISION);
    let register_to = match supervision.as_mut() {
        Some(supervision) => {
            command
                .env(RUN_ID_VAR, &supervision.run_id)
                .env(MARK_VAR, supervision.mark.as_str());
            let running = supervision
                .supervisor
                .as_mut()
                .is_some_and(Supervisor::is_running);
            if !running {
                let started = Supervisor::start(&supervision.mark)
                    .map_err(|e| SpawnError::Supervision(ProcessError::Supervisor(e)))?;
                supervision.supervisor = Some(started);
            }
            supervision.supervisor.as_ref().map(Supervisor::pipe_fd)
        }
        None => None,
    };
    // SAFETY: the closure runs in the child between fork and exec, and makes only
    // async-signal-safe system calls (setsid, getpid, signal, write), no allocation.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(io::Error::from)?;
            if let Some(fd) = register_to {
                supervisor::register_self(fd)?;
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|error| match error.raw_os_error() {
            Some(code) if code == nix::libc::EPIPE && register_to.is_some() => {
                SpawnError::Supervision(ProcessError::Supervisor(error))
            }
            _ => SpawnError::Program(error),
        })?;
    drop(supervision);
    // The child leads a session, hence a group, numbered by its pid. `id()` is only missing
    // once the child has been reaped, which nothing has done yet.
    let leader = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .filter(|&pid| pid > 1)
        .ok_or_else(|| SpawnError::Program(io::Error::other("the started process vanished")))?;
    lock(&LIVE_LEADERS).insert(leader);
    Ok((
        child,
        StepGroup {
            leader,
            armed: true,
        },
    ))
}

/// SIGKILLs every process of every step running now: what runs in their groups and
/// sessions, and whatever carries the run's mark. For leaving at once (a second Ctrl-C):
/// nothing the run started survives, not even a process that ignores SIGTERM.
pub fn kill_every_step_process() {
    let leaders: BTreeSet<i32> = lock(&LIVE_LEADERS).clone();
    for &leader in &leaders {
        let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
    }
    let entry = lock(&SUPERVISION).as_ref().map(|s| s.mark.env_entry());
    let belongs = |pid: i32, stat: &scan::Stat| {
        leaders.contains(&stat.pgid)
            || leaders.contains(&stat.sid)
            || entry
                .as_ref()
                .is_some_and(|entry| scan::environ_has(pid, entry))
    };
    scan::signal_matching(&belongs, Signal::SIGKILL);
}

/// Stops every process on this host that carries the mark of `run_id` (left by an engine
/// that was killed, with its supervisor): SIGTERM, `grace`, then SIGKILL, and waits until
/// none is left. Returns how many there were. Blocking.
pub fn stop_leftovers(
    run_id: &str,
    mark: &RunMark,
    grace: Duration,
) -> Result<usize, ProcessError> {
    let entry = mark.env_entry();
    scan::stop_matching(&|pid, _| scan::environ_has(pid, &entry), grace).map_err(|pids| {
        ProcessError::Unkillable {
            run_id: run_id.to_owned(),
            pids,
        }
    })
}

/// The process group (and session) a step command leads. Dropped while armed (the step's
/// future was dropped mid-run), it kills all of it at once: nothing can be awaited in a
/// destructor, so there is no grace.
pub struct StepGroup {
    leader: i32,
    armed: bool,
}

impl StepGroup {
    fn pgid(&self) -> Pid {
        Pid::from_raw(self.leader)
    }

    /// Signals the group, and the processes of the session that moved to other groups.
    fn signal_session(&self, signal: Signal) {
        // ESRCH: the group is already gone, which is what we want.
        let _ = killpg(self.pgid(), signal);
        let leader = self.leader;
        scan::signal_matching(&|_, stat| stat.sid == leader, signal);
    }

    /// SIGTERM to everything the step runs, SIGKILL once the leader exits or `grace` runs
    /// out (whichever comes first: what the leader leaves behind when it is told to stop is
    /// meant to stop too), then reap the leader. Returns its exit status when it could be
    /// read.
    pub async fn terminate(&mut self, child: &mut Child, grace: Duration) -> Option<ExitStatus> {
        self.signal_session(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(_)) | Err(_) => None,
        };
        self.signal_session(Signal::SIGKILL);
        self.armed = false;
        match status {
            Some(status) => Some(status),
            None => child.wait().await.ok(),
        }
    }

    /// After the leader exited by itself: stops what it left running in its group (SIGTERM,
    /// up to `grace`, SIGKILL). A step may not leave processes behind.
    pub async fn end(&mut self, grace: Duration) {
        // The common case, an empty group, costs this one system call.
        if killpg(self.pgid(), Signal::SIGTERM).is_ok() {
            let leader = self.leader;
            let deadline = tokio::time::Instant::now() + grace;
            // Zombies count as gone: once dead, their reaping is their parent's business.
            while !scan::find(&|_, stat| stat.pgid == leader).is_empty() {
                if tokio::time::Instant::now() >= deadline {
                    let _ = killpg(self.pgid(), Signal::SIGKILL);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Only now: if this future is dropped half way, the group is killed on drop.
        self.armed = false;
    }
}

impl Drop for StepGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal_session(Signal::SIGKILL);
        }
        lock(&LIVE_LEADERS).remove(&self.leader);
        if let Some(supervisor) = lock(&SUPERVISION)
            .as_mut()
            .and_then(|s| s.supervisor.as_mut())
        {
            supervisor.forget(self.leader);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_the_same_for_the_same_run_and_differs_between_runs() {
        let mark = RunMark::new("r1", "2026-01-01T00:00:00.000000001Z");
        assert_eq!(mark, RunMark::new("r1", "2026-01-01T00:00:00.000000001Z"));
        assert_ne!(mark, RunMark::new("r1", "2026-01-01T00:00:00.000000002Z"));
        assert_ne!(mark, RunMark::new("r2", "2026-01-01T00:00:00.000000001Z"));
        assert_eq!(mark.as_str().len(), 32);
        assert!(mark.env_entry().starts_with("RUNBOOK_RUN_MARK="));
    }
}
