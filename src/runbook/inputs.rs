//! The values a run is given for its inputs, checked against their declared types.

use super::model::{InputType, Runbook};
use serde_json::{Map, Value};
use std::fmt;

/// A problem with a given input; the message names the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    pub message: String,
    /// The input the problem is about, when it is about one: a form shows the message next
    /// to that field.
    pub input: Option<String>,
}

fn error(message: impl fmt::Display) -> InputError {
    InputError {
        message: message.to_string(),
        input: None,
    }
}

impl InputError {
    fn about(mut self, input: &str) -> InputError {
        self.input = Some(input.to_owned());
        self
    }
}

/// Parses `name=value` as given on the command line.
pub fn split_assignment(text: &str) -> Result<(String, String), InputError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(error(format_args!(
            "`--input {text}` is not of the form name=value"
        ))),
    }
}

/// Reads a command-line value as the input's declared type: arrays and objects as JSON.
pub fn parse_value(name: &str, kind: InputType, text: &str) -> Result<Value, InputError> {
    let wrong = |expected: &str| {
        error(format_args!(
            "input `{name}` is {} {}: `{text}` is not {expected}",
            article(kind),
            kind.name()
        ))
    };
    match kind {
        InputType::String => Ok(Value::String(text.to_owned())),
        InputType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| wrong("an integer")),
        InputType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| wrong("a number")),
        InputType::Boolean => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(wrong("true or false")),
        },
        InputType::Array | InputType::Object => {
            let example = match kind {
                InputType::Array => format!("--input '{name}=[\"orders\", \"billing\"]'"),
                _ => format!("--input '{name}={{\"job\": \"orders\", \"parallelism\": 4}}'"),
            };
            let expected = format!("a JSON {}", kind.name());
            // A value that is not JSON at all (`jobs=orders`) is most likely a plain word
            // meant as the only element: say what the input takes, not where JSON broke.
            let value: Value = serde_json::from_str(text).map_err(|e| {
                let mut wrong = wrong(&expected);
                let starts_like_json = text.trim_start().starts_with(['[', '{']);
                if starts_like_json {
                    wrong
                        .message
                        .push_str(&format!(" (the JSON breaks at {e})"));
                }
                wrong.message.push_str(&format!("; for example {example}"));
                wrong
            })?;
            if kind.accepts(&value) {
                Ok(value)
            } else {
                let mut wrong = wrong(&expected);
                wrong.message.push_str(&format!("; for example {example}"));
                Err(wrong)
            }
        }
    }
}

fn article(kind: InputType) -> &'static str {
    match kind {
        InputType::Integer | InputType::Array | InputType::Object => "an",
        _ => "a",
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The inputs of a run: values from a file, then from the command line (which win), then
/// defaults. Every problem is reported, not just the first.
pub fn resolve(
    runbook: &Runbook,
    from_file: Option<&Map<String, Value>>,
    from_args: &[(String, String)],
) -> Result<Map<String, Value>, Vec<InputError>> {
    let mut errors = Vec::new();
    let mut values = Map::new();
    let declared: Vec<&str> = runbook.inputs.keys().map(|k| k.value.as_str()).collect();
    let unknown = |name: &str| {
        let help = super::de::closest(name, declared.iter().copied())
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_else(|| {
                if declared.is_empty() {
                    " (it declares none)".to_owned()
                } else {
                    format!(
                        " (it declares {})",
                        declared
                            .iter()
                            .map(|d| format!("`{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            });
        error(format_args!(
            "unknown input `{name}`: runbook `{}` does not declare it{help}",
            runbook.name.value
        ))
        .about(name)
    };
    if let Some(file) = from_file {
        for (name, value) in file {
            match runbook.inputs.get(name) {
                None => errors.push(unknown(name)),
                Some(input) if !input.kind.accepts(value) => errors.push(
                    error(format_args!(
                        "input `{name}` is {} {}, but the inputs file gives {}",
                        article(input.kind.value),
                        input.kind.name(),
                        describe(value)
                    ))
                    .about(name),
                ),
                Some(_) => {
                    values.insert(name.clone(), value.clone());
                }
            }
        }
    }
    for (name, text) in from_args {
        match runbook.inputs.get(name) {
            None => errors.push(unknown(name)),
            Some(input) => match parse_value(name, input.kind.value, text) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(e) => errors.push(e.about(name)),
            },
        }
    }
    for (name, input) in runbook.inputs.iter() {
        if values.contains_key(&name.value) {
            continue;
        }
        match &input.default {
            Some(default) => {
                values.insert(name.value.clone(), default.to_json());
            }
            None => errors.push(
                error(format_args!(
                    "missing required input `{}` ({}){}",
                    name.value,
                    input.kind.name(),
                    input
                        .description
                        .as_ref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ))
                .about(&name.value),
            ),
        }
    }
    if errors.is_empty() {
        // Keep the declaration order, so plans and journals read the same every time.
        let mut ordered = Map::new();
        for name in runbook.inputs.keys() {
            if let Some(value) = values.remove(&name.value) {
                ordered.insert(name.value.clone(), value);
            }
        }
        Ok(ordered)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_as_their_declared_type() {
        assert_eq!(
            parse_value("n", InputType::Integer, "42").unwrap(),
            Value::from(42)
        );
        assert_eq!(
            parse_value("b", InputType::Boolean, "true").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            parse_value("a", InputType::Array, r#"["x", 1]"#).unwrap(),
            serde_json::json!(["x", 1])
        );
        assert_eq!(
            parse_value("s", InputType::String, "[1]").unwrap(),
            Value::String("[1]".into())
        );
    }

    #[test]
    fn wrong_values_name_the_input() {
        let e = parse_value("jobs", InputType::Array, "{}").unwrap_err();
        assert!(e.message.contains("input `jobs` is an array"), "{e}");
        let e = parse_value("count", InputType::Integer, "ten").unwrap_err();
        assert!(e.message.contains("input `count`"), "{e}");
        let e = parse_value("jobs", InputType::Array, "[1,").unwrap_err();
        assert!(e.message.contains("the JSON breaks at"), "{e}");
        let e = parse_value("jobs", InputType::Object, "orders").unwrap_err();
        assert_eq!(
            e.message,
            "input `jobs` is an object: `orders` is not a JSON object; for example \
             --input 'jobs={\"job\": \"orders\", \"parallelism\": 4}'"
        );
    }
}
