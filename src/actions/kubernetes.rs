//! `kubernetes`: get, create, patch (merge, JSON patch, server-side apply), delete or wait on
//! any resource, custom resources included, through kube-rs.
//!
//! The cluster comes from the kubeconfig (`KUBECONFIG`, else `~/.kube/config`; the step's
//! `context` or the current one) or, without a kubeconfig, from the in-cluster service
//! account. Kinds are looked up in the API server's discovery document of their group and
//! version, so a misspelt kind is named with the kinds that exist. API errors come back as
//! the server's own `Status` message, with the step and the resource named.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::Value;

use super::body::Fields;
use super::{
    Action, ActionError, ActionFuture, ActionInput, PlanView, PreflightError, PreflightFuture,
};
use crate::runbook::de::closest;
use crate::runbook::validate::Bundle;
use crate::runbook::{keys_of, model};
use crate::template::Escape;

/// The field manager named in server-side apply, and in `managedFields` for every write.
pub const FIELD_MANAGER: &str = "runbook";

/// How often `wait` reads the resource again.
const WAIT_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a `Retry-After` is honoured inside a wait: a server asking for more is asked
/// again sooner (the wait's own timeout still bounds the whole).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// `wait` gives up after this long unless it says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// A merge or JSON patch that carries no `resourceVersion` does not ask for optimistic
/// concurrency: a 409 then only means another writer got in between, and the patch is sent
/// again (client-go's `RetryOnConflict` does the same), this many times at most.
const CONFLICT_RETRIES: u32 = 5;

pub struct Kubernetes;

impl Action for Kubernetes {
    fn key(&self) -> &'static str {
        "kubernetes"
    }

    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a> {
        Box::pin(async move {
            let rendered = (input.render)(input.body, Escape::Plain)
                .map_err(|e| ActionError::invalid(format!("`kubernetes`: {e}")))?;
            let request = Request::read(&rendered)?;
            let work = request.run(&input);
            tokio::select! {
                result = work => result,
                _ = input.cancel.cancelled() => Err(ActionError::cancelled("cancelled")),
            }
        })
    }

    /// The change the step would send: the request in one line (`kubernetes PATCH
    /// flink.apache.org/v1beta1 FlinkDeployment flink/orders`) and the document it sends.
    /// `None` when the body cannot be read before the run (a templated operation).
    fn plan_view(&self, body: &Value) -> Option<PlanView> {
        let request = Request::read(body).ok()?;
        let mut shown = serde_json::Map::new();
        if let Some(context) = &request.context {
            shown.insert("context".to_owned(), Value::String(context.clone()));
        }
        match &request.operation {
            Operation::Patch { patch, .. } => {
                shown.insert("patch".to_owned(), patch.clone());
            }
            Operation::Create { manifest } => {
                shown.insert("manifest".to_owned(), manifest.clone());
            }
            Operation::Get | Operation::Delete | Operation::Wait { .. } => {}
        }
        Some(PlanView {
            summary: format!("kubernetes {}", request.describe()),
            shown: Value::Object(shown),
        })
    }

    fn preflight<'a>(
        &'a self,
        bundle: &'a Bundle,
        inputs: &'a serde_json::Map<String, Value>,
    ) -> PreflightFuture<'a> {
        Box::pin(async move {
            preflight(bundle, inputs)
                .await
                .map_err(|message| PreflightError {
                    action: "kubernetes",
                    message,
                })
        })
    }
}

/// One operation on one resource, read from the rendered body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub context: Option<String>,
    pub operation: Operation,
    pub target: Target,
}

/// The resource an operation is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Get,
    Create {
        manifest: Value,
    },
    Patch {
        kind: PatchKind,
        patch: Value,
    },
    Delete,
    Wait {
        condition: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Apply,
}

impl PatchKind {
    pub fn name(self) -> &'static str {
        match self {
            PatchKind::Merge => "merge",
            PatchKind::Json => "json",
            PatchKind::Apply => "apply",
        }
    }

    /// The HTTP content type the patch is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Json => "application/json-patch+json",
            PatchKind::Apply => "application/apply-patch+yaml",
        }
    }
}

