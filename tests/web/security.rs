//! Who may write, through HTTP: every write route of the web server (found by reading the
//! router's source, so that a new route is covered the day it is added), and the routes the
//! web contract names, asked anonymously, as a viewer, and by a browser without its CSRF
//! token. Also: cookie flags, sign-in that tells nothing, secrets that reach no log.

use crate::support::{
    Answer, FORM, OPERATOR_PASSWORD, OPERATOR_TOKEN, Running, VIEWER_PASSWORD, VIEWER_TOKEN,
    WebServe, form,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A route: method and path pattern (`/api/runs/{id}/approve`).
type Route = (String, String);

/// Write routes of the web contract, whether or not they are in this build yet: the API's
/// start and run controls, and the pages' forms. One not (yet) in the router answers 404 or
/// 405; one that is must refuse.
const CONTRACT: &[(&str, &str)] = &[
    ("POST", "/api/runs"),
    ("POST", "/api/runs/{id}/approve"),
    ("POST", "/api/runs/{id}/reject"),
    ("POST", "/api/runs/{id}/retry"),
    ("POST", "/api/runs/{id}/skip"),
    ("POST", "/api/runs/{id}/pause"),
    ("POST", "/api/runs/{id}/resume"),
    ("POST", "/api/runs/{id}/abort"),
    ("POST", "/runs/{id}/approve"),
    ("POST", "/runs/{id}/reject"),
    ("POST", "/runs/{id}/pause"),
    ("POST", "/runs/{id}/resume"),
    ("POST", "/runs/{id}/retry"),
    ("POST", "/runs/{id}/skip"),
    ("POST", "/runs/{id}/abort"),
    ("POST", "/runbooks/{name}/start"),
    ("POST", "/logout"),
];

/// Writes anyone may send: signing in is what a signed-out browser does.
const SIGN_IN: &[(&str, &str)] = &[("POST", "/login")];

/// Every route with a write method in the web server's source: `.route("PATH", ...)` calls
/// whose method router has `post(`, `put(`, `patch(` or `delete(`.
fn write_routes_in_source() -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    let mut files = Vec::new();
    collect_rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web"),
        &mut files,
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        assert!(
            !text.contains(".nest(") && !text.contains(".nest_service("),
            "{} nests a router: teach write_routes_in_source its prefix, so that its write \
             routes are checked",
            file.display()
        );
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(call) = call_text(rest) else { break };
            let Some(path) = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
            else {
                continue;
            };
            for method in ["post", "put", "patch", "delete"] {
                let written =
                    call.contains(&format!("{method}(")) || call.contains(&format!("::{method}("));
                if written {
                    routes.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
    }
    routes
}

/// The text of a call's arguments up to its closing parenthesis.
fn call_text(after_open: &str) -> Option<&str> {
    let mut depth = 1;
    for (at, c) in after_open.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&after_open[..at]);
                }
            }
            _ => {}
        }
    }
    None
}

fn collect_rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/web") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The routes to check, each with whether this build has it for certain (from the source).
fn routes_to_check() -> Vec<(Route, bool)> {
    let in_source = write_routes_in_source();
    let mut all: Vec<(Route, bool)> = in_source.iter().map(|r| (r.clone(), true)).collect();
    for (method, path) in CONTRACT {
        let route = (method.to_string(), path.to_string());
        if !in_source.contains(&route) {
            all.push((route, false));
        }
    }
    all.retain(|((method, path), _)| !SIGN_IN.contains(&(method.as_str(), path.as_str())));
    all
}

/// A concrete path for a pattern: `{id}` and the like become a plausible value.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|part| match part {
            "{id}" => "20260101T000000Z-abcdef".to_owned(),
            "{name}" => "deploy".to_owned(),
            part if part.starts_with('{') => "x".to_owned(),
            part => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Refused as it must be: 401 or 403; a route this build may not have yet may also be
/// missing (404, 405).
fn refused(answer: &Answer, certain: bool, allowed: &[u16]) -> bool {
    allowed.contains(&answer.status) || (!certain && matches!(answer.status, 404 | 405))
}

/// Every `Set-Cookie` of an answer carries the session cookie's flags.
fn assert_cookie_flags(answer: &Answer) {
    for (name, value) in &answer.headers {
        if name.eq_ignore_ascii_case("set-cookie") {
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
                assert!(value.contains(flag), "a cookie without {flag}: {value}");
            }
        }
    }
}

