//! A test double of the Ververica Platform application manager API (`/api/v1/namespaces/...`),
//! used because Ververica Platform cannot run on these machines. It answers the calls of the
//! Ververica runbooks with the resource shapes of the Ververica Platform docs and seed 001
//! ("Savepoints": manually adding a Savepoint resource), and is backed by the REAL local Flink
//! of `scripts/flink-sandbox.sh`: a Deployment that is started really runs the sandbox job,
//! restored from the Savepoint resource its restore strategy picks; a suspend really stops the
//! job with a savepoint.
//!
//! Authentication: an API token (`Authorization: Bearer <token>`, Ververica Platform's API
//! tokens) on every path; a wrong or missing token answers 401 and changes nothing.
//!
//! Resources (one namespace of the platform, `metadata.id` a UUID):
//! - Deployment: `GET`/`PATCH /deployments/{id}` (PATCH merges the body into `spec`; `metadata`
//!   and `status` are the platform's). `metadata.annotations` carries
//!   `com.dataartisans.appmanager.controller.deployment.spec.version`, bumped by every change of
//!   `spec.template`. `spec.state` RUNNING / SUSPENDED / CANCELLED is reconciled every 250 ms:
//!   RUNNING starts a job (restore per `spec.restoreStrategy.kind`: LATEST_STATE, the latest
//!   COMPLETED Savepoint of the Deployment whatever its origin; LATEST_SAVEPOINT, the same
//!   without RETAINED_CHECKPOINT; NONE, empty state), with `spec.template.spec.parallelism`;
//!   SUSPENDED stops the job with a savepoint into `state.savepoints.dir` of
//!   `spec.template.spec.flinkConfiguration` and records it as a Savepoint of origin SUSPEND;
//!   CANCELLED cancels the job. `status.state` reports RUNNING, SUSPENDED, CANCELLED, or FAILED
//!   (`status.failure.message`) when a start or suspend fails.
//! - Savepoint: `POST /savepoints` registers one (seed 001: `metadata.deploymentId`, the
//!   spec-version annotation, `spec.savepointLocation`, `spec.flinkSavepointId`,
//!   `status.state`); a manually added Savepoint gets `metadata.origin: COPIED`. As the seed's
//!   note says, a Savepoint without the spec-version annotation is not used during restore: the
//!   restore strategy passes over it. `GET /savepoints?deploymentId=` answers
//!   `{kind: SavepointList, items}` (oldest first), `GET /savepoints/{id}` one.
//! - Job: `GET /jobs?deploymentId=` answers `{kind: JobList, items}`, one Job per start:
//!   `metadata.{id, deploymentId, annotations}` (the spec version it was started with),
//!   `spec.savepointLocation` (the snapshot it restored from, absent for empty state),
//!   `status.state` (STARTED, TERMINATED, FAILED) and `status.started.flinkJobId`.
//!
//! Deliberately not done: Deployment creation over HTTP (tests create them in-process with
//! [`Ververica::create_deployment`]), upgrade strategies (a template change while RUNNING is
//! not acted on: the runbooks suspend first), session clusters, events, and savepoint
//! triggering through the API.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::vendor_http::{Answer, Flink, HttpServer, JobRun, Outcome, Reconciler, Request};

pub const SPEC_VERSION: &str = "com.dataartisans.appmanager.controller.deployment.spec.version";

pub struct VervericaConfig {
    pub namespace: String,
    pub token: String,
    pub flink_url: String,
    pub job_jar: std::path::PathBuf,
    /// Where the jobs checkpoint (`file:///...`).
    pub checkpoints: String,
}

#[derive(Default)]
struct State {
    deployments: Vec<Value>,
    savepoints: Vec<Value>,
    jobs: Vec<Value>,
    events: Vec<String>,
    /// Flink jobs started here, cancelled when the double stops.
    started: Vec<String>,
}

pub struct Ververica {
    server: Option<HttpServer>,
    state: Arc<Mutex<State>>,
    reconciler: Reconciler,
    flink: Flink,
    namespace: String,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_id() -> String {
    let n = rand::random::<u128>();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Ververica {
    pub fn start(config: VervericaConfig) -> Ververica {
        let flink = Flink::new(&config.flink_url);
        let jar = flink
            .upload_jar(&config.job_jar)
            .expect("upload the job jar");
        let state = Arc::new(Mutex::new(State::default()));
        let namespace = config.namespace.clone();
        let config = Arc::new(config);
        let server = {
            let (state, config) = (state.clone(), config.clone());
            HttpServer::start(move |request| handle(request, &config, &state))
        };
        let reconciler = {
            let (state, config, flink) = (state.clone(), config.clone(), flink.clone());
            Reconciler::start(Duration::from_millis(250), move || {
                reconcile(&state, &config, &flink, &jar)
            })
        };
        Ververica {
            server: Some(server),
            state,
            reconciler,
            flink,
            namespace,
        }
    }

    /// The API's base URL (what the runbooks take as `vvp_url`).
    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(HttpServer::url)
            .unwrap_or_default()
    }

