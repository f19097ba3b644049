//! `exec`: run a program (`command: [argv...]`, no shell) or a script (`sh -eu -c`).
//!
//! - The child leads a process group of its own (see [`crate::process`]), so that
//!   cancelling the step stops everything it started, grandchildren included: SIGTERM,
//!   then SIGKILL after a grace period. Dropping the future kills them at once.
//! - stdout and stderr are read concurrently (a child blocked on a full pipe never
//!   deadlocks the step) and each is capped; past the cap the rest is read and counted, not
//!   kept.
//! - The step ends when the program exits. What it left running in its process group is
//!   stopped then (SIGTERM, then SIGKILL after the grace period): a step may not leave
//!   processes behind to race the next step or a resumed run. Output is read for a short
//!   while only after that, so a process that escaped the group while holding stdout open
//!   cannot hold the step forever.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::LazyLock;

use crate::runbook::keys_of;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::body::{Fields, text, wrong_type};
use super::{Action, ActionError, ActionFuture, ActionInput};
use crate::process::{SpawnError, Stdin, StepChild, StepCommand, StepGroup, Stream};
use crate::template::{Escape, Script, shell};

/// The `exec` action.
#[derive(Debug, Clone, Copy)]
pub struct Exec {
    /// How many bytes of stdout, and separately of stderr, the result keeps.
    pub max_output: usize,
    /// How long a cancelled process group has between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// How long output is still read after the program exited, while a process it left in
    /// the background holds the pipe open.
    pub drain: Duration,
}

impl Exec {
    /// The settings a runbook gets: 1 MiB of each stream, 2 s to shut down, 1 s to drain.
    pub const DEFAULT: Exec = Exec {
        max_output: 1024 * 1024,
        kill_grace: Duration::from_secs(2),
        drain: Duration::from_secs(1),
    };
}

impl Default for Exec {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Action for Exec {
    fn key(&self) -> &'static str {
        "exec"
    }

    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a> {
        Box::pin(self.execute(input))
    }
}

/// The keys of an `exec` body: the fields of [`model::Exec`](crate::runbook::Exec).
static KEYS: LazyLock<Vec<String>> = LazyLock::new(keys_of::<crate::runbook::Exec>);

/// What to run, rendered.
struct Spec {
    /// The program and its arguments; `sh -eu -c SCRIPT` for a script.
    argv: Vec<String>,
    /// How messages name what ran: `` `flink` `` or `script`.
    what: String,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<String>,
}

impl Spec {
    fn render(input: &ActionInput<'_>) -> Result<Spec, ActionError> {
        let Value::Object(body) = input.body else {
            return Err(wrong_type("exec", "a map", input.body));
        };
        // A script is shell code: its values reach the shell as environment variables and
        // never as script text (see `template::shell`). Every other field is passed to the
        // program as is, so it is rendered plainly.
        let plain: Map<String, Value> = body
            .iter()
            .filter(|(key, _)| key.as_str() != "script")
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let plain = render(input, &Value::Object(plain), Escape::Plain)?;
        let fields = Fields::new("exec", &plain, &KEYS)?;
        let script = match body.get("script").filter(|v| !v.is_null()) {
            Some(script) => Some(
                (input.render_pieces)(&text(script, "exec.script")?)
                    .and_then(Script::from_pieces)
                    .map_err(|e| ActionError::invalid(format!("exec: {e}")))?,
            ),
            None => None,
        };
        let mut env = fields.text_map("env")?;
        let (argv, what) = match (fields.get("command"), script) {
            (Some(_), Some(_)) => {
                return Err(ActionError::invalid(
                    "`exec` takes one of `command` and `script`, not both",
                ));
            }
            (None, None) => {
                return Err(ActionError::invalid(
                    "`exec` needs `command` (a list: program and arguments) or `script`",
                ));
            }
            (None, Some(script)) => {
                // The script's values are set last, so that `env` cannot replace them.
                env.retain(|(name, _)| !shell::is_value_variable(name));
                env.extend(script.variables);
                (
                    vec!["sh".into(), "-eu".into(), "-c".into(), script.text],
                    "script".to_owned(),
                )
            }
            (Some(command), None) => {
                let argv = command_argv(command)?;
                let what = format!("`{}`", argv[0]);
                (argv, what)
            }
        };
        Ok(Spec {
            argv,
            what,
            env,
            cwd: fields.text("cwd")?,
            stdin: fields.text("stdin")?,
        })
    }

