//! Values from inputs reach scripts and URLs as data: a value can never run a command it
//! was not written to run, nor send a request somewhere the runbook did not point.

use crate::events::{ended, run_json};
use crate::run_http::server::{Request, Response, Server};
use crate::support::Test;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Values that run a command, end a quote or a heredoc, or escape, when pasted into a script.
const HOSTILE: &[&str] = &[
    "$(touch PWNED)",
    "`touch PWNED`",
    "\"; touch PWNED; \"",
    "'; touch PWNED; '",
    "'",
    "\\",
    "line one\nline two",
    "x\nEOF\ntouch PWNED\ncat <<EOF",
    "${HOME} $HOME * ~",
    " leading and trailing ",
    "\\\"; touch PWNED #",
];

/// Every way a script commonly holds a value: each writes the value to its own file.
const SCRIPT: &str = r#"version: 1
name: contexts
inputs:
  values: { type: array }
steps:
  - id: each
    for_each: '.inputs.values'
    max_parallel: 1
    exec:
      script: |
        mkdir -p out/{{index}}
        printf '%s' {{item}} > out/{{index}}/unquoted
        printf '%s' "{{item}}" > out/{{index}}/double-quoted
        printf '%s' "value: {{item}} (end)" > out/{{index}}/inside-text
        printf '%s' {{item}} | cat > out/{{index}}/pipeline
        v="$(printf '%s' "{{item}}")"; printf '%s' "$v" > out/{{index}}/substitution
        cat > out/{{index}}/heredoc <<EOF
        {{item}}
        EOF
        cat > out/{{index}}/heredoc-tabs <<-EOF
        	{{item}}
        	EOF
        # a comment naming {{item}}
        [ {{item}} = {{item}} ] && printf ok > out/{{index}}/test
"#;

#[test]
fn script_values_arrive_byte_for_byte_and_run_nothing_in_every_shell_context() {
    let inputs = json!({ "values": HOSTILE }).to_string();
    let output = Test::new()
        .write("contexts.yaml", SCRIPT)
        .write("inputs.json", inputs)
        .args(["run", "contexts.yaml", "--inputs-file", "inputs.json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let dir = output.dir();
    assert!(
        !dir.join("PWNED").exists(),
        "a value ran a command: {}",
        output.stderr
    );
    for (index, value) in HOSTILE.iter().enumerate() {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(format!("out/{index}/{name}")))
                .unwrap_or_else(|e| panic!("out/{index}/{name} for {value:?}: {e}"))
        };
        for context in ["unquoted", "double-quoted", "pipeline", "substitution"] {
            assert_eq!(read(context), *value, "{context}");
        }
        assert_eq!(read("inside-text"), format!("value: {value} (end)"));
        assert_eq!(read("heredoc"), format!("{value}\n"), "heredoc");
        assert_eq!(read("heredoc-tabs"), format!("{value}\n"), "heredoc <<-");
        assert_eq!(read("test"), "ok");
    }
}

