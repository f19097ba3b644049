//! Secret values never leave the engine: every free-form value that goes out (step outputs,
//! items, errors, messages, reasons) has each secret masked as `***`.
//!
//! Masking works on the typed event, field by field ([`Redact`]), never on the event's text:
//! the names of the event's own fields are not free-form, so a secret that happens to be
//! `status` or `path` cannot break the event, and there is no unmasked fallback to fall to.

use crate::event::RunEvent;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

pub const MASK: &str = "***";

/// The shortest secret value a run accepts: a one-character value would be masked in every
/// word that contains it, which would destroy every message without protecting anything.
pub const MIN_SECRET_CHARS: usize = 2;

/// What a URL component encoder leaves alone (RFC 3986 unreserved characters).
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first, so a form that contains another is
    /// masked whole.
    forms: Vec<String>,
}

impl Redactor {
    /// Values shorter than [`MIN_SECRET_CHARS`] are refused when secrets are resolved; here
    /// they are left out, since masking them would mask nearly everything.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut forms: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .flat_map(|secret| forms_of(&secret))
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Whether `text` holds a secret in any of its forms.
    pub fn finds_in(&self, text: &str) -> bool {
        self.forms.iter().any(|form| text.contains(form.as_str()))
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), MASK);
            }
        }
        out
    }

    /// A free-form value with every secret masked: in strings and object keys, and a
    /// number or boolean whose text contains a secret becomes the string `***` (a number
    /// cannot hold a mask, and its digits are the secret).
    pub fn value(&self, value: &Value) -> Value {
        if self.forms.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Number(n) if self.finds_in(&n.to_string()) => Value::String(MASK.to_owned()),
            Value::Bool(b) if self.finds_in(&b.to_string()) => Value::String(MASK.to_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Outputs masked: their names are the runbook's own, not free-form, so only their
    /// values are masked (and a step reading `outputs.status` still finds it).
    pub fn outputs(&self, outputs: &Value) -> Value {
        match outputs {
            Value::Object(map) if !self.forms.is_empty() => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(v)))
                    .collect(),
            ),
            other => self.value(other),
        }
    }
}

/// The forms a secret takes in what a run writes: as it is, escaped inside a JSON string
/// (a PEM key's newlines become `\n`), with non-ASCII escaped too (`\u00e9`, as Python and
/// many JSON encoders write it), escaped twice (JSON text quoted inside JSON),
/// percent-encoded in a URL (a space as `%20` or `+`), and with its whitespace run together
/// into single spaces, as a message quoting a response body on one line shows it.
fn forms_of(secret: &str) -> Vec<String> {
    let json = json_escaped(secret);
    let ascii = ascii_escaped(&json);
    let twice = json_escaped(&json);
    // Encoders differ on what they leave alone: RFC 3986's unreserved characters, or only
    // letters and digits.
    let url = utf8_percent_encode(secret, URL_COMPONENT).to_string();
    let url_strict = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    let one_line = secret.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut forms = vec![secret.to_owned(), json, ascii, twice, one_line];
    for url in [url, url_strict] {
        forms.push(url.replace("%20", "+"));
        forms.push(url);
    }
    forms
        .into_iter()
        .filter(|form| form.chars().count() >= MIN_SECRET_CHARS)
        .collect()
}

/// A string as it appears between the quotes of a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serialises");
    quoted[1..quoted.len() - 1].to_owned()
}

/// JSON-escaped text with every non-ASCII character as `\uXXXX` (UTF-16 units).
fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The real values of an event's value fields that masking changed, by field name
/// (`outputs`, `item`, `items`): what a live run keeps in memory and seals in the journal.
pub type Revealed = Map<String, Value>;

/// Something whose free-form parts may carry a secret.
pub trait Redact {
    /// Masks every secret in place; returns the real values of the value fields that
    /// changed, which later steps may read.
    fn redact(&mut self, redactor: &Redactor) -> Revealed;
}

