//! A `for_each` larger than what the engine can hold open at once: its items start as earlier
//! ones end, so a fan-out bounded by nothing in the runbook still finishes every item.

use std::process::Command;

#[test]
fn a_fan_out_beyond_the_open_file_limit_runs_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("fan-out.yaml");
    // 300 items of `sleep`, each holding three open files while it runs: 900, more than the
    // 400 this process may open. Started all at once, items failed with "Too many open files".
    std::fs::write(
        &runbook,
        "version: 1\nname: fan-out\nsteps:\n  - id: items\n    for_each: '[range(300)]'\n    \
         exec: { command: [sleep, '0.3'] }\n",
    )
    .unwrap();
    let output = Command::new("sh")
        .args(["-c", "ulimit -n 400 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "fan-out.yaml", "--output", "json"])
        .current_dir(dir.path())
        .env(
            "RUNBOOK_STORE",
            format!("sqlite:{}", dir.path().join("runs.db").display()),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("run the runbook binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ended = stdout
        .lines()
        .filter(|line| line.contains("\"step_ended\"") && line.contains("\"succeeded\""))
        .count();
    // Every item, and the step itself.
    assert_eq!(ended, 301, "{stdout}");
}
