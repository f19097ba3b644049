//! The OpenAPI document: served without sign-in, and the checked-in copy is current.

use crate::support::WebServe;
use std::path::Path;

/// Regenerate with `UPDATE_OPENAPI=1 cargo test --test web -- api_openapi`.
#[test]
fn the_checked_in_openapi_document_is_what_serve_serves() {
    let serve = WebServe::new().start();
    let served = serve.get("/api/openapi.json", None);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/events",
        "/api/runs/{id}/approve",
        "/api/runs/{id}/abort",
        "/api/schedules",
        "/api/locks",
        "/api/runbooks",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &served.body).expect("write schemas/openapi.json");
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == served.body,
        "schemas/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test web -- api_openapi`"
    );
}
