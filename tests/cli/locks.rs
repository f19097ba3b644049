//! Locks across runs through the binary: runs sharing one store take turns on a lock, a
//! holder killed -9 blocks others only until its lease runs out, steps of one run take turns
//! too, and `runbook locks` shows who holds what.

use crate::durable::{Bench, finish, signal};
use crate::events::events;
use crate::support::{Output, Test};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Holds the lock of its cluster while its one step runs; the step says when it starts and
/// waits for the file `release-<name>` before it ends, so the test decides how long the run
/// holds the lock.
const HOLDER: &str = r#"version: 1
name: upgrade
inputs:
  cluster: { type: string, default: prod }
  name: { type: string }
locks: ["flink-{{inputs.cluster}}"]
lock_wait: 30s
steps:
  - id: work
    exec:
      script: |
        echo "start {{inputs.name}}" >> side
        while [ ! -e "release-{{inputs.name}}" ]; do sleep 0.05; done
        echo "end {{inputs.name}}" >> side
"#;

/// Wants the same lock, and does not wait for it.
const IMPATIENT: &str = r#"version: 1
name: impatient
locks: ["flink-prod"]
lock_wait: 0s
steps:
  - id: work
    exec: { script: 'echo "start impatient" >> side' }
"#;

/// A run started in the background, stopped (SIGTERM, then waited for) if the test ends
/// before it does, so that a failing test leaves nothing running.
struct Running(Option<Child>);

impl Running {
    fn child(&self) -> &Child {
        self.0.as_ref().expect("still running")
    }

    fn finish(mut self) -> (i32, String, String) {
        finish(self.0.take().expect("finished once"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // A stopped run must wake to take the signal.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.wait();
        }
    }
}

fn start(bench: &Bench, args: &[&str]) -> Running {
    Running(Some(bench.spawn(args)))
}

/// Runs the binary to its end with extra environment.
fn runbook_with(bench: &Bench, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut test = Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()));
    for (name, value) in env {
        test = test.env(*name, *value);
    }
    test.args(args.iter().copied()).run()
}

/// Starts the binary with extra environment, without waiting for it.
fn spawn_with(bench: &Bench, env: &[(&str, &str)], args: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the runbook binary");
    Running(Some(child))
}

/// Starts `upgrade.yaml` as run `name` and waits until its step runs, the lock held.
fn hold(bench: &Bench, env: &[(&str, &str)], name: &str) -> Running {
    let input = format!("name={name}");
    let running = spawn_with(
        bench,
        env,
        &["run", "upgrade.yaml", "--run-id", name, "--input", &input],
    );
    bench.wait_for("side", &format!("start {name}"));
    running
}

fn release(bench: &Bench, name: &str) {
    bench.write(&format!("release-{name}"), "");
}

fn locks_json(bench: &Bench) -> Vec<Value> {
    let listed = bench.runbook(&["locks", "--format", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    serde_json::from_str::<Value>(&listed.stdout)
        .expect("runbook locks prints JSON")
        .as_array()
        .cloned()
        .expect("an array of locks")
}

fn step<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == path))
        .unwrap_or_else(|| panic!("no step {path} in {report:#}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not text: {value}"))
}

