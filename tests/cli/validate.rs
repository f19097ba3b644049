use crate::support::{Test, repo};

/// Every runbook of the invalid corpus fails with exit 2, and its diagnostics are exactly
/// the snapshot: a change in a message, a position or a hint shows up in review.
#[test]
fn invalid_corpus_diagnostics() {
    let corpus = repo().join("tests/corpus/invalid");
    insta::glob!("../corpus/invalid", "*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let output = Test::new()
            .current_dir(&corpus)
            .args(["validate", name])
            .run();
        assert_eq!(
            output.code, 2,
            "{name} should be invalid:\n{}",
            output.stderr
        );
        assert!(
            output.stdout.is_empty(),
            "validate prints nothing on stdout"
        );
        insta::assert_snapshot!(output.stderr);
    });
}

#[test]
fn a_valid_runbook_validates_silently() {
    let output = Test::new()
        .write(
            "ok.yaml",
            "version: 1\nname: ok\nsteps:\n  - id: a\n    sleep: 1s\n",
        )
        .args(["validate", "ok.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.stdout, "");
    assert_eq!(output.stderr, "");
}

#[test]
fn every_file_is_checked_and_one_invalid_file_fails_the_command() {
    let output = Test::new()
        .write(
            "ok.yaml",
            "version: 1\nname: ok\nsteps:\n  - id: a\n    sleep: 1s\n",
        )
        .write(
            "bad.yaml",
            "version: 1\nname: bad\nsteps:\n  - id: a\n    slep: 1s\n",
        )
        .write(
            "worse.yaml",
            "version: 1\nname: worse\nsteps:\n  - id: b\n    sleep: soon\n",
        )
        .args(["validate", "ok.yaml", "bad.yaml", "worse.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(output.stderr.contains("bad.yaml:5:5"), "{}", output.stderr);
    assert!(
        output.stderr.contains("worse.yaml:5:12"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("ok.yaml"), "{}", output.stderr);
}

#[test]
fn problems_in_a_used_runbook_are_reported_in_that_file() {
    let output = Test::new()
        .write(
            "main.yaml",
            "version: 1\nname: main\nsteps:\n  - id: call\n    uses: lib/inner.yaml\n",
        )
        .write(
            "lib/inner.yaml",
            "version: 1\nname: inner\nsteps:\n  - id: x\n    sleep: 1s\n    needs: [nope]\n",
        )
        .args(["validate", "main.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("lib/inner.yaml:6:13"),
        "{}",
        output.stderr
    );
}

#[test]
fn runbooks_that_use_each_other_in_a_cycle_are_refused() {
    let output = Test::new()
        .write(
            "a.yaml",
            "version: 1\nname: a\nsteps:\n  - id: call\n    uses: b.yaml\n",
        )
        .write(
            "b.yaml",
            "version: 1\nname: b\nsteps:\n  - id: call\n    uses: a.yaml\n",
        )
        .args(["validate", "a.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("runbooks use each other in a cycle: a.yaml -> b.yaml -> a.yaml"),
        "{}",
        output.stderr
    );
}
