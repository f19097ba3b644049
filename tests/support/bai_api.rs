//! A test double of the IBM Business Automation Insights (BAI) management service and of its
//! job submitter, used because BAI (an OpenShift product) cannot run on these machines. It
//! answers the calls of seed 000 ("Restarting from a checkpoint or savepoint") with the shapes
//! the seed shows, and is backed by the REAL local Flink of `scripts/flink-sandbox.sh`: the
//! processing jobs are real jobs of the sandbox job jar, a savepoint request takes real
//! savepoints, a cancel really cancels, the checkpoint answer is read from Flink.
//!
//! Management service (HTTP Basic authentication on every path; wrong or missing credentials
//! answer 401 with `WWW-Authenticate: Basic realm="management"` and change nothing):
//! - `POST /api/v1/processing/jobs/savepoints[?cancelJob=true]`: a savepoint of every running
//!   processing job into `PV/savepoints/dba/bai-<job>` (cancelling the job with it when
//!   `cancelJob=true`); answers the list `[{name, request-id, jid, state, location}]` exactly
//!   as the seed's example (`name` is `dba/bai-<job>`, `location` as Flink reports it,
//!   `file:/...`). When a savepoint fails, its entry has `state: "FAILED"` and an `error`
//!   (Flink's cause) instead of `location`, and the answer is 500: the seed says only that the
//!   request "returns an error" and "the names and identifiers of the jobs that failed".
//! - `POST /api/v1/processing/jobs/<jid>/cancel`: cancels the job (answers once Flink reports
//!   it CANCELED): `{jid, state}`.
//! - `GET /api/v1/processing/jobs/<jid>/checkpoint`: the seed's example answer, field for field
//!   (`jid`, `completed_trigger_timestamp`, `completed_location`, `savepoint_trigger_timestamp`,
//!   `savepoint_location`, `restored_location`), paths without `file:` as in the seed; fields
//!   Flink has nothing for are left out.
//! - `GET /api/v1/processing/jobs`: the processing jobs, `[{name, jid, state}]` (`state` as
//!   Flink reports it), which the runbook polls to see the jobs run again. The seed does not
//!   show this call; it stands for the management service's job list.
//!
//! Job submitter: every 250 ms it reads the `InsightsEngine` custom resource from the
//! Kubernetes API double. When its `metadata.generation` moved, each processing job whose
//! `spec.bai_configuration.<job>.recovery_path` changed, or that does not run, is (re)started:
//! cancelled if it runs, then submitted from its recovery path when one is set. As the seed's
//! step 6 says, a path restarts a job once: the submitter marks a used path with the directory
//! `PV/savepoints/dba/<job>/<last path component>` (the directory the seed's step 7 deletes to
//! allow a second restart); a path already marked is refused with the seed's message
//! (`Error: The savepoint ... was already used. The Job won't be run from there.`, kept in
//! [`BaiManagement::events`]) and the job is not started. The ODM job (`odm`) never gets a
//! recovery path from a correct runbook; the submitter would honour one all the same.
//!
//! With [`BaiConfig::tls`] the service is HTTPS with a self-signed certificate that no client
//! trusts, as the seed's `curl -k` suggests a default installation's is.
//!
//! `PV` is a directory of the test (it stands for `/mnt/pv`); checkpoints go to
//! `PV/checkpoints/dba/bai-<job>/<jid>/chk-<n>` as in the seed's example.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::kube_api::{ApiStore, KubeApi, ResourceKind};
use super::vendor_http::{
    Answer, Flink, HttpServer, JobRun, Outcome, Reconciler, Request, plain_path, wait_for,
};

pub const INSIGHTS_ENGINE: &str = "InsightsEngine";
pub const INSIGHTS_ENGINE_API_VERSION: &str = "insightsengine.automation.ibm.com/v1";
pub const SECRET: &str = "Secret";

/// The kinds BAI needs in the Kubernetes API double: its custom resource and Secrets.
pub fn register_kinds(api: &KubeApi) {
    let store = api.store();
    store.register(
        ResourceKind::custom(
            "insightsengine.automation.ibm.com",
            "v1",
            INSIGHTS_ENGINE,
            "insightsengines",
        )
        .with_status_subresource(true),
    );
    store.register(ResourceKind::built_in("", "v1", SECRET, "secrets"));
}