impl Redact for RunEvent {
    fn redact(&mut self, redactor: &Redactor) -> Revealed {
        let mut revealed = Revealed::new();
        if redactor.is_empty() {
            return revealed;
        }
        let text = |s: &mut String| *s = redactor.text(s);
        let optional = |s: &mut Option<String>| {
            if let Some(s) = s {
                *s = redactor.text(s);
            }
        };
        let mut value = |name: &str, v: &mut Value| {
            let masked = if name == "outputs" {
                redactor.outputs(v)
            } else {
                redactor.value(v)
            };
            if masked != *v {
                revealed.insert(name.to_owned(), std::mem::replace(v, masked));
            }
        };
        match self {
            // The run's creation is written before the run starts, holds the runbook sources
            // and inputs a resume must read back exactly, and never holds a secret's value.
            RunEvent::RunStarted { .. } => {}
            RunEvent::RunResumed { by } => text(by),
            RunEvent::StepStarted { .. } | RunEvent::StepPolling { .. } => {}
            // Times and numbers only, with the step path the runbook wrote.
            RunEvent::WindowOpened { .. } | RunEvent::WindowChecked(_) => {}
            RunEvent::StepExpanded { items, .. } => {
                let mut all = Value::Array(std::mem::take(items));
                value("items", &mut all);
                if let Value::Array(masked) = all {
                    *items = masked;
                }
            }
            RunEvent::StepAttemptFailed { error, .. }
            | RunEvent::UndoAttemptFailed { error, .. } => text(error),
            RunEvent::UndoStarted { .. } => {}
            RunEvent::UndoEnded { error, .. } => optional(error),
            RunEvent::RunUndoing { reason } => text(reason),
            RunEvent::RunAborted(abort) => {
                text(&mut abort.by);
                text(&mut abort.reason);
            }
            RunEvent::StepOutput { stdout, stderr, .. } => {
                text(stdout);
                text(stderr);
            }
            RunEvent::StepEnded {
                outputs,
                error,
                item,
                ..
            } => {
                value("outputs", outputs);
                if let Some(item) = item {
                    value("item", item);
                }
                optional(error);
            }
            RunEvent::ApprovalRequested { prompt, .. } => text(prompt),
            RunEvent::ApprovalGiven { by, comment, .. } => {
                text(by);
                optional(comment);
            }
            RunEvent::Warning { message, .. } => text(message),
            // Written by a person's control, not by the executor; masked all the same.
            RunEvent::StepSkippedByHand(skipped) => {
                text(&mut skipped.reason);
                value("outputs", &mut skipped.outputs);
            }
            RunEvent::RunRetried(retried) => text(&mut retried.reason),
            RunEvent::RunEdited(edited) => text(&mut edited.reason),
            RunEvent::RunPaused(pause) => text(&mut pause.reason),
            RunEvent::StepNotice { text: notice, .. } => text(notice),
            // Lock names never carry a secret (the executor refuses one that would), and
            // hold nothing a later step reads: masked all the same, like any text.
            RunEvent::LockWaiting(waiting) => text(&mut waiting.lock),
            RunEvent::LockAcquired(acquired) => text(&mut acquired.lock),
            RunEvent::LockReleased(released) => text(&mut released.lock),
            RunEvent::RunEnded {
                reason,
                outputs,
                notices,
                ..
            } => {
                optional(reason);
                for notice in notices {
                    text(&mut notice.text);
                }
                // Nothing reads a run's outputs after its end: they are masked, not kept.
                *outputs = redactor.outputs(outputs);
            }
        }
        revealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn masks_numbers_and_escaped_and_encoded_forms() {
        let redactor = Redactor::new(["48213957".to_owned(), "a \"b\"\n\\é".to_owned()]);
        assert_eq!(
            redactor.value(&json!({"pin": 48213957, "long": 1482139570.5, "ok": 7})),
            json!({"pin": "***", "long": "***", "ok": 7})
        );
        for leaked in [
            r#"a \"b\"\n\\é"#,
            r#"a \"b\"\n\\\u00e9"#,
            r#"a \\\"b\\\"\\n\\\\é"#,
            "a%20%22b%22%0A%5C%C3%A9",
            "a+%22b%22%0A%5C%C3%A9",
        ] {
            assert_eq!(redactor.text(&format!("<{leaked}>")), "<***>", "{leaked}");
        }
    }

    #[test]
    fn an_event_keeps_its_shape_whatever_the_secret() {
        let redactor = Redactor::new(["status".to_owned(), "path".to_owned()]);
        let mut event = RunEvent::StepEnded {
            path: "a".to_owned(),
            status: crate::engine::StepStatus::Succeeded,
            attempts: 1,
            via: None,
            outputs: json!({"said": "v=status", "n": 2}),
            error: Some("no path".to_owned()),
            item: None,
            duration_ms: 1,
            sealed: None,
        };
        let revealed = event.redact(&redactor);
        assert_eq!(
            revealed,
            json!({"outputs": {"said": "v=status", "n": 2}})
                .as_object()
                .unwrap()
                .clone()
        );
        let RunEvent::StepEnded { outputs, error, .. } = &event else {
            unreachable!()
        };
        assert_eq!(outputs, &json!({"said": "v=***", "n": 2}));
        assert_eq!(error.as_deref(), Some("no ***"));
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains(r#""status":"succeeded""#), "{text}");
    }
}
