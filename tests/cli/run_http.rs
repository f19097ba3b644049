//! `runbook run` end to end against a real HTTP server on 127.0.0.1: polling a Flink-like
//! savepoint endpoint, `for_each` under `max_parallel`, timeouts of hanging calls and
//! commands, templates as they reach the wire and the shell, and secrets in headers.
//! Order and overlap are read from the run's own events, not from wall-clock timing.

#[allow(dead_code)]
#[path = "../actions/support/server.rs"]
pub(crate) mod server;

use crate::events::{count, ended, position, process_is_gone, run_json};
use crate::support::Test;
use serde_json::{Value, json};
use server::{Request, Response, Server};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn error_of(event: &Value) -> &str {
    event["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {event}"))
}

/// A server that records each request and never answers it.
fn hanging_server() -> (Log, Server) {
    let log = Log::default();
    let server = {
        let log = log.clone();
        Server::start(move |request| {
            log.push(request);
            Response::Hang
        })
    };
    (log, server)
}

/// Every request the server received, in order of arrival.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Request>>>);

impl Log {
    fn push(&self, request: &Request) {
        self.0.lock().expect("log").push(request.clone());
    }

    fn all(&self) -> Vec<Request> {
        self.0.lock().expect("log").clone()
    }

    fn on(&self, method: &str, prefix: &str) -> Vec<Request> {
        self.all()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }
}

/// `http://127.0.0.1:PORT`, for an input of the runbook.
fn base(server: &Server) -> String {
    server.url("")
}

fn is_step_key(text: &str) -> bool {
    text.len() == 32
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

const SAVEPOINT: &str = r#"version: 1
name: savepoint
inputs:
  flink: { type: string }
  job: { type: string, default: a1b2c3d4 }
steps:
  - id: trigger
    http:
      method: POST
      url: "{{inputs.flink}}/jobs/{{inputs.job}}/savepoints"
      json: { target-directory: "file:/savepoints", cancel-job: false, triggerId: "{{step.key}}" }
      expect: [202]
    outputs: { request: '.body["request-id"]' }
  - id: wait
    http: { url: "{{inputs.flink}}/jobs/{{inputs.job}}/savepoints/{{steps.trigger.outputs.request}}" }
    until: '.body.status.id == "COMPLETED"'
    poll: { interval: 100ms, timeout: POLL_TIMEOUT }
    outputs: { location: '.body.operation.location' }
outputs:
  location: '.steps.wait.outputs.location'
"#;

/// A Flink JobManager's savepoint endpoints: the trigger answers 202 with the given
/// `triggerId` as the request id; the status is `IN_PROGRESS` for the first
/// `in_progress` calls, then `COMPLETED` (never, with `usize::MAX`).
fn flink(log: &Log, in_progress: usize) -> Server {
    let log = log.clone();
    let status_calls = AtomicUsize::new(0);
    Server::start(move |request| {
        log.push(request);
        let trigger = "/jobs/a1b2c3d4/savepoints";
        if request.method == "POST" && request.path == trigger {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            return Response::json(202, "Accepted", &json!({"request-id": body["triggerId"]}));
        }
        if request.method == "GET" && request.path.starts_with(&format!("{trigger}/")) {
            let call = status_calls.fetch_add(1, Ordering::SeqCst) + 1;
            let body = if call <= in_progress {
                json!({"status": {"id": "IN_PROGRESS"}, "operation": null})
            } else {
                json!({
                    "status": {"id": "COMPLETED"},
                    "operation": {"location": "file:/savepoints/sp-1"},
                })
            };
            return Response::json(200, "OK", &body);
        }
        Response::json(404, "Not Found", &json!({"errors": ["not found"]}))
    })
}

#[test]
fn until_polls_a_flink_savepoint_until_it_completes() {
    let log = Log::default();
    let server = flink(&log, 3);
    let runbook = SAVEPOINT.replace("POLL_TIMEOUT", "10s");
    let flink_url = format!("flink={}", base(&server));
    let (output, events) = run_json(
        Test::new().write("savepoint.yaml", runbook),
        "savepoint.yaml",
        &["--input", &flink_url],
    );
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);

    let wait = ended(&events, "wait");
    assert_eq!(wait["status"], "succeeded", "{wait}");
    assert_eq!(wait["outputs"]["location"], "file:/savepoints/sp-1");
    assert_eq!(wait["attempts"], 1, "polling happens inside one attempt");
    assert_eq!(
        events.last().unwrap()["outputs"]["location"],
        "file:/savepoints/sp-1"
    );
    assert_eq!(
        count(&events, "step_polling", "wait"),
        3,
        "one poll event per IN_PROGRESS answer"
    );
    let polls: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_polling")
        .map(|e| &e["poll"])
        .collect();
    assert_eq!(polls, [1, 2, 3]);

    // The trigger went out once, with the step's idempotency key as Flink's triggerId.
    let posts = log.on("POST", "/jobs/a1b2c3d4/savepoints");
    assert_eq!(posts.len(), 1);
    let sent: Value = serde_json::from_slice(&posts[0].body).expect("a JSON body");
    assert_eq!(
        posts[0].header("content-type"),
        Some("application/json"),
        "{:?}",
        posts[0].headers
    );
    let trigger_id = sent["triggerId"].as_str().expect("triggerId is a string");
    assert!(is_step_key(trigger_id), "triggerId is 32 hex: {trigger_id}");
    assert_eq!(sent["cancel-job"], false);
    assert_eq!(sent["target-directory"], "file:/savepoints");

    // Three IN_PROGRESS answers and the COMPLETED one, all for that trigger.
    let gets = log.on("GET", "/jobs/a1b2c3d4/savepoints/");
    assert_eq!(gets.len(), 4, "{gets:#?}");
    for get in &gets {
        assert_eq!(get.path, format!("/jobs/a1b2c3d4/savepoints/{trigger_id}"));
    }
    assert_eq!(log.all().len(), 5, "nothing else was requested");
}

