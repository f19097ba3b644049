//! `http`: one HTTP request.
//!
//! TLS is rustls; certificates are checked against the system's trust store (plus
//! `tls.ca_file` when given) unless `tls.insecure: true`, which is announced through
//! [`ActionInput::warn`] on every attempt so that it never goes unnoticed.

use std::path::Path;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode, Url};
use serde_json::{Map, Value, json};

use super::body::{Fields, text, wrong_type};
use super::{Action, ActionError, ActionFuture, ActionInput};
use crate::runbook::keys_of;
use crate::template::Escape;
use crate::template::url_template::build_url;

/// The `http` action.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    /// The largest response body read; a larger one fails the attempt rather than fill
    /// memory (results are meant for `outputs` to pick small values from).
    pub max_body: usize,
}

impl Http {
    /// The settings a runbook gets: response bodies up to 16 MiB.
    pub const DEFAULT: Http = Http {
        max_body: 16 * 1024 * 1024,
    };
}

impl Default for Http {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Action for Http {
    fn key(&self) -> &'static str {
        "http"
    }

    fn run<'a>(&'a self, input: ActionInput<'a>) -> ActionFuture<'a> {
        Box::pin(self.request(input))
    }
}

/// Without a step `timeout`, an address that drops packets would otherwise hang an attempt
/// for the operating system's TCP timeout (minutes); a refused connection fails at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The keys of an `http` body, and of its `tls` and `auth.basic`: the fields of the model.
static KEYS: LazyLock<Vec<String>> = LazyLock::new(keys_of::<crate::runbook::Http>);
static TLS_KEYS: LazyLock<Vec<String>> = LazyLock::new(keys_of::<crate::runbook::Tls>);
static BASIC_KEYS: LazyLock<Vec<String>> = LazyLock::new(keys_of::<crate::runbook::BasicAuth>);
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A request, rendered and checked.
struct Spec {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    auth: Option<Auth>,
    ca_file: Option<String>,
    insecure: bool,
    expect: Option<Vec<u16>>,
    /// Bounds one request, from connecting to the end of the body; the step's `timeout`
    /// bounds the whole attempt (every request of a polling `until` together).
    timeout: Option<std::time::Duration>,
}

enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl Spec {
    fn render(input: &ActionInput<'_>) -> Result<Spec, ActionError> {
        let Value::Object(body) = input.body else {
            return Err(wrong_type("http", "a map", input.body));
        };
        // The URL is rendered on its own: its values are percent-encoded for the part of
        // the URL they stand in (see `template::url_template`).
        let others: Map<String, Value> = body
            .iter()
            .filter(|(key, _)| key.as_str() != "url")
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let rendered = (input.render)(&Value::Object(others), Escape::Plain)
            .map_err(|e| ActionError::invalid(format!("http: {e}")))?;
        let fields = Fields::new("http", &rendered, &KEYS)?;
        let url_text = match body.get("url").filter(|url| !url.is_null()) {
            None => None,
            Some(url) => {
                let pieces = (input.render_pieces)(&text(url, "http.url")?)
                    .map_err(|e| ActionError::invalid(format!("http: {e}")))?;
                Some(
                    build_url(&pieces)
                        .map_err(|e| ActionError::invalid(format!("`http.url`: {e}")))?,
                )
            }
        };

        let method = match fields.text("method")? {
            None => Method::GET,
            Some(name) => {
                let upper = name.to_ascii_uppercase();
                if !METHODS.contains(&upper.as_str()) {
                    return Err(ActionError::invalid(format!(
                        "unknown method `{name}` in `http.method` (expected one of: {})",
                        METHODS.join(", ")
                    )));
                }
                Method::from_bytes(upper.as_bytes())
                    .map_err(|e| ActionError::invalid(format!("`http.method`: {e}")))?
            }
        };

        let Some(url_text) = url_text else {
            return Err(ActionError::invalid("`http.url` is required"));
        };
        let mut url = Url::parse(&url_text).map_err(|e| {
            ActionError::invalid(format!("`http.url` `{url_text}` is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ActionError::invalid(format!(
                "`http.url` `{url_text}` must start with http:// or https://"
            )));
        }
        add_query(&mut url, fields.get("query"))?;

        let mut headers = HeaderMap::new();
        let body = match (fields.get("json"), fields.get("body")) {
            (Some(_), Some(_)) => {
                return Err(ActionError::invalid(
                    "`http` takes one of `json` and `body`, not both",
                ));
            }
            (Some(value), None) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Some(value.to_string().into_bytes())
            }
            (None, Some(_)) => fields.text("body")?.map(String::into_bytes),
            (None, None) => None,
        };
        // Written after the JSON content type, so a runbook can still choose its own.
        for (name, value) in fields.text_map("headers")? {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ActionError::invalid(format!("`http.headers`: `{name}` is not a header name"))
            })?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                ActionError::invalid(format!(
                    "`http.headers.{name}`: a header value cannot contain control characters"
                ))
            })?;
            headers.insert(header, value);
        }

        let tls = fields.fields("tls", &TLS_KEYS)?;
        let (ca_file, insecure) = match &tls {
            Some(tls) => (tls.text("ca_file")?, tls.bool("insecure")?.unwrap_or(false)),
            None => (None, false),
        };

        Ok(Spec {
            method,
            url,
            headers,
            body,
            auth: auth(&fields)?,
            ca_file,
            insecure,
            expect: expect(fields.get("expect"))?,
            timeout: match fields.text("timeout")? {
                None => None,
                Some(text) => Some(
                    crate::runbook::Duration::parse(&text)
                        .ok_or_else(|| {
                            ActionError::invalid(format!(
                                "`http.timeout` `{text}` is not a duration such as 500ms, 10s or 5m"
                            ))
                        })?
                        .0,
                ),
            },
        })
    }

    /// How messages name the request: `POST https://host/path?x=1`, without a password.
    fn describe(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        format!("{} {url}", self.method)
    }

    fn client(&self) -> Result<Client, ActionError> {
        if self.ca_file.is_none() && !self.insecure {
            return default_client();
        }
        let mut builder = client_builder();
        if self.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(path) = &self.ca_file {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        builder.build().map_err(client_error)
    }

    fn accepts(&self, status: StatusCode) -> bool {
        match &self.expect {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        }
    }
}

