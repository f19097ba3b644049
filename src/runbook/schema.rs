//! The JSON Schema of the language, generated from the model.

/// The schema as pretty JSON with a trailing newline, exactly as checked in under `schemas/`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(super::model::Runbook);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serialises");
    text.push('\n');
    text
}