    /// The command; its stdout and stderr are the engine's pipes, which
    /// [`RunProcesses::start`](crate::process::RunProcesses::start) makes. An argument, a
    /// variable or the directory holding a NUL byte is `InvalidInput`.
    fn command(&self) -> io::Result<StepCommand> {
        let command =
            StepCommand::new(&self.argv)?
                .env(self.env.clone())
                .stdin(if self.stdin.is_some() {
                    Stdin::Piped
                } else {
                    Stdin::Null
                });
        match &self.cwd {
            Some(cwd) => command.current_dir(cwd),
            None => Ok(command),
        }
    }

    /// Why the program could not be started, naming it.
    fn spawn_error(&self, error: &io::Error) -> ActionError {
        let program = &self.argv[0];
        match error.kind() {
            io::ErrorKind::NotFound if program.contains('/') => {
                ActionError::invalid(format!("program `{program}` does not exist"))
            }
            io::ErrorKind::NotFound => {
                ActionError::invalid(format!("program `{program}` not found on PATH"))
            }
            io::ErrorKind::PermissionDenied => ActionError::invalid(format!(
                "cannot run `{program}`: permission denied (is it an executable file?)"
            )),
            io::ErrorKind::InvalidInput => {
                ActionError::invalid(format!("cannot run `{program}`: {error}"))
            }
            _ => ActionError::failed(format!("cannot start `{program}`: {error}")),
        }
    }
}

fn render(input: &ActionInput<'_>, value: &Value, mode: Escape) -> Result<Value, ActionError> {
    (input.render)(value, mode).map_err(|e| ActionError::invalid(format!("exec: {e}")))
}

