//! Who may do what: nobody writes anonymously. A request is signed in by an API token
//! (`Authorization: Bearer ...`); handlers say the role they need by the extractor they take
//! ([`Viewer`], [`Operator`], [`Admin`]).

mod identity;
mod role;
mod users;

pub use identity::{Admin, AuthRejection, Identity, Operator, Viewer};
pub use role::Role;
pub use users::{Users, UsersError};

use super::WebState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

/// Finds out who the request comes from and leaves it in the request's extensions for the
/// extractors; a request nobody signed is passed on anonymous (the handler refuses it when
/// it needs a role).
pub async fn authenticate(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| state.users.token(token.trim()));
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    next.run(request).await
}
