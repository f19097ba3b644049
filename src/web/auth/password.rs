//! Passwords, hashed with argon2id (PHC strings). Checking one is slow on purpose (tens of
//! milliseconds and 19 MiB), which is what makes guessing expensive; callers on the async
//! runtime run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::phc;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// A password's hash as the users file keeps it, parsed.
pub struct PasswordHash(phc::PasswordHash);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("not an argon2id hash (a PHC string starting with $argon2id$): {0}")]
    NotArgon2id(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checked when the name is unknown, so that an unknown name costs the same time as a wrong
/// password and the answer's timing does not tell which names exist. The hash of a random
/// password nobody knows, made with the default parameters.
const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRmb3Jub2JvZHk$yY1Uuc6n1a/KAo0BFQ3hOqiAyA2tQuIcmhTdrxbqDE8";

impl PasswordHash {
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        if !text.starts_with("$argon2id$") {
            return Err(PasswordError::NotArgon2id("another algorithm".to_owned()));
        }
        phc::PasswordHash::new(text)
            .map(PasswordHash)
            .map_err(|e| PasswordError::NotArgon2id(e.to_string()))
    }

    /// Whether `password` is the one hashed.
    pub fn matches(&self, password: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), &self.0)
            .is_ok()
    }
}

/// Hashes a password with argon2id, its default parameters and a random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` is the one whose hash is `stored`; with no stored hash (an unknown
/// name) a hash is still checked, so that both take as long. Blocking: seconds of CPU in
/// total under a guessing attack, hence the blocking pool.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    let known = stored.is_some();
    let hash = stored.unwrap_or(NOBODY);
    match PasswordHash::parse(hash) {
        Ok(hash) => hash.matches(password) && known,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only_and_an_unknown_name_never_matches() {
        let stored = hash("hunter42").expect("hash");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify(Some(&stored), "hunter42"));
        assert!(!verify(Some(&stored), "hunter43"));
        assert!(PasswordHash::parse(NOBODY).is_ok());
        assert!(!verify(None, "hunter42"));
        assert!(PasswordHash::parse("$2b$12$bcrypt").is_err());
    }
}
