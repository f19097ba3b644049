//! What the vendor API test doubles (`bai_api.rs`, `ververica_api.rs`) share: a small HTTP/1.1
//! server on 127.0.0.1 (one thread per connection, one request per connection,
//! `Connection: close`, socket timeouts so nothing hangs), the credential checks of the
//! `Authorization` header, and a client of the REAL Flink JobManager REST API that backs both
//! doubles. None of this is a double of Flink: every Flink call goes to the sandbox cluster.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 4 << 20;

/// One request as the doubles see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// `key=value` pairs of the query, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, or an error answer (400) saying why not.
    pub fn json(&self) -> Result<Value, Answer> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Answer::json(
                400,
                json!({"errors": [format!("the request body is not JSON: {e}")]}),
            )
        })
    }

    /// The `user:password` of a `Basic` Authorization header.
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// The token of a `Bearer` Authorization header.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request the double answered, for the tests' assertions.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub status: u16,
}

/// A running server; dropping it stops accepting.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    https: bool,
}

impl HttpServer {
    /// Serves `handler` over HTTP on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> HttpServer {
        Self::start_with(None, handler)
    }

    /// As [`HttpServer::start`], over HTTPS with a self-signed certificate for 127.0.0.1 that
    /// no client trusts: what a cluster's default ingress certificate looks like to `curl`.
    pub fn start_tls(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> HttpServer {
        Self::start_with(Some(Arc::new(self_signed_config())), handler)
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let stop = Arc::new(AtomicBool::new(false));
        let https = tls.is_some();
        let handler = Arc::new(handler);
        let stopping = stop.clone();
        thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handler = handler.clone();
                        let tls = tls.clone();
                        thread::spawn(move || serve(stream, tls, &*handler));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HttpServer { addr, stop, https }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

fn self_signed_config() -> rustls::ServerConfig {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().expect("a server key");
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server parameters")
        .self_signed(&key)
        .expect("a self-signed certificate");
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificate.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("the server TLS configuration")
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &dyn Fn(&Request) -> Answer,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    match tls {
        None => serve_stream(stream, handler),
        Some(config) => {
            let Ok(connection) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(connection, stream);
            while tls.conn.is_handshaking() {
                // A client that does not trust the certificate ends here.
                if tls.conn.complete_io(&mut tls.sock).is_err() {
                    return;
                }
            }
            serve_stream(tls, handler);
        }
    }
}

fn serve_stream(stream: impl Read + Write, handler: &dyn Fn(&Request) -> Answer) {
    let mut reader = BufReader::new(stream);
    let answer = match read_request(&mut reader) {
        Ok(request) => handler(&request),
        Err(message) => Answer::json(400, json!({"errors": [message]})),
    };
    let out = reader.get_mut();
    let reason = match answer.status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out
        .write_all(head.as_bytes())
        .and_then(|()| out.write_all(&answer.body));
    let _ = out.flush();
}

fn read_request(reader: &mut impl BufRead) -> Result<Request, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or("no request line")?.to_owned();
    let target = parts.next().ok_or("no request target")?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(format!("a body of {length} bytes is too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect();
    Ok(Request {
        method,
        path: decode(path),
        query,
        headers,
        body,
    })
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A thread that runs a double's reconciling pass every `period` until stopped.
pub struct Reconciler {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Reconciler {
    pub fn start(period: Duration, mut pass: impl FnMut() + Send + 'static) -> Reconciler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                pass();
                thread::sleep(period);
            }
        });
        Reconciler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop after its current pass.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real Flink behind the doubles

/// A client of the sandbox's JobManager REST API (blocking, bounded by timeouts).
#[derive(Debug, Clone)]
pub struct Flink {
    pub url: String,
}

/// One submission of the sandbox job.
#[derive(Debug, Clone, Default)]
pub struct JobRun {
    /// The Flink job's name.
    pub name: String,
    /// Where its checkpoints go (`file:///...`).
    pub checkpoint_dir: String,
    /// The snapshot it restores from.
    pub savepoint: Option<String>,
    /// The job's parallelism, else the cluster's default.
    pub parallelism: Option<i64>,
}

/// How an asynchronous Flink operation (savepoint, stop) ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The savepoint's location, as Flink reports it (`file:/...`).
    Completed(String),
    /// The failure cause's first line and last cause.
    Failed(String),
}

impl Flink {
    pub fn new(url: &str) -> Flink {
        Flink {
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    /// One request; the status and the JSON body (`Null` when empty or not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client");
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            let mut request = client.request(method, format!("{}{path}", self.url));
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
                }
                Err(e) => (0, json!({"errors": [e.to_string()]})),
            }
        })
    }

    pub fn get(&self, path: &str) -> Value {
        self.call("GET", path, None).1
    }

    /// Uploads the sandbox job's jar; answers its jar id.
    pub fn upload_jar(&self, jar: &std::path::Path) -> Result<String, String> {
        let bytes = std::fs::read(jar).map_err(|e| format!("reading {}: {e}", jar.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let answer: Value = runtime.block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client");
            let boundary = "----runbookvendordouble";
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"job.jar\"\r\nContent-Type: application/java-archive\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(&bytes);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let response = client
                .post(format!("{}/jars/upload", self.url))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let text = response.text().await.map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
        })?;
        let file = answer["filename"]
            .as_str()
            .ok_or_else(|| format!("POST /jars/upload answered {answer}"))?;
        Ok(file.rsplit('/').next().unwrap_or(file).to_owned())
    }

    /// Runs the sandbox job as `job` says; answers the job id.
    pub fn run_job(&self, jar_id: &str, job: &JobRun) -> Result<String, String> {
        let mut request = json!({
            "programArgsList": ["--name", job.name, "--rate-ms", "50", "--checkpoint-dir", job.checkpoint_dir],
        });
        if let Some(savepoint) = &job.savepoint {
            request["savepointPath"] = json!(savepoint);
        }
        if let Some(parallelism) = job.parallelism {
            request["parallelism"] = json!(parallelism);
        }
        let (status, answer) = self.call("POST", &format!("/jars/{jar_id}/run"), Some(&request));
        match answer["jobid"].as_str() {
            Some(job) if status == 200 => Ok(job.to_owned()),
            _ => Err(format!(
                "POST /jars/{jar_id}/run: {status} {}",
                condense(&answer)
            )),
        }
    }

    pub fn job_state(&self, job: &str) -> String {
        self.get(&format!("/jobs/{job}/status"))["status"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    /// Cancels a job and waits (bounded) until Flink reports it CANCELED.
    pub fn cancel(&self, job: &str) -> Result<(), String> {
        let (status, answer) = self.call("PATCH", &format!("/jobs/{job}?mode=cancel"), None);
        if !(200..300).contains(&status) {
            return Err(format!("cancel {job}: {status} {}", condense(&answer)));
        }
        // The job's details, not its status: Flink serves the details and the checkpoint
        // statistics from one cache, so once the details show the job ended, so do the
        // statistics (read earlier, they can name a checkpoint a newer one subsumed).
        wait_for(Duration::from_secs(60), || {
            let details = self.get(&format!("/jobs/{job}"));
            let state = details["state"].as_str().unwrap_or("");
            matches!(state, "CANCELED" | "FAILED" | "FINISHED").then_some(())
        })
        .ok_or_else(|| format!("job {job} did not stop within 60 s"))
    }

    /// Cancels those of `jobs` that still run: what a double started, when it stops.
    pub fn cancel_running(&self, jobs: &[String]) {
        for job in jobs {
            if self.job_state(job) == "RUNNING" {
                let _ = self.cancel(job);
            }
        }
    }

    /// Triggers a savepoint (or a stop with savepoint) and waits for its outcome.
    pub fn savepoint(&self, job: &str, target: &str, cancel_job: bool, stop: bool) -> Outcome {
        let (path, body) = if stop {
            (
                format!("/jobs/{job}/stop"),
                json!({"targetDirectory": target, "drain": false}),
            )
        } else {
            (
                format!("/jobs/{job}/savepoints"),
                json!({"target-directory": target, "cancel-job": cancel_job}),
            )
        };
        let (status, answer) = self.call("POST", &path, Some(&body));
        let Some(trigger) = answer["request-id"].as_str().map(str::to_owned) else {
            return Outcome::Failed(format!("POST {path}: {status} {}", condense(&answer)));
        };
        let outcome = wait_for(Duration::from_secs(180), || {
            let state = self.get(&format!("/jobs/{job}/savepoints/{trigger}"));
            if state.pointer("/status/id").and_then(Value::as_str) != Some("COMPLETED") {
                return None;
            }
            Some(
                match state.pointer("/operation/failure-cause/stack-trace") {
                    Some(trace) => Outcome::Failed(condense_trace(trace.as_str().unwrap_or(""))),
                    None => Outcome::Completed(
                        state
                            .pointer("/operation/location")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    ),
                },
            )
        });
        outcome.unwrap_or_else(|| Outcome::Failed("the savepoint did not finish in 180 s".into()))
    }
}

/// Polls `probe` every 200 ms until it answers something, or gives up after `limit`.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// `file:/a` and `file:///a` as the plain path `/a`.
pub fn plain_path(location: &str) -> String {
    let rest = location.strip_prefix("file:").unwrap_or(location);
    format!("/{}", rest.trim_start_matches('/'))
}

fn condense(answer: &Value) -> String {
    match answer.pointer("/errors/0").and_then(Value::as_str) {
        Some(error) => condense_trace(error),
        None => answer.to_string(),
    }
}

fn condense_trace(trace: &str) -> String {
    let first = trace.lines().next().unwrap_or("").trim().to_owned();
    match trace.lines().rev().find(|l| l.starts_with("Caused by: ")) {
        Some(cause) if cause.trim() != first => format!("{first}; {}", cause.trim()),
        _ => first,
    }
}
