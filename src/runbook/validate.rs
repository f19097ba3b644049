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

/// The shortest timeout: one shorter fails every attempt before it can do anything, which is
/// a typo (`0s`, `5ms` for `5m`), not a plan.
pub const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The shortest wait between two polls: the action runs again after each, and a `0s` poll
/// starts hundreds of processes (or requests) a second.
pub const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A runbook and every runbook it calls through `uses`, each loaded once.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The canonical path of the runbook that was asked for.
    pub root: PathBuf,
    /// Every runbook that loaded, by canonical path.
    pub runbooks: BTreeMap<PathBuf, Loaded>,
    /// Where each `uses:` leads: (the caller's `file.path`, the `uses` value) to the called
    /// runbook's canonical path. Worked out once, while loading, so running never looks at
    /// the file system again (a resumed run may come from sources kept in its journal).
    pub links: HashMap<(PathBuf, String), PathBuf>,
}

impl Bundle {
    pub fn root(&self) -> Option<&Loaded> {
        self.runbooks.get(&self.root)
    }

    /// The runbook a `uses:` value of `caller` names, if it loaded.
    pub fn called(&self, caller: &Loaded, uses: &str) -> Option<&Loaded> {
        self.runbooks.get(self.called_path(caller, uses)?)
    }

    /// The canonical path of the runbook a `uses:` value of `caller` names.
    pub fn called_path(&self, caller: &Loaded, uses: &str) -> Option<&PathBuf> {
        self.links.get(&(caller.file.path.clone(), uses.to_owned()))
    }
}

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

/// The walk over a runbook and the runbooks it uses.
#[derive(Default)]
struct Walk<'s> {
    /// Runbooks being validated, innermost last: a `uses` of one of them is a cycle.
    stack: Vec<PathBuf>,
    done: HashSet<PathBuf>,
    /// Read runbooks from here instead of the file system.
    stored: Option<&'s HashMap<PathBuf, String>>,
    /// The directories (canonical) a `uses` may lead into; `None`: anywhere (stored
    /// sources, checked when the run started; text given without a file).
    scope: Option<Vec<PathBuf>>,
}

impl Walk<'_> {
    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        match self.stored {
            Some(sources) => {
                let normal = normalize(path);
                sources.contains_key(&normal).then_some(normal)
            }
            None => std::fs::canonicalize(path).ok(),
        }
    }

    fn read(&self, path: &Path, canonical: &Path) -> Result<SourceFile, Diagnostic> {
        match self.stored {
            Some(sources) => match sources.get(canonical) {
                Some(text) => Ok(SourceFile::new(path, text.as_str())),
                None => Err(Diagnostic::plain(format!(
                    "the stored sources have no runbook {}",
                    display_path(path)
                ))),
            },
            None => load::read_source(path),
        }
    }

    fn visit(&mut self, file: SourceFile, canonical: PathBuf, validation: &mut Validation) {
        self.done.insert(canonical.clone());
        let (loaded, problems) = load::load(file);
        validation.problems.extend(problems);
        let Some(loaded) = loaded else { return };
        self.stack.push(canonical.clone());
        // Called runbooks first, so checks of `with:` and of their outputs can see them.
        for uses in loaded.runbook.all_steps().flat_map(Step::uses_paths) {
            self.visit_uses(&loaded, uses, validation);
        }
        self.stack.pop();
        let problems = check(&loaded, &validation.bundle);
        validation.problems.extend(problems);
        validation.bundle.runbooks.insert(canonical, loaded);
    }

    fn visit_uses(&mut self, caller: &Loaded, uses: &Spanned<String>, validation: &mut Validation) {
        let path = resolve_uses(&caller.file.path, &uses.value);
        let Some(canonical) = self.canonical(&path) else {
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!("the runbook `{}` does not exist", uses.value),
                )
                .with_label(format!("looked for {}", display_path(&path)))
                .with_help(
                    similar_file(&path)
                        .map(|near| {
                            let shown = Path::new(&uses.value).with_file_name(near);
                            format!("did you mean `{}`?", display_path(&shown))
                        })
                        .unwrap_or_else(|| {
                            "`uses` paths are relative to the runbook that names them".to_owned()
                        }),
                ),
            );
            return;
        };
        if let Some(scope) = &self.scope
            && !scope.iter().any(|dir| canonical.starts_with(dir))
        {
            let mut allowed: Vec<String> = scope.iter().map(|d| display_path(d)).collect();
            allowed.dedup();
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!(
                        "`uses` leads outside the runbook's directory tree: `{}` is {}, not under {}",
                        uses.value,
                        display_path(&canonical),
                        allowed.join(" or ")
                    ),
                )
                .with_label("outside the tree")
                .with_help(format!(
                    "keep called runbooks beside the runbook or below it, or allow their \
                     directory with --allow-uses-dir {}",
                    canonical
                        .parent()
                        .map_or_else(|| "DIR".to_owned(), display_path)
                )),
            );
            return;
        }
        validation.bundle.links.insert(
            (caller.file.path.clone(), uses.value.clone()),
            canonical.clone(),
        );
        if let Some(position) = self.stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.stack[position..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| file_name(p))
                .collect();
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!("runbooks use each other in a cycle: {}", chain.join(" -> ")),
                )
                .with_label("this use closes the cycle"),
            );
            return;
        }
        if self.done.contains(&canonical) {
            return;
        }
        match self.read(&path, &canonical) {
            Ok(file) => self.visit(file, canonical, validation),
            Err(problem) => validation.problems.push(
                Diagnostic::at(&caller.file, uses.span, problem.message).with_label("used here"),
            ),
        }
    }
}

