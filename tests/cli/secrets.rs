//! Secrets through the real binary: whatever their value (a word that names an event field,
//! a number, a PEM key with newlines, quotes and backslashes), they never reach the terminal,
//! `--output json`, `runs show` or the bytes of the store, in any form; and a step that reads
//! an output carrying one gets the real value, in a live run and after a resume.

use crate::durable::Bench;
use crate::events::events;
use crate::run_http::server::{Response, Server};
use crate::support::{Output, Test};
use serde_json::Value;

const KEY: &str = "k3y-for-tests-0123456789abcdefghijklmnop";

/// Runs the binary in the bench's directory and store, with these variables set.
fn runbook(bench: &Bench, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut test = Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .args(args.iter().copied());
    for (name, value) in env {
        test = test.env(*name, *value);
    }
    test.run()
}

/// Everything a person or a tool could read of a run: what `run` printed (JSON and human),
/// `runs show` in every format, and the raw bytes of the store's files (db, -wal, -shm).
fn everything_written(bench: &Bench, runs: &[&Output], run_id: &str) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    for (n, output) in runs.iter().enumerate() {
        written.push((
            format!("run {n} stdout"),
            output.stdout.clone().into_bytes(),
        ));
        written.push((
            format!("run {n} stderr"),
            output.stderr.clone().into_bytes(),
        ));
    }
    for format in ["text", "json", "markdown"] {
        let shown = runbook(bench, &["runs", "show", run_id, "--format", format], &[]);
        assert_eq!(shown.code, 0, "{}", shown.stderr);
        written.push((
            format!("runs show --format {format}"),
            shown.stdout.into_bytes(),
        ));
    }
    for entry in std::fs::read_dir(bench.db().parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        written.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    written
}

