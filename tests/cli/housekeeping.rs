//! Keeping the store tidy: `runs list` filters and `runs prune`, which removes old runs that
//! are over and never one that is parked or unfinished, and gives the space back.

use crate::durable::Bench;
use serde_json::Value;

/// The ids `runs list ARGS... --format json` shows, in order.
fn listed(bench: &Bench, args: &[&str]) -> Vec<String> {
    let mut all = vec!["runs", "list", "--format", "json"];
    all.extend_from_slice(args);
    let listed = bench.runbook(&all);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let runs: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    runs.as_array()
        .expect("an array")
        .iter()
        .map(|run| run["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A store with one run of each kind: succeeded (`ok1`, `ok2`, each printing 60 KiB),
/// failed, waiting for an approval, and interrupted.
fn bench_with_every_kind_of_run() -> Bench {
    let bench = Bench::new();
    bench.write(
        "ok.yaml",
        "version: 1\nname: ok\nsteps:\n  - id: a\n    exec: { script: 'head -c 60000 /dev/urandom | base64' }\n",
    );
    bench.write(
        "bad.yaml",
        "version: 1\nname: bad\nsteps:\n  - id: a\n    exec: { script: 'exit 1' }\n",
    );
    bench.write(
        "gate.yaml",
        "version: 1\nname: gate\nsteps:\n  - id: g\n    approval: { prompt: go? }\n",
    );
    bench.write(
        "slow.yaml",
        "version: 1\nname: slow\nsteps:\n  - id: s\n    exec: { script: 'echo started > side; sleep 30' }\n",
    );
    for (file, id, code) in [
        ("ok.yaml", "ok1", 0),
        ("ok.yaml", "ok2", 0),
        ("bad.yaml", "bad1", 1),
        ("gate.yaml", "gate1", 3),
    ] {
        let run = bench.runbook(&["run", file, "--run-id", id]);
        assert_eq!(run.code, code, "{id}: {}", run.stderr);
    }
    bench.run_until_interrupted(&["run", "slow.yaml", "--run-id", "slow1"]);
    bench
}

#[test]
fn runs_list_filters_by_runbook_status_and_time_and_limits() {
    let bench = bench_with_every_kind_of_run();
    assert_eq!(
        listed(&bench, &[]),
        ["slow1", "gate1", "bad1", "ok2", "ok1"]
    );
    assert_eq!(listed(&bench, &["--runbook", "ok"]), ["ok2", "ok1"]);
    assert_eq!(listed(&bench, &["--status", "waiting"]), ["gate1"]);
    assert_eq!(listed(&bench, &["--status", "interrupted"]), ["slow1"]);
    assert_eq!(listed(&bench, &["--limit", "2"]), ["slow1", "gate1"]);
    assert_eq!(listed(&bench, &["--since", "1h"]).len(), 5);
    assert!(listed(&bench, &["--since", "2999-01-01"]).is_empty());
    assert_eq!(
        listed(
            &bench,
            &["--runbook", "ok", "--status", "succeeded", "--limit", "1"]
        ),
        ["ok2"]
    );
    let wrong = bench.runbook(&["runs", "list", "--since", "last week"]);
    assert_eq!(wrong.code, 2);
    insta::assert_snapshot!(wrong.stderr);
}

#[test]
fn prune_removes_old_runs_that_are_over_never_parked_ones_and_shrinks_the_store() {
    let bench = bench_with_every_kind_of_run();
    let fresh = bench.runbook(&["runs", "prune", "--older-than", "1h"]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(fresh.stdout.is_empty(), "{}", fresh.stdout);
    assert!(fresh.stderr.contains("nothing removed"), "{}", fresh.stderr);
    assert_eq!(listed(&bench, &[]).len(), 5);

    let before = std::fs::metadata(bench.db()).expect("the store").len();
    // Everything that ended before the next second, so every run that is over.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pruned = bench.runbook(&["runs", "prune", "--older-than", "0s"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let removed: Vec<&str> = pruned
        .stdout
        .lines()
        .map(|line| line.split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(removed, ["ok1", "ok2", "bad1"], "{}", pruned.stdout);
    assert!(
        pruned
            .stdout
            .starts_with("removed ok1 (ok, succeeded, ended 20"),
        "{}",
        pruned.stdout
    );
    assert!(
        pruned.stderr.contains("removed 3 runs"),
        "{}",
        pruned.stderr
    );
    assert_eq!(listed(&bench, &[]), ["slow1", "gate1"]);
    let after = std::fs::metadata(bench.db()).expect("the store").len();
    assert!(
        after < before,
        "the store file shrinks: {before} bytes before, {after} after"
    );
    // What is left still resumes.
    let approved = bench.runbook(&["approve", "gate1", "g"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let resumed = bench.runbook(&["resume", "gate1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
}
