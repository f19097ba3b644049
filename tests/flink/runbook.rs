//! Running the `runbook` binary from the repository root, with a store of the test's own.

use crate::flink::Cluster;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Runbook {
    store: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The runbook's outputs: standard output of a successful `run` or `resume`.
    pub fn outputs(&self) -> Value {
        assert_eq!(self.code, 0, "the run failed:\n{}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("outputs are not JSON ({e}): {}", self.stdout))
    }

    /// The events of `--output json`.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
            .collect()
    }
}

impl Runbook {
    pub fn new(cluster: &Cluster) -> Runbook {
        Runbook {
            store: tempfile::tempdir().expect("a temporary directory"),
            // The flink client finds the sandbox through its conf directory.
            env: vec![(
                "FLINK_CONF_DIR".to_owned(),
                cluster.conf_dir.display().to_string(),
            )],
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env(
                "RUNBOOK_STORE",
                format!("sqlite:{}", self.store.path().join("runs.db").display()),
            )
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("run the runbook binary");
        let output = Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!("$ runbook {}\n-> exit {}", args.join(" "), output.code);
        output
    }

    /// Starts the binary with `--output json` added; events arrive on the channel as they
    /// are printed.
    pub fn spawn(&self, args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the runbook binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str(&line)
                    && send.send(event).is_err()
                {
                    break;
                }
            }
        });
        (child, receive)
    }

    pub fn markdown(&self, run_id: &str) -> String {
        let shown = self.run(&["runs", "show", run_id, "--format", "markdown"]);
        assert_eq!(shown.code, 0, "{}", shown.stderr);
        shown.stdout
    }
}

/// Waits for the first event that `wanted` accepts, keeping every event seen.
pub fn wait_event(
    events: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    limit: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                seen.push(event.clone());
                if wanted(&event) {
                    return event;
                }
            }
            Err(e) => panic!("no such event ({e}); seen: {seen:#?}"),
        }
    }
}

/// The `--input` arguments for these pairs.
pub fn inputs(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--input".to_owned(), format!("{k}={v}")])
        .collect()
}
