//! The ways a kubeconfig authenticates on a real cluster, through the `kubernetes` action
//! (kube-rs): an API server on HTTPS with its own CA, a client certificate (an x509 user),
//! and an exec credential plugin (`client.authentication.k8s.io/v1beta1`, as `aws eks
//! get-token` or `gke-gcloud-auth-plugin` are). The API double serves HTTPS for these
//! (`KubeApi::start_tls`).

use serde_json::json;

use crate::harness::*;
use crate::kube_api::{KubeApi, KubeconfigUser};

const READ: &str = r#"
version: 1
name: read-a-deployment
steps:
  - id: read
    kubernetes:
      get:
        api_version: flink.apache.org/v1beta1
        kind: FlinkDeployment
        name: orders
    outputs:
      image: '.spec.image'
outputs:
  image: '.steps.read.outputs.image'
"#;

/// A TLS double with a FlinkDeployment `orders` in the test namespace, and a directory.
fn tls_double() -> (KubeApi, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("runbook-operator-tls-")
        .tempdir()
        .expect("a temporary directory");
    let api = KubeApi::start_tls(dir.path());
    api.ensure_namespace(NS);
    api.create_object(
        DEPLOYMENT,
        json!({"apiVersion": API_VERSION, "kind": DEPLOYMENT,
               "metadata": {"name": "orders", "namespace": NS},
               "spec": job_spec("flink:2.3")}),
    )
    .expect("create the deployment");
    (api, dir)
}

/// Runs READ with a kubeconfig for `user`.
fn read_with(api: &KubeApi, dir: &std::path::Path, name: &str, user: &KubeconfigUser) -> Run {
    let kubeconfig = dir.join(name);
    api.write_kubeconfig_for(&kubeconfig, &[(CONTEXT, NS)], user)
        .expect("write the kubeconfig");
    let file = dir.join("read.yaml");
    std::fs::write(&file, READ).expect("write the runbook");
    runbook(dir, &kubeconfig, &["run", &file.display().to_string()])
}

#[test]
fn a_client_certificate_signed_by_the_cluster_ca_is_a_user() {
    let (api, dir) = tls_double();
    let run = read_with(
        &api,
        dir.path(),
        "cert-kubeconfig",
        &KubeconfigUser::ClientCertificate,
    );
    assert_eq!(run.outputs()["image"], "flink:2.3", "{run}");
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.status == 200),
        "{requests:#?}"
    );
    // Without the certificate (and without a token) the same server refuses the user.
    let anonymous = read_with(
        &api,
        dir.path(),
        "no-cert-kubeconfig",
        &KubeconfigUser::Token(String::new()),
    );
    assert_eq!(anonymous.code, 1, "{anonymous}");
    assert!(anonymous.stderr.contains("401"), "{anonymous}");
}

#[test]
fn a_server_whose_ca_is_not_trusted_fails_the_step_with_a_tls_error() {
    let (api, dir) = tls_double();
    let kubeconfig = dir.path().join("untrusted-kubeconfig");
    let text = api
        .kubeconfig_yaml_for(&[(CONTEXT, NS)], &KubeconfigUser::ClientCertificate)
        .lines()
        .filter(|line| !line.contains("certificate-authority:"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&kubeconfig, text).expect("write the kubeconfig");
    let file = dir.path().join("read.yaml");
    std::fs::write(&file, READ).expect("write the runbook");
    let run = runbook(
        dir.path(),
        &kubeconfig,
        &["run", &file.display().to_string()],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "the error says what is wrong: {run}"
    );
    assert!(api.requests().is_empty(), "no request got through");
}

/// An exec credential plugin: a program the client runs for a token (`ExecCredential`).
fn plugin(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the plugin");
    let mut permissions = std::fs::metadata(&path).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).expect("make it executable");
    path.display().to_string()
}

#[test]
fn an_exec_credential_plugin_gives_the_token() {
    let (api, dir) = tls_double();
    let calls = dir.path().join("plugin-calls");
    let command = plugin(
        dir.path(),
        "get-token",
        r#"echo called >> "$1"
printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s"}}\n' "$2""#,
    );
    let user = KubeconfigUser::Exec {
        command,
        args: vec![calls.display().to_string(), api.token().to_owned()],
    };
    let run = read_with(&api, dir.path(), "exec-kubeconfig", &user);
    assert_eq!(run.outputs()["image"], "flink:2.3", "{run}");
    assert!(
        std::fs::read_to_string(&calls).is_ok_and(|c| c.contains("called")),
        "the plugin ran"
    );
    assert!(
        !run.stderr.contains(api.token()) && !run.stdout.contains(api.token()),
        "the token is not shown: {run}"
    );
}

#[test]
fn an_exec_plugin_that_fails_fails_the_step_with_its_message() {
    let (api, dir) = tls_double();
    let command = plugin(
        dir.path(),
        "no-token",
        "echo 'error: the SSO session has expired; log in again' >&2\nexit 1",
    );
    let user = KubeconfigUser::Exec {
        command,
        args: Vec::new(),
    };
    let run = read_with(&api, dir.path(), "failing-exec-kubeconfig", &user);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("step `read`"), "{run}");
    assert!(
        run.stderr.contains("the SSO session has expired"),
        "the plugin's own message is shown: {run}"
    );
    assert!(api.requests().is_empty(), "no request without a token");
}
