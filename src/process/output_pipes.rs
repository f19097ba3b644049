//! The pipes a step command's stdout and stderr go through, made by the engine, so that it
//! may keep a copy of each write end while it waits for the program on the run's thread.
//!
//! A pipe reports a hang-up as soon as its last write end is closed, and that wakes whoever
//! polls it. Most programs close their stdout and their stderr themselves as they exit
//! (`/bin/true` does, through `atexit`), a moment apart and a moment before their end: a
//! wait that polls the pipes beside the program's pidfd was woken three times for one end,
//! each a sleep and a wake-up of the run's thread. With a write end of its own held open
//! until the program ended, the program's closing raises nothing, and the one wake-up left
//! is the end itself (or bytes to read).

use std::io::{self, PipeReader, PipeWriter};

/// A step command's stdout and stderr pipes, as the engine holds them.
pub(super) struct OutputPipes {
    pub(super) stdout: PipeReader,
    pub(super) stderr: PipeReader,
    /// Copies of both write ends, while the program is waited for on the calling thread;
    /// closed once it ended, or when the wait is handed to the event loop (which reads to
    /// the end of the output, and would otherwise never see it).
    pub(super) held: Option<[PipeWriter; 2]>,
}

/// Who holds the pipes' write ends while the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteEnds {
    /// The program alone.
    Given,
    /// The program, and a copy each kept by the engine until the program is known to have
    /// ended (two more descriptors for that while). Only worth it for a program waited for
    /// on the calling thread ([`super::StepChild::wait_here`]).
    Held,
}

/// The ends a command is given for its stdout and its stderr.
pub(super) struct CommandEnds {
    pub(super) stdout: PipeWriter,
    pub(super) stderr: PipeWriter,
}

impl OutputPipes {
    /// Two new pipes, their write ends held as `write_ends` says.
    pub(super) fn new(write_ends: WriteEnds) -> io::Result<(OutputPipes, CommandEnds)> {
        let (stdout, stdout_end) = io::pipe()?;
        let (stderr, stderr_end) = io::pipe()?;
        let held = match write_ends {
            WriteEnds::Held => Some([stdout_end.try_clone()?, stderr_end.try_clone()?]),
            WriteEnds::Given => None,
        };
        let ends = CommandEnds {
            stdout: stdout_end,
            stderr: stderr_end,
        };
        Ok((
            OutputPipes {
                stdout,
                stderr,
                held,
            },
            ends,
        ))
    }
}
