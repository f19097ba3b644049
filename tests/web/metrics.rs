//! `/metrics` through the real serve: after real runs, in Prometheus text format that a
//! small parser of the format accepts, with values that match what ran; signed in, or open
//! when `http.metrics_public` says so.

use crate::support::{VIEWER_TOKEN, WebServe};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One sample: its name and labels as written, and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch a malformed line: `# HELP` and `# TYPE`
/// comments, then `name{label="value",...} number` lines whose family was typed first.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["gauge", "counter", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "typed twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().expect("a closed label value") {
                            '\\' => value.push(chars.next().expect("an escape")),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(key, value);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| typed.get(*base).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(&name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn run(dir: &Path, file: &str, run_id: &str) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", file, "--run-id", run_id])
        .env_remove("RUNBOOK_STORE")
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .output()
        .expect("run runbook")
        .status
        .code()
        .unwrap_or(-1)
}

#[test]
fn metrics_count_runs_step_durations_approvals_and_fire_lag() {
    let serve = WebServe::new()
        .config("schedules:\n  - name: tick\n    runbook: tick.yaml\n    cron: \"* * * * * *\"\n")
        .write(
            "tick.yaml",
            "version: 1\nname: tick\nsteps:\n  - id: beat\n    exec: { script: 'true' }\n",
        )
        .write(
            "fine.yaml",
            "version: 1\nname: fine\nsteps:\n  - id: nap\n    exec: { script: 'sleep 0.7' }\n",
        )
        .write(
            "failing.yaml",
            "version: 1\nname: failing\nsteps:\n  - id: boom\n    exec: { script: 'exit 1' }\n",
        )
        .write(
            "gated.yaml",
            "version: 1\nname: gated\nsteps:\n  - id: gate\n    approval: { prompt: go? }\n",
        )
        .start();
    let dir = serve.dir.path();
    assert_eq!(run(dir, "fine.yaml", "fine-1"), 0);
    assert_eq!(run(dir, "fine.yaml", "fine-2"), 0);
    assert_eq!(run(dir, "failing.yaml", "failing-1"), 1);
    assert_eq!(run(dir, "gated.yaml", "gated-1"), 3);

    // Signed out: refused, like every API route.
    let anonymous = serve.get("/metrics", None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    let mut samples = Vec::new();
    serve.wait_for("a fire of the schedule", Duration::from_secs(30), || {
        let scraped = serve.get("/metrics", Some(VIEWER_TOKEN));
        assert_eq!(scraped.status, 200, "{}", scraped.body);
        assert!(
            scraped
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            scraped.headers
        );
        samples = parse(&scraped.body);
        value(
            &samples,
            "runbook_schedule_fire_lag_seconds",
            &[("schedule", "tick")],
        )
        .is_some()
    });
    let runs = |runbook: &str, status: &str| {
        value(
            &samples,
            "runbook_runs",
            &[("runbook", runbook), ("status", status)],
        )
    };
    assert_eq!(runs("fine", "succeeded"), Some(2.0));
    assert_eq!(runs("failing", "failed"), Some(1.0));
    assert_eq!(runs("gated", "waiting"), Some(1.0));
    assert_eq!(runs("fine", "failed"), None);
    assert_eq!(value(&samples, "runbook_approvals_pending", &[]), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "runbook_approvals_pending_by_runbook",
            &[("runbook", "gated")]
        ),
        Some(1.0)
    );

    // Two runs of `nap`, each about 0.7 s: above the 0.5 s bucket, within the 1 s one.
    let nap = [("runbook", "fine"), ("step", "nap")];
    assert_eq!(
        value(&samples, "runbook_step_duration_seconds_count", &nap),
        Some(2.0)
    );
    let sum = value(&samples, "runbook_step_duration_seconds_sum", &nap).unwrap();
    assert!((1.4..10.0).contains(&sum), "{sum}");
    let bucket = |le: &str| {
        value(
            &samples,
            "runbook_step_duration_seconds_bucket",
            &[("runbook", "fine"), ("step", "nap"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.5"), Some(0.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    // Buckets only grow.
    let mut last = 0.0;
    for sample in samples.iter().filter(|s| {
        s.name == "runbook_step_duration_seconds_bucket"
            && s.labels.get("step").map(String::as_str) == Some("nap")
    }) {
        assert!(sample.value >= last, "{sample:?}");
        last = sample.value;
    }

    let lag = value(
        &samples,
        "runbook_schedule_fire_lag_seconds",
        &[("schedule", "tick")],
    )
    .unwrap();
    assert!((0.0..10.0).contains(&lag), "{lag}");
}

#[test]
fn metrics_are_open_when_the_configuration_says_so() {
    let serve = WebServe::new()
        .config("schedules: []\nhttp:\n  users_file: users.yaml\n  metrics_public: true\n")
        .start();
    let scraped = serve.get("/metrics", None);
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    let samples = parse(&scraped.body);
    assert_eq!(value(&samples, "runbook_approvals_pending", &[]), Some(0.0));
}
