//! Edit and resume through the binary: `runbook resume RUN_ID --runbook FILE` continues a
//! run with an edited runbook, shows the change step by step, journals it (so that a kill
//! -9 after it and a plain resume continue with the edited runbook), keeps finished steps
//! unless `--rerun-changed`, and refuses edits it cannot honour.

use crate::controls::{sorted_side, step};
use crate::durable::{Bench, finish, signal};
use runbook::event::RunEvent;

/// The lines of stderr that show the edit: from its first line to the one before the run
/// resumes.
fn edit_lines(stderr: &str) -> String {
    stderr
        .lines()
        .skip_while(|l| !l.contains("continues with the edited runbook"))
        .take_while(|l| !l.starts_with("run ") || l.contains("continues with"))
        .filter(|l| !l.contains("resumed by"))
        .map(|l| {
            // The hash of the file is the same on every machine; keep it out all the same,
            // so that a change of the test's runbook does not read as a change of behaviour.
            match l.find("(sha256 ") {
                Some(at) => format!("{}(sha256 …){}", &l[..at], &l[at + 21..]),
                None => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `runbook ARGS` until the file `side` holds `marker`, then kills it with SIGKILL.
fn kill_when(bench: &Bench, args: &[&str], marker: &str) {
    let child = bench.spawn(args);
    bench.wait_for("side", marker);
    signal(&child, libc::SIGKILL);
    let (code, _, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");
}

/// `b` fails; `c` needs it.
const ORIGINAL: &str = r#"version: 1
name: edited
steps:
  - id: a
    exec: { script: 'echo a1 >> side' }
  - id: b
    needs: [a]
    exec: { script: 'echo b1 >> side; exit 1' }
  - id: c
    needs: [b]
    exec: { script: 'echo c >> side' }
  - id: gone
    needs: []
    exec: { script: 'echo gone >> side' }
"#;

/// `a` changed (it had succeeded), `b` fixed, `d` added, `gone` removed, `c` needs `d` too.
const EDITED: &str = r#"version: 1
name: edited
steps:
  - id: a
    exec: { script: 'echo a2 >> side' }
  - id: b
    needs: [a]
    exec: { script: 'echo b2 >> side' }
  - id: d
    needs: [a]
    exec: { script: 'echo d >> side' }
  - id: c
    needs: [b, d]
    exec: { script: 'echo c >> side' }
"#;

#[test]
fn an_edit_adds_a_step_keeps_a_changed_finished_step_and_runs_the_fixed_one() {
    let bench = Bench::new();
    bench.write("book.yaml", ORIGINAL);
    let run = bench.runbook(&["run", "book.yaml", "--run-id", "e1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(sorted_side(&bench), ["a1", "b1", "gone"]);

    bench.write("book-fixed.yaml", EDITED);
    let resumed = bench.runbook(&[
        "resume",
        "e1",
        "--runbook",
        "book-fixed.yaml",
        "--reason",
        "fix b, add d",
        "--as",
        "alice",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    insta::assert_snapshot!(edit_lines(&resumed.stderr));
    // `a` kept its end (its new body did not run); `b` ran with its new body, `d` was added.
    assert_eq!(sorted_side(&bench), ["a1", "b1", "b2", "c", "d", "gone"]);
    let report = bench.show_json("e1");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(
        step(&report, "b")["attempts_in_all"],
        2,
        "attempts keep counting"
    );
    let control = &report["controls"][0];
    assert_eq!(control["by"], "alice");
    assert_eq!(control["reason"], "fix b, add d");
    assert!(
        control["what"]
            .as_str()
            .is_some_and(|w| w.contains("+ d (added)") && w.contains("- gone (removed)")),
        "{control:#}"
    );
    // The journal holds the new text and its hash.
    let edited = crate::reliability::journal(&bench.db(), "e1")
        .into_iter()
        .find_map(|e| match e.event {
            RunEvent::RunEdited(edited) => Some(edited),
            _ => None,
        })
        .expect("the edit is journaled");
    assert_eq!(edited.sources[0].text, EDITED);
    assert_eq!(edited.sources[0].sha256.len(), 64);
    assert_eq!(edited.file, "book-fixed.yaml");
    assert_eq!(edited.rerun, ["b"]);
}

#[test]
fn rerun_changed_runs_a_changed_finished_step_and_what_is_downstream_of_it_again() {
    let bench = Bench::new();
    bench.write("book.yaml", ORIGINAL);
    let run = bench.runbook(&["run", "book.yaml", "--run-id", "e2"]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    bench.write("book-fixed.yaml", EDITED);
    let resumed = bench.runbook(&[
        "resume",
        "e2",
        "--runbook",
        "book-fixed.yaml",
        "--rerun-changed",
        "--reason",
        "a must say a2",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("~ a: body changed (it had succeeded: it runs again)"),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("running again: a, b"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        sorted_side(&bench),
        ["a1", "a2", "b1", "b2", "c", "d", "gone"]
    );
    let report = bench.show_json("e2");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(
        step(&report, "a")["attempts_in_all"],
        2,
        "attempts keep counting"
    );
}

/// `a` gives an output; `b` needs it and fails.
const REFUSED: &str = r#"version: 1
name: refused
steps:
  - id: a
    exec: { script: 'echo v1' }
    outputs: { v: '.stdout' }
  - id: b
    needs: [a]
    exec: { script: 'exit 1' }
"#;

#[test]
fn edits_the_run_cannot_honour_are_refused_naming_the_steps_and_journal_nothing() {
    let bench = Bench::new();
    bench.write("book.yaml", REFUSED);
    let run = bench.runbook(&["run", "book.yaml", "--run-id", "e3"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let before = crate::reliability::journal(&bench.db(), "e3").len();

    // `a` finished, is removed, and `b` still reads its outputs.
    bench.write(
        "removed.yaml",
        r#"version: 1
name: refused
steps:
  - id: b
    exec: { command: [echo, "{{ steps.a.outputs.v }}"] }
"#,
    );
    let removed = bench.runbook(&[
        "resume",
        "e3",
        "--runbook",
        "removed.yaml",
        "--reason",
        "no a",
    ]);
    assert_eq!(removed.code, 2, "{}", removed.stderr);
    assert!(
        removed.stderr.contains("removed.yaml:5:33"),
        "file:line:col as validate shows it: {}",
        removed.stderr
    );
    assert!(
        removed.stderr.contains(
            "it removes `a`, which finished in the run and which a kept step still reads or needs"
        ),
        "{}",
        removed.stderr
    );

    // A cycle.
    bench.write(
        "cycle.yaml",
        &REFUSED.replace("  - id: a\n", "  - id: a\n    needs: [b]\n"),
    );
    let cycle = bench.runbook(&["resume", "e3", "--runbook", "cycle.yaml", "--reason", "x"]);
    assert_eq!(cycle.code, 2, "{}", cycle.stderr);
    assert!(cycle.stderr.contains("cycle"), "{}", cycle.stderr);
    assert!(cycle.stderr.contains("cycle.yaml:5:"), "{}", cycle.stderr);

    // Nothing was journaled, and the run can still be edited well.
    assert_eq!(crate::reliability::journal(&bench.db(), "e3").len(), before);
    bench.write("fixed.yaml", &REFUSED.replace("exit 1", "true"));
    let fixed = bench.runbook(&["resume", "e3", "--runbook", "fixed.yaml", "--reason", "ok"]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
}

/// `work` is running (held by a file) when the run is killed.
const IN_FLIGHT: &str = r#"version: 1
name: in-flight
steps:
  - id: work
    exec: { script: 'echo started >> side; while [ -e hold ]; do sleep 0.05; done; echo old-done >> side' }
  - id: next
    exec: { script: 'echo next >> side' }
"#;

#[test]
fn a_running_step_whose_body_changed_needs_rerun_changed_or_a_verify() {
    let bench = Bench::new();
    bench.write("book.yaml", IN_FLIGHT);
    bench.write("hold", "");
    kill_when(&bench, &["run", "book.yaml", "--run-id", "e4"], "started");
    // `hold` stays: what the killed run left running never finishes on its own; the resume
    // that runs again stops it first.
    let changed = IN_FLIGHT.replace(
        "echo started >> side; while [ -e hold ]; do sleep 0.05; done; echo old-done >> side",
        "echo new-done >> side",
    );
    bench.write("changed.yaml", &changed);
    let refused = bench.runbook(&["resume", "e4", "--runbook", "changed.yaml", "--reason", "r"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "step `work` was running when the run stopped and its body changed: what it did with the old body is not known (it has no verify to find out); pass --rerun-changed"
        ),
        "{}",
        refused.stderr
    );

    let rerun = bench.runbook(&[
        "resume",
        "e4",
        "--runbook",
        "changed.yaml",
        "--rerun-changed",
        "--reason",
        "r",
    ]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_eq!(bench.read("side"), "started\nnew-done\nnext\n");
}

#[test]
fn a_running_step_whose_new_body_has_a_verify_is_taken_up_again_after_the_probe() {
    let bench = Bench::new();
    bench.write("book.yaml", IN_FLIGHT);
    bench.write("hold", "");
    kill_when(&bench, &["run", "book.yaml", "--run-id", "e6"], "started");

    // The new body says how to tell the work is done: the file `done` exists.
    let verified = IN_FLIGHT.replace(
        "    exec: { script: 'echo started >> side; while [ -e hold ]; do sleep 0.05; done; echo old-done >> side' }\n",
        "    exec: { script: 'echo new-body >> side' }\n    verify:\n      exec: { script: 'test -e done && echo yes || echo no' }\n      that: '.stdout == \"yes\\n\"'\n",
    );
    assert_ne!(verified, IN_FLIGHT);
    bench.write("verified.yaml", &verified);
    bench.write("done", "");
    let resumed = bench.runbook(&[
        "resume",
        "e6",
        "--runbook",
        "verified.yaml",
        "--reason",
        "v",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains(
            "~ work: body changed (it was running: its new verify decides whether it runs again)"
        ),
        "{}",
        resumed.stderr
    );
    // The probe found the work done: neither body ran again.
    assert_eq!(bench.read("side"), "started\nnext\n");
    assert_eq!(step(&bench.show_json("e6"), "work")["via"], "verify");
}

#[test]
fn a_kill_right_after_the_edit_is_journaled_then_a_plain_resume_continues_with_the_edited_runbook()
{
    let bench = Bench::new();
    bench.write("book.yaml", ORIGINAL);
    let run = bench.runbook(&["run", "book.yaml", "--run-id", "e5"]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    // The fixed `b` waits on a file: the edit is journaled by then, and the kill lands
    // while the first step of the edited runbook runs.
    let held = EDITED.replace(
        "echo b2 >> side",
        "echo b2-start >> side; while [ -e hold ]; do sleep 0.05; done; echo b2 >> side",
    );
    bench.write("book-fixed.yaml", &held);
    bench.write("hold", "");
    kill_when(
        &bench,
        &[
            "resume",
            "e5",
            "--runbook",
            "book-fixed.yaml",
            "--reason",
            "fix b",
        ],
        "b2-start",
    );
    std::fs::remove_file(bench.path().join("hold")).expect("remove hold");
    // The edited file is gone from disk: the journal's copy is what runs.
    std::fs::remove_file(bench.path().join("book-fixed.yaml")).expect("remove the edit");

    let resumed = bench.runbook(&["resume", "e5"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let lines = sorted_side(&bench);
    assert!(lines.contains(&"b2".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"d".to_owned()),
        "the added step ran: {lines:?}"
    );
    assert!(lines.contains(&"c".to_owned()), "{lines:?}");
    assert!(
        !lines.contains(&"a2".to_owned()),
        "a kept its end: {lines:?}"
    );
    let report = bench.show_json("e5");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(step(&report, "d")["status"], "succeeded");
}
