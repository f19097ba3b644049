//! Webhooks on run events: serve follows the runs of its store (here started by
//! `runbook run` beside it) and POSTs each event a webhook asks for to a real HTTP server the
//! test runs, retrying a 500, in JSON or Slack's format, never with a secret in a body.

use crate::support::WebServe;
use crate::vendor_http::{Answer, HttpServer};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the receiver got: its path, headers and body, and the status it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
}

/// A webhook receiver that answers 500 to the first request, then 200.
fn receiver() -> (HttpServer, Arc<Mutex<Vec<Received>>>) {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = received.clone();
    let server = HttpServer::start(move |request| {
        let mut log = log.lock().unwrap();
        let status = if log.is_empty() { 500 } else { 200 };
        log.push(Received {
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        });
        Answer::json(status, json!({}))
    });
    (server, received)
}

const FLINK_TOKEN: &str = "s3cr3t-flink-token-42";
const HOOK_TOKEN: &str = "hook-header-token-77";

/// `runbook run` against serve's store (the same state directory).
fn run(dir: &Path, file: &str, run_id: &str) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", file, "--run-id", run_id])
        .env_remove("RUNBOOK_STORE")
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env("FLINK_TOKEN", FLINK_TOKEN)
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .output()
        .expect("run runbook")
        .status
        .code()
        .unwrap_or(-1)
}

fn bodies(received: &Mutex<Vec<Received>>, path: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path && r.status == 200)
        .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
        .collect()
}

#[test]
fn run_events_reach_webhooks_once_each_retried_after_a_500_without_secrets() {
    let (hook, received) = receiver();
    let config = format!(
        r#"schedules: []
http:
  users_file: users.yaml
  public_url: https://runbook.example.com/
notifications:
  webhooks:
    - url: {url}/hook
      events: [run_started, approval_waiting, run_failed, run_succeeded]
      headers:
        Authorization: {{ env: HOOK_TOKEN }}
        X-Team: flink
    - url: {url}/slack
      format: slack
      events: [run_failed]
"#,
        url = hook.url()
    );
    let serve = WebServe::new()
        .config(config)
        .env("HOOK_TOKEN", HOOK_TOKEN)
        .write(
            "gated.yaml",
            "version: 1\nname: gated\nsteps:\n  - id: gate\n    approval: { prompt: \"Cancel the jobs?\" }\n",
        )
        .write(
            "failing.yaml",
            r#"version: 1
name: failing
secrets:
  token: { env: FLINK_TOKEN }
steps:
  - id: call
    exec: { script: 'echo "refused token {{secrets.token}}" >&2; exit 1' }
"#,
        )
        .write(
            "fine.yaml",
            "version: 1\nname: fine\nsteps:\n  - id: ok\n    exec: { script: 'true' }\n",
        )
        .start();
    let dir = serve.dir.path();
    assert_eq!(run(dir, "gated.yaml", "gated-1"), 3);
    assert_eq!(run(dir, "failing.yaml", "failing-1"), 1);
    assert_eq!(run(dir, "fine.yaml", "fine-1"), 0);

    let expected = [
        ("gated-1", "run_started"),
        ("gated-1", "approval_waiting"),
        ("failing-1", "run_started"),
        ("failing-1", "run_failed"),
        ("fine-1", "run_started"),
        ("fine-1", "run_succeeded"),
    ];
    serve.wait_for("every notification", Duration::from_secs(60), || {
        bodies(&received, "/hook").len() >= expected.len()
            && !bodies(&received, "/slack").is_empty()
    });
    // A moment more: nothing is sent twice.
    std::thread::sleep(Duration::from_secs(2));
    let hooked = bodies(&received, "/hook");
    let mut got: Vec<(String, String)> = hooked
        .iter()
        .map(|b| {
            (
                b["run_id"].as_str().unwrap().to_owned(),
                b["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(r, e)| ((*r).to_owned(), (*e).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{hooked:#?}");

    // The first request got a 500 and was sent again.
    let log = received.lock().unwrap().clone();
    assert_eq!(log[0].status, 500);
    let first: Value = serde_json::from_str(&log[0].body).unwrap();
    assert_eq!(
        log.iter()
            .filter(|r| serde_json::from_str::<Value>(&r.body).unwrap()["id"] == first["id"])
            .count(),
        2,
        "{log:#?}"
    );

    // The approval's payload links to the run's page.
    let waiting = hooked
        .iter()
        .find(|b| b["event"] == "approval_waiting")
        .unwrap();
    assert_eq!(waiting["link"], "https://runbook.example.com/runs/gated-1");
    assert_eq!(waiting["step"], "gate");
    assert_eq!(waiting["prompt"], "Cancel the jobs?");
    assert!(
        waiting["text"]
            .as_str()
            .unwrap()
            .contains("https://runbook.example.com/runs/gated-1"),
        "{waiting}"
    );
    let failed = hooked.iter().find(|b| b["event"] == "run_failed").unwrap();
    assert_eq!(failed["status"], "failed");
    // The step's error, with the secret it printed masked.
    let error = failed["failed_steps"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("refused token ***"), "{failed}");

    // Headers as configured, the one from the environment included.
    let hook_request = log.iter().find(|r| r.path == "/hook").unwrap();
    let header = |name: &str| {
        hook_request
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some(HOOK_TOKEN));
    assert_eq!(header("x-team").as_deref(), Some("flink"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));

    // Slack's format: a text, for the failed run only.
    let slack = bodies(&received, "/slack");
    assert_eq!(slack.len(), 1, "{slack:#?}");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("failing-1") && text.contains("failed"),
        "{text}"
    );
    assert_eq!(slack[0].as_object().unwrap().len(), 1, "{slack:#?}");

    // No body holds a secret: the runbook's, or the webhook header's.
    for request in &log {
        assert!(
            !request.body.contains(FLINK_TOKEN) && !request.body.contains(HOOK_TOKEN),
            "{}",
            request.body
        );
    }
    assert!(!serve.log().contains(HOOK_TOKEN), "{}", serve.log());
}

#[test]
fn a_webhook_header_from_a_missing_variable_stops_serve_saying_which() {
    let output = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("serve.yaml"),
            "schedules: []\nnotifications:\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      headers: { Authorization: { env: RUNBOOK_TEST_NO_SUCH_VARIABLE } }\n",
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["serve", "--config", "serve.yaml"])
            .env_remove("RUNBOOK_TEST_NO_SUCH_VARIABLE")
            .env_remove("RUNBOOK_STORE")
            .env("XDG_STATE_HOME", dir.path().join(".state"))
            .current_dir(dir.path())
            .output()
            .expect("run runbook serve")
    };
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notifications.webhooks[0].headers.Authorization")
            && stderr.contains("RUNBOOK_TEST_NO_SUCH_VARIABLE is not set"),
        "{stderr}"
    );
}
