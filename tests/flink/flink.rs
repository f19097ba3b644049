//! The shared sandbox cluster (`tests/support/flink_sandbox.rs`), its REST API (through curl, which the sandbox script needs
//! anyway), and the stateful test job.

use crate::flink_sandbox;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// A running sandbox, as its `env` file describes it.
pub struct Cluster {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub flink_home: PathBuf,
    pub conf_dir: PathBuf,
    /// `file:///DIR/savepoints`
    pub savepoints: String,
    /// `file:///DIR/checkpoints`
    pub checkpoints: String,
    /// The stateful job's jar on this machine.
    pub jar: PathBuf,
    /// The same jar, uploaded once for the tests' own job starts.
    pub jar_id: String,
}

impl Cluster {
    pub fn flink_cli(&self) -> PathBuf {
        self.flink_home.join("bin/flink")
    }

    /// The local directory of a `file:` URI.
    pub fn local(uri: &str) -> PathBuf {
        PathBuf::from(format!(
            "/{}",
            uri.trim_start_matches("file:").trim_start_matches('/')
        ))
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The cluster, started on first use, and the right to use it alone until the guard drops.
/// Every job on it is cancelled first, and again when the guard drops (even when the test
/// failed), so that each test, and whatever uses the cluster after this crate, starts with
/// every slot free.
pub fn cluster() -> (&'static Cluster, Exclusive) {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = match CLUSTER.get_or_init(connect) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the Flink sandbox is not available: {e}"),
    };
    if !cancel_every_job(cluster) {
        panic!(
            "jobs of an earlier test are still running on {}",
            cluster.url
        );
    }
    (
        cluster,
        Exclusive {
            cluster,
            _guard: guard,
        },
    )
}

/// Holds the cluster for one test; cancels its jobs when dropped.
pub struct Exclusive {
    cluster: &'static Cluster,
    _guard: MutexGuard<'static, ()>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Best effort, and never a panic: this may run while a failed test unwinds.
        cancel_every_job(self.cluster);
    }
}

fn connect() -> Result<Cluster, String> {
    let env = flink_sandbox::shared()?;
    let overview = get_checked(&env.url, "/overview")
        .map_err(|e| format!("{} does not answer: {e}", env.url))?;
    if overview["taskmanagers"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("{} has no TaskManager: {overview}", env.url));
    }
    let jar_id = upload_jar(&env.url, &env.job_jar)?;
    Ok(Cluster {
        url: env.url,
        flink_home: env.flink_home,
        conf_dir: env.conf_dir,
        savepoints: env.savepoints,
        checkpoints: env.checkpoints,
        jar: env.job_jar,
        jar_id,
    })
}

