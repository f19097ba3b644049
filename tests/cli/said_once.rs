//! Small things a person reads: each thing said once, timestamps of one width, steps listed
//! in the order they ran, and a word of success from `validate` on a terminal.

use crate::durable::Bench;
use crate::support::Test;
use serde_json::Value;

/// The progress lines of `text` and its last line, with `in 12ms` (which varies) as `in T`.
fn progress_lines(text: &str) -> String {
    let marks = ["▶", "↻", "✓", "✗", "⊘", "–", "interrupted:"];
    text.lines()
        .filter(|line| {
            marks.iter().any(|mark| line.starts_with(mark))
                || line.starts_with("run ") && !line.ends_with("started")
        })
        .map(|line| match line.split_once(" in ") {
            Some((head, rest)) => {
                let after = rest.find(':').map_or("", |i| &rest[i..]);
                format!("{head} in T{after}")
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_failed_step_with_one_attempt_says_its_error_once() {
    let output = Test::new()
        .write(
            "fail.yaml",
            "version: 1\nname: fail\nsteps:\n  - id: only\n    exec: { script: 'echo broken >&2; exit 3' }\n  - id: retried\n    needs: []\n    retry: { attempts: 2, delay: 10ms }\n    exec: { script: 'echo again >&2; exit 4' }\n    fallback:\n      exec: { script: 'echo fell >&2; exit 5' }\n",
        )
        .args(["run", "fail.yaml", "--run-id", "f1", "--max-parallel", "1"])
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert_eq!(
        output
            .stderr
            .matches("script exited with status 3: broken")
            .count(),
        1,
        "{}",
        output.stderr
    );
    // A retried attempt, and the action's last failure before its fallback, still show.
    assert!(
        output
            .stderr
            .contains("retried attempt 1 failed: script exited with status 4: again; retrying"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("retried attempt 2 failed: script exited with status 4: again\n"),
        "{}",
        output.stderr
    );
    insta::assert_snapshot!(progress_lines(&output.stderr));
}

#[test]
fn an_interrupted_run_says_interrupted_once_and_a_cancelled_step_says_cancelled_once() {
    let bench = Bench::new();
    bench.write(
        "slow.yaml",
        "version: 1\nname: slow\nsteps:\n  - id: slow\n    exec: { script: 'echo started > side; sleep 30' }\n",
    );
    let stderr = bench.run_until_interrupted(&["run", "slow.yaml", "--run-id", "slow-1"]);
    assert!(stderr.contains("\nrun slow-1 interrupted\n"), "{stderr}");
    assert!(!stderr.contains("(interrupted)"), "{stderr}");
    assert!(!stderr.contains(": cancelled"), "{stderr}");
    insta::assert_snapshot!(progress_lines(&stderr));
}

#[test]
fn timestamps_have_six_fractional_digits_everywhere() {
    let bench = Bench::new();
    bench.write(
        "two.yaml",
        "version: 1\nname: two\nsteps:\n  - id: a\n    exec: { script: 'true' }\n  - id: b\n    exec: { script: 'true' }\n",
    );
    let run = bench.runbook(&["run", "two.yaml", "--run-id", "t1", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shape = |at: &str| {
        at.len() == "2026-11-21T06:39:52.402000Z".len()
            && at.as_bytes()[19] == b'.'
            && at.ends_with('Z')
    };
    for line in run.stdout.lines() {
        let event: Value = serde_json::from_str(line).expect("a JSON event");
        let at = event["at"].as_str().expect("at");
        assert!(shape(at), "{at}");
    }
    let report = bench.show_json("t1");
    for at in [
        &report["created_at"],
        &report["ended_at"],
        &report["steps"][0]["started_at"],
        &report["steps"][1]["ended_at"],
    ] {
        let at = at.as_str().expect("a timestamp");
        assert!(shape(at), "{at} in {report:#}");
    }
}

#[test]
fn after_a_resume_runs_show_lists_steps_in_the_order_they_ran() {
    let bench = Bench::new();
    bench.write(
        "park.yaml",
        r#"version: 1
name: park
steps:
  - id: a
    exec: { script: 'if [ -e side ]; then exit 0; fi; echo started > side; sleep 30' }
  - id: b
    exec: { script: 'true' }
finally:
  - id: report
    exec: { script: 'true' }
"#,
    );
    bench.run_until_interrupted(&["run", "park.yaml", "--run-id", "p1"]);
    let resumed = bench.runbook(&["resume", "p1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let report = bench.show_json("p1");
    let order: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| step["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, ["a", "b", "report"], "{report:#}");
}

#[test]
fn validate_says_so_on_a_terminal_and_stays_quiet_in_a_pipe() {
    let test = Test::new().write(
        "ok.yaml",
        "version: 1\nname: ok\nsteps:\n  - id: a\n    exec: { script: 'true' }\n",
    );
    let dir = test.dir().to_owned();
    let piped = test.args(["validate", "ok.yaml"]).run();
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(
        piped.stderr, "",
        "silent off a terminal: scripts read the exit code"
    );
    // `script` gives the command a terminal of its own.
    let on_terminal = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} validate ok.yaml",
            env!("CARGO_BIN_EXE_runbook")
        ))
        .arg("/dev/null")
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run script(1)");
    let shown = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(on_terminal.status.success(), "{shown}");
    assert_eq!(shown.trim_end(), "ok.yaml is valid");
}