fn assert_absent(written: &[(String, Vec<u8>)], leaks: &[String]) {
    for (place, bytes) in written {
        for leak in leaks {
            let found = bytes.windows(leak.len()).any(|w| w == leak.as_bytes());
            assert!(
                !found,
                "{place} holds {leak:?}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

const WORDS: &str = r#"version: 1
name: words
secrets:
  word: { env: RUNBOOK_TEST_WORD }
steps:
  - id: say
    exec: { command: [printf, "v=%s", "{{secrets.word}}"] }
    outputs: { said: .stdout }
  - id: fail
    needs: [say]
    continue_on_failure: true
    exec: { command: [sh, -c, 'echo "no v=$1" >&2; exit 1', sh, "{{secrets.word}}"] }
outputs:
  said: .steps.say.outputs.said
"#;

#[test]
fn a_secret_that_names_an_event_field_is_masked_and_the_events_keep_their_shape() {
    for word in ["status", "step", "path", "ms"] {
        let bench = Bench::new();
        bench.write("words.yaml", WORDS);
        let env = [("RUNBOOK_TEST_WORD", word)];
        let json = runbook(
            &bench,
            &["run", "words.yaml", "--output", "json", "--run-id", "j"],
            &env,
        );
        assert_eq!(json.code, 0, "{word}: {}", json.stderr);
        let parsed = events(&json.stdout);
        let said = parsed
            .iter()
            .find(|e| e["event"] == "step_ended" && e["path"] == "say")
            .unwrap_or_else(|| panic!("{word}: no step_ended of `say`: {}", json.stdout));
        assert_eq!(said["status"], "succeeded", "{word}: {said}");
        assert_eq!(said["outputs"]["said"], "v=***", "{word}: {said}");
        let human = runbook(&bench, &["run", "words.yaml", "--run-id", "h"], &env);
        assert_eq!(human.code, 0, "{word}: {}", human.stderr);
        assert!(human.stdout.contains("v=***"), "{word}: {}", human.stdout);
        let shown = bench.show_json("j");
        assert_eq!(shown["outputs"]["said"], "v=***", "{word}: {shown}");
        let mut written = everything_written(&bench, &[&json, &human], "j");
        written.extend(everything_written(&bench, &[], "h"));
        assert_absent(&written, &[format!("v={word}")]);
    }
}

#[test]
fn a_numeric_secret_is_masked_whatever_type_it_ends_up_in() {
    let bench = Bench::new();
    bench.write(
        "pin.yaml",
        r#"version: 1
name: pin
secrets:
  pin: { env: PIN }
steps:
  - id: read
    exec: { command: [echo, "{{secrets.pin}}"] }
    outputs:
      number: .stdout | tonumber
      text: .stdout
      doubled: '[.stdout | tonumber, 1]'
outputs:
  number: .steps.read.outputs.number
"#,
    );
    let env = [("PIN", "48213957")];
    let json = runbook(
        &bench,
        &["run", "pin.yaml", "--output", "json", "--run-id", "p"],
        &env,
    );
    assert_eq!(json.code, 0, "{}", json.stderr);
    let ended = events(&json.stdout)
        .into_iter()
        .find(|e| e["event"] == "step_ended")
        .unwrap();
    assert_eq!(ended["outputs"]["number"], "***", "{ended}");
    assert_eq!(ended["outputs"]["doubled"], serde_json::json!(["***", 1]));
    let human = runbook(&bench, &["run", "pin.yaml", "--run-id", "h"], &env);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let mut written = everything_written(&bench, &[&json, &human], "p");
    written.extend(everything_written(&bench, &[], "h"));
    assert_absent(&written, &["48213957".to_owned()]);
}

/// A small PEM-like value: newlines, a quote, a backslash, a space, `+`, `/` and `=`.
const PEM: &str = "-----BEGIN TEST KEY-----\nMIIBq\"uo+te/\\back=slash\n-----END TEST KEY-----";

/// Every form the PEM value could leak in: raw, JSON-escaped (once and twice),
/// percent-encoded (`%20` and `+` for spaces), and on one line.
fn pem_forms() -> Vec<String> {
    let json = serde_json::to_string(PEM).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let twice = serde_json::to_string(&json).unwrap();
    let twice = twice[1..twice.len() - 1].to_owned();
    let url =
        percent_encoding::utf8_percent_encode(PEM, percent_encoding::NON_ALPHANUMERIC).to_string();
    let one_line = PEM.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut forms = vec![
        PEM.to_owned(),
        json,
        twice,
        url.clone(),
        url.replace("%20", "+"),
        one_line,
    ];
    forms.push(url.replace("%2D", "-"));
    // The distinctive middle alone, in each form, so a partly masked value is caught too.
    forms.extend([
        "MIIBq\"uo+te/\\back=slash".to_owned(),
        r#"MIIBq\"uo+te/\\back=slash"#.to_owned(),
    ]);
    forms
}

#[test]
fn a_pem_key_never_appears_raw_escaped_or_encoded_in_errors_or_outputs() {
    let server = Server::start(|request| {
        let body = request.body_text();
        match request.path.as_str() {
            "/json" => Response::json(
                500,
                "Internal Server Error",
                &serde_json::json!({"error": "bad key", "key": body}),
            ),
            "/text" => Response::text(
                500,
                "Internal Server Error",
                Some("text/plain"),
                &format!("bad key {body}"),
            ),
            _ => {
                let encoded = percent_encoding::utf8_percent_encode(
                    &body,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                Response::text(
                    400,
                    "Bad Request",
                    Some("text/plain"),
                    &format!("retry at /login?key={encoded}"),
                )
            }
        }
    });
    let bench = Bench::new();
    bench.write(
        "pem.yaml",
        r#"version: 1
name: pem
secrets:
  key: { env: TEST_PEM }
inputs:
  base: { type: string }
defaults:
  retry: { attempts: 1 }
steps:
  - id: jq_error
    continue_on_failure: true
    exec: { command: [printf, "%s", "{{secrets.key}}"] }
    outputs: { n: .stdout | tonumber }
  - id: json_command
    exec: { command: [jq, -cn, --arg, k, "{{secrets.key}}", "{key: $k}"] }
    outputs: { doc: .stdout, parsed: .stdout | fromjson }
  - id: json_body
    continue_on_failure: true
    http: { method: POST, url: "{{inputs.base}}/json", body: "{{secrets.key}}" }
  - id: text_body
    continue_on_failure: true
    http: { method: POST, url: "{{inputs.base}}/text", body: "{{secrets.key}}" }
  - id: url_body
    continue_on_failure: true
    http: { method: POST, url: "{{inputs.base}}/url", body: "{{secrets.key}}" }
"#,
    );
    let base = format!("base={}", server.url(""));
    let env = [("TEST_PEM", PEM)];
    let json = runbook(
        &bench,
        &[
            "run", "pem.yaml", "--output", "json", "--run-id", "k", "--input", &base,
        ],
        &env,
    );
    assert_eq!(json.code, 0, "{}", json.stderr);
    let parsed = events(&json.stdout);
    let ended = |path: &str| {
        parsed
            .iter()
            .find(|e| e["event"] == "step_ended" && e["path"] == path)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for failing in ["jq_error", "json_body", "text_body", "url_body"] {
        let event = ended(failing);
        assert_eq!(event["status"], "failed", "{event}");
        assert!(
            event["error"].as_str().unwrap_or_default().contains("***"),
            "the error is masked, not dropped: {event}"
        );
    }
    assert_eq!(ended("json_command")["outputs"]["parsed"]["key"], "***");
    let human = runbook(
        &bench,
        &["run", "pem.yaml", "--run-id", "h", "--input", &base],
        &env,
    );
    assert_eq!(human.code, 0, "{}", human.stderr);
    let mut written = everything_written(&bench, &[&json, &human], "k");
    written.extend(everything_written(&bench, &[], "h"));
    assert_absent(&written, &pem_forms());
}

/// `a` puts the secret in an output; `check` reads it and exits non-zero unless it is the
/// real value. With `gate` between them, the run parks and `check` runs after a resume.
fn reader(gated: bool) -> String {
    let gate = if gated {
        "  - id: gate\n    needs: [a]\n    approval: { prompt: go? }\n"
    } else {
        ""
    };
    let needs = if gated { "[a, gate]" } else { "[a]" };
    format!(
        r#"version: 1
name: reader
secrets:
  token: {{ env: TEST_TOKEN }}
steps:
  - id: a
    exec: {{ command: [printf, "Bearer %s", "{{{{secrets.token}}}}"] }}
    outputs: {{ header: .stdout }}
{gate}  - id: check
    needs: {needs}
    exec:
      command: [sh, -c, 'test "$1" = "Bearer $2" && echo real >> side', sh, "{{{{steps.a.outputs.header}}}}", "{{{{secrets.token}}}}"]
"#
    )
}

const TOKEN: &str = "tok-Zq81-live";

#[test]
fn a_step_reading_an_output_that_carries_a_secret_gets_the_real_value() {
    let bench = Bench::new();
    bench.write("reader.yaml", &reader(false));
    let run = runbook(
        &bench,
        &["run", "reader.yaml", "--output", "json", "--run-id", "r"],
        &[("TEST_TOKEN", TOKEN)],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(bench.read("side"), "real\n");
    let a = events(&run.stdout)
        .into_iter()
        .find(|e| e["event"] == "step_ended" && e["path"] == "a")
        .unwrap();
    assert_eq!(a["outputs"]["header"], "Bearer ***", "{a}");
    assert_absent(
        &everything_written(&bench, &[&run], "r"),
        &[TOKEN.to_owned()],
    );
}

#[test]
fn after_a_resume_the_step_gets_the_real_value_with_the_key_and_stops_clearly_without() {
    let bench = Bench::new();
    bench.write("reader.yaml", &reader(true));
    let with_key = [("TEST_TOKEN", TOKEN), ("RUNBOOK_SECRET_KEY", KEY)];
    let parked = runbook(&bench, &["run", "reader.yaml", "--run-id", "g"], &with_key);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let approved = runbook(&bench, &["approve", "g", "gate"], &[]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);

    // Without the key the run stops before `check` runs, says why and how, and can go on.
    let keyless = runbook(&bench, &["resume", "g"], &[("TEST_TOKEN", TOKEN)]);
    assert_eq!(keyless.code, 3, "{}", keyless.stderr);
    for expected in [
        "steps.a.outputs.header",
        "carried a secret",
        "RUNBOOK_SECRET_KEY",
    ] {
        assert!(
            keyless.stderr.contains(expected),
            "{expected}: {}",
            keyless.stderr
        );
    }
    assert_eq!(bench.read("side"), "", "check did not run");

    let resumed = runbook(&bench, &["resume", "g"], &with_key);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(bench.read("side"), "real\n");
    assert_absent(
        &everything_written(&bench, &[&parked, &keyless, &resumed], "g"),
        &[TOKEN.to_owned()],
    );
}

#[test]
fn a_run_started_without_a_key_fails_the_reading_step_after_a_resume_and_says_why() {
    let bench = Bench::new();
    bench.write("reader.yaml", &reader(true));
    let env = [("TEST_TOKEN", TOKEN)];
    let parked = runbook(&bench, &["run", "reader.yaml", "--run-id", "n"], &env);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert_eq!(runbook(&bench, &["approve", "n", "gate"], &[]).code, 0);
    let resumed = runbook(&bench, &["resume", "n", "--output", "json"], &env);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    let check = events(&resumed.stdout)
        .into_iter()
        .find(|e| e["event"] == "step_ended" && e["path"] == "check")
        .unwrap();
    let error = check["error"].as_str().unwrap();
    for expected in [
        "steps.a.outputs.header",
        "started without RUNBOOK_SECRET_KEY",
    ] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
    assert_eq!(bench.read("side"), "");
}

#[test]
fn a_one_character_secret_is_refused_by_name_before_anything_runs() {
    let output = Test::new()
        .write(
            "s.yaml",
            "version: 1\nname: s\nsecrets:\n  pin: { env: ONE_CHAR }\nsteps:\n  - id: a\n    exec: { script: 'touch ran' }\n",
        )
        .env("ONE_CHAR", "7")
        .args(["run", "s.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("secret `pin` of runbook `s` is 1 character(s) long")
            && output.stderr.contains("at least 2 characters"),
        "{}",
        output.stderr
    );
    assert!(!output.dir().join("ran").exists());
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let test = Test::new().write(
        "s.yaml",
        "version: 1\nname: s\nsteps:\n  - id: a\n    exec: { script: 'touch ran' }\n",
    );
    let key_file = test.dir().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = test
        .env("RUNBOOK_SECRET_KEY_FILE", &key_file)
        .args(["run", "s.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(output.stderr.contains("chmod 600"), "{}", output.stderr);
    assert!(!output.dir().join("ran").exists());
}
