//! Maintenance windows through the binary: a gated step parks the run when the window is too
//! short and a later window finishes it; `on_window_close: fail`; `needs: auto` from the
//! history of real earlier runs; `plan --window`; bad windows and bad `window` fields.

use crate::durable::Bench;
use serde_json::Value;

/// Lines of `side` equal to `line`: how many times a step's command ran.
fn times(bench: &Bench, line: &str) -> usize {
    bench.read("side").lines().filter(|l| *l == line).count()
}

/// The gate decisions `runs show --format json` gives for a run.
fn gates(bench: &Bench, run_id: &str) -> Vec<Value> {
    bench.show_json(run_id)["window_gates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const UPGRADE: &str = r#"
version: 1
name: upgrade
steps:
  - id: drain
    needs: []
    exec: {script: "sleep 1; echo drain >> side"}
  - id: restart
    needs: []
    window: {needs: 30m}
    exec: {script: "echo restart >> side"}
  - id: verify
    needs: [drain, restart]
    exec: {script: "echo verify >> side"}
finally:
  - id: cleanup
    exec: {script: "echo cleanup >> side"}
"#;

#[test]
fn a_window_too_short_parks_the_run_and_a_later_window_finishes_it() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", UPGRADE);
    let parked = bench.runbook(&["run", "upgrade.yaml", "--run-id", "w1", "--window", "10m"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    // The step that was running when the window closed on `restart` finished; nothing after
    // the gate started, and `finally` waits for the run's real end.
    assert_eq!(times(&bench, "drain"), 1, "{}", parked.stderr);
    assert_eq!(times(&bench, "restart"), 0);
    assert_eq!(times(&bench, "verify"), 0);
    assert_eq!(times(&bench, "cleanup"), 0);
    assert!(
        parked.stderr.contains(
            "run w1 parked (the window closes too soon: step `restart` needs 30m (declared)"
        ),
        "{}",
        parked.stderr
    );
    // The end-of-run summary shows the decision that parked the run.
    assert!(
        parked
            .stderr
            .contains("\nWindow\n  step `restart` needs 30m (declared), "),
        "{}",
        parked.stderr
    );
    assert!(
        parked.stderr.contains("runbook resume w1 --window"),
        "{}",
        parked.stderr
    );

    // Parked for its window: neither interrupted nor waiting for an approval.
    let listed = bench.runbook(&["runs", "list", "--status", "parked"]);
    assert!(
        listed.stdout.contains("w1") && listed.stdout.contains("parked"),
        "{}",
        listed.stdout
    );
    let gate = &gates(&bench, "w1")[0];
    assert_eq!(gate["path"], "restart");
    assert_eq!(gate["decision"], "park");
    assert_eq!(gate["needed_ms"], 1_800_000);
    assert_eq!(gate["source"]["from"], "declared");
    let left = gate["left_ms"].as_u64().unwrap();
    assert!((500_000..=600_000).contains(&left), "{left}");
    let text = bench.runbook(&["runs", "show", "w1"]);
    assert!(text.stdout.contains("status    parked"), "{}", text.stdout);
    assert!(text.stdout.contains("window    until "), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("step `restart` needs 30m (declared), ")
            && text.stdout.contains(": the run parks"),
        "{}",
        text.stdout
    );
    let markdown = bench.runbook(&["runs", "show", "w1", "--format", "markdown"]);
    assert!(markdown.stdout.contains("## Window"), "{}", markdown.stdout);
    assert!(
        markdown.stdout.contains("| `restart` | 30m | declared |"),
        "{}",
        markdown.stdout
    );

    // A later window, long enough: the run finishes, and nothing that finished runs again.
    let resumed = bench.runbook(&["resume", "w1", "--window", "1h"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    for step in ["drain", "restart", "verify", "cleanup"] {
        assert_eq!(times(&bench, step), 1, "{step}: {}", bench.read("side"));
    }
    let gates = gates(&bench, "w1");
    assert_eq!(gates.len(), 2);
    assert_eq!(gates[1]["decision"], "start");
    assert!(gates[1]["left_ms"].as_u64().unwrap() > 3_000_000);
    assert_eq!(bench.show_json("w1")["status"], "succeeded");
}

#[test]
fn a_run_without_a_window_is_never_gated() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", UPGRADE);
    let run = bench.runbook(&["run", "upgrade.yaml", "--run-id", "free"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(times(&bench, "restart"), 1);
    assert!(gates(&bench, "free").is_empty());
}

/// The window's end and each decision are events, in `--output json` as in the journal.
#[test]
fn the_window_and_its_decisions_are_events() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", UPGRADE);
    let run = bench.runbook(&[
        "run",
        "upgrade.yaml",
        "--output",
        "json",
        "--window-until",
        "2099-12-06T04:00+01:00[Europe/Berlin]",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events = crate::events::events(&run.stdout);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[..2], ["run_started", "window_opened"]);
    assert_eq!(events[1]["until"], "2099-12-06T03:00:00Z");
    let checked: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "window_checked")
        .collect();
    assert_eq!(checked.len(), 1, "one gated step, checked once");
    assert_eq!(checked[0]["path"], "restart");
    assert_eq!(checked[0]["decision"], "start");
    assert_eq!(checked[0]["until"], "2099-12-06T03:00:00Z");
    // The gate comes before the step starts.
    let started = crate::events::position(&events, "step_started", "restart");
    let gate = events
        .iter()
        .position(|e| e["event"] == "window_checked")
        .unwrap();
    assert!(gate < started);
}

#[test]
fn the_fail_policy_fails_the_run_with_the_numbers_and_finally_still_runs() {
    let bench = Bench::new();
    bench.write(
        "upgrade.yaml",
        &UPGRADE.replace("name: upgrade\n", "name: upgrade\non_window_close: fail\n"),
    );
    let failed = bench.runbook(&["run", "upgrade.yaml", "--run-id", "f1", "--window", "10m"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(times(&bench, "restart"), 0);
    assert_eq!(times(&bench, "verify"), 0);
    assert_eq!(
        times(&bench, "cleanup"),
        1,
        "finally runs after a window failure"
    );
    let shown = bench.show_json("f1");
    assert_eq!(shown["status"], "failed");
    let reason = shown["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the window closes too soon: step `restart` needs 30m (declared), ")
            && reason.contains(" left in the window (until "),
        "{reason}"
    );
    assert_eq!(gates(&bench, "f1")[0]["decision"], "fail");
    assert!(failed.stderr.contains("\nWindow\n"), "{}", failed.stderr);
}

/// `needs: auto` against the history of the runbook's earlier runs in the journal.
#[test]
fn needs_auto_takes_the_history_of_earlier_runs_else_the_estimate() {
    let bench = Bench::new();
    bench.write(
        "auto.yaml",
        r#"
version: 1
name: auto
steps:
  - id: restart
    window: {needs: auto, estimate: 1h}
    exec: {command: [sleep, "0.3"]}
"#,
    );
    for id in ["h1", "h2"] {
        let run = bench.runbook(&["run", "auto.yaml", "--run-id", id]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // Two earlier runs are too few: the estimate (1h) does not fit in 10m.
    let parked = bench.runbook(&["run", "auto.yaml", "--run-id", "e1", "--window", "10m"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let gate = &gates(&bench, "e1")[0];
    assert_eq!(gate["source"]["from"], "estimate");
    assert_eq!(gate["source"]["runs"], 2);
    assert_eq!(gate["needed_ms"], 3_600_000);
    assert_eq!(gate["decision"], "park");

    // A parked run is no history; a third succeeded run is enough.
    let run = bench.runbook(&["run", "auto.yaml", "--run-id", "h3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let started = bench.runbook(&["run", "auto.yaml", "--run-id", "a1", "--window", "10m"]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let gate = &gates(&bench, "a1")[0];
    assert_eq!(gate["source"]["from"], "history");
    assert_eq!(gate["source"]["runs"], 3);
    assert_eq!(gate["source"]["margin"], 1.25);
    let p95 = gate["source"]["p95_ms"].as_u64().unwrap();
    assert!((300..3_000).contains(&p95), "the step sleeps 0.3s: {p95}");
    let needed = gate["needed_ms"].as_u64().unwrap();
    assert!(
        needed.abs_diff(p95 * 5 / 4) <= 1,
        "{needed} is {p95} x 1.25"
    );
    assert_eq!(gate["decision"], "start");

    // The plan shows the same need, and how long the step took.
    let plan = bench.runbook(&["plan", "auto.yaml", "--window", "2h"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("Window 2h: "), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("window: needs ")
            && plan.stdout.contains("(history: p95 ")
            && plan
                .stdout
                .contains("of 4 runs x 1.25): fits in the window"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("took: median ")
            && plan.stdout.contains("over the last 4 succeeded runs"),
        "{}",
        plan.stdout
    );
}

/// A point of no return gated with `through`: its history runs from its own start to the
/// end of the step that proves the work done, not the point of no return alone (which is
/// quick: stopping is fast, the restart after it is slow).
#[test]
fn needs_auto_through_measures_from_the_gated_step_to_the_end_of_another() {
    let bench = Bench::new();
    bench.write(
        "through.yaml",
        r#"
version: 1
name: through
steps:
  - id: stop
    window: {needs: auto, estimate: 1h, through: verify}
    exec: {command: [sleep, "0.1"]}
  - id: restart
    exec: {command: [sleep, "0.6"]}
  - id: verify
    exec: {command: [sleep, "0.1"]}
"#,
    );
    for id in ["h1", "h2", "h3"] {
        let run = bench.runbook(&["run", "through.yaml", "--run-id", id]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let run = bench.runbook(&["run", "through.yaml", "--run-id", "t1", "--window", "10m"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let gate = &gates(&bench, "t1")[0];
    assert_eq!(gate["source"]["from"], "history");
    assert_eq!(gate["source"]["runs"], 3);
    let p95 = gate["source"]["p95_ms"].as_u64().unwrap();
    // The three steps take 0.8s together; `stop` alone takes 0.1s.
    assert!((800..5_000).contains(&p95), "stop through verify: {p95}");

    // A window shorter than that span parks the run before it stops anything.
    let parked = bench.runbook(&["run", "through.yaml", "--run-id", "t2", "--window", "1s"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert_eq!(gates(&bench, "t2")[0]["decision"], "park");

    // `through` must name a later step, and only goes with `auto`.
    bench.write(
        "bad-through.yaml",
        r#"version: 1
name: bad-through
steps:
  - id: verify
    exec: {command: [true]}
  - id: stop
    window: {needs: auto, estimate: 1h, through: verify}
    exec: {command: [true]}
  - id: late
    window: {needs: 10m, through: stop}
    exec: {command: [true]}
  - id: typo
    window: {needs: auto, estimate: 1h, through: verfy}
    exec: {command: [true]}
"#,
    );
    let invalid = bench.runbook(&["validate", "bad-through.yaml"]);
    assert_eq!(invalid.code, 2, "{}", invalid.stderr);
    for expected in [
        "`through: verify` must name a step that runs after `stop`",
        "bad-through.yaml:7:50",
        "`through` is only read by `needs: auto`",
        "`through` names no step of this runbook: `verfy`",
        "did you mean `verify`?",
    ] {
        assert!(
            invalid.stderr.contains(expected),
            "{expected:?} in {}",
            invalid.stderr
        );
    }
}

/// A gate inside a phase a step `uses`, and a gate on the `uses` step itself: a phase that
/// parks is not a failure of the step that called it.
#[test]
fn a_gate_in_a_called_phase_parks_the_run_and_the_phase_goes_on_later() {
    let bench = Bench::new();
    bench.write(
        "phase.yaml",
        r#"
version: 1
name: phase
steps:
  - id: stop
    exec: {script: "echo stop >> side"}
  - id: start
    window: {needs: 20m}
    exec: {script: "echo start >> side"}
"#,
    );
    bench.write(
        "root.yaml",
        r#"
version: 1
name: root
steps:
  - id: upgrade
    window: {needs: 5m}
    uses: phase.yaml
  - id: after
    exec: {script: "echo after >> side"}
"#,
    );
    let parked = bench.runbook(&["run", "root.yaml", "--run-id", "p1", "--window", "10m"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert_eq!(times(&bench, "stop"), 1);
    assert_eq!(times(&bench, "start"), 0);
    let shown = bench.show_json("p1");
    assert_eq!(shown["status"], "parked");
    let upgrade = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "upgrade")
        .unwrap();
    assert_ne!(upgrade["status"], "failed", "{upgrade}");
    let decided: Vec<(String, String)> = gates(&bench, "p1")
        .iter()
        .map(|g| {
            (
                g["path"].as_str().unwrap().to_owned(),
                g["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("upgrade".to_owned(), "start".to_owned()),
            ("upgrade/start".to_owned(), "park".to_owned())
        ]
    );
    let resumed = bench.runbook(&["resume", "p1", "--window", "1h"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    for step in ["stop", "start", "after"] {
        assert_eq!(times(&bench, step), 1, "{step}: {}", bench.read("side"));
    }
}

#[test]
fn plan_shows_gated_steps_against_the_window() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", UPGRADE);
    let short = bench.runbook(&["plan", "upgrade.yaml", "--window", "20m"]);
    assert_eq!(short.code, 0, "{}", short.stderr);
    assert!(
        short.stdout.contains(
            "window: needs 30m (declared): longer than the whole window, it cannot start in it"
        ),
        "{}",
        short.stdout
    );
    assert!(
        !short.stdout.contains("took:"),
        "no history yet: {}",
        short.stdout
    );
    let json = bench.runbook(&["plan", "upgrade.yaml", "--window", "2h", "--format", "json"]);
    let plan: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["window_ms"], 7_200_000);
    let restart = &plan["stages"][0][1];
    assert_eq!(restart["path"], "restart");
    assert_eq!(restart["window"]["needs_ms"], 1_800_000);
    assert_eq!(restart["window"]["fits"], true);
    assert_eq!(restart["window"]["source"]["from"], "declared");
    assert!(
        plan["stages"][0][0].get("window").is_none(),
        "drain is not gated"
    );
    // Without a window the plan still shows what gated steps need.
    let plain = bench.runbook(&["plan", "upgrade.yaml"]);
    assert!(
        plain.stdout.contains("window: needs 30m (declared)\n"),
        "{}",
        plain.stdout
    );
}

#[test]
fn bad_windows_on_the_command_line_are_refused_clearly() {
    let bench = Bench::new();
    bench.write("upgrade.yaml", UPGRADE);
    for (args, expected) in [
        (&["--window", "soon"][..], "`soon` is not a duration"),
        (&["--window", "0s"][..], "a window must be longer than 0s"),
        (
            &["--window-until", "2020-01-01T00:00:00Z"][..],
            "which has already passed",
        ),
        (
            &["--window-until", "tomorrow"][..],
            "`tomorrow` is not a time",
        ),
        (
            &["--window", "1h", "--window-until", "2099-01-01T00:00:00Z"][..],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["run", "upgrade.yaml"];
        all.extend_from_slice(args);
        let refused = bench.runbook(&all);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(expected),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(bench.read("side"), "", "nothing ran");
    let resume = bench.runbook(&["resume", "nope", "--window", "2 hours"]);
    assert_eq!(resume.code, 2, "{}", resume.stderr);
    // A time in a named zone, DST resolved by jiff, is accepted.
    let zoned = bench.runbook(&[
        "run",
        "upgrade.yaml",
        "--window-until",
        "2099-12-06T04:00+01:00[Europe/Berlin]",
    ]);
    assert_eq!(zoned.code, 0, "{}", zoned.stderr);
    assert!(
        zoned
            .stderr
            .contains("window open until 2099-12-06T03:00:00Z"),
        "{}",
        zoned.stderr
    );
}

#[test]
fn bad_window_fields_are_diagnosed_where_they_are_written() {
    let bench = Bench::new();
    bench.write(
        "bad.yaml",
        r#"version: 1
name: bad
on_window_close: later
steps:
  - id: a
    window: {needs: 30 minutes}
    exec: {command: [true]}
  - id: b
    window: {needs: auto}
    exec: {command: [true]}
  - id: c
    window: {needs: 5m, estimate: 3m}
    exec: {command: [true]}
  - id: d
    window: {needs: 5m, margin: 2}
    exec: {command: [true]}
finally:
  - id: e
    window: {needs: 5m}
    exec: {command: [true]}
"#,
    );
    let refused = bench.runbook(&["validate", "bad.yaml"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for expected in [
        "bad.yaml:3:18",
        "unknown value `later`",
        "bad.yaml:6:21",
        "invalid window need `30 minutes`",
        "bad.yaml:9:21",
        "`needs: auto` needs an `estimate`",
        "bad.yaml:12:35",
        "`estimate` is only read by `needs: auto`",
        "bad.yaml:15:25",
        "unknown key `margin`",
        "bad.yaml:19:13",
        "`finally` step `e` cannot have a `window`",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
}
