use std::sync::Arc;

use runbook::actions::ActionErrorKind;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::support::Runner;
use crate::support::server::{Request, Response, Server};

/// An HTTPS server on 127.0.0.1 with a freshly made self-signed certificate, and that
/// certificate as PEM.
fn self_signed_server() -> (Server, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server TLS configuration");
    let server = Server::start_tls(Arc::new(config), |_: &Request| {
        Response::json(200, "OK", &json!({"secure": true}))
    });
    (server, certified.cert.pem())
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_by_default() {
    let (server, _) = self_signed_server();
    let outcome = Runner::new("http")
        .run(json!({"url": server.url("/")}))
        .await;
    let error = outcome.result.expect_err("unknown issuer");
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert!(
        error
            .message
            .starts_with(&format!("GET {}: cannot connect: ", server.url("/"))),
        "{}",
        error.message
    );
    assert!(error.message.contains("certificate"), "{}", error.message);
    assert!(
        error.message.contains("set `tls.ca_file`"),
        "{}",
        error.message
    );
    assert!(outcome.warnings.is_empty());
}

#[tokio::test]
async fn ca_file_trusts_the_certificate() {
    let (server, pem) = self_signed_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("write CA");
    let outcome = Runner::new("http")
        .input("ca", json!(ca))
        .run(json!({"url": server.url("/"), "tls": {"ca_file": "{{inputs.ca}}"}}))
        .await;
    let result = outcome.result.expect("trusted through ca_file");
    assert_eq!(result["body"], json!({"secure": true}));
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
}

#[tokio::test]
async fn insecure_skips_verification_and_warns() {
    let (server, _) = self_signed_server();
    let outcome = Runner::new("http")
        .run(json!({"url": server.url("/"), "tls": {"insecure": true}}))
        .await;
    let result = outcome.result.expect("unverified but connected");
    assert_eq!(result["body"], json!({"secure": true}));
    assert_eq!(
        outcome.warnings,
        vec!["TLS verification is off for 127.0.0.1 (insecure: true)".to_owned()]
    );
}

#[tokio::test]
async fn a_missing_or_empty_ca_file_is_invalid() {
    let missing = Runner::new("http")
        .err(json!({"url": "https://127.0.0.1:1/", "tls": {"ca_file": "/no/such/ca.pem"}}))
        .await;
    assert_eq!(missing.kind, ActionErrorKind::Invalid);
    assert!(
        missing
            .message
            .starts_with("cannot read `http.tls.ca_file` `/no/such/ca.pem`: "),
        "{}",
        missing.message
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let error = Runner::new("http")
        .input("ca", json!(empty))
        .err(json!({"url": "https://127.0.0.1:1/", "tls": {"ca_file": "{{inputs.ca}}"}}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Invalid);
    assert!(
        error.message.contains("holds no PEM certificate"),
        "{}",
        error.message
    );
}
