//! The HTTP API through the real binary: start a run, read it, approve it, control it.

use crate::support::{OPERATOR_TOKEN, Running, VIEWER_TOKEN, WebServe};
use serde_json::{Value, json};
use std::time::Duration;

/// A runbook with typed inputs and a secret, in the serve's catalog.
const GREET: &str = r#"version: 1
name: greet
description: Says hello a number of times.
inputs:
  who: {type: string}
  times: {type: integer, default: 1}
secrets:
  token: {env: GREET_TOKEN}
steps:
  - id: hello
    exec: {command: ["sh", "-c", "echo hello {{inputs.who}} {{inputs.times}}"]}
"#;

pub fn serve_with(runbooks: &[(&str, &str)]) -> Running {
    let mut serve = WebServe::new()
        .config("schedules: []\nhttp:\n  users_file: users.yaml\n  runbooks: [runbooks]\n")
        .env("GREET_TOKEN", "s3cr3t-t0ken-value");
    for (name, text) in runbooks {
        serve = serve.write(&format!("runbooks/{name}"), text);
    }
    serve.start()
}

/// The runbook CLI on the serve's store.
pub fn cli(serve: &Running, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .env_remove("RUNBOOK_STORE")
        .env("XDG_STATE_HOME", serve.path(".state"))
        .env("NO_COLOR", "1")
        .current_dir(serve.dir.path())
        .output()
        .expect("run runbook")
}

pub fn run_json(serve: &Running, run_id: &str) -> Value {
    let shown = cli(serve, &["runs", "show", run_id, "--format", "json"]);
    serde_json::from_slice(&shown.stdout).unwrap_or(Value::Null)
}

#[test]
fn a_run_is_started_with_inputs_checked_as_the_cli_checks_them() {
    let serve = serve_with(&[("greet.yaml", GREET)]);
    let listed = serve.get("/api/runbooks", Some(VIEWER_TOKEN));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let greet = &listed.json()[0];
    assert_eq!(greet["name"], "greet");
    assert_eq!(greet["inputs"][0]["name"], "who");
    assert_eq!(greet["inputs"][0]["required"], true);
    assert_eq!(greet["inputs"][1]["type"], "integer");
    assert_eq!(greet["secrets"], json!(["token"]));

    let wrong = serve.post_json(
        "/api/runs",
        Some(OPERATOR_TOKEN),
        &json!({"runbook": "greet", "inputs": {"times": "ten", "token": "x"}}),
    );
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let fields = wrong.json()["fields"].clone();
    let field = |name: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("no problem about {name}: {fields}"))["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        field("times"),
        "input `times` is an integer: `ten` is not an integer"
    );
    assert!(
        field("who").contains("missing required input `who`"),
        "{fields}"
    );
    assert!(
        field("token").contains("is a secret of the runbook"),
        "{fields}"
    );

    let unknown = serve.post_json(
        "/api/runs",
        Some(OPERATOR_TOKEN),
        &json!({"runbook": "../../etc/passwd", "inputs": {}}),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let viewer = serve.post_json(
        "/api/runs",
        Some(VIEWER_TOKEN),
        &json!({"runbook": "greet", "inputs": {"who": "ops"}}),
    );
    assert_eq!(viewer.status, 403, "{}", viewer.body);

    let started = serve.post_json(
        "/api/runs",
        Some(OPERATOR_TOKEN),
        &json!({"runbook": "greet", "inputs": {"who": "ops", "times": "3"}}),
    );
    assert_eq!(started.status, 201, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    serve.wait_for("the run to succeed", Duration::from_secs(30), || {
        run_json(&serve, &run_id)["status"] == "succeeded"
    });
    let report = run_json(&serve, &run_id);
    assert_eq!(report["started_by"], "otto");
    assert_eq!(report["inputs"], json!({"who": "ops", "times": 3}));
}