/// What the double is started with.
pub struct BaiConfig {
    pub namespace: String,
    /// The `InsightsEngine` resource's name (`icp4adeploy` in the seed).
    pub engine: String,
    /// The Secret holding the management service's `username` and `password`.
    pub auth_secret: String,
    pub username: String,
    pub password: String,
    /// The processing jobs, by short name (`bpmn`, `icm`, `odm`).
    pub jobs: Vec<String>,
    /// Stands for `/mnt/pv`.
    pub pv: PathBuf,
    pub flink_url: String,
    pub job_jar: PathBuf,
    /// Serve HTTPS with a self-signed certificate (as behind a default ingress certificate).
    pub tls: bool,
}

/// One processing job as the double tracks it.
#[derive(Debug, Clone)]
struct ProcessingJob {
    jid: String,
    /// The recovery path the submitter last acted on.
    recovery_path: Option<String>,
}

struct State {
    jobs: BTreeMap<String, ProcessingJob>,
    generation: i64,
    events: Vec<String>,
    /// Every Flink job the double started, cancelled when it stops.
    started: Vec<String>,
}

pub struct BaiManagement {
    server: Option<HttpServer>,
    state: Arc<Mutex<State>>,
    submitter: Reconciler,
    flink: Flink,
}

impl BaiManagement {
    /// Starts every processing job on the real Flink, writes the `InsightsEngine` resource
    /// (status with the management endpoints, as the seed reads them) and the credentials
    /// Secret, and serves the management API.
    pub fn start(api: &KubeApi, config: BaiConfig) -> BaiManagement {
        let flink = Flink::new(&config.flink_url);
        let jar = flink
            .upload_jar(&config.job_jar)
            .expect("upload the job jar");
        let mut jobs = BTreeMap::new();
        let mut started = Vec::new();
        for job in &config.jobs {
            let jid = submit(&flink, &jar, &config.pv, job, None).expect("start a BAI job");
            started.push(jid.clone());
            jobs.insert(
                job.clone(),
                ProcessingJob {
                    jid,
                    recovery_path: None,
                },
            );
        }
        let state = Arc::new(Mutex::new(State {
            jobs,
            generation: 0,
            events: Vec::new(),
            started,
        }));
        let config = Arc::new(config);
        let server = {
            let tls = config.tls;
            let (state, config, flink) = (state.clone(), config.clone(), flink.clone());
            let handler = move |request: &Request| handle(request, &config, &state, &flink);
            if tls {
                HttpServer::start_tls(handler)
            } else {
                HttpServer::start(handler)
            }
        };
        let store = api.store();
        write_resources(&store, &config, &server.url());
        let submitter = {
            let (state, config, flink) = (state.clone(), config.clone(), flink.clone());
            Reconciler::start(Duration::from_millis(250), move || {
                reconcile(&store, &config, &state, &flink, &jar)
            })
        };
        BaiManagement {
            server: Some(server),
            state,
            submitter,
            flink,
        }
    }

    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(HttpServer::url)
            .unwrap_or_default()
    }

    /// The Flink job id a processing job runs as now.
    pub fn jid(&self, job: &str) -> String {
        lock(&self.state).jobs[job].jid.clone()
    }

    /// What the double did, in order (requests refused, jobs started, paths refused).
    pub fn events(&self) -> Vec<String> {
        lock(&self.state).events.clone()
    }

    /// Stops the submitter and the server and cancels every job the double started.
    pub fn stop(&mut self) {
        self.submitter.stop();
        self.server.take();
        let started = lock(&self.state).started.clone();
        self.flink.cancel_running(&started);
    }
}

