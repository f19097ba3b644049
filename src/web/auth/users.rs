//! The users file: who may sign in, with which role. API tokens are kept as their SHA-256
//! only: a token is long and random, so its hash cannot be reversed, and the file leaks no
//! usable secret.

use super::{Identity, Role};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, Default)]
pub struct Users {
    tokens: Vec<TokenEntry>,
}

/// The users file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Who the token acts as, in the journal.
    name: String,
    role: Role,
    /// `sha256:` and the hex digest of the token.
    sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the users file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl Users {
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: UsersFile =
            serde_saphyr::from_str(&text).map_err(|error| UsersError::Invalid {
                path: shown,
                message: error.to_string(),
            })?;
        Ok(Self {
            tokens: file.tokens,
        })
    }

    /// Who a bearer token belongs to.
    pub fn token(&self, token: &str) -> Option<Identity> {
        let digest = format!("sha256:{}", hex(&Sha256::digest(token.as_bytes())));
        self.tokens
            .iter()
            .find(|entry| entry.sha256.eq_ignore_ascii_case(&digest))
            .map(|entry| Identity {
                name: entry.name.clone(),
                role: entry.role,
            })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
