//! A test double of the Kubernetes API server, used because no real API server can run on
//! these machines. It serves plain HTTP on 127.0.0.1 at a random port (kube-rs accepts an
//! `http://` cluster URL in a kubeconfig) and answers what a kube-rs client uses for dynamic
//! resources, following the documented behaviour of the real server:
//!
//! - API concepts and conventions (kubernetes.io "Kubernetes API Concepts", the api-conventions
//!   document of kubernetes/community): errors are `Status` objects with the real reasons, codes
//!   and messages (`flinkdeployments.flink.apache.org "x" not found`, `... already exists`,
//!   `Operation cannot be fulfilled on ...: the object has been modified; please apply your
//!   changes to the latest version and try again`, `the server could not find the requested
//!   resource`, ...); `metadata.resourceVersion` is one global counter, bumped by every write
//!   that changes something (a write that changes nothing is not stored, as etcd3 storage
//!   skips identical updates); a PUT, PATCH or apply whose object carries a `resourceVersion`
//!   other than the stored one is answered 409 Conflict; lists carry the list
//!   `resourceVersion`; `metadata.uid`, `creationTimestamp` and `generation` are set by the
//!   server and cannot be changed by clients (a different `uid` is a failed precondition, 409).
//! - Custom resources (CustomResourceDefinition docs, "status subresource"): `generation`
//!   starts at 1 and increases only when something outside `metadata` and `status` changes;
//!   with the status subresource enabled, `status` is dropped on create, writes to the main
//!   resource ignore `status`, and `/status` writes change only `status`; a PUT needs
//!   `metadata.resourceVersion` (custom resources do not allow unconditional updates);
//!   DELETE answers the deleted object.
//! - Built-in kinds (ConfigMap, Namespace): no `generation`; an unconditional PUT is allowed;
//!   DELETE of a ConfigMap answers a `Status` with `status: Success`; list items carry no
//!   `apiVersion`/`kind` (as the real server answers for built-in lists).
//! - PATCH (kubectl "Update API Objects in Place Using kubectl patch", RFC 7386, RFC 6902):
//!   `application/merge-patch+json`; `application/json-patch+json` with add, remove, replace,
//!   move, copy and test, where any failing operation (a failed `test`, a missing path) is
//!   answered 422 Invalid with the generic message the real server gives
//!   (`the server rejected our request due to an error in our request`);
//!   `application/strategic-merge-patch+json` is answered 415 UnsupportedMediaType for custom
//!   resources, as the real server does, and applied as a merge patch for built-in kinds (the
//!   two registered ones have no lists with merge keys, where the two would differ).
//! - Server-side apply (`application/apply-patch+yaml`, "Server-Side Apply" docs): the
//!   `fieldManager` query parameter is required (422 otherwise); an apply creates the object
//!   when absent (201); otherwise the applied fields are merged in (maps merged, lists and
//!   scalars replaced: the atomic default for custom resources without list markers), fields
//!   the same manager applied before and no longer applies are removed, and
//!   `metadata.managedFields` gets an `Apply` entry per manager. A conflict is reported (409,
//!   `Apply failed with N conflict(s): conflict with "m" using v: .spec.x`) when another
//!   manager owns a field with a different value, unless `force=true`: an apply manager, or
//!   an `Update` manager, which a PUT or a merge or JSON patch makes the owner of the fields it
//!   changed (the `fieldManager` parameter, else the user agent's product, as `kubectl-edit`;
//!   in-process writes are recorded only through [`ApiStore::update_object_as`]).
//! - Discovery: `GET /version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//!   `/apis/{group}/{version}` (APIResourceList with the `/status` subresource entries), and
//!   the aggregated discovery documents (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2) on
//!   `/api` and `/apis` when the `Accept` header asks for them, as `Discovery::run_aggregated`
//!   does; `Discovery::run` and `discovery::pinned_kind` use the plain documents.
//! - Authentication: a bearer token other than the double's answers 401 `Unauthorized` on
//!   every path; no token at all is the anonymous user, who may read `/version` and the
//!   health paths only (403 Forbidden elsewhere). [`KubeApi::start_tls`] serves HTTPS with a
//!   server certificate signed by a CA of its own, and accepts a client certificate that CA
//!   signed as an authenticated user (kube-apiserver's x509 authenticator, `--client-ca-file`,
//!   tried before tokens; a client without a certificate still uses its token). Kubeconfigs
//!   for it ([`KubeApi::write_kubeconfig_for`]) name the CA (`certificate-authority`) and a
//!   user with a token, the client certificate and key, or an exec credential plugin
//!   (`client.authentication.k8s.io/v1beta1`), which the client runs for its token.
//! - Namespaces: creating a namespaced object in a namespace that does not exist answers 404
//!   `namespaces "x" not found` (the NamespaceLifecycle admission). `default` exists from the
//!   start, and `write_kubeconfig` creates the namespaces its contexts name.
//! - Finalizers: deleting an object with `metadata.finalizers` sets `deletionTimestamp` and
//!   answers 202; the object goes away when a write leaves its finalizers empty (no new
//!   finalizer may be added meanwhile: 422).
//! - Lists and collections: `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`),
//!   `fieldSelector` on `metadata.name`/`metadata.namespace` (others: 400 `field label not
//!   supported`), `limit` with a `continue` token; all-namespaces lists; DELETE on a
//!   collection (deletecollection) answers the list of deleted objects. `dryRun=All` answers
//!   the outcome of a write without storing it. DELETE honours `preconditions` (uid,
//!   resourceVersion) in its DeleteOptions body.
//!
//! Deliberately not implemented: watch (`?watch=true` is answered 405 MethodNotAllowed with a
//! message saying so; poll instead), `resourceVersion` semantics on reads (every read answers
//! the latest state), protobuf and YAML responses, field validation
//! (`fieldValidation` is ignored: unknown fields are kept, where the real server prunes them),
//! schema validation beyond the types and enums of the `spec` fields the kinds declare (see
//! [`flink_deployment_spec_schema`]; a breach answers 422 `Invalid` with the validator's
//! wording), defaulting of custom resources,
//! admission webhooks, RBAC beyond the token check, graceful deletion and garbage collection
//! (deleting a Namespace removes it and its objects at once, without a Terminating phase),
//! `generateName` collisions, and the scale subresource.
//!
//! - Transient failures, injected per object and method ([`ApiStore::inject_faults`], GET
//!   included): 429 `TooManyRequests` with `Retry-After` and `details.retryAfterSeconds` (API
//!   Priority and Fairness), 500 `InternalError` (`Internal error occurred: etcdserver: request
//!   timed out`), 503 `ServiceUnavailable`, and a connection closed after the request without
//!   an answer (an API server restart, a dropped port-forward); logged with status 0.
//!
//! Test helpers: [`KubeApi::start`], [`KubeApi::url`], [`KubeApi::token`],
//! [`KubeApi::write_kubeconfig`] (format in its doc: one cluster with the http URL, one user
//! with the double's bearer token, one context per `(name, namespace)`, the first current),
//! [`ApiStore::inject_conflicts`] (the next n PUT/PATCH requests on an object answer 409, as if
//! a concurrent writer got there first), the request log ([`ApiStore::requests`]: method,
//! path, query, content type, accept, body, answered status) and in-process access
//! ([`ApiStore::get_object`], [`ApiStore::list_objects`], [`ApiStore::create_object`],
//! [`ApiStore::update_object`], [`ApiStore::put_status`], [`ApiStore::delete_object`]) that
//! goes through the same rules as HTTP requests but is unconditional, not logged and not
//! subject to injected conflicts. More kinds: [`ApiStore::register`] with a [`ResourceKind`].
//!
//! One thread accepts; each connection gets its own thread, serves one request and closes
//! (`Connection: close`). Sockets have read and write timeouts, so nothing hangs; request
//! handling returns errors instead of panicking (a bug answers 500 rather than killing the
//! thread) and the store's lock survives poisoning.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// How long the server waits for a client to send or take something.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Request bodies larger than this are refused (the real limit is 3 MiB for most requests).
const MAX_BODY: usize = 16 << 20;
/// The newest entries of the request log that are kept.
const MAX_LOGGED: usize = 10_000;
/// What `GET /version` reports.
const SERVER_MINOR: &str = "34";

// ---------------------------------------------------------------------------------------------
// Kinds

/// A kind the double serves. Built with [`ResourceKind::custom`] (a custom resource, as a CRD
/// would define it) or [`ResourceKind::built_in`], then registered with
/// [`ApiStore::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The resource name in paths: `flinkdeployments`.
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    /// Whether `/status` is a subresource (writes to the main resource then ignore status).
    pub status_subresource: bool,
    /// Served from a CustomResourceDefinition: tracks `generation`, refuses strategic merge
    /// patches (415), needs `resourceVersion` on PUT, and DELETE answers the object.
    pub custom: bool,
    /// The CRD's OpenAPI v3 schema of `spec` (the subset [`schema_violations`] checks), or
    /// none: every spec is accepted.
    pub spec_schema: Option<Box<Value>>,
}

impl ResourceKind {
    /// A namespaced custom resource with the status subresource enabled.
    pub fn custom(group: &str, version: &str, kind: &str, plural: &str) -> ResourceKind {
        ResourceKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            short_names: Vec::new(),
            namespaced: true,
            status_subresource: true,
            custom: true,
            spec_schema: None,
        }
    }

    /// Checks `spec` against this OpenAPI v3 schema on every write of the main resource.
    pub fn with_spec_schema(mut self, schema: Value) -> ResourceKind {
        self.spec_schema = Some(Box::new(schema));
        self
    }

    /// A built-in kind (`group` empty for the core group), namespaced, without a status
    /// subresource.
    pub fn built_in(group: &str, version: &str, kind: &str, plural: &str) -> ResourceKind {
        ResourceKind {
            custom: false,
            status_subresource: false,
            ..ResourceKind::custom(group, version, kind, plural)
        }
    }

    pub fn cluster_scoped(mut self) -> ResourceKind {
        self.namespaced = false;
        self
    }

    pub fn with_status_subresource(mut self, enabled: bool) -> ResourceKind {
        self.status_subresource = enabled;
        self
    }

    pub fn with_short_names(mut self, names: &[&str]) -> ResourceKind {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// `flink.apache.org/v1beta1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-qualified resource, as error messages name it: `flinkdeployments.flink.apache.org`,
    /// `configmaps`.
    pub fn group_resource(&self) -> String {
        qualify(&self.plural, &self.group)
    }

    /// The group-qualified kind, as validation messages name it: `FlinkDeployment.flink.apache.org`.
    pub fn group_kind(&self) -> String {
        qualify(&self.kind, &self.group)
    }

    /// Whether `name` names this kind: its kind, plural, singular or a short name (any case).
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.kind.to_ascii_lowercase() == name
            || self.plural == name
            || self.singular == name
            || self.short_names.contains(&name)
    }

    fn tracks_generation(&self) -> bool {
        self.custom
    }

    fn allows_unconditional_update(&self) -> bool {
        !self.custom
    }

    fn answers_deleted_object(&self) -> bool {
        self.custom || self.is_namespace()
    }

    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    fn patch_types(&self) -> &'static [&'static str] {
        if self.custom {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        }
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{group}")
    }
}

