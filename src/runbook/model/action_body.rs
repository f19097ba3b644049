//! What the language knows of one action besides its fields: its one-line summary and its
//! rules. Each action implements [`ActionBody`] in its own file beside its fields
//! (`model/exec.rs`, ...); validation and the plan ask it through [`ActionRef`], never by
//! matching on every action.

use super::*;
use crate::template::jq::Root;

/// The language side of one action.
pub trait ActionBody {
    /// One line, as a person would say it: `exec flink list`, `http GET https://...`.
    fn describe(&self) -> String;

    /// The action's own rules (a field it needs, fields that exclude each other, a timeout
    /// that is too short), reported through `checks`. `at` is where the action is written.
    fn check_rules<'a>(&'a self, _at: Span, _checks: &dyn ActionChecks<'a>) {}

    /// What its strings hold: by default every string is a template; an action whose
    /// fields hold jq or are not templates says so.
    fn check_values<'a>(&'a self, checks: &dyn ActionChecks<'a>) {
        checks.templates_in_body(None);
    }

    /// Which fields a dry run renders with the values it knows.
    fn planned_templates(&self) -> PlannedTemplates {
        PlannedTemplates::All
    }
}

/// Which fields of a body a dry run renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedTemplates {
    /// Every string is a template.
    All,
    /// Only these fields are templates; the others (jq conditions) are shown as written.
    Only(&'static [&'static str]),
}

/// The checks validation offers an action: each reports at its place, with the scope of
/// the step the action belongs to (what its templates and jq may read).
pub trait ActionChecks<'a> {
    /// Reports a problem at `at`, with help when there is some.
    fn error(&self, at: Span, message: String, help: Option<String>);
    /// A timeout is not shorter than the shortest timeout.
    fn timeout(&self, timeout: Option<&Spanned<Duration>>, what: &str);
    /// A jq expression compiles and reads only what exists; `what` names it in messages.
    fn jq(&self, expression: &'a Spanned<String>, root: Root, what: &'static str);
    /// One template compiles and reads only what exists.
    fn template(&self, text: &Spanned<String>);
    /// Every string of the action's body is a template that compiles and reads only what
    /// exists, except the one at `skip` (a jq condition inside the body).
    fn templates_in_body(&self, skip: Option<Span>);
    /// Values in a script stand only where the shell takes them as data.
    fn script_values(&self, script: &Spanned<String>);
}

/// The YAML keys of an action's body (or of a part of it), in the order its struct declares
/// them, read from the schema generated from that struct. The check of a rendered body at
/// run time uses these, so that it cannot drift from the fields the language reads.
pub fn keys_of<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}
