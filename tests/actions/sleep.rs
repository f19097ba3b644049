use std::time::{Duration, Instant};

use runbook::actions::ActionErrorKind;
use serde_json::json;

use crate::support::Runner;

#[tokio::test]
async fn sleeps_for_the_duration() {
    let start = Instant::now();
    let result = Runner::new("sleep").ok(json!("150ms")).await;
    assert_eq!(result, json!({}));
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn cancel_ends_the_sleep_at_once() {
    let runner = Runner::new("sleep");
    let start = Instant::now();
    let cancel_soon = async {
        tokio::task::yield_now().await;
        runner.cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(runner.run(json!("1h")), cancel_soon);
    let error = outcome.result.expect_err("cancelled");
    assert_eq!(error.kind, ActionErrorKind::Cancelled);
    assert_eq!(error.message, "sleep 1h cancelled");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_bad_duration_is_invalid() {
    let error = Runner::new("sleep").err(json!("30")).await;
    assert_eq!(error.kind, ActionErrorKind::Invalid);
    assert_eq!(
        error.message,
        "invalid duration `30` in `sleep`: expected a duration such as 250ms, 10s, 5m or 1h30m"
    );
    let templated = Runner::new("sleep").err(json!({"for": "5s"})).await;
    assert_eq!(
        templated.message,
        "`sleep` must be a duration such as 30s, not a map"
    );
}
