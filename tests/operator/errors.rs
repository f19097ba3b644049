//! The `kubernetes` action's failures as a user meets them, through small runbooks written
//! here and the real binary: conflicts, an unknown kind, a kubeconfig that cannot be used, a
//! wrong token; and `runbook plan` of restore.yaml. No Flink: these run in parallel.

use serde_json::{Value, json};

use crate::harness::*;

/// A runbook with one merge patch of a FlinkDeployment (namespace: the context's).
const PATCH_RUNBOOK: &str = r#"
version: 1
name: patch-a-deployment
inputs:
  deployment: { type: string }
  patch: { type: object }
steps:
  - id: bump
    name: Merge-patch the FlinkDeployment
    kubernetes:
      patch:
        api_version: flink.apache.org/v1beta1
        kind: FlinkDeployment
        name: "{{inputs.deployment}}"
        type: merge
        patch: "{{inputs.patch}}"
    outputs:
      generation: '.metadata.generation'
      parallelism: '.spec.job.parallelism'
outputs:
  generation: '.steps.bump.outputs.generation'
  parallelism: '.steps.bump.outputs.parallelism'
"#;

/// The PATCH requests on one FlinkDeployment: (status, content type, body).
fn patches(kube: &Kube, name: &str) -> Vec<(u16, String, Value)> {
    let path = format!("/apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/{name}");
    kube.api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .map(|r| {
            (
                r.status,
                r.content_type.unwrap_or_default(),
                serde_json::from_str(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn statuses(patches: &[(u16, String, Value)]) -> Vec<u16> {
    patches.iter().map(|(status, _, _)| *status).collect()
}

#[test]
fn a_conflict_on_a_merge_patch_is_retried_and_the_patch_applied() {
    let kube = Kube::start();
    let created = kube.create_deployment("orders-conflict", job_spec("flink:2.3"));
    let created_version = str_at(&created, "/metadata/resourceVersion").to_owned();
    let file = kube.write("patch.yaml", PATCH_RUNBOOK);
    let patch = json!({"spec": {"job": {"parallelism": 2}}});

    // Another writer gets in first, twice.
    kube.api
        .inject_conflicts(DEPLOYMENT, NS, "orders-conflict", 2);
    let run = kube.run_json(
        &file,
        &[
            ("deployment", "orders-conflict".to_owned()),
            ("patch", patch.to_string()),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let ended = run.step_ended("bump");
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["outputs"]["parallelism"], 2);
    assert_eq!(
        run.attempts("bump"),
        1,
        "retried inside the action, not as a step"
    );
    let sent = patches(&kube, "orders-conflict");
    assert_eq!(statuses(&sent), [409, 409, 200], "{sent:#?}");
    for (_, content_type, body) in &sent {
        assert_eq!(content_type, "application/merge-patch+json");
        assert_eq!(body, &patch, "the same document each time");
    }
    let stored = kube.deployment("orders-conflict");
    assert_eq!(stored.pointer("/spec/job/parallelism"), Some(&2.into()));
    assert_eq!(stored.pointer("/metadata/generation"), Some(&2.into()));
    assert_eq!(
        str_at(&stored, "/spec/image"),
        "flink:2.3",
        "the rest is kept"
    );

    // A writer that keeps winning: five retries, then the API server's answer.
    kube.api.clear_requests();
    kube.api
        .inject_conflicts(DEPLOYMENT, NS, "orders-conflict", 1000);
    let run = kube.run_json(
        &file,
        &[
            ("deployment", "orders-conflict".to_owned()),
            (
                "patch",
                json!({"spec": {"job": {"parallelism": 4}}}).to_string(),
            ),
        ],
    );
    kube.api
        .inject_conflicts(DEPLOYMENT, NS, "orders-conflict", 0);
    assert_eq!(run.code, 1, "{run}");
    let error = run.step_ended("bump")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("(409 Conflict)"), "{error}");
    let sent = patches(&kube, "orders-conflict");
    assert_eq!(sent.len(), 6 * run.attempts("bump"), "{sent:#?}");
    assert!(sent.iter().all(|(status, _, _)| *status == 409));

    // A patch pinned to a resourceVersion asks for optimistic concurrency: a stale one is a
    // conflict that no retry can fix, and the step says so.
    kube.api.clear_requests();
    let pinned = json!({
        "metadata": {"resourceVersion": created_version},
        "spec": {"job": {"parallelism": 3}},
    });
    let run = kube.run_json(
        &file,
        &[
            ("deployment", "orders-conflict".to_owned()),
            ("patch", pinned.to_string()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let ended = run.step_ended("bump");
    assert_eq!(ended["status"], "failed", "{ended:#}");
    let error = ended["error"].as_str().unwrap_or_default();
    // The resource is named (with the context's namespace, or without one).
    assert!(
        error.contains("FlinkDeployment flink/orders-conflict: ")
            || error.contains("FlinkDeployment orders-conflict: "),
        "{error}"
    );
    for part in [
        "step `bump`",
        r#"Operation cannot be fulfilled on flinkdeployments.flink.apache.org "orders-conflict": the object has been modified; please apply your changes to the latest version and try again"#,
        "(409 Conflict)",
    ] {
        assert!(error.contains(part), "`{part}` is not in: {error}");
    }
    let sent = patches(&kube, "orders-conflict");
    assert_eq!(
        sent.len(),
        run.attempts("bump"),
        "one PATCH per attempt, no conflict retries: {sent:#?}"
    );
    assert!(
        sent.iter()
            .all(|(status, _, body)| *status == 409 && body == &pinned)
    );
    let stored = kube.deployment("orders-conflict");
    assert_eq!(
        stored.pointer("/spec/job/parallelism"),
        Some(&2.into()),
        "unchanged"
    );

    // The same patch with the current resourceVersion goes through.
    let current = str_at(&stored, "/metadata/resourceVersion").to_owned();
    let fresh = json!({
        "metadata": {"resourceVersion": current},
        "spec": {"job": {"parallelism": 3}},
    });
    let run = kube.run(
        &file,
        &[
            ("deployment", "orders-conflict".to_owned()),
            ("patch", fresh.to_string()),
        ],
    );
    assert_eq!(run.outputs()["parallelism"], 3);
}

#[test]
fn an_unknown_kind_is_named_with_the_kinds_that_exist() {
    let kube = Kube::start();
    let file = kube.write(
        "typo.yaml",
        r#"
version: 1
name: typo
steps:
  - id: read
    kubernetes:
      get:
        api_version: flink.apache.org/v1beta1
        kind: FlinkDeploymnt
        name: orders
"#,
    );
    let run = kube.run_json(&file, &[]);
    assert_eq!(run.code, 1, "{run}");
    let error = run.step_ended("read")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for part in [
        "step `read`",
        "`flink.apache.org/v1beta1` has no kind `FlinkDeploymnt`",
        "(it has: FlinkDeployment, FlinkStateSnapshot)",
        "did you mean `FlinkDeployment`?",
    ] {
        assert!(error.contains(part), "`{part}` is not in: {error}");
    }
    // A version the group does not serve.
    let other = kube.write(
        "version.yaml",
        r#"
version: 1
name: version
steps:
  - id: read_version
    kubernetes:
      get:
        api_version: flink.apache.org/v1
        kind: FlinkDeployment
        name: orders
"#,
    );
    let version = kube.run_json(&other, &[]);
    assert_eq!(version.code, 1, "{version}");
    let error = version.step_ended("read_version")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("step `read_version`")
            && error.contains("the API server does not serve `flink.apache.org/v1`"),
        "{error}"
    );
    // Only discovery was asked; no resource path was guessed.
    let requests = kube.api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/apis/flink.apache.org/v1beta1"),
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| !r.path.contains("/namespaces/")),
        "{requests:#?}"
    );

    // The human output says the same.
    let run = kube.run(&file, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("`flink.apache.org/v1beta1` has no kind `FlinkDeploymnt`"),
        "{run}"
    );
}

/// A side effect, then a `kubernetes` step (with `context` when given).
fn side_effect_then_kubernetes(context: Option<&str>) -> String {
    let context = context
        .map(|c| format!("      context: {c}\n"))
        .unwrap_or_default();
    format!(
        r#"
version: 1
name: side-effect-first
inputs:
  marker: {{ type: string }}
steps:
  - id: mark
    exec:
      command: [touch, "{{{{inputs.marker}}}}"]
  - id: read
    needs: [mark]
    kubernetes:
{context}      get:
        api_version: flink.apache.org/v1beta1
        kind: FlinkDeployment
        name: orders
"#
    )
}

/// Runs the runbook with a kubeconfig that must be refused before anything runs; answers
/// stderr.
fn refused_before_running(kube: &Kube, text: &str, kubeconfig: &std::path::Path) -> String {
    let file = kube.write("side-effect.yaml", text);
    let marker = kube.path().join("marker");
    let args = run_args(
        &file.display().to_string(),
        &[("marker", marker.display().to_string())],
        false,
    );
    let run = runbook(
        kube.path(),
        kubeconfig,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(!marker.exists(), "the step before the kubernetes step ran");
    assert!(run.stdout.trim().is_empty(), "{run}");
    let runs = runbook(
        kube.path(),
        kubeconfig,
        &["runs", "list", "--format", "json"],
    );
    // Refused before the store is opened: not even the store was created.
    assert_eq!(runs.code, 2, "{runs}");
    assert!(
        runs.stderr.contains("there is no store"),
        "no run was recorded: {runs}"
    );
    assert!(kube.api.requests().is_empty(), "the API server was called");
    run.stderr
}

#[test]
fn a_kubeconfig_that_is_not_yaml_is_refused_before_anything_runs() {
    let kube = Kube::start();
    let broken = kube.write("broken-kubeconfig", "clusters: [ {name: a\ncontexts: : :\n");
    let stderr = refused_before_running(&kube, &side_effect_then_kubernetes(None), &broken);
    assert!(
        stderr.contains(&format!(
            "kubernetes: cannot read the kubeconfig KUBECONFIG={}",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("YAML"),
        "the parse error is shown: {stderr}"
    );
}

#[test]
fn a_context_missing_from_the_kubeconfig_is_refused_before_anything_runs() {
    let kube = Kube::start();
    let stderr = refused_before_running(
        &kube,
        &side_effect_then_kubernetes(Some("doubel")),
        &kube.kubeconfig,
    );
    assert!(
        stderr.contains(&format!(
            "the kubeconfig KUBECONFIG={} has no context `doubel` (it has: double); did you mean `double`?",
            kube.kubeconfig.display()
        )),
        "{stderr}"
    );

    // The same runbook with a context that exists runs (and finds no FlinkDeployment).
    let file = kube.write(
        "side-effect.yaml",
        &side_effect_then_kubernetes(Some(CONTEXT)),
    );
    let marker = kube.path().join("marker");
    let run = kube.run_json(&file, &[("marker", marker.display().to_string())]);
    assert_eq!(run.code, 1, "{run}");
    assert!(marker.exists());
    let error = run.step_ended("read")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(r#"flinkdeployments.flink.apache.org "orders" not found (404 NotFound)"#),
        "{error}"
    );
}

#[test]
fn a_wrong_token_fails_the_step_with_the_api_servers_401() {
    let kube = Kube::start();
    let kubeconfig = kube.path().join("wrong-token-kubeconfig");
    kube.api
        .write_kubeconfig_with_token(&kubeconfig, &[(CONTEXT, NS)], "not-the-token")
        .expect("write the kubeconfig");
    let file = kube.write("read.yaml", &side_effect_then_kubernetes(None));
    let marker = kube.path().join("marker");
    let args = run_args(
        &file.display().to_string(),
        &[("marker", marker.display().to_string())],
        true,
    );
    let run = runbook(
        kube.path(),
        &kubeconfig,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(run.code, 1, "{run}");
    let error = run.step_ended("read")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("step `read`"), "{error}");
    assert!(error.contains("Unauthorized (401 Unauthorized)"), "{error}");
    let requests = kube.api.requests();
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r.status == 401),
        "{requests:#?}"
    );
}

#[test]
fn plan_of_restore_shows_the_patch_it_would_send() {
    let kube = Kube::start();
    let file = runbook_file("runbooks/flink/operator/restore.yaml")
        .display()
        .to_string();
    let inputs = [
        "--input",
        "deployment=orders",
        "--input",
        "namespace=flink",
        "--input",
        "savepoint_path=file:/flink-sp/savepoint-caf2b2-39d09a1c170c",
        "--input",
        "flink_url=http://orders-rest.flink:8081",
    ];
    let mut args = vec!["plan", file.as_str()];
    args.extend(inputs);
    let plan = kube.runbook(&args);
    assert_eq!(plan.code, 0, "{plan}");
    let text = &plan.stdout;
    assert!(
        text.contains(
            "kubernetes PATCH flink.apache.org/v1beta1 FlinkDeployment flink/orders (merge, application/merge-patch+json)"
        ),
        "{text}"
    );
    for line in [
        r#""upgradeMode": "savepoint""#,
        r#""state": "running""#,
        r#""initialSavepointPath": "file:/flink-sp/savepoint-caf2b2-39d09a1c170c""#,
        r#""allowNonRestoredState": false"#,
        r#""savepointRedeployNonce": "⟨steps.current.outputs.next_nonce⟩""#,
    ] {
        assert!(text.contains(line), "`{line}` is not in the plan:\n{text}");
    }

    // The same, for tools.
    args.extend(["--format", "json"]);
    let plan = kube.runbook(&args);
    assert_eq!(plan.code, 0, "{plan}");
    let plan: Value = serde_json::from_str(&plan.stdout).expect("a JSON plan");
    let patch = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .flat_map(|stage| stage.as_array().cloned().unwrap_or_default())
        .find(|step| step["path"] == "patch")
        .unwrap_or_else(|| panic!("no patch step in {plan:#}"));
    assert_eq!(
        patch["action"]["patch"]["spec"]["job"],
        json!({
            "upgradeMode": "savepoint",
            "state": "running",
            "initialSavepointPath": "file:/flink-sp/savepoint-caf2b2-39d09a1c170c",
            "allowNonRestoredState": false,
            "savepointRedeployNonce": "⟨steps.current.outputs.next_nonce⟩",
        }),
        "{patch:#}"
    );
    // Planning reads no cluster.
    assert!(kube.api.requests().is_empty());
}

#[test]
fn a_patch_the_crd_schema_refuses_names_the_field() {
    let kube = Kube::start();
    kube.create_deployment("orders-schema", job_spec("flink:2.3"));
    let file = kube.write("patch.yaml", PATCH_RUNBOOK);
    let run = kube.run_json(
        &file,
        &[
            ("deployment", "orders-schema".to_owned()),
            (
                "patch",
                json!({"spec": {"job": {"upgradeMode": "last_state"}}}).to_string(),
            ),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let error = run.step_ended("bump")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(
            r#"spec.job.upgradeMode: Unsupported value: "last_state": supported values: "last-state", "savepoint", "stateless" (422 Invalid)"#
        ),
        "{error}"
    );
    assert_eq!(
        str_at(&kube.deployment("orders-schema"), "/spec/job/upgradeMode"),
        "savepoint"
    );
}