impl Drop for BaiManagement {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn flink_name(job: &str) -> String {
    format!("dba/bai-{job}")
}

fn submit(
    flink: &Flink,
    jar: &str,
    pv: &Path,
    job: &str,
    recovery_path: Option<&str>,
) -> Result<String, String> {
    let run = JobRun {
        name: flink_name(job),
        checkpoint_dir: format!("file://{}/checkpoints/dba/bai-{job}", pv.display()),
        savepoint: recovery_path.map(str::to_owned),
        parallelism: None,
    };
    flink.run_job(jar, &run)
}

fn write_resources(store: &ApiStore, config: &BaiConfig, url: &str) {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    store.ensure_namespace(&config.namespace);
    store
        .create_object(
            SECRET,
            json!({
                "apiVersion": "v1",
                "kind": SECRET,
                "metadata": {"name": config.auth_secret, "namespace": config.namespace},
                "type": "Opaque",
                "data": {"username": encode(&config.username), "password": encode(&config.password)},
            }),
        )
        .expect("create the management Secret");
    store
        .create_object(
            INSIGHTS_ENGINE,
            json!({
                "apiVersion": INSIGHTS_ENGINE_API_VERSION,
                "kind": INSIGHTS_ENGINE,
                "metadata": {"name": config.engine, "namespace": config.namespace},
                "spec": {"license": {"accept": true}, "bai_configuration": {}},
            }),
        )
        .expect("create the InsightsEngine");
    store
        .put_status(
            INSIGHTS_ENGINE,
            &config.namespace,
            &config.engine,
            json!({
                "components": {"management": {"endpoints": [
                    {"scope": "Internal", "uri": format!("https://{}-insights-engine-management.{}.svc:9443", config.engine, config.namespace)},
                    {"scope": "External", "uri": url, "authentication": {"secret": {"secretName": config.auth_secret}}},
                ]}},
            }),
        )
        .expect("write the InsightsEngine status");
}

fn handle(request: &Request, config: &BaiConfig, state: &Mutex<State>, flink: &Flink) -> Answer {
    let authorized = request
        .basic_credentials()
        .is_some_and(|(user, password)| user == config.username && password == config.password);
    if !authorized {
        lock(state).events.push(format!(
            "401 {} {}: wrong or missing credentials",
            request.method, request.path
        ));
        return Answer::json(
            401,
            json!({"code": 401, "message": "Unauthorized: the user name or password is not valid"}),
        )
        .with_header("WWW-Authenticate", "Basic realm=\"management\"");
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v1", "processing", "jobs", "savepoints"]) => {
            let cancel = request.query_value("cancelJob") == Some("true");
            savepoints(config, state, flink, cancel)
        }
        ("GET", ["api", "v1", "processing", "jobs"]) => {
            let jobs = lock(state).jobs.clone();
            let list: Vec<Value> = jobs
                .iter()
                .map(|(job, tracked)| {
                    json!({"name": flink_name(job), "jid": tracked.jid, "state": flink.job_state(&tracked.jid)})
                })
                .collect();
            Answer::json(200, Value::Array(list))
        }
        ("POST", ["api", "v1", "processing", "jobs", jid, "cancel"]) => {
            if !knows(state, jid) {
                return not_found(jid);
            }
            match flink.cancel(jid) {
                Ok(()) => Answer::json(200, json!({"jid": jid, "state": flink.job_state(jid)})),
                Err(error) => Answer::json(500, json!({"code": 500, "message": error})),
            }
        }
        ("GET", ["api", "v1", "processing", "jobs", jid, "checkpoint"]) => {
            if !knows(state, jid) {
                return not_found(jid);
            }
            Answer::json(200, checkpoint(flink, jid))
        }
        _ => Answer::json(
            404,
            json!({"code": 404, "message": format!("no such endpoint: {} {}", request.method, request.path)}),
        ),
    }
}

/// A jid is known when one of the processing jobs runs or ran as it.
fn knows(state: &Mutex<State>, jid: &str) -> bool {
    lock(state).started.iter().any(|started| started == jid)
}

fn not_found(jid: &str) -> Answer {
    Answer::json(
        404,
        json!({"code": 404, "message": format!("no processing job with id {jid}")}),
    )
}

fn savepoints(config: &BaiConfig, state: &Mutex<State>, flink: &Flink, cancel: bool) -> Answer {
    let jobs = lock(state).jobs.clone();
    let mut answers = Vec::new();
    let mut failed = false;
    for (job, tracked) in &jobs {
        if flink.job_state(&tracked.jid) != "RUNNING" {
            continue;
        }
        let target = format!("file://{}/savepoints/dba/bai-{job}", config.pv.display());
        let request_id = format!("{:032x}", rand::random::<u128>());
        match flink.savepoint(&tracked.jid, &target, cancel, false) {
            Outcome::Completed(location) => answers.push(json!({
                "name": flink_name(job), "request-id": request_id, "jid": tracked.jid,
                "state": "COMPLETED", "location": location,
            })),
            Outcome::Failed(error) => {
                failed = true;
                answers.push(json!({
                    "name": flink_name(job), "request-id": request_id, "jid": tracked.jid,
                    "state": "FAILED", "error": error,
                }));
            }
        }
    }
    lock(state).events.push(format!(
        "savepoints (cancelJob={cancel}): {}",
        Value::Array(answers.clone())
    ));
    Answer::json(if failed { 500 } else { 200 }, Value::Array(answers))
}

