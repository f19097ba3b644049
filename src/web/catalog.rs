//! Which runbooks the web may start: the files and folders serve.yaml lists under
//! `http.runbooks`, plus every schedule's runbook. A start request names a runbook of the
//! catalog by its `name`; nothing else is ever read, whatever path a request might carry.
//!
//! The files are read again at each request, so an edited runbook is started as it is now,
//! as `runbook run` would; inputs are checked by the command line's own code
//! ([`crate::runbook::inputs::resolve`]), and the run is enqueued for serve's workers.

use super::WebState;
use super::auth::Identity;
use crate::app::{self, AppError, EnqueueRequest};
use crate::runbook::diagnostic::display_path;
use crate::runbook::inputs;
use crate::runbook::validate::Bundle;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

/// The configured entries, resolved against serve.yaml's folder.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Runbook files named one by one, and schedules' runbooks.
    files: Vec<PathBuf>,
    /// Folders: every `.yaml` / `.yml` file directly in each that is a valid runbook.
    folders: Vec<PathBuf>,
}

/// One runbook the web may start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogRunbook {
    /// The runbook's `name`: what a start request names.
    pub name: String,
    /// The file, as serve reads it.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its inputs, in declaration order.
    pub inputs: Vec<CatalogInput>,
    /// The names of its secrets: read by the runbook where serve runs, never given.
    pub secrets: Vec<String>,
    /// Why it cannot be started now (`file:line:col: message`); empty when it can.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A typed input of a runbook.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogInput {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `array` or `object`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Without a default, the input must be given.
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A problem with one field of a start request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The input's name (`inputs.NAME` is not used: the name alone), or `runbook`.
    pub field: String,
    pub message: String,
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartProblems {
    /// The catalog has no runbook of that name.
    #[error("no runbook `{0}` may be started here")]
    UnknownRunbook(String),
    /// The runbook does not validate now.
    #[error("runbook `{name}` is invalid: {}", problems.join("; "))]
    InvalidRunbook { name: String, problems: Vec<String> },
    /// The inputs are wrong; one problem per field.
    #[error("the inputs are not valid")]
    Fields(Vec<FieldProblem>),
    /// The store refused the run.
    #[error(transparent)]
    App(#[from] AppError),
}

/// A runbook found in the catalog, loaded.
struct Found {
    path: PathBuf,
    bundle: Arc<Bundle>,
}

impl Catalog {
    /// `entries` as written under `http.runbooks` (relative to `base`), and the schedules'
    /// runbook files (already resolved).
    pub fn new(base: &Path, entries: &[String], schedules: &[PathBuf]) -> Catalog {
        let mut catalog = Catalog::default();
        for entry in entries {
            let path = base.join(entry);
            if path.is_dir() {
                catalog.folders.push(path);
            } else {
                catalog.files.push(path);
            }
        }
        for path in schedules {
            if !catalog.files.contains(path) {
                catalog.files.push(path.clone());
            }
        }
        catalog
    }

    /// Every file the catalog names now: listed files first, then each folder's runbook
    /// files in name order. Paths appear once.
    fn candidates(&self) -> Vec<(PathBuf, bool)> {
        let mut found: Vec<(PathBuf, bool)> =
            self.files.iter().map(|p| (p.clone(), true)).collect();
        for folder in &self.folders {
            let Ok(entries) = std::fs::read_dir(folder) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml")
                })
                .collect();
            files.sort();
            for file in files {
                if !found.iter().any(|(known, _)| *known == file) {
                    found.push((file, false));
                }
            }
        }
        found
    }

    /// The runbooks that may be started, by file. A file named one by one that does not
    /// validate is listed with its problems; a file of a folder that does not is left out
    /// (a folder may hold other YAML than runbooks). The first file of a `name` wins.
    pub fn list(&self) -> Vec<CatalogRunbook> {
        let mut listed: Vec<CatalogRunbook> = Vec::new();
        for (path, named) in self.candidates() {
            let entry = match app::load(&path, &[]) {
                Ok(bundle) => describe(&path, &bundle),
                Err(AppError::InvalidRunbook(problems)) if named => CatalogRunbook {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: display_path(&path),
                    description: None,
                    inputs: Vec::new(),
                    secrets: Vec::new(),
                    problems: problems.iter().map(problem_line).collect(),
                },
                Err(_) => continue,
            };
            if !listed.iter().any(|known| known.name == entry.name) {
                listed.push(entry);
            }
        }
        listed
    }

    /// The runbook of that name, loaded and valid.
    fn find(&self, name: &str) -> Result<Found, StartProblems> {
        for (path, _) in self.candidates() {
            match app::load(&path, &[]) {
                Ok(bundle) => {
                    let matches = bundle
                        .root()
                        .is_some_and(|root| root.runbook.name.value == name);
                    if matches {
                        return Ok(Found { path, bundle });
                    }
                }
                Err(AppError::InvalidRunbook(problems)) => {
                    // An invalid file cannot tell its name; its file name stands for it.
                    if path.file_stem().is_some_and(|stem| stem == name) {
                        return Err(StartProblems::InvalidRunbook {
                            name: name.to_owned(),
                            problems: problems.iter().map(problem_line).collect(),
                        });
                    }
                }
                Err(_) => {}
            }
        }
        Err(StartProblems::UnknownRunbook(name.to_owned()))
    }
}

