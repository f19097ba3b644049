//! Trusting an authenticating reverse proxy's header: off by default, honoured only from the
//! listed addresses.

use crate::support::{FORM, WebServe, form, hidden_input};

const PROXY: &str = "schedules: []
http:
  users_file: users.yaml
  trust_proxy:
    header: X-Forwarded-User
    role_header: X-Forwarded-Role
    default_role: viewer
    from: [127.0.0.1/32, \"::1\"]
";

#[test]
fn a_trusted_proxy_signs_requests_in_with_the_name_and_role_it_passes_on() {
    let serve = WebServe::new().config(PROXY).start();
    let viewer = serve.raw(
        "GET",
        "/api/whoami",
        &[("X-Forwarded-User", "pat@example.org")],
        None,
    );
    assert_eq!(viewer.status, 200, "{}", viewer.body);
    assert_eq!(viewer.json()["name"], "pat@example.org");
    assert_eq!(viewer.json()["role"], "viewer", "the default role");
    let operator = serve.raw(
        "GET",
        "/api/whoami",
        &[
            ("X-Forwarded-User", "pat"),
            ("X-Forwarded-Role", "Operator"),
        ],
        None,
    );
    assert_eq!(operator.json()["role"], "operator");
    let odd_role = serve.raw(
        "GET",
        "/api/whoami",
        &[("X-Forwarded-User", "pat"), ("X-Forwarded-Role", "root")],
        None,
    );
    assert_eq!(
        odd_role.status, 401,
        "a role that is not one signs nobody in"
    );
    let odd_name = serve.raw("GET", "/api/whoami", &[("X-Forwarded-User", "a b")], None);
    assert_eq!(odd_name.status, 401);
}

#[test]
fn a_write_through_the_proxy_needs_the_csrf_token_of_its_pages() {
    let serve = WebServe::new().config(PROXY).start();
    let user = [
        ("X-Forwarded-User", "pat"),
        ("X-Forwarded-Role", "operator"),
    ];
    let page = serve.raw("GET", "/account", &user, None);
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = hidden_input(&page.body, "csrf").expect("a CSRF token in the page");
    let forged = serve.raw(
        "POST",
        "/logout",
        &user,
        Some((FORM, form(&[("csrf", "x")]))),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let missing = serve.raw("POST", "/logout", &user, None);
    assert_eq!(missing.status, 403, "{}", missing.body);
    // With the page's token the request gets past the check (and /logout, which closes a
    // cookie session, says there is none).
    let carried = serve.raw(
        "POST",
        "/logout",
        &user,
        Some((FORM, form(&[("csrf", &csrf)]))),
    );
    assert_eq!(carried.status, 401, "{}", carried.body);
    // Another name's token is not this one's.
    let other = serve.raw("GET", "/account", &[("X-Forwarded-User", "sam")], None);
    assert_ne!(hidden_input(&other.body, "csrf").unwrap(), csrf);
}

#[test]
fn the_header_is_ignored_by_default_and_from_addresses_not_listed() {
    let default = WebServe::new().start();
    let claimed = default.raw("GET", "/api/whoami", &[("X-Forwarded-User", "ada")], None);
    assert_eq!(
        claimed.status, 401,
        "no proxy trusted by default: {}",
        claimed.body
    );

    let elsewhere = WebServe::new()
        .config(PROXY.replace("[127.0.0.1/32, \"::1\"]", "[10.0.0.0/8]"))
        .start();
    let claimed = elsewhere.raw("GET", "/api/whoami", &[("X-Forwarded-User", "ada")], None);
    assert_eq!(claimed.status, 401, "{}", claimed.body);
    elsewhere.wait_for(
        "the ignored header in the log",
        std::time::Duration::from_secs(5),
        || {
            elsewhere
                .log()
                .contains("does not come from a trusted proxy address")
        },
    );
}

#[test]
fn a_proxy_address_that_is_not_one_stops_serve_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.yaml"), "tokens: []\n").unwrap();
    std::fs::write(
        dir.path().join("serve.yaml"),
        PROXY.replace("[127.0.0.1/32, \"::1\"]", "[localhost]"),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["serve", "--config", "serve.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join(".state"))
        .output()
        .expect("run serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("http.trust_proxy.from") && stderr.contains("localhost"),
        "{stderr}"
    );
}
