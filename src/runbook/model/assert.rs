//! `assert`: what the language knows of it (its fields, its rules, its summary). It runs
//! in `actions::assert`.

use super::*;
use crate::template::jq::Root;

/// Fail unless jq conditions hold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    /// A jq condition over the context, or a list of them; all must hold.
    pub that: Conditions,
    /// The failure message (a template).
    #[serde(default)]
    pub message: Option<Spanned<String>>,
}

/// One jq condition or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as a node first: an untagged enum would lose the spans of the strings.
        let node = Node::deserialize(deserializer)?;
        let as_condition = |node: &Node| {
            node.as_str()
                .map(|text| Spanned::new(text.to_owned(), node.span))
        };
        let conditions = match &node.kind {
            crate::runbook::NodeKind::Seq(items) => items.iter().map(as_condition).collect(),
            _ => as_condition(&node).map(|one| vec![one]),
        };
        conditions.map(Conditions).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "expected a jq condition or a list of them, found {}",
                node.kind_name()
            ))
        })
    }
}

impl JsonSchema for Conditions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Conditions".into()
    }
    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A jq condition, or a list of them that must all hold.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

impl ActionBody for Assert {
    fn describe(&self) -> String {
        "assert".to_owned()
    }

    /// `that` is jq over the context, not a template; `message` is a template.
    fn check_values<'a>(&'a self, checks: &dyn ActionChecks<'a>) {
        for condition in &self.that.0 {
            checks.jq(condition, Root::Context, "assert");
        }
        if let Some(message) = &self.message {
            checks.template(message);
        }
    }

    fn planned_templates(&self) -> PlannedTemplates {
        PlannedTemplates::Only(&["message"])
    }
}