impl Target {
    /// `FlinkDeployment flink/orders` or `Namespace flink`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{} {namespace}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.rsplit_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

impl Request {
    /// Reads the rendered body; `runbook validate` checked its shape, so what fails here is
    /// a template that gave a value of the wrong type.
    pub fn read(body: &Value) -> Result<Self, ActionError> {
        let fields = Fields::new("kubernetes", body, &keys_of::<model::Kubernetes>())?;
        // An empty context (an input left at its default "") means the current one.
        let context = fields.text("context")?.filter(|c| !c.is_empty());
        // `known`: the keys of the operation's body, a resource and what the operation adds.
        let target =
            |place: &str, value: &Value, known: &[String]| -> Result<Target, ActionError> {
                let fields = Fields::new(format!("kubernetes.{place}"), value, known)?;
                Ok(Target {
                    api_version: required(&fields, "api_version")?,
                    kind: required(&fields, "kind")?,
                    name: required(&fields, "name")?,
                    namespace: fields.text("namespace")?.filter(|n| !n.is_empty()),
                })
            };
        let (operation, target) = if let Some(get) = fields.get("get") {
            (
                Operation::Get,
                target("get", get, &keys_of::<model::ResourceRef>())?,
            )
        } else if let Some(delete) = fields.get("delete") {
            (
                Operation::Delete,
                target("delete", delete, &keys_of::<model::ResourceRef>())?,
            )
        } else if let Some(patch) = fields.get("patch") {
            let known = keys_of::<model::KubernetesPatch>();
            let resource = target("patch", patch, &known)?;
            let body = Fields::new("kubernetes.patch", patch, &known)?;
            let kind = match body.text("type")?.as_deref() {
                None | Some("merge") => PatchKind::Merge,
                Some("json") => PatchKind::Json,
                Some("apply") => PatchKind::Apply,
                Some(other) => {
                    return Err(ActionError::invalid(format!(
                        "`kubernetes.patch.type` is `{other}`; use merge, json or apply"
                    )));
                }
            };
            let document = body.get("patch").cloned().ok_or_else(|| {
                ActionError::invalid("`kubernetes.patch` has no `patch` document")
            })?;
            let operation = Operation::Patch {
                kind,
                patch: document,
            };
            (operation, resource)
        } else if let Some(wait) = fields.get("wait") {
            let known = keys_of::<model::KubernetesWait>();
            let resource = target("wait", wait, &known)?;
            let body = Fields::new("kubernetes.wait", wait, &known)?;
            let condition = required(&body, "condition")?;
            let timeout = match body.text("timeout")? {
                Some(text) => {
                    crate::runbook::Duration::parse(&text)
                        .ok_or_else(|| {
                            ActionError::invalid(format!(
                                "`kubernetes.wait.timeout` is `{text}`, not a duration such as 30s or 10m"
                            ))
                        })?
                        .0
                }
                None => DEFAULT_WAIT,
            };
            (Operation::Wait { condition, timeout }, resource)
        } else if let Some(create) = fields.get("create") {
            let body = Fields::new(
                "kubernetes.create",
                create,
                &keys_of::<model::KubernetesCreate>(),
            )?;
            let manifest = body
                .get("manifest")
                .cloned()
                .ok_or_else(|| ActionError::invalid("`kubernetes.create` has no `manifest`"))?;
            let text = |pointer: &str| manifest.pointer(pointer).and_then(Value::as_str);
            let (Some(api_version), Some(kind)) = (text("/apiVersion"), text("/kind")) else {
                return Err(ActionError::invalid(
                    "`kubernetes.create.manifest` needs `apiVersion` and `kind`",
                ));
            };
            let name = text("/metadata/name").unwrap_or_default().to_owned();
            let namespace = text("/metadata/namespace")
                .map(str::to_owned)
                .or(body.text("namespace")?)
                .filter(|n| !n.is_empty());
            let resource = Target {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                name,
                namespace,
            };
            (Operation::Create { manifest }, resource)
        } else {
            return Err(ActionError::invalid(
                "`kubernetes` needs one of get, create, patch, delete or wait",
            ));
        };
        Ok(Request {
            context,
            operation,
            target,
        })
    }

