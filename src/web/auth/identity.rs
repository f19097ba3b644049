//! Who a request comes from, once [`authenticate`](super::authenticate) has found out, and
//! the extractors a handler takes to say which role it needs.

use super::Role;
use crate::web::WebState;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A signed-in person or API token. The journal records `name` as who started, approved or
/// controlled a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// Why a request was refused before its handler ran.
#[derive(Debug)]
pub enum AuthRejection {
    /// Nobody is signed in (401).
    SignInRequired,
    /// Signed in, but the role does not allow it (403).
    Forbidden { needed: Role, identity: Identity },
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AuthRejection::SignInRequired => (StatusCode::UNAUTHORIZED, "sign in first".to_owned()),
            AuthRejection::Forbidden { needed, identity } => (
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a {}: this needs the {needed} role",
                    identity.name, identity.role
                ),
            ),
        };
        (status, axum::Json(json!({"error": message}))).into_response()
    }
}

fn require(parts: &Parts, needed: Role) -> Result<Identity, AuthRejection> {
    let identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .ok_or(AuthRejection::SignInRequired)?;
    if identity.role >= needed {
        Ok(identity)
    } else {
        Err(AuthRejection::Forbidden { needed, identity })
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Identity);

        impl FromRequestParts<WebState> for $name {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &WebState,
            ) -> Result<Self, Self::Rejection> {
                require(parts, $role).map($name)
            }
        }
    };
}

role_extractor!(
    /// Anyone signed in.
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// An operator or an admin: starts, approves, controls.
    Operator,
    Role::Operator
);
role_extractor!(
    /// An admin.
    Admin,
    Role::Admin
);
