//! A run parked on approvals names the steps it waits for, wherever its end is shown: the
//! summary of `run`, the `run_ended` event and `runs show`.

use crate::events::events;
use crate::support::Test;
use serde_json::Value;

const TWO_GATES: &str = r#"version: 1
name: gates
steps:
  - id: gate_a
    needs: []
    approval: { prompt: "first?" }
  - id: gate_b
    needs: []
    approval: { prompt: "second?" }
  - id: act
    needs: [gate_a, gate_b]
    exec: { command: [echo, act] }
"#;

const REASON: &str = "waiting for approval of gate_a, gate_b";

#[test]
fn a_parked_run_names_the_approvals_it_waits_for_in_the_summary_the_event_and_runs_show() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("gates.yaml"), TWO_GATES).expect("write the runbook");
    let store = format!("sqlite:{}", dir.path().join("runs.db").display());
    let runbook = |args: &[&str]| {
        Test::new()
            .current_dir(dir.path())
            .args(args.iter().copied())
            .args(["--store", store.as_str()])
            .run()
    };

    let human = runbook(&["run", "gates.yaml", "--run-id", "human"]);
    assert_eq!(human.code, 3, "{}", human.stderr);
    assert!(
        human
            .stderr
            .contains(&format!("run human waiting ({REASON})")),
        "{}",
        human.stderr
    );

    let json = runbook(&["run", "gates.yaml", "--run-id", "json", "--output", "json"]);
    assert_eq!(json.code, 3, "{}", json.stderr);
    let ended: Vec<Value> = events(&json.stdout)
        .into_iter()
        .filter(|e| e["event"] == "run_ended")
        .collect();
    assert_eq!(ended.len(), 1, "{}", json.stdout);
    assert_eq!(ended[0]["status"], "waiting");
    assert_eq!(ended[0]["reason"], REASON);

    let shown = runbook(&["runs", "show", "human"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains(&format!("status    waiting ({REASON})")),
        "{}",
        shown.stdout
    );
    let shown_json = runbook(&["runs", "show", "json", "--format", "json"]);
    let report: Value = serde_json::from_str(&shown_json.stdout).expect("a JSON report");
    assert_eq!(report["reason"], REASON, "{report:#}");

    // Resuming before anyone answers parks again, and says the same.
    let resumed = runbook(&["resume", "human"]);
    assert_eq!(resumed.code, 3, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains(&format!("run human waiting ({REASON})")),
        "{}",
        resumed.stderr
    );
}
