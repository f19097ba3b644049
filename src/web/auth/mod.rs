//! Who may do what: nobody writes anonymously. A request is signed in by an API token
//! (`Authorization: Bearer ...`) or by the session cookie a browser got from the sign-in page
//! ([`login`]); handlers say the role they need by the extractor they take ([`Viewer`],
//! [`Operator`], [`Admin`]). A write signed in by cookie must carry the session's CSRF token
//! ([`Csrf`]), checked here before any handler runs.

mod csrf;
mod identity;
mod login;
pub mod password;
mod proxy;
mod role;
mod sessions;
mod sign_in;
mod throttle;
mod users;
pub mod users_edit;

pub use csrf::Csrf;
pub use identity::{Admin, AuthRejection, Identity, Operator, Viewer};
pub use proxy::{PeerAddress, ProxyError};
pub use role::Role;
pub use sessions::{COOKIE, DEFAULT_IDLE, Session, random_token};
pub use sign_in::SignIn;
pub use throttle::{FAILURES, LOCKED_FOR};
pub use users::{Users, UsersError, sha256_hex};

use super::WebState;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, LOCATION};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

/// The sign-in page and signing out.
pub fn routes() -> Router<WebState> {
    login::routes()
}

/// Finds out who the request comes from and leaves it in the request's extensions for the
/// extractors; a request nobody signed is passed on anonymous (the handler refuses it when
/// it needs a role). A write signed in by cookie without its CSRF token is refused here.
/// A page asked for by a browser nobody signed in is sent to the sign-in page.
pub async fn authenticate(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerAddress>>()
        .map(|info| info.0);
    let proxied = state
        .sign_in
        .proxy
        .as_ref()
        .and_then(|proxy| proxy.identify(peer, request.headers()));
    let (identity, session) = match (bearer, proxied) {
        // A token that is wrong signs nobody in, whatever cookie comes with it.
        (Some(token), _) => (state.users.token(&token), None),
        // Signed in by the proxy: a write needs the name's CSRF token as a cookie's does.
        (None, Some((identity, session))) => (Some(identity), Some(session)),
        (None, None) => match login::session_cookie(request.headers())
            .and_then(|id| state.sign_in.sessions.find(id))
        {
            Some((identity, session)) => (Some(identity), Some(session)),
            None => (None, None),
        },
    };
    let signed_in = identity.is_some();
    if let Some(session) = session {
        if csrf::is_unsafe(request.method()) {
            let (carried, checked) = csrf::carries(request, &session.csrf).await;
            request = checked;
            if !carried {
                tracing::warn!(
                    method = %request.method(),
                    path = request.uri().path(),
                    "refused: the CSRF token is missing or wrong"
                );
                return csrf_refused();
            }
        }
        request.extensions_mut().insert(session);
    }
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    let page = is_page(request.method(), request.uri().path());
    let cross_site = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes() == b"cross-site");
    let wanted = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let response = next.run(request).await;
    if !signed_in && page && response.status() == StatusCode::UNAUTHORIZED {
        if cross_site {
            return bounce(&wanted);
        }
        return to_sign_in(&wanted);
    }
    response
}

/// A page a browser reads (not the API, not the metrics a scraper reads).
fn is_page(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
        && !path.starts_with("/api/")
        && path != "/api"
        && path != "/metrics"
}

fn to_sign_in(wanted: &str) -> Response {
    let next = percent_encoding::utf8_percent_encode(wanted, percent_encoding::NON_ALPHANUMERIC);
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("/login?next={next}"))],
    )
        .into_response()
}

/// A page asked for from a link on another site (a chat message, a webhook's link to
/// approve) comes without the session cookie: `SameSite=Strict` keeps it from cross-site
/// navigations. This page asks for the same address again from serve's own page, which the
/// browser sends the cookie with; only if that too is signed out does sign-in follow.
fn bounce(wanted: &str) -> Response {
    // Only ever this site's own paths (never `//elsewhere`).
    let target = crate::report::html::escape(&login::safe_next(Some(wanted)));
    (
        StatusCode::OK,
        [(CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"refresh\" content=\"0;url={target}\">\n\
             <title>runbook</title>\n</head>\n<body>\n\
             <p><a href=\"{target}\">Continue</a></p>\n</body>\n</html>\n"
        )),
    )
        .into_response()
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({
            "error": "the CSRF token is missing or wrong: reload the page and try again"
        })),
    )
        .into_response()
}