/// FlinkDeployment and FlinkStateSnapshot (flink.apache.org/v1beta1, namespaced, with the
/// status subresource, short names as in the operator's CRDs), ConfigMap and Namespace.
pub fn default_kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind::custom(
            "flink.apache.org",
            "v1beta1",
            "FlinkDeployment",
            "flinkdeployments",
        )
        .with_short_names(&["flinkdep"])
        .with_spec_schema(flink_deployment_spec_schema()),
        ResourceKind::custom(
            "flink.apache.org",
            "v1beta1",
            "FlinkStateSnapshot",
            "flinkstatesnapshots",
        )
        .with_short_names(&["flinksnp"])
        .with_spec_schema(flink_state_snapshot_spec_schema()),
        ResourceKind::built_in("", "v1", "ConfigMap", "configmaps").with_short_names(&["cm"]),
        // Where a FlinkDeployment's checkpoints and savepoints live when it mounts a volume;
        // `status.phase` (Pending, Bound, Lost) is written through the status subresource.
        ResourceKind::built_in("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            .with_status_subresource(true)
            .with_short_names(&["pvc"]),
        ResourceKind::built_in("", "v1", "Namespace", "namespaces")
            .cluster_scoped()
            .with_status_subresource(true)
            .with_short_names(&["ns"]),
    ]
}

/// The fields of the FlinkDeployment CRD's `spec` that the runbooks and tests write, with
/// their types and enums as in the operator's CRD (`flinkdeployments.flink.apache.org-v1.yml`
/// of flink-kubernetes-operator; `flinkVersion` up to v2_3, for the Flink the tests run).
/// Fields not listed are accepted as they are.
pub fn flink_deployment_spec_schema() -> Value {
    let versions: Vec<String> = (13..=20)
        .map(|minor| format!("v1_{minor}"))
        .chain((0..=3).map(|minor| format!("v2_{minor}")))
        .collect();
    json!({
        "type": "object",
        "properties": {
            "image": {"type": "string"},
            "imagePullPolicy": {"type": "string"},
            "serviceAccount": {"type": "string"},
            "flinkVersion": {"type": "string", "enum": versions},
            "restartNonce": {"type": "integer", "format": "int64"},
            "flinkConfiguration": {"type": "object", "additionalProperties": {"type": "string"}},
            "mode": {"type": "string", "enum": ["native", "standalone"]},
            "job": {
                "type": "object",
                "properties": {
                    "jarURI": {"type": "string"},
                    "parallelism": {"type": "integer", "format": "int32"},
                    "entryClass": {"type": "string"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "state": {"type": "string", "enum": ["running", "suspended"]},
                    "savepointTriggerNonce": {"type": "integer", "format": "int64"},
                    "initialSavepointPath": {"type": "string"},
                    "checkpointTriggerNonce": {"type": "integer", "format": "int64"},
                    "upgradeMode": {"type": "string", "enum": ["last-state", "savepoint", "stateless"]},
                    "allowNonRestoredState": {"type": "boolean"},
                    "savepointRedeployNonce": {"type": "integer", "format": "int64"},
                },
            },
        },
    })
}

/// The FlinkStateSnapshot CRD's `spec` (`flinkstatesnapshots.flink.apache.org-v1.yml`).
pub fn flink_state_snapshot_spec_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "backoffLimit": {"type": "integer", "format": "int32"},
            "jobReference": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["FlinkDeployment", "FlinkSessionJob"]},
                    "name": {"type": "string"},
                },
            },
            "savepoint": {
                "type": "object",
                "properties": {
                    "alreadyExists": {"type": "boolean"},
                    "disposeOnDelete": {"type": "boolean"},
                    "formatType": {"type": "string", "enum": ["CANONICAL", "NATIVE", "UNKNOWN"]},
                    "path": {"type": "string"},
                },
            },
            "checkpoint": {"type": "object"},
        },
    })
}

/// What the API server's OpenAPI validation of a custom resource says about `value` at
/// `field` (`spec.job.parallelism`): one `(field, cause reason, detail)` per problem, worded
/// as the apiextensions validator words them (`Unsupported value: "x": supported values:
/// ...`, `Invalid value: "string": spec.x in body must be of type integer: "string"`).
fn schema_violations(
    schema: &Value,
    value: &Value,
    field: &str,
    out: &mut Vec<(String, &'static str, String)>,
) {
    let json_type = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let found = json_type(value);
        let fits = found == wanted || (wanted == "number" && found == "integer");
        if !fits {
            out.push((
                field.to_owned(),
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: \"{found}\": {field} in body must be of type {wanted}: \"{found}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let mut names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        names.sort();
        out.push((
            field.to_owned(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {value}: supported values: {}",
                names.join(", ")
            ),
        ));
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, item) in map {
                let place = format!("{field}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(inner), _) | (None, Some(inner)) => {
                        schema_violations(inner, item, &place, out);
                    }
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(inner) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    schema_violations(inner, item, &format!("{field}[{index}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// 422 Invalid when the object's `spec` breaks its kind's schema (all problems in one answer,
/// as the real server lists them).
fn check_spec_schema(kind: &ResourceKind, object: &Value) -> Result<(), ApiError> {
    let (Some(schema), Some(spec)) = (&kind.spec_schema, object.get("spec")) else {
        return Ok(());
    };
    let mut problems = Vec::new();
    schema_violations(schema, spec, "spec", &mut problems);
    problems.sort();
    if problems.is_empty() {
        return Ok(());
    }
    let name = meta_str(object, "name").unwrap_or_default().to_owned();
    let listed: Vec<String> = problems
        .iter()
        .map(|(field, _, detail)| format!("{field}: {detail}"))
        .collect();
    let summary = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let causes: Vec<Value> = problems
        .iter()
        .map(|(field, reason, detail)| json!({"reason": reason, "message": detail, "field": field}))
        .collect();
    Err(ApiError::new(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {summary}", kind.group_kind()),
    )
    .with_details(json!({
        "name": name,
        "group": kind.group,
        "kind": kind.kind,
        "causes": causes,
    })))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A failure, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (`name`, `group`, `kind`, `causes`); `{}` when none.
    pub details: Box<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::new(json!({})),
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Box::new(details);
        self
    }

    /// The `Status` object the server answers.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": *self.details,
            "code": self.code,
        })
    }

    fn resource_details(kind: &ResourceKind, name: &str) -> Value {
        // The real server puts the resource (plural) into `details.kind` here.
        let mut details = Map::new();
        details.insert("name".into(), json!(name));
        if !kind.group.is_empty() {
            details.insert("group".into(), json!(kind.group));
        }
        details.insert("kind".into(), json!(kind.plural));
        Value::Object(details)
    }

    fn not_found(kind: &ResourceKind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.group_resource()),
        )
        .with_details(ApiError::resource_details(kind, name))
    }

    fn namespace_not_found(namespace: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    fn already_exists(kind: &ResourceKind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.group_resource()),
        )
        .with_details(ApiError::resource_details(kind, name))
    }

    /// A stale `resourceVersion` (or an injected concurrent write).
    fn conflict(kind: &ResourceKind, name: &str) -> ApiError {
        ApiError::precondition(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    fn precondition(kind: &ResourceKind, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                kind.group_resource()
            ),
        )
        .with_details(ApiError::resource_details(kind, name))
    }

    /// 422 Invalid for one field, as `errors.NewInvalid` words it.
    fn invalid(
        group_kind: &str,
        group: &str,
        kind: &str,
        name: &str,
        field: &str,
        cause: &'static str,
        detail: &str,
    ) -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            format!("{group_kind} \"{name}\" is invalid: {field}: {detail}"),
        )
        .with_details(json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": cause, "message": detail, "field": field}],
        }))
    }

    fn invalid_object(
        kind: &ResourceKind,
        name: &str,
        field: &str,
        cause: &'static str,
        detail: &str,
    ) -> ApiError {
        ApiError::invalid(
            &kind.group_kind(),
            &kind.group,
            &kind.kind,
            name,
            field,
            cause,
            detail,
        )
    }

    fn invalid_patch_options(field: &str, cause: &'static str, detail: &str) -> ApiError {
        ApiError::invalid(
            "PatchOptions.meta.k8s.io",
            "meta.k8s.io",
            "PatchOptions",
            "",
            field,
            cause,
            detail,
        )
    }

    /// What a JSON patch that cannot be applied is answered with.
    fn patch_not_applied() -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    fn unknown_resource() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    fn method_not_allowed(message: &str) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    fn forbidden(message: String) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    fn internal(message: &str) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Injected faults

/// A transient failure the double answers instead of serving a request, as a real cluster
/// does now and then; see [`ApiStore::inject_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 `TooManyRequests` with a `Retry-After` header and `details.retryAfterSeconds`, as
    /// API Priority and Fairness (and the older max-in-flight filter) answers a request it
    /// sheds: message `Too many requests, please try again later.` (kubernetes.io "API
    /// Priority and Fairness", apiserver `tooManyRequests`).
    TooManyRequests { retry_after_seconds: u32 },
    /// 500 `InternalError`, as the server answers when its storage fails a request
    /// (`Internal error occurred: etcdserver: request timed out`).
    InternalError,
    /// 503 `ServiceUnavailable`, as an API server that is shutting down or not yet ready
    /// (or a load balancer in front of one) answers.
    ServiceUnavailable,
    /// The connection is closed after the request is read, without an answer: an API
    /// server restart, a load balancer's idle cut, a dropped `kubectl port-forward`.
    DropConnection,
}

impl Fault {
    fn response(&self) -> HttpResponse {
        match self {
            Fault::TooManyRequests {
                retry_after_seconds,
            } => {
                let error = ApiError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                )
                .with_details(json!({"retryAfterSeconds": retry_after_seconds}));
                let mut response = HttpResponse::error(&error);
                response
                    .extra_headers
                    .push(("Retry-After", retry_after_seconds.to_string()));
                response
            }
            Fault::InternalError => HttpResponse::error(
                &ApiError::internal("etcdserver: request timed out").with_details(
                    json!({"causes": [{"message": "etcdserver: request timed out"}]}),
                ),
            ),
            Fault::ServiceUnavailable => HttpResponse::error(&ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            )),
            Fault::DropConnection => unreachable!("a dropped connection has no response"),
        }
    }
}

/// A fault waiting for a request on one object.
#[derive(Debug, Clone)]
struct InjectedFault {
    key: ObjectKey,
    /// Upper-case method, or any method.
    method: Option<String>,
    fault: Fault,
}

// ---------------------------------------------------------------------------------------------
// The request log

/// A request as the double received it, with the status it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string (without `?`), as sent.
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: String,
    pub status: u16,
}

// ---------------------------------------------------------------------------------------------
// The server

/// The running double. Dropping it stops the server; [`ApiStore`] handles (from
/// [`KubeApi::store`]) keep the objects reachable in-process after that.
pub struct KubeApi {
    addr: SocketAddr,
    token: String,
    store: ApiStore,
    stop: Arc<AtomicBool>,
    tls: Option<TlsFiles>,
}

/// The files of a double that serves HTTPS ([`KubeApi::start_tls`]), as PEM: the CA that
/// signed both the server's and the client's certificate, and the client's certificate and
/// key (an x509 user, as `kubeadm` writes for an admin).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub client_certificate: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
}

