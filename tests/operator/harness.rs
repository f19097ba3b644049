//! What the tests share: the Kubernetes API double with a kubeconfig for it, the real
//! `runbook` binary run against it, the one sandbox Flink of the crate with the operator
//! double on it, and the JobManager's REST API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flink_operator::Operator;
use crate::flink_sandbox::{self, SandboxEnv};
use crate::kube_api::KubeApi;

/// The namespace of the kubeconfig's current context, where the tests' resources live.
pub const NS: &str = "flink";
/// The current context of the kubeconfig the tests write.
pub const CONTEXT: &str = "double";
pub const API_VERSION: &str = "flink.apache.org/v1beta1";
pub const DEPLOYMENT: &str = "FlinkDeployment";
pub const SNAPSHOT: &str = "FlinkStateSnapshot";

/// A `runbook` command that takes longer than this is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// How long the operator may take to bring a deployment up.
const DEPLOY_LIMIT: Duration = Duration::from_secs(120);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A runbook of the repository, by its path from the root.
pub fn runbook_file(path: &str) -> PathBuf {
    repo().join(path)
}

// ---------------------------------------------------------------------------------------------
// Running the binary

/// What one `runbook` command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The runbook's outputs (stdout of a successful `run --output human`).
    pub fn outputs(&self) -> Value {
        assert_eq!(self.code, 0, "the run failed:\n{self}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the outputs as JSON ({e}):\n{self}"))
    }

    /// The events of a `run --output json`.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON event ({e}): {line}\n{self}"))
            })
            .collect()
    }

    /// The `step_ended` event of a step path.
    pub fn step_ended(&self, path: &str) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "step_ended" && e["path"] == path)
            .unwrap_or_else(|| panic!("no step_ended event for `{path}`:\n{self}"))
    }

    /// How many times a step path started (its attempts, fallback included).
    pub fn attempts(&self, path: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "step_started" && e["path"] == path)
            .count()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `runbook ARGS` with `KUBECONFIG` and a store of its own in `dir`, bounded in time.
pub fn runbook(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    runbook_within(dir, kubeconfig, args, RUN_LIMIT)
}

/// As [`runbook`], with another bound.
pub fn runbook_within(dir: &Path, kubeconfig: &Path, args: &[&str], limit: Duration) -> Run {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::SeqCst);
    let stdout_path = dir.join(format!("stdout-{n}.txt"));
    let stderr_path = dir.join(format!("stderr-{n}.txt"));
    let stdout = std::fs::File::create(&stdout_path).expect("create the stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("create the stderr file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
    command
        .args(args)
        .current_dir(repo())
        .env("KUBECONFIG", kubeconfig)
        .env("RUNBOOK_STORE", store_url(dir))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for proxy in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(proxy);
    }
    let mut child = command.spawn().expect("start the runbook binary");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for runbook") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "runbook {args:?} took more than {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

pub fn store_url(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("runs.db").display())
}

/// `run FILE --input k=v ...` as arguments.
pub fn run_args(file: &str, inputs: &[(&str, String)], json: bool) -> Vec<String> {
    let mut args = vec!["run".to_owned(), file.to_owned()];
    for (key, value) in inputs {
        args.push("--input".to_owned());
        args.push(format!("{key}={value}"));
    }
    if json {
        args.extend(["--output".to_owned(), "json".to_owned()]);
    }
    args
}

// ---------------------------------------------------------------------------------------------
// The API double

