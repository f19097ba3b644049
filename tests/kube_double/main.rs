//! The Kubernetes API server double (`tests/support/kube_api.rs`) and the Flink operator double
//! (`tests/support/flink_operator.rs`), exercised through kube-rs the way the `kubernetes`
//! action drives a real cluster: a kubeconfig, discovery, dynamic objects.
//!
//! The last test runs the operator double against a real sandbox Flink: the one
//! `RUNBOOK_FLINK_ENV` names (the `env` file of a running `scripts/flink-sandbox.sh` sandbox),
//! or one started for the test and stopped after it. It fails, never skips, when no Flink can
//! be had.

#[path = "../support/kube_api.rs"]
mod kube_api;

#[path = "../support/flink_operator.rs"]
mod flink_operator;
#[path = "../support/flink_sandbox.rs"]
mod flink_sandbox;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Discovery, Scope};
use kube::{Client, Config};
use serde_json::{Value, json};

use flink_operator::Operator;
use flink_sandbox::FlinkSandbox;
use kube_api::{Fault, KubeApi};

/// The namespace of the kubeconfig's current context.
const NS: &str = "flink";

/// A double, a kubeconfig for it and a client from that kubeconfig.
struct Cluster {
    api: KubeApi,
    kubeconfig: PathBuf,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, &[("double", NS), ("other", "team-b")])
        .expect("write kubeconfig");
    let client = client_for(&kubeconfig, None).await;
    Cluster {
        api,
        kubeconfig,
        client,
        _dir: dir,
    }
}

async fn client_for(kubeconfig: &Path, context: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("a config from the kubeconfig");
    Client::try_from(config).expect("a client")
}

/// An Api for a kind found through discovery, in the client's default namespace.
async fn dynamic_api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = discovery::pinned_kind(client, &gvk)
        .await
        .expect("discover the kind");
    Api::default_namespaced_with(client.clone(), &resource)
}

async fn flink_deployments(client: &Client) -> Api<DynamicObject> {
    dynamic_api(client, "flink.apache.org", "v1beta1", "FlinkDeployment").await
}

async fn flink_snapshots(client: &Client) -> Api<DynamicObject> {
    dynamic_api(client, "flink.apache.org", "v1beta1", "FlinkStateSnapshot").await
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a dynamic object")
}

fn value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).expect("serializable")
}

fn deployment(name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

fn basic_spec() -> Value {
    json!({
        "image": "flink:2.3",
        "flinkVersion": "v2_3",
        "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
        "job": {"jarURI": "local:///opt/flink/usrlib/job.jar", "parallelism": 1, "upgradeMode": "savepoint", "state": "running"},
    })
}

/// The Status of a failed call.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn generation(object: &DynamicObject) -> i64 {
    object.metadata.generation.expect("a generation")
}

fn resource_version(object: &DynamicObject) -> String {
    object
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion")
}

/// A JSON patch (RFC 6902) as kube-rs sends it.
fn json_patch(operations: Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(operations).expect("JSON patch operations"))
}

/// A PATCH with any content type and body, built with kube-rs's request builder: for what
/// `Api::patch` cannot send (an apply without a field manager, a malformed JSON patch).
async fn raw_patch(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
    content_type: &str,
    body: &Value,
    params: &PatchParams,
) -> Result<Value, kube::Error> {
    let mut request = kube::core::Request::new(api.resource_url())
        .patch(name, params, &Patch::Merge(body))
        .expect("a request");
    request.headers_mut().insert(
        "content-type",
        content_type.parse().expect("a header value"),
    );
    client.request::<Value>(request).await
}

// ---------------------------------------------------------------------------------------------
// The API server double