/// A runbook file beside `missing` whose name is close to it.
fn similar_file(missing: &Path) -> Option<String> {
    let wanted = missing.file_name()?.to_str()?;
    let names: Vec<String> = std::fs::read_dir(missing.parent()?)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    closest(wanted, names.iter().map(String::as_str)).map(str::to_owned)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| display_path(path), |n| n.to_string_lossy().into_owned())
}

/// A `uses:` path resolved against the file that names it.
pub fn resolve_uses(caller: &Path, uses: &str) -> PathBuf {
    caller.parent().unwrap_or(Path::new("")).join(uses)
}

impl Runbook {
    /// `steps` then `finally`, in file order.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(self.finally.iter())
    }
}

impl Step {
    /// Every runbook this step calls: from its action, its fallback and its verify probe.
    pub fn uses_paths(&self) -> impl Iterator<Item = &Spanned<String>> {
        self.uses
            .iter()
            .chain(self.fallback.iter().filter_map(|f| f.uses.as_ref()))
            .chain(self.verify.iter().filter_map(|v| v.uses.as_ref()))
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
    /// A step's `notice`: it also reads the step's own end (`step.status`, ...).
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
        let scope = Scope {
            step: None,
            for_each: false,
            notice: false,
        };
        for (_, expression) in self.runbook.outputs.iter() {
            self.check_jq(expression, Root::Context, scope, "runbook output");
        }
        self.check_pending_jq();
    }

    fn check_header(&self) {
        let runbook = self.runbook;
        if runbook.version.value != 1 {
            self.error(
                runbook.version.span,
                format!("unsupported version {}", runbook.version.value),
            )
            .help = Some("this engine reads version 1".to_owned());
        }
        if !is_name(&runbook.name.value, true) {
            self.error(
                runbook.name.span,
                format!("invalid runbook name `{}`", runbook.name.value),
            )
            .help = Some(
                "a name uses lowercase letters, digits, `-` and `_`, and starts with a letter or digit"
                    .to_owned(),
            );
        }
        if let Some(max) = &runbook.max_parallel
            && max.value == 0
        {
            self.error(max.span, "max_parallel must be at least 1");
        }
        if runbook.steps.is_empty() && self.loaded.unloaded.steps.is_empty() {
            let span = self.loaded.runbook.name.span;
            self.error(span, "the runbook has no steps").help =
                Some("add at least one step under `steps:`".to_owned());
        }
        if let Some(defaults) = &runbook.defaults {
            if let Some(retry) = &defaults.retry {
                self.check_retry(retry);
            }
            self.check_timeout(defaults.timeout.as_ref(), "defaults.timeout");
        }
    }

    /// A timeout of the runbook is at least [`MIN_TIMEOUT`].
    fn check_timeout(&self, timeout: Option<&Spanned<Duration>>, what: &str) {
        if let Some(timeout) = timeout
            && timeout.value.0 < MIN_TIMEOUT
        {
            self.error(
                timeout.span,
                format!(
                    "`{what}` is {}, shorter than the shortest timeout, {}",
                    timeout.value,
                    Duration(MIN_TIMEOUT)
                ),
            )
            .help = Some(
                "a timeout this short ends every attempt before it can do anything; \
                 give the longest the work may take, such as 30s or 5m"
                    .to_owned(),
            );
        }
    }