fn command_argv(command: &Value) -> Result<Vec<String>, ActionError> {
    let Value::Array(items) = command else {
        return Err(wrong_type(
            "exec.command",
            "a list (the program and its arguments)",
            command,
        ));
    };
    if items.is_empty() {
        return Err(ActionError::invalid(
            "`exec.command` is empty: it needs at least the program",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| text(item, &format!("exec.command[{i}]")))
        .collect()
}

impl Exec {
    async fn execute(&self, input: ActionInput<'_>) -> Result<Value, ActionError> {
        let spec = Spec::render(&input)?;
        if let Some(cwd) = &spec.cwd {
            // Checked first: spawning in a missing directory fails with the same error as a
            // missing program, and the message would name the wrong thing.
            check_dir(cwd)?;
        }
        if input.cancel.is_cancelled() {
            return Err(ActionError::cancelled(format!("{} cancelled", spec.what)));
        }
        // Its own process group, so a cancel reaches every process it starts; registered with
        // the run's supervisor, so it dies with the engine however the engine dies.
        let command = spec.command().map_err(|error| spec.spawn_error(&error))?;
        let (child, group) = match input.processes.start(command).await {
            Ok(started) => started,
            Err(SpawnError::Program(error)) => return Err(spec.spawn_error(&error)),
            Err(SpawnError::Supervision(error)) => {
                return Err(ActionError::failed(format!(
                    "cannot start {}: {error}",
                    spec.what
                )));
            }
        };
        // Only when nothing else of the run needs its thread meanwhile (the items of a
        // `for_each` do), and only where the run has a thread of its own.
        let wait_here = if input.alone_in_run {
            input.processes.wait_here_budget()
        } else {
            Duration::ZERO
        };
        // Boxed: while it waits to be started (thousands of fan-out items may), a step holds
        // only what it needs to start, not the state of waiting for and reading a program.
        Box::pin(self.run_started(&spec, &input.cancel, child, group, wait_here)).await
    }

    /// The program has started: read its output, wait for it (or stop it when cancelled),
    /// stop what it left in its group, and make its result. It is first waited for on this
    /// thread for up to `wait_here` (see [`StepChild::wait_here`]).
    async fn run_started(
        &self,
        spec: &Spec,
        cancel: &CancellationToken,
        mut child: StepChild,
        mut group: StepGroup,
        wait_here: Duration,
    ) -> Result<Value, ActionError> {
        let broken = |error: io::Error| {
            ActionError::failed(format!("waiting for {} failed: {error}", spec.what))
        };
        let stdin = child.take_stdin().map_err(broken)?;
        let feeder = match (stdin, spec.stdin.clone()) {
            (Some(mut pipe), Some(text)) => Some(tokio::spawn(async move {
                // A program that exits without reading its input closes the pipe: that is
                // its choice, not an error.
                let _ = pipe.write_all(text.as_bytes()).await;
            })),
            _ => None,
        };
        let mut stdout = Capture::default();
        let mut stderr = Capture::default();
        if feeder.is_none() {
            // A short command ends here, without the event loop (see `StepChild::wait_here`).
            child
                .wait_here(wait_here, |stream, bytes| match stream {
                    Stream::Stdout => stdout.keep(bytes, self.max_output),
                    Stream::Stderr => stderr.keep(bytes, self.max_output),
                })
                .map_err(broken)?;
        }
        let pipes = child.take_output().map_err(broken)?;
        let outcome = {
            // Both streams are read by this future itself, beside the wait for the program
            // (a program blocked on a full pipe would never exit): no task of their own to
            // start and to wake, which a short command would otherwise pay for twice.
            let reading = async {
                tokio::join!(
                    stdout.read_from(pipes.0, self.max_output),
                    stderr.read_from(pipes.1, self.max_output)
                );
            };
            let ending = async {
                let outcome = tokio::select! {
                    status = child.wait() => Ok(status),
                    () = cancel.cancelled() => Err(group.terminate(&mut child, self.kill_grace).await),
                };
                // The leader is reaped: stop what it left in its group before reading the
                // rest of the output. (If waiting failed, the group stays armed and dies
                // with this function.)
                if let Ok(Ok(_)) = outcome {
                    tokio::select! {
                        () = group.end(self.kill_grace) => {}
                        () = cancel.cancelled() => {}
                    }
                }
                outcome
            };
            tokio::pin!(reading, ending);
            let mut read_all = false;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut ending => break outcome,
                    () = &mut reading, if !read_all => read_all = true,
                }
            };
            // What is left to read, for a short while only: a process that escaped the
            // group may hold the pipes open for ever.
            if !read_all {
                tokio::select! {
                    () = reading => {}
                    () = tokio::time::sleep(self.drain) => {}
                    () = cancel.cancelled(), if outcome.is_ok() => {}
                }
            }
            outcome
        };
        if let Some(feeder) = &feeder {
            feeder.abort();
        }

        match outcome {
            Ok(Ok(status)) => finish(spec, status, &stdout, &stderr),
            Ok(Err(error)) => Err(ActionError::failed(format!(
                "waiting for {} failed: {error}",
                spec.what
            ))),
            Err(status) => {
                let result = result(status, &stdout, &stderr);
                Err(ActionError::cancelled(format!("{} cancelled", spec.what)).with_result(result))
            }
        }
    }
}

fn check_dir(cwd: &str) -> Result<(), ActionError> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ActionError::invalid(format!(
            "working directory `{cwd}` is not a directory"
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ActionError::invalid(format!(
            "working directory `{cwd}` does not exist"
        ))),
        Err(e) => Err(ActionError::invalid(format!(
            "working directory `{cwd}`: {e}"
        ))),
    }
}

