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
    outputs: {said: .stdout}
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

/// Starts a run of `runbook` through the API as the operator; answers its id.
pub fn start(serve: &Running, runbook: &str, inputs: Value) -> String {
    let started = serve.post_json(
        "/api/runs",
        Some(OPERATOR_TOKEN),
        &json!({"runbook": runbook, "inputs": inputs}),
    );
    assert_eq!(started.status, 201, "{}", started.body);
    started.json()["run_id"].as_str().unwrap().to_owned()
}

/// The run as `GET /api/runs/{id}` gives it.
pub fn run_page(serve: &Running, run_id: &str) -> Value {
    let page = serve.get(&format!("/api/runs/{run_id}"), Some(VIEWER_TOKEN));
    assert_eq!(page.status, 200, "{}", page.body);
    page.json()
}

/// Waits until the run's status (as the API shows it) is `status`.
pub fn wait_status(serve: &Running, run_id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    serve.wait_for(
        &format!("run {run_id} to be {status}"),
        Duration::from_secs(40),
        || {
            last = run_page(serve, run_id);
            last["summary"]["status"] == status
        },
    );
    last
}

#[test]
fn a_started_run_is_followed_through_the_api_to_its_end() {
    let serve = serve_with(&[("greet.yaml", GREET)]);
    let run_id = start(&serve, "greet", json!({"who": "night shift", "times": 2}));
    let page = wait_status(&serve, &run_id, "succeeded");
    assert_eq!(page["summary"]["runbook"], "greet");
    assert_eq!(page["report"]["started_by"], "otto");
    let hello = &page["report"]["steps"][0];
    assert_eq!(hello["path"], "hello");
    assert_eq!(hello["status"], "succeeded");
    assert_eq!(hello["attempts"], 1);
    assert!(hello["duration_ms"].is_u64(), "{hello}");
    assert_eq!(hello["outputs"]["said"], "hello night shift 2\n");
    assert_eq!(page["controls"]["pause"], false);
    assert_eq!(page["controls"]["retry"], true);
    assert_eq!(page["waiting"], json!([]));

    let missing = serve.get("/api/runs/no-such-run", Some(VIEWER_TOKEN));
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("no-such-run")
    );

    // The list: newest first, filtered, a page at a time.
    let second = start(&serve, "greet", json!({"who": "day shift"}));
    wait_status(&serve, &second, "succeeded");
    let listed = serve.get("/api/runs?runbook=greet&limit=1", Some(VIEWER_TOKEN));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let page = listed.json();
    assert_eq!(page["runs"][0]["id"], second.as_str());
    assert_eq!(page["runs"][0]["status"], "succeeded");
    let next = page["next"].as_str().expect("a next page").to_owned();
    let older = serve.get(
        &format!("/api/runs?limit=1&before={next}"),
        Some(VIEWER_TOKEN),
    );
    assert_eq!(older.json()["runs"][0]["id"], run_id.as_str());
    assert!(older.json().get("next").is_none(), "{}", older.body);
    let none = serve.get("/api/runs?status=failed", Some(VIEWER_TOKEN));
    assert_eq!(none.json()["runs"], json!([]));
    let bad = serve.get("/api/runs?status=sideways", Some(VIEWER_TOKEN));
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["fields"][0]["field"], "status");
    let future = serve.get("/api/runs?since=2999-01-01T00:00:00Z", Some(VIEWER_TOKEN));
    assert_eq!(future.json()["runs"], json!([]));
}

#[test]
fn a_secret_never_appears_in_any_answer() {
    let leaky = r#"version: 1
name: leaky
secrets:
  token: {env: GREET_TOKEN}
steps:
  - id: use
    exec: {command: [printf, "token=%s", "{{secrets.token}}"]}
    outputs: {said: .stdout}
"#;
    let serve = serve_with(&[("leaky.yaml", leaky)]);
    let run_id = start(&serve, "leaky", json!({}));
    wait_status(&serve, &run_id, "succeeded");
    let page = run_page(&serve, &run_id);
    assert_eq!(page["report"]["steps"][0]["outputs"]["said"], "token=***");
    for path in [
        format!("/api/runs/{run_id}"),
        format!("/api/runs/{run_id}/events?format=json"),
        "/api/runs".to_owned(),
        "/api/runbooks".to_owned(),
    ] {
        let answer = serve.get(&path, Some(VIEWER_TOKEN));
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(
            !answer.body.contains("s3cr3t-t0ken-value"),
            "{path} shows the secret: {}",
            answer.body
        );
    }
    // Given as an input, it is refused, and not echoed either.
    let given = serve.post_json(
        "/api/runs",
        Some(OPERATOR_TOKEN),
        &json!({"runbook": "leaky", "inputs": {"token": "s3cr3t-t0ken-value"}}),
    );
    assert_eq!(given.status, 422, "{}", given.body);
    assert!(!given.body.contains("s3cr3t-t0ken-value"), "{}", given.body);
}

#[test]
fn schedules_show_their_next_windows_and_blackouts_and_locks_who_holds_them() {
    let locked = r#"version: 1
name: locked
locks: [flink-prod]
steps:
  - id: go_ahead
    approval: {prompt: "Go?"}
"#;
    let serve = WebServe::new()
        .config(
            "schedules:\n  - name: sunday-upgrade\n    runbook: runbooks/locked.yaml\n    \
             cron: \"0 2 * * Sun\"\n    time_zone: Europe/Berlin\n    window: 2h\n    \
             blackouts:\n      - date: \"2999-12-26\"\nhttp:\n  users_file: users.yaml\n",
        )
        .write("runbooks/locked.yaml", locked)
        .start();
    let answer = serve.get("/api/schedules?count=3", Some(VIEWER_TOKEN));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let schedule = &answer.json()[0];
    assert_eq!(schedule["name"], "sunday-upgrade");
    assert_eq!(schedule["cron"], "0 2 * * Sun");
    assert_eq!(schedule["time_zone"], "Europe/Berlin");
    assert_eq!(schedule["window"], "2h");
    let next = schedule["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    for fire in next {
        let at = fire["at"].as_str().unwrap();
        assert!(at.contains("T02:00:00+0"), "{fire}");
        let at: jiff::Timestamp = at.parse().unwrap();
        let until: jiff::Timestamp = fire["window_until"].as_str().unwrap().parse().unwrap();
        assert_eq!(until.duration_since(at).as_secs(), 7200);
    }
    assert_eq!(schedule["blackouts"][0]["what"], "date 2999-12-26");

    // The schedule's runbook is in the catalog; a run of it holds its lock while it waits.
    let run_id = start(&serve, "locked", json!({}));
    wait_status(&serve, &run_id, "waiting");
    let locks = serve.get("/api/locks", Some(VIEWER_TOKEN));
    assert_eq!(locks.status, 200, "{}", locks.body);
    let lock = &locks.json()[0];
    assert_eq!(lock["name"], "flink-prod");
    assert_eq!(lock["run_id"], run_id.as_str());
    assert_eq!(lock["runbook"], "locked");
}