#[test]
fn a_held_lock_makes_the_next_run_wait_and_proceed_once_the_first_ends() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER);
    let first = start(
        &bench,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "first",
            "--input",
            "name=first",
        ],
    );
    bench.wait_for("side", "start first");
    // The second run starts while the first holds the lock; the first lets go a little later.
    let second = start(
        &bench,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "second",
            "--input",
            "name=second",
            "--output",
            "json",
        ],
    );
    let waiting_since = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(bench.read("side"), "start first\n", "the second run waits");
    release(&bench, "first");
    release(&bench, "second");
    let (code, _, stderr) = first.finish();
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = second.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        bench.read("side"),
        "start first\nend first\nstart second\nend second\n"
    );

    // The second run's own events: it waited for the first, then took the lock.
    let events = events(&stdout);
    let waiting = events
        .iter()
        .find(|e| e["event"] == "lock_waiting")
        .expect("a lock_waiting event");
    assert_eq!(waiting["lock"], "flink-prod");
    assert_eq!(waiting["held_by"]["run_id"], "first");
    assert_eq!(waiting["held_by"]["runbook"], "upgrade");
    let acquired = events
        .iter()
        .find(|e| e["event"] == "lock_acquired")
        .expect("a lock_acquired event");
    assert!(
        acquired["waited_ms"].as_u64().unwrap() >= 1000,
        "{acquired}"
    );
    assert!(waiting_since.elapsed() >= Duration::from_millis(1200));

    // From both journals: the first released the lock before the second acquired it, and
    // its step ended before the second's started.
    let first = bench.show_json("first");
    let second = bench.show_json("second");
    let first_lock = &first["locks"][0];
    let second_lock = &second["locks"][0];
    assert_eq!(first_lock["lock"], "flink-prod");
    assert_eq!(first_lock["waited_ms"], 0);
    let released = text(&first_lock["released_at"], "the first run's release");
    let acquired = text(&second_lock["acquired_at"], "the second run's acquisition");
    assert!(released <= acquired, "{released} > {acquired}");
    assert_eq!(second_lock["waited_for"]["run_id"], "first");
    let first_ended = text(&step(&first, "work")["ended_at"], "first ended");
    let second_started = text(&step(&second, "work")["started_at"], "second started");
    assert!(
        first_ended <= second_started,
        "the critical sections overlap: first ended {first_ended}, second started {second_started}"
    );
    assert!(locks_json(&bench).is_empty(), "both runs let go");

    let shown = bench.runbook(&["runs", "show", "second"]);
    assert!(
        shown.stdout.contains("lock      flink-prod: released"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("for run first of upgrade"),
        "{}",
        shown.stdout
    );
    let markdown = bench.runbook(&["runs", "show", "second", "--format", "markdown"]);
    assert!(markdown.stdout.contains("## Locks"), "{}", markdown.stdout);
    assert!(
        markdown.stdout.contains("| `flink-prod` |"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn a_lock_of_another_cluster_does_not_wait() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER);
    let prod = start(&bench, &["run", "upgrade.yaml", "--input", "name=prod"]);
    bench.wait_for("side", "start prod");
    release(&bench, "staging");
    let staging = bench.runbook(&[
        "run",
        "upgrade.yaml",
        "--input",
        "name=staging",
        "--input",
        "cluster=staging",
    ]);
    assert_eq!(staging.code, 0, "{}", staging.stderr);
    assert!(
        !staging.stderr.contains("waiting for lock"),
        "{}",
        staging.stderr
    );
    release(&bench, "prod");
    assert_eq!(prod.finish().0, 0);
}

#[test]
fn lock_wait_0s_fails_at_once_and_names_the_holder() {
    let bench = Bench::new();
    bench
        .write("upgrade.yaml", HOLDER)
        .write("impatient.yaml", IMPATIENT);
    let holder = start(
        &bench,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "holder",
            "--input",
            "name=holder",
        ],
    );
    bench.wait_for("side", "start holder");
    let asked = Instant::now();
    let refused = bench.runbook(&["run", "impatient.yaml", "--run-id", "refused"]);
    let took = asked.elapsed();
    release(&bench, "holder");
    assert_eq!(holder.finish().0, 0);

    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let host = nix_hostname();
    for expected in [
        "lock `flink-prod` is held by run holder of upgrade",
        &format!("on {host} (pid "),
        "since 20",
        "`lock_wait` is 0s",
        // What the terminal showed as it asked.
        "waiting for lock flink-prod held by run holder of upgrade",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected:?} in {}",
            refused.stderr
        );
    }
    assert!(
        !bench.read("side").contains("impatient"),
        "its step never ran"
    );
    let report = bench.show_json("refused");
    assert_eq!(report["status"], "failed");
    assert!(
        text(&report["reason"], "reason").contains("held by run holder"),
        "{report:#}"
    );
    assert_eq!(report["locks"][0]["waited_for"]["run_id"], "holder");
    assert!(report["locks"][0].get("acquired_at").is_none());
}

/// This machine's name, as the store records a holder's host.
fn nix_hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_holder_killed_with_sigkill_blocks_the_next_run_only_until_its_lease_runs_out() {
    const LEASE: &str = "2s";
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER);
    let env = [("RUNBOOK_LOCK_LEASE", LEASE)];
    let crashed = hold(&bench, &env, "crashed");
    signal(crashed.child(), libc::SIGKILL);
    let killed = Instant::now();
    assert_eq!(crashed.finish().0, -1, "killed by the signal");
    // Right after the kill, the lock is still the dead run's: nothing renews it, but its
    // lease has not run out.
    let held = locks_json(&bench);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["run_id"], "crashed");

    release(&bench, "next");
    let next = runbook_with(
        &bench,
        &env,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "next",
            "--input",
            "name=next",
            "--output",
            "json",
        ],
    );
    let took = killed.elapsed();
    assert_eq!(next.code, 0, "{}", next.stderr);
    let events = events(&next.stdout);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "lock_waiting" && e["held_by"]["run_id"] == "crashed"),
        "the next run waited for the dead one: {}",
        next.stdout
    );
    let acquired = events
        .iter()
        .find(|e| e["event"] == "lock_acquired")
        .expect("the next run took the lock");
    assert!(acquired["waited_ms"].as_u64().unwrap() > 500, "{acquired}");
    // The lease (2s) and a little more, not the 30s `lock_wait`.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(bench.read("side").ends_with("start next\nend next\n"));
}

