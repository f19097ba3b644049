//! `runs show --format junit`: steps as test cases, valid against the JUnit XML format CI
//! systems read (tests/cli/junit.xsd), checked with `xmllint` (Debian's libxml2-utils, a
//! prerequisite that scripts/test-all.sh installs: without it this test fails).

use crate::objectives::Drills;
use std::path::Path;
use std::process::Command;

/// `xmllint --schema` on `xml`: whether it is valid, and what xmllint said.
pub(crate) fn validate(xml: &str, dir: &Path) -> (bool, String) {
    let file = dir.join("report.xml");
    std::fs::write(&file, xml).expect("write the report");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/junit.xsd");
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint is installed (scripts/test-all.sh installs libxml2-utils)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_run_is_a_valid_junit_suite_with_failed_and_skipped_steps_and_objectives() {
    let drills = Drills::new();
    drills.drill("good", false);
    drills.drill("bad", true);
    let scratch = tempfile::tempdir().expect("a directory");

    let good = drills.runbook(&["runs", "show", "good", "--format", "junit"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let (valid, said) = validate(&good.stdout, scratch.path());
    assert!(valid, "{said}\n{}", good.stdout);
    let xml = &good.stdout;
    assert!(
        xml.contains("tests=\"8\" failures=\"1\" errors=\"1\" skipped=\"1\""),
        "{xml}"
    );
    let cleanup = xml
        .find("<testcase name=\"cleanup\"")
        .expect("a test case for the skipped step");
    assert!(
        xml[cleanup..]
            .split("</testcase>")
            .next()
            .unwrap()
            .contains("<skipped "),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"objective quick\""), "{xml}");
    assert!(xml.contains("type=\"missed\""), "{xml}");

    let bad = drills.runbook(&["runs", "show", "bad", "--format", "junit"]);
    let (valid, said) = validate(&bad.stdout, scratch.path());
    assert!(valid, "{said}\n{}", bad.stdout);
    assert!(
        bad.stdout.contains(
            "<failure message=\"script exited with status 1: not running\" type=\"failed\">"
        ),
        "{}",
        bad.stdout
    );

    // The schema is no formality: a test case without a name is refused.
    let broken = good
        .stdout
        .replacen("<testcase name=\"disaster\"", "<testcase", 1);
    assert!(
        !validate(&broken, scratch.path()).0,
        "a nameless test case passes"
    );
}