/// How the user of a kubeconfig written by [`KubeApi::kubeconfig_yaml`] authenticates.
#[derive(Debug, Clone)]
pub enum KubeconfigUser {
    /// `token:` a bearer token.
    Token(String),
    /// `client-certificate` / `client-key`: the client certificate of a TLS double.
    ClientCertificate,
    /// `exec:` a credential plugin (`client.authentication.k8s.io/v1beta1`), run by the
    /// client, that prints an `ExecCredential` with the token.
    Exec { command: String, args: Vec<String> },
}

impl KubeApi {
    /// Starts a double with [`default_kinds`] and the `default` namespace, serving HTTP.
    pub fn start() -> KubeApi {
        Self::start_with(None)
    }

    /// As [`KubeApi::start`], serving HTTPS as a real API server does: a server certificate
    /// for 127.0.0.1 signed by a CA of its own, and client certificates signed by that CA
    /// accepted as an authenticated (x509) user; a client without one authenticates with its
    /// bearer token as before (client certificates are optional, as with kube-apiserver's
    /// `--client-ca-file`). The CA and a client certificate and key are written to `dir`.
    pub fn start_tls(dir: &Path) -> KubeApi {
        let (config, files) = tls_config(dir);
        Self::start_with(Some((Arc::new(config), files)))
    }

    fn start_with(tls: Option<(Arc<rustls::ServerConfig>, TlsFiles)>) -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let token = format!("kube-double-{:032x}", rand::random::<u128>());
        let store = ApiStore::new(default_kinds());
        store.ensure_namespace("default");
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            store: store.clone(),
            token: token.clone(),
        };
        let stopping = Arc::clone(&stop);
        let server_tls = tls.as_ref().map(|(config, _)| Arc::clone(config));
        thread::spawn(move || {
            let server = Arc::new(server);
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let server = Arc::clone(&server);
                let tls = server_tls.clone();
                thread::spawn(move || match tls {
                    Some(config) => server.serve_tls(stream, config),
                    None => server.serve(stream),
                });
            }
        });
        KubeApi {
            addr,
            token,
            store,
            stop,
            tls: tls.map(|(_, files)| files),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS double), the cluster's server URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA and client certificate files of a TLS double.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The bearer token the double accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A handle for in-process access that outlives nothing but the objects.
    pub fn store(&self) -> ApiStore {
        self.store.clone()
    }

    /// Writes a kubeconfig for this double: one cluster `kube-double` (`server:` the http URL),
    /// one user `kube-double-user` with the double's bearer token, and one context per
    /// `(name, namespace)` pair (cluster `kube-double`, user `kube-double-user`, that default
    /// namespace); the first pair is the `current-context`. The namespaces are created in the
    /// double when missing.
    pub fn write_kubeconfig(&self, path: &Path, contexts: &[(&str, &str)]) -> std::io::Result<()> {
        self.write_kubeconfig_with_token(path, contexts, &self.token)
    }

    /// As [`KubeApi::write_kubeconfig`] with another token (to see 401 Unauthorized).
    pub fn write_kubeconfig_with_token(
        &self,
        path: &Path,
        contexts: &[(&str, &str)],
        token: &str,
    ) -> std::io::Result<()> {
        self.write_kubeconfig_for(path, contexts, &KubeconfigUser::Token(token.to_owned()))
    }

    /// As [`KubeApi::write_kubeconfig`] with a user that authenticates another way.
    pub fn write_kubeconfig_for(
        &self,
        path: &Path,
        contexts: &[(&str, &str)],
        user: &KubeconfigUser,
    ) -> std::io::Result<()> {
        for (_, namespace) in contexts {
            self.store.ensure_namespace(namespace);
        }
        std::fs::write(path, self.kubeconfig_yaml_for(contexts, user))
    }

    /// The kubeconfig text [`KubeApi::write_kubeconfig_with_token`] writes.
    pub fn kubeconfig_yaml(&self, contexts: &[(&str, &str)], token: &str) -> String {
        self.kubeconfig_yaml_for(contexts, &KubeconfigUser::Token(token.to_owned()))
    }

    /// The kubeconfig text for a user: a TLS double's cluster names its CA
    /// (`certificate-authority`).
    pub fn kubeconfig_yaml_for(&self, contexts: &[(&str, &str)], user: &KubeconfigUser) -> String {
        // Values are written as JSON strings, which YAML reads as double-quoted scalars.
        let q = |s: &str| Value::from(s).to_string();
        let path = |p: &Path| q(&p.display().to_string());
        let mut yaml = String::from("apiVersion: v1\nkind: Config\npreferences: {}\n");
        yaml.push_str(&format!(
            "clusters:\n- name: kube-double\n  cluster:\n    server: {}\n",
            q(&self.url())
        ));
        if let Some(tls) = &self.tls {
            yaml.push_str(&format!("    certificate-authority: {}\n", path(&tls.ca)));
        }
        yaml.push_str("users:\n- name: kube-double-user\n  user:\n");
        match user {
            KubeconfigUser::Token(token) => yaml.push_str(&format!("    token: {}\n", q(token))),
            KubeconfigUser::ClientCertificate => {
                let tls = self
                    .tls
                    .as_ref()
                    .expect("client certificates need a TLS double (KubeApi::start_tls)");
                yaml.push_str(&format!(
                    "    client-certificate: {}\n    client-key: {}\n",
                    path(&tls.client_certificate),
                    path(&tls.client_key)
                ));
            }
            KubeconfigUser::Exec { command, args } => {
                yaml.push_str(&format!(
                    "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n      args: {}\n      interactiveMode: Never\n",
                    q(command),
                    Value::from(args.clone())
                ));
            }
        }
        yaml.push_str("contexts:\n");
        for (name, namespace) in contexts {
            yaml.push_str(&format!(
                "- name: {}\n  context:\n    cluster: kube-double\n    user: kube-double-user\n    namespace: {}\n",
                q(name),
                q(namespace)
            ));
        }
        if let Some((first, _)) = contexts.first() {
            yaml.push_str(&format!("current-context: {}\n", q(first)));
        }
        yaml
    }
}

impl Deref for KubeApi {
    type Target = ApiStore;

    fn deref(&self) -> &ApiStore {
        &self.store
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Bounds a connection's reads and writes; answers its local address, for messages.
fn prepare(stream: &TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// A CA of the test's own, a server certificate for 127.0.0.1 and `localhost` and a client
/// certificate (CN `runbook-test`, O `system:masters`, as kubeadm's admin), both signed by it;
/// the CA and the client's certificate and key are written to `dir` as PEM. The server asks
/// for a client certificate and verifies one against the CA, but accepts a client without one.
fn tls_config(dir: &Path) -> (rustls::ServerConfig, TlsFiles) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-double-ca");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("a server key");
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server parameters");
    let server = server_params
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");

    let client_key = KeyPair::generate().expect("a client key");
    let mut client_params =
        CertificateParams::new(Vec::<String>::new()).expect("client parameters");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "runbook-test");
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("the client certificate");

    let files = TlsFiles {
        ca: dir.join("kube-double-ca.pem"),
        client_certificate: dir.join("kube-double-client.pem"),
        client_key: dir.join("kube-double-client-key.pem"),
    };
    std::fs::write(&files.ca, ca.pem()).expect("write the CA");
    std::fs::write(&files.client_certificate, client.pem()).expect("write the client certificate");
    std::fs::write(&files.client_key, client_key.serialize_pem()).expect("write the client key");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("the CA as a root");
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .expect("a client certificate verifier");
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("the server TLS configuration");
    (config, files)
}

// ---------------------------------------------------------------------------------------------
// In-process access

/// The double's objects, shared by the HTTP server and in-process users (tests, the operator
/// double). Cheap to clone.
#[derive(Clone)]
pub struct ApiStore {
    state: Arc<Mutex<State>>,
}

impl ApiStore {
    fn new(kinds: Vec<ResourceKind>) -> ApiStore {
        ApiStore {
            state: Arc::new(Mutex::new(State {
                kinds,
                objects: BTreeMap::new(),
                resource_version: 0,
                injected_conflicts: HashMap::new(),
                injected_faults: Vec::new(),
                requests: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the server down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves another kind (replacing one with the same group, version and plural).
    pub fn register(&self, kind: ResourceKind) {
        let mut state = self.lock();
        state.kinds.retain(|k| {
            !(k.group == kind.group && k.version == kind.version && k.plural == kind.plural)
        });
        state.kinds.push(kind);
    }

    /// The registered kinds.
    pub fn kinds(&self) -> Vec<ResourceKind> {
        self.lock().kinds.clone()
    }

    /// Creates the namespace when it does not exist.
    pub fn ensure_namespace(&self, name: &str) {
        let mut state = self.lock();
        let Some(kind) = state.kinds.iter().find(|k| k.is_namespace()).cloned() else {
            return;
        };
        if state.objects.contains_key(&ObjectKey::new(&kind, "", name)) {
            return;
        }
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let _ = state.create(&kind, None, namespace, &WriteOptions::default());
    }

    /// The next `n` PUT or PATCH requests (any patch type, main resource or `/status`) on this
    /// object answer 409 Conflict, as if another writer had changed it first. `kind` is a kind
    /// name, plural or short name; `namespace` is empty for cluster-scoped kinds.
    pub fn inject_conflicts(&self, kind: &str, namespace: &str, name: &str, n: u32) {
        let mut state = self.lock();
        let Some(kind) = state.kind_named(kind) else {
            return;
        };
        let key = ObjectKey::new(&kind, namespace, name);
        if n == 0 {
            state.injected_conflicts.remove(&key);
        } else {
            state.injected_conflicts.insert(key, n);
        }
    }

    /// The next requests on this object (main resource or `/status`) whose method is `method`
    /// (any method when `None`: GET, PUT, PATCH, DELETE, POST) are answered with `faults`, one
    /// request each, in order, instead of being served; later requests are served as usual.
    /// `kind` is a kind name, plural or short name; `namespace` is empty for cluster-scoped
    /// kinds. Faults injected earlier for the same object and method are used up first.
    pub fn inject_faults(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        method: Option<&str>,
        faults: &[Fault],
    ) {
        let mut state = self.lock();
        let Some(kind) = state.kind_named(kind) else {
            return;
        };
        let key = ObjectKey::new(&kind, namespace, name);
        for fault in faults {
            state.injected_faults.push(InjectedFault {
                key: key.clone(),
                method: method.map(str::to_ascii_uppercase),
                fault: fault.clone(),
            });
        }
    }

    /// How many injected faults are still to be answered.
    pub fn faults_left(&self) -> usize {
        self.lock().injected_faults.len()
    }

    /// The requests received so far (oldest first).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// One object, as a GET would answer it.
    pub fn get_object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        let kind = state.kind_named(kind)?;
        state
            .objects
            .get(&ObjectKey::new(&kind, namespace, name))
            .map(|stored| stored.object.clone())
    }

    /// The objects of a kind, in one namespace or (None) all, ordered by namespace and name.
    pub fn list_objects(&self, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.lock();
        let Some(kind) = state.kind_named(kind) else {
            return Vec::new();
        };
        state
            .objects_of(&kind, namespace)
            .map(|(_, stored)| stored.object.clone())
            .collect()
    }

    /// Creates an object as a POST would (namespace from its metadata, else `default`).
    pub fn create_object(&self, kind: &str, object: Value) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let kind = state
            .kind_named(kind)
            .ok_or_else(ApiError::unknown_resource)?;
        let namespace = kind.namespaced.then(|| {
            meta_str(&object, "namespace")
                .unwrap_or("default")
                .to_owned()
        });
        state.create(
            &kind,
            namespace.as_deref(),
            object,
            &WriteOptions::default(),
        )
    }

    /// Changes an object atomically with main-resource rules (status kept for kinds with the
    /// status subresource, generation bumped on spec changes, finalizer removal completing a
    /// deletion), unconditionally (no resourceVersion precondition). Answers the stored object.
    /// `change` runs under the store's lock: it must not use the store.
    pub fn update_object(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        self.modify(kind, namespace, name, Target::Main, change)
    }

    /// Replaces `.status` (through the status subresource when the kind has one),
    /// unconditionally. Answers the stored object.
    pub fn put_status(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        self.modify(kind, namespace, name, Target::Status, |object| {
            if let Some(object) = object.as_object_mut() {
                object.insert("status".into(), status);
            }
        })
    }

    /// Deletes an object as a DELETE would (finalizers respected).
    pub fn delete_object(&self, kind: &str, namespace: &str, name: &str) -> Result<(), ApiError> {
        let mut state = self.lock();
        let kind = state
            .kind_named(kind)
            .ok_or_else(ApiError::unknown_resource)?;
        let key = ObjectKey::new(&kind, namespace, name);
        state
            .delete(&kind, &key, &Value::Null, &WriteOptions::default())
            .map(|_| ())
    }

    /// As [`ApiStore::update_object`], recorded as an `Update` by `manager` in managedFields
    /// (as `kubectl edit` or the operator writing the spec would be).
    pub fn update_object_as(
        &self,
        manager: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let opts = WriteOptions {
            updater: Some(manager.to_owned()),
            ..WriteOptions::default()
        };
        self.modify_with(kind, namespace, name, Target::Main, &opts, change)
    }

    fn modify(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        target: Target,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        self.modify_with(
            kind,
            namespace,
            name,
            target,
            &WriteOptions::default(),
            change,
        )
    }

    fn modify_with(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        target: Target,
        opts: &WriteOptions,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let kind = state
            .kind_named(kind)
            .ok_or_else(ApiError::unknown_resource)?;
        let key = ObjectKey::new(&kind, namespace, name);
        let mut object = state
            .objects
            .get(&key)
            .map(|stored| stored.object.clone())
            .ok_or_else(|| ApiError::not_found(&kind, name))?;
        change(&mut object);
        state.commit(&kind, &key, object, target, opts, None)
    }
}

// ---------------------------------------------------------------------------------------------
// The store's rules

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ObjectKey {
    group: String,
    plural: String,
    /// Empty for cluster-scoped objects.
    namespace: String,
    name: String,
}

impl ObjectKey {
    fn new(kind: &ResourceKind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: kind.group.clone(),
            plural: kind.plural.clone(),
            namespace: if kind.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }
}

/// A path of object keys: `["spec", "job", "args"]`.
type FieldPath = Vec<String>;

/// What one manager set through server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApplyRecord {
    fields: BTreeSet<FieldPath>,
    time: String,
}

/// The owner of an apply record: manager name, and whether it applied to `/status`.
type Applier = (String, bool);

struct Stored {
    object: Value,
    appliers: BTreeMap<Applier, ApplyRecord>,
    /// The fields each manager last changed through PUT, merge or JSON patch (`Update`
    /// entries of `managedFields`).
    updaters: BTreeMap<Applier, ApplyRecord>,
}

/// Whether a write goes to the main resource or to the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Main,
    Status,
}

/// The query parameters of writes that matter here.
#[derive(Debug, Clone, Default)]
struct WriteOptions {
    dry_run: bool,
    /// The `fieldManager` query parameter (apply needs one).
    field_manager: Option<String>,
    /// Who is recorded for a PUT or patch: `fieldManager`, else the user agent's product
    /// (`kubectl-edit`, `kube-rs`...), as the real server derives it.
    updater: Option<String>,
    force: bool,
}

struct State {
    kinds: Vec<ResourceKind>,
    objects: BTreeMap<ObjectKey, Stored>,
    resource_version: u64,
    injected_conflicts: HashMap<ObjectKey, u32>,
    injected_faults: Vec<InjectedFault>,
    requests: Vec<LoggedRequest>,
}

impl State {
    fn kind_named(&self, name: &str) -> Option<ResourceKind> {
        self.kinds.iter().find(|k| k.is_named(name)).cloned()
    }

