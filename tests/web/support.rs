//! A real `runbook serve --listen :0` in a fresh directory, with a users file holding one
//! API token per role, and a plain HTTP client. The serve is stopped by its pid when the
//! test ends (SIGTERM, then SIGKILL if it has not drained in time).

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API token of each role in the users file [`WebServe`] writes.
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
/// A second operator's token (olga), for approvals that need someone else than the starter.
pub const OLGA_TOKEN: &str = "olga-token-0123456789abcdef";

/// The password of each person in the users file [`WebServe`] writes.
pub const VIEWER_PASSWORD: &str = "viewer-pass";
pub const OPERATOR_PASSWORD: &str = "operator-pass";
pub const OLGA_PASSWORD: &str = "operator2-pass";
pub const ADMIN_PASSWORD: &str = "admin-pass";

/// The default users file: a password and a token for vera (viewer), otto and olga
/// (operators), ada (admin). Hashed once per test process: argon2 is slow on purpose.
pub fn default_users() -> String {
    static USERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USERS
        .get_or_init(|| {
            let user = |name: &str, role: &str, password: &str| {
                format!(
                    "  - {{name: {name}, role: {role}, password: \"{}\"}}\n",
                    argon2_hash(password)
                )
            };
            let token = |name: &str, role: &str, token: &str| {
                format!(
                    "  - {{name: {name}, role: {role}, sha256: \"sha256:{}\"}}\n",
                    sha256_hex(token)
                )
            };
            format!(
                "users:\n{}{}{}{}tokens:\n{}{}{}{}",
                user("vera", "viewer", VIEWER_PASSWORD),
                user("otto", "operator", OPERATOR_PASSWORD),
                user("olga", "operator", OLGA_PASSWORD),
                user("ada", "admin", ADMIN_PASSWORD),
                token("vera", "viewer", VIEWER_TOKEN),
                token("otto", "operator", OPERATOR_TOKEN),
                token("olga", "operator", OLGA_TOKEN),
                token("ada", "admin", ADMIN_TOKEN)
            )
        })
        .clone()
}

/// An argon2id PHC string of `password`, as `runbook users add` writes it.
pub fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .expect("hash a password")
        .to_string()
}

pub struct WebServe {
    dir: tempfile::TempDir,
    users: String,
    config: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// A serve that runs; stopped when dropped.
pub struct Running {
    pub dir: tempfile::TempDir,
    pub url: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl WebServe {
    pub fn new() -> WebServe {
        WebServe {
            dir: tempfile::tempdir().expect("a temporary directory"),
            users: default_users(),
            config: "schedules: []\n".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the serve's directory (a runbook, a calendar).
    pub fn write(self, name: &str, text: impl AsRef<[u8]>) -> WebServe {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the parent directory");
        }
        std::fs::write(path, text).expect("write the test file");
        self
    }

    /// The users file, replacing the default one ([`default_users`]).
    pub fn users(mut self, text: impl Into<String>) -> WebServe {
        self.users = text.into();
        self
    }

    /// serve.yaml without its `listen:` and `http.users_file` (added): `schedules: [...]`
    /// and anything else at the top level.
    pub fn config(mut self, text: impl Into<String>) -> WebServe {
        self.config = text.into();
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> WebServe {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> WebServe {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Starts serve and waits until it listens.
    pub fn start(self) -> Running {
        let dir = self.dir;
        std::fs::write(dir.path().join("users.yaml"), &self.users).expect("write users.yaml");
        let mut config = self.config.clone();
        if !config.contains("http:") {
            config.push_str("http:\n  users_file: users.yaml\n");
        }
        std::fs::write(dir.path().join("serve.yaml"), config).expect("write serve.yaml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["serve", "--config", "serve.yaml", "--listen", "127.0.0.1:0"])
            .args(&self.args)
            .env_remove("RUNBOOK_STORE")
            .env("XDG_STATE_HOME", dir.path().join(".state"))
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runbook serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let reader = BufReader::new(child.stderr.take().expect("piped stderr"));
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening: http://") {
                    let rest = &line[at + "listening: ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or(rest);
                    let _ = address_tx.send(url.trim_end_matches('/').to_owned());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not listen:\n{}", stderr.lock().unwrap());
            }
        };
        Running {
            dir,
            url,
            child,
            stderr,
        }
    }
}

impl Running {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What serve logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.request("GET", path, token, None)
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Answer {
        self.request("POST", path, token, Some(body.to_string()))
    }

    /// Any method, with a JSON body or none.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = match body {
            Some(body) => agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body)
                    .expect("a request"),
            ),
            None => agent.run(request.body(()).expect("a request")),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Any request, exactly as given: no redirect followed, so that a test sees the
    /// `Location` and `Set-Cookie` of the answer.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = match body {
            Some((kind, body)) => agent.run(
                request
                    .header("Content-Type", kind)
                    .body(body)
                    .expect("a request"),
            ),
            None => agent.run(request.body(()).expect("a request")),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Posts the sign-in form as a browser does; the answer as it comes (a redirect with
    /// the session cookie, or the form again with the problem).
    pub fn post_login(&self, name: &str, password: &str, next: &str) -> Answer {
        self.raw(
            "POST",
            "/login",
            &[],
            Some((
                FORM,
                form(&[("name", name), ("password", password), ("next", next)]),
            )),
        )
    }

    /// Signs in through the sign-in page, as a browser does; panics if refused.
    pub fn sign_in(&self, name: &str, password: &str) -> Browser<'_> {
        let answer = self.post_login(name, password, "/");
        assert_eq!(answer.status, 303, "sign in as {name}: {}", answer.body);
        let set_cookie = answer.header("set-cookie").expect("a session cookie");
        let cookie = set_cookie
            .split(';')
            .next()
            .expect("a cookie")
            .trim()
            .to_owned();
        let mut browser = Browser {
            serve: self,
            cookie,
            csrf: String::new(),
        };
        let page = browser.get("/account");
        browser.csrf = hidden_input(&page.body, "csrf").expect("the CSRF token in the page");
        assert!(!browser.csrf.is_empty(), "{}", page.body);
        browser
    }

    /// Waits until `check` holds, polling, or panics with the log after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("waited {limit:?} for {what}; serve logged:\n{}", self.log());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// A form body, URL-encoded.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC),
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the hidden input `name` in a page.
pub fn hidden_input(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker)? + marker.len();
    let end = page[at..].find('"')?;
    Some(page[at..at + end].to_owned())
}

/// A browser signed in through the sign-in page: it sends its session cookie, and the CSRF
/// token where a page's form or script would.
pub struct Browser<'a> {
    pub serve: &'a Running,
    /// `runbook_session=...`, as sent back in `Cookie`.
    pub cookie: String,
    pub csrf: String,
}

impl Browser<'_> {
    pub fn get(&self, path: &str) -> Answer {
        self.serve
            .raw("GET", path, &[("Cookie", self.cookie.as_str())], None)
    }

    /// Posts a form with the page's CSRF token in it.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields = fields.to_vec();
        fields.push(("csrf", self.csrf.as_str()));
        self.serve.raw(
            "POST",
            path,
            &[("Cookie", self.cookie.as_str())],
            Some((FORM, form(&fields))),
        )
    }

    /// Sends JSON with the CSRF token in `X-CSRF-Token`, as a page's script does.
    pub fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> Answer {
        self.serve.raw(
            method,
            path,
            &[
                ("Cookie", self.cookie.as_str()),
                ("X-CSRF-Token", self.csrf.as_str()),
            ],
            Some(("application/json", body.to_string())),
        )
    }
}
