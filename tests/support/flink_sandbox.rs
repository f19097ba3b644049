//! The sandbox Flink cluster of `scripts/flink-sandbox.sh`, for the test crates that need a
//! real Flink: its `env` file, a sandbox started and stopped by a test, and one sandbox
//! shared by every test of a test binary (`RUNBOOK_FLINK_ENV`'s, or one started on first use
//! and stopped when the binary exits, or by a watcher if it is killed).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const SANDBOX_START_TIMEOUT: Duration = Duration::from_secs(300);
const SANDBOX_STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a sandbox's `env` file says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxEnv {
    /// `http://127.0.0.1:PORT` (FLINK_URL).
    pub url: String,
    /// The stateful job's jar (FLINK_JOB_JAR).
    pub job_jar: PathBuf,
    /// `file:///DIR/savepoints` (FLINK_SAVEPOINTS).
    pub savepoints: String,
    /// `file:///DIR/checkpoints` (FLINK_CHECKPOINTS).
    pub checkpoints: String,
    /// The sandbox directory (FLINK_SANDBOX).
    pub dir: PathBuf,
    /// The Flink distribution (FLINK_HOME), with `bin/flink`.
    pub flink_home: PathBuf,
    /// The sandbox's configuration (FLINK_CONF_DIR), for the `flink` client.
    pub conf_dir: PathBuf,
}

impl SandboxEnv {
    /// Reads `DIR/env` as `scripts/flink-sandbox.sh start` writes it.
    pub fn from_env_file(path: &Path) -> Result<SandboxEnv, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let vars = parse_env_file(&text);
        let var = |name: &str| {
            vars.get(name)
                .cloned()
                .ok_or_else(|| format!("{} has no {name}", path.display()))
        };
        Ok(SandboxEnv {
            url: var("FLINK_URL")?,
            job_jar: PathBuf::from(var("FLINK_JOB_JAR")?),
            savepoints: var("FLINK_SAVEPOINTS")?,
            checkpoints: var("FLINK_CHECKPOINTS")?,
            dir: PathBuf::from(var("FLINK_SANDBOX")?),
            flink_home: PathBuf::from(var("FLINK_HOME")?),
            conf_dir: PathBuf::from(var("FLINK_CONF_DIR")?),
        })
    }
}

/// `export KEY=value` lines, values shell-quoted as bash's `printf %q` writes them.
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_owned(), shell_unquote(value)))
        })
        .collect()
}

/// Undoes the quoting of `printf %q`: backslash escapes, '...' and $'...' (simple escapes).
fn shell_unquote(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '\'' => out.extend(chars.by_ref().take_while(|c| *c != '\'')),
            '$' if chars.peek() == Some(&'\'') => {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\'' => break,
                        '\\' => match chars.next() {
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some(other) => out.push(other),
                            None => {}
                        },
                        other => out.push(other),
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => out.extend(chars.next()),
                        other => out.push(other),
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A running sandbox Flink: the one `RUNBOOK_FLINK_ENV` names, or one started here (and
/// stopped when this is dropped).
pub struct FlinkSandbox {
    env: SandboxEnv,
    /// The temporary directory holding a sandbox this started.
    started: Option<tempfile::TempDir>,
}

impl FlinkSandbox {
    /// Attaches to `RUNBOOK_FLINK_ENV`'s sandbox, or starts one in a temporary directory
    /// (scripts/flink-sandbox.sh start; up to 5 minutes). An error says why none is available;
    /// tests should fail on it, not skip.
    pub fn start() -> Result<FlinkSandbox, String> {
        if let Some(env_file) = std::env::var_os("RUNBOOK_FLINK_ENV").filter(|v| !v.is_empty()) {
            let env = SandboxEnv::from_env_file(Path::new(&env_file))?;
            answers(&env.url)
                .map_err(|e| format!("the sandbox of RUNBOOK_FLINK_ENV does not answer: {e}"))?;
            return Ok(FlinkSandbox { env, started: None });
        }
        let temp = tempfile::Builder::new()
            .prefix("runbook-flink-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let dir = temp.path().join("sandbox");
        let log = temp.path().join("start.log");
        let outcome = run_script(&["start"], &dir, &log, SANDBOX_START_TIMEOUT)
            .and_then(|()| SandboxEnv::from_env_file(&dir.join("env")));
        match outcome {
            Ok(env) => Ok(FlinkSandbox {
                env,
                started: Some(temp),
            }),
            Err(error) => {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = run_script(
                    &["stop"],
                    &dir,
                    &temp.path().join("stop.log"),
                    SANDBOX_STOP_TIMEOUT,
                );
                Err(format!(
                    "scripts/flink-sandbox.sh start failed: {error}\n{}",
                    tail(&output, 60)
                ))
            }
        }
    }

    pub fn env(&self) -> &SandboxEnv {
        &self.env
    }
}

impl Drop for FlinkSandbox {
    fn drop(&mut self) {
        if let Some(temp) = &self.started {
            let log = temp.path().join("stop.log");
            if let Err(error) = run_script(
                &["stop"],
                &temp.path().join("sandbox"),
                &log,
                SANDBOX_STOP_TIMEOUT,
            ) {
                eprintln!("flink sandbox: stop failed: {error}");
            }
        }
    }
}

/// Runs `scripts/flink-sandbox.sh ARGS DIR` with its output in `log`, bounded in time.
fn run_script(args: &[&str], dir: &Path, log: &Path, timeout: Duration) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flink-sandbox.sh");
    let out = std::fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new("bash")
        .arg(&script)
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "{} {args:?} exited with {status}",
                    script.display()
                ));
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} {args:?} took more than {timeout:?}",
                    script.display()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether Flink's REST API answers `GET /overview`.
fn answers(url: &str) -> Result<(), String> {
    let output = Command::new("curl")
        .args(["-sSf", "--max-time", "10"])
        .arg(format!("{url}/overview"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// The test binary's sandbox, made on first use.
static SHARED: OnceLock<Result<SandboxEnv, String>> = OnceLock::new();
/// A sandbox started here, dropped (stopped) at exit.
static STARTED: Mutex<Option<FlinkSandbox>> = Mutex::new(None);

/// The sandbox every test of this binary uses: `RUNBOOK_FLINK_ENV`'s, or one started on first
/// use and stopped when the binary exits (or, if it is killed, by a watcher process).
pub fn shared() -> Result<SandboxEnv, String> {
    SHARED
        .get_or_init(|| {
            let started = Instant::now();
            let sandbox = FlinkSandbox::start()?;
            let env = sandbox.env().clone();
            eprintln!("flink sandbox at {} after {:?}", env.url, started.elapsed());
            if sandbox.started.is_some() {
                *STARTED.lock().unwrap_or_else(|p| p.into_inner()) = Some(sandbox);
                // SAFETY: registers a plain function without arguments, run once at exit.
                unsafe { libc::atexit(stop_started_sandbox) };
                stop_if_killed(&env);
            }
            Ok(env)
        })
        .clone()
}

extern "C" fn stop_started_sandbox() {
    let sandbox = STARTED.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(sandbox);
}

/// A test binary killed outright runs no exit handler: a watcher stops its sandbox then.
fn stop_if_killed(env: &SandboxEnv) {
    let Some(temp) = env.dir.parent() else { return };
    let _ = Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 2; done
               bash "$2" stop "$3" >/dev/null 2>&1; rm -rf "$4""#,
        )
        .arg("sandbox-watch")
        .arg(std::process::id().to_string())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flink-sandbox.sh"))
        .arg(&env.dir)
        .arg(temp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
}
