//! Resolving the secrets a runbook declares, when a run starts (and again at resume: they
//! are never read from the journal).

use super::redact::MIN_SECRET_CHARS;
use crate::runbook::Secret;
use crate::runbook::bounded_read::read_text_bounded;
use crate::runbook::load::Loaded;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret `{name}` of runbook `{runbook}` reads the environment variable {variable}, which is not set"
    )]
    MissingVariable {
        name: String,
        runbook: String,
        variable: String,
    },
    #[error("secret `{name}` of runbook `{runbook}` reads the file {path}: {reason}")]
    UnreadableFile {
        name: String,
        runbook: String,
        path: String,
        reason: String,
    },
    #[error(
        "secret `{name}` of runbook `{runbook}` is {length} character(s) long; a secret must have at least {minimum} characters, or it could not be told apart from the text around it when it is masked"
    )]
    TooShort {
        name: String,
        runbook: String,
        length: usize,
        minimum: usize,
    },
}

/// The most a secret `file:` may hold: keys, certificates and tokens are far smaller, and a
/// path to a device or a log file is a mistake better refused than read.
pub const MAX_SECRET_BYTES: u64 = 1024 * 1024;

/// The declared secrets of one runbook, by name.
pub fn resolve(loaded: &Loaded) -> Result<Map<String, Value>, SecretError> {
    let mut values = Map::new();
    let runbook = &loaded.runbook.name.value;
    for (name, secret) in loaded.runbook.secrets.iter() {
        let value = match &secret.value {
            Secret::Env(variable) => {
                std::env::var(variable).map_err(|_| SecretError::MissingVariable {
                    name: name.value.clone(),
                    runbook: runbook.clone(),
                    variable: variable.clone(),
                })?
            }
            Secret::File(path) => {
                let mut text = read_text_bounded(std::path::Path::new(path), MAX_SECRET_BYTES)
                    .map_err(|e| SecretError::UnreadableFile {
                        name: name.value.clone(),
                        runbook: runbook.clone(),
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                // Files written by editors and `echo` end with a newline that is not part of the secret.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        let length = value.chars().count();
        if length < MIN_SECRET_CHARS {
            return Err(SecretError::TooShort {
                name: name.value.clone(),
                runbook: runbook.clone(),
                length,
                minimum: MIN_SECRET_CHARS,
            });
        }
        values.insert(name.value.clone(), Value::String(value));
    }
    Ok(values)
}