    /// What the operation does, in one line: `PATCH flink.apache.org/v1beta1 FlinkDeployment
    /// flink/orders (merge, application/merge-patch+json)`.
    pub fn describe(&self) -> String {
        let resource = format!("{} {}", self.target.api_version, self.target.describe());
        match &self.operation {
            Operation::Get => format!("GET {resource}"),
            Operation::Create { .. } => format!("CREATE {resource}"),
            Operation::Patch { kind, .. } => {
                format!(
                    "PATCH {resource} ({}, {})",
                    kind.name(),
                    kind.content_type()
                )
            }
            Operation::Delete => format!("DELETE {resource}"),
            Operation::Wait { condition, timeout } => format!(
                "WAIT {resource} until `{condition}` (at most {})",
                crate::runbook::Duration(*timeout)
            ),
        }
    }

    async fn run(&self, input: &ActionInput<'_>) -> Result<Value, ActionError> {
        let step = input.step_path;
        let cluster = cluster(self.context.as_deref(), input)
            .await
            .map_err(|e| ActionError::invalid(format!("step `{step}`: {e}")))?;
        let shown = format!("step `{step}`, {}", self.target.describe());
        let started = Instant::now();
        let (api, namespace) = loop {
            match cluster.api_for(&self.target).await {
                Ok(found) => break found,
                // A wait looks the kind up through the same blips it waits through.
                Err(error) => match (&self.operation, error.retry_in) {
                    (Operation::Wait { timeout, .. }, Some(delay))
                        if started.elapsed() + delay < *timeout =>
                    {
                        (input.warn)(format!(
                            "{shown}: {} (transient: waiting {} and trying again)",
                            error.message,
                            crate::runbook::Duration(delay)
                        ));
                        tokio::time::sleep(delay).await;
                    }
                    _ => return Err(ActionError::failed(format!("{shown}: {}", error.message))),
                },
            }
        };
        // Messages name the namespace the request went to, defaulted or not.
        let target = Target {
            namespace,
            ..self.target.clone()
        };
        let place = || format!("step `{step}`, {}", target.describe());
        let api_error =
            |error: kube::Error| ActionError::failed(format!("{}: {}", place(), describe(error)));
        match &self.operation {
            Operation::Get => api
                .get(&self.target.name)
                .await
                .map(to_json)
                .map_err(api_error),
            Operation::Create { manifest } => {
                let object: DynamicObject = serde_json::from_value(manifest.clone())
                    .map_err(|e| ActionError::invalid(format!("{}: the manifest: {e}", place())))?;
                api.create(&post_params(), &object)
                    .await
                    .map(to_json)
                    .map_err(api_error)
            }
            Operation::Patch { kind, patch } => {
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                };
                let pinned = patch.pointer("/metadata/resourceVersion").is_some();
                let mut conflicts = 0;
                loop {
                    let document = match kind {
                        PatchKind::Merge => Patch::Merge(patch.clone()),
                        PatchKind::Apply => Patch::Apply(patch.clone()),
                        PatchKind::Json => Patch::Json(
                            serde_json::from_value::<json_patch::Patch>(patch.clone()).map_err(
                                |e| {
                                    ActionError::invalid(format!(
                                        "{}: the JSON patch (RFC 6902): {e}",
                                        place()
                                    ))
                                },
                            )?,
                        ),
                    };
                    match api.patch(&self.target.name, &params, &document).await {
                        Ok(object) => return Ok(to_json(object)),
                        Err(kube::Error::Api(status))
                            if status.code == 409
                                && *kind != PatchKind::Apply
                                && !pinned
                                && conflicts < CONFLICT_RETRIES =>
                        {
                            conflicts += 1;
                            tokio::time::sleep(Duration::from_millis(50 << conflicts)).await;
                        }
                        Err(error) => return Err(api_error(error)),
                    }
                }
            }
            Operation::Delete => match api
                .delete(&self.target.name, &DeleteParams::default())
                .await
            {
                Ok(either) => Ok(either
                    .map_left(to_json)
                    .map_right(|status| serde_json::to_value(status).unwrap_or(Value::Null))
                    .into_inner()),
                Err(error) => Err(api_error(error)),
            },
            Operation::Wait { condition, timeout } => {
                let mut last: Option<Value> = None;
                // The transient error last seen, and how many in a row: said in the warning
                // when it changes, and in the timeout's message.
                let mut transient: Option<(String, u32)> = None;
                loop {
                    let remaining = timeout.saturating_sub(started.elapsed());
                    // kube-rs retries 429, 503 and 504 itself (after Retry-After): bounded by
                    // what is left of the wait, so that the wait ends on time.
                    let answer = tokio::time::timeout(remaining, api.get(&self.target.name)).await;
                    let mut delay = WAIT_INTERVAL;
                    match answer {
                        Ok(Ok(object)) => {
                            transient = None;
                            let object = to_json(object);
                            match (input.eval_over)(condition, &object) {
                                Ok(Value::Null | Value::Bool(false)) => last = Some(object),
                                Ok(_) => return Ok(object),
                                // Evaluated over the live resource, which may change: another
                                // attempt can succeed.
                                Err(e) => {
                                    return Err(ActionError::failed(format!(
                                        "{}: `condition`: {e}",
                                        place()
                                    )));
                                }
                            }
                        }
                        // Not there yet is worth waiting for.
                        Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                            transient = None;
                        }
                        // So is an API server that is busy, restarting or out of reach for a
                        // moment: only a definite answer ends a wait.
                        Ok(Err(error)) => match retry_in(&error) {
                            Some(wanted) => {
                                let message = describe(error);
                                let repeated =
                                    transient.as_ref().is_some_and(|(seen, _)| *seen == message);
                                if !repeated {
                                    (input.warn)(format!(
                                        "{}: {message} (transient: the wait goes on)",
                                        place()
                                    ));
                                }
                                let count = transient.map_or(0, |(_, n)| n) + 1;
                                transient = Some((message, count));
                                delay = wanted.max(WAIT_INTERVAL);
                            }
                            None => return Err(api_error(error)),
                        },
                        // The wait's time ran out inside a request (and its retries).
                        Err(_) => {}
                    }
                    if started.elapsed() + delay > *timeout {
                        let seen = match &last {
                            Some(object) => format!(
                                "; last seen status: {}",
                                short(object.get("status").unwrap_or(&Value::Null))
                            ),
                            None => "; it was never found".to_owned(),
                        };
                        let errors = match &transient {
                            Some((message, 1)) => format!("; last request: {message}"),
                            Some((message, n)) => {
                                format!("; the last {n} requests failed: {message}")
                            }
                            None => String::new(),
                        };
                        let error = ActionError::failed(format!(
                            "{}: `{condition}` did not hold within {}{seen}{errors}",
                            place(),
                            crate::runbook::Duration(*timeout)
                        ));
                        return Err(match last {
                            Some(object) => error.with_result(object),
                            None => error,
                        });
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Whether an API error is transient, worth trying again inside a wait, and after how long:
/// 429 Too Many Requests (after its `Retry-After`), a 5xx (the server or a proxy in front of
/// it failed this request: etcd timed out, the server is restarting), or the connection
/// failing on the way (refused, reset, closed before the answer, timed out: an API server
/// restart, a load balancer's cut, a dropped port-forward). A TLS or configuration problem
/// (an `InvalidData` or `InvalidInput` I/O error under the connection error), a 4xx other than
/// 429, or anything else is a definite answer.
fn retry_in(error: &kube::Error) -> Option<Duration> {
    match error {
        kube::Error::Api(status) if status.code == 429 => Some(
            status
                .details
                .as_ref()
                .map(|d| Duration::from_secs(d.retry_after_seconds.into()))
                .filter(|d| !d.is_zero())
                .unwrap_or(WAIT_INTERVAL)
                .min(MAX_RETRY_AFTER),
        ),
        kube::Error::Api(status) if status.code >= 500 => Some(WAIT_INTERVAL),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
            while let Some(current) = cause {
                if let Some(io) = current.downcast_ref::<std::io::Error>()
                    && matches!(
                        io.kind(),
                        std::io::ErrorKind::InvalidData
                            | std::io::ErrorKind::InvalidInput
                            | std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::NotFound
                    )
                {
                    return None;
                }
                cause = current.source();
            }
            Some(WAIT_INTERVAL)
        }
        _ => None,
    }
}

fn required(fields: &Fields<'_>, key: &str) -> Result<String, ActionError> {
    match fields.text(key)? {
        Some(text) if !text.is_empty() => Ok(text),
        Some(_) => Err(ActionError::invalid(format!(
            "`{}` is empty",
            fields.name(key)
        ))),
        None => Err(ActionError::invalid(format!(
            "`{}` is missing",
            fields.name(key)
        ))),
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// A value cut short for a message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// A kube-rs error as a person should read it: the API server's own message for API errors.
fn describe(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", status.reason)
            };
            format!("{} ({}{reason})", status.message, status.code)
        }
        other => format!("cannot reach the API server: {}", chain(&other)),
    }
}

/// An error with its causes, which carry the useful part (connection refused, certificate).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a kind could not be looked up in discovery, and whether asking again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
struct KindLookupError {
    message: String,
    /// `Some` when the failure is transient (see [`retry_in`]): try again after this long.
    retry_in: Option<Duration>,
}

impl KindLookupError {
    fn definite(message: String) -> KindLookupError {
        KindLookupError {
            message,
            retry_in: None,
        }
    }
}

/// A client for one kubeconfig context, with the kinds it has looked up.
struct Cluster {
    client: Client,
    default_namespace: String,
    kinds: Mutex<HashMap<String, (ApiResource, bool)>>,
}

/// Clients by context (`None`: the current context, or in-cluster), made once per process.
fn clusters() -> &'static Mutex<HashMap<Option<String>, Arc<Cluster>>> {
    static CLUSTERS: OnceLock<Mutex<HashMap<Option<String>, Arc<Cluster>>>> = OnceLock::new();
    CLUSTERS.get_or_init(Default::default)
}

async fn cluster(context: Option<&str>, input: &ActionInput<'_>) -> Result<Arc<Cluster>, String> {
    let key = context.map(str::to_owned);
    if let Some(cluster) = clusters().lock().expect("clusters lock").get(&key) {
        return Ok(cluster.clone());
    }
    let config = load_config(context).await?;
    if config.accept_invalid_certs {
        (input.warn)(format!(
            "the kubeconfig {} turns off TLS verification (insecure-skip-tls-verify) for {}",
            context.map_or("current context".to_owned(), |c| format!("context `{c}`")),
            config.cluster_url
        ));
    }
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config)
        .map_err(|e| format!("cannot make a Kubernetes client: {}", chain(&e)))?;
    let cluster = Arc::new(Cluster {
        client,
        default_namespace,
        kinds: Mutex::new(HashMap::new()),
    });
    clusters()
        .lock()
        .expect("clusters lock")
        .insert(key, cluster.clone());
    Ok(cluster)
}

/// The configuration for a context: from the kubeconfig, or in-cluster when there is no
/// kubeconfig and no context is named.
pub async fn load_config(context: Option<&str>) -> Result<Config, String> {
    let kubeconfig = match Kubeconfig::read() {
        Ok(kubeconfig) => Some(kubeconfig),
        Err(error) if kubeconfig_exists() => {
            return Err(format!(
                "cannot read the kubeconfig {}: {}",
                kubeconfig_place(),
                chain(&error)
            ));
        }
        Err(_) => None,
    };
    let Some(kubeconfig) = kubeconfig else {
        if let Some(context) = context {
            return Err(format!(
                "context `{context}` is named, but there is no kubeconfig ({})",
                kubeconfig_place()
            ));
        }
        return Config::incluster().map_err(|_| {
            format!(
                "no kubeconfig ({}) and not running inside a cluster",
                kubeconfig_place()
            )
        });
    };
    check_context(&kubeconfig, context)?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("the kubeconfig {}: {}", kubeconfig_place(), chain(&e)))
}

