use crate::support::{Test, repo};

const RUNBOOK: &str = r#"version: 1
name: upgrade
steps:
  - id: jobs
    exec: { command: [echo, "[]"] }
  - id: snapshot
    uses: lib/snap.yaml
    fallback:
      exec: { command: [echo, checkpoint] }
  - id: restart
    sleep: 1s
finally:
  - id: report
    sleep: 1s
"#;

const LIB: &str =
    "version: 1\nname: snap\nsteps:\n  - id: trigger\n    sleep: 1s\n  - id: wait\n    sleep: 1s\n";

#[test]
fn mermaid_shows_needs_uses_and_fallback() {
    let output = Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .write("lib/snap.yaml", LIB)
        .args(["graph", "upgrade.yaml", "--format", "mermaid"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    insta::assert_snapshot!(output.stdout);
}

#[test]
fn dot_shows_needs_uses_and_fallback() {
    let output = Test::new()
        .write("upgrade.yaml", RUNBOOK)
        .write("lib/snap.yaml", LIB)
        .args(["graph", "upgrade.yaml", "--format", "dot"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    insta::assert_snapshot!(output.stdout);
    assert!(output.stdout.contains("s_jobs -> s_snapshot;"));
    assert!(output.stdout.contains("label=\"fallback\""));
}

#[test]
fn graph_of_an_invalid_runbook_is_refused() {
    let output = Test::new()
        .current_dir(repo().join("tests/corpus/invalid"))
        .args(["graph", "cycle.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("dependency cycle: a -> c -> b -> a"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.is_empty());
}
