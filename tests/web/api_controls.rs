//! Approvals and the operator's controls over HTTP: each changes the run as the command
//! line would, and the journal records who did it.

use crate::api::{run_page, serve_with, start, wait_status};
use crate::support::{OPERATOR_TOKEN, Running, VIEWER_TOKEN};
use serde_json::{Value, json};
use std::time::Duration;

const GATED: &str = r#"version: 1
name: gated
steps:
  - id: go_ahead
    approval: {prompt: "Cancel the jobs?"}
  - id: after
    needs: [go_ahead]
    exec: {command: [echo, done]}
"#;

/// Fails until the file `fixed` exists next to serve.yaml.
const FLAKY: &str = r#"version: 1
name: flaky
steps:
  - id: first
    exec: {command: [echo, one]}
  - id: check
    needs: [first]
    exec: {script: "test -e fixed"}
  - id: last
    needs: [check]
    exec: {command: [echo, three]}
"#;

const SLOW: &str = r#"version: 1
name: slow
steps:
  - id: one
    sleep: 2s
  - id: two
    needs: [one]
    sleep: 1s
"#;

/// The journal's events as the API lists them.
fn events(serve: &Running, run_id: &str) -> Vec<Value> {
    let answer = serve.get(
        &format!("/api/runs/{run_id}/events?format=json"),
        Some(VIEWER_TOKEN),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json().as_array().unwrap().clone()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
}

fn post(serve: &Running, path: &str, body: Value) -> crate::support::Answer {
    serve.post_json(path, Some(OPERATOR_TOKEN), &body)
}

#[test]
fn a_waiting_run_is_approved_and_goes_on_and_a_second_answer_is_refused() {
    let serve = serve_with(&[("gated.yaml", GATED)]);
    let run_id = start(&serve, "gated", json!({}));
    let page = wait_status(&serve, &run_id, "waiting");
    assert_eq!(page["waiting"][0]["step"], "go_ahead");
    assert_eq!(page["waiting"][0]["prompt"], "Cancel the jobs?");
    assert_eq!(page["controls"]["approve"], true);

    let refused = serve.post_json(
        &format!("/api/runs/{run_id}/approve"),
        Some(VIEWER_TOKEN),
        &json!({"step": "go_ahead"}),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    let wrong_step = post(
        &serve,
        &format!("/api/runs/{run_id}/approve"),
        json!({"step": "go"}),
    );
    assert_eq!(wrong_step.status, 409, "{}", wrong_step.body);
    assert!(wrong_step.body.contains("go_ahead"), "{}", wrong_step.body);

    let approved = post(
        &serve,
        &format!("/api/runs/{run_id}/approve"),
        json!({"step": "go_ahead", "comment": "window confirmed"}),
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["by"], "otto");
    wait_status(&serve, &run_id, "succeeded");
    let given = event(&events(&serve, &run_id), "approval_given").clone();
    assert_eq!(given["by"], "otto");
    assert_eq!(given["approved"], true);
    assert_eq!(given["comment"], "window confirmed");

    let again = post(
        &serve,
        &format!("/api/runs/{run_id}/reject"),
        json!({"step": "go_ahead"}),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    let unknown = post(
        &serve,
        "/api/runs/nope/approve",
        json!({"step": "go_ahead"}),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[test]
fn a_rejection_fails_the_step_with_who_rejected_it() {
    let serve = serve_with(&[("gated.yaml", GATED)]);
    let run_id = start(&serve, "gated", json!({}));
    wait_status(&serve, &run_id, "waiting");
    let rejected = post(
        &serve,
        &format!("/api/runs/{run_id}/reject"),
        json!({"step": "go_ahead", "comment": "not tonight"}),
    );
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let page = wait_status(&serve, &run_id, "failed");
    let step = &page["report"]["steps"][0];
    assert_eq!(step["status"], "failed");
    assert!(
        step["error"].as_str().unwrap().contains("rejected by otto"),
        "{step}"
    );
}

#[test]
fn a_failed_run_is_retried_from_a_step_and_succeeds() {
    let serve = serve_with(&[("flaky.yaml", FLAKY)]);
    let run_id = start(&serve, "flaky", json!({}));
    let page = wait_status(&serve, &run_id, "failed");
    assert_eq!(page["controls"]["retry"], true);
    let no_reason = post(
        &serve,
        &format!("/api/runs/{run_id}/retry"),
        json!({"from": "check"}),
    );
    assert_eq!(no_reason.status, 422, "{}", no_reason.body);
    assert_eq!(no_reason.json()["fields"][0]["field"], "reason");
    let unknown = post(
        &serve,
        &format!("/api/runs/{run_id}/retry"),
        json!({"from": "chek", "reason": "fixed"}),
    );
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(
        unknown.body.contains("did you mean `check`"),
        "{}",
        unknown.body
    );

    std::fs::write(serve.path("fixed"), "").unwrap();
    let retried = post(
        &serve,
        &format!("/api/runs/{run_id}/retry"),
        json!({"from": "check", "reason": "the mount is back"}),
    );
    assert_eq!(retried.status, 200, "{}", retried.body);
    let page = wait_status(&serve, &run_id, "succeeded");
    assert_eq!(page["report"]["steps"][0]["attempts"], 1, "first is kept");
    let journal = events(&serve, &run_id);
    let retry = event(&journal, "run_retried");
    assert_eq!(retry["by"], "otto");
    assert_eq!(retry["reason"], "the mount is back");
    assert_eq!(retry["from"], json!(["check"]));
}

#[test]
fn a_failed_step_is_skipped_by_hand_and_the_run_resumed_in_serve() {
    let serve = serve_with(&[("flaky.yaml", FLAKY)]);
    let run_id = start(&serve, "flaky", json!({}));
    wait_status(&serve, &run_id, "failed");
    let skipped = post(
        &serve,
        &format!("/api/runs/{run_id}/skip"),
        json!({"step": "check", "reason": "checked by hand"}),
    );
    assert_eq!(skipped.status, 200, "{}", skipped.body);
    let skip = event(&events(&serve, &run_id), "step_skipped_by_hand").clone();
    assert_eq!(skip["by"], "otto");
    assert_eq!(skip["reason"], "checked by hand");
    let page = run_page(&serve, &run_id);
    assert_eq!(page["controls"]["resume"], true, "{}", page["controls"]);

    let resumed = serve.request(
        "POST",
        &format!("/api/runs/{run_id}/resume"),
        Some(OPERATOR_TOKEN),
        None,
    );
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    let page = wait_status(&serve, &run_id, "succeeded");
    let last = page["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "last")
        .unwrap()
        .clone();
    assert_eq!(last["status"], "succeeded");
    let again = serve.request(
        "POST",
        &format!("/api/runs/{run_id}/resume"),
        Some(OPERATOR_TOKEN),
        None,
    );
    assert_eq!(again.status, 409, "{}", again.body);
}

#[test]
fn a_live_run_is_paused_then_resumed_and_a_parked_one_aborted() {
    let serve = serve_with(&[("slow.yaml", SLOW)]);
    let run_id = start(&serve, "slow", json!({}));
    let page = wait_status(&serve, &run_id, "running");
    assert_eq!(page["controls"]["pause"], true);
    let viewer = serve.post_json(
        &format!("/api/runs/{run_id}/pause"),
        Some(VIEWER_TOKEN),
        &json!({"reason": "no"}),
    );
    assert_eq!(viewer.status, 403, "{}", viewer.body);
    let paused = post(
        &serve,
        &format!("/api/runs/{run_id}/pause"),
        json!({"reason": "the pager went off"}),
    );
    assert_eq!(paused.status, 202, "{}", paused.body);
    wait_status(&serve, &run_id, "interrupted");
    let pause = event(&events(&serve, &run_id), "run_paused").clone();
    assert_eq!(pause["by"], "otto");
    assert_eq!(pause["reason"], "the pager went off");
    // A paused run is not resumed by serve on its own.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        run_page(&serve, &run_id)["summary"]["status"],
        "interrupted"
    );
    let again = post(
        &serve,
        &format!("/api/runs/{run_id}/pause"),
        json!({"reason": "x"}),
    );
    assert_eq!(again.status, 409, "{}", again.body);

    let resumed = serve.request(
        "POST",
        &format!("/api/runs/{run_id}/resume"),
        Some(OPERATOR_TOKEN),
        None,
    );
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    wait_status(&serve, &run_id, "succeeded");
    let resume = event(&events(&serve, &run_id), "run_resumed").clone();
    assert!(
        resume["by"].as_str().unwrap().starts_with("otto via pid "),
        "{resume}"
    );

    // Another run: paused, then aborted for good.
    let second = start(&serve, "slow", json!({}));
    wait_status(&serve, &second, "running");
    let paused = post(
        &serve,
        &format!("/api/runs/{second}/pause"),
        json!({"reason": "hold", "now": true}),
    );
    assert_eq!(paused.status, 202, "{}", paused.body);
    wait_status(&serve, &second, "interrupted");
    let aborted = post(
        &serve,
        &format!("/api/runs/{second}/abort"),
        json!({"undo": false, "reason": "postponed to next week"}),
    );
    assert_eq!(aborted.status, 202, "{}", aborted.body);
    wait_status(&serve, &second, "cancelled");
    let abort = event(&events(&serve, &second), "run_aborted").clone();
    assert_eq!(abort["by"], "otto");
    assert_eq!(abort["reason"], "postponed to next week");
    let over = post(
        &serve,
        &format!("/api/runs/{second}/abort"),
        json!({"reason": "again"}),
    );
    assert_eq!(over.status, 409, "{}", over.body);
}

#[test]
fn a_viewer_is_refused_every_write_and_nobody_signed_in_is_asked_to_sign_in() {
    let serve = serve_with(&[("slow.yaml", SLOW)]);
    for route in [
        "approve", "reject", "retry", "skip", "pause", "resume", "abort",
    ] {
        let path = format!("/api/runs/any/{route}");
        let viewer = serve.post_json(
            &path,
            Some(VIEWER_TOKEN),
            &json!({"reason": "r", "step": "s"}),
        );
        assert_eq!(viewer.status, 403, "{route}: {}", viewer.body);
        let anonymous = serve.post_json(&path, None, &json!({"reason": "r", "step": "s"}));
        assert_eq!(anonymous.status, 401, "{route}: {}", anonymous.body);
    }
    let start = serve.post_json("/api/runs", None, &json!({"runbook": "slow"}));
    assert_eq!(start.status, 401, "{}", start.body);
}