    /// Creates a Deployment as the web UI would; answers its id. `annotated: false` leaves
    /// out the spec-version annotation (a Deployment from before the platform wrote it).
    pub fn create_deployment(&self, name: &str, spec: Value, annotated: bool) -> String {
        let id = new_id();
        let mut annotations = Map::new();
        if annotated {
            annotations.insert(SPEC_VERSION.into(), json!("1"));
        }
        lock(&self.state).deployments.push(json!({
            "kind": "Deployment",
            "apiVersion": "v1",
            "metadata": {"id": id, "name": name, "namespace": self.namespace,
                         "createdAt": now(), "annotations": annotations},
            "spec": spec,
            "status": {"state": "CANCELLED"},
        }));
        id
    }

    pub fn deployment(&self, id: &str) -> Value {
        lock(&self.state)
            .deployments
            .iter()
            .find(|d| d["metadata"]["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Changes a Deployment's spec in-process, as a user of the web UI would.
    pub fn patch_spec(&self, id: &str, patch: &Value) {
        let mut state = lock(&self.state);
        if let Some(deployment) = state
            .deployments
            .iter_mut()
            .find(|d| d["metadata"]["id"] == id)
        {
            patch_deployment(deployment, patch);
        }
    }

    pub fn savepoints(&self, id: &str) -> Vec<Value> {
        lock(&self.state)
            .savepoints
            .iter()
            .filter(|s| s["metadata"]["deploymentId"] == id)
            .cloned()
            .collect()
    }

    pub fn jobs(&self, id: &str) -> Vec<Value> {
        lock(&self.state)
            .jobs
            .iter()
            .filter(|j| j["metadata"]["deploymentId"] == id)
            .cloned()
            .collect()
    }

    /// The Flink job a Deployment runs now, once it runs.
    pub fn flink_job(&self, id: &str) -> Option<String> {
        self.deployment(id)
            .pointer("/status/running/jobId")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub fn events(&self) -> Vec<String> {
        lock(&self.state).events.clone()
    }

    pub fn stop(&mut self) {
        self.reconciler.stop();
        self.server.take();
        let started = lock(&self.state).started.clone();
        self.flink.cancel_running(&started);
    }
}

impl Drop for Ververica {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Merges `patch` (a partial Deployment) into `spec`; a changed template bumps the spec
/// version annotation.
fn patch_deployment(deployment: &mut Value, patch: &Value) {
    let before = deployment["spec"]["template"].clone();
    if let Some(spec) = patch.get("spec") {
        json_patch::merge(&mut deployment["spec"], spec);
    }
    let changed = deployment["spec"]["template"] != before;
    let annotations = &mut deployment["metadata"]["annotations"];
    if changed && let Some(version) = annotations.get(SPEC_VERSION).and_then(Value::as_str) {
        let next = version.parse::<u64>().unwrap_or(0) + 1;
        annotations[SPEC_VERSION] = json!(next.to_string());
    }
}

fn handle(request: &Request, config: &VervericaConfig, state: &Mutex<State>) -> Answer {
    if request.bearer_token() != Some(config.token.as_str()) {
        lock(state)
            .events
            .push(format!("401 {} {}", request.method, request.path));
        return Answer::json(
            401,
            json!({"message": "Unauthorized: a valid API token is required"}),
        );
    }
    let prefix = format!("/api/v1/namespaces/{}/", config.namespace);
    let Some(rest) = request.path.strip_prefix(&prefix) else {
        return not_found(&request.path);
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let mut state = lock(state);
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["deployments", id]) => match find(&state.deployments, id) {
            Some(d) => Answer::json(200, d.clone()),
            None => not_found(&request.path),
        },
        ("PATCH", ["deployments", id]) => {
            let patch = match request.json() {
                Ok(patch) => patch,
                Err(answer) => return answer,
            };
            let Some(deployment) = state
                .deployments
                .iter_mut()
                .find(|d| d["metadata"]["id"] == *id)
            else {
                return not_found(&request.path);
            };
            patch_deployment(deployment, &patch);
            let answer = deployment.clone();
            state.events.push(format!("PATCH deployment {id}: {patch}"));
            Answer::json(200, answer)
        }
        ("POST", ["savepoints"]) => {
            let body = match request.json() {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            let deployment = body
                .pointer("/metadata/deploymentId")
                .and_then(Value::as_str)
                .unwrap_or("");
            if find(&state.deployments, deployment).is_none() {
                return Answer::json(
                    400,
                    json!({"message": format!("metadata.deploymentId: no Deployment with id '{deployment}'")}),
                );
            }
            let location = body
                .pointer("/spec/savepointLocation")
                .and_then(Value::as_str)
                .unwrap_or("");
            if location.is_empty() {
                return Answer::json(
                    400,
                    json!({"message": "spec.savepointLocation must not be empty"}),
                );
            }
            let savepoint = json!({
                "kind": "Savepoint",
                "apiVersion": "v1",
                "metadata": {
                    "id": new_id(),
                    "namespace": config.namespace,
                    "deploymentId": deployment,
                    "origin": "COPIED",
                    "createdAt": now(),
                    "annotations": body.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                },
                "spec": {
                    "savepointLocation": location,
                    "flinkSavepointId": body.pointer("/spec/flinkSavepointId").cloned().unwrap_or(json!("00000000-0000-0000-0000-000000000000")),
                },
                "status": {"state": body.pointer("/status/state").cloned().unwrap_or(json!("COMPLETED"))},
            });
            state.savepoints.push(savepoint.clone());
            state.events.push(format!("POST savepoint {savepoint}"));
            Answer::json(201, savepoint)
        }
        ("GET", ["savepoints"]) => {
            let items = filtered(&state.savepoints, request.query_value("deploymentId"));
            Answer::json(200, json!({"kind": "SavepointList", "items": items}))
        }
        ("GET", ["savepoints", id]) => match find(&state.savepoints, id) {
            Some(s) => Answer::json(200, s.clone()),
            None => not_found(&request.path),
        },
        ("GET", ["jobs"]) => {
            let items = filtered(&state.jobs, request.query_value("deploymentId"));
            Answer::json(200, json!({"kind": "JobList", "items": items}))
        }
        _ => not_found(&request.path),
    }
}

fn find<'a>(items: &'a [Value], id: &str) -> Option<&'a Value> {
    items.iter().find(|item| item["metadata"]["id"] == id)
}

fn filtered(items: &[Value], deployment: Option<&str>) -> Vec<Value> {
    items
        .iter()
        .filter(|item| deployment.is_none_or(|d| item["metadata"]["deploymentId"] == d))
        .cloned()
        .collect()
}

fn not_found(path: &str) -> Answer {
    Answer::json(404, json!({"message": format!("{path} not found")}))
}

/// One pass over the Deployments: act on each whose desired state differs from its status.
fn reconcile(state: &Mutex<State>, config: &VervericaConfig, flink: &Flink, jar: &str) {
    let deployments = lock(state).deployments.clone();
    for deployment in deployments {
        let id = deployment["metadata"]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let desired = deployment["spec"]["state"].as_str().unwrap_or("CANCELLED");
        let actual = deployment["status"]["state"]
            .as_str()
            .unwrap_or("CANCELLED");
        let running_job = deployment
            .pointer("/status/running/jobId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if desired == actual {
            // A job that failed in Flink fails the Deployment.
            if let Some(job) = &running_job
                && flink.job_state(job) == "FAILED"
            {
                set_status(
                    state,
                    &id,
                    json!({"state": "FAILED", "failure": {"message": format!("Flink job {job} failed")}}),
                );
                finish_job(state, job, "FAILED");
            }
            continue;
        }
        let status = match (desired, running_job) {
            ("RUNNING", None) => start(state, config, flink, jar, &deployment),
            ("SUSPENDED", Some(job)) => suspend(state, flink, &deployment, &job),
            ("CANCELLED", Some(job)) => {
                let _ = flink.cancel(&job);
                finish_job(state, &job, "TERMINATED");
                json!({"state": "CANCELLED"})
            }
            (desired, _) => json!({"state": desired}),
        };
        set_status(state, &id, status);
    }
}

fn set_status(state: &Mutex<State>, id: &str, status: Value) {
    let mut state = lock(state);
    if let Some(deployment) = state
        .deployments
        .iter_mut()
        .find(|d| d["metadata"]["id"] == id)
    {
        deployment["status"] = status;
    }
}

fn finish_job(state: &Mutex<State>, flink_job: &str, job_state: &str) {
    let mut state = lock(state);
    if let Some(job) = state
        .jobs
        .iter_mut()
        .find(|j| j.pointer("/status/started/flinkJobId") == Some(&json!(flink_job)))
    {
        job["status"]["state"] = json!(job_state);
    }
}

/// The Savepoint the restore strategy picks: the latest COMPLETED one of the Deployment that
/// carries the spec-version annotation (without it, it is not used: seed 001's note).
fn restore_point(state: &State, deployment: &Value) -> Option<Value> {
    let id = &deployment["metadata"]["id"];
    let kind = deployment
        .pointer("/spec/restoreStrategy/kind")
        .and_then(Value::as_str)
        .unwrap_or("LATEST_STATE");
    if kind == "NONE" {
        return None;
    }
    state
        .savepoints
        .iter()
        .rev()
        .filter(|s| s["metadata"]["deploymentId"] == *id)
        .filter(|s| s["status"]["state"] == "COMPLETED")
        .filter(|s| kind == "LATEST_STATE" || s["metadata"]["origin"] != "RETAINED_CHECKPOINT")
        .find(|s| {
            s.pointer(&format!("/metadata/annotations/{}", escape(SPEC_VERSION)))
                .is_some()
        })
        .cloned()
}

/// A key as one JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn start(
    state: &Mutex<State>,
    config: &VervericaConfig,
    flink: &Flink,
    jar: &str,
    deployment: &Value,
) -> Value {
    let restore = restore_point(&lock(state), deployment);
    let location = restore
        .as_ref()
        .and_then(|s| s["spec"]["savepointLocation"].as_str())
        .map(str::to_owned);
    let run = JobRun {
        name: deployment["metadata"]["name"]
            .as_str()
            .unwrap_or("vvp")
            .to_owned(),
        checkpoint_dir: config.checkpoints.clone(),
        savepoint: location.clone(),
        parallelism: deployment
            .pointer("/spec/template/spec/parallelism")
            .and_then(Value::as_i64),
    };
    match flink.run_job(jar, &run) {
        Ok(flink_job) => {
            let mut spec = json!({});
            if let Some(location) = &location {
                spec["savepointLocation"] = json!(location);
            }
            let mut state = lock(state);
            state.started.push(flink_job.clone());
            state.events.push(format!(
                "started {} as {flink_job} from {}",
                run.name,
                location.as_deref().unwrap_or("empty state")
            ));
            state.jobs.push(json!({
                "kind": "Job",
                "apiVersion": "v1",
                "metadata": {
                    "id": new_id(),
                    "namespace": config.namespace,
                    "deploymentId": deployment["metadata"]["id"],
                    "createdAt": now(),
                    "annotations": deployment["metadata"]["annotations"],
                },
                "spec": spec,
                "status": {"state": "STARTED", "started": {"flinkJobId": flink_job, "startedAt": now()}},
            }));
            json!({"state": "RUNNING", "running": {"jobId": flink_job, "transitionTime": now()}})
        }
        Err(error) => {
            lock(state).events.push(format!("start failed: {error}"));
            json!({"state": "FAILED", "failure": {"message": error}})
        }
    }
}

fn suspend(state: &Mutex<State>, flink: &Flink, deployment: &Value, job: &str) -> Value {
    let Some(target) = deployment
        .pointer("/spec/template/spec/flinkConfiguration/state.savepoints.dir")
        .and_then(Value::as_str)
    else {
        return json!({"state": "FAILED", "failure": {"message": "state.savepoints.dir is not set: a Deployment cannot be suspended without it"}, "running": {"jobId": job}});
    };
    match flink.savepoint(job, target, false, true) {
        Outcome::Completed(location) => {
            finish_job(state, job, "TERMINATED");
            let mut state = lock(state);
            state.savepoints.push(json!({
                "kind": "Savepoint",
                "apiVersion": "v1",
                "metadata": {
                    "id": new_id(),
                    "namespace": deployment["metadata"]["namespace"],
                    "deploymentId": deployment["metadata"]["id"],
                    "origin": "SUSPEND",
                    "createdAt": now(),
                    "annotations": deployment["metadata"]["annotations"],
                },
                "spec": {"savepointLocation": location},
                "status": {"state": "COMPLETED"},
            }));
            state
                .events
                .push(format!("suspended {job} with {location}"));
            json!({"state": "SUSPENDED"})
        }
        Outcome::Failed(error) => {
            json!({"state": "FAILED", "failure": {"message": error}, "running": {"jobId": job}})
        }
    }
}