/// A Kubernetes API double with a kubeconfig for it (context `double`, namespace `flink`) and
/// a directory for the runs' store and files.
pub struct Kube {
    pub api: KubeApi,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Kube {
    pub fn start() -> Kube {
        let api = KubeApi::start();
        let dir = tempfile::Builder::new()
            .prefix("runbook-operator-")
            .tempdir()
            .expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, &[(CONTEXT, NS)])
            .expect("write the kubeconfig");
        Kube {
            api,
            kubeconfig,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the test's directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    pub fn runbook(&self, args: &[&str]) -> Run {
        runbook(self.path(), &self.kubeconfig, args)
    }

    /// `runbook run FILE --input k=v ...` (human output: the outputs on stdout).
    pub fn run(&self, file: &Path, inputs: &[(&str, String)]) -> Run {
        let file = file.display().to_string();
        let args = run_args(&file, inputs, false);
        self.runbook(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// As [`Kube::run`], for a run that may take up to `limit`.
    pub fn run_within(&self, file: &Path, inputs: &[(&str, String)], limit: Duration) -> Run {
        let file = file.display().to_string();
        let args = run_args(&file, inputs, false);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        runbook_within(self.path(), &self.kubeconfig, &args, limit)
    }

    /// `runbook run FILE --input k=v ... --output json` (events on stdout).
    pub fn run_json(&self, file: &Path, inputs: &[(&str, String)]) -> Run {
        let file = file.display().to_string();
        let args = run_args(&file, inputs, true);
        self.runbook(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A FlinkDeployment in the test namespace, created in-process (not logged).
    pub fn create_deployment(&self, name: &str, spec: Value) -> Value {
        self.api
            .create_object(
                DEPLOYMENT,
                json!({
                    "apiVersion": API_VERSION,
                    "kind": DEPLOYMENT,
                    "metadata": {"name": name, "namespace": NS},
                    "spec": spec,
                }),
            )
            .unwrap_or_else(|e| panic!("create FlinkDeployment {name}: {e}"))
    }

    pub fn deployment(&self, name: &str) -> Value {
        self.api
            .get_object(DEPLOYMENT, NS, name)
            .unwrap_or_else(|| panic!("no FlinkDeployment {NS}/{name}"))
    }
}

/// The spec of the sandbox job as the tests deploy it.
pub fn job_spec(image: &str) -> Value {
    json!({
        "image": image,
        "flinkVersion": "v2_3",
        "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
        "job": {
            "jarURI": "local:///opt/flink/usrlib/job.jar",
            "parallelism": 1,
            "upgradeMode": "savepoint",
            "state": "running",
            "args": ["--rate-ms", "50"],
        },
    })
}

/// The string at a JSON pointer, or "".
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `file:/a`, `file:///a` and `/a` name the same file.
pub fn local_path(path: &str) -> PathBuf {
    PathBuf::from(format!(
        "/{}",
        path.trim_start_matches("file:").trim_start_matches('/')
    ))
}

pub fn same_path(a: &str, b: &str) -> bool {
    local_path(a) == local_path(b)
}

/// Calls `probe` until it says done, and answers what it saw then; a timeout panics with
/// `what` and the last thing seen.
pub fn wait_until<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> (bool, T)) -> T
where
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + limit;
    loop {
        let (done, state) = probe();
        if done {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {state:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// Flink

/// Flink tests run one at a time: they share the sandbox's slots and CPU.
static SERIAL: Mutex<()> = Mutex::new(());

/// The crate's sandbox (see [`flink_sandbox::shared`]).
fn sandbox() -> SandboxEnv {
    flink_sandbox::shared().unwrap_or_else(|error| panic!("no Flink sandbox: {error}"))
}

/// A Flink test's world: the API double, the operator double on the shared sandbox, and the
/// right to use the sandbox alone. Dropping it stops the operator (cancelling its jobs); a
/// failing test prints the operator's events.
pub struct FlinkWorld {
    pub kube: Kube,
    pub flink: SandboxEnv,
    operator: Operator,
    pub started: Instant,
    _serial: MutexGuard<'static, ()>,
}

impl FlinkWorld {
    pub fn start() -> FlinkWorld {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let flink = sandbox();
        let kube = Kube::start();
        let operator = Operator::start(&kube.api, flink.clone());
        FlinkWorld {
            kube,
            flink,
            operator,
            started: Instant::now(),
            _serial: serial,
        }
    }

    /// Creates a FlinkDeployment and waits until the operator runs it STABLE and the job has
    /// completed a checkpoint; answers the resource.
    pub fn deploy(&self, name: &str, spec: Value) -> Value {
        self.kube.create_deployment(name, spec);
        let stable = self.wait_deployment(name, "STABLE with a RUNNING job", |o| {
            str_at(o, "/status/lifecycleState") == "STABLE"
                && str_at(o, "/status/jobStatus/state") == "RUNNING"
                && o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation")
        });
        let job = str_at(&stable, "/status/jobStatus/jobId").to_owned();
        // A checkpoint that holds counted events: one taken before the source's first event
        // (the job's first periodic checkpoint, on a busy machine) restores an empty state,
        // and a test that restores it would see `restoredCount 0`.
        wait_until(DEPLOY_LIMIT, "events counted", || {
            let events = self.gauge(&job, "eventsSinceStart");
            (events > 0.0, events)
        });
        let counting_since = jiff::Timestamp::now().as_millisecond();
        wait_until(DEPLOY_LIMIT, "a completed checkpoint with state", || {
            let checkpoints = self.get(&format!("/jobs/{job}/checkpoints"));
            let completed = &checkpoints["latest"]["completed"];
            let after = completed["trigger_timestamp"]
                .as_i64()
                .is_some_and(|at| at >= counting_since);
            (after && completed["external_path"].is_string(), checkpoints)
        });
        stable
    }

    pub fn wait_deployment(
        &self,
        name: &str,
        what: &str,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Value {
        wait_until(DEPLOY_LIMIT, &format!("{name}: {what}"), || {
            let object = self.kube.api.get_object(DEPLOYMENT, NS, name);
            (object.as_ref().is_some_and(&mut done), object)
        })
        .expect("the deployment")
    }

    /// The REST endpoint of a deployment's JobManager in application mode, as a runbook on a
    /// real cluster reaches it (`http://NAME-rest.NS:8081`): it knows only the job the
    /// deployment runs now. The tests' own checks use the sandbox's URL, which sees every job.
    pub fn rest_url(&self, deployment: &str) -> String {
        self.operator.rest_url(NS, deployment)
    }

    /// GET on the JobManager's REST API; `Null` for an error or a body that is not JSON.
    pub fn get(&self, path: &str) -> Value {
        flink_get(&self.flink.url, path)
    }

    /// Where Flink says the job restored from (polled: it shows once the restore happened).
    pub fn restored_from(&self, job: &str) -> String {
        wait_until(
            DEPLOY_LIMIT,
            &format!("job {job} to report a restore"),
            || {
                let checkpoints = self.get(&format!("/jobs/{job}/checkpoints"));
                let path = str_at(&checkpoints, "/latest/restored/external_path").to_owned();
                (!path.is_empty(), path)
            },
        )
    }

    /// A gauge of the job's `counter` operator, summed over its subtasks. Flink answers `[]`
    /// for the first seconds of a job: this waits for a value.
    pub fn gauge(&self, job: &str, name: &str) -> f64 {
        let details = self.get(&format!("/jobs/{job}"));
        let vertex = details["vertices"]
            .as_array()
            .and_then(|vs| {
                vs.iter()
                    .find(|v| str_at(v, "/name").starts_with("counter"))
            })
            .map(|v| str_at(v, "/id").to_owned())
            .unwrap_or_else(|| panic!("no counter vertex in {details}"));
        wait_until(
            Duration::from_secs(60),
            &format!("gauge {name} of {job}"),
            || {
                let answer = self.get(&format!(
                    "/jobs/{job}/vertices/{vertex}/subtasks/metrics?get=counter.{name}"
                ));
                let value = answer.pointer("/0/sum").and_then(Value::as_f64);
                (value.is_some(), value)
            },
        )
        .expect("a gauge value")
    }

    /// The job continues the state it was restored with: its counters came from the snapshot
    /// (restoredCount > 0) and every event since counted right (seqMismatches == 0).
    pub fn assert_state_continues(&self, job: &str) {
        let restored = self.gauge(job, "restoredCount");
        assert!(
            restored > 0.0,
            "job {job} started without state: restoredCount {restored}"
        );
        wait_until(Duration::from_secs(30), "events since the restore", || {
            let events = self.gauge(job, "eventsSinceStart");
            (events > 0.0, events)
        });
        assert_eq!(
            self.gauge(job, "seqMismatches"),
            0.0,
            "job {job} counts wrong"
        );
    }

    /// Cancels a job behind the operator's back (as a crash of the job would end it).
    pub fn cancel_job(&self, job: &str) {
        flink_call(
            &self.flink.url,
            reqwest::Method::PATCH,
            &format!("/jobs/{job}?mode=cancel"),
        );
        wait_until(DEPLOY_LIMIT, &format!("job {job} cancelled"), || {
            let state = self.job_state(job);
            (state == "CANCELED", state)
        });
    }

    /// Has the job take a full checkpoint now (`POST /jobs/:id/checkpoints`), for a job whose
    /// periodic checkpoints are minutes apart; waits until Flink reports it completed.
    pub fn checkpoint_now(&self, job: &str) {
        // Flink declines a checkpoint while the job's tasks are still starting: try again.
        let mut causes = Vec::new();
        let done = wait_until(DEPLOY_LIMIT, &format!("a checkpoint of {job}"), || {
            let answer = flink_post(
                &self.flink.url,
                &format!("/jobs/{job}/checkpoints"),
                &json!({"checkpointType": "FULL"}),
            );
            let trigger = str_at(&answer, "/request-id").to_owned();
            if trigger.is_empty() {
                causes.push(answer.to_string());
                return (false, causes.clone());
            }
            let state = wait_until(DEPLOY_LIMIT, &format!("checkpoint {trigger}"), || {
                let state = self.get(&format!("/jobs/{job}/checkpoints/{trigger}"));
                (str_at(&state, "/status/id") == "COMPLETED", state)
            });
            let failed = state.pointer("/operation/failure-cause").is_some();
            if failed {
                causes.push(state["operation"]["failure-cause"].to_string());
                std::thread::sleep(Duration::from_secs(1));
            }
            (!failed, causes.clone())
        });
        eprintln!("checkpoint of {job} taken after {} failures", done.len());
        wait_until(DEPLOY_LIMIT, "the checkpoint in the statistics", || {
            let checkpoints = self.get(&format!("/jobs/{job}/checkpoints"));
            (
                checkpoints
                    .pointer("/latest/completed/external_path")
                    .is_some(),
                checkpoints,
            )
        });
    }

    pub fn job_state(&self, job: &str) -> String {
        str_at(&self.get(&format!("/jobs/{job}/status")), "/status").to_owned()
    }
}

impl Drop for FlinkWorld {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("operator events:\n{}", self.operator.events().join("\n"));
        }
        self.operator.stop();
        eprintln!("flink test took {:?}", self.started.elapsed());
    }
}

/// One GET; `Null` when Flink does not answer 200 with JSON.
pub fn flink_get(url: &str, path: &str) -> Value {
    flink_call(url, reqwest::Method::GET, path)
}

/// One POST with a JSON body; `Null` when Flink does not answer 2xx with JSON.
pub fn flink_post(url: &str, path: &str, body: &Value) -> Value {
    flink_request(url, reqwest::Method::POST, path, Some(body))
}

/// One request without a body; `Null` when Flink does not answer 2xx with JSON.
pub fn flink_call(url: &str, method: reqwest::Method, path: &str) -> Value {
    flink_request(url, method, path, None)
}

fn flink_request(url: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let mut request = client.request(method, format!("{url}{path}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let Ok(response) = request.send().await else {
            return Value::Null;
        };
        if !response.status().is_success() {
            return Value::Null;
        }
        let text = response.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    })
}