/// The named context (or the current one) exists in the kubeconfig.
fn check_context(kubeconfig: &Kubeconfig, context: Option<&str>) -> Result<(), String> {
    let names: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let wanted = match context {
        Some(context) => context,
        None => match kubeconfig.current_context.as_deref() {
            Some(current) if !current.is_empty() => current,
            _ => {
                return Err(format!(
                    "the kubeconfig {} has no current context; name one with `context:` (it has: {})",
                    kubeconfig_place(),
                    names.join(", ")
                ));
            }
        },
    };
    if names.contains(&wanted) {
        return Ok(());
    }
    let hint = closest(wanted, names.iter().copied())
        .map(|near| format!("; did you mean `{near}`?"))
        .unwrap_or_default();
    Err(format!(
        "the kubeconfig {} has no context `{wanted}` (it has: {}){hint}",
        kubeconfig_place(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

fn kubeconfig_exists() -> bool {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(paths) => std::env::split_paths(&paths).any(|p| p.exists()),
        None => default_kubeconfig().is_some_and(|p| p.exists()),
    }
}

fn default_kubeconfig() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".kube/config"))
}

/// Where the kubeconfig is read from, for messages.
fn kubeconfig_place() -> String {
    match std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()) {
        Some(paths) => format!("KUBECONFIG={paths}"),
        None => "~/.kube/config".to_owned(),
    }
}

