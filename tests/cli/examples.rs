use crate::support::{Test, repo};

fn shipped_runbooks() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![repo().join("runbooks")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("runbooks/ is readable") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_shipped_runbook_is_valid_and_declares_the_schema() {
    let runbooks = shipped_runbooks();
    assert!(runbooks.len() >= 4, "runbooks/ ships examples");
    for path in &runbooks {
        let output = Test::new()
            .args(["validate".as_ref(), path.as_os_str()])
            .run();
        assert_eq!(output.code, 0, "{}:\n{}", path.display(), output.stderr);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{} does not start with the $schema line",
            path.display()
        );
        let schema_path = text
            .lines()
            .next()
            .unwrap()
            .split_once("$schema=")
            .unwrap()
            .1;
        let resolved = path.parent().unwrap().join(schema_path.trim());
        assert!(
            resolved.exists(),
            "{}: schema path {} does not exist",
            path.display(),
            resolved.display()
        );
    }
}

#[test]
fn the_readme_first_command_plans_the_hello_example() {
    let output = Test::new()
        .current_dir(repo())
        .args(["plan", "runbooks/examples/hello.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.starts_with("Plan of `hello`"),
        "{}",
        output.stdout
    );
}

/// The annotated example in README is a real, valid runbook.
#[test]
fn the_readme_example_is_valid() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README has a yaml example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let output = Test::new()
        .write("example.yaml", &readme[start..end])
        .args(["validate", "example.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
}
