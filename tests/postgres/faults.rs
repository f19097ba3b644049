//! The database failing under a run, on a PostgreSQL cluster of this test's own (started
//! with scripts/pg-sandbox.sh in a temporary directory, stopped however the test ends), so
//! that restarting it disturbs no other test.
//!
//! What a run does: a write waits for the database as long as the pool waits for a
//! connection (10 s), so a restart between writes goes unnoticed; an outage longer than
//! that parks the run (exit 4, "its journal could not be written"), and `runbook resume`
//! continues it once the database is back, the step in flight through its `verify`.

use super::*;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A cluster of its own; stopped when dropped.
struct OwnCluster {
    dir: tempfile::TempDir,
    url: String,
}

fn sandbox(command: &str, dir: &Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-sandbox.sh");
    let output = Command::new(script)
        .args([command, dir.to_str().unwrap()])
        .output()
        .expect("run scripts/pg-sandbox.sh");
    assert!(
        output.status.success(),
        "pg-sandbox.sh {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let dir = tempfile::tempdir().unwrap();
        let url = sandbox("start", dir.path());
        OwnCluster { dir, url }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        sandbox("stop", self.dir.path());
    }
}

fn wait_for_line(file: &Path, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .any(|l| l == line)
    {
        assert!(Instant::now() < deadline, "no `{line}` in {file:?} in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SLOW: &str = r#"version: 1
name: slow
steps:
  - id: a
    exec: { script: 'echo a >> side' }
    verify:
      exec: { script: 'if grep -qx a side; then echo yes; else echo no; fi' }
      that: '.stdout | startswith("yes")'
  - id: b
    needs: [a]
    exec: { script: 'sleep 2; echo b >> side' }
    verify:
      exec: { script: 'if grep -qx b side; then echo yes; else echo no; fi' }
      that: '.stdout | startswith("yes")'
  - id: c
    needs: [b]
    exec: { script: 'echo c >> side' }
    verify:
      exec: { script: 'if grep -qx c side; then echo yes; else echo no; fi' }
      that: '.stdout | startswith("yes")'
"#;

#[test]
fn a_database_restart_mid_run_is_waited_for_and_an_outage_parks_the_run_to_resume() {
    let cluster = OwnCluster::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("slow.yaml"), SLOW).unwrap();
    let side = work.path().join("side");
    let spawn = |run_id: &str| {
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["run", "slow.yaml", "--run-id", run_id])
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .env("XDG_STATE_HOME", work.path().join("state"))
            .env("RUNBOOK_STORE", &cluster.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runbook run")
    };

    // A restart while step b runs: the next write finds the database back.
    let run = spawn("r1");
    wait_for_line(&side, "a", Duration::from_secs(20));
    sandbox("restart", cluster.dir.path());
    let output = run.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&side).unwrap(), "a\nb\nc\n");
    std::fs::remove_file(&side).unwrap();

    // Down for longer than a write waits: the run parks, exit 4, and says how to go on.
    let run = spawn("r2");
    wait_for_line(&side, "a", Duration::from_secs(20));
    sandbox("stop", cluster.dir.path());
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("its journal could not be written") && stderr.contains("runbook resume r2"),
        "{stderr}"
    );
    assert!(!stderr.contains(&password_of(&cluster.url)), "{stderr}");
    sandbox("restart", cluster.dir.path());
    let resumed = run_binary(work.path(), &["resume", "r2"], Some(&cluster.url));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        std::fs::read_to_string(&side).unwrap(),
        "a\nb\nc\n",
        "each step once: a step whose end was not recorded is found done by its verify"
    );
    let shown = run_binary(
        work.path(),
        &["runs", "show", "r2", "--format", "json"],
        Some(&cluster.url),
    );
    let report: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(report["status"], "succeeded", "{report:#}");
}

#[test]
fn serve_with_a_refused_connection_says_so_and_exits_4() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = format!("postgres://runbook:hunter2@127.0.0.1:{port}/runbook?sslmode=disable");
    let refused = run_binary(dir.path(), &["serve", "--store", &store], None);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot reach the server"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

fn password_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .password()
        .unwrap_or("no password")
        .to_owned()
}
