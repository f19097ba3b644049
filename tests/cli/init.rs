//! `runbook init NAME`: a starter runbook that validates, and never over someone's file.

use crate::support::Test;

#[test]
fn init_writes_a_starter_that_validates_and_plans() {
    let test = Test::new();
    let dir = test.dir().to_owned();
    let init = test.args(["init", "restart-job"]).run();
    assert_eq!(init.code, 0, "{}", init.stderr);
    insta::assert_snapshot!(init.stderr);
    let text = std::fs::read_to_string(dir.join("restart-job.yaml")).expect("the starter");
    assert!(
        text.starts_with("# yaml-language-server: $schema=runbook.schema.json\n"),
        "{text}"
    );
    insta::assert_snapshot!(text);
    let schema = std::fs::read_to_string(dir.join("runbook.schema.json")).expect("the schema");
    assert!(schema.contains("\"$schema\""), "{schema}");

    let validate = Test::new()
        .current_dir(&dir)
        .args(["validate", "restart-job.yaml"])
        .run();
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    let plan = Test::new()
        .current_dir(&dir)
        .args(["plan", "restart-job.yaml", "--input", "target=staging"])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("acting on staging"), "{}", plan.stdout);
}

#[test]
fn init_never_overwrites_and_refuses_a_name_a_runbook_cannot_have() {
    let test = Test::new().write("mine.yaml", "my own work\n");
    let dir = test.dir().to_owned();
    let again = test.args(["init", "mine"]).run();
    assert_eq!(again.code, 2);
    insta::assert_snapshot!(again.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("mine.yaml")).unwrap(),
        "my own work\n"
    );
    let bad = Test::new().args(["init", "Restart Job"]).run();
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("cannot name a runbook"),
        "{}",
        bad.stderr
    );
    assert!(!bad.dir().join("Restart Job.yaml").exists());
}
