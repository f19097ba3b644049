//! The processes of one run: how its step commands are started, marked and supervised, and
//! how they are all killed at once.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::Semaphore;

use super::child_process::ChildProcess;
use super::run_environment::RunEnvironment;
use super::signal_defaults::SignalDefaults;
use super::spawn::{StandardFds, spawn};
use super::supervisor::Supervisor;
use super::{
    MARK_VAR, OutputPipes, ProcessError, RUN_ID_VAR, RunMark, SpawnError, Stdin, StepChild,
    StepCommand, StepGroup, WriteEnds, scan,
};

/// A handle on the processes of one run, passed down to the actions that start processes.
/// Clones are handles on the same run. The default handle belongs to no run: its step
/// commands are neither marked nor supervised, only stopped when their step ends (a single
/// action run by itself, in tests).
#[derive(Clone, Default)]
pub struct RunProcesses(Arc<Shared>);

struct Shared {
    supervision: Option<Supervision>,
    state: Mutex<State>,
    /// Bounds the step commands being started at once, off the run's thread (see
    /// [`RunProcesses::start`]).
    starting: Semaphore,
    /// How many permits `starting` has.
    starters: usize,
    /// Whether a step command started while no other step of the run is under way is first
    /// waited for on the run's thread (see [`StepChild::wait_here`]).
    wait_here: AtomicBool,
    /// What the step commands start with, made at the first start.
    environment: OnceLock<RunEnvironment>,
    /// The stdin of a step command that reads none, opened at the first start.
    dev_null: OnceLock<File>,
    /// The signals a step command starts with at their default, read at the first start.
    signal_defaults: OnceLock<SignalDefaults>,
}

impl Shared {
    fn new(supervision: Option<Supervision>) -> Shared {
        // One start at a time per core keeps every core busy with the starts' waits; more
        // would only add threads.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let starters = cores.clamp(2, 8);
        Shared {
            supervision,
            state: Mutex::default(),
            starting: Semaphore::new(starters),
            starters,
            wait_here: AtomicBool::new(false),
            environment: OnceLock::new(),
            dev_null: OnceLock::new(),
            signal_defaults: OnceLock::new(),
        }
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new(None)
    }
}

/// What marks the run's processes, and what supervises them.
struct Supervision {
    run_id: String,
    mark: RunMark,
    /// A program that serves as supervisor when run as `PROGRAM __supervise MARK`.
    program: PathBuf,
}

#[derive(Default)]
struct State {
    /// Started with the run's first step command.
    supervisor: Option<Supervisor>,
    /// The leaders of the step commands running now: what a second Ctrl-C kills.
    leaders: BTreeSet<i32>,
}

impl RunProcesses {
    /// The program the supervisor runs by default: this very program, as the kernel knows
    /// it (still the same file if it was replaced on disk since the engine started).
    pub const THIS_PROGRAM: &str = "/proc/self/exe";

    /// The processes of run `run_id`: marked with `mark`, and supervised by `program`
    /// (run as `program __supervise MARK`; [`Self::THIS_PROGRAM`] for the runbook binary).
    pub fn supervised(run_id: &str, mark: RunMark, program: impl Into<PathBuf>) -> RunProcesses {
        RunProcesses(Arc::new(Shared::new(Some(Supervision {
            run_id: run_id.to_owned(),
            mark,
            program: program.into(),
        }))))
    }

    /// Has a step command started while no other of the run runs first waited for on the
    /// thread that started it, for a few milliseconds, as a shell waits for its commands (see
    /// [`StepChild::wait_here`]). Only for a thread that runs this one run and nothing else:
    /// meanwhile the thread drives nothing else.
    pub fn wait_on_the_runs_thread(&self) {
        self.0.wait_here.store(true, Ordering::Relaxed);
    }