    fn check_inputs(&self) {
        for (name, input) in self.runbook.inputs.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid input name `{}`", name.value)).help = Some(
                    "input names use letters, digits and `_`, and do not start with a digit, so templates can name them".to_owned(),
                );
            }
            if let Some(default) = &input.default {
                let value = default.to_json();
                let kind = input.kind.value;
                if !kind.accepts(&value) {
                    let mut error = self.error(
                        default.visible_span(),
                        format!(
                            "the default of input `{}` is {}, but its type is {}",
                            name.value,
                            default.kind_name(),
                            kind.name()
                        ),
                    );
                    error.labels[0].1 = format!("expected {}", kind.name());
                    if kind == crate::runbook::model::InputType::Boolean
                        && let Some(text) = value.as_str()
                    {
                        error.help = super::de::yaml_1_1_boolean_hint(text);
                    }
                }
            }
        }
        for (name, _) in self.runbook.secrets.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid secret name `{}`", name.value))
                    .help = Some("secret names use letters, digits and `_`".to_owned());
            }
        }
    }

    fn check_ids(&self) {
        let mut first_seen: HashMap<&str, Span> = HashMap::new();
        for step in self.runbook.all_steps() {
            let id = &step.id;
            if !is_name(&id.value, false) {
                self.error(id.span, format!("invalid step id `{}`", id.value))
                    .help = Some("step ids use lowercase letters, digits and `_`".to_owned());
            }
            if let Some(first) = first_seen.get(id.value.as_str()) {
                let first = *first;
                let problem = Diagnostic::at(
                    self.file,
                    id.span,
                    format!("duplicate step id `{}`", id.value),
                )
                .with_label("used again here")
                .with_related(first, "first used here")
                .with_help("step ids are unique across `steps` and `finally`");
                self.problems.borrow_mut().push(problem);
            } else {
                first_seen.insert(&id.value, id.span);
            }
        }
    }

    fn check_needs(&self) {
        let known: Vec<&str> = self.dag.ids.iter().map(String::as_str).collect();
        for (index, step) in self.runbook.all_steps().enumerate() {
            let Some(needs) = &step.needs else { continue };
            let mut seen = HashSet::new();
            for name in &needs.value {
                if !seen.insert(name.value.as_str()) {
                    self.error(
                        name.span,
                        format!("`{}` is listed twice in needs", name.value),
                    );
                    continue;
                }
                match self.dag.index_of.get(&name.value) {
                    None if self.loaded.unloaded.steps.contains(&name.value) => {}
                    None => {
                        let help = closest(&name.value, known.iter().copied())
                            .map(|c| format!("did you mean `{c}`?"));
                        self.error(
                            name.span,
                            format!(
                                "step `{}` needs `{}`, which is not a step of this runbook",
                                step.id.value, name.value
                            ),
                        )
                        .help = help;
                    }
                    Some(&needed) => {
                        if self.dag.sections[index] == Section::Finally
                            && self.dag.sections[needed] == Section::Steps
                        {
                            self.error(
                                name.span,
                                format!(
                                    "`finally` step `{}` needs `{}`, which is not a `finally` step",
                                    step.id.value, name.value
                                ),
                            )
                            .help = Some("`finally` steps run after every other step has ended; their needs name only `finally` steps".to_owned());
                        }
                        if self.dag.sections[index] == Section::Steps
                            && self.dag.sections[needed] == Section::Finally
                        {
                            self.error(
                                name.span,
                                format!(
                                    "step `{}` needs `{}`, a `finally` step; `finally` steps run after all others",
                                    step.id.value, name.value
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    fn check_cycles(&self) {
        for cycle in self.dag.cycles() {
            let mut names: Vec<&str> = cycle.iter().map(|&i| self.dag.ids[i].as_str()).collect();
            names.push(names[0]);
            let mut problem: Option<Diagnostic> = None;
            for (position, &step) in cycle.iter().enumerate() {
                let next = cycle[(position + 1) % cycle.len()];
                let span = self.dag.needs[step]
                    .iter()
                    .find(|n| n.step == next)
                    .and_then(|n| n.written_at)
                    .unwrap_or_else(|| self.step(step).id.span);
                let label = format!("`{}` needs `{}`", self.dag.ids[step], self.dag.ids[next]);
                problem = Some(match problem {
                    None => Diagnostic::at(
                        self.file,
                        span,
                        format!("dependency cycle: {}", names.join(" -> ")),
                    )
                    .with_label(label),
                    Some(p) => p.with_related(span, label),
                });
            }
            if let Some(problem) = problem {
                self.problems.borrow_mut().push(problem.with_help(
                    "a step cannot wait, directly or not, for itself; remove one of these needs",
                ));
            }
        }
    }

    fn step(&self, index: usize) -> &'a Step {
        self.steps[index]
    }

    fn check_step(&self, index: usize, step: &'a Step) {
        let scope = Scope {
            step: Some(index),
            for_each: step.for_each.is_some(),
            notice: false,
        };
        self.check_actions(
            &step.id,
            &step.actions(),
            step.id.span,
            Some(&step.node),
            "step",
        );
        self.check_with_has_uses(step.uses.as_ref(), step.with.as_deref());
        if let Some(fallback) = &step.fallback {
            self.check_with_has_uses(fallback.uses.as_ref(), fallback.with.as_deref());
        }
        if let Some(verify) = &step.verify {
            self.check_with_has_uses(verify.uses.as_ref(), verify.with.as_deref());
        }
        if let Some(when) = &step.when {
            self.check_jq(when, Root::Context, scope, "when");
        }
        if let Some(for_each) = &step.for_each {
            // `for_each` is evaluated before any instance exists: no `item` yet.
            let outer = Scope {
                for_each: false,
                ..scope
            };
            self.check_jq(for_each, Root::Context, outer, "for_each");
        }
        if let Some(max) = &step.max_parallel {
            if step.for_each.is_none() {
                self.error(
                    max.span,
                    "a step's max_parallel applies only to a for_each step",
                )
                .help = Some(
                    "use max_parallel at the top of the runbook to bound the whole run".to_owned(),
                );
            } else if max.value == 0 {
                self.error(max.span, "max_parallel must be at least 1");
            }
        }
        if let Some(retry) = &step.retry {
            self.check_retry(retry);
        }
        self.check_timeout(step.timeout.as_ref(), "timeout");
        self.check_polling(step.until.as_ref(), step.poll.as_ref(), scope);
        if let Some(outputs) = &step.outputs {
            self.check_outputs(outputs, scope);
        }
        self.check_action_values(&step.node, &step.actions(), scope);
        if let Some(notice) = &step.notice {
            let scope = Scope {
                notice: true,
                ..scope
            };
            self.check_template_text(&notice.value, notice.span, scope);
        }
        if let Some(fallback) = &step.fallback {
            let actions = fallback.actions();
            self.check_actions(
                &step.id,
                &actions,
                fallback.span,
                step.node.get("fallback"),
                "fallback",
            );
            if let Some(retry) = &fallback.retry {
                self.check_retry(retry);
            }
            self.check_timeout(fallback.timeout.as_ref(), "fallback.timeout");
            self.check_polling(fallback.until.as_ref(), fallback.poll.as_ref(), scope);
            if let Some(outputs) = &fallback.outputs {
                self.check_outputs(outputs, scope);
            }
            if let Some(node) = step.node.get("fallback") {
                self.check_action_values(node, &actions, scope);
            }
        }
        if let Some(verify) = &step.verify {
            let actions = verify.actions();
            self.check_actions(
                &step.id,
                &actions,
                verify.span,
                step.node.get("verify"),
                "verify",
            );
            self.check_jq(&verify.that, Root::Result, scope, "verify.that");
            if let Some(outputs) = &verify.outputs {
                self.check_outputs(outputs, scope);
            }
            if let Some(node) = step.node.get("verify") {
                self.check_action_values(node, &actions, scope);
            }
        }
    }

    /// Exactly one action per body, and each action's own rules.
    fn check_actions(
        &self,
        id: &Spanned<String>,
        actions: &[ActionRef<'_>],
        body_span: Span,
        body_node: Option<&Node>,
        what: &str,
    ) {
        let subject = if what == "step" {
            format!("step `{}`", id.value)
        } else {
            format!("the {what} of step `{}`", id.value)
        };
        match actions {
            [] if self.loaded.unloaded.damaged_steps.contains(&id.value) => {}
            // A misspelt action (`exce:`) is already reported as an unknown key.
            [] if body_node.is_some_and(misspells_an_action) => {}
            [] => {
                let span = if what == "step" { id.span } else { body_span };
                self.error(span, format!("{subject} has no action")).help = Some(format!(
                    "give exactly one of {}",
                    ACTION_KEYS
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            [_] => {}
            [first, second, ..] => {
                let problem = Diagnostic::at(
                    self.file,
                    action_span(second),
                    format!(
                        "{subject} has {} actions: `{}` and `{}`",
                        if actions.len() == 2 {
                            "two".to_owned()
                        } else {
                            actions.len().to_string()
                        },
                        first.key(),
                        second.key()
                    ),
                )
                .with_label("second action")
                .with_related(action_span(first), "first action")
                .with_help("a step does exactly one thing; split it into two steps");
                self.problems.borrow_mut().push(problem);
            }
        }
        for action in actions {
            match action {
                ActionRef::Exec(exec) => match (&exec.command, &exec.script) {
                    (None, None) => {
                        self.error(
                            exec.span,
                            "exec needs `command` (a list of arguments) or `script`",
                        );
                    }
                    (Some(command), Some(_)) => {
                        self.error(command.span, "exec takes `command` or `script`, not both");
                    }
                    (Some(command), None) if command.value.is_empty() => {
                        self.error(
                            command.span,
                            "exec `command` is empty: give the program and its arguments",
                        );
                    }
                    _ => {}
                },
                ActionRef::Http(http) => {
                    self.check_timeout(http.timeout.as_ref(), "http.timeout");
                    if let (Some(json), Some(_)) = (&http.json, &http.body) {
                        self.error(json.visible_span(), "http takes `json` or `body`, not both");
                    }
                    if let Some(expect) = &http.expect {
                        for status in &expect.value {
                            if !(100..=599).contains(&status.value) {
                                self.error(
                                    status.span,
                                    format!("{} is not an HTTP status", status.value),
                                );
                            }
                        }
                    }
                }
                ActionRef::Kubernetes(kubernetes) => {
                    if let Some(wait) = &kubernetes.wait {
                        self.check_timeout(wait.timeout.as_ref(), "kubernetes.wait.timeout");
                    }
                    let given: Vec<&str> = [
                        ("get", kubernetes.get.is_some()),
                        ("create", kubernetes.create.is_some()),
                        ("patch", kubernetes.patch.is_some()),
                        ("delete", kubernetes.delete.is_some()),
                        ("wait", kubernetes.wait.is_some()),
                    ]
                    .iter()
                    .filter(|(_, present)| *present)
                    .map(|(name, _)| *name)
                    .collect();
                    if given.len() != 1 {
                        self.error(
                            kubernetes.span,
                            format!(
                                "kubernetes takes exactly one of `get`, `create`, `patch`, `delete`, `wait`; found {}",
                                if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                            ),
                        );
                    }
                }
                ActionRef::Uses(uses, with) => self.check_uses(uses, *with),
                ActionRef::Approval(approval) => {
                    self.check_timeout(approval.timeout.as_ref(), "approval.timeout");
                }
                _ => {}
            }
        }
    }

    fn check_with_has_uses(
        &self,
        uses: Option<&Spanned<String>>,
        with: Option<&Spanned<SpannedMap<Node>>>,
    ) {
        if let (None, Some(with)) = (uses, with) {
            self.error(
                with.span,
                "`with` gives inputs to a called runbook, but there is no `uses`",
            )
            .help = Some("add `uses: path/to/runbook.yaml`, or remove `with`".to_owned());
        }
    }

    fn check_retry(&self, retry: &Spanned<Retry>) {
        if retry.attempts.value == 0 {
            self.error(retry.attempts.span, "retry attempts must be at least 1")
                .help = Some("attempts counts the first try: 1 means no retry".to_owned());
        }
        if let Some(backoff) = &retry.backoff
            && !(backoff.value >= 1.0 && backoff.value.is_finite())
        {
            self.error(
                backoff.span,
                "retry backoff must be a number of at least 1.0",
            );
        }
    }

    fn check_polling(
        &self,
        until: Option<&'a Spanned<String>>,
        poll: Option<&Spanned<Poll>>,
        scope: Scope,
    ) {
        if let Some(poll) = poll {
            self.check_timeout(poll.timeout.as_ref(), "poll.timeout");
            if let Some(interval) = &poll.interval
                && interval.value.0 < MIN_POLL_INTERVAL
            {
                self.error(
                    interval.span,
                    format!(
                        "`poll.interval` is {}, shorter than the shortest poll interval, {}",
                        interval.value,
                        Duration(MIN_POLL_INTERVAL)
                    ),
                )
                .help = Some(
                    "the action runs again after each interval: a shorter one would start it \
                     many times a second; 1s or more suits most waits"
                        .to_owned(),
                );
            }
        }
        if let Some(until) = until {
            self.check_jq(until, Root::Result, scope, "until");
        } else if let Some(poll) = poll {
            self.error(poll.span, "`poll` has no effect without `until`")
                .help =
                Some("add `until:` with the condition to wait for, or remove `poll`".to_owned());
        }
    }

    fn check_outputs(&self, outputs: &'a Spanned<SpannedMap<Spanned<String>>>, scope: Scope) {
        for (name, expression) in outputs.value.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid output name `{}`", name.value))
                    .help = Some("output names use letters, digits and `_`".to_owned());
            }
            self.check_jq(expression, Root::Result, scope, "output");
        }
    }

    /// Templates in every string of each action, and jq where an action holds jq.
    fn check_action_values(&self, body: &Node, actions: &[ActionRef<'a>], scope: Scope) {
        for action in actions {
            match action {
                ActionRef::Assert(assert) => {
                    for condition in &assert.that.0 {
                        self.check_jq(condition, Root::Context, scope, "assert");
                    }
                    if let Some(message) = &assert.message {
                        self.check_template_text(&message.value, message.span, scope);
                    }
                }
                ActionRef::Uses(..) => {
                    if let Some(with) = body.get("with") {
                        self.check_templates_in(with, scope);
                    }
                }
                ActionRef::Sleep(_) => {}
                ActionRef::Kubernetes(kubernetes) => {
                    if let Some(wait) = &kubernetes.wait {
                        self.check_jq(&wait.condition, Root::Result, scope, "condition");
                    }
                    if let Some(node) = body.get("kubernetes") {
                        let skip = kubernetes.wait.as_ref().map(|w| w.condition.span);
                        self.check_templates_except(node, scope, skip);
                    }
                }
                other => {
                    if let Some(node) = body.get(other.key()) {
                        self.check_templates_in(node, scope);
                        if matches!(other, ActionRef::Exec(_))
                            && let Some(script) = node.get("script")
                            && let Some(text) = script.as_str()
                        {
                            self.check_script_values(text, script.span);
                        }
                    }
                }
            }
        }
    }

    /// Values in a script stand only where the shell takes them as data (see
    /// `template::shell`); the others are refused here, at their place.
    fn check_script_values(&self, text: &str, span: Span) {
        if !text.contains("{{") {
            return;
        }
        // A script that does not parse is reported by the template check.
        let Ok(problems) = template::check_script(text) else {
            return;
        };
        for problem in problems {
            let at = inner_span(self.file, span, text, problem.span);
            let mut diagnostic = self.error(at, problem.problem.reason);
            diagnostic.labels[0].1 = "this value".to_owned();
            diagnostic.help = Some(problem.problem.help.to_owned());
        }
    }

    fn check_templates_in(&self, node: &Node, scope: Scope) {
        self.check_templates_except(node, scope, None);
    }

    fn check_templates_except(&self, node: &Node, scope: Scope, skip: Option<Span>) {
        let mut strings = Vec::new();
        node.for_each_string(&mut |text, node| strings.push((text, node.span)));
        for (text, span) in strings {
            if Some(span) != skip {
                self.check_template_text(text, span, scope);
            }
        }
    }

    fn check_template_text(&self, text: &str, span: Span, scope: Scope) {
        if !text.contains("{{") {
            return;
        }
        match template::check_template(text) {
            Ok(references) => {
                for reference in references {
                    self.check_reference(&reference, text, span, scope);
                }
            }
            Err(error) => {
                let at = inner_span(self.file, span, text, error.span.clone());
                self.error(at, format!("invalid template: {}", error.message))
                    .labels[0]
                    .1 = "here".to_owned();
            }
        }
    }

    fn check_jq(
        &self,
        expression: &'a Spanned<String>,
        root: Root,
        scope: Scope,
        what: &'static str,
    ) {
        self.pending_jq.borrow_mut().push(PendingJq {
            expression,
            root,
            scope,
            what,
        });
    }

    /// Compiles every pending jq expression and checks what each reads.
    fn check_pending_jq(&self) {
        let pending = std::mem::take(&mut *self.pending_jq.borrow_mut());
        let sources: Vec<(&str, Root)> = pending
            .iter()
            .map(|p| (p.expression.value.as_str(), p.root))
            .collect();
        let results = template::jq::check_many(&sources);
        for (item, result) in pending.iter().zip(results) {
            let expression = item.expression;
            match result {
                Ok(references) => {
                    for reference in references {
                        self.check_reference(
                            &reference,
                            &expression.value,
                            expression.span,
                            item.scope,
                        );
                    }
                }
                Err(errors) => {
                    for error in errors {
                        let at = inner_span(
                            self.file,
                            expression.span,
                            &expression.value,
                            error.span.clone(),
                        );
                        self.error(
                            at,
                            format!("invalid jq in {}: {}", item.what, error.message),
                        )
                        .labels[0]
                            .1 = "here".to_owned();
                    }
                }
            }
        }
    }

    /// Whether a path read from the context can exist when this expression runs.
    fn check_reference(&self, reference: &Reference, text: &str, span: Span, scope: Scope) {
        let at = inner_span(self.file, span, text, reference.span.clone());
        let path = &reference.path;
        let Some(root) = path.first() else { return };
        let shown = path.join(".");
        match root.as_str() {
            "inputs" => {
                if let Some(name) = path.get(1)
                    && !self.runbook.inputs.contains_key(name)
                    && !self.loaded.unloaded.inputs.contains(name)
                {
                    let help = closest(name, self.runbook.inputs.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `inputs.{c}`?"))
                        .or_else(|| {
                            Some(declared_list(
                                "inputs",
                                self.runbook.inputs.keys().map(|k| k.value.as_str()),
                            ))
                        });
                    self.error(
                        at,
                        format!("`{shown}` names an input this runbook does not declare"),
                    )
                    .help = help;
                }
            }
            "secrets" => {
                if let Some(name) = path.get(1)
                    && !self.runbook.secrets.contains_key(name)
                    && !self.loaded.unloaded.secrets.contains(name)
                {
                    let help = closest(name, self.runbook.secrets.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `secrets.{c}`?"))
                        .or_else(|| {
                            Some(declared_list(
                                "secrets",
                                self.runbook.secrets.keys().map(|k| k.value.as_str()),
                            ))
                        });
                    self.error(
                        at,
                        format!("`{shown}` names a secret this runbook does not declare"),
                    )
                    .help = help;
                }
            }
            "item" | "index" => {
                if !scope.for_each {
                    self.error(at, format!("`{root}` exists only in a for_each step"))
                        .help = Some(
                        "add `for_each:` to this step, or read the value from elsewhere".to_owned(),
                    );
                }
            }
            "run" => {
                if let Some(field) = path.get(1) {
                    self.check_field(at, field, RUN_FIELDS, "run");
                }
            }
            "step" => {
                if let Some(field) = path.get(1) {
                    let fields = if scope.notice {
                        NOTICE_SELF_FIELDS
                    } else {
                        SELF_FIELDS
                    };
                    self.check_field(at, field, fields, "step");
                }
            }
            "steps" => self.check_step_reference(at, path, scope),
            other => {
                let help = closest(other, CONTEXT_ROOTS.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("the context has {}", quoted(CONTEXT_ROOTS)));
                self.error(at, format!("`{shown}` is not in the context"))
                    .help = Some(help);
            }
        }
    }

    fn check_field(&self, at: Span, field: &str, fields: &[&str], owner: &str) {
        if !fields.contains(&field) {
            let help = closest(field, fields.iter().copied())
                .map(|c| format!("did you mean `{owner}.{c}`?"))
                .unwrap_or_else(|| format!("`{owner}` has {}", quoted(fields)));
            self.error(at, format!("`{owner}.{field}` does not exist"))
                .help = Some(help);
        }
    }

    fn check_step_reference(&self, at: Span, path: &[String], scope: Scope) {
        let Some(name) = path.get(1) else { return };
        let Some(&target) = self.dag.index_of.get(name) else {
            if !self.loaded.unloaded.steps.contains(name) {
                let help = closest(name, self.dag.ids.iter().map(String::as_str))
                    .map(|c| format!("did you mean `steps.{c}`?"));
                self.error(
                    at,
                    format!("`steps.{name}` names a step that does not exist"),
                )
                .help = help;
            }
            return;
        };
        if let Some(current) = scope.step {
            let in_finally = self.dag.sections[current] == Section::Finally;
            if target == current {
                self.error(
                    at,
                    format!("step `{name}` reads its own result through `steps.{name}`"),
                )
                .help = Some("inside `outputs` and `until`, `.` is this step's result".to_owned());
                return;
            }
            if !in_finally && !self.dag.depends_on(current, target) {
                let current_id = self.dag.ids[current].clone();
                self.error(
                    at,
                    format!(
                        "step `{current_id}` reads `steps.{name}` but does not depend on `{name}`"
                    ),
                )
                .help = Some(format!(
                    "`{name}` may not have run yet; add `{name}` to the needs of `{current_id}`"
                ));
                return;
            }
        }
        let Some(field) = path.get(2) else { return };
        if !STEP_FIELDS.contains(&field.as_str()) {
            self.check_field(at, field, STEP_FIELDS, &format!("steps.{name}"));
            return;
        }
        if field == "outputs" && self.step(target).for_each.is_some() {
            let output = path.get(3).map_or(String::new(), |o| format!(".{o}"));
            self.error(
                at,
                format!("step `{name}` runs once per item, so it has no single `outputs`"),
            )
            .help = Some(format!(
                "read each item's outputs: `[.steps.{name}.items[].outputs{output}]`"
            ));
            return;
        }
        if field == "outputs"
            && let Some(output) = path.get(3)
            && let Some(declared) = self.declared_outputs(target)
            && !declared.iter().any(|d| d == output)
        {
            let help = closest(output, declared.iter().map(String::as_str))
                .map(|c| format!("did you mean `steps.{name}.outputs.{c}`?"))
                .unwrap_or_else(|| {
                    if declared.is_empty() {
                        format!("step `{name}` declares no outputs")
                    } else {
                        format!("step `{name}` declares {}", quoted_owned(&declared))
                    }
                });
            let step = self.step(target);
            let by_action = self
                .body_outputs(
                    step.outputs.as_ref(),
                    step.uses.as_ref(),
                    step.approval.is_some(),
                )
                .is_some_and(|names| names.iter().any(|n| n == output));
            if by_action && step.fallback.is_some() {
                self.error(
                    at,
                    format!("the fallback of step `{name}` has no output `{output}`"),
                )
                .help = Some(format!(
                    "when the fallback runs, its outputs replace the step's: declare `{output}` in the fallback's `outputs` too"
                ));
            } else {
                self.error(at, format!("step `{name}` has no output `{output}`"))
                    .help = Some(help);
            }
        }
    }

    /// The output names a step is known to produce, whichever way it ends (its action, or
    /// its fallback); `None` when they cannot be known before the run (a called runbook
    /// that did not load).
    fn declared_outputs(&self, index: usize) -> Option<Vec<String>> {
        let step = self.step(index);
        let mut names = self.body_outputs(
            step.outputs.as_ref(),
            step.uses.as_ref(),
            step.approval.is_some(),
        )?;
        if let Some(fallback) = &step.fallback {
            let from_fallback = self.body_outputs(
                fallback.outputs.as_ref(),
                fallback.uses.as_ref(),
                fallback.approval.is_some(),
            )?;
            names.retain(|n| from_fallback.contains(n));
        }
        Some(names)
    }

    /// Output names of one body: its `outputs`, or those of the runbook it `uses`, or the
    /// answer of an approval.
    fn body_outputs(
        &self,
        outputs: Option<&Spanned<SpannedMap<Spanned<String>>>>,
        uses: Option<&Spanned<String>>,
        approval: bool,
    ) -> Option<Vec<String>> {
        match (outputs, uses) {
            (Some(outputs), _) => Some(outputs.value.keys().map(|k| k.value.clone()).collect()),
            (None, Some(uses)) => self.bundle.called(self.loaded, &uses.value).map(|called| {
                called
                    .runbook
                    .outputs
                    .keys()
                    .map(|k| k.value.clone())
                    .collect()
            }),
            (None, None) if approval => {
                Some(["approved_by", "at", "comment"].map(str::to_owned).to_vec())
            }
            (None, None) => Some(Vec::new()),
        }
    }

    fn check_uses(&self, uses: &Spanned<String>, with: Option<&Spanned<SpannedMap<Node>>>) {
        let Some(called) = self.bundle.called(self.loaded, &uses.value) else {
            return;
        };
        let declared = &called.runbook.inputs;
        if let Some(with) = with {
            for key in with.value.keys() {
                if !declared.contains_key(&key.value)
                    && !called.unloaded.inputs.contains(&key.value)
                {
                    let help = closest(&key.value, declared.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| {
                            declared_list("inputs", declared.keys().map(|k| k.value.as_str()))
                        });
                    self.error(
                        key.span,
                        format!("`{}` does not declare an input `{}`", uses.value, key.value),
                    )
                    .help = Some(help);
                }
            }
        }
        let missing: Vec<&str> = declared
            .iter()
            .filter(|(name, input)| {
                input.default.is_none() && !with.is_some_and(|w| w.value.contains_key(&name.value))
            })
            .map(|(name, _)| name.value.as_str())
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.error(
                uses.span,
                format!(
                    "`{}` requires {} {list}, not given in `with`",
                    uses.value,
                    if missing.len() == 1 {
                        "input"
                    } else {
                        "inputs"
                    }
                ),
            );
        }
    }
}

/// Whether a mapping has a key that is not an action but is close to one.
fn misspells_an_action(node: &Node) -> bool {
    node.as_map().is_some_and(|entries| {
        entries.iter().any(|(key, _)| {
            !ACTION_KEYS.contains(&key.name.as_str())
                && closest(&key.name, ACTION_KEYS.iter().copied()).is_some()
        })
    })
}

fn action_span(action: &ActionRef<'_>) -> Span {
    match action {
        ActionRef::Exec(a) => a.span,
        ActionRef::Http(a) => a.span,
        ActionRef::Kubernetes(a) => a.span,
        ActionRef::Uses(a, _) => a.span,
        ActionRef::Approval(a) => a.span,
        ActionRef::Assert(a) => a.span,
        ActionRef::Sleep(a) => a.span,
        ActionRef::Record(a) => a.span,
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_owned(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn declared_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        format!("the runbook declares no {what}")
    } else {
        format!("declared {what}: {}", quoted(&names))
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

/// Where byte `at` of a literal block scalar's value (`script: |`) lies in its source
/// text: the value's lines are the source's lines without their indentation, so a
/// repeated piece (`{{inputs.job}}` twice in a script) is still found at its own line.
/// `None` when the source lines are not the value's lines (a folded or quoted scalar).
fn literal_block_offset(raw: &str, value: &str, at: usize) -> Option<usize> {
    // The span starts at the `|` header or at the first line's text.
    let body_start = if raw.starts_with('|') {
        raw.find('\n')? + 1
    } else {
        0
    };
    let line = value.get(..at)?.matches('\n').count();
    let column = at - value[..at].rfind('\n').map_or(0, |nl| nl + 1);
    let value_line = value.lines().nth(line).unwrap_or("");
    let mut line_start = body_start;
    for _ in 0..line {
        line_start += raw[line_start..].find('\n')? + 1;
    }
    let source_line = raw[line_start..].lines().next()?;
    // The indentation is whatever precedes the value's line in the source line.
    let indent = source_line.strip_suffix(value_line)?.len();
    source_line[..indent]
        .bytes()
        .all(|b| b == b' ')
        .then_some(line_start + indent + column)
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The span of `inner` (a byte range of the string's value) in the file. A plain scalar maps
/// directly; a quoted or block scalar is searched for the inner text; failing that, the
/// whole scalar is the best place to point.
fn inner_span(file: &SourceFile, span: Span, value: &str, inner: std::ops::Range<usize>) -> Span {
    let Some(raw) = file.text.get(span.offset..span.end()) else {
        return span;
    };
    let inner =
        inner.start.min(value.len())..inner.end.min(value.len()).max(inner.start.min(value.len()));
    if raw == value {
        return span.narrow(inner);
    }
    for quote in ['\'', '"'] {
        if raw.len() >= 2
            && raw.starts_with(quote)
            && raw.ends_with(quote)
            && &raw[1..raw.len() - 1] == value
        {
            return Span::new(span.offset + 1 + inner.start, inner.len());
        }
    }
    if let Some(at) = literal_block_offset(raw, value, inner.start) {
        return Span::new(span.offset + at, inner.len());
    }
    let Some(piece) = value.get(inner.clone()) else {
        return span;
    };
    if !piece.is_empty() {
        let mut found = raw.match_indices(piece);
        if let (Some((at, _)), None) = (found.next(), found.next()) {
            return Span::new(span.offset + at, piece.len());
        }
    }
    span
}