#[tokio::test]
async fn discovery_finds_the_kinds() {
    let cluster = cluster().await;
    let version = cluster.client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");

    for discovery in [
        Discovery::new(cluster.client.clone())
            .run()
            .await
            .expect("discovery"),
        Discovery::new(cluster.client.clone())
            .run_aggregated()
            .await
            .expect("aggregated discovery"),
    ] {
        let (resource, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(
                "flink.apache.org",
                "v1beta1",
                "FlinkDeployment",
            ))
            .expect("FlinkDeployment is served");
        assert_eq!(resource.plural, "flinkdeployments");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(
            caps.subresources
                .iter()
                .any(|(sub, _)| sub.plural == "status")
        );
        let (resource, _) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(
                "flink.apache.org",
                "v1beta1",
                "FlinkStateSnapshot",
            ))
            .expect("FlinkStateSnapshot is served");
        assert_eq!(resource.plural, "flinkstatesnapshots");
        let (resource, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .expect("ConfigMap is served");
        assert_eq!(
            (resource.plural.as_str(), caps.scope),
            ("configmaps", Scope::Namespaced)
        );
        let (_, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
            .expect("Namespace is served");
        assert_eq!(caps.scope, Scope::Cluster);
    }
    let (resource, _) = discovery::pinned_kind(
        &cluster.client,
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
    )
    .await
    .expect("pinned kind");
    assert_eq!(resource.api_version, "v1");

    // Discovery::run asks for the plain documents, run_aggregated for APIGroupDiscoveryList.
    let requests = cluster.api.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    for path in [
        "/version",
        "/apis",
        "/apis/flink.apache.org/v1beta1",
        "/api",
        "/api/v1",
    ] {
        assert!(paths.contains(&path), "{path} not requested: {paths:?}");
    }
    let aggregated = |path: &str| {
        requests.iter().any(|r| {
            r.path == path
                && r.accept
                    .as_deref()
                    .is_some_and(|a| a.contains("v=v2;as=APIGroupDiscoveryList"))
        })
    };
    assert!(
        aggregated("/apis") && aggregated("/api"),
        "run_aggregated asks for APIGroupDiscoveryList"
    );
}

#[tokio::test]
async fn create_get_list_and_delete_a_flink_deployment() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let mut manifest = deployment("orders", basic_spec());
    manifest.data["status"] = json!({"lifecycleState": "STABLE"});
    let created = deployments
        .create(&PostParams::default(), &manifest)
        .await
        .expect("create");
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(generation(&created), 1);
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    assert_eq!(created.data["spec"], basic_spec());

    let fetched = deployments.get("orders").await.expect("get");
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    assert_eq!(resource_version(&fetched), resource_version(&created));

    let list = deployments
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1);
    let list_version: u64 = list
        .metadata
        .resource_version
        .expect("a list resourceVersion")
        .parse()
        .unwrap();
    assert!(list_version >= resource_version(&created).parse::<u64>().unwrap());

    let again = status_of(deployments.create(&PostParams::default(), &manifest).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        again.message,
        "flinkdeployments.flink.apache.org \"orders\" already exists"
    );

    let deleted = deployments
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    let deleted = deleted
        .left()
        .expect("a custom resource's DELETE answers the object");
    assert_eq!(deleted.metadata.uid, created.metadata.uid);
    let gone = status_of(deployments.get("orders").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        gone.message,
        "flinkdeployments.flink.apache.org \"orders\" not found"
    );
    let details = gone.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("orders", "flink.apache.org", "flinkdeployments")
    );
    let missing = status_of(deployments.delete("orders", &DeleteParams::default()).await);
    assert_eq!(missing.code, 404);

    // The other context's default namespace.
    let other = client_for(&cluster.kubeconfig, Some("other")).await;
    let in_other = flink_deployments(&other).await;
    let created = in_other
        .create(&PostParams::default(), &manifest)
        .await
        .expect("create");
    assert_eq!(created.metadata.namespace.as_deref(), Some("team-b"));
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn core_and_cluster_scoped_kinds() {
    let cluster = cluster().await;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let created = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "payments"}})).unwrap(),
        )
        .await
        .expect("create a namespace");
    assert!(created.metadata.namespace.is_none());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["default", "flink", "payments", "team-b"]);

    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "payments");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "1"}}))
            .unwrap();
    let created = config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create a ConfigMap");
    assert!(
        created.metadata.generation.is_none(),
        "built-in ConfigMaps have no generation"
    );
    let listed = config_maps
        .list(&ListParams::default())
        .await
        .expect("list ConfigMaps");
    assert_eq!(listed.items.len(), 1);

    let nowhere: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "nowhere");
    let missing = status_of(nowhere.create(&PostParams::default(), &cm).await);
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );

    // A ConfigMap's DELETE answers a Success Status.
    let deleted = config_maps
        .delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    let status = deleted.right().expect("a Status");
    assert_eq!(status.details.expect("details").name, "settings");

    // An unconditional update is allowed on built-in kinds.
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create again");
    let mut replacement = cm.clone();
    replacement.data = Some([("a".to_owned(), "2".to_owned())].into());
    let replaced = config_maps
        .replace("settings", &PostParams::default(), &replacement)
        .await
        .expect("replace without resourceVersion");
    assert_eq!(replaced.data.unwrap()["a"], "2");

    // Deleting the namespace takes its objects with it.
    namespaces
        .delete("payments", &DeleteParams::default())
        .await
        .expect("delete a namespace");
    assert_eq!(status_of(config_maps.get("settings").await).code, 404);
}

#[tokio::test]
async fn merge_patch_deletes_with_null_and_merges_nested_maps() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let mut spec = basic_spec();
    spec["job"]["args"] = json!(["--rate-ms", "100"]);
    deployments
        .create(&PostParams::default(), &deployment("orders", spec))
        .await
        .expect("create");
    let patch = json!({
        "metadata": {"labels": {"team": "data"}},
        "spec": {
            "image": null,
            "flinkConfiguration": {"state.savepoints.dir": "file:///savepoints"},
            "job": {"upgradeMode": "last-state", "args": ["--keys", "2"]},
        },
    });
    let patched = deployments
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("merge patch");
    let spec = &patched.data["spec"];
    assert!(spec.get("image").is_none(), "null deletes the key");
    assert_eq!(spec["flinkVersion"], "v2_3", "untouched keys stay");
    assert_eq!(
        spec["flinkConfiguration"],
        json!({"taskmanager.numberOfTaskSlots": "2", "state.savepoints.dir": "file:///savepoints"}),
        "nested maps merge"
    );
    assert_eq!(spec["job"]["upgradeMode"], "last-state");
    assert_eq!(spec["job"]["parallelism"], 1);
    assert_eq!(
        spec["job"]["args"],
        json!(["--keys", "2"]),
        "lists are replaced"
    );
    assert_eq!(patched.metadata.labels.unwrap()["team"], "data");

    let logged = cluster
        .api
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .expect("logged");
    assert_eq!(
        logged.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(serde_json::from_str::<Value>(&logged.body).unwrap(), patch);
}

