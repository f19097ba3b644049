//! Approval steps that need several people (`count`) and someone other than whoever
//! started the run (`distinct_from_starter`), through the binary: who may answer, what is
//! journaled, what reports show, and a crash between two approvals.

use crate::durable::{Bench, finish, signal};
use crate::support::{Output, Test};
use serde_json::Value;
use std::time::{Duration, Instant};

const QUORUM: &str = r#"version: 1
name: quorum
steps:
  - id: gate
    approval:
      prompt: "Cancel the jobs?"
      distinct_from_starter: true
      count: 2
  - id: act
    needs: [gate]
    exec: { script: 'echo act >> side' }
outputs:
  approvers: '[.steps.gate.outputs.approvers[].by]'
"#;

/// Runs the binary in the bench as user `user` (what `$USER@host` defaults to).
fn as_user(bench: &Bench, user: &str, args: &[&str]) -> Output {
    Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .env("USER", user)
        .args(args.iter().copied())
        .run()
}

fn approve(bench: &Bench, run_id: &str, by: &str, comment: &str) -> Output {
    bench.runbook(&["approve", run_id, "gate", "--as", by, "--comment", comment])
}

#[test]
fn two_people_other_than_the_starter_must_approve_and_each_counts_once() {
    let bench = Bench::new();
    bench.write("quorum.yaml", QUORUM);
    let parked = as_user(&bench, "stan", &["run", "quorum.yaml", "--run-id", "q1"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let starter = bench.show_json("q1")["started_by"]
        .as_str()
        .expect("the run says who started it")
        .to_owned();
    assert!(starter.starts_with("stan@"), "{starter}");

    // The starter is refused, as `$USER@host` and as the name given.
    let own = as_user(&bench, "stan", &["approve", "q1", "gate"]);
    assert_eq!(own.code, 2, "{}", own.stderr);
    assert!(
        own.stderr
            .contains("needs an approver other than whoever started the run"),
        "{}",
        own.stderr
    );
    assert_eq!(approve(&bench, "q1", &starter, "mine").code, 2);

    let first = approve(&bench, "q1", "ana", "looks right");
    assert_eq!(first.code, 0, "{}", first.stderr);
    // The same person again counts once, and is told so.
    let again = approve(&bench, "q1", "ana", "really");
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("ana has already answered step `gate`")
            && again
                .stderr
                .contains("needs 2 different approvers (1 so far)"),
        "{}",
        again.stderr
    );
    // One approval of two: a resume journals it and parks again.
    let resumed = bench.runbook(&["resume", "q1"]);
    assert_eq!(resumed.code, 3, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "");
    let text = bench.runbook(&["runs", "show", "q1"]);
    assert!(
        text.stdout
            .contains("needs 2 different approvers, not whoever started the run")
            && text.stdout.contains("approved by ana: looks right")
            && text
                .stdout
                .contains("waiting for 1 more approval: runbook approve q1 gate"),
        "{}",
        text.stdout
    );

    let second = approve(&bench, "q1", "bo", "go");
    assert_eq!(second.code, 0, "{}", second.stderr);
    let late = approve(&bench, "q1", "cy", "me too");
    assert_eq!(late.code, 2, "{}", late.stderr);
    assert!(
        late.stderr.contains("already approved by ana, bo"),
        "{}",
        late.stderr
    );
    let done = bench.runbook(&["resume", "q1"]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(bench.read("side"), "act\n");
    let outputs: Value = serde_json::from_str(&done.stdout).expect("the outputs as JSON");
    assert_eq!(outputs["approvers"], serde_json::json!(["ana", "bo"]));

    // The journal holds each answer with who and the comment, once each.
    let report = bench.show_json("q1");
    let approval = &report["approvals"][0];
    assert_eq!(approval["needed"], 2);
    assert_eq!(approval["approved"], true);
    assert_eq!(approval["by"], "ana, bo");
    let answers: Vec<(String, String)> = approval["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["by"].as_str().unwrap().to_owned(),
                a["comment"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("ana".to_owned(), "looks right".to_owned()),
            ("bo".to_owned(), "go".to_owned())
        ]
    );

    // Every report shows each approver.
    let html = bench.runbook(&["runs", "show", "q1", "--format", "html"]);
    assert!(
        html.stdout.contains("by ana: looks right") && html.stdout.contains("by bo: go"),
        "{}",
        html.stdout
    );
    let junit = bench.runbook(&["runs", "show", "q1", "--format", "junit"]);
    assert!(
        junit
            .stdout
            .contains("<system-out>approved by ana: looks right")
            && junit.stdout.contains("approved by bo: go"),
        "{}",
        junit.stdout
    );
    let markdown = bench.runbook(&["runs", "show", "q1", "--format", "markdown"]);
    assert!(
        markdown
            .stdout
            .contains("approved by ana: looks right; approved by bo: go"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn one_rejection_fails_a_step_that_needs_several_approvals() {
    let bench = Bench::new();
    bench.write("quorum.yaml", QUORUM);
    assert_eq!(
        bench
            .runbook(&["run", "quorum.yaml", "--run-id", "q2"])
            .code,
        3
    );
    assert_eq!(approve(&bench, "q2", "ana", "fine").code, 0);
    let rejected = bench.runbook(&[
        "approve",
        "q2",
        "gate",
        "--as",
        "bo",
        "--reject",
        "--comment",
        "not tonight",
    ]);
    assert_eq!(rejected.code, 0, "{}", rejected.stderr);
    let after = approve(&bench, "q2", "cy", "fine");
    assert_eq!(after.code, 2, "{}", after.stderr);
    assert!(
        after.stderr.contains("already rejected by bo"),
        "{}",
        after.stderr
    );
    let resumed = bench.runbook(&["resume", "q2"]);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("rejected by bo: not tonight"),
        "{}",
        resumed.stderr
    );
    assert_eq!(bench.read("side"), "");
    let report = bench.show_json("q2");
    assert_eq!(report["approvals"][0]["approved"], false);
    assert_eq!(
        report["approvals"][0]["answers"].as_array().unwrap().len(),
        2
    );
}

/// A kill between the first and the second approval: the journal keeps the first, and the
/// second completes the quorum on resume.
#[test]
fn a_crash_between_two_approvals_keeps_the_first() {
    let bench = Bench::new();
    bench.write(
        "live.yaml",
        r#"version: 1
name: live
steps:
  - id: gate
    approval: { prompt: "go?", count: 2 }
  - id: busy
    needs: []
    exec: { script: 'echo busy >> side; for i in $(seq 600); do [ -f go ] && break; sleep 0.1; done' }
  - id: after
    needs: [gate]
    exec: { script: 'echo after >> side' }
"#,
    );
    let child = bench.spawn(&["run", "live.yaml", "--run-id", "c1"]);
    bench.wait_for("side", "busy");
    let answers = |bench: &Bench| -> usize {
        bench.show_json("c1")["approvals"]
            .get(0)
            .and_then(|a| a["answers"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let asked = |bench: &Bench| -> bool {
        bench.show_json("c1")["approvals"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !asked(&bench) {
        assert!(Instant::now() < deadline, "the approval was never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(approve(&bench, "c1", "ana", "first").code, 0);
    // The live run journals the first answer, and goes on waiting for a second.
    while answers(&bench) < 1 {
        assert!(
            Instant::now() < deadline,
            "the first answer was never journaled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGKILL);
    let _ = finish(child);

    assert_eq!(approve(&bench, "c1", "bo", "second").code, 0);
    // The killed run's `busy` step is taken up again: let it end at once this time.
    bench.write("go", "");
    let resumed = bench.runbook(&["resume", "c1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let report = bench.show_json("c1");
    let approval = &report["approvals"][0];
    let by: Vec<&str> = approval["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["ana", "bo"], "{report:#}");
    assert_eq!(approval["approved"], true, "{report:#}");
    assert!(bench.read("side").contains("after"), "{}", resumed.stderr);
}

#[test]
fn an_approval_count_below_one_is_refused_at_its_line() {
    let out = Test::new()
        .write(
            "bad.yaml",
            "version: 1\nname: bad\nsteps:\n  - id: gate\n    approval: { prompt: go?, count: 0 }\n",
        )
        .args(["validate", "bad.yaml"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.yaml:5:")
            && out
                .stderr
                .contains("`approval.count` is 0: it must be between 1 and 100"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_shows_who_must_approve() {
    let out = Test::new()
        .write("quorum.yaml", QUORUM)
        .args(["plan", "quorum.yaml"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("approval (2 approvers, not the starter)"),
        "{}",
        out.stdout
    );
}