fn upload_jar(url: &str, jar: &Path) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-X", "POST", "-F"])
        .arg(format!("jarfile=@{}", jar.display()))
        .arg(format!("{url}/jars/upload"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let body: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "jar upload answered {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    body["filename"]
        .as_str()
        .and_then(|f| f.rsplit('/').next())
        .map(str::to_owned)
        .ok_or_else(|| format!("jar upload answered {body}"))
}

// ------------------------------------------------------------------------------------- REST

/// One REST call: the status and the parsed body (`Null` when empty or not JSON).
pub fn call(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(body) = body {
        command
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string());
    }
    let output = command
        .arg(format!("{url}{path}"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{method} {path}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status
        .trim()
        .parse()
        .map_err(|_| format!("{method} {path}: no status in {text}"))?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn get_checked(url: &str, path: &str) -> Result<Value, String> {
    match call(url, "GET", path, None)? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("GET {path}: {status} {body}")),
    }
}

impl Cluster {
    pub fn get(&self, path: &str) -> Value {
        get_checked(&self.url, path).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        call(&self.url, "POST", path, Some(&body)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn cancel(&self, jid: &str) {
        let _ = call(
            &self.url,
            "PATCH",
            &format!("/jobs/{jid}?mode=cancel"),
            None,
        );
    }

    /// The jobs of the cluster, newest first: `[{jid, name, state}]`.
    pub fn jobs(&self) -> Vec<Value> {
        self.get("/jobs/overview")["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The job's state, from the JobManager (not the REST cache).
    pub fn state(&self, jid: &str) -> String {
        self.get(&format!("/jobs/{jid}/status"))["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Every one of these jobs is still RUNNING: the run stopped nothing.
    pub fn assert_all_running<J: AsRef<str>>(&self, jids: &[J], stderr: &str) {
        for jid in jids.iter().map(AsRef::as_ref) {
            assert_eq!(
                self.state(jid),
                "RUNNING",
                "job {jid} was stopped:\n{stderr}"
            );
        }
    }

    pub fn checkpoints(&self, jid: &str) -> Value {
        self.get(&format!("/jobs/{jid}/checkpoints"))
    }

    /// Starts the stateful job named `name` (extra program arguments after `--name NAME`),
    /// from a snapshot if given, and waits until it runs and has completed a checkpoint.
    pub fn start_job(&self, name: &str, extra: &[&str], snapshot: Option<&str>) -> String {
        let mut args = vec!["--name", name];
        args.extend_from_slice(extra);
        let mut body = json!({ "programArgsList": args });
        if let Some(snapshot) = snapshot {
            body["savepointPath"] = json!(snapshot);
        }
        let (status, answer) = self.post(&format!("/jars/{}/run", self.jar_id), body);
        assert_eq!(status, 200, "run {name}: {answer}");
        let jid = answer["jobid"].as_str().expect("a job id").to_owned();
        self.wait_checkpointing(&jid);
        jid
    }

    /// Waits until the job is RUNNING and has a completed checkpoint.
    pub fn wait_checkpointing(&self, jid: &str) {
        wait_for(
            Duration::from_secs(90),
            &format!("job {jid} checkpointing"),
            || {
                self.state(jid) == "RUNNING"
                    && !self.checkpoints(jid)["latest"]["completed"]["id"].is_null()
            },
        );
    }

    /// A gauge of the job's `counter` operator, summed over its subtasks. Flink answers `[]`
    /// for the first seconds of a job: this waits for a value.
    pub fn gauge(&self, jid: &str, name: &str) -> f64 {
        let job = self.get(&format!("/jobs/{jid}"));
        let vertex = job["vertices"]
            .as_array()
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with("counter")))
            })
            .and_then(|v| v["id"].as_str())
            .unwrap_or_else(|| panic!("no counter vertex in {job}"))
            .to_owned();
        let mut value = None;
        wait_for(
            Duration::from_secs(60),
            &format!("gauge {name} of {jid}"),
            || {
                let answer = self.get(&format!(
                    "/jobs/{jid}/vertices/{vertex}/subtasks/metrics?get=counter.{name}"
                ));
                value = answer[0]["sum"].as_f64();
                value.is_some()
            },
        );
        value.unwrap()
    }

    /// The restored job continues the old one's state: the counters came from the snapshot
    /// (restoredCount > 0) and every event since counts as it should (seqMismatches == 0).
    pub fn assert_state_continues(&self, jid: &str) {
        let restored = self.gauge(jid, "restoredCount");
        assert!(
            restored > 0.0,
            "job {jid} started without state: restoredCount {restored}"
        );
        // Events must flow for a mismatch to show: wait for some.
        wait_for(Duration::from_secs(30), "events since the restore", || {
            self.gauge(jid, "eventsSinceStart") > 0.0
        });
        assert_eq!(
            self.gauge(jid, "seqMismatches"),
            0.0,
            "job {jid} counts wrong"
        );
    }

    /// `savepoint-JOB6-*` directories in the sandbox's default savepoint directory.
    pub fn savepoints_of(&self, jid: &str) -> Vec<String> {
        let prefix = format!("savepoint-{}-", &jid[..6]);
        let mut found: Vec<String> = std::fs::read_dir(Cluster::local(&self.savepoints))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

/// Cancels every job that has not ended; whether none runs any more (within a minute).
/// Never panics.
fn cancel_every_job(cluster: &Cluster) -> bool {
    let live = || -> Vec<String> {
        let jobs = call(&cluster.url, "GET", "/jobs/overview", None)
            .map(|(_, body)| body["jobs"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        jobs.iter()
            .filter(|j| {
                !matches!(
                    j["state"].as_str(),
                    Some("FINISHED" | "CANCELED" | "FAILED")
                )
            })
            .filter_map(|j| j["jid"].as_str().map(str::to_owned))
            .collect()
    };
    for jid in live() {
        cluster.cancel(&jid);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !live().is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    true
}

/// The same path, whatever its `file:` form (`file:/x`, `file:///x`, `/x`).
pub fn same_path(a: &str, b: &str) -> bool {
    Cluster::local(a) == Cluster::local(b)
}

pub fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A URL of this machine that nothing listens on: a port bound, then released.
pub fn refused_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

/// `args` with its `flink_url=` input replaced.
pub fn with_flink_url(mut args: Vec<String>, url: &str) -> Vec<String> {
    let at = args
        .iter()
        .position(|a| a.starts_with("flink_url="))
        .expect("flink_url");
    args[at] = format!("flink_url={url}");
    args
}
