use runbook::actions::ActionErrorKind;
use serde_json::json;

use crate::support::Runner;

fn assert_action() -> Runner {
    Runner::new("assert")
}

#[tokio::test]
async fn true_conditions_pass_with_an_empty_result() {
    let result = assert_action()
        .ok(json!({"that": ".inputs.port > 1000"}))
        .await;
    assert_eq!(result, json!({}));
    let all = assert_action()
        .ok(json!({"that": [".inputs.flag", ".inputs.list | length == 2", ".inputs.name"]}))
        .await;
    assert_eq!(all, json!({}));
}

#[tokio::test]
async fn false_and_null_fail_naming_the_condition() {
    let error = assert_action()
        .err(json!({"that": [".inputs.flag", ".inputs.port < 1000", ".inputs.flag"]}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert_eq!(error.message, "assertion failed: .inputs.port < 1000");
    assert_eq!(error.result, None);
    let null = assert_action()
        .err(json!({"that": ".inputs.missing"}))
        .await;
    assert_eq!(null.message, "assertion failed: .inputs.missing");
}

#[tokio::test]
async fn the_message_is_rendered() {
    let error = assert_action()
        .err(json!({
            "that": ".inputs.port == 1",
            "message": "port is {{inputs.port}}, not 1, on {{inputs.name}}",
        }))
        .await;
    assert_eq!(error.message, "port is 5432, not 1, on world");
}

#[tokio::test]
async fn a_condition_that_cannot_be_evaluated_fails_and_says_why() {
    let error = assert_action()
        .err(json!({"that": ".inputs.name | length > (.inputs.list | error)", "message": "too short"}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert!(
        error.message.starts_with(
            "too short (could not evaluate `.inputs.name | length > (.inputs.list | error)`: "
        ),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_body_without_conditions_is_invalid() {
    let error = assert_action().err(json!({"message": "x"})).await;
    assert_eq!(error.kind, ActionErrorKind::Invalid);
    assert_eq!(error.message, "`assert.that` is required");
}