#[tokio::test]
async fn json_patch_supports_every_operation_and_a_failed_test_is_invalid() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let created = deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    let operations = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(&created)},
        {"op": "add", "path": "/spec/job/args", "value": ["--name", "x"]},
        {"op": "add", "path": "/spec/job/args/-", "value": "--print"},
        {"op": "add", "path": "/spec/job/args/0", "value": "--keys"},
        {"op": "replace", "path": "/spec/job/upgradeMode", "value": "stateless"},
        {"op": "remove", "path": "/spec/image"},
        {"op": "copy", "from": "/spec/flinkVersion", "path": "/spec/job/flinkVersionCopy"},
        {"op": "move", "from": "/spec/job/flinkVersionCopy", "path": "/spec/movedVersion"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "1"}},
        {"op": "test", "path": "/metadata/annotations/a~0b~1c", "value": "1"},
    ]);
    let patched = deployments
        .patch("orders", &PatchParams::default(), &json_patch(operations))
        .await
        .expect("json patch");
    let patched = value(&patched);
    let spec = &patched["spec"];
    assert_eq!(
        spec["job"]["args"],
        json!(["--keys", "--name", "x", "--print"])
    );
    assert_eq!(spec["job"]["upgradeMode"], "stateless");
    assert!(spec.get("image").is_none());
    assert!(spec["job"].get("flinkVersionCopy").is_none());
    assert_eq!(spec["movedVersion"], "v2_3");

    let failing = json!([
        {"op": "test", "path": "/spec/job/upgradeMode", "value": "savepoint"},
        {"op": "replace", "path": "/spec/job/upgradeMode", "value": "last-state"},
    ]);
    let invalid = status_of(
        deployments
            .patch("orders", &PatchParams::default(), &json_patch(failing))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        invalid.message,
        "the server rejected our request due to an error in our request"
    );
    let unchanged = deployments.get("orders").await.unwrap();
    assert_eq!(
        unchanged.data["spec"]["job"]["upgradeMode"], "stateless",
        "nothing of a failed patch is applied"
    );

    for bad in [
        json!([{"op": "remove", "path": "/spec/nothing"}]),
        json!([{"op": "replace", "path": "/spec/job/args/9", "value": "x"}]),
        json!([{"op": "add", "path": "/spec/missing/child", "value": 1}]),
    ] {
        let status = status_of(
            deployments
                .patch("orders", &PatchParams::default(), &json_patch(bad.clone()))
                .await,
        );
        assert_eq!(status.code, 422, "{bad}");
    }
    let not_a_list = status_of(
        raw_patch(
            &cluster.client,
            &deployments,
            "orders",
            "application/json-patch+json",
            &json!({"op": "add"}),
            &PatchParams::default(),
        )
        .await,
    );
    assert_eq!(
        (not_a_list.code, not_a_list.reason.as_str()),
        (400, "BadRequest")
    );
    let logged = cluster.api.requests();
    let json_patches = logged
        .iter()
        .filter(|r| r.content_type.as_deref() == Some("application/json-patch+json"));
    assert_eq!(json_patches.count(), 6);
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let created = deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    let merge = |patch: Value| Patch::Merge(patch);
    let pp = PatchParams::default();

    let labelled = deployments
        .patch(
            "orders",
            &pp,
            &merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        generation(&labelled),
        1,
        "metadata changes keep the generation"
    );
    assert_ne!(resource_version(&labelled), resource_version(&created));

    let status = deployments
        .patch_status(
            "orders",
            &pp,
            &merge(json!({"status": {"lifecycleState": "STABLE"}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&status), 1, "status changes keep the generation");

    let changed = deployments
        .patch(
            "orders",
            &pp,
            &merge(json!({"spec": {"job": {"parallelism": 2}}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&changed), 2);

    let same = deployments
        .patch(
            "orders",
            &pp,
            &merge(json!({"spec": {"job": {"parallelism": 2}}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&same), 2);
    assert_eq!(
        resource_version(&same),
        resource_version(&changed),
        "a no-op write stores nothing"
    );

    let changed_again = deployments
        .patch("orders", &pp, &merge(json!({"spec": {"restartNonce": 7}})))
        .await
        .unwrap();
    assert_eq!(generation(&changed_again), 3);
    let global_before: u64 = resource_version(&changed).parse().unwrap();
    assert!(resource_version(&changed_again).parse::<u64>().unwrap() > global_before);
}

#[tokio::test]
async fn the_status_subresource_is_isolated() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    let pp = PatchParams::default();

    let main = deployments
        .patch(
            "orders",
            &pp,
            &Patch::Merge(
                json!({"status": {"lifecycleState": "STABLE"}, "spec": {"image": "flink:2.4"}}),
            ),
        )
        .await
        .unwrap();
    assert!(
        main.data.get("status").is_none(),
        "the main resource ignores status"
    );
    assert_eq!(main.data["spec"]["image"], "flink:2.4");

    let status = deployments
        .patch_status(
            "orders",
            &pp,
            &Patch::Merge(
                json!({"status": {"lifecycleState": "STABLE"}, "spec": {"image": "ignored"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["lifecycleState"], "STABLE");
    assert_eq!(
        status.data["spec"]["image"], "flink:2.4",
        "the status subresource ignores spec"
    );

    let mut replacement = deployments.get_status("orders").await.unwrap();
    replacement.data["status"] = json!({"lifecycleState": "DEPLOYED", "observedGeneration": 2});
    replacement.data["spec"]["image"] = json!("ignored-again");
    let replaced = deployments
        .replace_status("orders", &PostParams::default(), &replacement)
        .await
        .unwrap();
    assert_eq!(
        replaced.data["status"],
        json!({"lifecycleState": "DEPLOYED", "observedGeneration": 2})
    );
    assert_eq!(replaced.data["spec"]["image"], "flink:2.4");

    let mut whole = deployments.get("orders").await.unwrap();
    whole.data["status"] = json!({"lifecycleState": "FAILED"});
    let replaced = deployments
        .replace("orders", &PostParams::default(), &whole)
        .await
        .unwrap();
    assert_eq!(
        replaced.data["status"]["lifecycleState"], "DEPLOYED",
        "PUT on the main resource keeps status"
    );

    let logged: Vec<String> = cluster
        .api
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(logged.contains(&format!(
        "PATCH /apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/orders/status"
    )));
    assert!(logged.contains(&format!(
        "PUT /apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/orders/status"
    )));
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let created = deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    deployments
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": "flink:2.4"}})),
        )
        .await
        .unwrap();
    let expected = "Operation cannot be fulfilled on flinkdeployments.flink.apache.org \"orders\": the object has been modified; please apply your changes to the latest version and try again";

    let stale = status_of(
        deployments
            .replace("orders", &PostParams::default(), &created)
            .await,
    );
    assert_eq!(
        (stale.code, stale.reason.as_str(), stale.message.as_str()),
        (409, "Conflict", expected)
    );

    let with_version = json!({"metadata": {"resourceVersion": resource_version(&created)}, "spec": {"image": "x"}});
    let stale = status_of(
        deployments
            .patch(
                "orders",
                &PatchParams::default(),
                &Patch::Merge(&with_version),
            )
            .await,
    );
    assert_eq!((stale.code, stale.message.as_str()), (409, expected));

    let current = deployments.get("orders").await.unwrap();
    let with_version = json!({"metadata": {"resourceVersion": resource_version(&current)}, "spec": {"image": "y"}});
    deployments
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(&with_version),
        )
        .await
        .expect("a patch with the current resourceVersion");

    let mut unversioned = deployments.get("orders").await.unwrap();
    unversioned.metadata.resource_version = None;
    let invalid = status_of(
        deployments
            .replace("orders", &PostParams::default(), &unversioned)
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(
        invalid.message.contains("metadata.resourceVersion"),
        "{}",
        invalid.message
    );
}

#[tokio::test]
async fn injected_conflicts_answer_409_then_clear() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    cluster
        .api
        .inject_conflicts("FlinkDeployment", NS, "orders", 2);
    let patch = Patch::Merge(json!({"spec": {"job": {"state": "suspended"}}}));
    for _ in 0..2 {
        let conflict = status_of(
            deployments
                .patch("orders", &PatchParams::default(), &patch)
                .await,
        );
        assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    }
    let patched = deployments
        .patch("orders", &PatchParams::default(), &patch)
        .await
        .expect("the third attempt goes through");
    assert_eq!(patched.data["spec"]["job"]["state"], "suspended");
    let statuses: Vec<u16> = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [409, 409, 200]);
}

#[tokio::test]
async fn injected_faults_answer_429_500_503_or_drop_the_connection_then_clear() {
    let cluster = cluster().await;
    // kube-rs retries 429, 503 and 504 itself by default (honouring Retry-After): turned off
    // here, to see each answer of the double.
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("read the kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config");
    config.default_retry = false;
    let client = Client::try_from(config).expect("a client");
    let deployments = flink_deployments(&client).await;
    deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    cluster.api.inject_faults(
        "FlinkDeployment",
        NS,
        "orders",
        Some("GET"),
        &[
            Fault::TooManyRequests {
                retry_after_seconds: 2,
            },
            Fault::InternalError,
            Fault::ServiceUnavailable,
            Fault::DropConnection,
        ],
    );
    // A PATCH is not a GET: served.
    deployments
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"job": {"parallelism": 2}}})),
        )
        .await
        .expect("a PATCH is served");

    let throttled = status_of(deployments.get("orders").await);
    assert_eq!(
        (throttled.code, throttled.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(
        throttled.details.as_ref().map(|d| d.retry_after_seconds),
        Some(2)
    );
    let internal = status_of(deployments.get("orders").await);
    assert_eq!(
        (internal.code, internal.reason.as_str()),
        (500, "InternalError")
    );
    assert!(
        internal.message.starts_with("Internal error occurred: "),
        "{internal:?}"
    );
    let unavailable = status_of(deployments.get("orders").await);
    assert_eq!(unavailable.code, 503);
    let dropped = deployments.get("orders").await;
    assert!(
        matches!(
            dropped,
            Err(kube::Error::HyperError(_) | kube::Error::Service(_))
        ),
        "the connection ends without an answer: {dropped:?}"
    );
    assert_eq!(cluster.api.faults_left(), 0);
    let served = deployments.get("orders").await.expect("served again");
    assert_eq!(served.data["spec"]["job"]["parallelism"], 2);
    let statuses: Vec<(String, u16)> = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/flinkdeployments/orders"))
        .map(|r| (r.method.clone(), r.status))
        .collect();
    let expected: Vec<(String, u16)> = [
        ("PATCH", 200),
        ("GET", 429),
        ("GET", 500),
        ("GET", 503),
        ("GET", 0),
        ("GET", 200),
    ]
    .iter()
    .map(|(m, s)| (m.to_string(), *s))
    .collect();
    assert_eq!(statuses, expected);

    // The 429 carries the Retry-After header too (as the real server's does).
    cluster.api.inject_faults(
        "FlinkDeployment",
        NS,
        "orders",
        None,
        &[Fault::TooManyRequests {
            retry_after_seconds: 3,
        }],
    );
    let url = format!(
        "{}/apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/orders",
        cluster.api.url()
    );
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
        .get(url)
        .bearer_auth(cluster.api.token())
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
}

#[tokio::test]
async fn a_spec_that_breaks_the_crd_schema_is_invalid() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let mut spec = basic_spec();
    spec["job"]["parallelism"] = json!("2");
    let created = status_of(
        deployments
            .create(&PostParams::default(), &deployment("orders", spec))
            .await,
    );
    assert_eq!((created.code, created.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        created.message,
        "FlinkDeployment.flink.apache.org \"orders\" is invalid: spec.job.parallelism: Invalid value: \"string\": spec.job.parallelism in body must be of type integer: \"string\""
    );
    deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("a valid spec is stored");
    let patched = status_of(
        deployments
            .patch(
                "orders",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"job": {"upgradeMode": "savepoints", "allowNonRestoredState": "false"}}})),
            )
            .await,
    );
    assert_eq!(patched.code, 422);
    assert_eq!(
        patched.message,
        "FlinkDeployment.flink.apache.org \"orders\" is invalid: [spec.job.allowNonRestoredState: Invalid value: \"string\": spec.job.allowNonRestoredState in body must be of type boolean: \"string\", spec.job.upgradeMode: Unsupported value: \"savepoints\": supported values: \"last-state\", \"savepoint\", \"stateless\"]"
    );
    let causes: Vec<String> = patched
        .details
        .expect("details")
        .causes
        .into_iter()
        .map(|c| format!("{} {}", c.reason, c.field))
        .collect();
    assert_eq!(
        causes,
        [
            "FieldValueTypeInvalid spec.job.allowNonRestoredState",
            "FieldValueNotSupported spec.job.upgradeMode"
        ]
    );
    // Nothing was stored; the status subresource is not checked against the spec's schema.
    let stored = deployments.get("orders").await.expect("get");
    assert_eq!(stored.data["spec"]["job"]["upgradeMode"], "savepoint");
    assert_eq!(generation(&stored), 1);
}