#[test]
fn a_poll_that_never_completes_fails_at_the_poll_timeout() {
    let log = Log::default();
    let server = flink(&log, usize::MAX);
    let runbook = SAVEPOINT.replace("POLL_TIMEOUT", "300ms");
    let flink_url = format!("flink={}", base(&server));
    let started = Instant::now();
    let (output, events) = run_json(
        Test::new().write("savepoint.yaml", runbook),
        "savepoint.yaml",
        &["--input", &flink_url],
    );
    let elapsed = started.elapsed();
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);
    let wait = ended(&events, "wait");
    assert_eq!(wait["status"], "failed", "{wait}");
    let error = error_of(wait);
    assert!(
        error.contains("`until`") && error.contains("300ms"),
        "the error names `until` and the poll timeout: {error}"
    );
    assert!(error_of(&events[position(&events, "step_attempt_failed", "wait")]).contains("300ms"));
    let polls = count(&events, "step_polling", "wait");
    assert!(
        polls >= 2,
        "it polled several times before giving up: {polls}"
    );
    assert_eq!(
        log.on("GET", "/jobs/a1b2c3d4/savepoints/").len(),
        polls + 1,
        "one request per poll, and the first"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_ended");
    assert_eq!(last["status"], "failed");
    assert!(
        elapsed < Duration::from_secs(10),
        "the poll timeout, not the step, ended it: {elapsed:?}"
    );
}

