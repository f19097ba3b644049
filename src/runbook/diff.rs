//! How an edited runbook differs from another, step by step: steps added, removed, whose
//! body changed, whose `needs` changed. A run continued with an edited runbook shows this
//! and journals it.

use super::Step;
use super::dag::Dag;
use super::load::Loaded;
use super::node::{self, NodeKind};
use super::validate::Bundle;
use crate::event::{NeedsChange, StepChange, StepChangeKind};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

/// The differences between two valid runbooks (each with the runbooks it uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunbookDiff {
    /// Added and changed steps in the new file's order, then removed ones in the old order.
    pub changes: Vec<StepChange>,
    /// Top-level keys of the root runbook other than `steps` and `finally` whose values
    /// differ (`inputs`, `outputs`, `defaults`...), sorted.
    pub settings: Vec<String>,
}

impl RunbookDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.settings.is_empty()
    }

    /// The change of one step, if it has one.
    pub fn of(&self, step: &str) -> Option<&StepChange> {
        self.changes.iter().find(|c| c.step == step)
    }
}

/// Compares the root runbooks of `old` and `new`. A step's body is everything it says but
/// its `id`, `needs` and `name` (which only shows), plus the text of every runbook it calls
/// through `uses`, transitively: a called runbook that changed changes the calling step.
/// Needs are compared as the DAG reads them, an omitted `needs` meaning the step before.
pub fn diff(old: &Bundle, new: &Bundle) -> RunbookDiff {
    let (Some(old_root), Some(new_root)) = (old.root(), new.root()) else {
        return RunbookDiff::default();
    };
    let old_dag = Dag::new(&old_root.runbook);
    let new_dag = Dag::new(&new_root.runbook);
    let old_steps: Vec<&Step> = old_root.runbook.all_steps().collect();
    let mut changes = Vec::new();
    for (index, step) in new_root.runbook.all_steps().enumerate() {
        let id = &step.id.value;
        let Some(&old_index) = old_dag.index_of.get(id) else {
            changes.push(StepChange {
                step: id.clone(),
                kind: StepChangeKind::Added,
                body: false,
                needs: None,
            });
            continue;
        };
        let before = old_steps[old_index];
        let body = body_of(old, old_root, before) != body_of(new, new_root, step);
        let (old_needs, new_needs) = (needs_of(&old_dag, old_index), needs_of(&new_dag, index));
        let needs = (old_needs != new_needs).then(|| NeedsChange {
            old: old_needs.into_iter().collect(),
            new: new_needs.into_iter().collect(),
        });
        if body || needs.is_some() {
            changes.push(StepChange {
                step: id.clone(),
                kind: StepChangeKind::Changed,
                body,
                needs,
            });
        }
    }
    for id in &old_dag.ids {
        if !new_dag.index_of.contains_key(id) {
            changes.push(StepChange {
                step: id.clone(),
                kind: StepChangeKind::Removed,
                body: false,
                needs: None,
            });
        }
    }
    RunbookDiff {
        changes,
        settings: changed_settings(old_root, new_root),
    }
}

/// The ids a step needs, sorted.
fn needs_of(dag: &Dag, index: usize) -> BTreeSet<String> {
    dag.needs[index]
        .iter()
        .map(|need| dag.ids[need.step].clone())
        .collect()
}

/// What a step does, spans dropped, and the texts of the runbooks it calls.
fn body_of(bundle: &Bundle, loaded: &Loaded, step: &Step) -> (Value, Vec<String>) {
    let mut body = step.node.to_json();
    if let Value::Object(map) = &mut body {
        for shown_only in ["id", "needs", "name"] {
            map.remove(shown_only);
        }
    }
    let mut called = Vec::new();
    let mut seen = HashSet::new();
    called_texts(bundle, loaded, step, &mut seen, &mut called);
    (body, called)
}

/// The texts of the runbooks `step` calls, depth first, each once.
fn called_texts(
    bundle: &Bundle,
    caller: &Loaded,
    step: &Step,
    seen: &mut HashSet<PathBuf>,
    texts: &mut Vec<String>,
) {
    for uses in step.uses_paths() {
        let Some(path) = bundle.called_path(caller, &uses.value) else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let Some(called) = bundle.runbooks.get(path) else {
            continue;
        };
        texts.push(called.file.text.to_string());
        for inner in called.runbook.all_steps() {
            called_texts(bundle, called, inner, seen, texts);
        }
    }
}

