//! Cross-site request forgery: a browser sends its cookies with any request, whichever site
//! made it, so a write authenticated by cookie must also carry a token only our own pages
//! know: in the `X-CSRF-Token` header, or in a form's `csrf` field.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header::CONTENT_TYPE};
use std::convert::Infallible;

/// The header a script sends the token in.
pub const HEADER: &str = "x-csrf-token";
/// The form field a page sends the token in.
pub const FIELD: &str = "csrf";
/// The largest form body read to find the token; a larger form is refused.
const FORM_LIMIT: usize = 1024 * 1024;

/// The CSRF token of the signed-in browser, for a page to put in its forms as a hidden input
/// named `csrf`. Empty for a request signed in by API token (no forms, no CSRF).
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Csrf(
            parts
                .extensions
                .get::<super::Session>()
                .map(|session| session.csrf.clone())
                .unwrap_or_default(),
        ))
    }
}

/// Whether a request changes something (and so needs the token when signed in by cookie).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the request carries `expected`; a form body is read to find it and put back for
/// the handler.
pub async fn carries(request: Request, expected: &str) -> (bool, Request) {
    if let Some(sent) = request.headers().get(HEADER) {
        let ok = same(sent.as_bytes(), expected.as_bytes());
        return (ok, request);
    }
    if !is_form(request.headers()) {
        return (false, request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (false, Request::from_parts(parts, Body::empty()));
    };
    let ok = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .is_some_and(|(_, sent)| same(sent.as_bytes(), expected.as_bytes()));
    (ok, Request::from_parts(parts, Body::from(bytes)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|kind| {
            kind.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Compared in constant time, so that timing does not reveal the token byte by byte.
fn same(sent: &[u8], expected: &[u8]) -> bool {
    !expected.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(sent, expected).is_ok()
}
