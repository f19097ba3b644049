//! Operator controls through the binary: `skip` a step by hand, `retry` a run from a step,
//! each journaled with who and why, and each surviving a kill -9 followed by a resume.

use crate::durable::{Bench, finish, signal};
use serde_json::Value;

pub(crate) fn step<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == path))
        .unwrap_or_else(|| panic!("no step {path} in {report:#}"))
}

/// `b` fails; `c` needs it and prints the version `b` would have given.
const SKIPPABLE: &str = r#"version: 1
name: skippable
steps:
  - id: a
    exec: { script: 'echo a >> side' }
  - id: b
    needs: [a]
    exec: { script: 'echo b >> side; exit 1' }
    outputs: { version: '.stdout' }
  - id: c
    needs: [b]
    exec: { command: [sh, -c, 'echo "c $0" >> side', "{{steps.b.outputs.version}}"] }
outputs:
  version: .steps.b.outputs.version
"#;

#[test]
fn a_skipped_step_feeds_its_outputs_to_its_dependents_on_resume() {
    let bench = Bench::new();
    bench.write("skip.yaml", SKIPPABLE);
    let run = bench.runbook(&["run", "skip.yaml", "--run-id", "s1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(bench.read("side"), "a\nb\n");

    // An output the step does not declare is refused, with the names it does.
    let wrong = bench.runbook(&[
        "skip",
        "s1",
        "b",
        "--output",
        "versoin=v9",
        "--reason",
        "typo",
    ]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("step `b` declares no output `versoin`; it declares: version"),
        "{}",
        wrong.stderr
    );
    // A step that does not exist is refused with the run's steps.
    let unknown = bench.runbook(&["skip", "s1", "bb", "--reason", "typo"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("(did you mean `b`?); its steps: a, b, c"),
        "{}",
        unknown.stderr
    );
    // A step that succeeded cannot be skipped.
    let done = bench.runbook(&["skip", "s1", "a", "--reason", "no"]);
    assert_eq!(done.code, 2, "{}", done.stderr);
    assert!(
        done.stderr.contains("has already succeeded"),
        "{}",
        done.stderr
    );

    let skipped = bench.runbook(&[
        "skip",
        "s1",
        "b",
        "--output",
        "version=v1.18",
        "--reason",
        "upgraded by hand",
        "--as",
        "alice",
    ]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    assert!(
        skipped.stderr.contains("runbook resume s1"),
        "{}",
        skipped.stderr
    );
    let listed = bench.runbook(&["runs", "list"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("s1 ") && l.contains("interrupted")),
        "{}",
        listed.stdout
    );
    let shown = bench.runbook(&["runs", "show", "s1"]);
    assert!(
        shown
            .stdout
            .contains("skipped by hand by alice: upgraded by hand"),
        "{}",
        shown.stdout
    );

    let resumed = bench.runbook(&["resume", "s1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    // Nothing before the skipped step ran again; its dependent read the outputs given.
    assert_eq!(bench.read("side"), "a\nb\nc v1.18\n");
    let report = bench.show_json("s1");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["outputs"]["version"], "v1.18");
    let b = step(&report, "b");
    assert_eq!(b["status"], "skipped");
    assert_eq!(b["skipped_by_hand"], "alice: upgraded by hand");
    assert_eq!(b["outputs"]["version"], "v1.18");
    let markdown = bench.runbook(&["runs", "show", "s1", "--format", "markdown"]);
    assert!(
        markdown.stdout.contains(
            "by alice: skipped `b` by hand, outputs {\"version\":\"v1.18\"} (upgraded by hand)"
        ),
        "{}",
        markdown.stdout
    );
    // `runs show` is rebuilt from the journal: who skipped, when and why are journaled.
    let control = &report["controls"][0];
    assert_eq!(control["by"], "alice");
    assert_eq!(control["reason"], "upgraded by hand");
}

#[test]
fn a_run_a_live_process_owns_cannot_be_skipped_or_retried() {
    let bench = Bench::new();
    bench.write(
        "slow.yaml",
        "version: 1\nname: slow\nsteps:\n  - id: nap\n    exec: { script: 'echo started >> side; sleep 30' }\n  - id: after\n    needs: [nap]\n    exec: { script: 'true' }\n",
    );
    let child = bench.spawn(&["run", "slow.yaml", "--run-id", "live"]);
    bench.wait_for("side", "started");
    let skipped = bench.runbook(&["skip", "live", "after", "--reason", "now"]);
    let retried = bench.runbook(&["retry", "live", "--from", "nap", "--reason", "now"]);
    signal(&child, libc::SIGINT);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 3, "{stderr}");
    for refused in [skipped, retried] {
        assert_eq!(refused.code, 4, "{}", refused.stderr);
        assert!(refused.stderr.contains("live"), "{}", refused.stderr);
    }
    let report = bench.show_json("live");
    assert!(report.get("controls").is_none(), "{report:#}");
}

/// A diamond: a -> b, a -> c, b,c -> d. Each step counts its finished runs in a file; `b`
/// holds (and says so) while `hold-b` exists; `d` fails until `fixed` exists.
const DIAMOND: &str = r#"version: 1
name: diamond
steps:
  - id: a
    exec: { script: 'echo a >> count-a' }
  - id: b
    needs: [a]
    exec:
      script: |
        if [ -e hold-b ]; then echo b-started >> side; sleep 30; fi
        echo b >> count-b
  - id: c
    needs: [a]
    exec: { script: 'echo c >> count-c' }
  - id: d
    needs: [b, c]
    exec: { script: 'echo d >> count-d; test -e fixed' }
"#;

fn counts(bench: &Bench) -> [usize; 4] {
    ["a", "b", "c", "d"].map(|id| bench.read(&format!("count-{id}")).lines().count())
}

#[test]
fn retry_runs_the_failed_steps_or_a_middle_step_and_what_is_downstream_of_it() {
    let bench = Bench::new();
    bench.write("diamond.yaml", DIAMOND);
    let run = bench.runbook(&["run", "diamond.yaml", "--run-id", "d1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(counts(&bench), [1, 1, 1, 1]);

    // Without --from: every failed step, here d alone. Still broken: it fails again.
    let again = bench.runbook(&["retry", "d1", "--reason", "flaky?"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again.stderr.contains("running again: d"),
        "{}",
        again.stderr
    );
    assert_eq!(counts(&bench), [1, 1, 1, 2]);

    bench.write("fixed", "");
    let retried = bench.runbook(&["retry", "d1", "--from", "b", "--reason", "fixed d"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert!(
        retried.stderr.contains("running again: b, d"),
        "{}",
        retried.stderr
    );
    assert_eq!(
        counts(&bench),
        [1, 2, 1, 3],
        "b and d ran again, not a or c"
    );
    let report = bench.show_json("d1");
    assert_eq!(report["status"], "succeeded");
    // Attempts keep counting across retries.
    assert_eq!(step(&report, "d")["attempts_in_all"], 3);
    assert_eq!(step(&report, "b")["attempts_in_all"], 2);
    assert!(step(&report, "a").get("attempts_in_all").is_none());
    let controls = report["controls"].as_array().expect("controls");
    assert_eq!(controls.len(), 2);
    assert_eq!(controls[1]["reason"], "fixed d");

    // A succeeded run can be retried too; an unknown step is refused.
    let unknown = bench.runbook(&["retry", "d1", "--from", "e", "--reason", "x"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("its steps: a, b, c, d"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_retry_killed_during_the_retried_step_resumes_it_and_reruns_nothing_else() {
    let bench = Bench::new();
    bench.write("diamond.yaml", DIAMOND);
    bench.write("fixed", "");
    let run = bench.runbook(&["run", "diamond.yaml", "--run-id", "k1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(counts(&bench), [1, 1, 1, 1]);

    bench.write("hold-b", "");
    let child = bench.spawn(&["retry", "k1", "--from", "b", "--reason", "redo b"]);
    bench.wait_for("side", "b-started");
    signal(&child, libc::SIGKILL);
    let (code, _, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");
    std::fs::remove_file(bench.path().join("hold-b")).expect("remove hold-b");

    let resumed = bench.runbook(&["resume", "k1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        counts(&bench),
        [1, 2, 1, 2],
        "the retried step finished once, d after it, nothing else ran again"
    );
    assert_eq!(bench.show_json("k1")["status"], "succeeded");
}

#[test]
fn retry_with_a_changed_input_shows_the_change_and_runs_with_it() {
    let bench = Bench::new();
    bench.write(
        "versioned.yaml",
        r#"version: 1
name: versioned
inputs:
  version: { type: string, default: "1.17" }
steps:
  - id: prepare
    exec: { script: 'echo prepare >> side' }
  - id: upgrade
    needs: [prepare]
    exec: { command: [sh, -c, 'echo "upgrade $0" >> side; test "$0" != 1.17', "{{inputs.version}}"] }
outputs:
  version: .inputs.version
"#,
    );
    let run = bench.runbook(&["run", "versioned.yaml", "--run-id", "v1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    let wrong = bench.runbook(&["retry", "v1", "--input", "verison=2", "--reason", "x"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("verison"), "{}", wrong.stderr);

    let retried = bench.runbook(&[
        "retry",
        "v1",
        "--input",
        "version=1.18",
        "--reason",
        "1.17 is broken",
    ]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert!(
        retried
            .stderr
            .contains(r#"input version: "1.17" -> "1.18""#),
        "{}",
        retried.stderr
    );
    assert_eq!(bench.read("side"), "prepare\nupgrade 1.17\nupgrade 1.18\n");
    let report = bench.show_json("v1");
    assert_eq!(report["outputs"]["version"], "1.18");
    assert_eq!(report["inputs"]["version"], "1.18");
    let what = report["controls"][0]["what"].as_str().unwrap_or_default();
    assert!(
        what.contains(r#"input version: "1.17" -> "1.18""#),
        "{what}"
    );
}

/// `work` says it started, then holds: 3 s the first time, 30 s while `hold` exists.
const PAUSABLE: &str = r#"version: 1
name: pausable
steps:
  - id: work
    exec:
      script: |
        echo started >> side
        if [ -e hold ]; then rm hold; sleep 30; else sleep 3; fi
        echo work-done >> side
  - id: next
    needs: [work]
    exec: { script: 'echo next >> side' }
finally:
  - id: cleanup
    exec: { script: 'echo cleanup >> side' }
"#;

#[test]
fn pause_from_a_second_process_parks_the_run_after_its_running_step_and_resume_continues() {
    let bench = Bench::new();
    bench.write("pausable.yaml", PAUSABLE);
    let child = bench.spawn(&["run", "pausable.yaml", "--run-id", "p1"]);
    bench.wait_for("side", "started");
    let paused = bench.runbook(&["pause", "p1", "--reason", "hold on", "--as", "bob"]);
    assert_eq!(paused.code, 0, "{}", paused.stderr);
    assert!(
        paused.stderr.contains("runbook resume p1"),
        "{}",
        paused.stderr
    );
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("paused by bob: hold on"), "{stderr}");
    // The running step finished; nothing started after it, not even `finally`.
    assert_eq!(bench.read("side"), "started\nwork-done\n");
    let listed = bench.runbook(&["runs", "list"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("p1 ") && l.contains("interrupted")),
        "{}",
        listed.stdout
    );
    let report = bench.show_json("p1");
    assert_eq!(report["reason"], "paused by bob: hold on");
    assert_eq!(report["controls"][0]["what"], "paused");

    // Not live any more: nothing to pause.
    let again = bench.runbook(&["pause", "p1", "--reason", "again"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("is not running (interrupted)"),
        "{}",
        again.stderr
    );

    // The request already served does not pause the resumed run.
    let resumed = bench.runbook(&["resume", "p1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "started\nwork-done\nnext\ncleanup\n");
}

#[test]
fn pause_now_interrupts_the_running_step_which_runs_again_on_resume() {
    let bench = Bench::new();
    bench.write("pausable.yaml", PAUSABLE);
    bench.write("hold", "");
    let child = bench.spawn(&["run", "pausable.yaml", "--run-id", "p2"]);
    bench.wait_for("side", "started");
    let asked = std::time::Instant::now();
    let paused = bench.runbook(&["pause", "p2", "--now", "--reason", "stop now"]);
    assert_eq!(paused.code, 0, "{}", paused.stderr);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "the step was interrupted, not waited for"
    );
    assert_eq!(bench.read("side"), "started\n");

    let resumed = bench.runbook(&["resume", "p2"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        bench.read("side"),
        "started\nstarted\nwork-done\nnext\ncleanup\n"
    );
    assert_eq!(bench.show_json("p2")["controls"][0]["what"], "paused now");
}

#[test]
fn a_resume_killed_after_a_skip_still_feeds_the_skipped_outputs_on_the_next_resume() {
    let bench = Bench::new();
    bench.write(
        "skip.yaml",
        r#"version: 1
name: skip-then-kill
steps:
  - id: b
    exec: { script: 'exit 1' }
    outputs: { version: '.stdout' }
  - id: c
    needs: [b]
    exec:
      command:
        - sh
        - -c
        - 'echo "c-start $0" >> side; if [ -e hold-c ]; then sleep 30; fi; echo "c $0" >> side'
        - "{{steps.b.outputs.version}}"
outputs:
  version: .steps.b.outputs.version
"#,
    );
    let run = bench.runbook(&["run", "skip.yaml", "--run-id", "s2"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let skipped = bench.runbook(&[
        "skip",
        "s2",
        "b",
        "--output",
        "version=v2",
        "--reason",
        "done by hand",
    ]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);

    bench.write("hold-c", "");
    let child = bench.spawn(&["resume", "s2"]);
    bench.wait_for("side", "c-start");
    signal(&child, libc::SIGKILL);
    let (code, _, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");
    std::fs::remove_file(bench.path().join("hold-c")).expect("remove hold-c");

    let resumed = bench.runbook(&["resume", "s2"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "c-start v2\nc-start v2\nc v2\n");
    let report = bench.show_json("s2");
    assert_eq!(report["outputs"]["version"], "v2");
    assert_eq!(step(&report, "b")["status"], "skipped");
}

#[test]
fn an_output_given_by_hand_that_holds_a_secret_is_refused_and_never_journaled() {
    let bench = Bench::new();
    let secret = "s3cr3t-by-hand-Zq9";
    bench.write("token.txt", secret);
    bench.write(
        "secret.yaml",
        r#"version: 1
name: secret-skip
secrets:
  token: { file: token.txt }
steps:
  - id: login
    exec: { script: 'exit 1' }
    outputs: { session: '.stdout' }
"#,
    );
    let run = bench.runbook(&["run", "secret.yaml", "--run-id", "x1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let given = format!("session=prefix-{secret}");
    let refused = bench.runbook(&["skip", "x1", "login", "--output", &given, "--reason", "r"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("output `session` given for step `login` holds a secret"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(secret), "{}", refused.stderr);
    let shown = bench.runbook(&["runs", "show", "x1", "--format", "json"]);
    assert!(!shown.stdout.contains(secret), "{}", shown.stdout);
    assert!(!shown.stdout.contains("controls"), "{}", shown.stdout);
}

/// Three items; the second fails until `fixed` exists. `after` needs the whole step.
const ITEMS: &str = r#"version: 1
name: items
steps:
  - id: list
    for_each: '[1, 2, 3]'
    exec:
      command: [sh, -c, 'echo "item $0" >> side; if [ "$0" = 2 ] && [ ! -e fixed ]; then exit 1; fi; echo "v$0"', "{{item}}"]
    outputs: { version: '.stdout' }
  - id: after
    needs: [list]
    exec: { script: 'echo after >> side' }
"#;

/// Lines of `side`, sorted: steps (and items) that run at once write in any order.
pub(crate) fn sorted_side(bench: &Bench) -> Vec<String> {
    let mut lines: Vec<String> = bench.read("side").lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn retry_from_one_item_runs_that_item_and_what_is_downstream_of_its_step() {
    let bench = Bench::new();
    bench.write("items.yaml", ITEMS);
    let run = bench.runbook(&["run", "items.yaml", "--run-id", "i1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(sorted_side(&bench), ["item 1", "item 2", "item 3"]);

    // Paths the controls cannot work on are refused, saying why.
    for (path, why) in [
        (
            "list[3]",
            "step `list` expanded into 3 items, `list[0]` to `list[2]`",
        ),
        (
            "after[0]",
            "step `after` has no for_each: name it without an index",
        ),
        ("list[x]", "an item is named by its index from 0"),
        (
            "list/inner",
            "a step inside a called runbook cannot be named",
        ),
    ] {
        let refused = bench.runbook(&["retry", "i1", "--from", path, "--reason", "r"]);
        assert_eq!(refused.code, 2, "{path}: {}", refused.stderr);
        assert!(refused.stderr.contains(why), "{path}: {}", refused.stderr);
    }

    bench.write("fixed", "");
    let retried = bench.runbook(&["retry", "i1", "--from", "list[1]", "--reason", "fixed 2"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert!(
        retried.stderr.contains("running again: list[1], after"),
        "{}",
        retried.stderr
    );
    // Only the retried item ran again, then what needs the whole step.
    assert_eq!(
        sorted_side(&bench),
        ["after", "item 1", "item 2", "item 2", "item 3"]
    );
    let report = bench.show_json("i1");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(step(&report, "list")["status"], "succeeded");
    assert_eq!(step(&report, "list[1]")["attempts_in_all"], 2);
    assert!(step(&report, "list[0]").get("attempts_in_all").is_none());
}

#[test]
fn a_skipped_item_with_outputs_lets_its_step_end_and_its_dependents_run() {
    let bench = Bench::new();
    bench.write("items.yaml", ITEMS);
    let run = bench.runbook(&["run", "items.yaml", "--run-id", "i2"]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    let done = bench.runbook(&["skip", "i2", "list[0]", "--reason", "no"]);
    assert_eq!(done.code, 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("`list[0]` of run i2 has already succeeded"),
        "{}",
        done.stderr
    );

    let skipped = bench.runbook(&[
        "skip",
        "i2",
        "list[1]",
        "--output",
        "version=v2-by-hand",
        "--reason",
        "done by hand",
    ]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    let resumed = bench.runbook(&["resume", "i2"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    // No item ran again; the step ended from its items, and `after` ran.
    assert_eq!(sorted_side(&bench), ["after", "item 1", "item 2", "item 3"]);
    let report = bench.show_json("i2");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(step(&report, "list")["status"], "succeeded");
    let item = step(&report, "list[1]");
    assert_eq!(item["status"], "skipped");
    assert_eq!(item["outputs"]["version"], "v2-by-hand");
    assert!(
        item["skipped_by_hand"]
            .as_str()
            .is_some_and(|by| by.ends_with(": done by hand")),
        "{item:#}"
    );
}
