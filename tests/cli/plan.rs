use crate::support::Test;

const RUNBOOK: &str = r#"version: 1
name: upgrade
inputs:
  flink_url: { type: string, default: "http://127.0.0.1:8081" }
  jobs: { type: array }
  dry_run: { type: boolean, default: false }
  parallelism: { type: integer, default: 2 }
secrets:
  token: { env: FLINK_TOKEN }
steps:
  - id: overview
    http:
      url: "{{inputs.flink_url}}/jobs/overview"
      auth: { bearer: "{{secrets.token}}" }
    outputs:
      running: '[.body.jobs[] | select(.state == "RUNNING") | .jid]'
  - id: savepoint
    for_each: '.steps.overview.outputs.running'
    exec: { command: [echo, "savepoint {{item}} p={{inputs.parallelism}}"] }
    fallback:
      exec: { command: [echo, "checkpoint {{item}}"] }
  - id: restart
    needs: [overview]
    when: '.inputs.dry_run | not'
    exec: { command: [echo, "{{inputs.jobs}}"] }
finally:
  - id: report
    sleep: 1s
"#;

fn plan(args: &[&str]) -> crate::support::Output {
    Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .args(["plan", "upgrade.yaml"])
        .args(args.iter().copied())
        .run()
}

#[test]
fn plan_groups_stages_and_renders_known_values() {
    let output = plan(&["--input", r#"jobs=["a","b"]"#]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    insta::assert_snapshot!(output.stdout);
}

#[test]
fn plan_json_is_for_tools() {
    let output = plan(&[
        "--input",
        r#"jobs=["a"]"#,
        "--input",
        "dry_run=true",
        "--format",
        "json",
    ]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let plan: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(plan["inputs"]["jobs"], serde_json::json!(["a"]));
    assert_eq!(plan["inputs"]["dry_run"], serde_json::json!(true));
    let stages = plan["stages"].as_array().unwrap();
    assert_eq!(
        stages.len(),
        3,
        "overview, then savepoint and restart in parallel, then finally"
    );
    let second: Vec<&str> = stages[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(second, ["savepoint", "restart"]);
    let restart = &stages[1][1];
    assert_eq!(
        restart["when"]["decided"],
        serde_json::json!(false),
        "dry_run=true skips restart"
    );
    let overview = &stages[0][0];
    assert_eq!(
        overview["action"]["url"],
        "http://127.0.0.1:8081/jobs/overview"
    );
    assert_eq!(
        overview["known_at_run_time"],
        serde_json::json!(["secrets.token"])
    );
    assert!(!output.stdout.contains("FLINK_TOKEN"));
}

#[test]
fn secrets_are_never_rendered_in_a_plan() {
    let output = Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .args(["plan", "upgrade.yaml", "--input", "jobs=[]"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.contains("secrets.token"), "{}", output.stdout);
}

#[test]
fn a_missing_required_input_is_named() {
    let output = plan(&[]);
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("missing required input `jobs` (array)"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_wrong_value_names_the_input_and_its_type() {
    let output = plan(&["--input", "jobs=a,b", "--input", "parallelism=two"]);
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("input `jobs` is an array: `a,b` is not a JSON array; for example"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("input `parallelism` is an integer: `two` is not an integer"),
        "{}",
        output.stderr
    );
}

#[test]
fn an_unknown_input_gets_a_suggestion() {
    let output = plan(&["--input", "jobs=[]", "--input", "dryrun=true"]);
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("unknown input `dryrun`"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("did you mean `dry_run`?"),
        "{}",
        output.stderr
    );
}

#[test]
fn inputs_file_is_read_and_command_line_values_win() {
    let output = Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .write("inputs.yaml", "jobs: [x, y]\nparallelism: 7\n")
        .args([
            "plan",
            "upgrade.yaml",
            "--inputs-file",
            "inputs.yaml",
            "--input",
            "parallelism=9",
            "--format",
            "json",
        ])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let plan: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(plan["inputs"]["jobs"], serde_json::json!(["x", "y"]));
    assert_eq!(plan["inputs"]["parallelism"], serde_json::json!(9));
}

#[test]
fn inputs_file_with_a_wrong_type_is_refused() {
    let output = Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .write("inputs.json", r#"{"jobs": "a"}"#)
        .args(["plan", "upgrade.yaml", "--inputs-file", "inputs.json"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("input `jobs` is an array, but the inputs file gives a string"),
        "{}",
        output.stderr
    );
}

#[test]
fn plan_renders_the_message_of_an_assert_where_the_inputs_are_known() {
    let output = Test::new()
        .write(
            "check.yaml",
            r#"version: 1
name: check
inputs:
  cluster: { type: string }
  min_jobs: { type: integer, default: 2 }
steps:
  - id: enough
    assert:
      that: '.inputs.min_jobs > 0'
      message: "{{inputs.cluster}} needs at least {{inputs.min_jobs}} jobs"
  - id: later
    assert:
      that: '.steps.enough.status == "succeeded"'
      message: "enough ended {{steps.enough.status}} on {{inputs.cluster}}"
"#,
        )
        .args(["plan", "check.yaml", "--input", "cluster=prod-eu"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.contains("prod-eu needs at least 2 jobs"),
        "{}",
        output.stdout
    );
    insta::assert_snapshot!(output.stdout);
}

/// `plan` shows the retry and timeout each action will run with: its own, or the runbook's
/// `defaults` (replaced, never merged), the same resolution the executor uses.
#[test]
fn plan_shows_the_retry_and_timeout_that_will_apply() {
    let runbook = r#"version: 1
name: bounds
defaults:
  retry: { attempts: 3, delay: 1s, backoff: 2, max_delay: 10s }
  timeout: 30s
steps:
  - id: inherits
    exec: { command: [true] }
  - id: own
    exec: { command: [true] }
    retry: { attempts: 1 }
    timeout: 2m
    fallback:
      exec: { command: [true] }
      retry: { attempts: 5, delay: 500ms, jitter: true }
"#;
    let output = Test::new()
        .write("bounds.yaml", runbook)
        .args(["plan", "bounds.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    insta::assert_snapshot!(output.stdout);
    let output = Test::new()
        .write("bounds.yaml", runbook)
        .args(["plan", "bounds.yaml", "--format", "json"])
        .run();
    let plan: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let inherits = &plan["stages"][0][0];
    assert_eq!(
        inherits["retry"],
        "3 attempts, 1s apart (×2, at most 10s) (from defaults)"
    );
    assert_eq!(inherits["timeout"], "30s an attempt (from defaults)");
    let own = &plan["stages"][1][0];
    assert_eq!(own.get("retry"), None, "one attempt: no retry");
    assert_eq!(own["timeout"], "2m an attempt");
    assert_eq!(
        own["fallback"]["retry"],
        "5 attempts, 500ms apart (jittered)"
    );
    assert_eq!(own["fallback"]["timeout"], "30s an attempt (from defaults)");
}
