//! Undo through the binary: the `undo` of every succeeded step in reverse order of the
//! graph, started by `on_failure: undo`, `on_window_close: undo` and `runbook abort --undo`;
//! journaled, and continued by `runbook resume` after a kill -9 in the middle of it.

use crate::durable::{Bench, finish, signal};

/// Five steps in a chain; each appends its name to `side`, and its undo `undo-NAME`. `e`
/// fails. `c`'s undo, after saying it started, hangs when the file `hold-c` exists (and
/// removes it, so that it goes through when it runs again).
const CHAIN: &str = r#"version: 1
name: chain
on_failure: undo
steps:
  - id: a
    exec: { script: 'echo a >> side' }
    outputs: { token: '"a-token"' }
    undo: { exec: { command: [sh, -c, 'echo "undo-a $0" >> side', "{{step.outputs.token}}"] } }
  - id: b
    exec: { script: 'echo b >> side' }
    undo: { exec: { script: 'echo undo-b >> side' } }
  - id: c
    exec: { script: 'echo c >> side' }
    undo:
      exec:
        script: |
          echo undo-c-started >> side
          if [ -e hold-c ]; then rm hold-c; sleep 30; fi
          echo undo-c >> side
  - id: d
    exec: { script: 'echo d >> side' }
    undo: { exec: { script: 'echo undo-d >> side' } }
  - id: e
    exec: { script: 'echo e >> side; exit 1' }
    undo: { exec: { script: 'echo undo-e >> side' } }
finally:
  - id: cleanup
    exec: { script: 'echo cleanup >> side' }
"#;

fn listed_status(bench: &Bench, run_id: &str) -> String {
    let listed = bench.runbook(&["runs", "list"]);
    listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{run_id} ")))
        .unwrap_or_else(|| panic!("{run_id} not listed: {}", listed.stdout))
        .split_whitespace()
        .nth(2)
        .expect("a status column")
        .to_owned()
}