    fn objects_of<'a>(
        &'a self,
        kind: &'a ResourceKind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Stored)> + 'a {
        self.objects.iter().filter(move |(key, _)| {
            key.group == kind.group
                && key.plural == kind.plural
                && namespace.is_none_or(|ns| !kind.namespaced || key.namespace == ns)
        })
    }

    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Takes the first injected fault for a request on this object with this method.
    fn take_injected_fault(&mut self, key: &ObjectKey, method: &str) -> Option<Fault> {
        let index = self.injected_faults.iter().position(|injected| {
            injected.key == *key && injected.method.as_deref().is_none_or(|m| m == method)
        })?;
        Some(self.injected_faults.remove(index).fault)
    }

    /// Takes one injected conflict for this object, if any is left.
    fn take_injected_conflict(&mut self, key: &ObjectKey) -> bool {
        match self.injected_conflicts.get_mut(key) {
            Some(left) if *left > 0 => {
                *left -= 1;
                if *left == 0 {
                    self.injected_conflicts.remove(key);
                }
                true
            }
            _ => false,
        }
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        match self.kinds.iter().find(|k| k.is_namespace()) {
            // Without a Namespace kind there is nothing to check against.
            None => true,
            Some(kind) => self
                .objects
                .contains_key(&ObjectKey::new(kind, "", namespace)),
        }
    }

    fn get(&self, kind: &ResourceKind, key: &ObjectKey) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .map(|stored| stored.object.clone())
            .ok_or_else(|| ApiError::not_found(kind, &key.name))
    }

    /// POST: a new object.
    fn create(
        &mut self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.insert_new(kind, namespace, object, opts, BTreeMap::new())
    }

    /// Validates and stores a new object, with the apply records it starts with.
    fn insert_new(
        &mut self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        mut object: Value,
        opts: &WriteOptions,
        appliers: BTreeMap<Applier, ApplyRecord>,
    ) -> Result<Value, ApiError> {
        check_type_meta(kind, &mut object)?;
        let namespace = object_namespace(kind, namespace, &object)?;
        let name = new_object_name(kind, &object)?;
        check_spec_schema(kind, &object)?;
        if meta_str(&object, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if let Some(namespace) = &namespace
            && !self.namespace_exists(namespace)
        {
            return Err(ApiError::namespace_not_found(namespace));
        }
        let key = ObjectKey::new(kind, namespace.as_deref().unwrap_or(""), &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(kind, &name));
        }
        if kind.status_subresource && kind.custom {
            remove_field(&mut object, "status");
        }
        if kind.is_namespace() {
            set_field(&mut object, "status", json!({"phase": "Active"}));
        }
        let resource_version = if opts.dry_run {
            String::new()
        } else {
            self.next_resource_version()
        };
        let metadata = new_metadata(
            kind,
            &object,
            &name,
            namespace.as_deref(),
            &resource_version,
            &appliers,
        );
        set_field(&mut object, "metadata", metadata);
        if !opts.dry_run {
            self.objects.insert(
                key,
                Stored {
                    object: object.clone(),
                    appliers,
                    updaters: BTreeMap::new(),
                },
            );
        }
        Ok(object)
    }

    /// PUT on the object or its status.
    fn replace(
        &mut self,
        kind: &ResourceKind,
        key: &ObjectKey,
        mut object: Value,
        target: Target,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_type_meta(kind, &mut object)?;
        check_identity(kind, key, &mut object)?;
        let current = self.get(kind, key)?;
        match meta_str(&object, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(rv) if Some(rv) != meta_str(&current, "resourceVersion") => {
                return Err(ApiError::conflict(kind, &key.name));
            }
            Some(_) => {}
            None if kind.allows_unconditional_update() => {}
            None => {
                return Err(ApiError::invalid_object(
                    kind,
                    &key.name,
                    "metadata.resourceVersion",
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update",
                ));
            }
        }
        check_uid(kind, key, &current, &object)?;
        self.commit(kind, key, object, target, opts, None)
    }

