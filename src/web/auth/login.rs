//! The sign-in page (`GET /login`, `POST /login`) and signing out (`POST /logout`). The page
//! is plain HTML with no script, so that signing in works with any browser.

use super::sessions::COOKIE;
use super::{Csrf, Identity, Viewer, password};
use crate::report::html::escape;
use crate::web::WebState;
use axum::extract::{Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HOST, LOCATION, ORIGIN, SET_COOKIE, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(page).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/account", get(account))
}

/// Who is signed in, with a button to sign out.
async fn account(Viewer(identity): Viewer, Csrf(csrf): Csrf) -> Html<String> {
    let sign_out = if csrf.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/logout\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <button type=\"submit\">Sign out</button>\n</form>\n",
            escape(&csrf)
        )
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Account · runbook</title>\n</head>\n<body>\n<main>\n<h1>Account</h1>\n\
         <p>Signed in as <strong id=\"name\">{}</strong>, role <strong id=\"role\">{}</strong>.</p>\n\
         {sign_out}</main>\n</body>\n</html>\n",
        escape(&identity.name),
        identity.role
    ))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// What the sign-in form posts. No `Debug`: it holds a password.
#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// The message of every failed sign-in, whether the name exists or not.
pub const WRONG: &str = "wrong name or password";

async fn page(Query(next): Query<Next>, Csrf(csrf): Csrf) -> Response {
    framed(Html(render(
        &safe_next(next.next.as_deref()),
        "",
        None,
        &csrf,
    )))
}

/// The sign-in page may not be framed by another site (a hidden form to click through) nor
/// kept in a cache.
fn framed(page: impl IntoResponse) -> Response {
    (
        [
            (X_FRAME_OPTIONS, "DENY"),
            (CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
            (CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

async fn sign_in(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if !same_origin(&headers) {
        // Signing someone in as the attacker, from another site's form: refused.
        return (
            StatusCode::FORBIDDEN,
            "sign-in from another site is refused",
        )
            .into_response();
    }
    let throttle = &state.sign_in.throttle;
    if let Some(wait) = throttle.locked(&form.name) {
        tracing::warn!(name = %form.name, "sign-in refused: too many failed attempts under this name");
        let message = format!(
            "too many failed sign-ins under this name: try again in {} s",
            wait.as_secs() + 1
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            framed(Html(render(&next, &form.name, Some(&message), &csrf))),
        )
            .into_response();
    }
    let user = state.users.password_user(&form.name);
    let (identity, stored) = match user {
        Some((identity, stored)) => (Some(identity), Some(stored)),
        None => (None, None),
    };
    let password = form.password;
    let matches =
        tokio::task::spawn_blocking(move || password::verify(stored.as_deref(), &password))
            .await
            .unwrap_or(false);
    let Some(identity) = identity.filter(|_| matches) else {
        throttle.failed(&form.name);
        tracing::warn!(name = %form.name, "sign-in refused: {WRONG}");
        return (
            StatusCode::UNAUTHORIZED,
            framed(Html(render(&next, &form.name, Some(WRONG), &csrf))),
        )
            .into_response();
    };
    throttle.succeeded(&identity.name);
    signed_in(&state, &headers, identity, &next)
}

fn signed_in(state: &WebState, headers: &HeaderMap, identity: Identity, next: &str) -> Response {
    tracing::info!(name = %identity.name, role = %identity.role, "signed in");
    // A session the browser held before is closed: a new sign-in gets a new id.
    if let Some(old) = session_cookie(headers) {
        state.sign_in.sessions.close(old);
    }
    let id = state.sign_in.sessions.open(identity);
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, state.sign_in.session_cookie(&id)),
            (LOCATION, next.to_owned()),
        ],
    )
        .into_response()
}

/// Closes the browser's session. Only a signed-in browser posts here (the middleware has
/// checked its CSRF token); anyone else is told to sign in.
async fn sign_out(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let Some(id) = session_cookie(&headers) else {
        return super::AuthRejection::SignInRequired.into_response();
    };
    let Some((identity, _)) = state.sign_in.sessions.find(id) else {
        return super::AuthRejection::SignInRequired.into_response();
    };
    state.sign_in.sessions.close(id);
    tracing::info!(name = %identity.name, "signed out");
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, state.sign_in.cleared_cookie()),
            (LOCATION, "/login".to_owned()),
        ],
    )
        .into_response()
}

/// The session id a request's cookies carry.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Where to go after signing in: a path of this site only, never another site (`//host`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Whether a form post comes from a page of this site: browsers send `Origin` with every
/// POST; a request without it (curl, an old browser) is let through.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    host.is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

fn render(next: &str, name: &str, problem: Option<&str>, csrf: &str) -> String {
    let problem = problem
        .map(|p| format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · runbook</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 22rem; margin: 4rem auto; padding: 0 1rem; }}
label {{ display: block; margin-top: 1rem; }}
input[type=text], input[type=password] {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; padding: .5rem 1.2rem; }}
.problem {{ border-left: 4px solid #b00; padding-left: .6rem; }}
</style>
</head>
<body>
<main>
<h1>Sign in</h1>
{problem}<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="name">Name</label>
<input type="text" id="name" name="name" value="{name}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#,
        next = escape(next),
        name = escape(name),
        csrf = escape(csrf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_path_of_this_site_only() {
        assert_eq!(safe_next(Some("/runs/1?x=2")), "/runs/1?x=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=b; runbook_session=xyz; c=d".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("xyz"));
    }
}