#[tokio::test]
async fn an_apply_conflicts_with_a_field_an_update_manager_changed() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let applied = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "orders"},
        "spec": basic_spec(),
    });
    deployments
        .patch(
            "orders",
            &PatchParams::apply("runbook"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply creates");
    // Someone runs `kubectl edit` on the image.
    cluster
        .api
        .update_object_as("kubectl-edit", "FlinkDeployment", NS, "orders", |object| {
            object["spec"]["image"] = json!("flink:2.3-hotfix");
        })
        .expect("edit");
    // A merge patch over HTTP with a field manager is an Update too.
    deployments
        .patch(
            "orders",
            &PatchParams {
                field_manager: Some("flink-kubernetes-operator".to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"job": {"state": "suspended"}}})),
        )
        .await
        .expect("merge patch");
    let conflict = status_of(
        deployments
            .patch(
                "orders",
                &PatchParams::apply("runbook"),
                &Patch::Apply(&applied),
            )
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 2 conflicts: conflict with \"flink-kubernetes-operator\" using flink.apache.org/v1beta1: .spec.job.state\nconflict with \"kubectl-edit\" using flink.apache.org/v1beta1: .spec.image"
    );
    let managed = deployments
        .get("orders")
        .await
        .expect("get")
        .metadata
        .managed_fields
        .expect("managedFields");
    let entries: Vec<(String, String)> = managed
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    for entry in [("runbook", "Apply"), ("kubectl-edit", "Update")] {
        assert!(
            entries.contains(&(entry.0.to_owned(), entry.1.to_owned())),
            "{entries:?}"
        );
    }
    // Forced, the apply takes the fields back.
    let forced = deployments
        .patch(
            "orders",
            &PatchParams::apply("runbook").force(),
            &Patch::Apply(&applied),
        )
        .await
        .expect("a forced apply");
    assert_eq!(forced.data["spec"]["image"], "flink:2.3");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .expect("managedFields")
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["runbook"], "the editors own nothing any more");
}