    /// PATCH with any of the patch types; answers the HTTP status (201 when an apply created
    /// the object) and the object.
    fn patch(
        &mut self,
        kind: &ResourceKind,
        key: &ObjectKey,
        content_type: &str,
        body: &[u8],
        target: Target,
        opts: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !kind.patch_types().contains(&media_type.as_str()) {
            return Err(ApiError::unsupported_media_type(kind.patch_types()));
        }
        let apply = media_type == "application/apply-patch+yaml";
        if opts.force && !apply {
            return Err(ApiError::invalid_patch_options(
                "force",
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch",
            ));
        }
        if apply {
            return self.apply(kind, key, body, target, opts);
        }
        let current = self.get(kind, key)?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut patched = current.clone();
        if media_type == "application/json-patch+json" {
            let Some(operations) = patch.as_array() else {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                ));
            };
            apply_json_patch(&mut patched, operations)
                .map_err(|_| ApiError::patch_not_applied())?;
        } else {
            // Merge patch; and strategic merge patch on built-in kinds (see the header).
            if !patch.is_object() {
                return Err(ApiError::bad_request("Invalid JSON Patch"));
            }
            merge_patch(&mut patched, &patch);
        }
        check_identity(kind, key, &mut patched)?;
        if meta_str(&patched, "resourceVersion")
            .is_some_and(|rv| !rv.is_empty() && Some(rv) != meta_str(&current, "resourceVersion"))
        {
            return Err(ApiError::conflict(kind, &key.name));
        }
        check_uid(kind, key, &current, &patched)?;
        let object = self.commit(kind, key, patched, target, opts, None)?;
        Ok((200, object))
    }

    /// Server-side apply (see the header for the subset).
    fn apply(
        &mut self,
        kind: &ResourceKind,
        key: &ObjectKey,
        body: &[u8],
        target: Target,
        opts: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid_patch_options(
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            ));
        };
        let mut applied = parse_apply_body(body)?;
        if get_str(&applied, "apiVersion").is_none() || get_str(&applied, "kind").is_none() {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}'",
                String::from_utf8_lossy(body)
            )));
        }
        check_type_meta(kind, &mut applied)?;
        check_identity(kind, key, &mut applied)?;
        let fields = applied_fields(kind, &applied, target);
        let applier: Applier = (manager, target == Target::Status);
        let record = ApplyRecord {
            fields: fields.clone(),
            time: now_seconds(),
        };
        let Some(stored) = self.objects.get(key) else {
            if target == Target::Status {
                return Err(ApiError::not_found(kind, &key.name));
            }
            let namespace = kind.namespaced.then_some(key.namespace.as_str());
            let mut appliers = BTreeMap::new();
            appliers.insert(applier, record);
            let object = self.insert_new(kind, namespace, applied, opts, appliers)?;
            return Ok((201, object));
        };
        let current = stored.object.clone();
        let mut appliers = stored.appliers.clone();
        let mut updaters = stored.updaters.clone();
        if meta_str(&applied, "resourceVersion")
            .is_some_and(|rv| !rv.is_empty() && Some(rv) != meta_str(&current, "resourceVersion"))
        {
            return Err(ApiError::conflict(kind, &key.name));
        }
        check_uid(kind, key, &current, &applied)?;
        resolve_apply_conflicts(
            kind,
            key,
            &current,
            &applied,
            &applier,
            &fields,
            &mut appliers,
            &mut updaters,
            opts.force,
        )?;

        let mut object = current.clone();
        let previous = appliers
            .get(&applier)
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        for dropped in previous.difference(&fields) {
            let owned_elsewhere = appliers
                .iter()
                .any(|(other, r)| *other != applier && r.fields.contains(dropped))
                || updaters.values().any(|r| r.fields.contains(dropped));
            if !owned_elsewhere {
                remove_path(&mut object, dropped);
            }
        }
        merge_applied(&mut object, &applied, kind, target);
        appliers.insert(applier, record);
        let managed = render_managed_fields(&appliers, &updaters, &kind.api_version());
        let object = self.commit(kind, key, object, target, opts, Some(managed))?;
        if !opts.dry_run
            && let Some(stored) = self.objects.get_mut(key)
        {
            stored.appliers = appliers;
            stored.updaters = updaters;
        }
        Ok((200, object))
    }

    /// Stores a changed object: the rules every update shares. `managed` replaces
    /// `metadata.managedFields` (apply); otherwise the stored ones are kept.
    fn commit(
        &mut self,
        kind: &ResourceKind,
        key: &ObjectKey,
        mut new: Value,
        target: Target,
        opts: &WriteOptions,
        managed: Option<Value>,
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, key)?;
        let mut result = match target {
            // The status subresource changes status only.
            Target::Status => {
                let mut result = old.clone();
                match new.get("status") {
                    Some(status) => set_field(&mut result, "status", status.clone()),
                    None => remove_field(&mut result, "status"),
                }
                result
            }
            Target::Main => {
                if kind.status_subresource {
                    match old.get("status") {
                        Some(status) => set_field(&mut new, "status", status.clone()),
                        None => remove_field(&mut new, "status"),
                    }
                }
                new
            }
        };
        set_field(&mut result, "apiVersion", json!(kind.api_version()));
        set_field(&mut result, "kind", json!(kind.kind));
        let updated_by = managed
            .is_none()
            .then(|| opts.updater.clone().filter(|m| !m.is_empty()))
            .flatten();
        keep_system_metadata(&old, &mut result, managed);
        if target == Target::Main {
            check_spec_schema(kind, &result)?;
        }
        // A PUT or a merge or JSON patch makes its manager the owner of the fields it changed,
        // taken from whoever owned them (an `Update` entry in managedFields), so that a later
        // apply of another value without force conflicts with it ("Server-Side Apply":
        // conflicts are with any manager, `Update` ones included).
        let mut ownership = None;
        if let (Some(manager), Some(stored)) = (updated_by, self.objects.get(key)) {
            let changed = changed_fields(&old, &result, target);
            if !changed.is_empty() {
                let mut appliers = stored.appliers.clone();
                let mut updaters = stored.updaters.clone();
                for record in appliers.values_mut().chain(updaters.values_mut()) {
                    record.fields.retain(|f| !changed.contains(f));
                }
                appliers.retain(|_, r| !r.fields.is_empty());
                updaters.retain(|_, r| !r.fields.is_empty());
                let entry = updaters
                    .entry((manager, target == Target::Status))
                    .or_insert_with(|| ApplyRecord {
                        fields: BTreeSet::new(),
                        time: String::new(),
                    });
                entry.fields.extend(changed);
                entry.time = now_seconds();
                let managed = render_managed_fields(&appliers, &updaters, &kind.api_version());
                set_meta(&mut result, "managedFields", managed);
                ownership = Some((appliers, updaters));
            }
        }
        check_no_new_finalizers(kind, key, &old, &result)?;
        if kind.tracks_generation() && differs_outside_metadata_and_status(&old, &result) {
            let generation = meta(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut result, "generation", json!(generation + 1));
        }
        if result == old {
            // Nothing changed: nothing is written, the resourceVersion stays.
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(result);
        }
        let resource_version = self.next_resource_version();
        set_meta(&mut result, "resourceVersion", json!(resource_version));
        let terminating = meta(&result).is_some_and(|m| m.contains_key("deletionTimestamp"));
        let finalizers_left = meta(&result)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if terminating && !finalizers_left {
            // The last finalizer is gone: the deletion completes.
            self.remove(kind, key);
        } else if let Some(stored) = self.objects.get_mut(key) {
            stored.object = result.clone();
            if let Some((appliers, updaters)) = ownership {
                stored.appliers = appliers;
                stored.updaters = updaters;
            }
        }
        Ok(result)
    }

    /// DELETE: answers the HTTP status and the body (the object, or a Success Status).
    fn delete(
        &mut self,
        kind: &ResourceKind,
        key: &ObjectKey,
        options: &Value,
        opts: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let current = self.get(kind, key)?;
        check_delete_preconditions(kind, key, &current, options)?;
        let has_finalizers = meta(&current)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if meta(&current).is_some_and(|m| m.contains_key("deletionTimestamp")) || opts.dry_run {
                return Ok((202, current));
            }
            let mut terminating = current.clone();
            set_meta(&mut terminating, "deletionTimestamp", json!(now_seconds()));
            set_meta(&mut terminating, "deletionGracePeriodSeconds", json!(0));
            let resource_version = self.next_resource_version();
            set_meta(&mut terminating, "resourceVersion", json!(resource_version));
            if let Some(stored) = self.objects.get_mut(key) {
                stored.object = terminating.clone();
            }
            return Ok((202, terminating));
        }
        if !opts.dry_run {
            self.remove(kind, key);
        }
        if kind.answers_deleted_object() {
            return Ok((200, current));
        }
        let mut details = ApiError::resource_details(kind, &key.name);
        if let (Some(details), Some(uid)) = (details.as_object_mut(), meta_str(&current, "uid")) {
            details.insert("uid".into(), json!(uid));
        }
        Ok((
            200,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        ))
    }

    /// Removes an object (and, for a namespace, everything in it).
    fn remove(&mut self, kind: &ResourceKind, key: &ObjectKey) {
        self.objects.remove(key);
        self.injected_conflicts.remove(key);
        if kind.is_namespace() {
            self.objects.retain(|k, _| k.namespace != key.name);
        }
    }

    /// GET on a collection.
    fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let selection = Selection::from_query(query)?;
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        // The continue token is the `namespace/name` of the last item answered.
        let after = query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(|c| c.split_once('/').unwrap_or(("", c)));
        let mut items = Vec::new();
        let mut next = None;
        for (key, stored) in self.objects_of(kind, namespace) {
            let position = format!("{}/{}", key.namespace, key.name);
            if after.is_some_and(|after| (key.namespace.as_str(), key.name.as_str()) <= after)
                || !selection.matches(&stored.object)
            {
                continue;
            }
            if limit.is_some_and(|limit| items.len() == limit) {
                next = items
                    .last()
                    .map(|(position, _): &(String, Value)| position.clone());
                break;
            }
            items.push((position, list_item(kind, &stored.object)));
        }
        let mut metadata = Map::new();
        metadata.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        if let Some(next) = next {
            metadata.insert("continue".into(), json!(next));
        }
        Ok(json!({
            "apiVersion": kind.api_version(),
            "kind": format!("{}List", kind.kind),
            "metadata": metadata,
            "items": items.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
        }))
    }

    /// DELETE on a collection: answers the list of what was deleted.
    fn delete_collection(
        &mut self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        query: &Query,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let selection = Selection::from_query(query)?;
        let keys: Vec<ObjectKey> = self
            .objects_of(kind, namespace)
            .filter(|(_, stored)| selection.matches(&stored.object))
            .map(|(key, _)| key.clone())
            .collect();
        let mut items = Vec::new();
        for key in keys {
            let before = self.get(kind, &key)?;
            let (code, answered) = self.delete(kind, &key, &Value::Null, opts)?;
            // Each item is the object as deleted (or as left terminating by its finalizers).
            items.push(if code == 202 { answered } else { before });
        }
        Ok(json!({
            "apiVersion": kind.api_version(),
            "kind": format!("{}List", kind.kind),
            "metadata": {"resourceVersion": self.resource_version.to_string()},
            "items": items,
        }))
    }
}

/// Fills in `apiVersion` and `kind` when absent (the server decodes with the URL's kind as
/// the default) and refuses other ones.
fn check_type_meta(kind: &ResourceKind, object: &mut Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request could not be decoded as an object: {object}"
        )));
    }
    let expected_version = kind.api_version();
    match get_str(object, "apiVersion") {
        Some(version) if version != expected_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({version}) does not match the expected API version ({expected_version})"
            )));
        }
        Some(_) => {}
        None => set_field(object, "apiVersion", json!(expected_version)),
    }
    match get_str(object, "kind") {
        Some(found) if found != kind.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({found}) does not match the expected kind ({})",
            kind.kind
        ))),
        Some(_) => Ok(()),
        None => {
            set_field(object, "kind", json!(kind.kind));
            Ok(())
        }
    }
}

/// The namespace a new object goes to: the path's, which the object may repeat but not
/// contradict.
fn object_namespace(
    kind: &ResourceKind,
    path_namespace: Option<&str>,
    object: &Value,
) -> Result<Option<String>, ApiError> {
    if !kind.namespaced {
        return Ok(None);
    }
    let in_object = meta_str(object, "namespace").filter(|ns| !ns.is_empty());
    match (path_namespace, in_object) {
        (Some(path), Some(object)) if path != object => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (Some(path), _) => Ok(Some(path.to_owned())),
        (None, Some(object)) => Ok(Some(object.to_owned())),
        (None, None) => Ok(Some("default".to_owned())),
    }
}