#[test]
fn step_locks_make_two_parallel_steps_of_one_run_take_turns() {
    let bench = Bench::new();
    bench.write(
        "parallel.yaml",
        r#"version: 1
name: parallel
steps:
  - id: pick
    needs: []
    exec: { command: [printf, orders] }
    outputs: { database: .stdout }
  - id: left
    needs: [pick]
    locks: ["db-{{steps.pick.outputs.database}}"]
    exec: { script: 'echo "start left" >> side; sleep 0.6; echo "end left" >> side' }
  - id: right
    needs: [pick]
    locks: ["db-{{steps.pick.outputs.database}}"]
    exec: { script: 'echo "start right" >> side; sleep 0.6; echo "end right" >> side' }
  - id: free
    needs: []
    exec: { script: 'echo "free" >> free' }
"#,
    );
    let run = bench.runbook(&[
        "run",
        "parallel.yaml",
        "--run-id",
        "par",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let side = bench.read("side");
    assert!(
        side == "start left\nend left\nstart right\nend right\n"
            || side == "start right\nend right\nstart left\nend left\n",
        "the steps overlapped: {side:?}"
    );
    let events = events(&run.stdout);
    let waiting = events
        .iter()
        .find(|e| e["event"] == "lock_waiting")
        .expect("one step waited for the other");
    assert_eq!(
        waiting["lock"], "db-orders",
        "rendered with the output of `pick`"
    );
    assert_eq!(waiting["held_by"]["run_id"], "par");
    assert_ne!(waiting["step"], waiting["held_by"]["step"]);
    let released: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "lock_released")
        .collect();
    assert_eq!(released.len(), 2, "each step let go: {released:?}");
    assert!(locks_json(&bench).is_empty());
}

#[test]
fn runbook_locks_shows_who_holds_what_while_it_runs() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER);
    let holder = start(
        &bench,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "shown",
            "--input",
            "name=shown",
        ],
    );
    bench.wait_for("side", "start shown");
    let listed = bench.runbook(&["locks"]);
    let host = nix_hostname();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    for heading in ["lock", "run", "runbook", "host", "since", "expires"] {
        assert!(lines[0].contains(heading), "{}", lines[0]);
    }
    for cell in ["flink-prod", "shown", "upgrade", &format!("{host} (pid ")] {
        assert!(lines[1].contains(cell), "{cell:?} in {}", lines[1]);
    }
    let held = locks_json(&bench);
    assert_eq!(held.len(), 1, "{held:?}");
    let lock = &held[0];
    assert_eq!(lock["lock"], "flink-prod");
    assert_eq!(lock["run_id"], "shown");
    assert_eq!(lock["runbook"], "upgrade");
    assert_eq!(lock["host"], host);
    assert_eq!(lock["pid"], holder.child().id());
    assert!(text(&lock["since"], "since") < text(&lock["expires_at"], "expires"));

    release(&bench, "shown");
    assert_eq!(holder.finish().0, 0);
    assert!(locks_json(&bench).is_empty());
    let empty = bench.runbook(&["locks"]);
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert_eq!(empty.stdout, "");
    assert!(
        empty.stderr.contains("no locks held in sqlite:"),
        "{}",
        empty.stderr
    );
}

