//! The processes a run's steps start, and making sure none outlives the run or runs twice.
//!
//! - Each step command leads a process group of its own, so a step is stopped as a whole:
//!   its group gets the signals. It is started with `posix_spawn` (no code runs between fork
//!   and exec), which costs a fraction of a full fork of the engine, in an environment made
//!   once for the run (`spawn.rs`).
//! - Each carries the run's mark in its environment (`RUNBOOK_RUN_MARK`, with the run id in
//!   `RUNBOOK_RUN_ID`), inherited by everything it starts, even what leaves its group.
//! - A supervisor process per run (see [`supervisor`]) learns each step's group as soon as
//!   it is started, and stops what is left once the engine is gone, however it went.
//! - `resume` stops whatever still carries the run's mark before any step runs again,
//!   which holds even when the supervisor was killed too.
//!
//! All of it is per run ([`RunProcesses`]): several runs in one process each have their own
//! mark, supervisor and steps to kill.

mod child_process;
mod output_pipes;
mod run_environment;
mod run_processes;
mod scan;
mod signal_defaults;
mod spawn;
mod step_child;
mod step_command;
mod step_group;
pub mod supervisor;

use std::io;
use std::time::Duration;

use sha2::{Digest, Sha256};

use output_pipes::{OutputPipes, WriteEnds};
pub use run_processes::RunProcesses;
pub use scan::{Stat, stat};
pub use step_child::{StepChild, Stream};
pub use step_command::{Stdin, StepCommand};
pub use step_group::StepGroup;

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
        RunMark(hex::encode(&digest[..16]))
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
    #[error(
        "this process may no longer own run {run_id} (its lease could have run out while it \
         stopped what an earlier engine left running), so it stops nothing more and does not \
         resume it"
    )]
    NoLongerOwned { run_id: String },
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

/// Stops every process on this host that carries the mark of `run_id` (left by an engine
/// that was killed, with its supervisor): SIGTERM, `grace`, then SIGKILL, and waits until
/// none is left. Returns how many there were. An earlier supervisor of the run still alive
/// is killed first, and not counted. Blocking: call it before the resumed run's first step.
///
/// `owned` says whether the caller still owns the run, and is asked before each process is
/// first signalled. The processes of whichever engine owns the run carry the same mark: an
/// engine that lost the run (paused past its lease, another took the run over) must not
/// stop the new owner's steps and supervisor. Once `owned` says no, this stops with
/// [`ProcessError::NoLongerOwned`].
pub fn stop_leftovers(
    run_id: &str,
    mark: &RunMark,
    grace: Duration,
    owned: &dyn Fn() -> bool,
) -> Result<usize, ProcessError> {
    let failed = |failure| match failure {
        scan::StopFailure::Unkillable(pids) => ProcessError::Unkillable {
            run_id: run_id.to_owned(),
            pids,
        },
        scan::StopFailure::NoLongerAllowed => ProcessError::NoLongerOwned {
            run_id: run_id.to_owned(),
        },
    };
    // The supervisor of the engine that died may still be stopping what carries the run's
    // mark: left alone, it would also stop the steps this resume is about to start, which
    // carry the same mark. It ignores SIGTERM (it must outlive a Ctrl-C), so it gets
    // SIGKILL at once; what it was stopping is stopped here instead.
    let supervisor = [supervisor::SUBCOMMAND, mark.as_str()];
    scan::stop_matching(
        &|pid, _| scan::arguments_are(pid, &supervisor),
        Duration::ZERO,
        owned,
    )
    .map_err(failed)?;
    let entry = mark.env_entry();
    scan::stop_matching(&|pid, _| scan::environ_has(pid, &entry), grace, owned).map_err(failed)
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
