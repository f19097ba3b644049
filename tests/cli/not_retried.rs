//! A failure that another attempt cannot change (a missing program, a malformed URL) is not
//! retried, says so, and still leads to the fallback; a failure that may pass (a refused
//! connection, a 5xx) is retried as before.

use crate::events::{count, ended, run_json};
use crate::run_http::server::{Response, Server};
use crate::support::Test;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn attempt_failures<'a>(events: &'a [Value], path: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "step_attempt_failed" && e["path"] == path)
        .collect()
}

#[test]
fn a_missing_program_or_a_malformed_url_fails_at_once_and_the_fallback_still_runs() {
    let runbook = r#"version: 1
name: permanent
steps:
  - id: program
    needs: []
    retry: { attempts: 5, delay: 3s }
    exec: { command: [runbook-test-no-such-program] }
    fallback:
      exec: { script: 'printf "{\"via\": \"fallback\"}"' }
      outputs: { via: '.json.via' }
  - id: url
    needs: []
    retry: { attempts: 5, delay: 3s }
    continue_on_failure: true
    http: { url: "http://[not-a-host/jobs" }
"#;
    let started = Instant::now();
    let (output, events) = run_json(
        Test::new().write("permanent.yaml", runbook),
        "permanent.yaml",
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    // Five attempts 3 s apart would take 12 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for (path, what) in [
        (
            "program",
            "`runbook-test-no-such-program` not found on PATH",
        ),
        ("url", "is not a URL"),
    ] {
        let failures = attempt_failures(&events, path);
        assert_eq!(failures.len(), 1, "{path}: {failures:?}");
        let error = failures[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(what), "{path}: {error}");
        assert!(error.contains("not retried"), "{path}: {error}");
        assert!(failures[0].get("retry_in_ms").is_none(), "{path}");
    }
    let program = ended(&events, "program");
    assert_eq!(program["status"], "succeeded");
    assert_eq!(program["via"], "fallback");
    assert_eq!(program["outputs"], json!({"via": "fallback"}));
    let url = ended(&events, "url");
    assert_eq!(url["status"], "failed");
    assert!(
        url["error"]
            .as_str()
            .is_some_and(|e| e.contains("not retried")),
        "{url}"
    );
}

#[test]
fn a_refused_connection_and_a_server_error_are_still_retried() {
    let server = Server::start(|_| Response::json(503, "Service Unavailable", &json!({})));
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let runbook = format!(
        r#"version: 1
name: transient
steps:
  - id: refused
    needs: []
    continue_on_failure: true
    retry: {{ attempts: 3, delay: 10ms }}
    http: {{ url: "http://{closed}/jobs" }}
  - id: unavailable
    needs: []
    continue_on_failure: true
    retry: {{ attempts: 3, delay: 10ms }}
    http: {{ url: "{}" }}
"#,
        server.url("/jobs")
    );
    let (output, events) = run_json(
        Test::new().write("transient.yaml", runbook),
        "transient.yaml",
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    for path in ["refused", "unavailable"] {
        assert_eq!(count(&events, "step_attempt_failed", path), 3, "{path}");
        assert_eq!(ended(&events, path)["status"], "failed");
        let error = ended(&events, path)["error"].as_str().unwrap_or_default();
        assert!(!error.contains("not retried"), "{path}: {error}");
    }
}
