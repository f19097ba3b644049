//! What sign-in keeps while serve runs: the open sessions, the failed attempts per name, and
//! how cookies are set.

use super::sessions::{DEFAULT_IDLE, Sessions};
use super::throttle::SignInThrottle;
use crate::serve::HttpConfig;

pub struct SignIn {
    pub sessions: Sessions,
    pub throttle: SignInThrottle,
    /// Whether the session cookie is marked `Secure` (HTTPS only).
    pub secure_cookies: bool,
}

impl SignIn {
    /// From serve.yaml's `http:`; `tls` says whether serve speaks HTTPS itself.
    pub fn new(http: &HttpConfig, tls: bool) -> Self {
        Self {
            sessions: Sessions::new(http.session_idle.map_or(DEFAULT_IDLE, |idle| idle.0)),
            throttle: SignInThrottle::default(),
            secure_cookies: tls || http.secure_cookies,
        }
    }

    /// The `Set-Cookie` value that hands a browser its session.
    pub fn session_cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; HttpOnly; SameSite=Strict; Path=/{}",
            super::sessions::COOKIE,
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that makes a browser forget its session.
    pub fn cleared_cookie(&self) -> String {
        format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
            super::sessions::COOKIE,
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }
}

impl Default for SignIn {
    fn default() -> Self {
        Self::new(&HttpConfig::default(), false)
    }
}
