//! A step's `notice` through the real binary: rendered when the step succeeds or fails (not
//! when it is skipped), shown at the end of the run in the text summary, in `--output json`
//! and in `runs show` (text, JSON, Markdown), masked like everything else, and kept in the
//! journal so that a resumed run still shows what the steps before the resume said.

use crate::durable::{Bench, finish, signal};
use crate::events::events;
use crate::support::Test;
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-notice-value";

const NOTICES: &str = r#"version: 1
name: notices
secrets:
  token: { env: RUNBOOK_TEST_TOKEN }
steps:
  - id: read
    exec: { command: [echo, "orders"] }
    outputs: { job: '.stdout | rtrimstr("\n")' }
    notice: "{{step.outputs.job}} was read ({{step.status}}) with {{secrets.token}}"
  - id: skipped
    needs: [read]
    when: 'false'
    exec: { command: [echo, "never"] }
    notice: "a skipped step says nothing"
  - id: restart
    needs: [read, skipped]
    exec: { script: 'echo "restart refused" >&2; exit 3' }
    notice: |
      restart {{step.status}}: {{step.error}}
      restore it with: flink run -s /snapshots/{{steps.read.outputs.job}}
  - id: after
    needs: [restart]
    exec: { command: [echo, "after"] }
    notice: "a step that never ran says nothing"
finally:
  - id: instructions
    when: '.steps.restart.status == "failed"'
    assert: { that: 'true' }
    notice: "run again with --input job={{steps.read.outputs.job}}"
"#;

fn bench_with(runbook: &str) -> Bench {
    let bench = Bench::new();
    bench.write("notices.yaml", runbook);
    bench
}

fn run(bench: &Bench, args: &[&str]) -> crate::support::Output {
    Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .env("RUNBOOK_TEST_TOKEN", SECRET)
        .args(args.iter().copied())
        .run()
}

/// What follows the summary's `Notices` heading.
fn notices_block(stderr: &str) -> &str {
    stderr
        .split("\nNotices\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Notices block: {stderr}"))
}

#[test]
fn the_summary_ends_with_the_notices_of_the_steps_that_succeeded_or_failed() {
    let bench = bench_with(NOTICES);
    let output = run(&bench, &["run", "notices.yaml", "--run-id", "n1"]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    let notices = notices_block(&output.stderr);
    assert_eq!(
        notices,
        "  read:\n    orders was read (succeeded) with ***\n\
         \x20 restart:\n    restart failed: script exited with status 3: restart refused\n\
         \x20   restore it with: flink run -s /snapshots/orders\n\
         \x20 instructions:\n    run again with --input job=orders\n\
         \nrun n1 failed (step `restart` failed)\n\n",
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains(SECRET), "{}", output.stderr);
}

#[test]
fn json_output_carries_each_notice_as_it_is_given_and_all_of_them_at_the_end() {
    let bench = bench_with(NOTICES);
    let output = run(&bench, &["run", "notices.yaml", "--output", "json"]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    let events = events(&output.stdout);
    let given: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_notice")
        .map(|e| &e["path"])
        .collect();
    assert_eq!(
        given,
        [&json!("read"), &json!("restart"), &json!("instructions")]
    );
    let ended = events.last().expect("events");
    assert_eq!(ended["event"], "run_ended");
    assert_eq!(
        ended["notices"],
        json!([
            {"step": "read", "text": "orders was read (succeeded) with ***"},
            {"step": "restart", "text": "restart failed: script exited with status 3: restart refused\nrestore it with: flink run -s /snapshots/orders\n"},
            {"step": "instructions", "text": "run again with --input job=orders"},
        ])
    );
    assert!(!output.stdout.contains(SECRET));
}

#[test]
fn runs_show_has_the_notices_in_text_json_and_markdown() {
    let bench = bench_with(NOTICES);
    let output = run(&bench, &["run", "notices.yaml", "--run-id", "n1"]);
    assert_eq!(output.code, 1, "{}", output.stderr);

    let report = bench.show_json("n1");
    assert_eq!(report["notices"][1]["step"], "restart");
    assert_eq!(
        report["notices"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );

    let text = run(&bench, &["runs", "show", "n1"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains("\nNotices\n  read:\n    orders was read (succeeded) with ***\n"),
        "{}",
        text.stdout
    );

    let markdown = run(&bench, &["runs", "show", "n1", "--format", "markdown"]);
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    assert!(
        markdown.stdout.contains(
            "## Notices\n\n`read`:\n\n```\norders was read (succeeded) with ***\n```\n\n`restart`:\n\n```\nrestart failed: script exited with status 3: restart refused\nrestore it with: flink run -s /snapshots/orders\n```\n"
        ),
        "{}",
        markdown.stdout
    );
    for shown in [&text.stdout, &markdown.stdout, &report.to_string()] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("a skipped step says nothing"), "{shown}");
        assert!(!shown.contains("never ran"), "{shown}");
    }
    let store = std::fs::read(bench.db()).expect("the store");
    assert!(
        !store.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the store holds the secret"
    );
}

#[test]
fn a_resumed_run_still_shows_the_notices_given_before_it_stopped() {
    let bench = bench_with(
        r#"version: 1
name: resumed-notices
steps:
  - id: stop
    exec: { command: [echo, "done"] }
    notice: "stopped: snapshot /snapshots/chk-{{step.key}}"
  - id: wait
    needs: [stop]
    exec:
      script: |
        echo started >> side
        if [ ! -e again ]; then touch again; sleep 30; fi
    notice: "waited"
"#,
    );
    let child = bench.spawn(&["run", "notices.yaml", "--run-id", "r1"]);
    bench.wait_for("side", "started");
    signal(&child, libc::SIGKILL);
    let (code, _, _) = finish(child);
    assert_eq!(code, -1, "killed by the signal");

    let resumed = run(&bench, &["resume", "r1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let notices = notices_block(&resumed.stderr);
    assert!(
        notices.starts_with("  stop:\n    stopped: snapshot /snapshots/chk-")
            && notices.contains("  wait:\n    waited\n"),
        "{}",
        resumed.stderr
    );
    let report = bench.show_json("r1");
    let steps: Vec<&Value> = report["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .map(|n| &n["step"])
        .collect();
    assert_eq!(steps, [&json!("stop"), &json!("wait")], "{report:#}");
}

#[test]
fn validate_checks_what_a_notice_reads() {
    let output = Test::new()
        .write(
            "bad.yaml",
            r#"version: 1
name: bad-notice
steps:
  - id: a
    exec: { command: [echo, "a"] }
    notice: "{{step.outputs.x}} and {{step.nothing}}"
  - id: b
    needs: []
    exec: { command: [echo, "{{step.status}}"] }
    notice: "{{steps.a.status}} {{inputs.missing}}"
"#,
        )
        .args(["validate", "bad.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    for expected in [
        "bad.yaml:6:",
        "`step.nothing` does not exist",
        "`step.status` does not exist",
        "step `b` reads `steps.a` but does not depend on `a`",
        "`inputs.missing` names an input this runbook does not declare",
    ] {
        assert!(
            output.stderr.contains(expected),
            "{expected}: {}",
            output.stderr
        );
    }
    assert!(
        !output.stderr.contains("`step.outputs` does not exist"),
        "a notice reads its step's outputs: {}",
        output.stderr
    );
}