/// `query`: name → value, or name → list of values (the name repeated), encoded.
fn add_query(url: &mut Url, query: Option<&Value>) -> Result<(), ActionError> {
    let Some(query) = query else {
        return Ok(());
    };
    let Value::Object(map) = query else {
        return Err(wrong_type("http.query", "a map", query));
    };
    let mut pairs = Vec::new();
    for (name, value) in map {
        let place = format!("http.query.{name}");
        match value {
            Value::Array(items) => {
                for item in items {
                    pairs.push((name, text(item, &place)?));
                }
            }
            other => pairs.push((name, text(other, &place)?)),
        }
    }
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(())
}

fn auth(fields: &Fields<'_>) -> Result<Option<Auth>, ActionError> {
    let Some(auth) = fields.fields("auth", &["basic", "bearer"])? else {
        return Ok(None);
    };
    let basic = auth.fields("basic", &BASIC_KEYS)?;
    let bearer = auth.text("bearer")?;
    match (basic, bearer) {
        (Some(basic), None) => {
            let required = |key| {
                basic.text(key)?.ok_or_else(|| {
                    ActionError::invalid(format!("`{}` is required", basic.name(key)))
                })
            };
            Ok(Some(Auth::Basic {
                username: required("username")?,
                password: required("password")?,
            }))
        }
        (None, Some(token)) => Ok(Some(Auth::Bearer(token))),
        _ => Err(ActionError::invalid(
            "`http.auth` takes exactly one of `basic` and `bearer`",
        )),
    }
}