/// The result, or the failure carrying it.
fn finish(
    spec: &Spec,
    status: ExitStatus,
    stdout: &Capture,
    stderr: &Capture,
) -> Result<Value, ActionError> {
    let result = result(Some(status), stdout, stderr);
    if status.success() {
        return Ok(result);
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {}", signal_name(signal)),
        (None, None) => format!("ended abnormally ({status})"),
    };
    let mut message = format!("{} {how}", spec.what);
    if let Some(line) = last_line(&stderr.text()) {
        message.push_str(": ");
        message.push_str(&line);
    }
    Err(ActionError::failed(message).with_result(result))
}

/// `{exit_code, stdout, stderr, json}`. A signal exit is reported as 128 + the signal, as
/// shells do, so `exit_code` is always a number once the program ended.
fn result(status: Option<ExitStatus>, stdout: &Capture, stderr: &Capture) -> Value {
    let exit_code = status.and_then(|s| s.code().or_else(|| s.signal().map(|sig| 128 + sig)));
    let (out, truncated) = stdout.text_and_truncation();
    // Cut output is not the document the program printed, even if what is left parses.
    let parsed = if truncated {
        Value::Null
    } else {
        serde_json::from_str(&out).unwrap_or(Value::Null)
    };
    json!({
        "exit_code": exit_code,
        "stdout": out,
        "stderr": stderr.text(),
        "json": parsed,
    })
}

/// The last line of stderr with text on it, shortened: usually the error itself.
fn last_line(stderr: &str) -> Option<String> {
    const MAX_CHARS: usize = 300;
    let line = stderr.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let mut short: String = line.chars().take(MAX_CHARS).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}

fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{signal} ({})", known.as_str()),
        Err(_) => signal.to_string(),
    }
}

/// One output stream, read into a capped buffer.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    /// Bytes read past the cap.
    dropped: u64,
}

impl Capture {
    /// Keeps what of `bytes` fits under `limit`, and counts the rest.
    fn keep(&mut self, bytes: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.kept.len()).min(bytes.len());
        self.kept.extend_from_slice(&bytes[..room]);
        self.dropped += (bytes.len() - room) as u64;
    }

    /// Reads `pipe` until it is closed, keeping up to `limit` bytes. Dropped half way, it
    /// keeps what it read so far. Memory grows with what the program prints: a step
    /// running quietly holds next to none, however many run at once.
    async fn read_from(&mut self, pipe: Option<impl AsyncRead + Unpin>, limit: usize) {
        let Some(mut pipe) = pipe else { return };
        while self.kept.len() < limit {
            match pipe.read_buf(&mut self.kept).await {
                Ok(1..) => {}
                Ok(0) | Err(_) => return,
            }
        }
        // A read may have gone past the cap.
        self.dropped += (self.kept.len() - limit) as u64;
        self.kept.truncate(limit);
        // Keep reading past the cap: a writer blocked on a full pipe would never exit.
        let mut chunk = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
            self.dropped += n as u64;
        }
    }

    fn text(&self) -> String {
        self.text_and_truncation().0
    }

    /// The kept text, with a note of how much was cut, and whether anything was.
    fn text_and_truncation(&self) -> (String, bool) {
        let mut dropped = self.dropped;
        let kept = &self.kept[..];
        let mut text = match std::str::from_utf8(kept) {
            Ok(text) => text.to_owned(),
            // The cap cut a character in two: drop its first bytes too rather than show
            // a replacement character that the program never wrote.
            Err(e) if dropped > 0 && e.error_len().is_none() => {
                dropped += (kept.len() - e.valid_up_to()) as u64;
                String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned()
            }
            Err(_) => String::from_utf8_lossy(kept).into_owned(),
        };
        if dropped > 0 {
            text.push_str(&format!("…[truncated {dropped} bytes]"));
        }
        (text, dropped > 0)
    }
}