fn checkpoint(flink: &Flink, jid: &str) -> Value {
    // Flink serves checkpoint statistics from a cache refreshed every few seconds: read right
    // after a cancel they can still name a checkpoint that a newer one subsumed (and deleted).
    // The management service answers what is on the volume: read until the path exists.
    let exists = |checkpoints: &Value| {
        checkpoints
            .pointer("/latest/completed/external_path")
            .and_then(Value::as_str)
            .is_some_and(|p| Path::new(&plain_path(p)).exists())
    };
    let checkpoints = wait_for(Duration::from_secs(15), || {
        let checkpoints = flink.get(&format!("/jobs/{jid}/checkpoints"));
        exists(&checkpoints).then_some(checkpoints)
    })
    .unwrap_or_else(|| flink.get(&format!("/jobs/{jid}/checkpoints")));
    let mut answer = serde_json::Map::new();
    answer.insert("jid".into(), json!(jid));
    let latest = &checkpoints["latest"];
    let addressable = |v: &Value| {
        v.as_str()
            .filter(|p| !p.starts_with('<'))
            .map(|p| json!(plain_path(p)))
    };
    let fields = [
        (
            "completed_trigger_timestamp",
            &latest["completed"]["trigger_timestamp"],
            false,
        ),
        (
            "completed_location",
            &latest["completed"]["external_path"],
            true,
        ),
        (
            "savepoint_trigger_timestamp",
            &latest["savepoint"]["trigger_timestamp"],
            false,
        ),
        (
            "savepoint_location",
            &latest["savepoint"]["external_path"],
            true,
        ),
        (
            "restored_location",
            &latest["restored"]["external_path"],
            true,
        ),
    ];
    for (name, value, is_path) in fields {
        let value = if is_path {
            addressable(value)
        } else {
            value.as_i64().map(|n| json!(n))
        };
        if let Some(value) = value {
            answer.insert(name.into(), value);
        }
    }
    Value::Object(answer)
}

/// The job submitter's pass: acts on a new generation of the custom resource.
fn reconcile(store: &ApiStore, config: &BaiConfig, state: &Mutex<State>, flink: &Flink, jar: &str) {
    let Some(engine) = store.get_object(INSIGHTS_ENGINE, &config.namespace, &config.engine) else {
        return;
    };
    let generation = engine["metadata"]["generation"].as_i64().unwrap_or(0);
    let jobs = {
        let mut state = lock(state);
        if generation == state.generation {
            return;
        }
        state.generation = generation;
        state.jobs.clone()
    };
    for (job, tracked) in jobs {
        let path = engine
            .pointer(&format!("/spec/bai_configuration/{job}/recovery_path"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let running = flink.job_state(&tracked.jid) == "RUNNING";
        if running && path == tracked.recovery_path {
            continue;
        }
        if running {
            let _ = flink.cancel(&tracked.jid);
        }
        if let Some(path) = &path {
            let marker = used_marker(&config.pv, &job, path);
            if marker.exists() {
                let mut state = lock(state);
                state.events.push(format!(
                    "Error: The savepoint {path} was already used. The Job won't be run from there."
                ));
                if let Some(tracked) = state.jobs.get_mut(&job) {
                    tracked.recovery_path = Some(path.clone());
                }
                continue;
            }
            let _ = std::fs::create_dir_all(&marker);
        }
        match submit(flink, jar, &config.pv, &job, path.as_deref()) {
            Ok(jid) => {
                // Wait until Flink has the job, so the next pass sees it run.
                wait_for(Duration::from_secs(60), || {
                    (flink.job_state(&jid) != "UNKNOWN").then_some(())
                });
                let mut state = lock(state);
                state.events.push(format!(
                    "started {job} as {jid} from {}",
                    path.as_deref().unwrap_or("empty state")
                ));
                state.started.push(jid.clone());
                state.jobs.insert(
                    job,
                    ProcessingJob {
                        jid,
                        recovery_path: path,
                    },
                );
            }
            Err(error) => lock(state)
                .events
                .push(format!("could not start {job}: {error}")),
        }
    }
}

/// Where the submitter marks a recovery path as used (seed 000, step 7).
pub fn used_marker(pv: &Path, job: &str, path: &str) -> PathBuf {
    let id = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    pv.join("savepoints/dba").join(job).join(id)
}
