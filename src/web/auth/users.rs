//! The users file: who may sign in, with which role. People sign in with a name and a
//! password, kept as an argon2id hash (a PHC string, `$argon2id$v=19$...`); API tokens are
//! kept as their SHA-256 only: a token is long and random, so its hash cannot be reversed,
//! and the file leaks no usable secret.

use super::password::PasswordHash;
use super::{Identity, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, Default)]
pub struct Users {
    users: Vec<PasswordEntry>,
    tokens: Vec<TokenEntry>,
}

/// The users file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersFile {
    #[serde(default)]
    pub users: Vec<PasswordEntry>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// A person who signs in with a password.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordEntry {
    /// The name signed in with, and recorded in the journal.
    pub name: String,
    pub role: Role,
    /// The argon2id hash of the password, as a PHC string.
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenEntry {
    /// Who the token acts as, in the journal.
    pub name: String,
    pub role: Role,
    /// `sha256:` and the hex digest of the token.
    pub sha256: String,
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

impl UsersFile {
    pub(crate) fn parse(text: &str, shown: &str) -> Result<Self, UsersError> {
        let file: UsersFile =
            serde_saphyr::from_str(text).map_err(|error| UsersError::Invalid {
                path: shown.to_owned(),
                message: error.to_string(),
            })?;
        for user in &file.users {
            if let Err(problem) = PasswordHash::parse(&user.password) {
                return Err(UsersError::Invalid {
                    path: shown.to_owned(),
                    message: format!("the password of {}: {problem}", user.name),
                });
            }
        }
        Ok(file)
    }
}

impl Users {
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        let file = UsersFile::parse(&text, &shown)?;
        Ok(Self {
            users: file.users,
            tokens: file.tokens,
        })
    }

    /// Who a bearer token belongs to.
    pub fn token(&self, token: &str) -> Option<Identity> {
        let digest = format!("sha256:{}", sha256_hex(token));
        self.tokens
            .iter()
            .find(|entry| entry.sha256.eq_ignore_ascii_case(&digest))
            .map(|entry| Identity {
                name: entry.name.clone(),
                role: entry.role,
            })
    }

    /// The person of this name who signs in with a password, with the hash to check it
    /// against.
    pub(crate) fn password_user(&self, name: &str) -> Option<(Identity, String)> {
        self.users
            .iter()
            .find(|user| user.name == name)
            .map(|user| {
                (
                    Identity {
                        name: user.name.clone(),
                        role: user.role,
                    },
                    user.password.clone(),
                )
            })
    }
}

/// The hex SHA-256 of a token, as the users file keeps it after `sha256:`.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
