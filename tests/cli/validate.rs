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

const CALLS_OUTSIDE: &str =
    "version: 1\nname: main\nsteps:\n  - id: a\n    uses: ../shared/lib.yaml\n";
const LIB: &str = "version: 1\nname: lib\nsteps:\n  - id: b\n    sleep: 1ms\n";

#[test]
fn uses_may_not_leave_the_runbooks_tree_unless_a_directory_is_allowed() {
    let test = Test::new()
        .write("team/main.yaml", CALLS_OUTSIDE)
        .write("shared/lib.yaml", LIB)
        .write(
            "team/linked.yaml",
            "version: 1\nname: linked\nsteps:\n  - id: a\n    uses: lib/link.yaml\n",
        );
    std::fs::create_dir(test.dir().join("team/lib")).unwrap();
    std::os::unix::fs::symlink(
        test.dir().join("shared/lib.yaml"),
        test.dir().join("team/lib/link.yaml"),
    )
    .unwrap();
    let dir = test.dir().to_owned();
    let validate = |args: &[&str]| {
        Test::new()
            .current_dir(&dir)
            .args(args.iter().copied())
            .run()
    };

    for (file, column) in [("team/main.yaml", 11), ("team/linked.yaml", 11)] {
        let refused = validate(&["validate", file]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!("{file}:5:{column}")),
            "{}",
            refused.stderr
        );
        assert!(
            refused
                .stderr
                .contains("`uses` leads outside the runbook's directory tree"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("lib.yaml, not under") && refused.stderr.contains("/shared/"),
            "{}",
            refused.stderr
        );
        for command in ["plan", "graph", "run"] {
            let refused = validate(&[command, file]);
            assert_eq!(refused.code, 2, "{command}: {}", refused.stderr);
            assert!(
                refused
                    .stderr
                    .contains("outside the runbook's directory tree")
            );
        }
        let allowed = validate(&["validate", file, "--allow-uses-dir", "shared"]);
        assert_eq!(allowed.code, 0, "{}", allowed.stderr);
        let ran = validate(&["run", file, "--allow-uses-dir", "shared"]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
}

#[test]
fn a_used_file_that_is_not_a_runbook_is_named_never_shown() {
    let test = Test::new()
        .write(
            "main.yaml",
            "version: 1\nname: main\nsteps:\n  - id: a\n    uses: conf/token.yaml\n  - id: b\n    uses: conf/notes.txt\n  - id: c\n    uses: /etc/passwd\n",
        )
        .write("conf/token.yaml", "password: hunter2-b9c1\nuser: admin\n")
        .write("conf/notes.txt", "the key is hunter2-b9c1 {\n");
    let output = Test::new()
        .current_dir(test.dir())
        .args(["validate", "main.yaml", "--allow-uses-dir", "/etc"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(!output.stderr.contains("hunter2"), "{}", output.stderr);
    assert!(!output.stderr.contains("root:"), "{}", output.stderr);
    for shown in [
        "conf/token.yaml:1:1: expected a runbook, found a mapping with none of its keys",
        "conf/notes.txt:1:1: expected a runbook (a mapping with version, name and steps), found",
        "/etc/passwd:1:1: expected a runbook",
        "the file's contents are not shown",
    ] {
        assert!(output.stderr.contains(shown), "{shown}:\n{}", output.stderr);
    }
}

#[test]
fn the_yaml_core_tags_are_allowed() {
    let output = Test::new()
        .write(
            "core.yaml",
            "version: !!int 1\nname: !!str core\ninputs:\n  flag: { type: boolean, default: !!bool true }\n  ratio: { type: number, default: !!float 1.5 }\n  jobs: !!map { type: array, default: !!seq [a, b] }\nsteps:\n  - id: a\n    continue_on_failure: !!null\n    sleep: !!str 1s\n",
        )
        .args(["validate", "core.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
}
