//! `objectives`: validated with file:line:col, and measured in the reports of real runs.

use crate::support::Test;

const BAD: &str = r#"version: 1
name: bad
steps:
  - { id: disaster, exec: { command: ["true"] } }
objectives:
  rto: { from: disastr, to: verify, target: 15m }
  rpo: { value: '.steps.x.outputs | (', target: 5m }
  late: { from: run.started, to: disaster, target: 5 minutes }
  none: { target: 1m }
  both: { from: disaster, to: disaster, value: '1', target: 1m }
"#;

#[test]
fn every_wrong_objective_is_reported_with_its_place() {
    let output = Test::new()
        .write("bad.yaml", BAD)
        .args(["validate", "bad.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    let stderr = &output.stderr;
    for expected in [
        "objective `from` names no step `disastr`",
        "bad.yaml:6:16]",
        "did you mean `disaster`?",
        "objective `to` names no step `verify`",
        "bad.yaml:6:29]",
        "invalid jq in objective value",
        "bad.yaml:7:38]",
        "invalid duration `5 minutes`",
        "bad.yaml:8:52]",
        "objective `none` measures nothing",
        "objective `both` sets both `value` and `from`/`to`",
        "6 problems",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

/// A drill that meets one objective, misses one, computes one, and cannot measure one.
pub const DRILL: &str = r#"version: 1
name: drill
inputs:
  fail: { type: boolean, default: false }
steps:
  - id: disaster
    exec: { command: [echo, "disaster <script>alert(1)</script>"] }
  - id: restore
    needs: [disaster]
    exec: { script: 'echo 42' }
    outputs: { age: '.stdout | tonumber' }
  - id: verify
    needs: [restore]
    exec: { script: 'sleep 0.3; if {{inputs.fail}}; then echo "not running" >&2; exit 1; fi' }
  - id: cleanup
    needs: [verify]
    when: 'false'
    exec: { command: ["true"] }
objectives:
  rto: { description: disaster to verified, from: disaster, to: verify, target: 1h }
  quick: { from: run.started, to: verify, target: 100ms }
  rpo: { value: '.steps.restore.outputs.age', target: 5m }
  never: { from: disaster, to: cleanup, target: 1m }
"#;

/// Runs the binary in one directory that keeps `drill.yaml` and a store.
pub struct Drills {
    pub dir: tempfile::TempDir,
    store: String,
}

impl Drills {
    pub fn new() -> Drills {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("drill.yaml"), DRILL).expect("write the runbook");
        let store = format!("sqlite:{}", dir.path().join("runs.db").display());
        Drills { dir, store }
    }

    pub fn runbook(&self, args: &[&str]) -> crate::support::Output {
        Test::new()
            .current_dir(self.dir.path())
            .args(args.iter().copied())
            .args(["--store", self.store.as_str()])
            .run()
    }

    /// Runs the drill as `run_id`; `fail` makes its `verify` fail.
    pub fn drill(&self, run_id: &str, fail: bool) {
        let fail = format!("fail={fail}");
        let run = self.runbook(&["run", "drill.yaml", "--run-id", run_id, "--input", &fail]);
        assert_eq!(
            run.code,
            if fail == "fail=true" { 1 } else { 0 },
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_real_run_reports_each_objective_met_missed_or_not_measurable() {
    let drills = Drills::new();
    drills.drill("d1", false);
    let shown = drills.runbook(&["runs", "show", "d1", "--format", "json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let report: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    let outcome = |name: &str| {
        report["objectives"]
            .as_array()
            .expect("objectives")
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no objective {name}: {}", shown.stdout))
            .clone()
    };
    assert_eq!(outcome("rto")["outcome"], "met");
    assert!(outcome("rto")["measured_ms"].as_u64().unwrap() >= 300);
    assert_eq!(outcome("rto")["target_ms"], 3_600_000);
    assert_eq!(outcome("quick")["outcome"], "missed");
    assert_eq!(outcome("rpo")["outcome"], "met");
    assert_eq!(outcome("rpo")["measured_ms"], 42_000);
    assert_eq!(outcome("never")["outcome"], "not_measurable");
    assert!(
        outcome("never")["measured_ms"].is_null(),
        "{}",
        shown.stdout
    );

    let text = drills.runbook(&["runs", "show", "d1"]);
    assert!(
        text.stdout
            .contains("never             1m          -  not measurable: step `cleanup` skipped"),
        "{}",
        text.stdout
    );

    let markdown = drills.runbook(&["runs", "show", "d1", "--format", "markdown"]);
    assert!(
        markdown
            .stdout
            .contains("| `rto`: disaster to verified | 1h | "),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains("| **met** |"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains("| **missed** |"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| **not measurable** | step `cleanup` skipped |"),
        "{}",
        markdown.stdout
    );
}
