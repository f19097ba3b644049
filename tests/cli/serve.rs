//! `runbook serve` and `runbook schedules` through the real binary: schedules that fire every
//! second or two really run, overlap policies, blackouts, drain on SIGTERM, and takeover
//! after SIGKILL. Each test stops only the serve it started, by its pid.

use crate::support::{Test, repo};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The checked-in schema is what the binary generates: regenerate it with
/// `cargo run -- schedules schema > schemas/serve.schema.json` when the config changes.
#[test]
fn checked_in_serve_schema_is_up_to_date() {
    let output = Test::new().args(["schedules", "schema"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let checked_in = std::fs::read_to_string(repo().join("schemas/serve.schema.json"))
        .expect("schemas/serve.schema.json exists");
    assert!(
        output.stdout == checked_in,
        "schemas/serve.schema.json is stale: run `cargo run -- schedules schema > schemas/serve.schema.json`"
    );
}

/// A runbook that appends a line to `marks.txt` per step that runs, then sleeps.
fn marking_runbook(seconds: u32) -> String {
    format!(
        "version: 1\nname: tick\ninputs:\n  label: {{type: string}}\nsteps:\n  \
         - id: mark\n    exec:\n      command: [sh, -c, 'echo {{{{inputs.label}}}} >> marks.txt; sleep {seconds}']\n"
    )
}

#[test]
fn check_reports_every_problem_with_its_place_and_exits_2() {
    let output = Test::new()
        .write("tick.yaml", marking_runbook(0) + "secrets:\n  token: {env: TICK_TOKEN}\n")
        .write(
            "serve.yaml",
            "schedules:\n  - name: a\n    runbook: tick.yaml\n    inputs: {label: x, token: hunter2}\n    \
             cron: '61 * * * *'\n    time_zone: Mars/Olympus\n    overlap: sometimes\n    tme: 1\n",
        )
        .args(["schedules", "check", "--config", "serve.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    for expected in [
        "serve.yaml:4:24",
        "`token` is a secret of the runbook: it is never given inline",
        "invalid cron expression",
        "unknown time zone `Mars/Olympus`",
        "unknown value `sometimes`",
        "unknown key `tme`",
    ] {
        assert!(
            output.stderr.contains(expected),
            "no `{expected}` in:\n{}",
            output.stderr
        );
    }
    assert!(!output.stderr.contains("hunter2") || output.stderr.contains("token: hunter2"));
}

#[test]
fn schedules_prints_next_fires_in_the_zone_without_blacked_out_days() {
    let output = Test::new()
        .write("tick.yaml", marking_runbook(0))
        .write(
            "freeze.ics",
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n\
             SUMMARY:Freeze\r\nDTSTART;VALUE=DATE:20270106\r\nDTEND;VALUE=DATE:20270108\r\n\
             END:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        .write(
            "serve.yaml",
            "schedules:\n  - name: daily\n    runbook: tick.yaml\n    inputs: {label: x}\n    \
             cron: '0 2 * * *'\n    time_zone: Europe/Berlin\n    blackouts:\n      \
             - date: 2027-01-03\n      - calendar: freeze.ics\n",
        )
        .args(["schedules", "--config", "serve.yaml", "--count", "400"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.contains("cron `0 2 * * *` in Europe/Berlin"),
        "{}",
        output.stdout
    );
    // Winter time in Berlin is +01:00; summer time +02:00: each fire in its own offset.
    assert!(
        output.stdout.contains(" 02:00:00 +01:00 "),
        "{}",
        output.stdout
    );
    for suppressed in ["2027-01-03 ", "2027-01-06 ", "2027-01-07 "] {
        assert!(
            !output.stdout.contains(suppressed),
            "{suppressed} is blacked out"
        );
    }
    assert!(output.stdout.contains("2027-01-02 02:00:00 +01:00"));
    assert!(
        output.stdout.contains("2027-01-08 02:00:00 +01:00"),
        "the end date is excluded"
    );
}

/// A running `runbook serve` with its JSON log lines collected as they come.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Serve {
    fn start(dir: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["serve", "--config", "serve.yaml", "--log-format", "json"])
            .env_remove("RUNBOOK_STORE")
            .env("XDG_STATE_HOME", dir.join(".state"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runbook serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line with this message (and these fields), failing after `limit`.
    fn wait_for(
        &mut self,
        message: &str,
        fields: &[(&str, &str)],
        limit: Duration,
    ) -> serde_json::Value {
        let matches = |line: &serde_json::Value| {
            line["message"] == message && fields.iter().all(|(k, v)| line[*k].as_str() == Some(*v))
        };
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no `{message}` {fields:?} within {limit:?}; log so far:\n{:#?}",
            self.seen
        );
    }

    fn count(&self, message: &str) -> usize {
        self.seen.iter().filter(|l| l["message"] == message).count()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of the child this test started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for serve to exit, failing after `limit`; the exit code.
    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                // Collect the last lines.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "serve did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn runbook_cli(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .env_remove("RUNBOOK_STORE")
        .env("XDG_STATE_HOME", dir.join(".state"))
        .current_dir(dir)
        .output()
        .expect("run runbook");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn runs_json(dir: &Path) -> Vec<serde_json::Value> {
    let text = runbook_cli(dir, &["runs", "list", "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match value {
        serde_json::Value::Array(runs) => runs,
        other => other["runs"].as_array().cloned().unwrap_or_default(),
    }
}

fn marks(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("marks.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn setup(runbook: &str, schedule: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("tick.yaml"), runbook).unwrap();
    std::fs::write(dir.path().join("serve.yaml"), schedule).unwrap();
    dir
}

fn config(cron: &str, extra: &str) -> String {
    format!(
        "schedules:\n  - name: tick\n    runbook: tick.yaml\n    inputs: {{label: fired}}\n    \
         cron: '{cron}'\n{extra}"
    )
}

#[test]
fn a_schedule_every_second_really_runs() {
    let dir = setup(&marking_runbook(0), &config("* * * * * *", ""));
    let mut serve = Serve::start(dir.path());
    let fire = serve.wait_for("fire", &[], Duration::from_secs(10));
    assert!(fire["late_ms"].as_i64().unwrap() < 1000, "{fire}");
    let first = serve.wait_for(
        "run ended",
        &[("status", "succeeded")],
        Duration::from_secs(10),
    );
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(10);
    while serve.count("run ended") < 2 && Instant::now() < until {
        if let Ok(line) = serve.lines.recv_timeout(Duration::from_millis(200)) {
            serve.seen.push(line);
        }
    }
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.exit_within(Duration::from_secs(10)), Some(0));
    let runs = runs_json(dir.path());
    assert!(
        runs.iter().filter(|r| r["status"] == "succeeded").count() >= 2,
        "runs list shows the runs: {runs:#?}"
    );
    assert!(runs.iter().any(|r| r["id"] == run_id.as_str()));
    assert!(marks(dir.path()).len() >= 2);
}

#[test]
fn overlap_skip_skips_fires_while_the_previous_run_runs() {
    let dir = setup(
        &marking_runbook(3),
        &config("* * * * * *", "    overlap: skip\n"),
    );
    let mut serve = Serve::start(dir.path());
    let started = serve.wait_for("run started", &[], Duration::from_secs(10));
    let running = started["run_id"].as_str().unwrap().to_owned();
    serve.wait_for(
        "skip",
        &[("reason", "overlap"), ("running", &running)],
        Duration::from_secs(5),
    );
    serve.wait_for(
        "run ended",
        &[("run_id", &running)],
        Duration::from_secs(10),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(15));
    // While the first 3-second run ran, no second one started.
    let runs = runs_json(dir.path());
    let first = runs.iter().find(|r| r["id"] == running.as_str()).unwrap();
    let overlapping = runs.iter().filter(|r| {
        r["id"] != running.as_str() && r["started_at"].as_str() < first["ended_at"].as_str()
    });
    assert_eq!(overlapping.count(), 0, "{runs:#?}");
}

#[test]
fn overlap_queue_runs_the_fire_after_the_previous_run() {
    let dir = setup(
        &marking_runbook(3),
        &config("*/2 * * * * *", "    overlap: queue\n"),
    );
    let mut serve = Serve::start(dir.path());
    let first = serve.wait_for("run started", &[], Duration::from_secs(10));
    let first = first["run_id"].as_str().unwrap().to_owned();
    serve.wait_for(
        "queued behind the running run",
        &[("running", &first)],
        Duration::from_secs(5),
    );
    serve.wait_for("run ended", &[("run_id", &first)], Duration::from_secs(10));
    serve.wait_for("queued fire starts", &[], Duration::from_secs(5));
    assert_eq!(
        serve.count("skip"),
        0,
        "nothing is skipped with queue: {:#?}",
        serve.seen
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(15));
    // The queued run started after the first ended, not beside it.
    let runs = runs_json(dir.path());
    let ended = runs.iter().find(|r| r["id"] == first.as_str()).unwrap()["ended_at"].clone();
    let later: Vec<_> = runs.iter().filter(|r| r["id"] != first.as_str()).collect();
    assert!(!later.is_empty(), "{runs:#?}");
    for run in later {
        assert!(run["started_at"].as_str() >= ended.as_str(), "{runs:#?}");
    }
}

#[test]
fn overlap_cancel_interrupts_the_previous_run_and_serve_leaves_it_parked() {
    let dir = setup(
        &marking_runbook(5),
        &config("*/2 * * * * *", "    overlap: cancel\n"),
    );
    let mut serve = Serve::start(dir.path());
    let first = serve.wait_for("run started", &[], Duration::from_secs(10));
    let first = first["run_id"].as_str().unwrap().to_owned();
    serve.wait_for(
        "interrupting the previous run (overlap: cancel)",
        &[("run_id", &first)],
        Duration::from_secs(5),
    );
    serve.wait_for(
        "run ended",
        &[("run_id", &first), ("status", "interrupted")],
        Duration::from_secs(10),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
    // Started again, serve does not resume the run it replaced on purpose.
    std::fs::write(dir.path().join("serve.yaml"), config("0 0 0 1 1 *", "")).unwrap();
    let mut serve = Serve::start(dir.path());
    serve.wait_for("serving", &[], Duration::from_secs(10));
    assert!(
        !serve
            .seen
            .iter()
            .any(|l| l["message"] == "takeover" && l["run_id"] == first.as_str()),
        "{:#?}",
        serve.seen
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
    assert_eq!(run_status(dir.path(), &first), "interrupted");
}

#[test]
fn fires_missed_while_serve_was_down_follow_the_missed_policy() {
    let within = "    missed: {run_latest_within: 1h}\n";
    let dir = setup(&marking_runbook(0), &config("*/2 * * * * *", within));
    let mut serve = Serve::start(dir.path());
    serve.wait_for(
        "run ended",
        &[("status", "succeeded")],
        Duration::from_secs(10),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));

    // Down long enough for a fire to fall: the latest runs once, at start.
    let (mut serve, fire) = start_after_a_missed_fire(dir.path());
    serve.wait_for("run started", &[("fire", &fire)], Duration::from_secs(5));
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));

    // With `missed: skip`, the fire that fell while down is logged and does not run.
    std::fs::write(dir.path().join("serve.yaml"), config("*/2 * * * * *", "")).unwrap();
    let (mut serve, fire) = start_after_a_missed_fire(dir.path());
    serve.wait_for(
        "skip",
        &[("fire", &fire), ("reason", "missed")],
        Duration::from_secs(5),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
    assert!(
        !serve
            .seen
            .iter()
            .any(|l| l["message"] == "run started" && l["fire"] == fire.as_str()),
        "{:#?}",
        serve.seen
    );
}

/// Waits long enough for an every-2-seconds fire to fall, starts serve, and answers the
/// fire it found missed.
fn start_after_a_missed_fire(dir: &Path) -> (Serve, String) {
    std::thread::sleep(Duration::from_millis(2500));
    let mut serve = Serve::start(dir);
    let owed = serve.wait_for(
        "a fire fell while serve was not running",
        &[],
        Duration::from_secs(10),
    );
    let fire = owed["fire"].as_str().unwrap().to_owned();
    (serve, fire)
}

#[test]
fn a_blackout_suppresses_the_fires_inside_it() {
    // Blacked out from now for a long while: every fire is skipped and logged, none runs.
    let now = jiff::Timestamp::now();
    let from = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let until = (now + jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let extra = format!("    blackouts:\n      - range: {{from: '{from}', until: '{until}'}}\n");
    let dir = setup(&marking_runbook(0), &config("* * * * * *", &extra));
    let mut serve = Serve::start(dir.path());
    serve.wait_for("skip", &[("reason", "blackout")], Duration::from_secs(10));
    serve.wait_for("serving", &[], Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(2200));
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
    assert_eq!(serve.count("run started"), 0, "{:#?}", serve.seen);
    assert!(runs_json(dir.path()).is_empty());
    assert!(marks(dir.path()).is_empty());
}

/// Two steps: `first` marks and ends; `second` marks, then sleeps long. Each step appends
/// its id to marks.txt, so a step that ran twice shows twice.
const TWO_STEPS: &str = "version: 1\nname: tick\ninputs:\n  label: {type: string}\nsteps:\n  \
    - id: first\n    exec:\n      command: [sh, -c, 'echo first >> marks.txt']\n  \
    - id: second\n    needs: [first]\n    exec:\n      command: [sh, -c, 'echo second >> marks.txt; sleep 4']\n  \
    - id: third\n    needs: [second]\n    exec:\n      command: [sh, -c, 'echo third >> marks.txt']\n";

#[test]
fn sigterm_drains_within_seconds_and_the_run_is_interrupted_then_taken_over() {
    // Every second, overlap skip: the first run is the only one while it runs.
    let dir = setup(TWO_STEPS, &config("* * * * * *", ""));
    let mut serve = Serve::start(dir.path());
    let started = serve.wait_for("run started", &[], Duration::from_secs(10));
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    wait_for_marks(dir.path(), &["first", "second"]);
    serve.signal(libc::SIGTERM);
    let asked = Instant::now();
    assert_eq!(serve.exit_within(Duration::from_secs(10)), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "drained in {:?}",
        asked.elapsed()
    );
    serve.wait_for("drained", &[], Duration::from_secs(1));
    let status = run_status(dir.path(), &run_id);
    assert_eq!(status, "interrupted");

    // Restarted, serve resumes its own run: `second` runs again (it was cut off and has no
    // `verify`), `first` does not.
    restart_and_finish(dir.path(), &run_id);
}

/// Starts serve again, with a schedule that does not fire soon, and checks that it takes
/// `run_id` over and finishes it without running the finished step `first` again.
fn restart_and_finish(dir: &Path, run_id: &str) {
    std::fs::write(dir.join("serve.yaml"), config("0 0 0 1 1 *", "")).unwrap();
    let mut serve = Serve::start(dir);
    serve.wait_for("takeover", &[("run_id", run_id)], Duration::from_secs(10));
    serve.wait_for(
        "run ended",
        &[("run_id", run_id), ("status", "succeeded")],
        Duration::from_secs(20),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
    let marks = marks(dir);
    let count = |step: &str| marks.iter().filter(|m| *m == step).count();
    assert_eq!((count("first"), count("third")), (1, 1), "{marks:?}");
    assert_eq!(run_status(dir, run_id), "succeeded");
}

#[test]
fn sigkill_mid_run_then_restart_finishes_the_run_without_repeating_a_finished_step() {
    let dir = setup(TWO_STEPS, &config("* * * * * *", ""));
    let mut serve = Serve::start(dir.path());
    let started = serve.wait_for("run started", &[], Duration::from_secs(10));
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    wait_for_marks(dir.path(), &["first", "second"]);
    serve.signal(libc::SIGKILL);
    serve.exit_within(Duration::from_secs(5));
    // Killed, it journaled nothing more: `runs list` shows the run cut off (its owner gone).
    assert_eq!(run_status(dir.path(), &run_id), "interrupted");
    assert_eq!(marks(dir.path()), ["first", "second"]);

    restart_and_finish(dir.path(), &run_id);
}

#[test]
fn a_runbook_that_became_invalid_fails_its_fire_and_the_others_go_on() {
    let dir = setup(&marking_runbook(0), "");
    std::fs::copy(dir.path().join("tick.yaml"), dir.path().join("other.yaml")).unwrap();
    let two = "schedules:\n  - name: breaks\n    runbook: tick.yaml\n    inputs: {label: a}\n    \
               cron: '* * * * * *'\n  - name: keeps\n    runbook: other.yaml\n    inputs: {label: b}\n    \
               cron: '* * * * * *'\n";
    std::fs::write(dir.path().join("serve.yaml"), two).unwrap();
    let mut serve = Serve::start(dir.path());
    serve.wait_for("serving", &[], Duration::from_secs(10));
    std::fs::write(
        dir.path().join("tick.yaml"),
        "version: 1\nname: tick\nsteps:\n  - id: x\n    exex: {}\n",
    )
    .unwrap();
    let failed = serve.wait_for(
        "skip",
        &[("schedule", "breaks"), ("reason", "failed")],
        Duration::from_secs(10),
    );
    assert!(
        failed["error"].as_str().unwrap().contains("tick.yaml:5:5"),
        "{failed}"
    );
    serve.wait_for(
        "run ended",
        &[("schedule", "keeps"), ("status", "succeeded")],
        Duration::from_secs(10),
    );
    serve.signal(libc::SIGTERM);
    serve.exit_within(Duration::from_secs(10));
}

fn wait_for_marks(dir: &Path, expected: &[&str]) {
    let until = Instant::now() + Duration::from_secs(10);
    while marks(dir) != expected {
        assert!(Instant::now() < until, "marks: {:?}", marks(dir));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_status(dir: &Path, run_id: &str) -> String {
    runs_json(dir)
        .iter()
        .find(|r| r["id"] == run_id)
        .and_then(|r| r["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A fire's run gets the fire's window: a step that needs more than the schedule's window
/// holds does not start, and the run parks (`parked`) rather than running late.
#[test]
fn a_fire_gives_its_run_the_window_and_a_gated_step_too_long_for_it_parks() {
    let runbook = "version: 1\nname: tick\ninputs:\n  label: {type: string}\nsteps:\n  \
         - id: mark\n    window: {needs: 10m}\n    exec:\n      command: [sh, -c, 'echo {{inputs.label}} >> marks.txt']\n";
    let dir = setup(runbook, &config("* * * * * *", "    window: 5m\n"));
    let mut serve = Serve::start(dir.path());
    let ended = serve.wait_for(
        "run ended",
        &[("status", "parked")],
        Duration::from_secs(15),
    );
    let run_id = ended["run_id"].as_str().unwrap().to_owned();
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.exit_within(Duration::from_secs(10)), Some(0));
    assert!(marks(dir.path()).is_empty(), "the gated step never ran");
    let report: serde_json::Value = serde_json::from_str(&runbook_cli(
        dir.path(),
        &["runs", "show", &run_id, "--format", "json"],
    ))
    .unwrap();
    assert_eq!(report["status"], "parked", "{report:#}");
    let gate = &report["window_gates"][0];
    assert_eq!(gate["decision"], "park", "{report:#}");
    assert_eq!(gate["needed_ms"], 600_000);
    let left = gate["left_ms"].as_u64().unwrap();
    assert!(
        left <= 300_000 && left > 280_000,
        "a 5m window, just opened: {left}"
    );
}
