//! `runbook run` through the binary: scheduling, retries, fallback, polling, for_each, uses,
//! finally, deadline, signals and secrets. Order and overlap are read from the run's own
//! events, not from wall-clock timing.

use crate::events::{count, ended, position, process_is_gone, run_json};
use crate::support::Test;
use serde_json::Value;

#[test]
fn independent_steps_overlap_and_max_parallel_bounds_them() {
    let runbook = "version: 1\nname: par\nsteps:\n  - id: a\n    needs: []\n    sleep: 300ms\n  - id: b\n    needs: []\n    sleep: 300ms\n";
    let (output, events) = run_json(Test::new().write("par.yaml", runbook), "par.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    // Both started before either ended: they ran at the same time.
    let first_end = position(&events, "step_ended", "a").min(position(&events, "step_ended", "b"));
    assert!(position(&events, "step_started", "a") < first_end);
    assert!(position(&events, "step_started", "b") < first_end);

    let (output, events) = run_json(
        Test::new().write("par.yaml", runbook),
        "par.yaml",
        &["--max-parallel", "1"],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    let (first, second) =
        if position(&events, "step_started", "a") < position(&events, "step_started", "b") {
            ("a", "b")
        } else {
            ("b", "a")
        };
    assert!(
        position(&events, "step_ended", first) < position(&events, "step_started", second),
        "with --max-parallel 1 the second step starts after the first ended: {events:#?}"
    );
}

#[test]
fn needs_order_is_respected_and_skipped_steps_do_not_block() {
    let runbook = r#"version: 1
name: order
inputs:
  run_b: { type: boolean, default: false }
steps:
  - id: a
    exec: { command: [echo, a] }
  - id: b
    when: '.inputs.run_b'
    exec: { command: [echo, b] }
  - id: c
    needs: [a, b]
    exec: { command: [echo, c] }
"#;
    let (output, events) = run_json(Test::new().write("order.yaml", runbook), "order.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "b")["status"], "skipped");
    assert_eq!(ended(&events, "c")["status"], "succeeded");
    assert!(position(&events, "step_ended", "a") < position(&events, "step_started", "c"));
    assert!(position(&events, "step_ended", "b") < position(&events, "step_started", "c"));
}

#[test]
fn a_flaky_command_passes_on_its_third_attempt_with_backoff() {
    let runbook = r#"version: 1
name: flaky
steps:
  - id: flaky
    retry: { attempts: 4, delay: 100ms, backoff: 2.0 }
    exec:
      script: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
        [ $n -ge 3 ]
"#;
    let (output, events) = run_json(Test::new().write("flaky.yaml", runbook), "flaky.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "flaky")["attempts"], 3);
    let waits: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_attempt_failed")
        .map(|e| &e["retry_in_ms"])
        .collect();
    assert_eq!(waits, [100, 200], "delays follow the backoff");
    // The gap between attempts is at least the announced delay.
    let at = |i: usize| jiff_ms(&events[i]["at"]);
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "step_started")
        .map(|(i, _)| i)
        .collect();
    assert!(at(starts[1]) - at(starts[0]) >= 100);
    assert!(at(starts[2]) - at(starts[1]) >= 200);
}

fn jiff_ms(at: &Value) -> i64 {
    at.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .expect("an RFC 3339 timestamp")
}

#[test]
fn a_permanent_failure_runs_the_fallback_whose_outputs_dependents_read() {
    let runbook = r#"version: 1
name: fallback
steps:
  - id: savepoint
    retry: { attempts: 2, delay: 10ms }
    exec: { script: 'echo "savepoint failed" >&2; exit 1' }
    outputs: { location: '.stdout' }
    fallback:
      exec: { command: [printf, /checkpoints/chk-42] }
      outputs: { location: '.stdout' }
  - id: restore
    exec: { command: [echo, "restore from {{steps.savepoint.outputs.location}}"] }
    outputs: { said: '.stdout' }
finally:
  - id: report
    exec: { script: 'echo "{{run.status}}" > finally-ran' }
outputs:
  said: '.steps.restore.outputs.said'
"#;
    let (output, events) = run_json(
        Test::new().write("fallback.yaml", runbook),
        "fallback.yaml",
        &[],
    );
    let dir = output.dir();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let savepoint = ended(&events, "savepoint");
    assert_eq!(savepoint["via"], "fallback");
    assert_eq!(savepoint["attempts"], 3, "two attempts and the fallback");
    assert_eq!(
        ended(&events, "restore")["outputs"]["said"],
        "restore from /checkpoints/chk-42\n"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_ended");
    assert_eq!(
        last["outputs"]["said"],
        "restore from /checkpoints/chk-42\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("finally-ran"))
            .unwrap()
            .trim(),
        "succeeded",
        "finally sees how the run is ending"
    );
}

#[test]
fn a_failing_fallback_fails_the_run_and_finally_still_runs() {
    let runbook = r#"version: 1
name: fails
steps:
  - id: savepoint
    exec: { script: 'exit 1' }
    fallback:
      exec: { script: 'echo no checkpoint either >&2; exit 2' }
  - id: restore
    exec: { command: [echo, never] }
finally:
  - id: report
    exec: { script: 'echo "{{run.status}}" > finally-ran' }
"#;
    let (output, events) = run_json(Test::new().write("fails.yaml", runbook), "fails.yaml", &[]);
    let dir = output.dir();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert_eq!(ended(&events, "savepoint")["status"], "failed");
    assert!(
        ended(&events, "savepoint")["error"]
            .as_str()
            .unwrap()
            .contains("the fallback failed too")
    );
    assert!(
        !events.iter().any(|e| e["path"] == "restore"),
        "nothing new starts after a failure"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("finally-ran"))
            .unwrap()
            .trim(),
        "failed"
    );
    assert_eq!(events.last().unwrap()["status"], "failed");
}

#[test]
fn continue_on_failure_lets_dependents_run() {
    let runbook = "version: 1\nname: cont\nsteps:\n  - id: notify\n    continue_on_failure: true\n    exec: { script: 'exit 1' }\n  - id: after\n    exec: { command: [echo, ok] }\n";
    let (output, events) = run_json(Test::new().write("c.yaml", runbook), "c.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "notify")["status"], "failed");
    assert_eq!(ended(&events, "after")["status"], "succeeded");
}

#[test]
fn the_deadline_cancels_running_steps_runs_finally_and_fails_the_run() {
    let runbook = r#"version: 1
name: late
deadline: 500ms
steps:
  - id: long
    exec: { command: [sleep, "30"] }
finally:
  - id: report
    exec: { script: 'echo "{{run.status}}" > finally-ran' }
"#;
    let (output, events) = run_json(Test::new().write("late.yaml", runbook), "late.yaml", &[]);
    let dir = output.dir();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert_eq!(ended(&events, "long")["status"], "cancelled");
    assert_eq!(
        std::fs::read_to_string(dir.join("finally-ran"))
            .unwrap()
            .trim(),
        "failed",
        "finally sees the deadline failed the run"
    );
    let last = events.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["reason"], "deadline");
    assert!(
        last["duration_ms"].as_u64().unwrap() < 10_000,
        "the 30 s command was stopped"
    );
}

#[test]
fn an_attempt_that_times_out_is_retried() {
    let runbook = r#"version: 1
name: slow
steps:
  - id: slow
    timeout: 1s
    retry: { attempts: 2, delay: 10ms }
    exec:
      script: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
        if [ $n -eq 1 ]; then sleep 30; fi
"#;
    let (output, events) = run_json(Test::new().write("slow.yaml", runbook), "slow.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let failed = &events[position(&events, "step_attempt_failed", "slow")];
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{failed}"
    );
    assert_eq!(ended(&events, "slow")["attempts"], 2);
}

#[test]
fn until_polls_the_action_until_the_condition_holds() {
    let runbook = r#"version: 1
name: poll
steps:
  - id: wait
    until: '.json.n >= 3'
    poll: { interval: 100ms, timeout: 10s }
    exec:
      script: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
        echo "{\"n\": $n}"
    outputs: { n: '.json.n' }
  - id: never
    until: 'false'
    poll: { interval: 100ms, timeout: 200ms }
    continue_on_failure: true
    exec: { command: [echo, '{}'] }
"#;
    let (output, events) = run_json(Test::new().write("poll.yaml", runbook), "poll.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "wait")["outputs"]["n"], 3);
    let polls = events
        .iter()
        .filter(|e| e["event"] == "step_polling" && e["path"] == "wait")
        .count();
    assert_eq!(polls, 2);
    let never = ended(&events, "never");
    assert_eq!(never["status"], "failed");
    assert!(
        never["error"]
            .as_str()
            .unwrap()
            .contains("`until` did not hold within 200ms"),
        "{never}"
    );
}

#[test]
fn for_each_runs_one_instance_per_item_each_with_its_own_retries_and_key() {
    let runbook = r#"version: 1
name: each
inputs:
  jobs: { type: array, default: [a, b, c] }
steps:
  - id: snapshot
    for_each: '.inputs.jobs'
    max_parallel: 2
    retry: { attempts: 2, delay: 10ms }
    exec:
      script: |
        echo {{step.key}} >> keys-{{item}}
        if [ {{item}} = b ] && [ ! -f b-failed ]; then touch b-failed; exit 1; fi
        echo "{\"job\": \"{{item}}\", \"index\": {{index}}}"
    outputs: { job: '.json.job', index: '.json.index' }
outputs:
  jobs: '[.steps.snapshot.items[].outputs.job]'
"#;
    let (output, events) = run_json(Test::new().write("each.yaml", runbook), "each.yaml", &[]);
    let dir = output.dir();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(
        ended(&events, "snapshot[1]")["attempts"],
        2,
        "item b retried on its own"
    );
    assert_eq!(ended(&events, "snapshot[0]")["attempts"], 1);
    assert_eq!(
        events.last().unwrap()["outputs"]["jobs"],
        serde_json::json!(["a", "b", "c"])
    );
    let keys_b: Vec<String> = std::fs::read_to_string(dir.join("keys-b"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys_b.len(), 2);
    assert_eq!(keys_b[0], keys_b[1], "step.key is stable across retries");
    assert!(
        keys_b[0].len() == 32
            && keys_b[0]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let key_a = std::fs::read_to_string(dir.join("keys-a")).unwrap();
    assert_ne!(key_a.trim(), keys_b[0], "each item has its own key");
}

#[test]
fn uses_runs_another_runbook_as_one_step_with_nested_paths_and_its_outputs() {
    let main = r#"version: 1
name: main
steps:
  - id: snapshot
    for_each: '["x", "y"]'
    uses: lib/snap.yaml
    with: { job: "{{item}}" }
  - id: show
    exec: { command: [echo, "items: {{steps.snapshot.items}}"] }
outputs:
  paths: '[.steps.snapshot.items[].outputs.path]'
"#;
    let lib = r#"version: 1
name: snap
inputs:
  job: { type: string }
steps:
  - id: trigger
    exec: { command: [printf, "/savepoints/{{inputs.job}}"] }
    outputs: { path: '.stdout' }
outputs:
  path: '.steps.trigger.outputs.path'
"#;
    let (output, events) = run_json(
        Test::new()
            .write("main.yaml", main)
            .write("lib/snap.yaml", lib),
        "main.yaml",
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(
        ended(&events, "snapshot[1]/trigger")["outputs"]["path"],
        "/savepoints/y"
    );
    assert_eq!(
        ended(&events, "snapshot[0]")["outputs"]["path"],
        "/savepoints/x"
    );
    assert_eq!(
        events.last().unwrap()["outputs"]["paths"],
        serde_json::json!(["/savepoints/x", "/savepoints/y"])
    );
}

#[test]
fn secrets_are_redacted_from_events_outputs_errors_and_the_terminal() {
    let runbook = r#"version: 1
name: secret
secrets:
  token: { env: RUNBOOK_TEST_TOKEN }
steps:
  - id: leak
    exec: { command: [echo, "token={{secrets.token}}"] }
    outputs: { said: '.stdout' }
  - id: fail
    continue_on_failure: true
    exec: { script: 'echo "bad token {{secrets.token}}" >&2; exit 1' }
outputs:
  said: '.steps.leak.outputs.said'
"#;
    for format in ["json", "human"] {
        let output = Test::new()
            .write("secret.yaml", runbook)
            .env("RUNBOOK_TEST_TOKEN", "tok-9f8e7d")
            .args(["run", "secret.yaml", "--output", format])
            .run();
        assert_eq!(output.code, 0, "{}", output.stderr);
        for (stream, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            assert!(
                !text.contains("tok-9f8e7d"),
                "{format} {stream} leaks the secret:\n{text}"
            );
        }
        assert!(
            output.stdout.contains("token=***"),
            "{format}: outputs are masked, not dropped:\n{}",
            output.stdout
        );
        if format == "json" {
            assert!(
                output.stdout.contains("bad token ***"),
                "errors are masked:\n{}",
                output.stdout
            );
        } else {
            assert!(
                output.stderr.contains("bad token ***"),
                "the terminal is masked:\n{}",
                output.stderr
            );
        }
    }
}

#[test]
fn a_missing_secret_is_refused_before_anything_runs() {
    let runbook = "version: 1\nname: s\nsecrets:\n  token: { env: RUNBOOK_TEST_UNSET_VARIABLE }\nsteps:\n  - id: a\n    exec: { script: 'touch ran' }\n";
    let output = Test::new()
        .write("s.yaml", runbook)
        .args(["run", "s.yaml"])
        .run();
    let dir = output.dir();
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("environment variable RUNBOOK_TEST_UNSET_VARIABLE, which is not set"),
        "{}",
        output.stderr
    );
    assert!(!dir.join("ran").exists());
}

#[test]
fn an_invalid_runbook_does_not_run() {
    let output = Test::new()
        .write("bad.yaml", "version: 1\nname: bad\nsteps:\n  - id: a\n    exec: { script: 'touch ran' }\n    neds: []\n")
        .args(["run", "bad.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(output.stderr.contains("unknown key `neds`"));
}

#[test]
fn a_template_error_at_run_time_names_the_step_and_the_missing_value() {
    let runbook = r#"version: 1
name: tpl
steps:
  - id: a
    exec: { command: [echo, '{"x": "text"}'] }
    outputs: { x: '.json.x' }
  - id: b
    exec: { command: [echo, "{{steps.a.outputs.x.deeper}}"] }
"#;
    let (output, events) = run_json(Test::new().write("tpl.yaml", runbook), "tpl.yaml", &[]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    let error = ended(&events, "b")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("steps.a.outputs.x.deeper"), "{error}");
}

#[test]
fn ctrl_c_cancels_running_steps_runs_finally_and_leaves_the_run_resumable() {
    use std::io::{BufRead, BufReader};
    let runbook = r#"version: 1
name: interrupt
steps:
  - id: long
    exec: { script: 'echo $$ > pid; sleep 30' }
finally:
  - id: report
    exec: { script: 'echo "{{run.status}}" > finally-ran' }
"#;
    let test = Test::new().write("int.yaml", runbook);
    let dir = test.dir().to_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "int.yaml", "--output", "json"])
        .current_dir(&dir)
        // The test's own store, never the user's.
        .env_remove("RUNBOOK_STORE")
        .env("XDG_STATE_HOME", dir.join(".state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until the step runs and its shell wrote its pid.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"step_started\"") {
            break;
        }
    }
    let pid_file = dir.join("pid");
    // Up to 20 s: a loaded machine can take seconds to start the shell.
    for _ in 0..1000 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let shell_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "an interrupted run exits 3");
    assert_eq!(ended(&rest, "long")["status"], "cancelled");
    assert_eq!(rest.last().unwrap()["status"], "interrupted");
    assert_eq!(
        std::fs::read_to_string(dir.join("finally-ran"))
            .unwrap()
            .trim(),
        "interrupted"
    );
    assert!(
        process_is_gone(shell_pid as u32),
        "the step's process was killed"
    );
}

#[test]
fn env_values_may_be_numbers_and_booleans() {
    let runbook = "version: 1\nname: envs\nsteps:\n  - id: a\n    exec:\n      env: { PORT: 8080, DEBUG: true }\n      script: echo \"$PORT $DEBUG\"\n    outputs: { said: .stdout }\n";
    let (output, events) = run_json(Test::new().write("envs.yaml", runbook), "envs.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "a")["outputs"]["said"], "8080 true\n");
}

#[test]
fn a_template_may_name_a_skipped_step_in_the_branch_it_does_not_take() {
    let runbook = r#"version: 1
name: branches
inputs: { stop: { type: boolean, default: false } }
steps:
  - id: a
    when: '.inputs.stop | not'
    exec: { command: [echo, a] }
    outputs: { r: '"ra"' }
  - id: b
    needs: []
    when: '.inputs.stop'
    exec: { command: [echo, b] }
    outputs: { r: '"rb"' }
  - id: c
    needs: [a, b]
    exec: { command: [echo, "{{#if inputs.stop}}{{steps.b.outputs.r}}{{else}}{{steps.a.outputs.r}}{{/if}}"] }
    outputs: { said: '.stdout | rtrimstr("\n")' }
  - id: d
    needs: [c]
    exec: { command: [echo, "{{steps.a.outputs.r}}"] }
    continue_on_failure: true
outputs:
  said: .steps.c.outputs.said
"#;
    let test = Test::new().write("branches.yaml", runbook);
    let (output, events) = run_json(test, "branches.yaml", &["--input", "stop=true"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "c")["outputs"]["said"], "rb");
    // Outside a branch, a skipped step's outputs are still an error.
    let error = ended(&events, "d")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("steps.a.outputs.r"), "{error}");
}

#[test]
fn finally_sees_succeeded_when_a_called_runbook_failed_but_the_fallback_recovered() {
    let test = Test::new()
        .write(
            "lib/fails.yaml",
            "version: 1\nname: fails\nsteps:\n  - id: boom\n    exec: { command: [\"false\"] }\n",
        )
        .write(
            "main.yaml",
            r#"version: 1
name: main
steps:
  - id: s
    uses: lib/fails.yaml
    fallback:
      exec: { command: [echo, recovered] }
finally:
  - id: report
    exec: { command: [echo, "{{run.status}}"] }
    outputs: { status: '.stdout | rtrimstr("\n")' }
outputs:
  seen: .steps.report.outputs.status
"#,
        );
    let (output, events) = run_json(test, "main.yaml", &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(ended(&events, "s")["via"], "fallback");
    assert_eq!(ended(&events, "report")["outputs"]["status"], "succeeded");
}

#[test]
fn an_output_larger_than_4_mib_fails_its_step_naming_the_step_and_the_limit() {
    let runbook = r#"version: 1
name: big
steps:
  - id: big
    exec: { command: ["true"] }
    outputs: { all: '"x" * 5000000' }
"#;
    let (output, events) = run_json(Test::new().write("big.yaml", runbook), "big.yaml", &[]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    let big = ended(&events, "big");
    assert_eq!(big["status"], "failed");
    assert_eq!(
        big["error"],
        "output `all` of step `big`: it takes more than 4 MiB as JSON, the most an output may hold"
    );
    assert!(output.stdout.len() < 100_000, "the value was never written");
}

#[test]
fn a_runbook_output_larger_than_4_mib_fails_the_run() {
    let runbook = r#"version: 1
name: big
steps:
  - id: a
    exec: { command: ["true"] }
outputs:
  all: '[range(1000000)]'
"#;
    let output = Test::new()
        .write("big.yaml", runbook)
        .args(["run", "big.yaml"])
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stderr.contains(
            "runbook output `all`: it takes more than 4 MiB as JSON, the most an output may hold"
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn a_for_each_of_more_than_500000_items_fails_its_step_before_any_item_runs() {
    let runbook = r#"version: 1
name: many
steps:
  - id: many
    for_each: '[range(500001)]'
    exec: { script: 'echo {{item}} >> side' }
"#;
    let (output, events) = run_json(Test::new().write("many.yaml", runbook), "many.yaml", &[]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    let many = ended(&events, "many");
    assert_eq!(
        many["error"],
        "`for_each` of step `many` gave 500001 items, more than 500000, the most a for_each may \
         expand into; split the work (a `uses` step can take a batch)"
    );
    assert_eq!(count(&events, "step_expanded", "many"), 0);
    assert!(!output.dir().join("side").exists(), "no item ran");
}

/// Who started a run is journaled with it and shown by every report: `$USER@host`.
#[test]
fn who_started_a_run_is_journaled_and_shown() {
    let bench = crate::durable::Bench::new();
    bench.write(
        "hello.yaml",
        "version: 1\nname: hello\nsteps:\n  - id: hi\n    exec: {command: [\"true\"]}\n",
    );
    let run = bench.runbook(&["run", "hello.yaml", "--run-id", "who"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let host = std::process::Command::new("hostname")
        .output()
        .expect("hostname");
    let host = String::from_utf8_lossy(&host.stdout).trim().to_owned();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let expected = format!("{user}@{host}");
    assert_eq!(bench.show_json("who")["started_by"], expected.as_str());
    for (format, shown) in [
        ("text", format!(" by {expected}")),
        ("markdown", format!("| Started by | {expected} |")),
        ("html", format!("<th>Started by</th><td>{expected}</td>")),
    ] {
        let show = bench.runbook(&["runs", "show", "who", "--format", format]);
        assert!(show.stdout.contains(&shown), "{format}: {}", show.stdout);
    }
}