/// `metadata.name`, or one made from `generateName`; validated as a DNS subdomain.
fn new_object_name(kind: &ResourceKind, object: &Value) -> Result<String, ApiError> {
    let name = match meta_str(object, "name").filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => match meta_str(object, "generateName").filter(|n| !n.is_empty()) {
            Some(prefix) => format!("{prefix}{}", random_suffix()),
            None => {
                return Err(ApiError::invalid_object(
                    kind,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                ));
            }
        },
    };
    if !is_dns_subdomain(&name) {
        return Err(ApiError::invalid_object(
            kind,
            &name,
            "metadata.name",
            "FieldValueInvalid",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    Ok(name)
}

/// The metadata of a new object: the server's fields first, then the client's.
fn new_metadata(
    kind: &ResourceKind,
    object: &Value,
    name: &str,
    namespace: Option<&str>,
    resource_version: &str,
    appliers: &BTreeMap<Applier, ApplyRecord>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    if let Some(namespace) = namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("uid".into(), json!(new_uid()));
    metadata.insert("resourceVersion".into(), json!(resource_version));
    if kind.tracks_generation() {
        metadata.insert("generation".into(), json!(1));
    }
    metadata.insert("creationTimestamp".into(), json!(now_seconds()));
    const SERVER_SET: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ];
    if let Some(client) = meta(object) {
        for (key, value) in client {
            if !SERVER_SET.contains(&key.as_str()) {
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    if !appliers.is_empty() {
        metadata.insert(
            "managedFields".into(),
            render_managed_fields(appliers, &BTreeMap::new(), &kind.api_version()),
        );
    }
    Value::Object(metadata)
}

/// The object's name and namespace must be the path's (they are filled in when absent).
fn check_identity(
    kind: &ResourceKind,
    key: &ObjectKey,
    object: &mut Value,
) -> Result<(), ApiError> {
    match meta_str(object, "name").filter(|n| !n.is_empty()) {
        Some(name) if name != key.name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        Some(_) => {}
        None => set_meta(object, "name", json!(key.name)),
    }
    if kind.namespaced {
        match meta_str(object, "namespace").filter(|n| !n.is_empty()) {
            Some(namespace) if namespace != key.namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => set_meta(object, "namespace", json!(key.namespace)),
        }
    }
    Ok(())
}

/// A `metadata.uid` in the new object is a precondition on the stored one.
fn check_uid(
    kind: &ResourceKind,
    key: &ObjectKey,
    current: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    match (
        meta_str(new, "uid").filter(|u| !u.is_empty()),
        meta_str(current, "uid"),
    ) {
        (Some(wanted), Some(actual)) if wanted != actual => Err(ApiError::precondition(
            kind,
            &key.name,
            &format!(
                "Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
            ),
        )),
        _ => Ok(()),
    }
}

/// `preconditions` of a DELETE body (DeleteOptions).
fn check_delete_preconditions(
    kind: &ResourceKind,
    key: &ObjectKey,
    current: &Value,
    options: &Value,
) -> Result<(), ApiError> {
    let Some(preconditions) = options.get("preconditions") else {
        return Ok(());
    };
    if let Some(wanted) = preconditions.get("uid").and_then(Value::as_str) {
        let actual = meta_str(current, "uid").unwrap_or("");
        if wanted != actual {
            return Err(ApiError::precondition(
                kind,
                &key.name,
                &format!(
                    "Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(wanted) = preconditions.get("resourceVersion").and_then(Value::as_str) {
        let actual = meta_str(current, "resourceVersion").unwrap_or("");
        if wanted != actual {
            return Err(ApiError::precondition(
                kind,
                &key.name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {wanted}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

/// The fields only the server sets keep their stored values on update.
fn keep_system_metadata(old: &Value, result: &mut Value, managed: Option<Value>) {
    const KEPT: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
    ];
    let old_meta = meta(old).cloned().unwrap_or_default();
    let Some(object) = result.as_object_mut() else {
        return;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    for field in KEPT {
        match old_meta.get(*field) {
            Some(value) => {
                metadata.insert((*field).to_owned(), value.clone());
            }
            None => {
                metadata.remove(*field);
            }
        }
    }
    if let Some(managed) = managed {
        metadata.insert("managedFields".into(), managed);
    }
    // Keep the server's fields in front, as the real server orders them.
    let mut ordered = Map::new();
    for field in KEPT {
        if let Some(value) = metadata.remove(*field) {
            ordered.insert((*field).to_owned(), value);
        }
    }
    let rest = std::mem::take(metadata);
    ordered.extend(rest);
    *metadata = ordered;
}

/// "Forbidden: no new finalizers can be added if the object is being deleted".
fn check_no_new_finalizers(
    kind: &ResourceKind,
    key: &ObjectKey,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    if !meta(old).is_some_and(|m| m.contains_key("deletionTimestamp")) {
        return Ok(());
    }
    let finalizers = |object: &Value| -> BTreeSet<String> {
        meta(object)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let added: Vec<String> = finalizers(new)
        .difference(&finalizers(old))
        .cloned()
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_object(
        kind,
        &key.name,
        "metadata.finalizers",
        "FieldValueForbidden",
        &format!(
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
        ),
    ))
}

fn differs_outside_metadata_and_status(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(object) = v.as_object_mut() {
            object.remove("metadata");
            object.remove("status");
        }
        v
    };
    strip(a) != strip(b)
}

/// A list item: built-in lists carry no `apiVersion`/`kind` in their items.
fn list_item(kind: &ResourceKind, object: &Value) -> Value {
    let mut item = object.clone();
    if !kind.custom {
        remove_field(&mut item, "apiVersion");
        remove_field(&mut item, "kind");
    }
    item
}

// ---------------------------------------------------------------------------------------------
// Server-side apply

fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let text = String::from_utf8_lossy(body);
    let parsed: Result<Value, String> = serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str::<Value>(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(value) if value.is_object() => Ok(value),
        Ok(other) => Err(ApiError::bad_request(format!(
            "error decoding YAML: expected an object, found {other}"
        ))),
        Err(e) => Err(ApiError::bad_request(format!("error decoding YAML: {e}"))),
    }
}

/// The field paths an apply sets: leaves of its content, minus what the target ignores.
fn applied_fields(kind: &ResourceKind, applied: &Value, target: Target) -> BTreeSet<FieldPath> {
    let mut fields = BTreeSet::new();
    let Some(object) = applied.as_object() else {
        return fields;
    };
    for (key, value) in object {
        let mut prefix = vec![key.clone()];
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for owned in ["labels", "annotations", "finalizers"] {
                    if let Some(value) = value.get(owned) {
                        let mut prefix = vec!["metadata".to_owned(), owned.to_owned()];
                        if owned == "finalizers" {
                            fields.insert(prefix);
                        } else {
                            leaf_paths(value, &mut prefix, &mut fields);
                        }
                    }
                }
            }
            "status" if kind.status_subresource => {
                if target == Target::Status {
                    leaf_paths(value, &mut prefix, &mut fields);
                }
            }
            _ => {
                if target == Target::Main {
                    leaf_paths(value, &mut prefix, &mut fields);
                }
            }
        }
    }
    fields
}

/// Fields other apply managers own with another value: a conflict, unless forced (then the
/// other managers lose them).
#[allow(clippy::too_many_arguments)]
fn resolve_apply_conflicts(
    kind: &ResourceKind,
    key: &ObjectKey,
    current: &Value,
    applied: &Value,
    applier: &Applier,
    fields: &BTreeSet<FieldPath>,
    appliers: &mut BTreeMap<Applier, ApplyRecord>,
    updaters: &mut BTreeMap<Applier, ApplyRecord>,
    force: bool,
) -> Result<(), ApiError> {
    let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
    let others = appliers
        .iter()
        .filter(|(other, _)| *other != applier)
        .chain(updaters.iter());
    for (other, record) in others {
        for field in fields.intersection(&record.fields) {
            if value_at(current, field) != value_at(applied, field) {
                conflicts.push((other.0.clone(), field.clone()));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    if force {
        for (_, field) in &conflicts {
            for (other, record) in appliers.iter_mut() {
                if other != applier {
                    record.fields.remove(field);
                }
            }
            for record in updaters.values_mut() {
                record.fields.remove(field);
            }
        }
        updaters.retain(|_, r| !r.fields.is_empty());
        return Ok(());
    }
    let api_version = kind.api_version();
    let described: Vec<String> = conflicts
        .iter()
        .map(|(manager, field)| {
            format!(
                "conflict with \"{manager}\" using {api_version}: .{}",
                field.join(".")
            )
        })
        .collect();
    let n = conflicts.len();
    let message = if n == 1 {
        format!("Apply failed with 1 conflict: {}", described[0])
    } else {
        format!("Apply failed with {n} conflicts: {}", described.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .zip(&described)
        .map(|((_, field), text)| {
            json!({"reason": "FieldManagerConflict", "message": text, "field": format!(".{}", field.join("."))})
        })
        .collect();
    let mut details = ApiError::resource_details(kind, &key.name);
    if let Some(details) = details.as_object_mut() {
        details.insert("causes".into(), Value::Array(causes));
    }
    Err(ApiError::new(409, "Conflict", message).with_details(details))
}

/// The leaf fields a write changed: under `status` for the status subresource, elsewhere
/// outside `metadata` and `status` (plus labels and annotations) for the main resource.
fn changed_fields(old: &Value, new: &Value, target: Target) -> BTreeSet<FieldPath> {
    let mut leaves = BTreeSet::new();
    for object in [old, new] {
        leaf_paths(object, &mut Vec::new(), &mut leaves);
    }
    leaves
        .into_iter()
        .filter(|path| {
            let first = path.first().map(String::as_str);
            let in_scope = match target {
                Target::Status => first == Some("status"),
                Target::Main => match first {
                    Some("status" | "apiVersion" | "kind") | None => false,
                    Some("metadata") => matches!(
                        path.get(1).map(String::as_str),
                        Some("labels" | "annotations")
                    ),
                    Some(_) => true,
                },
            };
            in_scope && value_at(old, path) != value_at(new, path)
        })
        .collect()
}

/// Merges the applied content into the object: maps merged, everything else replaced.
fn merge_applied(object: &mut Value, applied: &Value, kind: &ResourceKind, target: Target) {
    let Some(applied) = applied.as_object() else {
        return;
    };
    for (key, value) in applied {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for owned in ["labels", "annotations", "finalizers"] {
                    if let Some(value) = value.get(owned) {
                        let metadata = ensure_object(object, "metadata");
                        deep_merge(metadata.entry(owned).or_insert(Value::Null), value);
                    }
                }
            }
            "status" if kind.status_subresource && target == Target::Main => {}
            _ if target == Target::Status && key != "status" => {}
            _ => {
                if let Some(object) = object.as_object_mut() {
                    deep_merge(object.entry(key.as_str()).or_insert(Value::Null), value);
                }
            }
        }
    }
}

fn deep_merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied.as_object()) {
        (Some(target), Some(applied)) => {
            for (key, value) in applied {
                deep_merge(target.entry(key.as_str()).or_insert(Value::Null), value);
            }
        }
        _ => *target = applied.clone(),
    }
}

/// `metadata.managedFields` for the apply records (FieldsV1: `{"f:spec":{"f:x":{}}}`).
fn render_managed_fields(
    appliers: &BTreeMap<Applier, ApplyRecord>,
    updaters: &BTreeMap<Applier, ApplyRecord>,
    api_version: &str,
) -> Value {
    let entries: Vec<Value> = appliers
        .iter()
        .map(|entry| ("Apply", entry))
        .chain(updaters.iter().map(|entry| ("Update", entry)))
        .map(|(operation, ((manager, status), record))| {
            let mut tree = Map::new();
            for field in &record.fields {
                let mut node = &mut tree;
                for part in field {
                    let entry = node
                        .entry(format!("f:{part}"))
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    let Some(next) = entry.as_object_mut() else {
                        break;
                    };
                    node = next;
                }
            }
            let mut entry = json!({
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": record.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": tree,
            });
            if *status {
                set_field(&mut entry, "subresource", json!("status"));
            }
            entry
        })
        .collect();
    Value::Array(entries)
}

// ---------------------------------------------------------------------------------------------
// Selectors

/// The raw query pairs of a request, decoded.
type Query = Vec<(String, String)>;

trait QueryExt {
    fn get(&self, name: &str) -> Option<&str>;
}

impl QueryExt for Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One requirement of a label selector.
#[derive(Debug, Clone)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// `labelSelector` and `fieldSelector` of a list or deletecollection.
struct Selection {
    labels: Vec<LabelRequirement>,
    /// (field, wanted value, equal?) for `metadata.name` and `metadata.namespace`.
    fields: Vec<(String, String, bool)>,
}

impl Selection {
    fn from_query(query: &Query) -> Result<Selection, ApiError> {
        let labels = match query.get("labelSelector") {
            Some(selector) => parse_label_selector(selector).map_err(ApiError::bad_request)?,
            None => Vec::new(),
        };
        let fields = match query.get("fieldSelector") {
            Some(selector) => parse_field_selector(selector)?,
            None => Vec::new(),
        };
        Ok(Selection { labels, fields })
    }

    fn matches(&self, object: &Value) -> bool {
        let empty = Map::new();
        let labels = meta(object)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => label(k).is_none(),
        });
        let fields_match = self.fields.iter().all(|(field, wanted, equal)| {
            let actual = field
                .strip_prefix("metadata.")
                .and_then(|f| meta_str(object, f))
                .unwrap_or("");
            (actual == wanted) == *equal
        });
        labels_match && fields_match
    }
}

fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut requirements = Vec::new();
    for term in split_outside_parentheses(selector) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: found '{rest}', expected: '('")
                })?;
            Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
        };
        let requirement = if let Some(key) = term.strip_prefix('!') {
            LabelRequirement::DoesNotExist(key.trim().to_owned())
        } else if let Some((key, rest)) = term.split_once(" notin ") {
            LabelRequirement::NotIn(key.trim().to_owned(), set(rest)?)
        } else if let Some((key, rest)) = term.split_once(" in ") {
            LabelRequirement::In(key.trim().to_owned(), set(rest)?)
        } else if let Some((key, value)) = term.split_once("!=") {
            LabelRequirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
        } else if term
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            LabelRequirement::Exists(term.to_owned())
        } else {
            return Err(format!("unable to parse requirement: {term}"));
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn parse_field_selector(selector: &str) -> Result<Vec<(String, String, bool)>, ApiError> {
    let mut fields = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(ApiError::bad_request(format!("invalid selector: '{term}'")));
        };
        let field = field.trim();
        if field != "metadata.name" && field != "metadata.namespace" {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        fields.push((field.to_owned(), value.trim().to_owned(), equal));
    }
    Ok(fields)
}

fn split_outside_parentheses(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

// ---------------------------------------------------------------------------------------------
// Merge patch (RFC 7386) and JSON patch (RFC 6902)

fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(target) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.as_str()).or_insert(Value::Null), value);
        }
    }
}