#[tokio::test]
async fn unknown_kinds_and_paths_answer_a_404_status() {
    let cluster = cluster().await;
    let unknown = discovery::pinned_kind(
        &cluster.client,
        &GroupVersionKind::gvk("nope.example.com", "v1", "Thing"),
    )
    .await;
    match unknown {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
            assert_eq!(
                status.message,
                "the server could not find the requested resource"
            );
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkSessionJob"),
        "flinksessionjobs",
    );
    let session_jobs: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), NS, &resource);
    let status = status_of(session_jobs.get("x").await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "the server could not find the requested resource")
    );
    let missing_kind = discovery::pinned_kind(
        &cluster.client,
        &GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkSessionJob"),
    )
    .await;
    assert!(
        missing_kind.is_err(),
        "a kind the group does not serve is not discovered"
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let cluster = cluster().await;
    let path = cluster.kubeconfig.with_file_name("wrong-token");
    cluster
        .api
        .write_kubeconfig_with_token(&path, &[("double", NS)], "not-the-token")
        .unwrap();
    let client = client_for(&path, None).await;
    let status = status_of(client.apiserver_version().await);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkDeployment"),
        "flinkdeployments",
    );
    let deployments: Api<DynamicObject> = Api::namespaced_with(client, NS, &resource);
    assert_eq!(
        status_of(deployments.list(&ListParams::default()).await).code,
        401
    );

    // No credentials at all: the anonymous user reads the version, nothing else.
    let anonymous = cluster.kubeconfig.with_file_name("anonymous");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: anon\n  context:\n    cluster: c\n    user: nobody\n    namespace: {NS}\ncurrent-context: anon\n",
        cluster.api.url()
    );
    std::fs::write(&anonymous, yaml).unwrap();
    let client = client_for(&anonymous, None).await;
    client
        .apiserver_version()
        .await
        .expect("anonymous /version");
    let deployments: Api<DynamicObject> = Api::namespaced_with(client, NS, &resource);
    let forbidden = status_of(deployments.get("orders").await);
    assert_eq!(
        (forbidden.code, forbidden.reason.as_str()),
        (403, "Forbidden")
    );
    assert!(
        forbidden
            .message
            .contains("User \"system:anonymous\" cannot get resource \"flinkdeployments\""),
        "{}",
        forbidden.message
    );
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_reports_conflicts() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let applied = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "orders", "labels": {"app": "orders"}},
        "spec": {"image": "flink:2.3", "job": {"upgradeMode": "savepoint", "parallelism": 1}},
    });
    let created = deployments
        .patch(
            "orders",
            &PatchParams::apply("runbook"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply creates");
    assert_eq!(generation(&created), 1);
    let managed = created
        .metadata
        .managed_fields
        .clone()
        .expect("managedFields");
    assert_eq!(managed[0].manager.as_deref(), Some("runbook"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let logged = cluster
        .api
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(logged.status, 201);
    assert_eq!(
        logged.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        logged.query.contains("fieldManager=runbook"),
        "{}",
        logged.query
    );

    // Another manager adds a field: merged, not replaced.
    let other = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "orders"},
        "spec": {"job": {"state": "running"}},
    });
    let merged = deployments
        .patch("orders", &PatchParams::apply("ops"), &Patch::Apply(&other))
        .await
        .expect("apply merges");
    assert_eq!(
        merged.data["spec"]["job"],
        json!({"upgradeMode": "savepoint", "parallelism": 1, "state": "running"})
    );
    assert_eq!(merged.data["spec"]["image"], "flink:2.3");

    // The first manager drops parallelism and changes upgradeMode: its own field goes away.
    let mut reapplied = applied.clone();
    reapplied["spec"]["job"] = json!({"upgradeMode": "last-state"});
    let updated = deployments
        .patch(
            "orders",
            &PatchParams::apply("runbook"),
            &Patch::Apply(&reapplied),
        )
        .await
        .expect("re-apply");
    assert_eq!(
        updated.data["spec"]["job"],
        json!({"upgradeMode": "last-state", "state": "running"})
    );
    assert_eq!(generation(&updated), 3);

    // A field another manager owns, with another value: a conflict, unless forced.
    let mut contested = other.clone();
    contested["spec"]["job"]["upgradeMode"] = json!("stateless");
    let conflict = status_of(
        deployments
            .patch(
                "orders",
                &PatchParams::apply("ops"),
                &Patch::Apply(&contested),
            )
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("conflict with \"runbook\""),
        "{}",
        conflict.message
    );
    assert!(
        conflict.message.contains(".spec.job.upgradeMode"),
        "{}",
        conflict.message
    );
    let forced = deployments
        .patch(
            "orders",
            &PatchParams::apply("ops").force(),
            &Patch::Apply(&contested),
        )
        .await
        .expect("a forced apply");
    assert_eq!(forced.data["spec"]["job"]["upgradeMode"], "stateless");

    // Apply needs a field manager.
    let without = status_of(
        raw_patch(
            &cluster.client,
            &deployments,
            "orders",
            "application/apply-patch+yaml",
            &other,
            &PatchParams::default(),
        )
        .await,
    );
    assert_eq!((without.code, without.reason.as_str()), (422, "Invalid"));
    assert!(
        without.message.contains("fieldManager: Required value"),
        "{}",
        without.message
    );
}

