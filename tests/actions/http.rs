use std::time::Duration;

use runbook::actions::ActionErrorKind;
use serde_json::{Value, json};

use crate::support::server::{Event, Request, Response, Server};
use crate::support::{Runner, eventually};

fn http() -> Runner {
    Runner::new("http")
}

/// Answers every request with a JSON description of it.
fn echo(request: &Request) -> Response {
    Response::json(
        200,
        "OK",
        &json!({
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.body_text(),
        }),
    )
}

#[tokio::test]
async fn get_sends_query_and_headers_and_parses_a_json_response() {
    let server = Server::start(echo);
    let result = http()
        .ok(json!({
            "url": server.url("/jobs/{{inputs.name}}"),
            "query": {"mode": "a b&c=d", "port": "{{inputs.port}}", "tag": "{{inputs.list}}"},
            "headers": {"X-Request-Source": "runbook", "X-Port": "{{inputs.port}}"},
        }))
        .await;
    assert_eq!(result["status"], json!(200));
    assert_eq!(result["headers"]["content-type"], json!("application/json"));
    let seen = &result["body"];
    assert_eq!(seen["method"], json!("GET"));
    assert_eq!(seen["path"], json!("/jobs/world"));
    // Encoded on the way out, decoded by the server back to the same values; a list
    // repeats the name.
    assert_eq!(
        seen["query"],
        json!([
            ["mode", "a b&c=d"],
            ["port", "5432"],
            ["tag", "a"],
            ["tag", "b"]
        ])
    );
    assert_eq!(seen["headers"]["x-request-source"], json!("runbook"));
    assert_eq!(seen["headers"]["x-port"], json!("5432"));
    assert!(
        seen["headers"]["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("runbook/")),
        "{}",
        seen["headers"]
    );
}

#[tokio::test]
async fn post_json_keeps_template_types_and_sets_the_content_type() {
    let server = Server::start(echo);
    let result = http()
        .ok(json!({
            "method": "POST",
            "url": server.url("/jobs/savepoints"),
            "json": {"triggerId": "{{step.key}}", "jobs": "{{inputs.list}}", "cancel-job": false},
        }))
        .await;
    let seen = &result["body"];
    assert_eq!(seen["method"], json!("POST"));
    assert_eq!(seen["headers"]["content-type"], json!("application/json"));
    let sent: Value = serde_json::from_str(seen["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(
        sent,
        json!({"triggerId": "0123456789abcdef0123456789abcdef", "jobs": ["a", "b"], "cancel-job": false})
    );
}

#[tokio::test]
async fn body_is_sent_as_is() {
    let server = Server::start(echo);
    let result = http()
        .ok(json!({
            "method": "put",
            "url": server.url("/config"),
            "headers": {"Content-Type": "text/plain"},
            "body": "parallelism={{inputs.port}}\n",
        }))
        .await;
    assert_eq!(result["body"]["method"], json!("PUT"));
    assert_eq!(result["body"]["body"], json!("parallelism=5432\n"));
    assert_eq!(
        result["body"]["headers"]["content-type"],
        json!("text/plain")
    );
}

/// Answers 200 when the request carries exactly this Authorization header, 401 otherwise.
fn requires(authorization: &'static str) -> impl Fn(&Request) -> Response {
    move |request| {
        if request.header("authorization") == Some(authorization) {
            Response::json(200, "OK", &json!({"ok": true}))
        } else {
            Response::text(401, "Unauthorized", Some("text/plain"), "who are you?")
        }
    }
}

#[tokio::test]
async fn basic_auth() {
    // base64("alice:s3cr3t!")
    let server = Server::start(requires("Basic YWxpY2U6czNjcjN0IQ=="));
    let runner = http().input("password", json!("s3cr3t!"));
    let result = runner
        .ok(json!({
            "url": server.url("/"),
            "auth": {"basic": {"username": "alice", "password": "{{inputs.password}}"}},
        }))
        .await;
    assert_eq!(result["body"], json!({"ok": true}));
    let refused = runner.err(json!({"url": server.url("/")})).await;
    assert_eq!(
        refused.result.map(|r| r["status"].clone()),
        Some(json!(401))
    );
}

#[tokio::test]
async fn bearer_auth() {
    let server = Server::start(requires("Bearer tok-123"));
    let result = http()
        .input("token", json!("tok-123"))
        .ok(json!({"url": server.url("/"), "auth": {"bearer": "{{inputs.token}}"}}))
        .await;
    assert_eq!(result["status"], json!(200));
}

#[tokio::test]
async fn an_unexpected_status_fails_with_the_response_attached() {
    let server = Server::start(|_: &Request| {
        Response::json(
            409,
            "Conflict",
            &json!({"errors": ["job already running; a savepoint is in progress"]}),
        )
    });
    let url = server.url("/jobs/abc/savepoints");
    let error = http()
        .err(json!({"method": "POST", "url": url, "json": {}}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert_eq!(
        error.message,
        format!(
            "POST {url} answered 409 Conflict: {{\"errors\":[\"job already running; a savepoint is in progress\"]}}"
        )
    );
    let result = error.result.expect("response attached");
    assert_eq!(result["status"], json!(409));
    assert_eq!(
        result["body"]["errors"][0],
        json!("job already running; a savepoint is in progress")
    );

    // Listed in `expect`, the same answer succeeds; a 2xx not listed fails.
    let expected = http()
        .ok(json!({"method": "POST", "url": url, "expect": [409]}))
        .await;
    assert_eq!(expected["status"], json!(409));
    let ok_server = Server::start(echo);
    let unlisted = http()
        .err(json!({"url": ok_server.url("/"), "expect": [202]}))
        .await;
    assert!(
        unlisted.message.contains("answered 200 OK"),
        "{}",
        unlisted.message
    );
}

#[tokio::test]
async fn long_bodies_are_shortened_in_the_message() {
    let server = Server::start(|_: &Request| {
        Response::text(
            500,
            "Internal Server Error",
            Some("text/html"),
            &format!("<p>\n{}</p>", "x".repeat(500)),
        )
    });
    let error = http().err(json!({"url": server.url("/")})).await;
    let (_, snippet) = error
        .message
        .split_once("answered 500 Internal Server Error: ")
        .expect("message");
    assert_eq!(snippet, format!("<p> {}…", "x".repeat(196)));
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    // A port that was just free: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/overview");
    let error = http().err(json!({"url": url})).await;
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert!(
        error
            .message
            .starts_with(&format!("GET {url}: cannot connect: ")),
        "{}",
        error.message
    );
    assert!(
        error.message.to_lowercase().contains("refused"),
        "{}",
        error.message
    );
    assert!(error.result.is_none());
}

#[tokio::test]
async fn json_bodies_are_parsed_and_text_stays_text() {
    let server = Server::start(|request: &Request| match request.path.as_str() {
        "/text" => Response::text(200, "OK", Some("text/plain; charset=utf-8"), "all good\n"),
        "/untyped-json" => Response::text(200, "OK", None, "{\"state\": \"RUNNING\"}"),
        "/broken-json" => Response::text(200, "OK", Some("application/json"), "{not json"),
        _ => Response::text(200, "OK", None, ""),
    });
    let text = http().ok(json!({"url": server.url("/text")})).await;
    assert_eq!(text["body"], json!("all good\n"));
    assert_eq!(
        text["headers"]["content-type"],
        json!("text/plain; charset=utf-8")
    );
    let untyped = http().ok(json!({"url": server.url("/untyped-json")})).await;
    assert_eq!(untyped["body"], json!({"state": "RUNNING"}));
    let broken = http().ok(json!({"url": server.url("/broken-json")})).await;
    assert_eq!(broken["body"], json!("{not json"));
    let empty = http()
        .ok(json!({"url": server.url("/empty"), "method": "DELETE"}))
        .await;
    assert_eq!(empty["body"], json!(""));
}

#[tokio::test]
async fn cancel_aborts_the_request() {
    let server = Server::start(|_: &Request| Response::Hang);
    let runner = http();
    let url = server.url("/slow");
    let run = runner.run(json!({"url": url}));
    let cancel_once_received = async {
        // Polled, not awaited in a blocking call: the request must make progress meanwhile.
        let mut received = None;
        eventually(Duration::from_secs(10), || {
            received = received.take().or_else(|| server.try_event());
            received.is_some()
        })
        .await;
        assert_eq!(received, Some(Event::Received("/slow".into())));
        runner.cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(run, cancel_once_received);
    let error = outcome.result.expect_err("cancelled");
    assert_eq!(error.kind, ActionErrorKind::Cancelled);
    assert_eq!(error.message, format!("GET {url} cancelled"));
    // The connection was dropped, not left hanging. (Polled: the client's connection task
    // runs on this test's runtime and must be driven to close the socket.)
    let mut closed = None;
    eventually(Duration::from_secs(10), || {
        closed = closed.take().or_else(|| server.try_event());
        closed.is_some()
    })
    .await;
    assert_eq!(closed, Some(Event::ClientClosed));
}

#[tokio::test]
async fn bodies_that_cannot_be_sent_are_invalid() {
    for (body, message) in [
        (
            json!({"url": "ftp://example.test/x"}),
            "`http.url` `ftp://example.test/x` must start with http:// or https://",
        ),
        (
            json!({"url": "not a url"}),
            "`http.url` `not a url` is not a URL: relative URL without a base",
        ),
        (
            json!({"url": "http://127.0.0.1/", "method": "FETCH"}),
            "unknown method `FETCH` in `http.method` (expected one of: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS)",
        ),
        (
            json!({"url": "http://127.0.0.1/", "json": {}, "body": "x"}),
            "`http` takes one of `json` and `body`, not both",
        ),
        (
            json!({"url": "http://127.0.0.1/", "expect": [2000]}),
            "`http.expect`: 2000 is not an HTTP status code (100 to 599)",
        ),
        (
            json!({"url": "http://127.0.0.1/", "headers": {"X-List": "{{inputs.list}}"}}),
            "`http.headers.X-List` must be a string, not a list",
        ),
        (
            json!({"url": "http://127.0.0.1/", "auth": {"basic": {"username": "u"}}}),
            "`http.auth.basic.password` is required",
        ),
    ] {
        let error = http().err(body).await;
        assert_eq!(error.kind, ActionErrorKind::Invalid);
        assert_eq!(error.message, message);
    }
}