#[test]
fn for_each_over_fifty_items_keeps_max_parallel_and_reports_every_item() {
    let log = Log::default();
    let server = {
        let log = log.clone();
        Server::start(move |request| {
            log.push(request);
            // Held long enough that five items are in flight together.
            std::thread::sleep(Duration::from_millis(150));
            let index: u64 = request
                .path
                .strip_prefix("/items/")
                .and_then(|i| i.parse().ok())
                .unwrap_or(u64::MAX);
            if index == 7 {
                return Response::json(500, "Internal Server Error", &json!({"error": "boom"}));
            }
            Response::json(
                200,
                "OK",
                &json!({"index": index, "name": format!("job-{index}")}),
            )
        })
    };
    let runbook = r#"version: 1
name: fan-out
inputs:
  base: { type: string }
steps:
  - id: fetch
    for_each: '[range(50)]'
    max_parallel: 5
    http: { url: "{{inputs.base}}/items/{{index}}" }
    outputs: { index: '.body.index', name: '.body.name', item: '$ctx.item' }
"#;
    let base_url = format!("base={}", base(&server));
    let (output, events) = run_json(
        Test::new().write("fan.yaml", runbook),
        "fan.yaml",
        &["--input", &base_url],
    );
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);

    // Replay the events: items started and not yet ended.
    let mut running = std::collections::BTreeSet::new();
    let mut most = 0;
    for event in &events {
        let Some(path) = event["path"].as_str() else {
            continue;
        };
        if !path.starts_with("fetch[") {
            continue;
        }
        match event["event"].as_str() {
            Some("step_started") => {
                running.insert(path.to_owned());
            }
            Some("step_ended") => {
                assert!(running.remove(path), "{path} ended without starting");
            }
            _ => {}
        }
        assert!(
            running.len() <= 5,
            "more than max_parallel items at once: {running:?}"
        );
        most = most.max(running.len());
    }
    assert!(running.is_empty(), "every item ended: {running:?}");
    assert_eq!(most, 5, "the bound was reached, not just respected");

    let failed = ended(&events, "fetch[7]");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(error_of(failed).contains("500"), "{failed}");
    for index in (0..50).filter(|i| *i != 7) {
        let item = ended(&events, &format!("fetch[{index}]"));
        assert_eq!(item["status"], "succeeded", "{item}");
        assert_eq!(
            item["outputs"],
            json!({"index": index, "name": format!("job-{index}"), "item": index}),
            "{item}"
        );
        assert_eq!(item["item"], index);
    }
    let step = ended(&events, "fetch");
    assert_eq!(step["status"], "failed", "{step}");
    assert!(error_of(step).contains("1 of 50"), "{step}");
    assert_eq!(events.last().unwrap()["status"], "failed");

    let mut asked: Vec<String> = log.all().into_iter().map(|r| r.path).collect();
    asked.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("/items/{i}")).collect();
    expected.sort();
    assert_eq!(asked, expected, "one request per item, none repeated");
}

#[test]
fn a_step_timeout_abandons_a_hanging_http_call() {
    let (log, server) = hanging_server();
    let runbook = r#"version: 1
name: hang
inputs:
  base: { type: string }
steps:
  - id: call
    timeout: 300ms
    http: { url: "{{inputs.base}}/never" }
"#;
    let base_url = format!("base={}", base(&server));
    let started = Instant::now();
    let (output, events) = run_json(
        Test::new().write("hang.yaml", runbook),
        "hang.yaml",
        &["--input", &base_url],
    );
    let elapsed = started.elapsed();
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);
    let call = ended(&events, "call");
    assert_eq!(call["status"], "failed", "{call}");
    assert!(error_of(call).contains("timed out after 300ms"), "{call}");
    assert_eq!(
        log.on("GET", "/never").len(),
        1,
        "the request did reach the server"
    );
    let last = events.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(last["duration_ms"].as_u64().unwrap() < 10_000, "{last}");
    assert!(
        elapsed < Duration::from_secs(10),
        "the run did not wait for the server: {elapsed:?}"
    );
}