fn problem_line(problem: &crate::runbook::diagnostic::Diagnostic) -> String {
    match problem.location() {
        Some(at) => format!("{at}: {}", problem.message),
        None => problem.message.clone(),
    }
}

fn describe(path: &Path, bundle: &Bundle) -> CatalogRunbook {
    let root = bundle.root().expect("a valid runbook has loaded");
    let runbook = &root.runbook;
    CatalogRunbook {
        name: runbook.name.value.clone(),
        path: display_path(path),
        description: runbook.description.clone(),
        inputs: runbook
            .inputs
            .iter()
            .map(|(name, input)| CatalogInput {
                name: name.value.clone(),
                kind: input.kind.name().to_owned(),
                required: input.default.is_none(),
                default: input.default.as_ref().map(|d| d.to_json()),
                description: input.description.clone(),
            })
            .collect(),
        secrets: runbook.secrets.keys().map(|k| k.value.clone()).collect(),
        problems: Vec::new(),
    }
}

/// The runbooks the web may start, with their typed inputs.
pub fn list(state: &WebState) -> Vec<CatalogRunbook> {
    state.catalog.list()
}

/// Checks `given` against the inputs of runbook `runbook_name` exactly as `runbook run`
/// checks its `--input`s, then enqueues a run of it for serve's workers, started by
/// `identity`. Answers the run's id.
///
/// A JSON string is read as the text of `--input NAME=TEXT` (so a form's fields work: `"3"`
/// for an integer, `'["a"]'` for an array); any other JSON value must already be of the
/// input's type, as in an inputs file. An empty string for an input that is not a string
/// counts as not given (its default applies). A secret of the runbook is refused.
pub async fn start_run(
    state: &WebState,
    identity: &Identity,
    runbook_name: &str,
    given: &Value,
) -> Result<String, StartProblems> {
    let found = state.catalog.find(runbook_name)?;
    let values = check_inputs(&found.bundle, given)?;
    let request = EnqueueRequest {
        bundle: found.bundle,
        file: display_path(&found.path),
        inputs: values,
        run_id: None,
        store: state.store_url.clone(),
        started_by: Some(identity.name.clone()),
    };
    Ok(app::enqueue(request).await?)
}

/// The inputs of a start request, resolved as the command line resolves them.
fn check_inputs(bundle: &Bundle, given: &Value) -> Result<Map<String, Value>, StartProblems> {
    let runbook = &bundle.root().expect("a valid runbook has loaded").runbook;
    let object = match given {
        Value::Null => Map::new(),
        Value::Object(object) => object.clone(),
        other => {
            return Err(StartProblems::Fields(vec![FieldProblem {
                field: "inputs".to_owned(),
                message: format!(
                    "`inputs` is an object of input names to values, not {}",
                    kind_of(other)
                ),
            }]));
        }
    };
    let mut problems = Vec::new();
    let mut typed = Map::new();
    let mut texts = Vec::new();
    for (name, value) in object {
        if runbook.secrets.keys().any(|k| k.value == name) {
            problems.push(FieldProblem {
                message: format!(
                    "`{name}` is a secret of the runbook: it is never given as an input; the \
                     runbook reads it where serve runs"
                ),
                field: name,
            });
            continue;
        }
        let declared = runbook.inputs.get(&name).map(|input| input.kind.value);
        match value {
            Value::String(text)
                if text.is_empty()
                    && declared.is_some_and(|k| k != crate::runbook::InputType::String) => {}
            Value::String(text) => texts.push((name, text)),
            other => {
                typed.insert(name, other);
            }
        }
    }
    match inputs::resolve(runbook, Some(&typed), &texts) {
        Ok(values) if problems.is_empty() => Ok(values),
        Ok(_) => Err(StartProblems::Fields(problems)),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|error| {
                FieldProblem {
                    field: error.input.unwrap_or_else(|| "inputs".to_owned()),
                    message: error
                        .message
                        .replace("the inputs file gives", "the request gives"),
                }
            }));
            Err(StartProblems::Fields(problems))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