#[tokio::test]
async fn strategic_merge_patch_is_refused_for_custom_resources() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    let refused = status_of(
        deployments
            .patch(
                "orders",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"image": "x"}})),
            )
            .await,
    );
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    assert!(
        refused
            .message
            .starts_with("the body of the request was in an unknown format"),
        "{}",
        refused.message
    );

    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client.clone());
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let patched = config_maps
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"b": "2"}})),
        )
        .await
        .expect("built-in kinds take strategic merge patches");
    assert_eq!(patched.data.unwrap().len(), 2);
}

#[tokio::test]
async fn lists_select_paginate_and_delete_collections() {
    let cluster = cluster().await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client.clone());
    for (name, app) in [("c1", "a"), ("c2", "b"), ("c3", "c")] {
        let cm = json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {}});
        config_maps
            .create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .expect("create");
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    for (selector, expected) in [
        ("app=a", vec!["c1"]),
        ("app!=a", vec!["c2", "c3"]),
        ("app in (a,c)", vec!["c1", "c3"]),
        ("app notin (a)", vec!["c2", "c3"]),
        ("app", vec!["c1", "c2", "c3"]),
        ("!app", vec![]),
    ] {
        let listed = config_maps
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert_eq!(names(listed), expected, "{selector}");
    }
    let by_name = config_maps
        .list(&ListParams::default().fields("metadata.name=c2"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["c2"]);

    let first = config_maps
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert_eq!(names(first), ["c1", "c2"]);
    let rest = config_maps
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(names(rest), ["c3"]);

    let deleted = config_maps
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app in (a,b)"),
        )
        .await
        .expect("deletecollection")
        .left()
        .expect("the deleted objects");
    assert_eq!(names(deleted), ["c1", "c2"]);
    assert_eq!(
        names(config_maps.list(&ListParams::default()).await.unwrap()),
        ["c3"]
    );

    // Watch is not served: polling is the way.
    let watch = config_maps.watch(&WatchParams::default(), "0").await;
    assert_eq!(status_of(watch.map(|_| ())).code, 405);
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let created = deployments
        .create(&PostParams::default(), &deployment("orders", basic_spec()))
        .await
        .expect("create");
    let answered = deployments
        .patch(
            "orders",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"image": "flink:2.4"}})),
        )
        .await
        .expect("a dry-run patch");
    assert_eq!(answered.data["spec"]["image"], "flink:2.4");
    let stored = deployments.get("orders").await.unwrap();
    assert_eq!(stored.data["spec"]["image"], "flink:2.3");
    assert_eq!(resource_version(&stored), resource_version(&created));
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let cluster = cluster().await;
    let deployments = flink_deployments(&cluster.client).await;
    let mut manifest = deployment("orders", basic_spec());
    manifest.metadata.finalizers = Some(vec!["example.com/keep".to_owned()]);
    deployments
        .create(&PostParams::default(), &manifest)
        .await
        .expect("create");
    let deleting = deployments
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the object");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(
        deployments.get("orders").await.is_ok(),
        "still there while a finalizer is left"
    );
    deployments
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove the finalizer");
    assert_eq!(status_of(deployments.get("orders").await).code, 404);
}

// ---------------------------------------------------------------------------------------------
// The operator double against a real Flink

/// How long one step of a scenario may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

fn status_field<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    object.pointer(&format!("/status{path}"))
}

fn status_str<'a>(object: &'a Value, path: &str) -> &'a str {
    status_field(object, path)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Polls the object (through kube-rs) until `done` holds; the lifecycle states seen on the way
