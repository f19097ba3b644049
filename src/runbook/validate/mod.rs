//! Everything that can be wrong with a runbook before it runs, found at once.
//!
//! Loading reports what is wrong with the shape of the YAML; this module reports what is
//! wrong with its meaning: ids, dependencies, cycles, expressions, templates, references
//! and called runbooks.

use super::dag::{Dag, Section};
use super::de::closest;
use super::diagnostic::{Diagnostic, SourceFile, display_path};
use super::duration::Duration;
use super::load::{self, Loaded};
use super::model::*;
use super::node::{Node, Span};
use super::spanned::{Spanned, SpannedMap};
use crate::template::{self, Reference, jq::Root};
use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

mod actions;
mod bundle;
mod graph;
mod inputs;
mod locks;
mod objectives;
mod references;
mod step;
mod window;

use bundle::Walk;
pub use bundle::{Bundle, resolve_uses};

/// The shortest timeout: one shorter fails every attempt before it can do anything, which is
/// a typo (`0s`, `5ms` for `5m`), not a plan.
pub const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The shortest wait between two polls: the action runs again after each, and a `0s` poll
/// starts hundreds of processes (or requests) a second.
pub const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The outcome of validating one file and what it uses.
#[derive(Debug, Default)]
pub struct Validation {
    pub bundle: Bundle,
    pub problems: Vec<Diagnostic>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The names the context offers at its top level.
const CONTEXT_ROOTS: &[&str] = &["inputs", "secrets", "item", "index", "steps", "run", "step"];
const STEP_FIELDS: &[&str] = &["status", "outputs", "attempts", "via", "items"];
const RUN_FIELDS: &[&str] = &["id", "name", "started_at", "status"];
const SELF_FIELDS: &[&str] = &["id", "key"];
/// What a step's `notice` reads of the step itself: it is rendered once the step has ended.
const NOTICE_SELF_FIELDS: &[&str] = &["id", "key", "status", "outputs", "error"];

/// Loads and validates a runbook file and, recursively, the runbooks it uses, which must lie
/// in its [tree](uses_tree).
pub fn validate_file(path: &Path) -> Validation {
    validate_file_allowing(path, &[])
}

/// Like [`validate_file`], with more directories whose runbooks `uses` may name
/// (`--allow-uses-dir`).
pub fn validate_file_allowing(path: &Path, allowed: &[PathBuf]) -> Validation {
    let mut validation = Validation::default();
    match load::read_source(path) {
        Ok(file) => {
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
            let mut scope = vec![uses_tree(&canonical)];
            for dir in allowed {
                match std::fs::canonicalize(dir) {
                    Ok(dir) if dir.is_dir() => scope.push(dir),
                    _ => validation.problems.push(Diagnostic::plain(format!(
                        "--allow-uses-dir {}: no such directory",
                        display_path(dir)
                    ))),
                }
            }
            let mut state = Walk {
                scope: Some(scope),
                ..Walk::default()
            };
            validation.bundle.root = canonical.clone();
            state.visit(file, canonical, &mut validation);
        }
        Err(problem) => validation.problems.push(problem),
    }
    sort_problems(&mut validation.problems, path);
    validation
}

/// Where the runbooks a top-level runbook `uses` may lie: the directory tree of the git work
/// tree that holds it (runbooks of one repository share building blocks), else of its own
/// directory. A runbook from elsewhere cannot make `validate` or `run` read the files of the
/// machine it is checked on.
pub fn uses_tree(root: &Path) -> PathBuf {
    let dir = root.parent().unwrap_or(Path::new("/"));
    dir.ancestors()
        .find(|ancestor| ancestor.join(".git").exists())
        .unwrap_or(dir)
        .to_owned()
}

/// Problems in the order a person reads them: the runbook asked for first, then the ones it
/// uses in the order they are first named, each from top to bottom.
fn sort_problems(problems: &mut [Diagnostic], root: &Path) {
    let mut files: Vec<PathBuf> = vec![root.to_owned()];
    for problem in problems.iter() {
        if let Some(file) = &problem.file
            && !files.contains(&file.path)
        {
            files.push(file.path.clone());
        }
    }
    problems.sort_by_key(|problem| {
        let file = problem
            .file
            .as_ref()
            .and_then(|f| files.iter().position(|p| *p == f.path))
            .unwrap_or(0);
        (file, problem.offset())
    });
}

/// Validates runbook text that is not (or not only) on disk; `uses` paths resolve relative
/// to `file.path`.
pub fn validate_source(file: SourceFile) -> Validation {
    let mut validation = Validation::default();
    let canonical = file.path.clone();
    validation.bundle.root = canonical.clone();
    Walk::default().visit(file, canonical.clone(), &mut validation);
    sort_problems(&mut validation.problems, &canonical);
    validation
}

/// Validates runbooks from stored text alone: `root` and every runbook it uses must be in
/// `sources`, keyed by the canonical paths they were read from. The file system is not read,
/// so a run resumes with exactly the runbooks it started with.
pub fn validate_stored(root: &Path, sources: &HashMap<PathBuf, String>) -> Validation {
    let mut validation = Validation::default();
    validation.bundle.root = root.to_owned();
    let mut walk = Walk {
        stored: Some(sources),
        ..Walk::default()
    };
    match sources.get(root) {
        Some(text) => walk.visit(
            SourceFile::new(root, text.as_str()),
            root.to_owned(),
            &mut validation,
        ),
        None => validation.problems.push(Diagnostic::plain(format!(
            "the stored sources have no runbook {}",
            display_path(root)
        ))),
    }
    sort_problems(&mut validation.problems, root);
    validation
}

/// A path with `.` and `..` resolved by its text alone.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

impl Runbook {
    /// `steps` then `finally`, in file order.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(self.finally.iter())
    }
}