/// Checks, before a run starts, that the cluster configuration can be used for every context
/// the bundle's `kubernetes` steps name (or the current context, for those that name none).
/// A context that is a template is checked when its step runs.
async fn preflight(bundle: &Bundle, inputs: &serde_json::Map<String, Value>) -> Result<(), String> {
    let mut contexts: Vec<Option<String>> = Vec::new();
    let mut readable_only = false;
    let context_json = serde_json::json!({ "inputs": inputs });
    for loaded in bundle.runbooks.values() {
        for step in loaded.runbook.all_steps() {
            let bodies = [
                step.kubernetes.as_deref(),
                step.fallback.as_ref().and_then(|f| f.kubernetes.as_deref()),
                step.verify.as_ref().and_then(|v| v.kubernetes.as_deref()),
            ];
            for body in bodies.into_iter().flatten() {
                let mut context = body.value.context.as_ref().map(|c| c.value.clone());
                if let Some(template) = context.clone().filter(|c| c.contains("{{")) {
                    // The root runbook's inputs are known now; a called runbook's come from
                    // its caller at run time, and only the kubeconfig itself is checked.
                    let rendered = (bundle.root().map(|r| &r.file.path) == Some(&loaded.file.path))
                        .then(|| {
                            crate::template::render(&template, &context_json, Escape::Plain).ok()
                        })
                        .flatten();
                    context = match rendered {
                        Some(Value::String(text)) => Some(text),
                        Some(_) | None => {
                            readable_only = true;
                            continue;
                        }
                    };
                }
                // An empty context means the current one, as when the step runs.
                let context = context.filter(|c| !c.is_empty());
                if !contexts.contains(&context) {
                    contexts.push(context);
                }
            }
        }
    }
    for context in &contexts {
        load_config(context.as_deref()).await?;
    }
    if readable_only && contexts.is_empty() {
        // Which context is only known at run time; a kubeconfig that cannot be read, or no
        // configuration at all, is known now.
        if let Err(error) = Kubeconfig::read() {
            if kubeconfig_exists() {
                return Err(format!(
                    "cannot read the kubeconfig {}: {}",
                    kubeconfig_place(),
                    chain(&error)
                ));
            }
            if Config::incluster().is_err() {
                return Err(format!(
                    "no kubeconfig ({}) and not running inside a cluster",
                    kubeconfig_place()
                ));
            }
        }
    }
    Ok(())
}