    /// How long a step command started while it is the only step of the run under way is
    /// waited for on the run's thread: [`StepChild::WAIT_HERE_FOR`] once
    /// [`Self::wait_on_the_runs_thread`] was called, nothing otherwise.
    pub fn wait_here_budget(&self) -> Duration {
        if self.0.wait_here.load(Ordering::Relaxed) {
            StepChild::WAIT_HERE_FOR
        } else {
            Duration::ZERO
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a step command as [`Self::spawn`] does, off the run's thread when other step
    /// commands of the run are running or being started.
    ///
    /// Starting a program holds the starting thread until the program is loaded (the `vfork`
    /// of `posix_spawn`), and most of that is the new process waiting to be scheduled. On
    /// the run's own thread, a thousand steps started at once would each wait for the one
    /// before; on the runtime's blocking pool, a few at a time (one per core) wait together.
    /// A step started alone (the next of a chain) is started right here: handing it to
    /// another thread would only add a wake-up to its way. Dropped before the command has
    /// started, the command is killed as soon as it has.
    ///
    /// The command's stdout and stderr are pipes to the engine, made here, once the command
    /// is about to start: thousands of fan-out items waiting for their turn hold none. A
    /// command started alone, in a run whose commands are waited for on its thread, also
    /// leaves a copy of each write end with the engine (see [`OutputPipes`]).
    pub async fn start(&self, command: StepCommand) -> Result<(StepChild, StepGroup), SpawnError> {
        let alone = self.0.starting.available_permits() == self.0.starters
            && self.state().leaders.is_empty();
        if alone {
            let write_ends = if self.wait_here_budget().is_zero() {
                WriteEnds::Given
            } else {
                WriteEnds::Held
            };
            return self.spawn(&command, write_ends);
        }
        let _permit = self
            .0
            .starting
            .acquire()
            .await
            .expect("the starts' semaphore is never closed");
        let run = self.clone();
        // Made a `StepChild` over there: if this future is dropped meanwhile, the program
        // is killed and reaped when the result is dropped.
        tokio::task::spawn_blocking(move || run.spawn(&command, WriteEnds::Given))
            .await
            .unwrap_or_else(|error| Err(SpawnError::Program(io::Error::other(error))))
    }

    /// Starts a step command as the leader of its own process group, marked with the run
    /// and registered with the run's supervisor (started first if it is not running yet).
    ///
    /// No code of ours runs in the child between fork and exec: it is started with
    /// `posix_spawn` (a `vfork`-like clone) rather than a full fork of the engine, in the
    /// run's environment, made once (see [`super::spawn`]). The supervisor learns the group
    /// right after: a command started in the moment before the engine died is still found
    /// by the run's mark. Its stdout and stderr go to new pipes (see [`Self::start`]), whose
    /// write ends this closes once the command has them.
    fn spawn(
        &self,
        command: &StepCommand,
        write_ends: WriteEnds,
    ) -> Result<(StepChild, StepGroup), SpawnError> {
        let environment = self
            .0
            .environment
            .get_or_init(|| match &self.0.supervision {
                Some(supervision) => RunEnvironment::new(&[
                    (RUN_ID_VAR, &supervision.run_id),
                    (MARK_VAR, supervision.mark.as_str()),
                ]),
                None => RunEnvironment::new(&[]),
            });
        let env = environment
            .for_step(&command.env)
            .map_err(SpawnError::Program)?;
        let stdin = match command.stdin {
            Stdin::Null => None,
            Stdin::Piped => Some(io::pipe().map_err(SpawnError::Program)?),
        };
        let stdin_fd = match &stdin {
            Some((reader, _)) => reader.as_fd(),
            None => self.dev_null().map_err(SpawnError::Program)?.as_fd(),
        };
        let (output, ends) = OutputPipes::new(write_ends).map_err(SpawnError::Program)?;
        if let Some(supervision) = &self.0.supervision {
            // Before the command: from its first instruction on, someone outlives the engine
            // to stop it.
            let mut state = self.state();
            if state.supervisor.is_none() {
                let started = Supervisor::start(&supervision.program, &supervision.mark)
                    .map_err(|e| SpawnError::Supervision(ProcessError::Supervisor(e)))?;
                state.supervisor = Some(started);
            }
        }
        let fds = StandardFds {
            stdin: stdin_fd,
            stdout: ends.stdout.as_fd(),
            stderr: ends.stderr.as_fd(),
        };
        let signal_defaults = self
            .0
            .signal_defaults
            .get_or_init(SignalDefaults::of_this_process);
        let pid = spawn(command, &env, &fds, signal_defaults).map_err(SpawnError::Program)?;
        let mut child = ChildProcess::new(pid);
        // The program has its copies now.
        drop(ends);
        // The program has its copy of the read end; the engine keeps the write end.
        let stdin = stdin.map(|(_, writer)| writer);
        // The child leads a group numbered by its pid.
        let Some(leader) = Some(pid).filter(|&pid| pid > 1) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::Program(io::Error::other(
                "the started process has no usable pid",
            )));
        };
        // Made first: if the supervisor cannot be told, dropping it kills the group.
        let group = StepGroup {
            leader,
            armed: true,
            run: self.clone(),
        };
        let child = StepChild::new(child, stdin, output);
        self.register(leader).map_err(SpawnError::Supervision)?;
        Ok((child, group))
    }

