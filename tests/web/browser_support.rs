//! A real headless Chromium driven through WebDriver (`chromedriver`, Debian's
//! `chromium-driver`, installed by scripts/test-all.sh): one chromedriver per test on a free
//! port, in a process group of its own that is stopped when the test ends (with the Chromium
//! it started), and a fresh profile directory.

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Starts chromedriver on a free port, and a headless Chromium through it.
pub async fn start_browser() -> Browser {
    let port = free_port();
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut command = Command::new("chromedriver");
    command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let driver = command.spawn().expect(
        "chromedriver is installed (scripts/test-all.sh installs Debian's chromium-driver)",
    );
    let mut guard = DriverGuard(Some(driver));
    let url = format!("http://127.0.0.1:{port}");
    let capabilities: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))
        .expect("capabilities");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(error) if Instant::now() > deadline => {
                panic!("cannot start Chromium through chromedriver: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    Browser {
        client,
        driver: guard.0.take().expect("the driver"),
        _profile: profile,
    }
}

/// Stops chromedriver's group if starting the browser fails half way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            stop_group(child);
        }
    }
}

fn stop_group(child: &mut Child) {
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// A test that panics half way still stops chromedriver and the Chromium it started.
impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(&mut self.driver);
    }
}

impl Browser {
    /// Ends the WebDriver session (Chromium exits); chromedriver's group is stopped when the
    /// browser is dropped.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The text of the element at `css`, waiting a little for it (a page loading after a
    /// form was sent).
    pub async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .expect("the element's text")
    }

    /// The text of the first element matching `css` as the page holds it now (read in one
    /// step: the live parts of a page are replaced as the run goes); empty when none.
    pub async fn text_now(&self, css: &str) -> String {
        let value = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                vec![serde_json::Value::String(css.to_owned())],
            )
            .await
            .unwrap_or_else(|e| panic!("read `{css}`: {e}"));
        value.as_str().unwrap_or_default().to_owned()
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find elements")
            .is_empty()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no field `{css}`: {e}"));
        field.clear().await.expect("clear the field");
        field.send_keys(value).await.expect("type into the field");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing to click at `{css}`: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Runs a script in the page and answers what it returns.
    pub async fn script(&self, source: &str) -> serde_json::Value {
        self.client
            .execute(source, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Saves a screenshot as a test artefact: target/web-screenshots/NAME.png.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("create target/web-screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Polls `check` until it holds, or panics saying what was awaited and what the page
    /// showed.
    pub async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shown = self.client.source().await.unwrap_or_default();
        self.screenshot(&format!("failed-{}", what.replace(' ', "-")))
            .await;
        panic!("waited {limit:?} for {what}; the page was:\n{shown}");
    }

    /// Signs in through the sign-in form.
    pub async fn sign_in(&self, base: &str, name: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("input[name=name]", name).await;
        self.fill("input[name=password]", password).await;
        self.client
            .form(Locator::Css("form:has(input[name=password])"))
            .await
            .expect("the sign-in form")
            .submit()
            .await
            .expect("submit the sign-in form");
        self.wait_for(
            "a page after signing in",
            Duration::from_secs(20),
            || async { self.text_now("#who").await == name },
        )
        .await;
    }

    pub async fn sign_out(&self) {
        self.client
            .form(Locator::Css("form[action='/logout']"))
            .await
            .expect("the sign-out form")
            .submit()
            .await
            .expect("sign out");
        self.wait_for("the sign-in page", Duration::from_secs(20), || async {
            self.exists("input[name=password]").await
        })
        .await;
    }
}

pub fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
