//! `http`: what the language knows of it (its fields, its rules, its summary). It runs in
//! `actions::http`.

use super::*;

/// Make an HTTP request. The result is `{status, headers, body}` (`body` parsed when JSON).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS. Default GET.
    #[serde(default)]
    pub method: Option<Spanned<HttpMethod>>,
    /// The URL.
    pub url: Spanned<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: SpannedMap<Spanned<Text>>,
    /// Query parameters, added to the URL.
    #[serde(default)]
    pub query: SpannedMap<Node>,
    /// A JSON body (sets Content-Type: application/json).
    #[serde(default)]
    pub json: Option<Node>,
    /// A raw text body.
    #[serde(default)]
    pub body: Option<Spanned<String>>,
    /// Credentials.
    #[serde(default)]
    pub auth: Option<Spanned<HttpAuth>>,
    /// TLS settings. Certificates are verified unless `insecure: true`.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Statuses that count as success. Default: any 2xx.
    #[serde(default)]
    pub expect: Option<Spanned<Vec<Spanned<u16>>>>,
    /// Bounds one request, connecting to the end of the response; the step's `timeout`
    /// bounds the whole attempt, polling included.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

/// HTTP credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    /// HTTP basic authentication.
    Basic(BasicAuth),
    /// A bearer token (`Authorization: Bearer ...`).
    Bearer(Spanned<String>),
}

/// A user name and password.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: Spanned<String>,
    pub password: Spanned<String>,
}

/// TLS settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// A PEM file of certificate authorities to trust, in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// Do not verify the server's certificate. The engine warns when a step does this.
    #[serde(default)]
    pub insecure: Option<bool>,
}

impl ActionBody for Http {
    fn describe(&self) -> String {
        format!(
            "http {} {}",
            self.method
                .as_ref()
                .map_or("GET".to_owned(), |m| format!("{:?}", m.value)
                    .to_uppercase()),
            self.url.value
        )
    }

    fn check_rules<'a>(&'a self, _at: Span, checks: &dyn ActionChecks<'a>) {
        checks.timeout(self.timeout.as_ref(), "http.timeout");
        if let (Some(json), Some(_)) = (&self.json, &self.body) {
            checks.error(
                json.visible_span(),
                "http takes `json` or `body`, not both".to_owned(),
                None,
            );
        }
        if let Some(expect) = &self.expect {
            for status in &expect.value {
                if !(100..=599).contains(&status.value) {
                    checks.error(
                        status.span,
                        format!("{} is not an HTTP status", status.value),
                        None,
                    );
                }
            }
        }
    }
}
