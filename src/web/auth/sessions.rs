//! Sessions of people signed in through the sign-in page, kept in serve's memory: a restart
//! signs everyone out. A session id is 256 random bits; the table is keyed by its SHA-256,
//! so that a lookup's timing says nothing about the ids held. A session unused for the idle
//! time is gone.

use super::Identity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie holding the session id.
pub const COOKIE: &str = "runbook_session";

/// How long a session lasts unused when serve.yaml does not say.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(12 * 3600);

/// What the middleware knows of a signed-in browser besides who it is: the token its forms
/// must carry (CSRF), which a page puts in a hidden input named `csrf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
}

pub struct Sessions {
    idle: Duration,
    table: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    identity: Identity,
    session: Session,
    last_used: Instant,
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `identity`; returns the id to set as the cookie's value.
    pub fn open(&self, identity: Identity) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the sessions left idle, so that the table does not grow with sign-ins.
        table.retain(|_, entry| now.duration_since(entry.last_used) <= self.idle);
        table.insert(
            key(&id),
            Entry {
                identity,
                session: Session {
                    csrf: random_token(),
                },
                last_used: now,
            },
        );
        id
    }

    /// Who the session of this id is, if it is open and has not been idle too long; using it
    /// keeps it open.
    pub fn find(&self, id: &str) -> Option<(Identity, Session)> {
        let key = key(id);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.get_mut(&key)?;
        if now.duration_since(entry.last_used) > self.idle {
            table.remove(&key);
            return None;
        }
        entry.last_used = now;
        Some((entry.identity.clone(), entry.session.clone()))
    }

    /// Signs the session of this id out.
    pub fn close(&self, id: &str) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&key(id));
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 256 bits from the system's secure random source, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::auth::Role;

    fn ada() -> Identity {
        Identity {
            name: "ada".into(),
            role: Role::Admin,
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_until_closed() {
        let sessions = Sessions::new(DEFAULT_IDLE);
        let id = sessions.open(ada());
        assert_eq!(id.len(), 43);
        let (identity, session) = sessions.find(&id).expect("open");
        assert_eq!(identity, ada());
        assert_eq!(session.csrf.len(), 43);
        assert_ne!(session.csrf, id);
        assert!(sessions.find("forged").is_none());
        sessions.close(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn a_session_idle_too_long_is_gone() {
        let sessions = Sessions::new(Duration::from_millis(20));
        let id = sessions.open(ada());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.find(&id).is_none());
    }
}