#[test]
fn a_value_where_the_shell_cannot_take_it_is_refused_before_anything_runs() {
    let runbook = "version: 1\nname: quoted\ninputs:\n  job: { type: string }\nsteps:\n  - id: a\n    exec:\n      script: |\n        touch ran\n        echo 'cancelling {{inputs.job}}'\n";
    let output = Test::new()
        .write("quoted.yaml", runbook)
        .args(["run", "quoted.yaml", "--input", "job=x"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("a template inside single quotes in a script"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("quoted.yaml:10:26"),
        "{}",
        output.stderr
    );
    assert!(!output.dir().join("ran").exists());
}

#[test]
fn a_branch_that_opens_a_quote_before_a_value_fails_the_step_without_running_it() {
    // `validate` reads both quotes and sees them closed; only rendering knows that just one
    // is there, so the check is repeated then.
    let runbook = r#"version: 1
name: branch
inputs:
  quote: { type: boolean, default: true }
  twice: { type: boolean, default: false }
  job: { type: string, default: "$(touch PWNED)" }
steps:
  - id: a
    retry: { attempts: 3, delay: 10ms }
    exec:
      script: |
        touch ran
        echo {{#if inputs.quote}}'{{/if}}{{#if inputs.twice}}'{{/if}}{{inputs.job}}
"#;
    let output = Test::new()
        .write("branch.yaml", runbook)
        .args(["run", "branch.yaml"])
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stderr.contains("inside single quotes"),
        "{}",
        output.stderr
    );
    assert!(!output.dir().join("ran").exists());
    assert!(!output.dir().join("PWNED").exists());
}

/// A server that answers 200 `{}` to everything and records each request.
fn recording_server() -> (Arc<Mutex<Vec<Request>>>, Server) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let log = Arc::clone(&log);
        Server::start(move |request| {
            log.lock().expect("log").push(request.clone());
            Response::json(200, "OK", &json!({}))
        })
    };
    (log, server)
}

const URLS: &str = r#"version: 1
name: urls
inputs:
  base: { type: string }
  port: { type: string }
  job: { type: string }
  mode: { type: string }
  raw: { type: string }
steps:
  - id: base_value
    needs: []
    http: { url: "{{inputs.base}}/jobs/{{inputs.job}}/status?mode={{inputs.mode}}&fixed=1" }
  - id: host_value
    needs: []
    http: { url: "http://127.0.0.1:{{inputs.port}}/host/{{inputs.job}}" }
  - id: raw_value
    needs: []
    http: { url: "{{inputs.base}}/{{{inputs.raw}}}" }
"#;

#[test]
fn url_values_are_one_path_segment_or_query_value_and_cannot_redirect_the_request() {
    let (log, server) = recording_server();
    let base = server.url("");
    let port = base.rsplit(':').next().expect("a port").to_owned();
    let (output, events) = run_json(
        Test::new().write("urls.yaml", URLS),
        "urls.yaml",
        &[
            "--input",
            &format!("base={base}"),
            "--input",
            &format!("port={port}"),
            "--input",
            "job=../../admin?x=1#",
            "--input",
            "mode=a&fixed=2#x y",
            "--input",
            "raw=api/v1?x=1",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    for step in ["base_value", "host_value", "raw_value"] {
        assert_eq!(ended(&events, step)["status"], "succeeded", "{step}");
    }
    let mut seen: Vec<(String, Vec<(String, String)>)> = log
        .lock()
        .expect("log")
        .iter()
        .map(|r| (r.path.clone(), r.query.clone()))
        .collect();
    seen.sort();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        seen,
        vec![
            ("/api/v1".to_owned(), vec![pair("x", "1")]),
            ("/host/..%2F..%2Fadmin%3Fx%3D1%23".to_owned(), vec![]),
            (
                "/jobs/..%2F..%2Fadmin%3Fx%3D1%23/status".to_owned(),
                vec![pair("mode", "a&fixed=2#x y"), pair("fixed", "1")]
            ),
        ]
    );
}

#[test]
fn a_url_value_that_would_climb_or_change_the_host_is_refused_without_a_request() {
    let (log, server) = recording_server();
    let runbook = r#"version: 1
name: climb
inputs:
  base: { type: string }
  job: { type: string }
  host: { type: string }
steps:
  - id: climb
    needs: []
    continue_on_failure: true
    http: { url: "{{inputs.base}}/jobs/{{inputs.job}}/cancel" }
  - id: host
    needs: []
    continue_on_failure: true
    http: { url: "http://{{inputs.host}}/jobs" }
"#;
    let host = server.url("").replace("http://", "") + "/admin?";
    let (output, events) = run_json(
        Test::new().write("climb.yaml", runbook),
        "climb.yaml",
        &[
            "--input",
            &format!("base={}", server.url("")),
            "--input",
            "job=..",
            "--input",
            &format!("host={host}"),
        ],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    let climb = ended(&events, "climb");
    assert_eq!(climb["status"], "failed");
    assert!(
        climb["error"]
            .as_str()
            .is_some_and(|e| e.contains("would climb the path")),
        "{climb}"
    );
    let host = ended(&events, "host");
    assert_eq!(host["status"], "failed");
    assert!(
        host["error"]
            .as_str()
            .is_some_and(|e| e.contains("host or port value")),
        "{host}"
    );
    assert!(log.lock().expect("log").is_empty());
}
