//! Signing in through the sign-in page: sessions, their cookie, CSRF, failures.

use crate::support::{
    ADMIN_PASSWORD, FORM, OPERATOR_PASSWORD, VIEWER_PASSWORD, WebServe, form, hidden_input,
};
use std::time::Duration;

#[test]
fn signing_in_sets_a_session_cookie_with_its_flags_and_the_session_signs_requests_in() {
    let serve = WebServe::new().start();
    let answer = serve.post_login("otto", OPERATOR_PASSWORD, "/runs/7?tab=steps");
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.header("location"), Some("/runs/7?tab=steps"));
    let cookie = answer.header("set-cookie").expect("a cookie");
    assert!(cookie.starts_with("runbook_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("runbook_session=");
    assert_eq!(id.len(), 43, "256 random bits, base64: {id}");

    let browser = serve.sign_in("otto", OPERATOR_PASSWORD);
    let whoami = browser.get("/api/whoami");
    assert_eq!(whoami.status, 200, "{}", whoami.body);
    assert_eq!(whoami.json()["name"], "otto");
    assert_eq!(whoami.json()["role"], "operator");
    let account = browser.get("/account");
    assert!(account.body.contains(">otto<"), "{}", account.body);

    let admin = serve.sign_in("ada", ADMIN_PASSWORD);
    assert_eq!(admin.get("/api/whoami").json()["role"], "admin");
    assert_ne!(
        admin.csrf, browser.csrf,
        "each session has its own CSRF token"
    );
    // The session id never reaches the log.
    assert!(!serve.log().contains(id), "{}", serve.log());
}

#[test]
fn a_wrong_password_and_an_unknown_name_get_the_same_answer_and_the_password_is_not_logged() {
    let serve = WebServe::new().start();
    let wrong = serve.post_login("otto", "guess-one-secret", "/");
    let unknown = serve.post_login("nobody", "guess-one-secret", "/");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert!(
        wrong.body.contains("wrong name or password"),
        "{}",
        wrong.body
    );
    assert!(wrong.header("set-cookie").is_none());
    assert!(unknown.header("set-cookie").is_none());
    // The page echoes the name typed; apart from it the two answers are the same.
    assert_eq!(
        wrong.body.replace("otto", "NAME"),
        unknown.body.replace("nobody", "NAME")
    );
    assert!(!wrong.body.contains("guess-one-secret"));
    let log = serve.log();
    assert!(log.contains("sign-in refused"), "{log}");
    assert!(
        !log.contains("guess-one-secret"),
        "the password was logged:\n{log}"
    );
}

#[test]
fn a_signed_out_browser_asking_for_a_page_is_sent_to_sign_in_and_comes_back_after() {
    let serve = WebServe::new().start();
    let page = serve.raw("GET", "/account?x=1", &[], None);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        page.header("location"),
        Some("/login?next=%2Faccount%3Fx%3D1")
    );
    let login = serve.raw("GET", "/login?next=%2Faccount%3Fx%3D1", &[], None);
    assert_eq!(login.status, 200);
    assert_eq!(
        hidden_input(&login.body, "next").as_deref(),
        Some("/account?x=1")
    );
    assert!(login.body.contains("name=\"name\""), "{}", login.body);
    assert!(login.body.contains("type=\"password\""), "{}", login.body);
    // Another site is never where sign-in leads.
    let elsewhere = serve.post_login("vera", VIEWER_PASSWORD, "//evil.example/");
    assert_eq!(elsewhere.header("location"), Some("/"));
    // The API answers 401 JSON instead.
    let api = serve.raw("GET", "/api/whoami", &[], None);
    assert_eq!(api.status, 401);
    assert_eq!(api.json()["error"], "sign in first");
}

#[test]
fn a_write_signed_in_by_cookie_needs_its_csrf_token() {
    let serve = WebServe::new().start();
    let browser = serve.sign_in("otto", OPERATOR_PASSWORD);
    let cookie = [("Cookie", browser.cookie.as_str())];
    let missing = serve.raw("POST", "/logout", &cookie, Some((FORM, String::new())));
    assert_eq!(missing.status, 403, "{}", missing.body);
    let forged = serve.raw(
        "POST",
        "/logout",
        &cookie,
        Some((FORM, form(&[("csrf", "forged-token")]))),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let header = serve.raw(
        "POST",
        "/logout",
        &[
            ("Cookie", browser.cookie.as_str()),
            ("X-CSRF-Token", "forged"),
        ],
        None,
    );
    assert_eq!(header.status, 403, "{}", header.body);
    let other = serve.sign_in("ada", ADMIN_PASSWORD);
    let someone_elses = serve.raw(
        "POST",
        "/logout",
        &cookie,
        Some((FORM, form(&[("csrf", other.csrf.as_str())]))),
    );
    assert_eq!(someone_elses.status, 403, "another session's token");
    // Still signed in after all that.
    assert_eq!(browser.get("/api/whoami").status, 200);

    let out = browser.post_form("/logout", &[]);
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.header("location"), Some("/login"));
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(browser.get("/api/whoami").status, 401, "signed out");
    // The header works as well as the form field.
    let again = serve.sign_in("otto", OPERATOR_PASSWORD);
    let out = serve.raw(
        "POST",
        "/logout",
        &[
            ("Cookie", again.cookie.as_str()),
            ("X-CSRF-Token", again.csrf.as_str()),
        ],
        None,
    );
    assert_eq!(out.status, 303, "{}", out.body);
}

#[test]
fn five_failures_lock_a_name_for_a_while_known_or_not() {
    let serve = WebServe::new().start();
    for _ in 0..5 {
        assert_eq!(serve.post_login("otto", "wrong", "/").status, 401);
        assert_eq!(serve.post_login("nobody", "wrong", "/").status, 401);
    }
    let locked = serve.post_login("otto", OPERATOR_PASSWORD, "/");
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.header("set-cookie").is_none());
    let unknown = serve.post_login("nobody", "wrong", "/");
    assert_eq!(unknown.status, 429, "an unknown name is locked alike");
    // Another name is not affected.
    assert_eq!(serve.post_login("ada", ADMIN_PASSWORD, "/").status, 303);
}

#[test]
fn a_session_unused_for_the_idle_time_is_gone() {
    let serve = WebServe::new()
        .config("schedules: []\nhttp:\n  users_file: users.yaml\n  session_idle: 1s\n")
        .start();
    let browser = serve.sign_in("vera", VIEWER_PASSWORD);
    assert_eq!(browser.get("/api/whoami").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(browser.get("/api/whoami").status, 401);
}

#[test]
fn a_session_cookie_is_secure_when_serve_is_told_so() {
    let serve = WebServe::new()
        .config("schedules: []\nhttp:\n  users_file: users.yaml\n  secure_cookies: true\n")
        .start();
    let answer = serve.post_login("vera", VIEWER_PASSWORD, "/");
    let cookie = answer.header("set-cookie").expect("a cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}
