//! A `for_each`, or a set of independent steps, larger than what the engine can hold open at
//! once: items and steps start as earlier ones end, so a fan-out bounded by nothing in the
//! runbook still finishes every one.

use std::process::Command;

/// Runs `runbook run RUNBOOK --output json` in `dir` under an open-file limit of 400, and
/// returns how many steps and items succeeded, after checking that the run did.
fn succeeded_under_400_open_files(dir: &std::path::Path, runbook: &str) -> usize {
    std::fs::write(dir.join("fan-out.yaml"), runbook).unwrap();
    let output = Command::new("sh")
        .args(["-c", "ulimit -n 400 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "fan-out.yaml", "--output", "json"])
        .current_dir(dir)
        .env(
            "RUNBOOK_STORE",
            format!("sqlite:{}", dir.join("runs.db").display()),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("run the runbook binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"step_ended\"") && line.contains("\"succeeded\""))
        .count()
}

#[test]
fn a_fan_out_beyond_the_open_file_limit_runs_every_item() {
    let dir = tempfile::tempdir().unwrap();
    // 300 items of `sleep`, each holding three open files while it runs: 900, more than the
    // 400 this process may open. Started all at once, items failed with "Too many open files".
    let runbook = "version: 1\nname: fan-out\nsteps:\n  - id: items\n    \
                   for_each: '[range(300)]'\n    exec: { command: [sleep, '0.3'] }\n";
    // Every item, and the step itself.
    assert_eq!(succeeded_under_400_open_files(dir.path(), runbook), 301);
}

#[test]
fn independent_steps_beyond_the_open_file_limit_all_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut runbook = String::from("version: 1\nname: wide\nsteps:\n");
    for index in 0..300 {
        runbook.push_str(&format!(
            "  - id: s{index}\n    needs: []\n    exec: {{ command: [sleep, '0.3'] }}\n"
        ));
    }
    assert_eq!(succeeded_under_400_open_files(dir.path(), &runbook), 300);
}
