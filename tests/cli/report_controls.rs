//! Controls in the reports of `runs show`: the text form, JUnit and (in report_html.rs) the
//! HTML page show each retry, skip and edit with who, when and why, in the order they
//! happened among the run's resumes.

use crate::objectives::Drills;

/// `b` fails; `c` needs it.
const CONTROLLED: &str = r#"version: 1
name: controlled
steps:
  - id: a
    exec: { script: 'true' }
  - id: b
    needs: [a]
    exec: { script: 'exit 1' }
    outputs: { version: '.stdout' }
  - id: c
    needs: [b]
    exec: { script: 'true' }
"#;

/// A run of [`CONTROLLED`] as `run_id` that a retry, a skip and an edit (adding `d`)
/// brought to success, each by another person.
pub fn controlled_run(drills: &Drills, run_id: &str) {
    let dir = drills.dir.path();
    std::fs::write(dir.join("controlled.yaml"), CONTROLLED).expect("write the runbook");
    let edited = format!("{CONTROLLED}  - id: d\n    needs: [c]\n    exec: {{ script: 'true' }}\n");
    std::fs::write(dir.join("controlled-d.yaml"), edited).expect("write the edit");
    let steps: [(&[&str], i32); 4] = [
        (&["run", "controlled.yaml", "--run-id", run_id], 1),
        (
            &[
                "retry",
                run_id,
                "--from",
                "b",
                "--as",
                "bob",
                "--reason",
                "try b again",
            ],
            1,
        ),
        (
            &[
                "skip",
                run_id,
                "b",
                "--output",
                "version=v2",
                "--as",
                "alice",
                "--reason",
                "done by hand",
            ],
            0,
        ),
        (
            &[
                "resume",
                run_id,
                "--runbook",
                "controlled-d.yaml",
                "--as",
                "carol",
                "--reason",
                "add d",
            ],
            0,
        ),
    ];
    for (args, code) in steps {
        let output = drills.runbook(args);
        assert_eq!(output.code, code, "{args:?}: {}", output.stderr);
    }
}

/// Every RFC 3339 time of `text` as `<time>`: they differ on every run.
fn without_times(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let shape = word.len() == 27
                && word.as_bytes()[4] == b'-'
                && word.as_bytes()[10] == b'T'
                && word.ends_with('Z');
            if shape { "<time>" } else { word }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn runs_show_lists_each_control_with_who_when_and_why_among_the_resumes() {
    let drills = Drills::new();
    controlled_run(&drills, "c1");
    let shown = drills.runbook(&["runs", "show", "c1"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let history: Vec<String> = shown
        .stdout
        .lines()
        .filter(|l| l.starts_with("resumed ") || l.starts_with("control "))
        .map(|l| {
            // The edit's line holds the file's hash, the same on every machine but a change
            // of the test's runbook would show as a change of behaviour.
            let line = without_times(l);
            // Which process resumed it (pid, host) differs on every run.
            if let Some(at) = line
                .find(" by pid ")
                .filter(|_| line.starts_with("resumed"))
            {
                return format!("{} by <process>", &line[..at]);
            }
            match line.find("(sha256 ") {
                Some(at) => format!("{}(sha256 …){}", &line[..at], &line[at + 21..]),
                None => line,
            }
        })
        .collect();
    insta::assert_snapshot!(history.join("\n"));
}

#[test]
fn junit_carries_each_control_and_who_skipped_a_step_by_hand() {
    let drills = Drills::new();
    controlled_run(&drills, "c2");
    let shown = drills.runbook(&["runs", "show", "c2", "--format", "junit"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let xml = &shown.stdout;
    let scratch = tempfile::tempdir().expect("a directory");
    let (valid, said) = crate::report_junit::validate(xml, scratch.path());
    assert!(valid, "{said}\n{xml}");
    let controls: Vec<&str> = xml
        .lines()
        .filter(|l| l.contains("<property name=\"control\""))
        .collect();
    assert_eq!(controls.len(), 3, "{xml}");
    assert!(controls[0].contains("by bob: retried from b"), "{xml}");
    assert!(controls[0].contains("(try b again)"), "{xml}");
    assert!(
        controls[1].contains("by alice: skipped `b` by hand"),
        "{xml}"
    );
    assert!(
        controls[2].contains("by carol: edited the runbook: controlled-d.yaml"),
        "{xml}"
    );
    assert!(controls[2].contains("+ d (added)"), "{xml}");
    assert!(
        xml.contains("<skipped message=\"skipped by hand by alice: done by hand\"/>"),
        "{xml}"
    );
}