#[test]
fn a_run_waiting_for_an_approval_keeps_its_locks_until_it_ends() {
    let bench = Bench::new();
    bench
        .write(
            "gated.yaml",
            r#"version: 1
name: gated
locks: ["flink-prod"]
steps:
  - id: go
    approval: { prompt: "go on?" }
"#,
        )
        .write("impatient.yaml", IMPATIENT);
    let parked = bench.runbook(&["run", "gated.yaml", "--run-id", "gated"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let held = locks_json(&bench);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["run_id"], "gated");
    assert_eq!(held[0]["expires_at"], Value::Null, "kept without a lease");
    let refused = bench.runbook(&["run", "impatient.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("held by run gated"),
        "{}",
        refused.stderr
    );

    let approved = bench.runbook(&["approve", "gated", "go"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let resumed = bench.runbook(&["resume", "gated"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(locks_json(&bench).is_empty(), "the ended run let go");
    let after = bench.runbook(&["run", "impatient.yaml"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
}

#[test]
fn lock_names_that_read_secrets_or_steps_at_the_top_are_refused_with_where() {
    let bench = Bench::new();
    bench.write(
        "bad.yaml",
        r#"version: 1
name: bad
secrets:
  token: { env: TOKEN }
locks: ["x-{{secrets.token}}", "y-{{steps.a.outputs.n}}"]
steps:
  - id: a
    lock_wait: 5s
    exec: { command: ["true"] }
"#,
    );
    let checked = bench.runbook(&["validate", "bad.yaml"]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    for expected in [
        "bad.yaml:5:14",
        "a lock name may not read a secret",
        "bad.yaml:5:37",
        "a runbook's locks are taken before any step runs",
        "`steps.a.outputs.n`",
        "bad.yaml:8:",
        "`lock_wait` on a step without `locks`",
    ] {
        assert!(
            checked.stderr.contains(expected),
            "{expected:?} in {}",
            checked.stderr
        );
    }
}

#[test]
fn a_holder_paused_past_its_lease_loses_the_lock_and_stops_when_it_wakes() {
    const LEASE: &str = "1s";
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER);
    let env = [("RUNBOOK_LOCK_LEASE", LEASE)];
    let paused = hold(&bench, &env, "paused");
    // A pause longer than the lease (a stopped process, a long GC): the lease runs out and
    // the next run takes the lock and does its work.
    signal(paused.child(), libc::SIGSTOP);
    release(&bench, "next");
    let next = runbook_with(
        &bench,
        &env,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "next",
            "--input",
            "name=next",
        ],
    );
    signal(paused.child(), libc::SIGCONT);
    assert_eq!(next.code, 0, "{}", next.stderr);
    // Awake again, the first run finds at its next renewal (a third of the lease) that the
    // lock is gone, and stops rather than go on unprotected: parked, to be resumed. Its
    // step is told to finish only later, which it would if the run went on.
    std::thread::sleep(Duration::from_millis(1500));
    release(&bench, "paused");
    let (code, _, stderr) = paused.finish();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("lost lock `flink-prod`"), "{stderr}");
    assert!(
        !bench.read("side").contains("end paused"),
        "the paused run's step did not go on: {}",
        bench.read("side")
    );
    assert_ne!(
        step(&bench.show_json("paused"), "work")["status"],
        "succeeded"
    );
    let report = bench.show_json("paused");
    assert_eq!(report["status"], "interrupted");
    assert!(
        text(&report["reason"], "reason").contains("lost lock"),
        "{report:#}"
    );
}

#[test]
fn a_called_runbook_holds_its_own_locks_while_its_uses_step_runs_it() {
    let bench = Bench::new();
    bench
        .write(
            "child.yaml",
            r#"version: 1
name: child
inputs:
  name: { type: string }
locks: ["migration"]
steps:
  - id: work
    exec:
      script: 'echo "start {{inputs.name}}" >> side; sleep 0.6; echo "end {{inputs.name}}" >> side'
"#,
        )
        .write(
            "parent.yaml",
            r#"version: 1
name: parent
steps:
  - id: one
    needs: []
    uses: child.yaml
    with: { name: one }
  - id: two
    needs: []
    uses: child.yaml
    with: { name: two }
"#,
        );
    let run = bench.runbook(&["run", "parent.yaml", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let side = bench.read("side");
    assert!(
        side == "start one\nend one\nstart two\nend two\n"
            || side == "start two\nend two\nstart one\nend one\n",
        "the called runbooks overlapped: {side:?}"
    );
    let events = events(&run.stdout);
    let acquired: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "lock_acquired")
        .map(|e| e["step"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(acquired.len(), 2, "{acquired:?}");
    assert!(
        acquired.contains(&"one/") && acquired.contains(&"two/"),
        "{acquired:?}"
    );
    assert!(locks_json(&bench).is_empty());
}

#[test]
fn the_deadline_bounds_the_wait_for_a_lock() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", HOLDER).write(
        "hurried.yaml",
        r#"version: 1
name: hurried
deadline: 1s
locks: ["flink-prod"]
steps:
  - id: work
    exec: { script: 'echo "start hurried" >> side' }
finally:
  - id: cleanup
    exec: { script: 'echo "cleanup hurried" >> side' }
"#,
    );
    let holder = hold(&bench, &[], "holder");
    let asked = Instant::now();
    let hurried = bench.runbook(&["run", "hurried.yaml"]);
    let took = asked.elapsed();
    release(&bench, "holder");
    assert_eq!(holder.finish().0, 0);
    assert_eq!(hurried.code, 1, "{}", hurried.stderr);
    assert!(
        hurried
            .stderr
            .contains("the run's deadline came while it waited"),
        "{}",
        hurried.stderr
    );
    assert!(
        hurried.stderr.contains("held by run holder"),
        "{}",
        hurried.stderr
    );
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Without its locks the run did nothing, `finally` included.
    assert_eq!(bench.read("side"), "start holder\nend holder\n");
}

#[test]
fn an_interrupted_run_keeps_its_lock_for_its_lease_and_its_resume_takes_it_again() {
    let bench = Bench::new();
    bench
        .write("upgrade.yaml", HOLDER)
        .write("impatient.yaml", IMPATIENT);
    let env = [("RUNBOOK_LOCK_LEASE", "30s")];
    let stopped = hold(&bench, &env, "stopped");
    signal(stopped.child(), libc::SIGINT);
    let (code, _, stderr) = stopped.finish();
    assert_eq!(code, 3, "{stderr}");
    let held = locks_json(&bench);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["run_id"], "stopped");
    assert!(held[0]["expires_at"].is_string(), "kept for its lease");
    let refused = bench.runbook(&["run", "impatient.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("held by run stopped"),
        "{}",
        refused.stderr
    );

    release(&bench, "stopped");
    let resumed = runbook_with(&bench, &env, &["resume", "stopped", "--output", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let events = events(&resumed.stdout);
    let acquired = events
        .iter()
        .find(|e| e["event"] == "lock_acquired")
        .expect("the resume took the lock again");
    assert_eq!(acquired["waited_ms"], 0, "still its own: no wait");
    assert!(!events.iter().any(|e| e["event"] == "lock_waiting"));
    assert!(locks_json(&bench).is_empty(), "the ended run let go");
}

/// Wants the same lock and would wait long for it, in a window that closes first.
const WINDOWED: &str = r#"version: 1
name: windowed
locks: ["flink-prod"]
lock_wait: 10m
steps:
  - id: work
    exec: { script: 'echo "start windowed" >> side' }
"#;

/// A run waiting for a lock is bounded by its window too: when the window closes first, the
/// run parks (the default `on_window_close`), resumable in a later window, its step not run.
#[test]
fn a_wait_for_a_lock_ends_when_the_window_closes_and_the_run_parks() {
    let bench = Bench::new();
    bench
        .write("upgrade.yaml", HOLDER)
        .write("windowed.yaml", WINDOWED);
    let holder = start(
        &bench,
        &[
            "run",
            "upgrade.yaml",
            "--run-id",
            "holder",
            "--input",
            "name=holder",
        ],
    );
    bench.wait_for("side", "start holder");
    let asked = Instant::now();
    let parked = bench.runbook(&[
        "run",
        "windowed.yaml",
        "--run-id",
        "windowed",
        "--window",
        "2s",
    ]);
    let took = asked.elapsed();
    release(&bench, "holder");
    assert_eq!(holder.finish().0, 0);

    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        !bench.read("side").contains("windowed"),
        "its step never ran"
    );
    let report = bench.show_json("windowed");
    assert_eq!(report["status"], "parked", "{report:#}");
    let reason = text(&report["reason"], "reason");
    assert!(reason.contains("held by run holder"), "{reason}");
    assert!(reason.contains("window closed"), "{reason}");

    // In a later window, with the lock free, it takes the lock and runs.
    let resumed = bench.runbook(&["resume", "windowed", "--window", "1h"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(bench.read("side").contains("start windowed"));

    // The evidence page shows the window, the lock and the wait for it on the timeline.
    let page = bench.runbook(&["runs", "show", "windowed", "--format", "html"]);
    assert_eq!(page.code, 0, "{}", page.stderr);
    for expected in [
        "<h2>Window</h2>",
        "<h2>Locks</h2>",
        "<code>flink-prod</code>",
        "run holder of upgrade",
        "(run): waiting for a lock, unfinished",
    ] {
        assert!(page.stdout.contains(expected), "{expected:?} in the page");
    }
}
