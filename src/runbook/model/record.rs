//! `record`: what the language knows of it. The executor runs it, since the record is
//! kept in the store.

use super::*;

/// Add values to a named record that the store keeps across runs, or read it: what every
/// run recorded under that name (a snapshot restored, a change made), for a later run to
/// check.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The record's name (a template); every run that names it shares it.
    pub name: Spanned<String>,
    /// Values to add (templates; text); a value already there stays as first recorded.
    /// Without `add` the step only reads the record.
    #[serde(default)]
    pub add: Option<Vec<Spanned<String>>>,
}

impl ActionBody for Record {
    fn describe(&self) -> String {
        format!("record {}", self.name.value)
    }
}