/// are collected in `seen`.
async fn wait_for(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    seen: &mut Vec<String>,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(object) = api.get(name).await {
            last = value(&object);
            let state = status_str(&last, "/lifecycleState").to_owned();
            if !state.is_empty() && seen.last() != Some(&state) {
                seen.push(state);
            }
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}: no {what} within {STEP_TIMEOUT:?}; last seen:\n{last:#}");
}

/// Waits for STABLE with a RUNNING job at the object's current generation.
async fn wait_stable(
    api: &Api<DynamicObject>,
    name: &str,
    seen: &mut Vec<String>,
    not_job: Option<&str>,
) -> Value {
    wait_for(api, name, "STABLE with a running job", seen, |o| {
        status_str(o, "/lifecycleState") == "STABLE"
            && status_str(o, "/jobStatus/state") == "RUNNING"
            && status_field(o, "/observedGeneration") == o.pointer("/metadata/generation")
            && not_job.is_none_or(|old| status_str(o, "/jobStatus/jobId") != old)
    })
    .await
}

async fn flink_get(url: &str, path: &str) -> Value {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let text = client
        .get(format!("{url}{path}"))
        .send()
        .await
        .expect("Flink answers")
        .text()
        .await
        .expect("a body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Where Flink says the job restored from (polled: it shows once the restore happened).
async fn restored_from(url: &str, job_id: &str) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        let checkpoints = flink_get(url, &format!("/jobs/{job_id}/checkpoints")).await;
        if let Some(path) = checkpoints
            .pointer("/latest/restored/external_path")
            .and_then(Value::as_str)
        {
            return path.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {job_id} reported no restore");
}

/// `file:/a`, `file:///a` and `/a` name the same file.
fn local_path(path: &str) -> PathBuf {
    let path = path
        .strip_prefix("file://")
        .or_else(|| path.strip_prefix("file:"))
        .unwrap_or(path);
    PathBuf::from(path)
}

fn snapshot(name: &str, deployment: &str, spec: Value) -> DynamicObject {
    let mut spec_value = json!({"jobReference": {"kind": "FlinkDeployment", "name": deployment}});
    if let (Some(target), Some(extra)) = (spec_value.as_object_mut(), spec.as_object()) {
        target.extend(extra.clone());
    }
    object(json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkStateSnapshot",
        "metadata": {"name": name},
        "spec": spec_value,
    }))
}

async fn completed_snapshot(
    snapshots: &Api<DynamicObject>,
    name: &str,
    deployment: &str,
) -> String {
    snapshots
        .create(
            &PostParams::default(),
            &snapshot(
                name,
                deployment,
                json!({"savepoint": {"alreadyExists": false, "disposeOnDelete": false}}),
            ),
        )
        .await
        .expect("create a snapshot");
    let mut seen = Vec::new();
    let done = wait_for(snapshots, name, "a completed snapshot", &mut seen, |o| {
        matches!(
            status_str(o, "/state"),
            "COMPLETED" | "FAILED" | "ABANDONED"
        )
    })
    .await;
    assert_eq!(status_str(&done, "/state"), "COMPLETED", "{done:#}");
    assert!(
        !status_str(&done, "/triggerId").is_empty()
            && !status_str(&done, "/resultTimestamp").is_empty()
    );
    status_str(&done, "/path").to_owned()
}

/// Create, back up, upgrade with a savepoint, suspend and resume.
async fn savepoint_upgrade(client: Client, flink: String) {
    let deployments = flink_deployments(&client).await;
    let snapshots = flink_snapshots(&client).await;
    let mut spec = basic_spec();
    spec["job"]["args"] = json!(["--rate-ms", "50"]);
    deployments
        .create(&PostParams::default(), &deployment("counter-a", spec))
        .await
        .expect("create");
    let mut seen = Vec::new();
    let stable = wait_stable(&deployments, "counter-a", &mut seen, None).await;
    let first_job = status_str(&stable, "/jobStatus/jobId").to_owned();
    let job = flink_get(&flink, &format!("/jobs/{first_job}")).await;
    assert_eq!(
        (job["name"].as_str(), job["state"].as_str()),
        (Some("counter-a"), Some("RUNNING")),
        "{job}"
    );

    // Backup: a FlinkStateSnapshot with a real savepoint that outlives the resource.
    let path = completed_snapshot(&snapshots, "backup-a", "counter-a").await;
    assert!(
        local_path(&path).join("_metadata").is_file(),
        "{path} is a savepoint on disk"
    );
    snapshots
        .delete("backup-a", &DeleteParams::default())
        .await
        .expect("delete the snapshot");
    wait_gone(&snapshots, "backup-a").await;
    assert!(
        local_path(&path).join("_metadata").is_file(),
        "disposeOnDelete: false keeps {path}"
    );

    // Upgrade: a spec change with upgradeMode savepoint.
    let patched = deployments
        .patch(
            "counter-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"job": {"args": ["--rate-ms", "40"]}}})),
        )
        .await
        .expect("patch the spec");
    assert_eq!(generation(&patched), 2);
    let mut seen = Vec::new();
    let upgraded = wait_stable(&deployments, "counter-a", &mut seen, Some(&first_job)).await;
    assert!(
        seen.contains(&"UPGRADING".to_owned()),
        "lifecycle states seen: {seen:?}"
    );
    assert_eq!(seen.last().map(String::as_str), Some("STABLE"));
    let savepoint = status_str(&upgraded, "/jobStatus/upgradeSavepointPath").to_owned();
    assert!(savepoint.contains("savepoint-"), "{upgraded:#}");
    // Snapshot resources on (the operator's default): the upgrade savepoint is recorded as a
    // FlinkStateSnapshot of trigger type UPGRADE, and the deprecated savepointInfo is not
    // updated.
    assert!(
        status_field(&upgraded, "/jobStatus/savepointInfo/lastSavepoint").is_none(),
        "{upgraded:#}"
    );
    let upgrade_snapshots = flink_snapshots(&client)
        .await
        .list(&ListParams::default().labels(
            "snapshot.trigger-type=UPGRADE,job-reference.kind=FlinkDeployment,job-reference.name=counter-a",
        ))
        .await
        .expect("list the snapshots");
    assert_eq!(upgrade_snapshots.items.len(), 1, "{upgrade_snapshots:#?}");
    assert_eq!(
        upgrade_snapshots.items[0].data["spec"]["savepoint"]["path"],
        savepoint.as_str()
    );
    assert_eq!(
        status_str(&upgraded, "/reconciliationStatus/state"),
        "DEPLOYED"
    );
    let old = flink_get(&flink, &format!("/jobs/{first_job}/status")).await;
    assert_eq!(
        old["status"], "FINISHED",
        "stop with savepoint ends the old job FINISHED"
    );
    let second_job = status_str(&upgraded, "/jobStatus/jobId").to_owned();
    assert_eq!(
        local_path(&restored_from(&flink, &second_job).await),
        local_path(&savepoint)
    );

    // Suspend (stop with savepoint) and resume from that savepoint.
    deployments
        .patch(
            "counter-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"job": {"state": "suspended"}}})),
        )
        .await
        .expect("suspend");
    let suspended = wait_for(&deployments, "counter-a", "SUSPENDED", &mut seen, |o| {
        status_str(o, "/lifecycleState") == "SUSPENDED"
            && status_field(o, "/observedGeneration") == o.pointer("/metadata/generation")
    })
    .await;
    assert_eq!(status_str(&suspended, "/jobStatus/state"), "FINISHED");
    let suspend_savepoint = status_str(&suspended, "/jobStatus/upgradeSavepointPath").to_owned();
    assert_ne!(suspend_savepoint, savepoint);
    deployments
        .patch(
            "counter-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"job": {"state": "running"}}})),
        )
        .await
        .expect("resume");
    let resumed = wait_stable(&deployments, "counter-a", &mut seen, Some(&second_job)).await;
    let third_job = status_str(&resumed, "/jobStatus/jobId").to_owned();
    assert_eq!(
        local_path(&restored_from(&flink, &third_job).await),
        local_path(&suspend_savepoint)
    );
}

async fn wait_gone(api: &Api<DynamicObject>, name: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        if let Err(kube::Error::Api(status)) = api.get(name).await
            && status.code == 404
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} was not deleted");
}

