//! serve listens where told and signs API requests in by token.

use crate::support::{OPERATOR_TOKEN, VIEWER_TOKEN, WebServe};

#[test]
fn an_api_token_signs_a_request_in_with_its_role_and_no_token_is_refused() {
    let serve = WebServe::new().start();
    let anonymous = serve.get("/api/whoami", None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong = serve.get("/api/whoami", Some("not-a-token"));
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let operator = serve.get("/api/whoami", Some(OPERATOR_TOKEN));
    assert_eq!(operator.status, 200, "{}", operator.body);
    assert_eq!(operator.json()["name"], "otto");
    assert_eq!(operator.json()["role"], "operator");
    let viewer = serve.get("/api/whoami", Some(VIEWER_TOKEN));
    assert_eq!(viewer.json()["role"], "viewer");
}

#[test]
fn a_listen_address_that_is_not_one_is_refused_with_what_was_expected() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["serve", "--listen", "localhost:http"])
        .output()
        .expect("run runbook");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HOST:PORT"), "{stderr}");
}