fn json_body() -> Option<(&'static str, String)> {
    Some((
        "application/json",
        "{\"step\":\"gate\",\"reason\":\"r\",\"inputs\":{}}".to_owned(),
    ))
}

#[test]
fn the_write_routes_are_found_in_the_source() {
    let routes = write_routes_in_source();
    assert!(
        routes.contains(&("POST".to_owned(), "/logout".to_owned())),
        "{routes:?}"
    );
    assert!(
        routes.contains(&("POST".to_owned(), "/login".to_owned())),
        "{routes:?}"
    );
}

#[test]
fn every_write_route_refuses_a_request_nobody_signed() {
    let serve = WebServe::new().start();
    let mut checked = 0;
    for ((method, pattern), certain) in routes_to_check() {
        let path = concrete(&pattern);
        for (headers, body) in [
            (vec![], json_body()),
            (
                vec![],
                Some((FORM, form(&[("reason", "r"), ("step", "gate")]))),
            ),
            (vec![("Authorization", "Bearer not-a-token")], json_body()),
            (
                vec![("Cookie", "runbook_session=forged-session-id")],
                json_body(),
            ),
        ] {
            let answer = serve.raw(&method, &path, &headers, body);
            assert_cookie_flags(&answer);
            assert!(
                refused(&answer, certain, &[401, 403]),
                "{method} {path} with {headers:?} answered {} to nobody: {}",
                answer.status,
                answer.body
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * CONTRACT.len(), "{checked}");
}

#[test]
fn a_viewer_can_neither_start_nor_approve_nor_control() {
    let serve = WebServe::new().start();
    let viewer = serve.sign_in("vera", VIEWER_PASSWORD);
    for ((method, pattern), certain) in routes_to_check() {
        if pattern == "/logout" {
            continue; // a viewer may sign out
        }
        let path = concrete(&pattern);
        let by_token = serve.raw(
            &method,
            &path,
            &[("Authorization", &format!("Bearer {VIEWER_TOKEN}"))],
            json_body(),
        );
        assert!(
            refused(&by_token, certain, &[403]),
            "{method} {path} answered {} to a viewer's token: {}",
            by_token.status,
            by_token.body
        );
        let by_cookie = viewer.send_json(&method, &path, &serde_json::json!({"step": "gate"}));
        assert!(
            refused(&by_cookie, certain, &[403]),
            "{method} {path} answered {} to a viewer's session: {}",
            by_cookie.status,
            by_cookie.body
        );
        let by_form = viewer.post_form(&path, &[("step", "gate"), ("reason", "r")]);
        if method == "POST" {
            assert!(
                refused(&by_form, certain, &[403]),
                "{method} {path} answered {} to a viewer's form: {}",
                by_form.status,
                by_form.body
            );
        }
    }
    // The viewer is still signed in: refusals are not sign-outs.
    assert_eq!(viewer.get("/api/whoami").json()["role"], "viewer");
}

#[test]
fn a_browser_write_without_its_csrf_token_or_with_a_forged_one_is_refused() {
    let serve = WebServe::new().start();
    let operator = serve.sign_in("otto", OPERATOR_PASSWORD);
    let mut routes = routes_to_check();
    routes.push((("POST".to_owned(), "/login".to_owned()), true));
    for ((method, pattern), certain) in routes {
        let path = concrete(&pattern);
        let cookie = ("Cookie", operator.cookie.as_str());
        let attempts = [
            (vec![cookie], json_body()),
            (vec![cookie], Some((FORM, form(&[("step", "gate")])))),
            (
                vec![cookie],
                Some((FORM, form(&[("csrf", "forged"), ("step", "gate")]))),
            ),
            (vec![cookie, ("X-CSRF-Token", "forged")], json_body()),
            (vec![cookie, ("X-CSRF-Token", "")], json_body()),
        ];
        for (headers, body) in attempts {
            let answer = serve.raw(&method, &path, &headers, body);
            assert!(
                refused(&answer, certain, &[403]),
                "{method} {path} with {headers:?} answered {}: {}",
                answer.status,
                answer.body
            );
            if answer.status == 403 {
                assert!(
                    answer.body.contains("CSRF"),
                    "{method} {path}: {}",
                    answer.body
                );
            }
        }
    }
    assert_eq!(operator.get("/api/whoami").status, 200, "still signed in");
}

#[test]
fn every_cookie_serve_sets_has_its_flags() {
    let serve = WebServe::new().start();
    let mut answers = vec![
        serve.post_login("otto", OPERATOR_PASSWORD, "/"),
        serve.post_login("otto", "wrong", "/"),
        serve.post_login("nobody", "wrong", "/"),
        serve.raw("GET", "/login", &[], None),
        serve.raw("GET", "/account", &[], None),
        serve.get("/api/whoami", Some(OPERATOR_TOKEN)),
    ];
    let browser = serve.sign_in("vera", VIEWER_PASSWORD);
    answers.push(browser.get("/account"));
    answers.push(browser.post_form("/logout", &[]));
    let set: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.header("set-cookie").is_some())
        .collect();
    assert!(set.len() >= 2, "sign-in and sign-out set cookies");
    for answer in answers.iter() {
        assert_cookie_flags(answer);
    }
}

#[test]
fn the_sign_in_page_tells_nothing_about_which_names_exist() {
    let serve = WebServe::new().start();
    let time = |name: &str| {
        let started = Instant::now();
        let answer = serve.post_login(name, "not-the-password", "/");
        (started.elapsed(), answer)
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        let (took, answer) = time("otto");
        known.push(took);
        assert_eq!(answer.status, 401);
        let (took, other) = time("nobody-at-all");
        unknown.push(took);
        assert_eq!(other.status, answer.status);
        assert_eq!(
            other.body.replace("nobody-at-all", "NAME"),
            answer.body.replace("otto", "NAME")
        );
    }
    known.sort();
    unknown.sort();
    // An unknown name has a hash checked too: without it, it would answer many times
    // sooner than a known one.
    assert!(
        unknown[1] * 4 >= known[1],
        "an unknown name answers sooner: {unknown:?} against {known:?}"
    );
    // A sign-in form posted from another site's page is refused: nobody can sign a browser
    // in under their own name behind its back.
    let cross_site = serve.raw(
        "POST",
        "/login",
        &[("Origin", "https://evil.example")],
        Some((
            FORM,
            form(&[
                ("name", "otto"),
                ("password", OPERATOR_PASSWORD),
                ("next", "/"),
            ]),
        )),
    );
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert!(cross_site.header("set-cookie").is_none());
    let own = serve.url.replace("http://", "");
    let same_site = serve.raw(
        "POST",
        "/login",
        &[("Origin", serve.url.as_str())],
        Some((
            FORM,
            form(&[
                ("name", "otto"),
                ("password", OPERATOR_PASSWORD),
                ("next", "/"),
            ]),
        )),
    );
    assert_eq!(same_site.status, 303, "from {own}: {}", same_site.body);
    // The page forbids framing (no clickjacking of the sign-in form) and caching.
    let page = serve.raw("GET", "/login", &[], None);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(
        page.header("content-security-policy")
            .unwrap_or("")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

#[test]
fn passwords_tokens_and_session_ids_reach_no_log_and_no_answer() {
    let serve = WebServe::new().start();
    let failed = serve.post_login("otto", "my-secret-guess", "/");
    assert!(!failed.body.contains("my-secret-guess"));
    let browser = serve.sign_in("otto", OPERATOR_PASSWORD);
    let id = browser
        .cookie
        .trim_start_matches("runbook_session=")
        .to_owned();
    let mut bodies = vec![failed.body];
    for path in ["/account", "/api/whoami", "/login"] {
        bodies.push(browser.get(path).body);
    }
    bodies.push(serve.get("/api/whoami", Some(OPERATOR_TOKEN)).body);
    bodies.push(serve.get("/api/whoami", Some("a-wrong-token-value")).body);
    for body in &bodies {
        assert!(!body.contains(&id), "the session id in an answer: {body}");
        assert!(!body.contains(OPERATOR_PASSWORD), "{body}");
        assert!(!body.contains(OPERATOR_TOKEN), "{body}");
        assert!(!body.contains("a-wrong-token-value"), "{body}");
    }
    wait_a_moment(&serve);
    let log = serve.log();
    for secret in [
        "my-secret-guess",
        OPERATOR_PASSWORD,
        OPERATOR_TOKEN,
        "a-wrong-token-value",
        id.as_str(),
        browser.csrf.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// Lets serve's log lines of the requests just made reach the test.
fn wait_a_moment(serve: &Running) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !serve.log().contains("signed in") {
        std::thread::sleep(Duration::from_millis(50));
    }
}