impl Step {
    /// Every runbook this step calls: from its action, its fallback, its verify probe and
    /// its undo.
    pub fn uses_paths(&self) -> impl Iterator<Item = &Spanned<String>> {
        self.uses
            .iter()
            .chain(self.fallback.iter().filter_map(|f| f.uses.as_ref()))
            .chain(self.verify.iter().filter_map(|v| v.uses.as_ref()))
            .chain(self.undo.iter().filter_map(|u| u.uses.as_ref()))
    }
}

/// A jq expression waiting to be compiled, with where it sits.
struct PendingJq<'a> {
    expression: &'a Spanned<String>,
    root: Root,
    scope: Scope,
    what: &'static str,
}

/// Where an expression or template sits, which decides what it may reference.
#[derive(Clone, Copy)]
struct Scope {
    step: Option<usize>,
    for_each: bool,
    /// A step's `notice` or `undo`: it also reads the step's own end (`step.status`,
    /// `step.outputs`, ...).
    notice: bool,
}

/// The checks of one loaded runbook, given the runbooks it uses (already in `bundle`).
fn check(loaded: &Loaded, bundle: &Bundle) -> Vec<Diagnostic> {
    let checker = Checker {
        loaded,
        steps: loaded.runbook.all_steps().collect(),
        pending_jq: RefCell::new(Vec::new()),
        file: &loaded.file,
        runbook: &loaded.runbook,
        bundle,
        dag: Dag::new(&loaded.runbook),
        problems: RefCell::new(Vec::new()),
    };
    checker.run();
    let mut problems = checker.problems.into_inner();
    problems.sort_by_key(Diagnostic::offset);
    problems
}

struct Checker<'a> {
    loaded: &'a Loaded,
    /// `steps` then `finally`, indexed like the DAG.
    steps: Vec<&'a Step>,
    /// jq expressions to compile, checked together at the end: compiling them in one batch
    /// shares the cost of the jq prelude.
    pending_jq: RefCell<Vec<PendingJq<'a>>>,
    file: &'a SourceFile,
    runbook: &'a Runbook,
    bundle: &'a Bundle,
    dag: Dag,
    problems: RefCell<Vec<Diagnostic>>,
}

impl<'a> Checker<'a> {
    /// Records a problem and hands it back for a label or help to be added.
    fn error(&self, span: Span, message: impl Into<String>) -> RefMut<'_, Diagnostic> {
        let mut problems = self.problems.borrow_mut();
        problems.push(Diagnostic::at(self.file, span, message));
        RefMut::map(problems, |p| p.last_mut().expect("just pushed"))
    }

    fn run(&self) {
        self.check_header();
        self.check_inputs();
        self.check_ids();
        self.check_needs();
        self.check_cycles();
        for (index, step) in self.runbook.all_steps().enumerate() {
            self.check_step(index, step);
        }
        self.check_locks();
        self.check_windows();
        let scope = Scope {
            step: None,
            for_each: false,
            notice: false,
        };
        for (_, expression) in self.runbook.outputs.iter() {
            self.check_jq(expression, Root::Context, scope, "runbook output");
        }
        self.check_objectives();
        self.check_pending_jq();
    }

    fn step(&self, index: usize) -> &'a Step {
        self.steps[index]
    }
}

/// `[a-z0-9][a-z0-9_-]*` for runbook names, `[a-z0-9_]+` for step ids.
fn is_name(text: &str, runbook_name: bool) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        None => false,
        Some(first) if runbook_name => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        }
        Some(first) => std::iter::once(first)
            .chain(chars)
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