/// The documented restore procedure (seed 003): initialSavepointPath with a new redeploy nonce.
async fn redeploy_from_savepoint(client: Client, flink: String) {
    let deployments = flink_deployments(&client).await;
    let snapshots = flink_snapshots(&client).await;
    deployments
        .create(
            &PostParams::default(),
            &deployment("counter-b", basic_spec()),
        )
        .await
        .expect("create");
    let mut seen = Vec::new();
    let stable = wait_stable(&deployments, "counter-b", &mut seen, None).await;
    let first_job = status_str(&stable, "/jobStatus/jobId").to_owned();
    let path = completed_snapshot(&snapshots, "backup-b", "counter-b").await;

    let restore = json!({"spec": {"job": {
        "upgradeMode": "savepoint",
        "state": "running",
        "initialSavepointPath": path,
        "allowNonRestoredState": true,
        "savepointRedeployNonce": 1,
    }}});
    deployments
        .patch(
            "counter-b",
            &PatchParams::default(),
            &Patch::Merge(&restore),
        )
        .await
        .expect("patch the restore");
    let redeployed = wait_stable(&deployments, "counter-b", &mut seen, Some(&first_job)).await;
    let job = status_str(&redeployed, "/jobStatus/jobId").to_owned();
    assert_eq!(
        local_path(&restored_from(&flink, &job).await),
        local_path(&path)
    );
    assert_eq!(
        status_str(&redeployed, "/jobStatus/upgradeSavepointPath"),
        path
    );
    let old = flink_get(&flink, &format!("/jobs/{first_job}/status")).await;
    assert_eq!(old["status"], "CANCELED", "a redeploy cancels the old job");
}

/// A job that fails at runtime (`--fail-at-count`): the operator reports FAILED.
async fn failing_job(client: Client) {
    let deployments = flink_deployments(&client).await;
    let mut spec = basic_spec();
    spec["job"]["args"] = json!(["--rate-ms", "20", "--fail-at-count", "5"]);
    deployments
        .create(&PostParams::default(), &deployment("counter-c", spec))
        .await
        .expect("create");
    let mut seen = Vec::new();
    let failed = wait_for(
        &deployments,
        "counter-c",
        "FAILED with an error",
        &mut seen,
        |o| status_str(o, "/lifecycleState") == "FAILED" && !status_str(o, "/error").is_empty(),
    )
    .await;
    assert_eq!(status_str(&failed, "/jobStatus/state"), "FAILED");
    let error = status_str(&failed, "/error");
    assert!(error.contains("fail-at-count 5"), "{error}");
}

/// A last-state upgrade restores from a retained checkpoint; then an image that cannot be
/// pulled ends FAILED.
async fn last_state_then_broken_image(client: Client, flink: String) {
    let deployments = flink_deployments(&client).await;
    let mut spec = basic_spec();
    spec["job"]["upgradeMode"] = json!("last-state");
    deployments
        .create(&PostParams::default(), &deployment("counter-d", spec))
        .await
        .expect("create");
    let mut seen = Vec::new();
    let stable = wait_stable(&deployments, "counter-d", &mut seen, None).await;
    let first_job = status_str(&stable, "/jobStatus/jobId").to_owned();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while flink_get(&flink, &format!("/jobs/{first_job}/checkpoints"))
        .await
        .pointer("/latest/completed/external_path")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "no completed checkpoint of {first_job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    deployments
        .patch(
            "counter-d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"job": {"args": ["--keys", "4"]}}})),
        )
        .await
        .expect("patch");
    let upgraded = wait_stable(&deployments, "counter-d", &mut seen, Some(&first_job)).await;
    let job = status_str(&upgraded, "/jobStatus/jobId").to_owned();
    let restored = restored_from(&flink, &job).await;
    assert!(
        restored.contains(&format!("{first_job}/chk-")),
        "restored from {restored}"
    );
    // No snapshot was taken: the operator's placeholder, not a path.
    assert_eq!(
        status_str(&upgraded, "/jobStatus/upgradeSavepointPath"),
        "KUBERNETES_OPERATOR_LAST_STATE",
        "{upgraded:#}"
    );

    deployments
        .patch(
            "counter-d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": "flink:broken"}})),
        )
        .await
        .expect("patch the image");
    // As the real operator reports an image that cannot be pulled: the JobManager deployment
    // in ERROR, the lifecycle DEPLOYED (never FAILED).
    let failed = wait_for(
        &deployments,
        "counter-d",
        "a JobManager in ERROR",
        &mut seen,
        |o| {
            status_str(o, "/jobManagerDeploymentStatus") == "ERROR"
                && status_field(o, "/observedGeneration") == o.pointer("/metadata/generation")
        },
    )
    .await;
    assert_eq!(
        status_str(&failed, "/lifecycleState"),
        "DEPLOYED",
        "{failed:#}"
    );
    assert!(
        status_str(&failed, "/error").contains("ErrImagePull"),
        "{failed:#}"
    );
}

/// Runs a scenario; a panic carries the operator's events along.
async fn with_events(operator: &Operator, scenario: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(scenario).catch_unwind().await {
        eprintln!("operator events:\n{}", operator.events().join("\n"));
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_double_drives_a_real_flink() {
    let started = Instant::now();
    let sandbox = FlinkSandbox::start().unwrap_or_else(|e| panic!("no Flink sandbox: {e}"));
    eprintln!("sandbox ready after {:?}", started.elapsed());
    let cluster = cluster().await;
    let operator = Operator::start(&cluster.api, sandbox.env().clone());
    let flink = sandbox.env().url.clone();
    let client = &cluster.client;
    with_events(&operator, async {
        tokio::join!(
            savepoint_upgrade(client.clone(), flink.clone()),
            redeploy_from_savepoint(client.clone(), flink.clone()),
            failing_job(client.clone()),
            last_state_then_broken_image(client.clone(), flink.clone()),
        );
    })
    .await;
    eprintln!("scenarios done after {:?}", started.elapsed());
    eprintln!("operator events:\n{}", operator.events().join("\n"));
    // The operator never wrote through HTTP: the log holds the client's requests only.
    assert!(
        cluster
            .api
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/status"))
    );
}
