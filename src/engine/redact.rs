//! Secret values never leave the engine: every string that goes out (events, outputs,
//! errors, reports) has each secret value replaced by `***`.

use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

pub const MASK: &str = "***";

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        // An empty value would match everywhere, and a one-character one almost everywhere:
        // masking them would destroy every message without protecting anything real.
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 2).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    pub fn value(&self, value: &Value) -> Value {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_in_nested_values() {
        let redactor = Redactor::new(["hunter2".to_owned(), "x".to_owned()]);
        let value =
            serde_json::json!({"a": "pw=hunter2", "b": ["hunter2hunter2"], "hunter2": 1, "c": "x"});
        assert_eq!(
            redactor.value(&value),
            serde_json::json!({"a": "pw=***", "b": ["******"], "***": 1, "c": "x"})
        );
    }
}
