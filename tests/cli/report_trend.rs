//! `runbook report trend RUNBOOK`: the runs of one runbook over time, and an exit status that
//! gates a pipeline on the latest run's objectives.

use crate::support::Output;
use crate::support::Test;

const TIMED: &str = r#"version: 1
name: timed
inputs:
  seconds: { type: string, default: "0" }
steps:
  - id: work
    exec: { command: [sleep, "{{inputs.seconds}}"] }
objectives:
  rto: { from: run.started, to: work, target: 1s }
"#;

struct Runs {
    dir: tempfile::TempDir,
    store: String,
}

impl Runs {
    fn new() -> Runs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("timed.yaml"), TIMED).expect("write the runbook");
        let store = format!("sqlite:{}", dir.path().join("runs.db").display());
        Runs { dir, store }
    }

    fn runbook(&self, args: &[&str]) -> Output {
        Test::new()
            .current_dir(self.dir.path())
            .args(args.iter().copied())
            .args(["--store", self.store.as_str()])
            .run()
    }

    fn run(&self, run_id: &str, seconds: &str) {
        let input = format!("seconds={seconds}");
        let run = self.runbook(&["run", "timed.yaml", "--run-id", run_id, "--input", &input]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
}

#[test]
fn the_trend_follows_the_runs_and_fails_when_the_latest_missed_its_target() {
    let runs = Runs::new();
    runs.run("fast", "0");
    let none = runs.runbook(&["report", "trend", "other"]);
    assert_eq!(none.code, 1, "no run is no evidence: {}", none.stderr);
    assert!(none.stderr.contains("no runs of other"), "{}", none.stderr);
    let trend = runs.runbook(&["report", "trend", "timed"]);
    assert_eq!(trend.code, 0, "{}{}", trend.stdout, trend.stderr);
    assert!(trend.stdout.contains(" ✓"), "{}", trend.stdout);
    assert!(
        trend
            .stdout
            .contains("latest run fast: every objective met"),
        "{}",
        trend.stdout
    );

    runs.run("slow", "1.2");
    // By name or by file: the same runs.
    for runbook in ["timed", "timed.yaml"] {
        let trend = runs.runbook(&["report", "trend", runbook]);
        assert_eq!(trend.code, 1, "{}{}", trend.stdout, trend.stderr);
        let lines: Vec<&str> = trend.stdout.lines().collect();
        assert!(
            lines[1].starts_with("fast ") && lines[1].ends_with(" ✓"),
            "{}",
            trend.stdout
        );
        assert!(
            lines[2].starts_with("slow ") && lines[2].ends_with(" ✗"),
            "{}",
            trend.stdout
        );
        assert!(
            trend
                .stdout
                .contains("latest run slow: short of a target: rto"),
            "{}",
            trend.stdout
        );
    }

    let json = runs.runbook(&["report", "trend", "timed", "--format", "json"]);
    assert_eq!(json.code, 1);
    let trend: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let ids: Vec<&str> = trend["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "slow"]);
    assert_eq!(trend["runs"][0]["objectives"][0]["outcome"], "met");
    assert_eq!(trend["runs"][1]["objectives"][0]["outcome"], "missed");
    assert!(
        trend["runs"][1]["objectives"][0]["measured_ms"]
            .as_u64()
            .unwrap()
            > 1000
    );
    assert_eq!(trend["latest_short_of"], serde_json::json!(["rto"]));

    let last = runs.runbook(&[
        "report", "trend", "timed", "--last", "1", "--format", "json",
    ]);
    let trend: serde_json::Value = serde_json::from_str(&last.stdout).expect("json");
    assert_eq!(
        trend["runs"].as_array().unwrap().len(),
        1,
        "{}",
        last.stdout
    );

    let html = runs.runbook(&["report", "trend", "timed", "--format", "html"]);
    assert_eq!(html.code, 1);
    let page = &html.stdout;
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("data-chart=\"rto\""), "{page}");
    assert!(page.contains("class=\"target\""), "{page}");
    assert!(
        page.contains("<g class=\"point met\" data-run=\"fast\">"),
        "{page}"
    );
    assert!(
        page.contains("<g class=\"point missed\" data-run=\"slow\">"),
        "{page}"
    );
}
