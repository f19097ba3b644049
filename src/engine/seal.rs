//! Values that carried a secret, kept in the journal encrypted with a key the user supplies,
//! so that a resumed run can give a later step the real value while the store never holds it
//! in clear.
//!
//! The key comes from `RUNBOOK_SECRET_KEY` (its text) or `RUNBOOK_SECRET_KEY_FILE` (a file
//! only its owner may read). Each run gets its own AES-256-GCM key, derived from the user's
//! key and the run id with HKDF-SHA256; each sealed value names its run and step as
//! associated data, so it cannot be moved to another step or run and still open.

use super::redact::Revealed;
use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable holding the key itself.
pub const KEY_VARIABLE: &str = "RUNBOOK_SECRET_KEY";
/// The environment variable naming a file that holds the key.
pub const KEY_FILE_VARIABLE: &str = "RUNBOOK_SECRET_KEY_FILE";
/// The shortest key accepted: `openssl rand -base64 32` gives 44 characters.
pub const MIN_KEY_BYTES: usize = 32;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("set one of {KEY_VARIABLE} and {KEY_FILE_VARIABLE}, not both")]
    Both,
    #[error(
        "the key in {source_name} is {length} bytes long; a key must have at least {MIN_KEY_BYTES} (for example `openssl rand -base64 32`)"
    )]
    TooShort { source_name: String, length: usize },
    #[error("cannot read the key file {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the key file {} can be read by other users (mode {mode:o}); make it private with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// Why a sealed value cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the run was started without {KEY_VARIABLE}, so the value was not kept; only a new run started with a key can give it to a later step after a resume"
    )]
    NotKept,
    #[error(
        "this process has no key to decrypt it; resume with the key the run was started with, in {KEY_VARIABLE} or {KEY_FILE_VARIABLE}"
    )]
    NoKey,
    #[error(
        "the key given does not decrypt it; resume with the key the run was started with, in {KEY_VARIABLE} or {KEY_FILE_VARIABLE}"
    )]
    WrongKey,
}

/// The user's key, as read from the environment.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn new(bytes: impl Into<Vec<u8>>, source_name: &str) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                source_name: source_name.to_owned(),
                length: bytes.len(),
            });
        }
        Ok(SecretKey { bytes })
    }

    /// The key from `RUNBOOK_SECRET_KEY` or `RUNBOOK_SECRET_KEY_FILE`; `None` when neither
    /// is set.
    pub fn from_environment() -> Result<Option<Self>, KeyError> {
        let text = std::env::var_os(KEY_VARIABLE).filter(|v| !v.is_empty());
        let file = std::env::var_os(KEY_FILE_VARIABLE).filter(|v| !v.is_empty());
        match (text, file) {
            (Some(_), Some(_)) => Err(KeyError::Both),
            (Some(text), None) => {
                use std::os::unix::ffi::OsStrExt;
                Self::new(text.as_bytes(), KEY_VARIABLE).map(Some)
            }
            (None, Some(path)) => Self::from_file(Path::new(&path)).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A key file must be private: a key others can read protects nothing.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let unreadable = |e: std::io::Error| KeyError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let mut bytes = std::fs::read(path).map_err(unreadable)?;
        // Files written by editors and `echo` end with a newline that is not part of the key.
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Self::new(bytes, &path.display().to_string())
    }

    /// The key of one run.
    pub fn for_run(&self, run_id: &str) -> RunKey {
        let prk = Salt::new(HKDF_SHA256, b"runbook journal values v1").extract(&self.bytes);
        let info = [run_id.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key = [0u8; 32];
        okm.fill(&mut key)
            .expect("the output length matches the key length");
        RunKey {
            key: RandomizedNonceKey::new(&AES_256_GCM, &key).expect("a 32-byte AES-256 key"),
            run_id: run_id.to_owned(),
        }
    }
}

/// The key that seals and opens the values of one run.
pub struct RunKey {
    key: RandomizedNonceKey,
    run_id: String,
}

impl std::fmt::Debug for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunKey(..)")
    }
}

impl RunKey {
    fn aad(&self, path: &str) -> Aad<Vec<u8>> {
        let mut aad = self.run_id.as_bytes().to_vec();
        aad.push(0);
        aad.extend_from_slice(path.as_bytes());
        Aad::from(aad)
    }

    /// The values of the step at `path`, encrypted: base64 of the nonce, the ciphertext and
    /// the tag. `None` only if the cipher fails, which leaves the values unkept, never clear.
    pub fn seal(&self, path: &str, values: &Revealed) -> Option<String> {
        let mut data = serde_json::to_vec(values).ok()?;
        let nonce = self
            .key
            .seal_in_place_append_tag(self.aad(path), &mut data)
            .ok()?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Some(BASE64.encode(out))
    }

    pub fn open(&self, path: &str, sealed: &str) -> Result<Revealed, OpenError> {
        let bytes = BASE64.decode(sealed).map_err(|_| OpenError::WrongKey)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError::WrongKey);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::WrongKey)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, self.aad(path), &mut data)
            .map_err(|_| OpenError::WrongKey)?;
        serde_json::from_slice(plain).map_err(|_| OpenError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(text: &str) -> SecretKey {
        SecretKey::new(text.as_bytes(), "test").unwrap()
    }

    #[test]
    fn a_value_opens_with_its_run_key_and_step_only() {
        let values = json!({"outputs": {"token": "hunter2"}})
            .as_object()
            .unwrap()
            .clone();
        let run = key("0123456789abcdef0123456789abcdef").for_run("r1");
        let sealed = run.seal("a", &values).unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(run.open("a", &sealed).unwrap(), values);
        assert_eq!(run.open("b", &sealed), Err(OpenError::WrongKey));
        let other_run = key("0123456789abcdef0123456789abcdef").for_run("r2");
        assert_eq!(other_run.open("a", &sealed), Err(OpenError::WrongKey));
        let other_key = key("0123456789abcdef0123456789abcdeX").for_run("r1");
        assert_eq!(other_key.open("a", &sealed), Err(OpenError::WrongKey));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(matches!(
            SecretKey::new(b"short".to_vec(), "X"),
            Err(KeyError::TooShort { length: 5, .. })
        ));
    }
}