    /// `/dev/null`, opened once for the run.
    fn dev_null(&self) -> io::Result<&File> {
        if let Some(file) = self.0.dev_null.get() {
            return Ok(file);
        }
        let file = File::open("/dev/null")?;
        // Another start may have opened it meanwhile: either copy serves.
        Ok(self.0.dev_null.get_or_init(|| file))
    }

    /// Counts `leader` among the run's steps and tells the supervisor. A supervisor that is
    /// gone (someone killed it) is replaced, and the new one learns every running step.
    fn register(&self, leader: i32) -> Result<(), ProcessError> {
        let mut state = self.state();
        state.leaders.insert(leader);
        let Some(supervision) = &self.0.supervision else {
            return Ok(());
        };
        if let Some(supervisor) = state.supervisor.as_mut() {
            match supervisor.register(leader) {
                Ok(()) => return Ok(()),
                // Nobody reads the pipe any more: the supervisor is gone.
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {}
                Err(error) => return Err(ProcessError::Supervisor(error)),
            }
        }
        if let Some(gone) = state.supervisor.take() {
            gone.finish();
        }
        let mut supervisor = Supervisor::start(&supervision.program, &supervision.mark)
            .map_err(ProcessError::Supervisor)?;
        for &running in &state.leaders {
            supervisor
                .register(running)
                .map_err(ProcessError::Supervisor)?;
        }
        state.supervisor = Some(supervisor);
        Ok(())
    }

    /// A step's group is gone (stopped by the engine): no one needs to watch it any more.
    pub(super) fn forget(&self, leader: i32) {
        let mut state = self.state();
        state.leaders.remove(&leader);
        if let Some(supervisor) = state.supervisor.as_mut() {
            supervisor.forget(leader);
        }
    }

    /// SIGKILLs every process of every step of this run running now: what runs in their
    /// groups, and whatever carries the run's mark. For leaving at once (a second Ctrl-C):
    /// nothing the run started survives, not even a process that ignores SIGTERM. Other runs
    /// of this process are left alone.
    pub fn kill_every_step_process(&self) {
        let leaders = self.state().leaders.clone();
        for &leader in &leaders {
            let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
        }
        let entry = self.0.supervision.as_ref().map(|s| s.mark.env_entry());
        let belongs = |pid: i32, stat: &scan::Stat| {
            leaders.contains(&stat.pgid)
                || entry
                    .as_ref()
                    .is_some_and(|entry| scan::environ_has(pid, entry))
        };
        scan::signal_matching(&belongs, Signal::SIGKILL);
    }

    /// Lets the supervisor begin its end, without waiting for it, once no step of the run
    /// runs any more: it stops what the run left (its sweep of the machine's processes)
    /// while the engine records the run's end; [`Self::finish`] then waits for it. A step
    /// command started after this would start a new supervisor.
    pub fn let_the_supervisor_go(&self) {
        if let Some(supervisor) = self.state().supervisor.as_mut() {
            supervisor.let_go();
        }
    }

    /// Ends the supervision once the run is over: the supervisor stops whatever the run
    /// left (a process that left its step's group but carries the run's mark) and exits;
    /// this waits for it. Blocking. A later step command would start a new supervisor.
    pub fn finish(&self) {
        let supervisor = self.state().supervisor.take();
        if let Some(supervisor) = supervisor {
            supervisor.finish();
        }
    }

    /// The pid of the run's supervisor while one runs.
    pub fn supervisor_pid(&self) -> Option<u32> {
        self.state().supervisor.as_ref().map(Supervisor::pid)
    }
}