/// Applies the operations in order; the document is left half-patched on error (the caller
/// works on a copy).
fn apply_json_patch(document: &mut Value, operations: &[Value]) -> Result<(), String> {
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation has no op")?;
        let path = parse_pointer(
            operation
                .get("path")
                .and_then(Value::as_str)
                .ok_or("operation has no path")?,
        )?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or("operation has no value")
        };
        let from = || -> Result<FieldPath, String> {
            parse_pointer(
                operation
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("operation has no from")?,
            )
        };
        match op {
            "add" => pointer_add(document, &path, value()?)?,
            "remove" => {
                pointer_remove(document, &path)?;
            }
            "replace" => {
                let target = pointer_get_mut(document, &path).ok_or("replace: no such path")?;
                *target = value()?;
            }
            "move" => {
                let from = from()?;
                if path.len() > from.len() && path[..from.len()] == from[..] {
                    return Err("move: cannot move a value into itself".into());
                }
                let moved = pointer_remove(document, &from)?;
                pointer_add(document, &path, moved)?;
            }
            "copy" => {
                let copied = pointer_get(document, &from()?)
                    .cloned()
                    .ok_or("copy: no such from path")?;
                pointer_add(document, &path, copied)?;
            }
            "test" => {
                if pointer_get(document, &path) != Some(&value()?) {
                    return Err("test failed".into());
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// A JSON pointer (RFC 6901) as its unescaped tokens.
fn parse_pointer(pointer: &str) -> Result<FieldPath, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid pointer {pointer}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let index: usize = token.parse().ok()?;
    (index < len || (allow_end && index == len)).then_some(index)
}

fn pointer_get<'a>(document: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(document, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token, items.len(), false)?),
        _ => None,
    })
}

fn pointer_get_mut<'a>(document: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(document, |node, token| match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => {
            let index = array_index(token, items.len(), false)?;
            items.get_mut(index)
        }
        _ => None,
    })
}

fn pointer_add(document: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *document = value;
        return Ok(());
    };
    match pointer_get_mut(document, parent).ok_or("add: no such parent")? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let index =
                    array_index(last, items.len(), true).ok_or("add: index out of range")?;
                items.insert(index, value);
            }
            Ok(())
        }
        _ => Err("add: parent is not a container".into()),
    }
}

fn pointer_remove(document: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path
        .split_last()
        .ok_or("remove: cannot remove the document")?;
    match pointer_get_mut(document, parent).ok_or("remove: no such parent")? {
        Value::Object(map) => map
            .shift_remove(last)
            .ok_or_else(|| "remove: no such key".into()),
        Value::Array(items) => {
            let index =
                array_index(last, items.len(), false).ok_or("remove: index out of range")?;
            Ok(items.remove(index))
        }
        _ => Err("remove: parent is not a container".into()),
    }
}

/// The leaves of a value: paths to scalars, lists and empty maps.
fn leaf_paths(value: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                leaf_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |node, key| node.as_object().and_then(|m| m.get(key)))
}

/// Removes a field and the maps it leaves empty.
fn remove_path(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.shift_remove(first);
        return;
    }
    if let Some(child) = map.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            map.shift_remove(first);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small JSON helpers

fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn get_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

fn set_field(object: &mut Value, field: &str, value: Value) {
    if let Some(object) = object.as_object_mut() {
        object.insert(field.to_owned(), value);
    }
}

fn remove_field(object: &mut Value, field: &str) {
    if let Some(object) = object.as_object_mut() {
        object.shift_remove(field);
    }
}

fn ensure_object<'a>(object: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let entry = map
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(inner) = entry else {
        unreachable!("made an object above")
    };
    inner
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    ensure_object(object, "metadata").insert(field.to_owned(), value);
}

fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

