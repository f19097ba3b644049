//! The modules of the crate form layers, and code flows one way: a module may use the modules
//! of the layers below its own, never one of its own layer or above. This test reads every
//! source file and fails on an import that breaks the order, so that a cycle cannot creep
//! back in. docs/contributing.md explains the layers.

use std::path::{Path, PathBuf};

/// From the bottom up. Modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["event", "process", "template"],
    &["runbook"],
    &["actions", "store"],
    &["plan"],
    &["engine"],
    &["report"],
    &["app"],
    &["notify"],
    &["serve"],
    &["web"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One `crate::<module>` path written in a file.
#[derive(Debug)]
struct Import {
    file: PathBuf,
    line: usize,
    module: String,
}

/// The top-level module a source file belongs to: `src/engine/state.rs` is in `engine`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Every module a file names through `crate::`, with the line; comments are left out.
fn imports(file: &Path, text: &str) -> Vec<Import> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `use crate::{engine, store::Store};`
                Some(group) => group
                    .split(['}', ','])
                    .map(|part| part.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let module: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !module.is_empty() {
                    found.push(Import {
                        file: file.to_owned(),
                        line: number + 1,
                        module,
                    });
                }
            }
        }
    }
    found
}

fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source tree is readable") {
        let path = entry.expect("the source tree is readable").path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The imports that break the layer order, as `file:line: a uses b` lines.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        for import in imports(&file, &text) {
            if import.module == module {
                continue;
            }
            match layer_of(&import.module) {
                Some(used) if used < own => {}
                Some(used) => wrong.push(format!(
                    "{}:{}: `{module}` (layer {own}) uses `{}` (layer {used}); \
                     a module may only use the layers below its own",
                    import
                        .file
                        .strip_prefix(src)
                        .unwrap_or(&import.file)
                        .display(),
                    import.line,
                    import.module
                )),
                None => {}
            }
        }
    }
    wrong
}

#[test]
fn every_module_is_in_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(module) = module_of(&src, &path) else {
            continue;
        };
        // The crate roots and this test sit above the layers.
        if ["lib", "main", "layers"].contains(&module.as_str()) {
            continue;
        }
        if layer_of(&module).is_none() {
            missing.push(module);
        }
    }
    assert!(
        missing.is_empty(),
        "modules missing from LAYERS in src/layers.rs (and docs/contributing.md): {missing:?}"
    );
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let wrong = violations(&src);
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn an_upward_import_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("store")).unwrap();
    std::fs::write(
        src.join("store/mod.rs"),
        "// crate::engine in a comment is no import\nuse crate::{event::Envelope, engine::RunStatus};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("runbook.rs"),
        "fn f() -> crate::plan::Dag { todo!() }\n",
    )
    .unwrap();
    let wrong = violations(src);
    assert_eq!(wrong.len(), 2, "{wrong:#?}");
    assert!(wrong[0].starts_with("runbook.rs:1: `runbook` (layer 1) uses `plan`"));
    assert!(wrong[1].starts_with("store/mod.rs:2: `store` (layer 2) uses `engine`"));
}
