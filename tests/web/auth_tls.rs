//! HTTPS: serve given a certificate speaks TLS only, and its session cookies are `Secure`.

use crate::support::{OPERATOR_PASSWORD, OPERATOR_TOKEN, WebServe};
use std::io::{Read, Write};
use std::time::Duration;

const TLS: &str = "schedules: []
http:
  users_file: users.yaml
  tls: {cert: tls/cert.pem, key: tls/key.pem}
";

/// A certificate for 127.0.0.1 made now: its PEM and its key's PEM.
fn certificate() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

#[test]
fn serve_speaks_https_with_its_certificate_and_sets_secure_cookies() {
    let (cert, key) = certificate();
    let serve = WebServe::new()
        .config(TLS)
        .write("tls/cert.pem", &cert)
        .write("tls/key.pem", &key)
        .start()
        .trusting(cert.clone());
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let whoami = serve.get("/api/whoami", Some(OPERATOR_TOKEN));
    assert_eq!(whoami.status, 200, "{}", whoami.body);
    assert_eq!(whoami.json()["name"], "otto");

    let signed_in = serve.post_login("otto", OPERATOR_PASSWORD, "/");
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in.header("set-cookie").expect("a cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let browser = serve.sign_in("otto", OPERATOR_PASSWORD);
    assert_eq!(browser.get("/api/whoami").json()["role"], "operator");

    // A client that does not trust the certificate gets nothing.
    // (It trusts no certificate at all: the system's roots would not name this one either.)
    let untrusting: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[]))
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .build(),
        )
        .build()
        .into();
    let untrusting = untrusting.get(format!("{}/api/whoami", serve.url)).call();
    assert!(untrusting.is_err(), "an unknown certificate was accepted");

    // Plain HTTP on the port gets no HTTP answer.
    let address = serve.url.trim_start_matches("https://");
    let mut plain = std::net::TcpStream::connect(address).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("otto"),
        "plain HTTP was answered"
    );
    // serve goes on serving after that.
    assert_eq!(serve.get("/api/whoami", Some(OPERATOR_TOKEN)).status, 200);
}

#[test]
fn a_key_that_is_not_one_stops_serve_with_which_file() {
    let (cert, _) = certificate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    std::fs::write(dir.path().join("tls/cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls/key.pem"), "not a key\n").unwrap();
    std::fs::write(dir.path().join("users.yaml"), "tokens: []\n").unwrap();
    std::fs::write(dir.path().join("serve.yaml"), TLS).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["serve", "--config", "serve.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join(".state"))
        .output()
        .expect("run serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TLS key") && stderr.contains("key.pem"),
        "{stderr}"
    );
}

#[test]
fn plain_http_that_other_machines_can_reach_is_warned_about_and_https_is_not() {
    let plain = WebServe::new().listen("0.0.0.0:0").start();
    plain.wait_for("the warning", Duration::from_secs(5), || {
        plain.log().contains("cross the network in clear")
    });
    let local = WebServe::new().start();
    assert_eq!(local.get("/api/whoami", Some(OPERATOR_TOKEN)).status, 200);
    assert!(!local.log().contains("in clear"), "{}", local.log());
    let (cert, key) = certificate();
    let https = WebServe::new()
        .listen("0.0.0.0:0")
        .config(TLS)
        .write("tls/cert.pem", &cert)
        .write("tls/key.pem", &key)
        .start();
    assert!(https.url.starts_with("https://"), "{}", https.url);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!https.log().contains("in clear"), "{}", https.log());
}