impl Cluster {
    /// The API for a target: its kind looked up in discovery, its namespace resolved.
    /// The API for a target, and the namespace it addresses (`None` for a cluster-scoped kind).
    async fn api_for(
        &self,
        target: &Target,
    ) -> Result<(Api<DynamicObject>, Option<String>), KindLookupError> {
        let (resource, namespaced) = self.kind(target).await?;
        Ok(if namespaced {
            let namespace = target
                .namespace
                .clone()
                .unwrap_or_else(|| self.default_namespace.clone());
            (
                Api::namespaced_with(self.client.clone(), &namespace, &resource),
                Some(namespace),
            )
        } else {
            (Api::all_with(self.client.clone(), &resource), None)
        })
    }

    async fn kind(&self, target: &Target) -> Result<(ApiResource, bool), KindLookupError> {
        let key = format!("{}/{}", target.api_version, target.kind);
        if let Some(found) = self.kinds.lock().expect("kinds lock").get(&key) {
            return Ok(found.clone());
        }
        let gvk = target.gvk();
        let listing = if gvk.group.is_empty() {
            self.client.list_core_api_resources(&gvk.version).await
        } else {
            self.client
                .list_api_group_resources(&target.api_version)
                .await
        };
        let list = match listing {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(KindLookupError::definite(format!(
                    "the API server does not serve `{}` (is its CustomResourceDefinition installed?)",
                    target.api_version
                )));
            }
            Err(error) => {
                return Err(KindLookupError {
                    retry_in: retry_in(&error),
                    message: describe(error),
                });
            }
        };
        let kinds: Vec<&str> = list
            .resources
            .iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| r.kind.as_str())
            .collect();
        let Some(found) = list
            .resources
            .iter()
            .find(|r| r.kind == target.kind && !r.name.contains('/'))
        else {
            let hint = closest(&target.kind, kinds.iter().copied())
                .map(|near| format!("; did you mean `{near}`?"))
                .unwrap_or_default();
            return Err(KindLookupError::definite(format!(
                "`{}` has no kind `{}` (it has: {}){hint}",
                target.api_version,
                target.kind,
                kinds.join(", ")
            )));
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, &found.name);
        let entry = (resource, found.namespaced);
        self.kinds
            .lock()
            .expect("kinds lock")
            .insert(key, entry.clone());
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_each_operation() {
        let patch = Request::read(&json!({
            "context": "prod",
            "patch": {
                "api_version": "flink.apache.org/v1beta1",
                "kind": "FlinkDeployment",
                "name": "orders",
                "namespace": "flink",
                "type": "json",
                "patch": [{"op": "replace", "path": "/spec/image", "value": "flink:2"}]
            }
        }))
        .unwrap();
        assert_eq!(patch.context.as_deref(), Some("prod"));
        assert!(matches!(
            patch.operation,
            Operation::Patch {
                kind: PatchKind::Json,
                ..
            }
        ));
        assert_eq!(patch.target.describe(), "FlinkDeployment flink/orders");
        assert_eq!(
            patch.describe(),
            "PATCH flink.apache.org/v1beta1 FlinkDeployment flink/orders (json, application/json-patch+json)"
        );

        let create = Request::read(&json!({
            "create": {
                "namespace": "flink",
                "manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
            }
        }))
        .unwrap();
        assert_eq!(create.target.namespace.as_deref(), Some("flink"));
        assert_eq!(create.target.gvk().group, "");

        let wait = Request::read(&json!({
            "wait": {"api_version": "v1", "kind": "Namespace", "name": "n", "condition": ".status", "timeout": "2m"}
        }))
        .unwrap();
        assert_eq!(
            wait.operation,
            Operation::Wait {
                condition: ".status".to_owned(),
                timeout: Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn a_templated_value_of_the_wrong_type_is_named() {
        let error = Request::read(&json!({
            "get": {"api_version": "v1", "kind": "ConfigMap", "name": ["a"]}
        }))
        .unwrap_err();
        assert!(
            error.message.contains("kubernetes.get.name"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_missing_context_is_named_with_the_ones_that_exist() {
        let kubeconfig = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c, user: u}\n- name: prod-eu\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        assert!(check_context(&kubeconfig, None).is_ok());
        let error = check_context(&kubeconfig, Some("prod-e")).unwrap_err();
        assert!(
            error.contains("no context `prod-e` (it has: dev, prod-eu)"),
            "{error}"
        );
        assert!(error.contains("did you mean `prod-eu`?"), "{error}");
    }
}
