//! The `record` action: values a run adds to a named record stay in the store for every later
//! run, which can check them (a snapshot restored once is never restored again).

use crate::support::Test;
use serde_json::Value;

/// Restores a snapshot once, ever: refuses one any earlier run recorded, records it otherwise.
const ONCE: &str = r#"version: 1
name: once
inputs:
  snapshot: { type: string }
steps:
  - id: used
    record: { name: restored-snapshots }
    outputs:
      by: '[.entries[] | select(.value == $ctx.inputs.snapshot)] | first'
  - id: never_used
    assert:
      that: '.steps.used.outputs.by == null'
      message: "{{inputs.snapshot}} was already restored by run {{steps.used.outputs.by.run_id}}"
  - id: remember
    needs: [never_used]
    record:
      name: restored-snapshots
      add: ["{{inputs.snapshot}}"]
    outputs:
      added: '.added'
      values: '.values'
outputs:
  added: '.steps.remember.outputs.added'
  values: '.steps.remember.outputs.values'
"#;

#[test]
fn a_value_recorded_by_one_run_is_seen_by_the_next() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("once.yaml"), ONCE).expect("write the runbook");
    let store = format!("sqlite:{}", dir.path().join("runs.db").display());
    let run = |run_id: &str, snapshot: &str| {
        Test::new()
            .current_dir(dir.path())
            .args(["run", "once.yaml", "--run-id", run_id])
            .args(["--input", &format!("snapshot={snapshot}")])
            .args(["--store", store.as_str()])
            .run()
    };

    let first = run("first", "s3/savepoint-1");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let outputs: Value = serde_json::from_str(&first.stdout).expect("outputs");
    assert_eq!(outputs["added"], serde_json::json!(["s3/savepoint-1"]));

    // Another snapshot: restored, and both are in the record.
    let other = run("other", "s3/savepoint-2");
    assert_eq!(other.code, 0, "{}", other.stderr);
    let outputs: Value = serde_json::from_str(&other.stdout).expect("outputs");
    assert_eq!(
        outputs["values"],
        serde_json::json!(["s3/savepoint-1", "s3/savepoint-2"])
    );

    // The first one again, in a later run: refused, naming the run that restored it.
    let again = run("again", "s3/savepoint-1");
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("s3/savepoint-1 was already restored by run first"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_secret_is_never_recorded() {
    let runbook = r#"version: 1
name: secret-record
secrets:
  token: { env: RECORD_TEST_TOKEN }
steps:
  - id: remember
    record: { name: tokens, add: ["token {{secrets.token}}"] }
"#;
    let out = Test::new()
        .write("secret.yaml", runbook)
        .env("RECORD_TEST_TOKEN", "hunter2-abcdef")
        .args(["run", "secret.yaml"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("must not contain a secret"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2-abcdef"), "{}", out.stderr);
}
