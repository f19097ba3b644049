//! Reading an action's rendered body, with errors that say which field is wrong and why.
//!
//! `runbook validate` has already checked the body's shape, but a template that is exactly
//! one `{{path}}` keeps the JSON type of its value, so only the run knows that
//! `cwd: "{{inputs.dirs}}"` turned into a list. Fields documented as strings therefore take
//! any scalar (`PORT: "{{inputs.port}}"` gives the number's text) and refuse lists, objects
//! and null with an [`ActionErrorKind::Invalid`](super::ActionErrorKind::Invalid) error.

use serde_json::{Map, Value};

use super::ActionError;

/// The fields of one action's body.
pub(crate) struct Fields<'a> {
    /// `exec`, `http.tls`: how messages name the place.
    place: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The body as a map whose keys are all in `known`.
    pub(crate) fn new(
        place: impl Into<String>,
        value: &'a Value,
        known: &[impl AsRef<str>],
    ) -> Result<Self, ActionError> {
        let place = place.into();
        let Value::Object(map) = value else {
            return Err(wrong_type(&place, "a map", value));
        };
        let is_known = |key: &String| known.iter().any(|k| k.as_ref() == key.as_str());
        if let Some(unknown) = map.keys().find(|key| !is_known(key)) {
            let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
            return Err(ActionError::invalid(format!(
                "unknown key `{unknown}` in `{place}` (expected one of: {})",
                known.join(", ")
            )));
        }
        Ok(Self { place, map })
    }

    /// A field that may be missing; `null` counts as missing.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// The dotted name of a field, for messages: `http.tls.ca_file`.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.place)
    }

    /// A text field: a string, or a number or boolean written as text.
    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, ActionError> {
        self.get(key).map(|v| text(v, &self.name(key))).transpose()
    }

    /// A boolean field.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ActionError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(&self.name(key), "true or false", other)),
        }
    }

    /// A map of name → text (`env`, `headers`), in the order written.
    pub(crate) fn text_map(&self, key: &str) -> Result<Vec<(String, String)>, ActionError> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Object(map) = value else {
            return Err(wrong_type(&self.name(key), "a map", value));
        };
        map.iter()
            .map(|(name, v)| {
                Ok((
                    name.clone(),
                    text(v, &format!("{}.{name}", self.name(key)))?,
                ))
            })
            .collect()
    }

    /// A nested map, such as `http.tls`.
    pub(crate) fn fields(
        &self,
        key: &str,
        known: &[impl AsRef<str>],
    ) -> Result<Option<Fields<'a>>, ActionError> {
        self.get(key)
            .map(|value| Fields::new(self.name(key), value, known))
            .transpose()
    }
}

/// A value as text, when it is a scalar.
pub(crate) fn text(value: &Value, name: &str) -> Result<String, ActionError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(wrong_type(name, "a string", other)),
    }
}

/// `` `exec.cwd` must be a string, not a list``.
pub(crate) fn wrong_type(name: &str, expected: &str, got: &Value) -> ActionError {
    ActionError::invalid(format!("`{name}` must be {expected}, not {}", kind_of(got)))
}

/// How a message names a value's JSON type.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