/// The undo events among the JSON lines of `--output json`, in order, as `event path`.
fn undo_events(stdout: &str) -> Vec<String> {
    crate::events::events(stdout)
        .into_iter()
        .filter(|event| {
            event["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("undo_") || e == "run_undoing")
        })
        .map(|event| {
            format!(
                "{} {}",
                event["event"].as_str().unwrap_or_default(),
                event["path"].as_str().unwrap_or_default()
            )
            .trim_end()
            .to_owned()
        })
        .collect()
}

#[test]
fn a_failed_chain_of_five_is_undone_in_reverse_order_then_finally_runs() {
    let bench = Bench::new();
    bench.write("chain.yaml", CHAIN);
    let run = bench.runbook(&["run", "chain.yaml", "--run-id", "u1", "--output", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // The failed step is not undone; the others are, last first, each reading its own
    // outputs; `finally` runs after the undo.
    assert_eq!(
        bench.read("side"),
        "a\nb\nc\nd\ne\nundo-d\nundo-c-started\nundo-c\nundo-b\nundo-a a-token\ncleanup\n"
    );
    assert_eq!(listed_status(&bench, "u1"), "undone");
    let report = bench.show_json("u1");
    assert_eq!(report["status"], "undone");
    assert_eq!(
        report["reason"],
        "step `e` failed (on_failure: undo); 4 steps undone"
    );
    assert_eq!(
        undo_events(&run.stdout),
        [
            "run_undoing",
            "undo_started d",
            "undo_ended d",
            "undo_started c",
            "undo_ended c",
            "undo_started b",
            "undo_ended b",
            "undo_started a",
            "undo_ended a",
        ]
    );
}

#[test]
fn without_on_failure_undo_a_failed_run_is_left_as_it_is() {
    let bench = Bench::new();
    bench.write("chain.yaml", &CHAIN.replace("on_failure: undo\n", ""));
    let run = bench.runbook(&["run", "chain.yaml", "--run-id", "k0"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(bench.read("side"), "a\nb\nc\nd\ne\ncleanup\n");
    assert_eq!(listed_status(&bench, "k0"), "failed");

    // Undone later by hand: the failed run's undo, then `finally` again at its new end.
    let undone = bench.runbook(&[
        "abort",
        "k0",
        "--undo",
        "--reason",
        "roll back",
        "--as",
        "ann",
    ]);
    assert_eq!(undone.code, 1, "{}", undone.stderr);
    assert_eq!(
        bench.read("side"),
        "a\nb\nc\nd\ne\ncleanup\nundo-d\nundo-c-started\nundo-c\nundo-b\nundo-a a-token\ncleanup\n"
    );
    let report = bench.show_json("k0");
    assert_eq!(report["status"], "undone");
    assert_eq!(report["controls"][0]["what"], "aborted, with undo");
    assert_eq!(report["controls"][0]["by"], "ann");
    assert_eq!(report["controls"][0]["reason"], "roll back");
    // Nothing is left to undo.
    let again = bench.runbook(&["abort", "k0", "--undo", "--reason", "again"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("has already ended (undone)"),
        "{}",
        again.stderr
    );
}

#[test]
fn an_undo_killed_in_the_middle_goes_on_where_it_stopped_on_resume() {
    let bench = Bench::new();
    bench.write("chain.yaml", CHAIN);
    bench.write("hold-c", "");
    let child = bench.spawn(&["run", "chain.yaml", "--run-id", "u2", "--output", "json"]);
    bench.wait_for("side", "undo-c-started");
    signal(&child, libc::SIGKILL);
    let (code, killed, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");
    assert_eq!(listed_status(&bench, "u2"), "interrupted");

    let resumed = bench.runbook(&["resume", "u2", "--output", "json"]);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    // No step ran again; `d`'s undo is not repeated; `c`'s, in flight, runs again.
    assert_eq!(
        bench.read("side"),
        "a\nb\nc\nd\ne\nundo-d\nundo-c-started\nundo-c-started\nundo-c\nundo-b\nundo-a a-token\ncleanup\n"
    );
    assert_eq!(bench.show_json("u2")["status"], "undone");
    // Before the kill: the undo began, `d` was undone, `c` had started.
    assert_eq!(
        undo_events(&killed),
        [
            "run_undoing",
            "undo_started d",
            "undo_ended d",
            "undo_started c"
        ]
    );
    // After it: the undo goes on (not begun again) from `c`, its attempt made again.
    assert_eq!(
        undo_events(&resumed.stdout),
        [
            "undo_started c",
            "undo_ended c",
            "undo_started b",
            "undo_ended b",
            "undo_started a",
            "undo_ended a",
        ]
    );
}

/// Stops at an approval after two steps that have an undo.
const PARKING: &str = r#"version: 1
name: parking
steps:
  - id: stop_jobs
    exec: { script: 'echo stop >> side' }
    undo: { exec: { script: 'echo undo-stop >> side' } }
  - id: snapshot
    needs: []
    for_each: '["x", "y"]'
    exec: { command: [sh, -c, 'echo "snap $0" >> side', "{{item}}"] }
    outputs: { at: '$ctx.item + "-at"' }
    undo: { exec: { command: [sh, -c, 'echo "undo-snap $0 $1" >> side', "{{item}}", "{{step.outputs.at}}"] } }
  - id: go
    needs: [stop_jobs, snapshot]
    approval: { prompt: upgrade now? }
  - id: upgrade
    exec: { script: 'echo upgrade >> side' }
    undo: { exec: { script: 'echo undo-upgrade >> side' } }
finally:
  - id: cleanup
    exec: { script: 'echo cleanup >> side' }
"#;

#[test]
fn abort_with_undo_of_a_parked_run_undoes_what_it_did_and_names_who() {
    let bench = Bench::new();
    bench.write("parking.yaml", PARKING);
    let parked = bench.runbook(&["run", "parking.yaml", "--run-id", "p1"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);

    let aborted = bench.runbook(&[
        "abort",
        "p1",
        "--undo",
        "--reason",
        "window is over",
        "--as",
        "bob",
    ]);
    assert_eq!(aborted.code, 1, "{}", aborted.stderr);
    let side = bench.read("side");
    let after: Vec<&str> = side.lines().skip(3).collect();
    // Both items of `snapshot` are undone (in either order), `stop_jobs` too; the approval
    // and `upgrade` never ran, so nothing of them is undone.
    assert_eq!(after.len(), 4, "{side}");
    let mut undos = after[..3].to_vec();
    undos.sort();
    assert_eq!(undos, ["undo-snap x x-at", "undo-snap y y-at", "undo-stop"]);
    assert_eq!(after[3], "cleanup");
    assert!(!side.contains("upgrade"), "{side}");
    let report = bench.show_json("p1");
    assert_eq!(report["status"], "undone");
    assert_eq!(
        report["reason"],
        "aborted by bob (with undo): window is over; 2 steps undone"
    );
    assert_eq!(listed_status(&bench, "p1"), "undone");
}

#[test]
fn abort_without_undo_cancels_a_parked_run_and_runs_finally_only() {
    let bench = Bench::new();
    bench.write("parking.yaml", PARKING);
    let parked = bench.runbook(&["run", "parking.yaml", "--run-id", "p2"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let before = bench.read("side");
    let aborted = bench.runbook(&["abort", "p2", "--reason", "not today"]);
    assert_eq!(aborted.code, 1, "{}", aborted.stderr);
    assert_eq!(bench.read("side"), format!("{before}cleanup\n"));
    let report = bench.show_json("p2");
    assert_eq!(report["status"], "cancelled");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("aborted by") && r.ends_with(": not today")),
        "{report:#}"
    );
    // A cancelled run is over: nothing more to abort.
    let again = bench.runbook(&["abort", "p2", "--reason", "again"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
}

#[test]
fn abort_with_undo_of_a_live_run_in_another_process_stops_and_undoes_it() {
    let bench = Bench::new();
    bench.write(
        "live.yaml",
        r#"version: 1
name: live
steps:
  - id: prepare
    exec: { script: 'echo prepare >> side' }
    undo: { exec: { script: 'echo undo-prepare >> side' } }
  - id: work
    exec: { script: 'echo started >> side; sleep 30; echo work-done >> side' }
    undo: { exec: { script: 'echo undo-work >> side' } }
"#,
    );
    let child = bench.spawn(&["run", "live.yaml", "--run-id", "l1"]);
    bench.wait_for("side", "started");
    let asked = bench.runbook(&["abort", "l1", "--undo", "--reason", "bad idea"]);
    assert_eq!(asked.code, 0, "{}", asked.stderr);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 1, "{stderr}");
    // The running step was interrupted: it did not succeed, so only `prepare` is undone.
    assert_eq!(bench.read("side"), "prepare\nstarted\nundo-prepare\n");
    assert_eq!(bench.show_json("l1")["status"], "undone");
}

#[test]
fn a_failed_undo_leaves_the_run_failed_and_names_what_was_not_undone() {
    let bench = Bench::new();
    bench.write(
        "broken.yaml",
        r#"version: 1
name: broken
on_failure: undo
steps:
  - id: base
    exec: { script: 'echo base >> side' }
    undo: { exec: { script: 'echo undo-base >> side' } }
  - id: left
    needs: [base]
    exec: { script: 'echo left >> side' }
    undo: { exec: { script: 'echo undo-left >> side; exit 1' }, retry: { attempts: 2, delay: 100ms } }
  - id: right
    needs: [base]
    exec: { script: 'echo right >> side' }
    undo: { exec: { script: 'echo undo-right >> side' } }
  - id: boom
    needs: [left, right]
    exec: { script: 'exit 1' }
"#,
    );
    let run = bench.runbook(&["run", "broken.yaml", "--run-id", "f1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let side = bench.read("side");
    // `right` is undone (it does not depend on `left`); `base` comes after both, so it is not.
    assert_eq!(side.matches("undo-left").count(), 2, "two attempts: {side}");
    assert!(side.contains("undo-right"), "{side}");
    assert!(!side.contains("undo-base"), "{side}");
    let report = bench.show_json("f1");
    assert_eq!(report["status"], "failed");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the undo of `left` failed")
            && reason.ends_with("not undone, since they come after it: base"),
        "{reason}"
    );
}

#[test]
fn a_window_too_short_with_on_window_close_undo_undoes_the_run() {
    let bench = Bench::new();
    bench.write(
        "windowed.yaml",
        r#"version: 1
name: windowed
on_window_close: undo
steps:
  - id: drain
    exec: { script: 'echo drain >> side' }
    undo: { exec: { script: 'echo undo-drain >> side' } }
  - id: restart
    window: { needs: 30m }
    exec: { script: 'echo restart >> side' }
    undo: { exec: { script: 'echo undo-restart >> side' } }
"#,
    );
    let run = bench.runbook(&["run", "windowed.yaml", "--run-id", "w1", "--window", "10m"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(bench.read("side"), "drain\nundo-drain\n");
    let report = bench.show_json("w1");
    assert_eq!(report["status"], "undone");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the window closes too soon")
                && r.contains("(on_window_close: undo)")),
        "{report:#}"
    );
}

#[test]
fn plan_shows_the_undo_order_and_the_steps_without_one() {
    let bench = Bench::new();
    bench.write(
        "diamond.yaml",
        r#"version: 1
name: diamond
on_failure: undo
steps:
  - id: stop
    exec: { command: [echo, stop] }
    undo: { exec: { command: [echo, start] }, retry: { attempts: 3 }, timeout: 5m }
  - id: left
    needs: [stop]
    exec: { command: [echo, left] }
    undo: { exec: { command: [echo, unleft] } }
  - id: right
    needs: [stop]
    exec: { command: [echo, right] }
    undo: { exec: { command: [echo, unright] } }
  - id: check
    needs: [left, right]
    exec: { command: [echo, check] }
"#,
    );
    let output = bench.runbook(&["plan", "diamond.yaml"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    insta::assert_snapshot!(output.stdout);
}

#[test]
fn undos_the_language_refuses_are_diagnosed_where_they_are_written() {
    let bench = Bench::new();
    bench.write(
        "bad.yaml",
        r#"version: 1
name: bad
on_failure: rollback
steps:
  - id: a
    exec: { command: [echo, a] }
    undo:
      exec: { command: [echo, undo] }
      undo: { exec: { command: [echo, again] } }
  - id: b
    exec: { command: [echo, b] }
    undo:
      approval: { prompt: really? }
      outputs: { x: '.y' }
  - id: c
    exec: { command: [echo, c] }
    undo: { retry: { attempts: 2 } }
finally:
  - id: f
    exec: { command: [echo, f] }
    undo: { exec: { command: [echo, unf] } }
"#,
    );
    let refused = bench.runbook(&["validate", "bad.yaml"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for expected in [
        "bad.yaml:3:13",
        "unknown value `rollback`",
        "bad.yaml:9:7",
        "unknown key `undo`",
        "an undo cannot have an undo of its own",
        "bad.yaml:13:17",
        "an `undo` cannot wait for an approval",
        "bad.yaml:14:7",
        "unknown key `outputs`",
        "an undo is one action with its own",
        "bad.yaml:17:11",
        "the undo of step `c` has no action",
        "bad.yaml:21:11",
        "a `finally` step cannot have an `undo`",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
}
