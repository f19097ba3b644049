//! What a step command is, as the engine starts it: the program and its arguments, the
//! variables it gets on top of the run's environment, its working directory, and where its
//! stdin comes from. Its stdout and stderr are always pipes to the engine.

use std::ffi::CString;
use std::io;

/// A program to start for a step. Made once, before its turn: the arguments are checked
/// (and made C strings) here, so that a start has nothing left to fail on but the start.
#[derive(Debug, Clone)]
pub struct StepCommand {
    /// The program first, then its arguments.
    pub(super) argv: Vec<CString>,
    /// Set on top of the run's environment (see [`super::run_environment::RunEnvironment`]).
    pub(super) env: Vec<(String, String)>,
    pub(super) cwd: Option<CString>,
    pub(super) stdin: Stdin,
}

/// Where a step command's stdin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// `/dev/null`: reading it ends at once.
    Null,
    /// A pipe, whose write end the engine holds (see [`super::StepChild::take_stdin`]).
    Piped,
}

impl StepCommand {
    /// `argv[0]` with the arguments after it, stdin from `/dev/null`. An argument holding a
    /// NUL byte cannot be passed to a program: `InvalidInput`, as the standard library has
    /// it.
    pub fn new(argv: &[String]) -> io::Result<StepCommand> {
        if argv.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no program to run",
            ));
        }
        Ok(StepCommand {
            argv: argv
                .iter()
                .enumerate()
                .map(|(i, arg)| c_string(arg, || format!("argument {i}")))
                .collect::<Result<_, _>>()?,
            env: Vec::new(),
            cwd: None,
            stdin: Stdin::Null,
        })
    }

    /// Variables set on top of the run's environment. The run's own (its id and mark) are
    /// set after these, and win.
    pub fn env(mut self, env: Vec<(String, String)>) -> StepCommand {
        self.env = env;
        self
    }

    /// The directory the program starts in.
    pub fn current_dir(mut self, cwd: &str) -> io::Result<StepCommand> {
        self.cwd = Some(c_string(cwd, || "the working directory".to_owned())?);
        Ok(self)
    }

    pub fn stdin(mut self, stdin: Stdin) -> StepCommand {
        self.stdin = stdin;
        self
    }

    /// The program, as given.
    pub(super) fn program(&self) -> &CString {
        &self.argv[0]
    }
}

/// `text` as a C string, or `InvalidInput` if it holds a NUL byte. The message names `what`
/// held it, never the text, which may be a secret.
pub(super) fn c_string(text: &str, what: impl FnOnce() -> String) -> io::Result<CString> {
    CString::new(text).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", what()),
        )
    })
}
