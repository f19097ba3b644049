//! Durable runs through the binary: resume after a signal or a kill, approvals, one owner per
//! run, run history, and what the store must never hold.

use crate::events::{events, process_is_gone};
use crate::support::{Output, Test, repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A directory with runbooks and a store that several commands share.
pub struct Bench {
    pub dir: tempfile::TempDir,
}

impl Bench {
    pub fn new() -> Bench {
        Bench {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("store/runs.db")
    }

    pub fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.path().join(name), text).expect("write a test file");
        self
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// Runs the binary to its end in this directory, with this store.
    pub fn runbook(&self, args: &[&str]) -> Output {
        Test::new()
            .current_dir(self.path())
            .env("RUNBOOK_STORE", format!("sqlite:{}", self.db().display()))
            .args(args.iter().copied())
            .run()
    }

    /// Starts the binary without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(args)
            .current_dir(self.path())
            .env("RUNBOOK_STORE", format!("sqlite:{}", self.db().display()))
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the runbook binary")
    }

    /// Waits until a file in the directory holds `text`.
    pub fn wait_for(&self, name: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.read(name).contains(text) {
            assert!(
                Instant::now() < deadline,
                "{name} never held {text:?}: {:?}",
                self.read(name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `runbook ARGS`, waits until the file `side` holds `started`, interrupts the run
    /// (SIGINT) and waits for it to park (exit 3): its stderr.
    pub fn run_until_interrupted(&self, args: &[&str]) -> String {
        let child = self.spawn(args);
        self.wait_for("side", "started");
        signal(&child, libc::SIGINT);
        let (code, _, stderr) = finish(child);
        assert_eq!(code, 3, "{stderr}");
        stderr
    }

    pub fn show_json(&self, run_id: &str) -> Value {
        let shown = self.runbook(&["runs", "show", run_id, "--format", "json"]);
        assert_eq!(shown.code, 0, "{}", shown.stderr);
        serde_json::from_str(&shown.stdout).expect("runs show --format json prints JSON")
    }
}

pub fn finish(child: Child) -> (i32, String, String) {
    let output = child
        .wait_with_output()
        .expect("wait for the runbook binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn signal(child: &Child, signal: i32) {
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn step<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == path))
        .unwrap_or_else(|| panic!("no step {path} in {report:#}"))
}

const THREE_STEPS: &str = r#"version: 1
name: three-steps
steps:
  - id: a
    exec: { script: 'echo a >> side' }
  - id: b
    needs: [a]
    exec:
      script: |
        echo b-start >> side
        if [ ! -e again ]; then touch again; sleep 30; fi
        echo b-done >> side
    outputs: { key: '$ctx.step.key' }
  - id: c
    needs: [b]
    exec: { script: 'echo c >> side' }
outputs:
  key: .steps.b.outputs.key
"#;

#[test]
fn an_interrupted_run_resumes_where_it_stopped_and_ended_steps_never_run_again() {
    let bench = Bench::new();
    bench.write("three.yaml", THREE_STEPS);
    let child = bench.spawn(&["run", "three.yaml", "--run-id", "r1"]);
    bench.wait_for("side", "b-start");
    signal(&child, libc::SIGINT);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("runbook resume r1"), "{stderr}");
    let listed = bench.runbook(&["runs", "list"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("r1 ") && l.contains("interrupted")),
        "{}",
        listed.stdout
    );

    let resumed = bench.runbook(&["resume", "r1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "a\nb-start\nb-start\nb-done\nc\n");
    let report = bench.show_json("r1");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["resumes"].as_array().map(Vec::len), Some(1));
    for path in ["a", "b", "c"] {
        assert_eq!(step(&report, path)["status"], "succeeded", "{path}");
    }
    // The step key is the same in the attempt that was cut short and the one that finished.
    let key = step(&report, "b")["outputs"]["key"].clone();
    assert_eq!(report["outputs"]["key"], key);
    assert_eq!(key.as_str().map(str::len), Some(32));
}

#[test]
fn a_killed_run_resumes_and_verify_skips_a_step_whose_work_is_done() {
    let bench = Bench::new();
    bench.write(
        "verify.yaml",
        r#"version: 1
name: verify
steps:
  - id: work
    exec:
      script: |
        echo start >> side
        touch done-marker
        sleep 30
    verify:
      exec: { script: 'if [ -e done-marker ]; then echo yes; else echo no; fi' }
      that: '.stdout | startswith("yes")'
      outputs: { checked: '"by probe"' }
    outputs: { checked: '"by action"' }
  - id: after
    needs: [work]
    exec: { script: 'echo after >> side' }
outputs:
  checked: .steps.work.outputs.checked
"#,
    );
    let child = bench.spawn(&["run", "verify.yaml", "--run-id", "v1"]);
    bench.wait_for("side", "start");
    signal(&child, libc::SIGKILL);
    let (code, _, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");

    let resumed = bench.runbook(&["resume", "v1", "--output", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        bench.read("side"),
        "start\nafter\n",
        "work did not run again"
    );
    let events = events(&resumed.stdout);
    let work = events
        .iter()
        .find(|e| e["event"] == "step_ended" && e["path"] == "work")
        .expect("work ended");
    assert_eq!(work["via"], "verify");
    assert_eq!(work["outputs"]["checked"], "by probe");
    assert_eq!(bench.show_json("v1")["outputs"]["checked"], "by probe");
}

#[test]
fn a_probe_that_says_not_done_runs_the_step_again() {
    let bench = Bench::new();
    bench.write(
        "again.yaml",
        r#"version: 1
name: again
steps:
  - id: work
    exec:
      script: |
        echo start >> side
        if [ ! -e again ]; then touch again; sleep 30; fi
    verify:
      exec: { command: ["false"] }
      that: 'true'
"#,
    );
    let child = bench.spawn(&["run", "again.yaml", "--run-id", "n1"]);
    bench.wait_for("side", "start");
    signal(&child, libc::SIGKILL);
    finish(child);
    let resumed = bench.runbook(&["resume", "n1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "start\nstart\n");
    assert!(
        resumed.stderr.contains("verify probe failed"),
        "{}",
        resumed.stderr
    );
}

const GATED: &str = r#"version: 1
name: gated
steps:
  - id: prepare
    exec: { script: 'echo prepare >> side' }
  - id: gate
    needs: [prepare]
    approval:
      prompt: "Cancel the jobs of {{inputs.cluster}}?"
      timeout: 1h
  - id: act
    needs: [gate]
    exec: { script: 'echo act >> side' }
inputs:
  cluster: { type: string, default: prod-eu }
outputs:
  approved_by: .steps.gate.outputs.approved_by
"#;

#[test]
fn an_approval_parks_the_run_until_someone_approves_and_resume_continues() {
    let bench = Bench::new();
    bench.write("gated.yaml", GATED);
    let parked = bench.runbook(&["run", "gated.yaml", "--run-id", "g1"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert!(
        parked.stderr.contains("Cancel the jobs of prod-eu?")
            && parked.stderr.contains("runbook approve g1 gate"),
        "{}",
        parked.stderr
    );
    assert_eq!(bench.read("side"), "prepare\n");
    let listed = bench.runbook(&["runs", "list", "--format", "json"]);
    let runs: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(runs[0]["id"], "g1");
    assert_eq!(runs[0]["status"], "waiting");

    // Resuming before anyone answers parks again, without asking twice.
    let again = bench.runbook(&["resume", "g1"]);
    assert_eq!(again.code, 3, "{}", again.stderr);

    let approved = bench.runbook(&[
        "approve",
        "g1",
        "gate",
        "--as",
        "alice",
        "--comment",
        "window open",
    ]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert!(
        approved.stderr.contains("runbook resume g1"),
        "{}",
        approved.stderr
    );
    let twice = bench.runbook(&["approve", "g1", "gate"]);
    assert_eq!(twice.code, 2);
    assert!(
        twice.stderr.contains("already approved by alice"),
        "{}",
        twice.stderr
    );

    let resumed = bench.runbook(&["resume", "g1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "prepare\nact\n");
    assert_eq!(resumed.stdout.trim(), "{\n  \"approved_by\": \"alice\"\n}");
    let report = bench.show_json("g1");
    let approvals = report["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "asked once: {approvals:#?}");
    assert_eq!(approvals[0]["by"], "alice");
    assert_eq!(approvals[0]["comment"], "window open");
    let markdown = bench.runbook(&["runs", "show", "g1", "--format", "markdown"]);
    assert!(
        markdown.stdout.contains("approved by alice: window open"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn a_rejected_approval_fails_the_step_and_the_run() {
    let bench = Bench::new();
    bench.write("gated.yaml", GATED);
    assert_eq!(
        bench.runbook(&["run", "gated.yaml", "--run-id", "g2"]).code,
        3
    );
    let wrong = bench.runbook(&["approve", "g2", "gates"]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong
            .stderr
            .contains("not waiting for approval (did you mean `gate`?)"),
        "{}",
        wrong.stderr
    );
    let rejected = bench.runbook(&[
        "approve",
        "g2",
        "gate",
        "--reject",
        "--as",
        "bob",
        "--comment",
        "not tonight",
    ]);
    assert_eq!(rejected.code, 0, "{}", rejected.stderr);
    let resumed = bench.runbook(&["resume", "g2", "--output", "json"]);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    let events = events(&resumed.stdout);
    let gate = events
        .iter()
        .find(|e| e["event"] == "step_ended" && e["path"] == "gate")
        .unwrap();
    assert_eq!(gate["status"], "failed");
    assert_eq!(gate["error"], "rejected by bob: not tonight");
    assert_eq!(bench.read("side"), "prepare\n");
    let finished = bench.runbook(&["resume", "g2"]);
    assert_eq!(finished.code, 2);
    assert!(
        finished.stderr.contains("already ended (failed)"),
        "{}",
        finished.stderr
    );
}

#[test]
fn an_approval_given_while_the_run_is_live_is_picked_up_without_a_resume() {
    let bench = Bench::new();
    bench.write(
        "live.yaml",
        r#"version: 1
name: live
steps:
  - id: gate
    approval: { prompt: "go?" }
  - id: busy
    needs: []
    exec: { script: 'echo busy >> side; sleep 2; echo done >> side' }
  - id: after
    needs: [gate]
    exec: { script: 'echo after >> side' }
"#,
    );
    let child = bench.spawn(&["run", "live.yaml", "--run-id", "l1"]);
    bench.wait_for("side", "busy");
    // `busy` may start before the question is journaled, on a loaded machine well before.
    let deadline = Instant::now() + Duration::from_secs(20);
    while bench.show_json("l1")["approvals"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the approval was never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let approved = bench.runbook(&["approve", "l1", "gate"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert!(
        approved.stderr.contains("will pick it up"),
        "{}",
        approved.stderr
    );
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(bench.read("side").contains("after"));
}

#[test]
fn a_second_owner_is_refused_while_the_first_lives_and_a_killed_owner_does_not_block() {
    let bench = Bench::new();
    bench.write("three.yaml", THREE_STEPS);
    let first = bench.spawn(&["run", "three.yaml", "--run-id", "o1"]);
    bench.wait_for("side", "b-start");
    let refused = bench.runbook(&["resume", "o1"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    let pid = first.id();
    assert!(
        refused
            .stderr
            .contains(&format!("run o1 is already being run by pid {pid} on ")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("(since 20"), "{}", refused.stderr);
    signal(&first, libc::SIGKILL);
    finish(first);
    let resumed = bench.runbook(&["resume", "o1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
}

#[test]
fn of_two_concurrent_resumes_exactly_one_proceeds() {
    let bench = Bench::new();
    bench.write("three.yaml", THREE_STEPS);
    let child = bench.spawn(&["run", "three.yaml", "--run-id", "c1"]);
    bench.wait_for("side", "b-start");
    signal(&child, libc::SIGKILL);
    finish(child);
    std::fs::write(bench.path().join("again"), "").unwrap();
    std::fs::remove_file(bench.path().join("again")).unwrap();
    let one = bench.spawn(&["resume", "c1"]);
    let two = bench.spawn(&["resume", "c1"]);
    let mut codes = [finish(one), finish(two)];
    codes.sort_by_key(|(code, _, _)| *code);
    assert_eq!(codes[0].0, 0, "one resume runs: {}", codes[0].2);
    assert_eq!(codes[1].0, 4, "the other is refused: {}", codes[1].2);
    assert!(
        codes[1].2.contains("is already being run by pid"),
        "{}",
        codes[1].2
    );
    let side = bench.read("side");
    assert_eq!(side.matches("b-done").count(), 1, "{side}");
    assert_eq!(side.matches("c\n").count(), 1, "{side}");
}

#[test]
fn secrets_never_reach_the_store() {
    let bench = Bench::new();
    bench.write(
        "secret.yaml",
        r#"version: 1
name: secret
secrets:
  token: { env: DEPLOY_TOKEN }
steps:
  - id: use
    exec: { script: 'echo "token={{secrets.token}}"; echo "{{secrets.token}}" >&2' }
    outputs: { said: .stdout }
  - id: fail
    needs: [use]
    exec: { script: 'echo "failing with {{secrets.token}}" >&2; exit 3' }
    continue_on_failure: true
outputs:
  said: .steps.use.outputs.said
"#,
    );
    let secret = "s3cr3t-Xq7-never-stored";
    let run = Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .env("DEPLOY_TOKEN", secret)
        .args(["run", "secret.yaml", "--run-id", "s1"])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("token=***"), "{}", run.stdout);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(bench.db().parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096, "the store was written");
    let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!found, "the secret is in the store's files");
    assert!(
        bytes.windows(9).any(|w| w == b"token=***"),
        "the redacted output is"
    );
}

#[test]
fn resume_runs_the_runbook_stored_with_the_run_and_says_the_file_changed() {
    let bench = Bench::new();
    bench.write("three.yaml", THREE_STEPS);
    let child = bench.spawn(&["run", "three.yaml", "--run-id", "e1"]);
    bench.wait_for("side", "b-start");
    signal(&child, libc::SIGINT);
    finish(child);
    bench.write(
        "three.yaml",
        &THREE_STEPS.replace("echo c >>", "echo edited >>"),
    );
    let resumed = bench.runbook(&["resume", "e1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("three.yaml has changed since run e1 started"),
        "{}",
        resumed.stderr
    );
    assert!(
        bench.read("side").ends_with("c\n"),
        "{}",
        bench.read("side")
    );
}

#[test]
fn run_ids_are_unique_and_only_unfinished_runs_resume() {
    let bench = Bench::new();
    bench.write(
        "one.yaml",
        "version: 1\nname: one\nsteps:\n  - id: a\n    sleep: 1ms\n",
    );
    assert_eq!(
        bench.runbook(&["run", "one.yaml", "--run-id", "u1"]).code,
        0
    );
    let again = bench.runbook(&["run", "one.yaml", "--run-id", "u1"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("a run `u1` already exists"),
        "{}",
        again.stderr
    );
    let done = bench.runbook(&["resume", "u1"]);
    assert_eq!(done.code, 2);
    assert!(
        done.stderr.contains("already ended (succeeded)"),
        "{}",
        done.stderr
    );
    let unknown = bench.runbook(&["resume", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no run `nope`"),
        "{}",
        unknown.stderr
    );
    let bad = bench.runbook(&["runs", "list", "--store", "mysql://x"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown store `mysql://x`"),
        "{}",
        bad.stderr
    );
    let bad_id = bench.runbook(&["run", "one.yaml", "--run-id", "a/b"]);
    assert_eq!(bad_id.code, 2);
}

#[test]
fn runs_list_and_show_report_every_step_with_timings() {
    let bench = Bench::new();
    bench.write(
        "report.yaml",
        r#"version: 1
name: report
steps:
  - id: fan
    for_each: '[1, 2]'
    exec: { script: 'echo {{item}}' }
    outputs: { n: '.stdout | tonumber' }
  - id: flaky
    exec: { script: 'exit 1' }
    retry: { attempts: 2, delay: 1ms }
    fallback:
      exec: { script: 'true' }
      outputs: { n: '0' }
    outputs: { n: '1' }
outputs:
  total: '[.steps.fan.items[].outputs.n] | add'
"#,
    );
    assert_eq!(
        bench
            .runbook(&["run", "report.yaml", "--run-id", "w1"])
            .code,
        0
    );
    let listed = bench.runbook(&["runs", "list"]);
    let header = listed.stdout.lines().next().unwrap();
    for column in ["id", "runbook", "status", "started", "duration"] {
        assert!(header.contains(column), "{header}");
    }
    let row = listed.stdout.lines().nth(1).unwrap();
    assert!(
        row.starts_with("w1 ") && row.contains("report") && row.contains("succeeded"),
        "{row}"
    );

    let report = bench.show_json("w1");
    assert_eq!(report["outputs"]["total"], 3);
    let flaky = step(&report, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(flaky["via"], "fallback");
    assert_eq!(flaky["attempts"], 3);
    assert!(flaky["started_at"].as_str().unwrap().starts_with("20"));
    assert!(flaky["ended_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(step(&report, "fan[1]")["outputs"]["n"], 2);

    let text = bench.runbook(&["runs", "show", "w1"]);
    assert!(
        text.stdout.contains("status    succeeded"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("via fallback"), "{}", text.stdout);
    let markdown = bench.runbook(&["runs", "show", "w1", "--format", "markdown"]);
    assert!(
        markdown.stdout.starts_with("# Run `w1` of `report`"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| `flaky` | succeeded (via fallback) | 3 |"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn sigterm_interrupts_the_run_and_a_kill_takes_the_step_command_with_it() {
    // A killed engine must not leave a step's command behind to race the resumed run.
    let bench = Bench::new();
    bench.write(
        "orphan.yaml",
        "version: 1\nname: orphan\nsteps:\n  - id: s\n    exec: { script: 'echo $$ > pid; sleep 30' }\n",
    );
    let child = bench.spawn(&["run", "orphan.yaml", "--run-id", "k1"]);
    bench.wait_for("pid", "\n");
    let pid: u32 = bench.read("pid").trim().parse().unwrap();
    signal(&child, libc::SIGTERM);
    let (code, _, _) = finish(child);
    assert_eq!(code, 3);
    assert!(process_is_gone(pid));

    std::fs::remove_file(bench.path().join("pid")).unwrap();
    let child = bench.spawn(&["resume", "k1"]);
    bench.wait_for("pid", "\n");
    let pid: u32 = bench.read("pid").trim().parse().unwrap();
    signal(&child, libc::SIGKILL);
    finish(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !process_is_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "the step's shell outlived the engine"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn store_urls_that_keep_nothing_on_disk_are_refused() {
    let bench = Bench::new();
    bench.write(
        "one.yaml",
        "version: 1\nname: one\nsteps:\n  - id: a\n    exec: { script: 'echo ran >> side' }\n",
    );
    for url in [
        "sqlite:file:m?mode=memory",
        "sqlite::memory:",
        "sqlite:kept.db?nolock=1",
        "sqlite:file:kept.db",
    ] {
        let run = bench.runbook(&["run", "one.yaml", "--store", url]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("the store URL `{url}` is refused")),
            "{url}: {}",
            run.stderr
        );
    }
    assert_eq!(bench.read("side"), "", "nothing ran");
    let left: Vec<_> = std::fs::read_dir(bench.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "one.yaml")
        .collect();
    assert!(left.is_empty(), "no store file was made: {left:?}");
}

#[test]
fn store_files_and_directories_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let bench = Bench::new();
    bench.write(
        "slow.yaml",
        "version: 1\nname: slow\nsteps:\n  - id: a\n    exec: { script: 'echo waiting >> side; sleep 30' }\n",
    );
    // A store in directories that do not exist yet, looked at while the run is on, so that
    // SQLite's -wal and -shm files are there too.
    let child = bench.spawn(&["run", "slow.yaml", "--store", "sqlite:deep/er/runs.db"]);
    bench.wait_for("side", "waiting");
    let deep = bench.path().join("deep");
    let modes: Vec<(String, u32)> = [
        deep.clone(),
        deep.join("er"),
        deep.join("er/runs.db"),
        deep.join("er/runs.db-wal"),
        deep.join("er/runs.db-shm"),
    ]
    .iter()
    .map(|path| (path.display().to_string(), mode(path)))
    .collect();
    signal(&child, libc::SIGKILL);
    finish(child);
    for (path, mode) in &modes[..2] {
        assert_eq!(*mode, 0o700, "{path} is {mode:o}");
    }
    for (path, mode) in &modes[2..] {
        assert_eq!(*mode, 0o600, "{path} is {mode:o}");
    }

    // The default store, in the state directory.
    let run = Test::new()
        .write(
            "one.yaml",
            "version: 1\nname: one\nsteps:\n  - id: a\n    sleep: 1ms\n",
        )
        .args(["run", "one.yaml"])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let state = run.dir().join(".state");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("runbook")), 0o700);
    assert_eq!(mode(&state.join("runbook/runbook.db")), 0o600);
}

#[test]
fn commands_that_read_runs_never_create_a_store() {
    let bench = Bench::new();
    let db = bench.path().join("no/such/dir/x.db");
    let store = format!("sqlite:{}", db.display());
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "r1"],
        &["approve", "r1", "gate"],
        &["resume", "r1"],
    ] {
        let output = bench.runbook(&[args, &["--store", &store]].concat());
        assert_eq!(output.code, 2, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains(&format!(
                "there is no store at {store}: the file does not exist"
            )),
            "{args:?}: {}",
            output.stderr
        );
    }
    assert!(
        !bench.path().join("no").exists(),
        "no directory was created for it"
    );
}

/// A store written before events were stored bare: `fixtures/journal-of-whole-envelopes.db`
/// was made by that version of runbook (schema version 3) with `runbook run gated.yaml --run-id
/// old-1`, `gated.yaml` being `prepare` (an assert), `gate` (an approval asking "Go on?") and
/// `act` (asserting `.steps.gate.outputs.approved_by == "alice"`), with the output
/// `approved_by`; the run parked at its approval. Each of its rows holds the whole envelope as
/// its body, chained over the body alone. The current version migrates the store, reads and
/// verifies the old journal, and resumes the run (from the runbook's text in the journal:
/// the file is not there), whose new events are stored bare after the old ones.
#[test]
fn a_run_journaled_before_events_were_stored_bare_resumes() {
    let bench = Bench::new();
    std::fs::create_dir(bench.path().join("store")).unwrap();
    let fixture = repo().join("tests/cli/fixtures/journal-of-whole-envelopes.db");
    std::fs::copy(&fixture, bench.db()).unwrap();
    let old = bench.show_json("old-1");
    assert_eq!(old["status"], "waiting", "{old}");

    let approved = bench.runbook(&["approve", "old-1", "gate", "--as", "alice"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let resumed = bench.runbook(&["resume", "old-1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout.trim(), "{\n  \"approved_by\": \"alice\"\n}");

    // The whole journal, old rows and new, reads back and verifies.
    let report = bench.show_json("old-1");
    assert_eq!(report["status"], "succeeded", "{report}");
    let steps = report["steps"].to_string();
    assert!(steps.contains("act"), "{report}");

    // The HTML report shows the head of the chain as the store keeps it, old links and new,
    // not one recomputed in today's form.
    let stored = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = runbook::store::sqlite::SqliteStore::open(&bench.db())
                .await
                .expect("the store opens");
            runbook::store::Store::run(&store, "old-1")
                .await
                .expect("the run")
                .chain_head
        });
    assert_eq!(stored.len(), 64, "{stored}");
    let html = bench.runbook(&["runs", "show", "old-1", "--format", "html"]);
    assert_eq!(html.code, 0, "{}", html.stderr);
    assert!(
        html.stdout
            .contains(&format!("id=\"journal-head\">{stored}</span>")),
        "the stored head {stored} in the report"
    );
}