#[test]
fn a_step_timeout_kills_a_hanging_command_and_its_children() {
    let runbook = r#"version: 1
name: hang
steps:
  - id: hang
    timeout: 300ms
    exec: { script: 'sleep 30 & echo $! > child; wait' }
"#;
    let started = Instant::now();
    let (output, events) = run_json(Test::new().write("hang.yaml", runbook), "hang.yaml", &[]);
    let elapsed = started.elapsed();
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);
    let hang = ended(&events, "hang");
    assert_eq!(hang["status"], "failed", "{hang}");
    assert!(error_of(hang).contains("timed out after 300ms"), "{hang}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    let child: i32 = std::fs::read_to_string(output.dir().join("child"))
        .expect("the script wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(child > 1);
    // SIGKILL is delivered at once, but dying takes the kernel a moment.
    let limit = Instant::now() + Duration::from_secs(2);
    while !process_is_gone(child as u32) && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = process_is_gone(child as u32);
    if !gone {
        // Don't leave it behind for the rest of the suite.
        unsafe { libc::kill(child, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the background `sleep 30` ({child}) outlived the step"
    );
}

#[test]
fn a_whole_template_keeps_its_type_on_the_wire_and_through_with() {
    let log = Log::default();
    let server = {
        let log = log.clone();
        Server::start(move |request| {
            log.push(request);
            Response::json(200, "OK", &json!({}))
        })
    };
    let main = r#"version: 1
name: types
inputs:
  base: { type: string }
  count: { type: integer, default: 3 }
  jobs: { type: array, default: [orders, billing] }
steps:
  - id: direct
    http:
      method: POST
      url: "{{inputs.base}}/direct"
      json: { n: "{{inputs.count}}", jobs: "{{inputs.jobs}}", label: "n={{inputs.count}}" }
  - id: called
    uses: lib/post.yaml
    with: { base: "{{inputs.base}}", n: "{{inputs.count}}", jobs: "{{inputs.jobs}}" }
"#;
    let lib = r#"version: 1
name: post
inputs:
  base: { type: string }
  n: { type: integer }
  jobs: { type: array }
steps:
  - id: send
    http:
      method: POST
      url: "{{inputs.base}}/called"
      json: { n: "{{inputs.n}}", jobs: "{{inputs.jobs}}" }
"#;
    let base_url = format!("base={}", base(&server));
    let (output, events) = run_json(
        Test::new()
            .write("types.yaml", main)
            .write("lib/post.yaml", lib),
        "types.yaml",
        &["--input", &base_url],
    );
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    assert_eq!(ended(&events, "called/send")["status"], "succeeded");

    let body = |path: &str| -> Value {
        let requests = log.on("POST", path);
        assert_eq!(requests.len(), 1, "{path}: {requests:#?}");
        serde_json::from_slice(&requests[0].body).expect("a JSON body")
    };
    let direct = body("/direct");
    assert_eq!(
        direct,
        json!({"n": 3, "jobs": ["orders", "billing"], "label": "n=3"}),
        "a lone template keeps the value's type; inside text it is text"
    );
    assert!(
        direct["n"].is_u64(),
        "the number 3, not the string: {direct}"
    );
    assert_eq!(
        body("/called"),
        json!({"n": 3, "jobs": ["orders", "billing"]}),
        "`with` passes the number and the list to the called runbook"
    );
}

#[test]
fn an_item_is_shell_quoted_in_a_script() {
    let runbook = r#"version: 1
name: quoting
steps:
  - id: record
    for_each: '["a; touch pwned", "b", "$(touch pwned2) `touch pwned3` ''q''"]'
    exec: { script: 'echo {{item}} >> seen' }
"#;
    let (output, events) = run_json(Test::new().write("q.yaml", runbook), "q.yaml", &[]);
    let dir = output.dir();
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    assert_eq!(ended(&events, "record")["status"], "succeeded");
    let seen = std::fs::read_to_string(dir.join("seen")).expect("the script wrote `seen`");
    let mut lines: Vec<&str> = seen.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["$(touch pwned2) `touch pwned3` 'q'", "a; touch pwned", "b"],
        "each item is one word, printed as written"
    );
    for file in ["pwned", "pwned2", "pwned3"] {
        assert!(!dir.join(file).exists(), "an item ran as a command: {file}");
    }
}

#[test]
fn a_template_naming_a_missing_value_fails_the_step_before_the_request() {
    let log = Log::default();
    let server = {
        let log = log.clone();
        Server::start(move |request| {
            log.push(request);
            Response::json(200, "OK", &json!({"job": {"name": "orders"}}))
        })
    };
    let runbook = r#"version: 1
name: strict
inputs:
  base: { type: string }
steps:
  - id: lookup
    http: { url: "{{inputs.base}}/job" }
    outputs: { job: '.body.job' }
  - id: use
    http:
      method: POST
      url: "{{inputs.base}}/use"
      json: { id: "{{steps.lookup.outputs.job.id}}" }
"#;
    let base_url = format!("base={}", base(&server));
    let (output, events) = run_json(
        Test::new().write("strict.yaml", runbook),
        "strict.yaml",
        &["--input", &base_url],
    );
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);
    assert_eq!(
        ended(&events, "lookup")["outputs"]["job"],
        json!({"name": "orders"})
    );
    let used = ended(&events, "use");
    assert_eq!(used["status"], "failed", "{used}");
    assert!(
        error_of(used).contains("steps.lookup.outputs.job.id"),
        "the error names the missing path: {used}"
    );
    assert!(
        log.on("POST", "/use").is_empty(),
        "nothing is sent with a hole in it"
    );
}

#[test]
fn a_bearer_token_from_a_secret_reaches_the_server_and_is_masked_in_events() {
    const TOKEN: &str = "tok-7c6b5a-4d3e2f";
    let log = Log::default();
    let server = {
        let log = log.clone();
        Server::start(move |request| {
            log.push(request);
            let auth = request.header("authorization").unwrap_or("");
            Response::json(200, "OK", &json!({"you_sent": auth}))
        })
    };
    let runbook = r#"version: 1
name: bearer
inputs:
  base: { type: string }
secrets:
  token: { env: RUNBOOK_TEST_BEARER }
steps:
  - id: call
    http:
      url: "{{inputs.base}}/whoami"
      auth: { bearer: "{{secrets.token}}" }
    outputs: { echo: '.body.you_sent' }
outputs:
  echo: '.steps.call.outputs.echo'
"#;
    let base_url = format!("base={}", base(&server));
    let (output, events) = run_json(
        Test::new()
            .write("bearer.yaml", runbook)
            .env("RUNBOOK_TEST_BEARER", TOKEN),
        "bearer.yaml",
        &["--input", &base_url],
    );
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let requests = log.on("GET", "/whoami");
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "the secret's value is sent"
    );
    assert_eq!(ended(&events, "call")["outputs"]["echo"], "Bearer ***");
    assert_eq!(events.last().unwrap()["outputs"]["echo"], "Bearer ***");
    for (stream, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(!text.contains(TOKEN), "{stream} leaks the secret:\n{text}");
    }
}

#[test]
fn an_http_timeout_bounds_each_request_and_the_attempt_is_retried() {
    let (log, server) = hanging_server();
    let runbook = r#"version: 1
name: hang
inputs:
  base: { type: string }
steps:
  - id: call
    retry: { attempts: 2, delay: 10ms }
    http: { url: "{{inputs.base}}/never", timeout: 300ms }
"#;
    let base_url = format!("base={}", base(&server));
    let (output, events) = run_json(
        Test::new().write("hang.yaml", runbook),
        "hang.yaml",
        &["--input", &base_url],
    );
    assert_eq!(output.code, 1, "{}\n{}", output.stderr, output.stdout);
    let call = ended(&events, "call");
    assert_eq!(call["attempts"], 2, "{call}");
    assert!(error_of(call).contains("timed out"), "{call}");
    assert_eq!(log.on("GET", "/never").len(), 2, "one request per attempt");
    assert!(events.last().unwrap()["duration_ms"].as_u64().unwrap() < 10_000);
}
