//! The frame every page shares (navigation, who is signed in, sign out) and who asks for
//! a page. Every text that comes from a run, a runbook or a person goes through [`escape`]:
//! a step's output can never become markup.

use crate::web::WebState;
use crate::web::auth::{Identity, Role, Session};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::fmt::Write;

pub use crate::report::html::escape;

/// The person a page is for, and the CSRF token its forms carry (empty for a bearer-token
/// request, which needs none).
pub struct PageUser {
    pub identity: Identity,
    pub csrf: String,
}

impl PageUser {
    /// Whether the person may start, approve and control runs: the controls are shown to
    /// them only (and the server refuses them to anyone else).
    pub fn may_operate(&self) -> bool {
        self.identity.role >= Role::Operator
    }

    /// The hidden field every form carries.
    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(&self.csrf)
        )
    }
}

impl FromRequestParts<WebState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        // Every form of the pages starts, answers or controls a run: an operator's work. A
        // write is refused before its form is read, with a status that says why (a
        // browser's expired session gets the sign-in link with its 401).
        let writes = !parts.method.is_safe();
        let Some(identity) = parts.extensions.get::<Identity>().cloned() else {
            if writes {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    Html(
                        "<!doctype html><title>Sign in first</title><p>Sign in first: \
                         <a href=\"/login\">sign in</a>, then send the form again.</p>",
                    ),
                )
                    .into_response());
            }
            return Err(sign_in_first(&parts.uri));
        };
        if writes && identity.role < Role::Operator {
            return Err((
                StatusCode::FORBIDDEN,
                Html(format!(
                    "<!doctype html><title>Not allowed</title><p>{} is a {}: starting, \
                     answering and controlling runs needs the operator role.</p>",
                    escape(&identity.name),
                    identity.role
                )),
            )
                .into_response());
        }
        let csrf = parts
            .extensions
            .get::<Session>()
            .map(|session| session.csrf.clone())
            .unwrap_or_default();
        Ok(PageUser { identity, csrf })
    }
}

/// Where a signed-out browser goes: the sign-in form, coming back here afterwards.
fn sign_in_first(uri: &Uri) -> Response {
    let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let next: String =
        percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// Which part of the site a page belongs to, for the navigation's current item.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Runs,
    Runbooks,
    Schedules,
    Locks,
}

/// A whole page: the frame around `body`.
/// Sent with `Cache-Control: no-store`: a page holds a CSRF token and what a person may see.
pub fn page(user: &PageUser, section: Section, title: &str, body: &str) -> Response {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · runbook</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
         <script src=\"/assets/live.js\" defer></script>\n</head>\n<body>\n\
         <a class=\"skip-link\" href=\"#main\">Skip to the content</a>\n<header>\n\
         <nav aria-label=\"Main\"><span class=\"brand\">runbook</span><ul>",
        escape(title)
    );
    for (item, href, label) in [
        (Section::Runs, "/runs", "Runs"),
        (Section::Runbooks, "/runbooks", "Runbooks"),
        (Section::Schedules, "/schedules", "Schedules"),
        (Section::Locks, "/locks", "Locks"),
    ] {
        let current = if item == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
    }
    let _ = write!(
        out,
        "</ul></nav>\n<div class=\"who\">Signed in as <b id=\"who\">{}</b> ({})\
         <form method=\"post\" action=\"/logout\" class=\"inline\">{}\
         <button type=\"submit\">Sign out</button></form></div>\n</header>\n\
         <main id=\"main\" tabindex=\"-1\">\n<h1>{}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        escape(&user.identity.name),
        user.identity.role,
        user.csrf_field(),
        escape(title),
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        Html(out),
    )
        .into_response()
}

/// What a page may load and run: its own stylesheet and script only, no inline script, no
/// framing by another site. Markup that slipped into a page could run nothing.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// A page answering with a status other than 200 (a refused or failed action).
pub fn page_with_status(
    status: StatusCode,
    user: &PageUser,
    section: Section,
    title: &str,
    body: &str,
) -> Response {
    (status, page(user, section, title, body)).into_response()
}

/// A page that says why something was refused, with a link back.
pub fn problem(
    status: StatusCode,
    user: &PageUser,
    section: Section,
    message: &str,
    back: &str,
) -> Response {
    let body = format!(
        "<p class=\"problem\" role=\"alert\"><span aria-hidden=\"true\">✗ </span>{}</p>\n\
         <p><a href=\"{}\">Back</a></p>",
        escape(message),
        escape(back)
    );
    page_with_status(status, user, section, "Not done", &body)
}

/// A page for a viewer who tried what only an operator may do.
pub fn operators_only(user: &PageUser, section: Section, back: &str) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        user,
        section,
        &format!(
            "{} is a {}: starting, approving and controlling runs needs the operator role",
            user.identity.name, user.identity.role
        ),
        back,
    )
}

/// A run status as text with its mark, never by colour alone.
pub fn status_badge(name: &str) -> String {
    format!(
        "<span class=\"status {class}\"><span aria-hidden=\"true\">{}</span> {}</span>",
        status_mark(name),
        escape(name),
        class = escape(&name.replace(' ', "-")),
    )
}

fn status_mark(name: &str) -> &'static str {
    match name {
        "running" => "▶",
        "queued" => "…",
        "interrupted" | "paused" => "⏸",
        "aborted" => "■",
        other => crate::report::html::mark(other),
    }
}

/// A link to `path` with a query built from the pairs that are not empty, percent-encoded
/// and escaped for an attribute.
pub fn link(path: &str, query: &[(&str, &str)]) -> String {
    let mut href = path.to_owned();
    let mut first = true;
    for (name, value) in query {
        if value.is_empty() {
            continue;
        }
        href.push(if first { '?' } else { '&' });
        first = false;
        href.push_str(name);
        href.push('=');
        href.extend(percent_encoding::utf8_percent_encode(
            value,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    escape(&href)
}