/// Top-level keys other than the steps whose values differ.
fn changed_settings(old: &Loaded, new: &Loaded) -> Vec<String> {
    let top = |loaded: &Loaded| -> Vec<(String, Value)> {
        match node::parse(&loaded.file.text).map(|n| n.kind) {
            Ok(NodeKind::Map(entries)) => entries
                .iter()
                .filter(|(key, _)| key.name != "steps" && key.name != "finally")
                .map(|(key, value)| (key.name.clone(), value.to_json()))
                .collect(),
            _ => Vec::new(),
        }
    };
    let (old, new) = (top(old), top(new));
    let value = |list: &[(String, Value)], key: &str| {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let keys: BTreeSet<&String> = old.iter().chain(new.iter()).map(|(k, _)| k).collect();
    keys.into_iter()
        .filter(|key| value(&old, key) != value(&new, key))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::diagnostic::SourceFile;
    use crate::runbook::validate::validate_source;

    fn bundle(text: &str) -> Bundle {
        let validation = validate_source(SourceFile::new("/r.yaml", text));
        assert!(validation.is_valid(), "{:?}", validation.problems);
        validation.bundle
    }

    const OLD: &str = r#"version: 1
name: r
steps:
  - id: a
    exec: { script: 'echo a' }
  - id: b
    name: B
    exec: { script: 'echo b' }
  - id: c
    needs: [a]
    exec: { script: 'echo c' }
"#;

    #[test]
    fn added_removed_changed_body_and_changed_needs_are_told_apart() {
        let new = r#"version: 1
name: r
description: edited
steps:
  - id: a
    exec: { script: 'echo a' }   # a comment changes nothing
  - id: b
    name: Renamed, still the same body
    exec: { script: 'echo b' }
  - id: c
    needs: [a, b]
    exec: { script: 'echo C' }
  - id: d
    exec: { script: 'echo d' }
"#;
        let old = r#"version: 1
name: r
steps:
  - id: a
    exec: { script: 'echo a' }
  - id: b
    exec: { script: 'echo b' }
  - id: c
    needs: [a]
    exec: { script: 'echo c' }
  - id: gone
    needs: []
    exec: { script: 'echo gone' }
"#;
        let diff = diff(&bundle(old), &bundle(new));
        let described: Vec<String> = diff.changes.iter().map(StepChange::describe).collect();
        assert_eq!(
            described,
            [
                "~ c: body changed; needs a -> a, b",
                "+ d (added)",
                "- gone (removed)"
            ]
        );
        assert_eq!(diff.settings, ["description"]);
    }

    #[test]
    fn a_called_runbook_that_changed_changes_each_step_that_calls_it() {
        let stored = |block: &str| {
            let root = PathBuf::from("/book/root.yaml");
            let sources: std::collections::HashMap<PathBuf, String> = [
                (
                    root.clone(),
                    "version: 1\nname: root\nsteps:\n  - id: call\n    uses: lib/block.yaml\n  - id: plain\n    exec: { script: 'true' }\n"
                        .to_owned(),
                ),
                (PathBuf::from("/book/lib/block.yaml"), block.to_owned()),
            ]
            .into();
            let validation = crate::runbook::validate::validate_stored(&root, &sources);
            assert!(validation.is_valid(), "{:?}", validation.problems);
            validation.bundle
        };
        let block =
            "version: 1\nname: block\nsteps:\n  - id: inner\n    exec: { script: 'echo 1' }\n";
        let old = stored(block);
        assert!(diff(&old, &stored(block)).is_empty());
        let changed = diff(&old, &stored(&block.replace("echo 1", "echo 2")));
        let described: Vec<String> = changed.changes.iter().map(StepChange::describe).collect();
        assert_eq!(described, ["~ call: body changed"]);
    }

    #[test]
    fn an_implied_need_that_moves_is_a_changed_need() {
        let reordered = r#"version: 1
name: r
steps:
  - id: b
    name: B
    exec: { script: 'echo b' }
  - id: a
    exec: { script: 'echo a' }
  - id: c
    needs: [a]
    exec: { script: 'echo c' }
"#;
        let diff = diff(&bundle(OLD), &bundle(reordered));
        let described: Vec<String> = diff.changes.iter().map(StepChange::describe).collect();
        assert_eq!(
            described,
            ["~ b: needs a -> (none)", "~ a: needs (none) -> b"]
        );
        assert!(super::diff(&bundle(OLD), &bundle(OLD)).is_empty());
    }
}
