//! `kubernetes`: what the language knows of it (its fields, its rules, its summary). It
//! runs in `actions::kubernetes`.

use super::*;
use crate::template::jq::Root;

/// A Kubernetes operation, on any resource kind including custom resources.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    /// The kubeconfig context to use; default the current context (or in-cluster config).
    #[serde(default)]
    pub context: Option<Spanned<String>>,
    /// Read a resource.
    #[serde(default)]
    pub get: Option<Spanned<ResourceRef>>,
    /// Create a resource from a manifest.
    #[serde(default)]
    pub create: Option<Spanned<KubernetesCreate>>,
    /// Patch a resource.
    #[serde(default)]
    pub patch: Option<Spanned<KubernetesPatch>>,
    /// Delete a resource.
    #[serde(default)]
    pub delete: Option<Spanned<ResourceRef>>,
    /// Poll a resource until a jq condition over it holds.
    #[serde(default)]
    pub wait: Option<Spanned<KubernetesWait>>,
}

/// The operations a `kubernetes` action can name; exactly one is given.
pub const KUBERNETES_OPERATIONS: &[&str] = &["get", "create", "patch", "delete", "wait"];

/// One resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// Group and version, such as `flink.apache.org/v1beta1` or `v1`.
    pub api_version: Spanned<String>,
    /// The kind, such as `FlinkDeployment`.
    pub kind: Spanned<String>,
    /// The resource's name.
    pub name: Spanned<String>,
    /// Its namespace; omitted for cluster-scoped kinds (or the context's default namespace).
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
}

/// Create a resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesCreate {
    /// The whole resource, with apiVersion, kind and metadata.
    pub manifest: Node,
    /// Namespace, when the manifest does not say.
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
}

/// Patch a resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPatch {
    /// Group and version, such as `flink.apache.org/v1beta1`.
    pub api_version: Spanned<String>,
    /// The kind.
    pub kind: Spanned<String>,
    /// The resource's name.
    pub name: Spanned<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    /// merge (RFC 7386, the default), json (RFC 6902) or apply (server-side apply).
    #[serde(default, rename = "type")]
    pub patch_type: Option<Spanned<PatchType>>,
    /// The patch document.
    pub patch: Node,
}

/// How a patch document is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    Merge,
    Json,
    Apply,
}

/// Wait on a resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesWait {
    /// Group and version.
    pub api_version: Spanned<String>,
    /// The kind.
    pub kind: Spanned<String>,
    /// The resource's name.
    pub name: Spanned<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    /// jq over the resource: the wait ends when it holds.
    pub condition: Spanned<String>,
    /// Give up after this long.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
}

impl Kubernetes {
    /// The operations given, by name; a valid body has exactly one.
    fn operations(&self) -> Vec<&'static str> {
        [
            ("get", self.get.is_some()),
            ("create", self.create.is_some()),
            ("patch", self.patch.is_some()),
            ("delete", self.delete.is_some()),
            ("wait", self.wait.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect()
    }
}

impl ActionBody for Kubernetes {
    fn describe(&self) -> String {
        let operation = self.operations().first().copied().unwrap_or("wait");
        format!("kubernetes {operation}")
    }

    fn check_rules<'a>(&'a self, at: Span, checks: &dyn ActionChecks<'a>) {
        if let Some(wait) = &self.wait {
            checks.timeout(wait.timeout.as_ref(), "kubernetes.wait.timeout");
        }
        let given = self.operations();
        if given.len() != 1 {
            checks.error(
                at,
                format!(
                    "kubernetes takes exactly one of `get`, `create`, `patch`, `delete`, `wait`; found {}",
                    if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                ),
                None,
            );
        }
    }

    /// `wait.condition` is jq over the resource; every other string is a template.
    fn check_values<'a>(&'a self, checks: &dyn ActionChecks<'a>) {
        if let Some(wait) = &self.wait {
            checks.jq(&wait.condition, Root::Result, "condition");
        }
        checks.templates_in_body(self.wait.as_ref().map(|w| w.condition.span));
    }
}