fn expect(expect: Option<&Value>) -> Result<Option<Vec<u16>>, ActionError> {
    let Some(expect) = expect else {
        return Ok(None);
    };
    let Value::Array(items) = expect else {
        return Err(wrong_type("http.expect", "a list of status codes", expect));
    };
    items
        .iter()
        .map(|item| {
            item.as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| (100..=599).contains(code))
                .ok_or_else(|| {
                    ActionError::invalid(format!(
                        "`http.expect`: {item} is not an HTTP status code (100 to 599)"
                    ))
                })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn client_builder() -> reqwest::ClientBuilder {
    Client::builder()
        .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
}

/// The client for requests with default TLS settings, built once: it holds the connection
/// pool, and loading the system's certificates on every request would be wasted work.
fn default_client() -> Result<Client, ActionError> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = client_builder().build().map_err(client_error)?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

fn client_error(error: reqwest::Error) -> ActionError {
    ActionError::failed(format!("cannot set up HTTPS: {}", causes(&error)))
}

/// The most a `tls.ca_file` may hold: a whole system CA bundle is about 250 KB.
const CA_FILE_LIMIT: u64 = 4 * 1024 * 1024;

fn read_ca_file(path: &str) -> Result<Vec<reqwest::Certificate>, ActionError> {
    let pem = crate::runbook::bounded_read::read_bounded(Path::new(path), CA_FILE_LIMIT).map_err(
        |e| ActionError::invalid(format!("cannot read `http.tls.ca_file` `{path}`: {e}")),
    )?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ActionError::invalid(format!(
            "`http.tls.ca_file` `{path}` is not a PEM certificate file: {}",
            causes(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(ActionError::invalid(format!(
            "`http.tls.ca_file` `{path}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

impl Http {
    async fn request(&self, input: ActionInput<'_>) -> Result<Value, ActionError> {
        let spec = Spec::render(&input)?;
        let client = spec.client()?;
        if spec.insecure {
            let host = spec.url.host_str().unwrap_or("(no host)");
            (input.warn)(format!(
                "TLS verification is off for {host} (insecure: true)"
            ));
        }
        let what = spec.describe();
        let cancelled = || ActionError::cancelled(format!("{what} cancelled"));

        let mut request = client
            .request(spec.method.clone(), spec.url.clone())
            .headers(spec.headers.clone());
        if let Some(body) = &spec.body {
            request = request.body(body.clone());
        }
        if let Some(limit) = spec.timeout {
            request = request.timeout(limit);
        }
        request = match &spec.auth {
            Some(Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };

        let mut response = tokio::select! {
            response = request.send() => response.map_err(|e| send_error(&what, &spec, &e))?,
            () = input.cancel.cancelled() => return Err(cancelled()),
        };
        let status = response.status();
        let headers = headers_json(response.headers());

        let mut bytes = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk.map_err(|e| {
                    ActionError::failed(format!("{what}: reading the response failed: {}", causes(&e)))
                })?,
                () = input.cancel.cancelled() => return Err(cancelled()),
            };
            let Some(chunk) = chunk else { break };
            if bytes.len() + chunk.len() > self.max_body {
                return Err(ActionError::failed(format!(
                    "{what}: the response body is larger than {} bytes",
                    self.max_body
                )));
            }
            bytes.extend_from_slice(&chunk);
        }

        let text = String::from_utf8_lossy(&bytes);
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(text.clone().into_owned()));
        let result = json!({
            "status": status.as_u16(),
            "headers": headers,
            "body": body,
        });
        if spec.accepts(status) {
            return Ok(result);
        }
        let mut message = format!("{what} answered {status}");
        let snippet = snippet(&text);
        if !snippet.is_empty() {
            message.push_str(": ");
            message.push_str(&snippet);
        }
        Err(ActionError::failed(message).with_result(result))
    }
}

/// Response headers as `{name: value}`, names in lower case, repeated headers joined by
/// `, ` as HTTP allows.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<_> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        map.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    Value::Object(map)
}

/// The start of a response body on one line, for a message.
fn snippet(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = flat.chars().take(MAX_CHARS).collect();
    if short.len() < flat.len() {
        short.push('…');
    }
    short
}

fn send_error(what: &str, spec: &Spec, error: &reqwest::Error) -> ActionError {
    let detail = causes(error);
    let mut message = if error.is_timeout() {
        format!("{what}: timed out: {detail}")
    } else if error.is_connect() {
        format!("{what}: cannot connect: {detail}")
    } else if error.is_redirect() {
        format!("{what}: redirects failed: {detail}")
    } else {
        format!("{what}: request failed: {detail}")
    };
    if spec.url.scheme() == "https" && detail.to_ascii_lowercase().contains("certificate") {
        message.push_str(
            " (to trust a private certificate authority, set `tls.ca_file` to its PEM file)",
        );
    }
    ActionError::failed(message)
}

/// The chain of causes under an error, most specific last: reqwest's own top line says
/// little ("error sending request"), the socket's or TLS library's words say what happened.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper's "client error (Connect)" only repeats what the message already says;
        // wrappers that show their inner error's text would say it twice.
        let repeated = parts.last().is_some_and(|last| last.contains(&text));
        if !text.starts_with("client error (") && !repeated {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}