/// RFC 3339 UTC, whole seconds, as Kubernetes writes timestamps.
fn now_seconds() -> String {
    let now = jiff::Timestamp::now();
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random version-4 UUID.
fn new_uid() -> String {
    let bits = rand::random::<u128>();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Five characters as `generateName` appends them.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = rand::random::<u64>();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP: routing and discovery

/// What a request path addresses.
enum Route {
    Version,
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`.
    GroupVersion(String, String),
    Resource(ResourceRoute),
}

/// A path to a collection, an object or its status.
struct ResourceRoute {
    kind: ResourceKind,
    /// The path's namespace (None: cluster-scoped, or all namespaces).
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl ResourceRoute {
    fn key(&self) -> Option<ObjectKey> {
        let name = self.name.as_deref()?;
        Some(ObjectKey::new(
            &self.kind,
            self.namespace.as_deref().unwrap_or(""),
            name,
        ))
    }
}

fn parse_route(kinds: &[ResourceKind], path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let served = |group: &str, version: &str| {
        kinds
            .iter()
            .any(|k| k.group == group && k.version == version)
    };
    match segments.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz" | "livez" | "readyz"] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] if kinds.iter().any(|k| k.group == *group) => {
            Ok(Route::Group((*group).to_owned()))
        }
        ["api", version] if served("", version) => {
            Ok(Route::GroupVersion(String::new(), (*version).to_owned()))
        }
        ["apis", group, version] if served(group, version) => Ok(Route::GroupVersion(
            (*group).to_owned(),
            (*version).to_owned(),
        )),
        ["api", version, rest @ ..] if !rest.is_empty() => resource_route(kinds, "", version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resource_route(kinds, group, version, rest)
        }
        _ => Err(ApiError::unknown_resource()),
    }
}

fn resource_route(
    kinds: &[ResourceKind],
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Route, ApiError> {
    let kind_for = |plural: &str| {
        kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    };
    // `namespaces/{ns}/{plural}...` addresses namespaced kinds; anything else is cluster-scoped
    // (which includes `namespaces/{name}` and `namespaces/{name}/status` themselves).
    if let ["namespaces", namespace, plural, tail @ ..] = rest
        && let Some(kind) = kind_for(plural).filter(|k| k.namespaced)
    {
        return object_route(kind, Some(namespace), tail);
    }
    let (plural, tail) = rest.split_first().ok_or_else(ApiError::unknown_resource)?;
    let kind = kind_for(plural).ok_or_else(ApiError::unknown_resource)?;
    if kind.namespaced && !tail.is_empty() {
        // A namespaced kind addressed by name without a namespace.
        return Err(ApiError::unknown_resource());
    }
    object_route(kind, None, tail)
}

fn object_route(
    kind: ResourceKind,
    namespace: Option<&str>,
    tail: &[&str],
) -> Result<Route, ApiError> {
    let (name, status) = match tail {
        [] => (None, false),
        [name] => (Some(*name), false),
        [name, "status"] if kind.status_subresource => (Some(*name), true),
        _ => return Err(ApiError::unknown_resource()),
    };
    Ok(Route::Resource(ResourceRoute {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        status,
    }))
}

const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": SERVER_MINOR,
        "emulationMajor": "1",
        "emulationMinor": SERVER_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "33",
        "gitVersion": format!("v1.{SERVER_MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

/// The groups other than core, in registration order, each with its versions.
fn groups(kinds: &[ResourceKind]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for kind in kinds.iter().filter(|k| !k.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == kind.group) {
            Some((_, versions)) if !versions.contains(&kind.version) => {
                versions.push(kind.version.clone())
            }
            Some(_) => {}
            None => groups.push((kind.group.clone(), vec![kind.version.clone()])),
        }
    }
    groups
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let entry = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(entry).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(entry),
    })
}

fn api_group_list(kinds: &[ResourceKind]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(kinds).iter().map(|(g, v)| api_group(g, v)).collect::<Vec<_>>(),
    })
}

fn api_resource_list(kinds: &[ResourceKind], group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for kind in kinds
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        resources.push(json!({
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": RESOURCE_VERBS,
            "shortNames": kind.short_names,
        }));
        if kind.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", kind.plural),
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// APIGroupDiscoveryList (apidiscovery.k8s.io/v2) for the core group or the others.
fn aggregated_discovery(kinds: &[ResourceKind], core: bool) -> Value {
    let group_names: Vec<(String, Vec<String>)> = if core {
        let versions: Vec<String> = kinds
            .iter()
            .filter(|k| k.group.is_empty())
            .map(|k| k.version.clone())
            .fold(Vec::new(), |mut vs, v| {
                if !vs.contains(&v) {
                    vs.push(v);
                }
                vs
            });
        vec![(String::new(), versions)]
    } else {
        groups(kinds)
    };
    let items: Vec<Value> = group_names
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = kinds
                        .iter()
                        .filter(|k| k.group == *group && k.version == *version)
                        .map(discovered_resource)
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn discovered_resource(kind: &ResourceKind) -> Value {
    let response_kind = json!({"group": kind.group, "version": kind.version, "kind": kind.kind});
    let mut resource = json!({
        "resource": kind.plural,
        "responseKind": response_kind,
        "scope": if kind.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": kind.singular,
        "verbs": RESOURCE_VERBS,
        "shortNames": kind.short_names,
    });
    if kind.status_subresource {
        set_field(
            &mut resource,
            "subresources",
            json!([{"subresource": "status", "responseKind": response_kind, "verbs": STATUS_VERBS}]),
        );
    }
    resource
}

/// Whether the `Accept` header asks for aggregated discovery (v2).
fn wants_aggregated_discovery(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|range| {
            let params: Vec<&str> = range.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    })
}

const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

// ---------------------------------------------------------------------------------------------
// HTTP: serving

/// A request as read from the socket.
struct HttpRequest {
    method: String,
    path: String,
    raw_query: String,
    query: Query,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// Sent over TLS with a client certificate the double's CA signed.
    client_certificate: bool,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

struct HttpResponse {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Headers beyond the ones every answer has (`Retry-After`).
    extra_headers: Vec<(&'static str, String)>,
}

impl HttpResponse {
    fn json(status: u16, body: &Value) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            extra_headers: Vec::new(),
        }
    }

    fn error(error: &ApiError) -> HttpResponse {
        HttpResponse::json(error.code, &error.to_status())
    }
}

struct Server {
    store: ApiStore,
    token: String,
}

impl Server {
    fn serve(&self, stream: TcpStream) {
        let local = prepare(&stream);
        self.serve_stream(stream, &local, false);
    }

    /// One HTTPS connection: the handshake, then the request as [`Server::serve`] answers
    /// it. A client certificate the CA signed authenticates the request (the x509 user).
    fn serve_tls(&self, stream: TcpStream, config: Arc<rustls::ServerConfig>) {
        let local = prepare(&stream);
        let Ok(connection) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(connection, stream);
        while tls.conn.is_handshaking() {
            // A client that does not trust the CA, or offers a certificate it did not sign,
            // ends here: the handshake fails and the connection closes.
            if tls.conn.complete_io(&mut tls.sock).is_err() {
                return;
            }
        }
        let certified = tls
            .conn
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty());
        self.serve_stream(tls, &local, certified);
    }

    fn serve_stream(&self, stream: impl Read + Write, local: &str, certified: bool) {
        let local = local.to_owned();
        let mut reader = BufReader::new(stream);
        let response = match read_request(&mut reader) {
            Ok(Some(mut request)) => {
                request.client_certificate = certified;
                match self.injected_fault(&request) {
                    Some(Fault::DropConnection) => {
                        // Status 0 in the log: nothing was answered. Returning drops the
                        // socket, and the client sees the connection end without a response.
                        self.log(&request, 0);
                        return;
                    }
                    Some(fault) => {
                        let response = fault.response();
                        self.log(&request, response.status);
                        write_response(reader.get_mut(), &response);
                        return;
                    }
                    None => {}
                }
                // A bug in the double answers 500 instead of dropping the connection.
                let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.respond(&request, &local)
                }));
                let response = answered.unwrap_or_else(|_| {
                    HttpResponse::error(&ApiError::internal("the API server double panicked"))
                });
                self.log(&request, response.status);
                response
            }
            // The connection closed or timed out before a request: nothing to answer.
            Ok(None) => return,
            Err(error) => HttpResponse::error(&error),
        };
        write_response(reader.get_mut(), &response);
    }

    /// The fault injected for this request, if any (only for authenticated requests on an
    /// object: a real server authenticates before priority and fairness can refuse a request).
    fn injected_fault(&self, request: &HttpRequest) -> Option<Fault> {
        let mut state = self.store.lock();
        let route = parse_route(&state.kinds, &request.path).ok()?;
        self.authenticate(request, Some(&route)).ok()?;
        let Route::Resource(resource) = &route else {
            return None;
        };
        let key = resource.key()?;
        state.take_injected_fault(&key, &request.method)
    }

    fn log(&self, request: &HttpRequest, status: u16) {
        let mut state = self.store.lock();
        if state.requests.len() >= MAX_LOGGED {
            state.requests.remove(0);
        }
        state.requests.push(LoggedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.raw_query.clone(),
            content_type: request.header("content-type").map(str::to_owned),
            accept: request.header("accept").map(str::to_owned),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        });
    }

    fn respond(&self, request: &HttpRequest, local_addr: &str) -> HttpResponse {
        let mut state = self.store.lock();
        let route = match parse_route(&state.kinds, &request.path) {
            Ok(route) => route,
            Err(error) => {
                // Authentication comes first on the real server, also for unknown paths.
                return HttpResponse::error(
                    &self.authenticate(request, None).err().unwrap_or(error),
                );
            }
        };
        if let Err(error) = self.authenticate(request, Some(&route)) {
            return HttpResponse::error(&error);
        }
        let accept = request.header("accept");
        match route {
            Route::Version => HttpResponse::json(200, &version_info()),
            Route::Health => HttpResponse {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: b"ok".to_vec(),
                extra_headers: Vec::new(),
            },
            Route::CoreVersions if wants_aggregated_discovery(accept) => HttpResponse {
                status: 200,
                content_type: AGGREGATED_CONTENT_TYPE,
                body: aggregated_discovery(&state.kinds, true)
                    .to_string()
                    .into_bytes(),
                extra_headers: Vec::new(),
            },
            Route::CoreVersions => HttpResponse::json(200, &core_versions(local_addr)),
            Route::Groups if wants_aggregated_discovery(accept) => HttpResponse {
                status: 200,
                content_type: AGGREGATED_CONTENT_TYPE,
                body: aggregated_discovery(&state.kinds, false)
                    .to_string()
                    .into_bytes(),
                extra_headers: Vec::new(),
            },
            Route::Groups => HttpResponse::json(200, &api_group_list(&state.kinds)),
            Route::Group(group) => {
                let versions = groups(&state.kinds)
                    .into_iter()
                    .find(|(g, _)| *g == group)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let mut body = api_group(&group, &versions);
                set_field(&mut body, "kind", json!("APIGroup"));
                set_field(&mut body, "apiVersion", json!("v1"));
                HttpResponse::json(200, &body)
            }
            Route::GroupVersion(group, version) => {
                HttpResponse::json(200, &api_resource_list(&state.kinds, &group, &version))
            }
            Route::Resource(route) => match resource_request(&mut state, request, &route) {
                Ok((status, body)) => HttpResponse::json(status, &body),
                Err(error) => HttpResponse::error(&error),
            },
        }
    }

    /// The bearer token must be the double's; without one, the anonymous user may only read
    /// the version and health paths.
    fn authenticate(&self, request: &HttpRequest, route: Option<&Route>) -> Result<(), ApiError> {
        // kube-apiserver tries the x509 authenticator first: a verified client certificate
        // is a user, whatever else the request carries.
        if request.client_certificate {
            return Ok(());
        }
        match request.header("authorization") {
            Some(value) => {
                let token = value.strip_prefix("Bearer ").map(str::trim);
                if token == Some(self.token.as_str()) {
                    Ok(())
                } else {
                    Err(ApiError::unauthorized())
                }
            }
            None => match route {
                Some(Route::Version | Route::Health) => Ok(()),
                Some(Route::Resource(route)) => {
                    Err(ApiError::forbidden(forbidden_message(request, route)))
                }
                _ => Err(ApiError::forbidden(format!(
                    "forbidden: User \"system:anonymous\" cannot {} path \"{}\"",
                    request.method.to_ascii_lowercase(),
                    request.path
                ))),
            },
        }
    }
}

fn forbidden_message(request: &HttpRequest, route: &ResourceRoute) -> String {
    let verb = match (request.method.as_str(), route.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "access",
    };
    let subject = match &route.name {
        Some(name) => format!("{} \"{name}\"", route.kind.group_resource()),
        None => route.kind.group_resource(),
    };
    let resource = if route.status {
        format!("{}/status", route.kind.plural)
    } else {
        route.kind.plural.clone()
    };
    let scope = match &route.namespace {
        Some(namespace) => format!(" in the namespace \"{namespace}\""),
        None if route.kind.namespaced => String::new(),
        None => " at the cluster scope".to_owned(),
    };
    format!(
        "{subject} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{resource}\" in API group \"{}\"{scope}",
        route.kind.group
    )
}

/// Dispatches a request on a resource path to the store's rules.
fn resource_request(
    state: &mut State,
    request: &HttpRequest,
    route: &ResourceRoute,
) -> Result<(u16, Value), ApiError> {
    let kind = &route.kind;
    let query = &request.query;
    let is_true = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
    if is_true("watch") {
        return Err(ApiError::method_not_allowed(
            "watch is not supported by this test double of the API server: poll with get or list",
        ));
    }
    let opts = WriteOptions {
        dry_run: query.get("dryRun") == Some("All"),
        field_manager: query.get("fieldManager").map(str::to_owned),
        updater: query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .or_else(|| {
                request
                    .header("user-agent")
                    .and_then(|agent| agent.split('/').next())
            })
            .map(str::to_owned),
        force: is_true("force"),
    };
    let target = if route.status {
        Target::Status
    } else {
        Target::Main
    };
    let Some(key) = route.key() else {
        let namespace = route.namespace.as_deref();
        return match request.method.as_str() {
            "GET" => state.list(kind, namespace, query).map(|list| (200, list)),
            "POST" if kind.namespaced && namespace.is_none() => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
            "POST" => {
                let object = parse_json_body(&request.body)?;
                state
                    .create(kind, namespace, object, &opts)
                    .map(|object| (201, object))
            }
            "DELETE" => state
                .delete_collection(kind, namespace, query, &opts)
                .map(|list| (200, list)),
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        };
    };
    let writes = matches!(request.method.as_str(), "PUT" | "PATCH");
    if writes && state.objects.contains_key(&key) && state.take_injected_conflict(&key) {
        return Err(ApiError::conflict(kind, &key.name));
    }
    match request.method.as_str() {
        "GET" => state.get(kind, &key).map(|object| (200, object)),
        "PUT" => {
            let object = parse_json_body(&request.body)?;
            state
                .replace(kind, &key, object, target, &opts)
                .map(|object| (200, object))
        }
        "PATCH" => {
            let content_type = request.header("content-type").unwrap_or("");
            state.patch(kind, &key, content_type, &request.body, target, &opts)
        }
        "DELETE" if !route.status => {
            let options = if request.body.is_empty() {
                Value::Null
            } else {
                parse_json_body(&request.body)?
            };
            state.delete(kind, &key, &options, &opts)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded: {e}: {}",
            String::from_utf8_lossy(body)
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP: the wire

/// Reads one HTTP/1.1 request. `Ok(None)` when the client sent nothing.
fn read_request(reader: &mut impl BufRead) -> Result<Option<HttpRequest>, ApiError> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => return Ok(None),
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(ApiError::bad_request("malformed request line"));
    };
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if length > MAX_BODY {
            return Err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            ));
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        body
    };
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let query = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    Ok(Some(HttpRequest {
        method: method.to_owned(),
        path: percent_decode(path, false),
        raw_query: raw_query.to_owned(),
        query,
        headers,
        body,
        client_certificate: false,
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ApiError> {
    let broken = |what: &str| ApiError::bad_request(format!("malformed chunked body: {what}"));
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader
            .read_line(&mut size_line)
            .map_err(|e| broken(&e.to_string()))?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| broken("chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut trailer = String::new();
                let n = reader
                    .read_line(&mut trailer)
                    .map_err(|e| broken(&e.to_string()))?;
                if n == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            ));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| broken(&e.to_string()))?;
        let mut crlf = [0u8; 2];
        reader
            .read_exact(&mut crlf)
            .map_err(|e| broken(&e.to_string()))?;
    }
}

fn write_response(stream: &mut impl Write, response: &HttpResponse) {
    let extra: String = response
        .extra_headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\n{extra}Connection: close\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response.body);
    let _ = stream.flush();
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// `%XX` decoding; `+` is a space in queries (form encoding) but not in paths.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
