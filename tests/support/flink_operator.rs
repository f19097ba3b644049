//! A small reconciler that plays the Apache Flink Kubernetes Operator's part against the
//! Kubernetes API double (`kube_api.rs`) and a REAL local Flink: the session cluster of
//! `scripts/flink-sandbox.sh`, driven through its REST API. It follows the operator's documented
//! behaviour (flink-kubernetes-operator docs: "Custom Resource Overview", "Job Management",
//! "Snapshots", "Status and Lifecycle", and the CRD reference).
//!
//! How it talks to the double: in-process, through [`ApiStore`] (`get`/`list`/`put_status`/
//! `update_object`), which applies the same rules as HTTP writes (status subresource,
//! resourceVersion, finalizers) but is neither logged nor subject to injected conflicts, so a
//! test's request log and conflict injection only concern the client under test. Every
//! `POLL_INTERVAL` (250 ms) it lists the FlinkDeployments and FlinkStateSnapshots and
//! reconciles each; a status is written only when it changes (an unchanged write does not
//! bump the resourceVersion), so clients patching with a resourceVersion are not disturbed.
//!
//! FlinkDeployment (application mode emulated on the session sandbox): each FlinkDeployment
//! owns one job, submitted from the sandbox's job jar (`spec.job.jarURI` is ignored) with
//! `--name <metadata.name>` followed by `spec.job.args`, `spec.job.parallelism` and
//! `allowNonRestoredState`. The operator adds the finalizer
//! `flinkdeployments.flink.apache.org/finalizer` and cancels the job when the resource is
//! deleted. A spec that differs from `status.reconciliationStatus.lastReconciledSpec` is acted on:
//! - first deployment: start, from `spec.job.initialSavepointPath` (or
//!   `initialStateReference.path`) when given; `state: suspended` only records the spec;
//! - upgrade (running → running), per `spec.job.upgradeMode` (default `stateless`):
//!   `savepoint` stops the job with a savepoint (`POST /jobs/:id/stop`), records the path in
//!   `status.jobStatus.upgradeSavepointPath` and `jobStatus.savepointInfo` (`lastSavepoint`,
//!   `savepointHistory`, trigger type UPGRADE) and starts the new job from it; `last-state`
//!   cancels the job and restarts from its latest retained checkpoint (HA metadata stands in
//!   for it in the real operator); `stateless` cancels and starts from empty state. When the
//!   job is not running (failed, or never came up) `savepoint` and `last-state` fall back to the
//!   latest checkpoint of the last job, then to `upgradeSavepointPath`, as the documented
//!   last-state fallback does;
//! - `state: suspended` stops the job the same way (savepoint mode: stop with savepoint) and
//!   reports SUSPENDED; back to `running` restores from the last savepoint (savepoint mode), the
//!   last checkpoint (last-state) or empty state (stateless);
//! - a changed `spec.job.savepointRedeployNonce` with `initialSavepointPath` (or
//!   `initialStateReference.path`) set cancels the job and starts from that path (the
//!   documented redeploy from savepoint); `upgradeSavepointPath` then names that path. As in
//!   the real operator, a change of `upgradeMode`, `initialSavepointPath` or
//!   `allowNonRestoredState` alone restarts nothing (`DiffType.IGNORE` in the operator's
//!   JobSpec): the spec is recorded as reconciled and the job runs on (the path is only read
//!   at the first deployment or with a new nonce).
//! - a stop without a savepoint for a last-state upgrade (`upgradeMode: last-state`, or a
//!   savepoint upgrade's fallback for an unhealthy or stopped job) writes the operator's
//!   placeholder `KUBERNETES_OPERATOR_LAST_STATE` to `upgradeSavepointPath`, not a path
//!   (operator source, `LAST_STATE_DUMMY_SP_PATH`); the new job restores from the old job's
//!   latest checkpoint, standing in for the HA metadata;
//! - a savepoint upgrade records its savepoint as a FlinkStateSnapshot with the labels
//!   `snapshot.trigger-type: UPGRADE`, `snapshot.type: SAVEPOINT`, `job-reference.kind` and
//!   `job-reference.name` (`spec.savepoint.alreadyExists: true`), as the operator does with
//!   snapshot resources on (its default since 1.10); the deprecated
//!   `jobStatus.savepointInfo` is then not updated (operator docs, "Snapshots");
//! - a spec the operator's validator rejects (`DefaultValidator`: no `flinkVersion`, job
//!   parallelism below 1, a Flink configuration key the operator owns such as
//!   `kubernetes.namespace`) is not reconciled: `status.error` carries a ValidationException
//!   with the validator's message, `observedGeneration` does not move, the old job runs on;
//! - `spec.flinkConfiguration`'s `execution.checkpointing.*` options go to the job (in
//!   application mode they are the cluster's configuration), so a resource can set the
//!   checkpoint interval of a job whose program leaves it to the configuration.
//!
//! A savepoint needs all the job's tasks running: a savepoint upgrade waits for them (up to
//! 30 s; a job that stays unhealthy is upgraded with its last state, the documented fallback),
//! and a snapshot is triggered once they run (the real operator would count a declined
//! savepoint as a failed attempt and back off). A stop with savepoint that fails leaves the
//! old job running and the old spec deployed, with `status.error`, and is retried after 10 s.
//!
//! While stopping, `status.reconciliationStatus.state` and `lifecycleState` are UPGRADING (at
//! least one poll interval); after the new job is submitted they are DEPLOYED, and STABLE once
//! the job is observed RUNNING (`lastStableSpec` = `lastReconciledSpec`). `observedGeneration`
//! is written together with the state that reflects it. `lifecycleState` is computed from the
//! rest of the status as the operator's `getLifecycleState` does: CREATED, UPGRADING,
//! SUSPENDED, FAILED (job FAILED, or an error before the first deployment), STABLE, DEPLOYED.
//!
//! Test convention for a spec that fails to start (both are documented behaviours of the real
//! operator, reached through different causes):
//! - `spec.job.args` containing `--fail-at-count N`: a REAL failure: the sandbox job throws when
//!   a key reaches N and Flink fails it after its restarts (a few seconds); the operator
//!   observes `jobStatus.state: FAILED`, sets `status.error` from the job's exception history,
//!   and `lifecycleState` is FAILED.
//! - `spec.image` containing `broken`: emulates an image that cannot be pulled: no job is
//!   submitted, `jobManagerDeploymentStatus: ERROR`, `status.error` names a
//!   DeploymentFailedException (ErrImagePull), and `lifecycleState` stays DEPLOYED, as the
//!   real operator reports it (only a FAILED job makes the lifecycle FAILED). Fixing the spec
//!   restores from `upgradeSavepointPath` (the savepoint taken when stopping the old job).
//!
//! FlinkStateSnapshot (`spec.jobReference{kind: FlinkDeployment, name}`,
//! `spec.savepoint{path, formatType, alreadyExists, disposeOnDelete}` or `spec.checkpoint: {}`):
//! TRIGGER_PENDING → a real savepoint (`POST /jobs/:id/savepoints` with a caller-chosen
//! triggerId; `spec.savepoint.path` or the deployment's savepoint directory as target) or a full
//! checkpoint → IN_PROGRESS (`status.triggerId`, `triggerTimestamp`) → COMPLETED with
//! `status.path` (as Flink reports it: `file:/...`) and `resultTimestamp`, or an error:
//! `status.error`, `failures` + 1, retried with backoff until `spec.backoffLimit` (default -1:
//! forever) is exceeded, then FAILED. A job that stops while the snapshot is in progress makes
//! it ABANDONED. `alreadyExists: true` completes at once with `spec.savepoint.path` and takes no
//! savepoint. On deletion (finalizer `flinkstatesnapshots.flink.apache.org/finalizer`) a
//! completed savepoint is disposed through Flink only when `disposeOnDelete` is true (the
//! default); with false the files stay.
//!
//! Deliberately not done: rollbacks, FlinkSessionJob, the JobManager/TaskManager resources,
//! periodic and nonce-triggered savepoints, `restartNonce` semantics beyond "any spec change is
//! an upgrade", HA metadata beyond the last job's latest checkpoint, and snapshot backoff at the
//! real pace: it doubles as the operator's does, without a cap, but from 1 s instead of 10 s
//! ([`snapshot_retry_delay`], one tenth of the real delays, to keep tests short).
//! [`Operator::stop`] (and dropping the operator) cancels the jobs it started that still run,
//! so a shared sandbox is left clean.
//!
//! Also here: [`SandboxEnv`] (read from a sandbox's `env` file) and [`FlinkSandbox`] (attach
//! to the sandbox named by `RUNBOOK_FLINK_ENV`, or start one with `scripts/flink-sandbox.sh
//! start` in a temporary directory and stop it when dropped).
//!
//! Include it next to `kube_api.rs` as a sibling module (`use super::kube_api`).
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::flink_sandbox::SandboxEnv;
use super::kube_api::{ApiStore, KubeApi};

/// How often the operator looks at the resources.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

const DEPLOYMENT: &str = "FlinkDeployment";
const SNAPSHOT: &str = "FlinkStateSnapshot";
const DEPLOYMENT_FINALIZER: &str = "flinkdeployments.flink.apache.org/finalizer";
const SNAPSHOT_FINALIZER: &str = "flinkstatesnapshots.flink.apache.org/finalizer";
const API_VERSION: &str = "flink.apache.org/v1beta1";

/// What the operator writes to `status.jobStatus.upgradeSavepointPath` when it stops a job for
/// a last-state upgrade (and when a savepoint upgrade falls back to last-state): no snapshot
/// was taken, the new job restores from the HA metadata (operator source:
/// `AbstractJobReconciler`/`AbstractFlinkService`, `LAST_STATE_DUMMY_SP_PATH`).
pub const LAST_STATE_PLACEHOLDER: &str = "KUBERNETES_OPERATOR_LAST_STATE";

/// Labels the operator puts on the FlinkStateSnapshot it creates for a snapshot it took
/// itself (operator source: `FlinkStateSnapshotUtils`; docs "Snapshots": the trigger type is
/// MANUAL, PERIODIC or UPGRADE).
pub const SNAPSHOT_TYPE_LABEL: &str = "snapshot.type";
pub const SNAPSHOT_TRIGGER_TYPE_LABEL: &str = "snapshot.trigger-type";
pub const JOB_REFERENCE_KIND_LABEL: &str = "job-reference.kind";
pub const JOB_REFERENCE_NAME_LABEL: &str = "job-reference.name";

/// The operator retries a failed snapshot `10 s x 2^(failures - 1)` later, without a cap, until
/// `spec.backoffLimit` is exceeded (operator source: `FlinkStateSnapshotController#
/// updateErrorStatus`: `retrySeconds = 10L * (1L << failures - 1)`, `rescheduleAfter`). The
/// double waits one tenth of that: 1 s, 2 s, 4 s, ...
pub const SNAPSHOT_RETRY_TIME_SCALE: u32 = 10;

pub fn snapshot_retry_delay(failures: i64) -> Duration {
    let real = Duration::from_secs(10) * (1u32 << (failures - 1).clamp(0, 20) as u32);
    real / SNAPSHOT_RETRY_TIME_SCALE
}

/// How long a stop with savepoint may take (a backpressured job can take a minute).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
const CANCEL_TIMEOUT: Duration = Duration::from_secs(60);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);
const DISPOSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait after a failed upgrade before trying again.
const UPGRADE_RETRY: Duration = Duration::from_secs(10);
/// How long a savepoint upgrade waits for an unhealthy job before using its last state.
const UNHEALTHY_FALLBACK: Duration = Duration::from_secs(30);
const FLINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FLINK_IO_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The operator

/// The reconciler thread. Stopped (and its still-running jobs cancelled) by [`Operator::stop`]
/// or when dropped.
pub struct Operator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    events: Arc<Mutex<Vec<String>>>,
    store: ApiStore,
    flink_url: String,
    /// The JobManager REST services handed out by [`Operator::rest_url`].
    services: Mutex<Vec<JobManagerService>>,
}

impl Operator {
    /// Starts reconciling the double's FlinkDeployments and FlinkStateSnapshots against the
    /// sandbox.
    pub fn start(api: &KubeApi, flink: SandboxEnv) -> Operator {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let flink_url = flink.url.clone();
        let mut reconciler = Reconciler::new(api.store(), flink, Arc::clone(&events));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                // A bug in one pass must not end the operator; it is reported as an event.
                let pass =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconciler.tick()));
                if let Err(panic) = pass {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    reconciler.event(format!("reconcile pass panicked: {what}"));
                }
                sleep_unless_stopped(&stopping, POLL_INTERVAL);
            }
            reconciler.cancel_own_jobs();
        });
        Operator {
            stop,
            thread: Some(thread),
            events,
            store: api.store(),
            flink_url,
            services: Mutex::new(Vec::new()),
        }
    }

    /// The REST endpoint of a FlinkDeployment's JobManager, as its `<name>-rest` Service
    /// gives it in application mode: it knows only the job the deployment runs now (see
    /// [`JobManagerService`]). Runbooks are given this URL, never the sandbox's own.
    pub fn rest_url(&self, namespace: &str, name: &str) -> String {
        let service = JobManagerService::start(
            self.store.clone(),
            &self.flink_url,
            namespace,
            name,
            Arc::clone(&self.stop),
        )
        .unwrap_or_else(|e| panic!("start the JobManager service of {namespace}/{name}: {e}"));
        let url = service.url.clone();
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(service);
        url
    }

    /// What the operator did and what went wrong, oldest first (as the real operator's
    /// Kubernetes events would tell).
    pub fn events(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Stops the thread after its current pass and cancels the jobs it started that still run.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let services =
            std::mem::take(&mut *self.services.lock().unwrap_or_else(|p| p.into_inner()));
        for service in services {
            service.join();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(25));
    }
}

/// Name, namespace, uid and generation of a resource.
#[derive(Debug, Clone)]
struct ResourceId {
    namespace: String,
    name: String,
    uid: String,
    generation: i64,
}

impl ResourceId {
    fn of(object: &Value) -> Option<ResourceId> {
        Some(ResourceId {
            namespace: str_at(object, &["metadata", "namespace"])
                .unwrap_or("")
                .to_owned(),
            name: str_at(object, &["metadata", "name"])?.to_owned(),
            uid: str_at(object, &["metadata", "uid"])?.to_owned(),
            generation: object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        })
    }
}

/// What the operator remembers about a FlinkDeployment between passes.
#[derive(Debug, Default)]
struct DeploymentMemory {
    namespace: String,
    name: String,
    /// The job this deployment runs (or ran last).
    job_id: Option<String>,
    /// The last job that ran: its latest checkpoint is what the HA metadata names. The real
    /// operator keeps a deployment's HA metadata (ConfigMaps) across upgrades, even when the
    /// new JobManager never comes up, and a last-state deployment restores from it (docs, "Job
    /// Management": last-state upgrade mode; `kubernetes.operator.job.upgrade.last-state-
    /// fallback.enabled`). Unlike `job_id`, a JobManager that cannot start does not clear it.
    ha_job_id: Option<String>,
    /// A stop (savepoint or cancel) under way.
    pending: Option<PendingStop>,
    /// No new upgrade attempt before this (after a failed one).
    retry_after: Option<Instant>,
    /// Since when a savepoint upgrade waits for the job's tasks to run.
    unready_since: Option<Instant>,
}

#[derive(Debug, Clone)]
struct PendingStop {
    job_id: String,
    how: StopHow,
    deadline: Instant,
    /// A redeploy to this path instead of the normal restore.
    redeploy_from: Option<String>,
}

#[derive(Debug, Clone)]
enum StopHow {
    Savepoint { trigger_id: String },
    Cancel,
}

/// Where a (re)started job takes its state from.
#[derive(Debug, Clone, PartialEq)]
enum Restore {
    Empty,
    Path(String),
    /// The latest retained checkpoint of the last job, else `upgradeSavepointPath`.
    LatestCheckpoint,
}

#[derive(Debug, Default)]
struct SnapshotMemory {
    job_id: Option<String>,
    deadline: Option<Instant>,
    retry_after: Option<Instant>,
}

struct Reconciler {
    store: ApiStore,
    flink: Result<FlinkRest, String>,
    env: SandboxEnv,
    jar_id: Option<String>,
    deployments: HashMap<String, DeploymentMemory>,
    snapshots: HashMap<String, SnapshotMemory>,
    /// Jobs this operator submitted.
    submitted: BTreeSet<String>,
    events: Arc<Mutex<Vec<String>>>,
}

impl Reconciler {
    fn new(store: ApiStore, env: SandboxEnv, events: Arc<Mutex<Vec<String>>>) -> Reconciler {
        Reconciler {
            store,
            flink: FlinkRest::new(&env.url),
            env,
            jar_id: None,
            deployments: HashMap::new(),
            snapshots: HashMap::new(),
            submitted: BTreeSet::new(),
            events,
        }
    }

    fn event(&self, message: String) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(format!("{} {message}", jiff::Timestamp::now()));
    }

    fn flink(&self) -> Result<&FlinkRest, String> {
        self.flink.as_ref().map_err(Clone::clone)
    }

    /// One pass over all resources.
    fn tick(&mut self) {
        let deployments = self.store.list_objects(DEPLOYMENT, None);
        let mut live = HashSet::new();
        for object in &deployments {
            let Some(id) = ResourceId::of(object) else {
                continue;
            };
            live.insert(id.uid.clone());
            if let Err(error) = self.reconcile_deployment(&id, object) {
                self.event(format!(
                    "FlinkDeployment {}/{}: {error}",
                    id.namespace, id.name
                ));
            }
        }
        self.forget_deleted_deployments(&live);

        let snapshots = self.store.list_objects(SNAPSHOT, None);
        let live: HashSet<String> = snapshots
            .iter()
            .filter_map(|s| ResourceId::of(s).map(|id| id.uid))
            .collect();
        for object in &snapshots {
            let Some(id) = ResourceId::of(object) else {
                continue;
            };
            if let Err(error) = self.reconcile_snapshot(&id, object) {
                self.event(format!(
                    "FlinkStateSnapshot {}/{}: {error}",
                    id.namespace, id.name
                ));
            }
        }
        self.snapshots.retain(|uid, _| live.contains(uid));
    }

    /// Deployments that disappeared without going through the finalizer: cancel their jobs.
    fn forget_deleted_deployments(&mut self, live: &HashSet<String>) {
        let gone: Vec<String> = self
            .deployments
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(memory) = self.deployments.remove(&uid)
                && let Some(job_id) = memory.job_id
            {
                self.cancel_if_running(&job_id);
            }
        }
    }

    fn cancel_if_running(&self, job_id: &str) {
        let Ok(flink) = self.flink() else { return };
        if let Ok(Some(state)) = flink.job_state(job_id)
            && !is_terminal(&state)
        {
            let _ = flink.cancel(job_id);
        }
    }

    /// At stop: cancel the jobs this operator started that still run.
    fn cancel_own_jobs(&self) {
        for job_id in &self.submitted {
            self.cancel_if_running(job_id);
        }
    }

    fn write_status(&self, kind: &str, id: &ResourceId, mut status: Value) -> Result<(), String> {
        if kind == DEPLOYMENT {
            let lifecycle = lifecycle_state(&status);
            set(&mut status, &["lifecycleState"], json!(lifecycle));
        }
        self.store
            .put_status(kind, &id.namespace, &id.name, status)
            .map(|_| ())
            .map_err(|e| format!("writing status: {e}"))
    }

    /// Adds the operator's finalizer; answers the object as stored.
    fn ensure_finalizer(
        &self,
        kind: &str,
        id: &ResourceId,
        object: &Value,
        finalizer: &str,
    ) -> Result<Value, String> {
        let has = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == finalizer));
        if has {
            return Ok(object.clone());
        }
        self.store
            .update_object(kind, &id.namespace, &id.name, |object| {
                let metadata = object
                    .pointer_mut("/metadata")
                    .and_then(Value::as_object_mut);
                if let Some(metadata) = metadata {
                    let finalizers = metadata.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(list) = finalizers.as_array_mut() {
                        list.push(json!(finalizer));
                    }
                }
            })
            .map_err(|e| format!("adding the finalizer: {e}"))
    }

    fn remove_finalizer(&self, kind: &str, id: &ResourceId, finalizer: &str) -> Result<(), String> {
        self.store
            .update_object(kind, &id.namespace, &id.name, |object| {
                if let Some(list) = object
                    .pointer_mut("/metadata/finalizers")
                    .and_then(Value::as_array_mut)
                {
                    list.retain(|f| f != finalizer);
                }
            })
            .map(|_| ())
            .map_err(|e| format!("removing the finalizer: {e}"))
    }

    // -----------------------------------------------------------------------------------------
    // FlinkDeployment

    fn reconcile_deployment(&mut self, id: &ResourceId, object: &Value) -> Result<(), String> {
        if object.pointer("/metadata/deletionTimestamp").is_some() {
            return self.finalize_deployment(id, object);
        }
        let object = self.ensure_finalizer(DEPLOYMENT, id, object, DEPLOYMENT_FINALIZER)?;
        let mut memory = self.deployments.remove(&id.uid).unwrap_or_default();
        memory.namespace.clone_from(&id.namespace);
        memory.name.clone_from(&id.name);
        if memory.job_id.is_none() {
            memory.job_id = str_at(&object, &["status", "jobStatus", "jobId"]).map(str::to_owned);
        }
        let outcome = self.reconcile_deployment_with(id, &object, &mut memory);
        self.deployments.insert(id.uid.clone(), memory);
        outcome
    }

    fn reconcile_deployment_with(
        &mut self,
        id: &ResourceId,
        object: &Value,
        memory: &mut DeploymentMemory,
    ) -> Result<(), String> {
        let status = object.get("status").cloned().unwrap_or_else(|| json!({}));
        if let Some(pending) = memory.pending.take() {
            return self.advance_stop(id, object, status, memory, pending);
        }
        let mut status = self.observe_job(id, status);
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        if let Some(problem) = validation_error(&spec) {
            // A spec the operator rejects is not reconciled: the last reconciled one stays
            // deployed, `observedGeneration` stays where it was, and `status.error` says why
            // (operator source: `FlinkDeploymentController` with `DefaultValidator`, whose
            // messages these are).
            set(
                &mut status,
                &["error"],
                json!(error_json(VALIDATION_EXCEPTION, &problem, &[])),
            );
            return self.write_status(DEPLOYMENT, id, status);
        }
        if str_at(&status, &["error"]).is_some_and(|e| e.contains(VALIDATION_EXCEPTION)) {
            unset(&mut status, &["error"]);
        }
        match last_reconciled_spec(&status) {
            None => self.first_deployment(id, &spec, status, memory),
            Some(last) if last == spec => {
                set(&mut status, &["observedGeneration"], json!(id.generation));
                self.write_status(DEPLOYMENT, id, status)
            }
            Some(last) if restart_fields(&last) == restart_fields(&spec) => {
                // Only fields that do not restart a job changed (`upgradeMode`,
                // `initialSavepointPath`, `allowNonRestoredState`: `@SpecDiff(DiffType.IGNORE)`
                // in the operator's JobSpec): the spec is recorded, the job runs on.
                let stable = status.pointer("/reconciliationStatus/lastStableSpec")
                    == status.pointer("/reconciliationStatus/lastReconciledSpec");
                record_reconciled(&mut status, &spec, id.generation, false);
                if stable
                    && let Some(reconciled) = status
                        .pointer("/reconciliationStatus/lastReconciledSpec")
                        .cloned()
                {
                    set(
                        &mut status,
                        &["reconciliationStatus", "lastStableSpec"],
                        reconciled,
                    );
                }
                self.event(format!(
                    "FlinkDeployment {}/{}: generation {} changes nothing that restarts the job",
                    id.namespace, id.name, id.generation
                ));
                self.write_status(DEPLOYMENT, id, status)
            }
            Some(_) if memory.retry_after.is_some_and(|t| Instant::now() < t) => {
                self.write_status(DEPLOYMENT, id, status)
            }
            Some(last) => {
                memory.retry_after = None;
                self.change_spec(id, object, &spec, &last, status, memory)
            }
        }
    }

    /// Refreshes `jobStatus` from Flink: state, failure, and stability.
    fn observe_job(&self, id: &ResourceId, mut status: Value) -> Value {
        let Some(job_id) = str_at(&status, &["jobStatus", "jobId"]).map(str::to_owned) else {
            return status;
        };
        let Ok(flink) = self.flink() else {
            return status;
        };
        let state = match flink.job_state(&job_id) {
            Ok(Some(state)) => state,
            Ok(None) | Err(_) => return status,
        };
        if str_at(&status, &["jobStatus", "state"]) != Some(state.as_str()) {
            set(&mut status, &["jobStatus", "state"], json!(state));
            set(
                &mut status,
                &["jobStatus", "updateTime"],
                json!(now_millis()),
            );
            self.event(format!(
                "FlinkDeployment {}/{}: job {job_id} is {state}",
                id.namespace, id.name
            ));
        }
        if state == "FAILED"
            && str_at(&status, &["error"]).is_none_or(str::is_empty)
            && let Some(error) = flink.failure_error(&job_id)
        {
            set(&mut status, &["error"], json!(error));
        }
        let deployed = str_at(&status, &["reconciliationStatus", "state"]) == Some("DEPLOYED");
        let reconciled = status
            .pointer("/reconciliationStatus/lastReconciledSpec")
            .cloned();
        // Observed running: the reconciled spec becomes the stable one.
        if state == "RUNNING"
            && deployed
            && status.pointer("/reconciliationStatus/lastStableSpec") != reconciled.as_ref()
            && let Some(reconciled) = reconciled
        {
            set(
                &mut status,
                &["reconciliationStatus", "lastStableSpec"],
                reconciled,
            );
        }
        status
    }

    fn first_deployment(
        &mut self,
        id: &ResourceId,
        spec: &Value,
        mut status: Value,
        memory: &mut DeploymentMemory,
    ) -> Result<(), String> {
        if desired_job_state(spec) == "suspended" {
            record_reconciled(&mut status, spec, id.generation, true);
            set(
                &mut status,
                &["jobManagerDeploymentStatus"],
                json!("MISSING"),
            );
            set(&mut status, &["jobStatus", "jobName"], json!(id.name));
            return self.write_status(DEPLOYMENT, id, status);
        }
        let restore = initial_path(spec).map_or(Restore::Empty, Restore::Path);
        self.deploy(id, spec, restore, status, memory, true)
    }

    /// The spec changed: decide how to stop the current job (if at all) and what comes after.
    fn change_spec(
        &mut self,
        id: &ResourceId,
        object: &Value,
        spec: &Value,
        last: &Value,
        mut status: Value,
        memory: &mut DeploymentMemory,
    ) -> Result<(), String> {
        let mode = upgrade_mode(spec);
        let job_state = str_at(&status, &["jobStatus", "state"]).unwrap_or("");
        let running_job = str_at(&status, &["jobStatus", "jobId"])
            .filter(|_| !job_state.is_empty() && !is_terminal(job_state))
            .map(str::to_owned);
        let redeploy = (nonce(spec) != nonce(last))
            .then(|| initial_path(spec))
            .flatten();
        let suspend = desired_job_state(spec) == "suspended";
        let was_suspended = desired_job_state(last) == "suspended";

        if suspend && was_suspended && redeploy.is_none() {
            // suspended → suspended: the spec is recorded, nothing runs.
            record_reconciled(&mut status, spec, id.generation, false);
            return self.write_status(DEPLOYMENT, id, status);
        }
        let Some(job_id) = running_job else {
            // Nothing to stop: act on the new spec directly.
            let restore = match (&redeploy, mode) {
                (Some(path), _) => Restore::Path(path.clone()),
                (None, "stateless") => Restore::Empty,
                (None, "savepoint") if was_suspended => {
                    upgrade_savepoint(&status).map_or(Restore::Empty, Restore::Path)
                }
                (None, _) => Restore::LatestCheckpoint,
            };
            if matches!(restore, Restore::LatestCheckpoint) {
                set(
                    &mut status,
                    &["jobStatus", "upgradeSavepointPath"],
                    json!(LAST_STATE_PLACEHOLDER),
                );
            }
            return self.after_stop(id, object, status, memory, restore, redeploy.is_some());
        };
        let mut savepoint = redeploy.is_none() && mode == "savepoint";
        if savepoint && !self.flink()?.tasks_running(&job_id)? {
            // A savepoint needs all tasks running. Wait for them a while; a job that stays
            // unhealthy falls back to the last-state behaviour, as the operator documents.
            let since = *memory.unready_since.get_or_insert_with(Instant::now);
            if since.elapsed() < UNHEALTHY_FALLBACK {
                return self.write_status(DEPLOYMENT, id, status);
            }
            self.event(format!(
                "FlinkDeployment {}/{}: job {job_id} is not healthy; upgrading with its last state",
                id.namespace, id.name
            ));
            savepoint = false;
        }
        memory.unready_since = None;
        let how = if savepoint {
            let trigger_id = new_trigger_id();
            let target = savepoint_dir(spec, &self.env);
            if let Err(error) = self
                .flink()?
                .stop_with_savepoint(&job_id, &target, &trigger_id)
            {
                return self.fail_change(id, status, memory, &error);
            }
            set(
                &mut status,
                &["jobStatus", "savepointInfo", "triggerId"],
                json!(trigger_id),
            );
            set(
                &mut status,
                &["jobStatus", "savepointInfo", "triggerTimestamp"],
                json!(epoch_millis()),
            );
            set(
                &mut status,
                &["jobStatus", "savepointInfo", "triggerType"],
                json!("UPGRADE"),
            );
            set(
                &mut status,
                &["jobStatus", "savepointInfo", "formatType"],
                json!("CANONICAL"),
            );
            StopHow::Savepoint { trigger_id }
        } else {
            self.flink()?.cancel(&job_id)?;
            StopHow::Cancel
        };
        self.event(format!(
            "FlinkDeployment {}/{}: stopping job {job_id} ({how:?}) for generation {}",
            id.namespace, id.name, id.generation
        ));
        set(
            &mut status,
            &["reconciliationStatus", "state"],
            json!("UPGRADING"),
        );
        set(&mut status, &["observedGeneration"], json!(id.generation));
        unset(&mut status, &["error"]);
        memory.pending = Some(PendingStop {
            job_id,
            deadline: Instant::now()
                + match how {
                    StopHow::Savepoint { .. } => STOP_TIMEOUT,
                    StopHow::Cancel => CANCEL_TIMEOUT,
                },
            how,
            redeploy_from: redeploy,
        });
        self.write_status(DEPLOYMENT, id, status)
    }

    /// Follows a stop under way; when done, goes on with the current spec.
    fn advance_stop(
        &mut self,
        id: &ResourceId,
        object: &Value,
        mut status: Value,
        memory: &mut DeploymentMemory,
        pending: PendingStop,
    ) -> Result<(), String> {
        let flink = self.flink()?.clone();
        let timed_out = Instant::now() >= pending.deadline;
        match &pending.how {
            StopHow::Savepoint { trigger_id } => {
                match flink.savepoint_operation(&pending.job_id, trigger_id) {
                    Ok(Operation::Completed(result)) => {
                        let Some(location) = result.get("location").and_then(Value::as_str) else {
                            return self.fail_change(
                                id,
                                status,
                                memory,
                                "the savepoint operation reported no location",
                            );
                        };
                        self.record_upgrade_savepoint(id, &mut status, location);
                        self.finish_stop(
                            id,
                            object,
                            status,
                            memory,
                            &pending,
                            Some(location.to_owned()),
                        )
                    }
                    Ok(Operation::Failed(message)) => match created_savepoint(&message) {
                        // Stop-with-savepoint failed after writing the savepoint: it is usable.
                        Some(location) => {
                            self.record_upgrade_savepoint(id, &mut status, &location);
                            self.finish_stop(id, object, status, memory, &pending, Some(location))
                        }
                        None => {
                            unset(&mut status, &["jobStatus", "savepointInfo", "triggerId"]);
                            self.fail_change(id, status, memory, &message)
                        }
                    },
                    Ok(Operation::InProgress) | Err(_) if !timed_out => {
                        memory.pending = Some(pending);
                        Ok(())
                    }
                    Ok(Operation::InProgress) | Err(_) => {
                        unset(&mut status, &["jobStatus", "savepointInfo", "triggerId"]);
                        self.fail_change(id, status, memory, "stop with savepoint timed out")
                    }
                }
            }
            StopHow::Cancel => match flink.job_state(&pending.job_id) {
                Ok(Some(state)) if is_terminal(&state) => {
                    set(&mut status, &["jobStatus", "state"], json!(state));
                    self.finish_stop(id, object, status, memory, &pending, None)
                }
                _ if !timed_out => {
                    memory.pending = Some(pending);
                    Ok(())
                }
                _ => self.fail_change(id, status, memory, "cancelling the job timed out"),
            },
        }
    }

    /// The old job is stopped: restore per the current spec (a redeploy path wins).
    fn finish_stop(
        &mut self,
        id: &ResourceId,
        object: &Value,
        mut status: Value,
        memory: &mut DeploymentMemory,
        pending: &PendingStop,
        savepoint: Option<String>,
    ) -> Result<(), String> {
        if let Ok(Some(state)) = self.flink()?.job_state(&pending.job_id) {
            set(&mut status, &["jobStatus", "state"], json!(state));
        }
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        let restore = match (&pending.redeploy_from, savepoint) {
            (Some(path), _) => Restore::Path(path.clone()),
            (None, Some(savepoint)) => Restore::Path(savepoint),
            (None, None) if upgrade_mode(&spec) == "stateless" => Restore::Empty,
            (None, None) => {
                // A last-state stop (or a savepoint upgrade's fallback to it) takes no
                // snapshot; the operator records its placeholder instead of a path.
                set(
                    &mut status,
                    &["jobStatus", "upgradeSavepointPath"],
                    json!(LAST_STATE_PLACEHOLDER),
                );
                Restore::LatestCheckpoint
            }
        };
        self.after_stop(
            id,
            object,
            status,
            memory,
            restore,
            pending.redeploy_from.is_some(),
        )
    }

    /// Suspends or deploys, per the current spec, once no job runs.
    fn after_stop(
        &mut self,
        id: &ResourceId,
        object: &Value,
        mut status: Value,
        memory: &mut DeploymentMemory,
        restore: Restore,
        redeploy: bool,
    ) -> Result<(), String> {
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        if desired_job_state(&spec) == "suspended" {
            // A redeploy while suspended: the path is where a later resume starts from.
            if let (true, Restore::Path(path)) = (redeploy, &restore) {
                set(
                    &mut status,
                    &["jobStatus", "upgradeSavepointPath"],
                    json!(path),
                );
            }
            record_reconciled(&mut status, &spec, id.generation, false);
            set(
                &mut status,
                &["jobManagerDeploymentStatus"],
                json!("MISSING"),
            );
            self.event(format!(
                "FlinkDeployment {}/{}: suspended",
                id.namespace, id.name
            ));
            return self.write_status(DEPLOYMENT, id, status);
        }
        self.deploy(id, &spec, restore, status, memory, false)
    }

    /// The savepoint an upgrade stopped the job with: `upgradeSavepointPath`, and a
    /// FlinkStateSnapshot with trigger type UPGRADE (`spec.savepoint.alreadyExists`, completed
    /// at once by the snapshot reconciler). With snapshot resources on (the default since
    /// operator 1.10, `kubernetes.operator.snapshot.resource.enabled`) the deprecated
    /// `jobStatus.savepointInfo` is no longer updated: its `lastSavepoint` stays whatever it
    /// was, which is why clients must not read it (operator docs, "Snapshots").
    fn record_upgrade_savepoint(&self, id: &ResourceId, status: &mut Value, location: &str) {
        set(
            status,
            &["jobStatus", "upgradeSavepointPath"],
            json!(location),
        );
        for field in ["triggerId", "triggerTimestamp", "triggerType", "formatType"] {
            unset(status, &["jobStatus", "savepointInfo", field]);
        }
        let snapshot = json!({
            "apiVersion": API_VERSION,
            "kind": SNAPSHOT,
            "metadata": {
                "name": format!("{}-upgrade-{}", id.name, epoch_millis()),
                "namespace": id.namespace,
                "labels": {
                    SNAPSHOT_TYPE_LABEL: "SAVEPOINT",
                    SNAPSHOT_TRIGGER_TYPE_LABEL: "UPGRADE",
                    JOB_REFERENCE_KIND_LABEL: DEPLOYMENT,
                    JOB_REFERENCE_NAME_LABEL: id.name,
                },
            },
            "spec": {
                "backoffLimit": 0,
                "jobReference": {"kind": DEPLOYMENT, "name": id.name},
                "savepoint": {
                    "alreadyExists": true,
                    "disposeOnDelete": false,
                    "formatType": "CANONICAL",
                    "path": location,
                },
            },
        });
        if let Err(error) = self.store.create_object(SNAPSHOT, snapshot) {
            self.event(format!(
                "FlinkDeployment {}/{}: cannot record the UPGRADE snapshot: {error}",
                id.namespace, id.name
            ));
        }
    }

    /// An upgrade could not stop the old job: the old spec stays deployed, with the error.
    fn fail_change(
        &mut self,
        id: &ResourceId,
        mut status: Value,
        memory: &mut DeploymentMemory,
        message: &str,
    ) -> Result<(), String> {
        self.event(format!(
            "FlinkDeployment {}/{}: upgrade failed: {message}",
            id.namespace, id.name
        ));
        set(
            &mut status,
            &["error"],
            json!(error_json(
                "org.apache.flink.kubernetes.operator.exception.UpgradeFailureException",
                message,
                &[]
            )),
        );
        set(
            &mut status,
            &["reconciliationStatus", "state"],
            json!("DEPLOYED"),
        );
        memory.retry_after = Some(Instant::now() + UPGRADE_RETRY);
        self.write_status(DEPLOYMENT, id, status)
    }

    /// Submits the job of this spec, restoring as told.
    fn deploy(
        &mut self,
        id: &ResourceId,
        spec: &Value,
        restore: Restore,
        mut status: Value,
        memory: &mut DeploymentMemory,
        first: bool,
    ) -> Result<(), String> {
        record_reconciled(&mut status, spec, id.generation, first);
        unset(&mut status, &["error"]);
        set(&mut status, &["jobStatus", "jobName"], json!(id.name));
        set(
            &mut status,
            &["clusterInfo"],
            json!({"flink-version": "2.3.0", "state-size": "0"}),
        );
        if let Some(image) = str_at(spec, &["image"]).filter(|i| i.contains("broken")) {
            return self.deploy_broken_image(id, image.to_owned(), status, memory);
        }
        let path = match self.resolve_restore(&restore, &status, memory) {
            Ok(path) => path,
            Err(error) => return self.deploy_failed(id, status, memory, &error),
        };
        let submitted = self.submit(&id.name, spec, path.as_deref());
        let job_id = match submitted {
            Ok(job_id) => job_id,
            Err(error) => return self.deploy_failed(id, status, memory, &error),
        };
        self.event(format!(
            "FlinkDeployment {}/{}: submitted job {job_id} for generation {} from {}",
            id.namespace,
            id.name,
            id.generation,
            path.as_deref().unwrap_or("empty state")
        ));
        if let (Restore::Path(path), Some(_)) = (&restore, &path) {
            set(
                &mut status,
                &["jobStatus", "upgradeSavepointPath"],
                json!(path),
            );
        }
        set(&mut status, &["jobStatus", "jobId"], json!(job_id));
        set(&mut status, &["jobStatus", "state"], json!("RECONCILING"));
        set(
            &mut status,
            &["jobStatus", "startTime"],
            json!(now_millis()),
        );
        set(
            &mut status,
            &["jobStatus", "updateTime"],
            json!(now_millis()),
        );
        set(&mut status, &["jobManagerDeploymentStatus"], json!("READY"));
        memory.ha_job_id = Some(job_id.clone());
        memory.job_id = Some(job_id);
        self.write_status(DEPLOYMENT, id, status)
    }

    fn deploy_broken_image(
        &mut self,
        id: &ResourceId,
        image: String,
        mut status: Value,
        memory: &mut DeploymentMemory,
    ) -> Result<(), String> {
        let message = format!("Back-off pulling image \"{image}\": ErrImagePull");
        self.event(format!(
            "FlinkDeployment {}/{}: {message}",
            id.namespace, id.name
        ));
        set(
            &mut status,
            &["error"],
            json!(error_json(
                "org.apache.flink.kubernetes.operator.exception.DeploymentFailedException",
                &message,
                &[("reason", "ErrImagePull")],
            )),
        );
        set(&mut status, &["jobManagerDeploymentStatus"], json!("ERROR"));
        set(&mut status, &["jobStatus", "state"], json!("RECONCILING"));
        unset(&mut status, &["jobStatus", "jobId"]);
        memory.job_id = None;
        self.write_status(DEPLOYMENT, id, status)
    }

    /// The job could not be submitted (e.g. a savepoint path that does not exist).
    fn deploy_failed(
        &mut self,
        id: &ResourceId,
        mut status: Value,
        memory: &mut DeploymentMemory,
        message: &str,
    ) -> Result<(), String> {
        self.event(format!(
            "FlinkDeployment {}/{}: deployment failed: {message}",
            id.namespace, id.name
        ));
        set(
            &mut status,
            &["error"],
            json!(error_json(
                "org.apache.flink.kubernetes.operator.exception.ReconciliationException",
                message,
                &[]
            )),
        );
        set(&mut status, &["jobStatus", "state"], json!("FAILED"));
        unset(&mut status, &["jobStatus", "jobId"]);
        memory.job_id = None;
        self.write_status(DEPLOYMENT, id, status)
    }

    fn resolve_restore(
        &self,
        restore: &Restore,
        status: &Value,
        memory: &DeploymentMemory,
    ) -> Result<Option<String>, String> {
        match restore {
            Restore::Empty => Ok(None),
            Restore::Path(path) => Ok(Some(path.clone())),
            Restore::LatestCheckpoint => {
                let checkpoint = match memory.job_id.as_ref().or(memory.ha_job_id.as_ref()) {
                    Some(job_id) => self.flink()?.latest_checkpoint(job_id)?,
                    None => None,
                };
                match checkpoint.or_else(|| upgrade_savepoint(status)) {
                    Some(path) => Ok(Some(path)),
                    None => Err("no checkpoint or savepoint to restore the job from".to_owned()),
                }
            }
        }
    }

    /// Uploads the job jar once, then runs it.
    fn submit(
        &mut self,
        name: &str,
        spec: &Value,
        savepoint: Option<&str>,
    ) -> Result<String, String> {
        let flink = self.flink()?.clone();
        let jar_id = match &self.jar_id {
            Some(jar_id) => jar_id.clone(),
            None => {
                let jar_id = flink.upload_jar(&self.env.job_jar)?;
                self.jar_id = Some(jar_id.clone());
                jar_id
            }
        };
        let mut args = vec!["--name".to_owned(), name.to_owned()];
        if let Some(extra) = spec.pointer("/job/args").and_then(Value::as_array) {
            args.extend(
                extra
                    .iter()
                    .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned)),
            );
        }
        let mut request = json!({"programArgsList": args});
        // In application mode `spec.flinkConfiguration` is the cluster's configuration, which
        // the job's environment reads (operator docs, "Flink configuration"). The checkpointing
        // options are passed with the job (`flinkConfiguration` of `POST /jars/:id/run`), so a
        // job whose program does not set them (`--checkpoint-ms 0`) checkpoints as the resource
        // says; the others concern a cluster the shared sandbox already is.
        let checkpointing: serde_json::Map<String, Value> = spec
            .get("flinkConfiguration")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with("execution.checkpointing."))
            .map(|(key, value)| {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (key.clone(), Value::String(text))
            })
            .collect();
        if !checkpointing.is_empty() {
            set(
                &mut request,
                &["flinkConfiguration"],
                Value::Object(checkpointing),
            );
        }
        if let Some(savepoint) = savepoint {
            set(&mut request, &["savepointPath"], json!(savepoint));
        }
        if let Some(allow) = spec
            .pointer("/job/allowNonRestoredState")
            .and_then(Value::as_bool)
        {
            set(&mut request, &["allowNonRestoredState"], json!(allow));
        }
        if let Some(parallelism) = spec.pointer("/job/parallelism").and_then(Value::as_i64) {
            set(&mut request, &["parallelism"], json!(parallelism));
        }
        let job_id = flink.run_jar(&jar_id, &request)?;
        self.submitted.insert(job_id.clone());
        Ok(job_id)
    }

    fn finalize_deployment(&mut self, id: &ResourceId, object: &Value) -> Result<(), String> {
        let memory = self.deployments.remove(&id.uid);
        let job_id = memory
            .and_then(|m| m.job_id)
            .or_else(|| str_at(object, &["status", "jobStatus", "jobId"]).map(str::to_owned));
        if let Some(job_id) = job_id {
            self.cancel_if_running(&job_id);
            self.event(format!(
                "FlinkDeployment {}/{}: deleted; job {job_id} cancelled",
                id.namespace, id.name
            ));
        }
        self.remove_finalizer(DEPLOYMENT, id, DEPLOYMENT_FINALIZER)
    }

    // -----------------------------------------------------------------------------------------
    // FlinkStateSnapshot

    fn reconcile_snapshot(&mut self, id: &ResourceId, object: &Value) -> Result<(), String> {
        if object.pointer("/metadata/deletionTimestamp").is_some() {
            return self.finalize_snapshot(id, object);
        }
        let object = self.ensure_finalizer(SNAPSHOT, id, object, SNAPSHOT_FINALIZER)?;
        let mut memory = self.snapshots.remove(&id.uid).unwrap_or_default();
        let outcome = self.reconcile_snapshot_with(id, &object, &mut memory);
        self.snapshots.insert(id.uid.clone(), memory);
        outcome
    }

    fn reconcile_snapshot_with(
        &mut self,
        id: &ResourceId,
        object: &Value,
        memory: &mut SnapshotMemory,
    ) -> Result<(), String> {
        let mut status = object.get("status").cloned().unwrap_or_else(|| json!({}));
        match str_at(&status, &["state"]).unwrap_or("") {
            "" => {
                set(&mut status, &["state"], json!("TRIGGER_PENDING"));
                set(&mut status, &["failures"], json!(0));
                self.write_status(SNAPSHOT, id, status.clone())?;
                self.trigger_snapshot(id, object, status, memory)
            }
            "TRIGGER_PENDING" if memory.retry_after.is_none_or(|t| Instant::now() >= t) => {
                self.trigger_snapshot(id, object, status, memory)
            }
            "IN_PROGRESS" => self.poll_snapshot(id, object, status, memory),
            _ => Ok(()),
        }
    }

    fn trigger_snapshot(
        &mut self,
        id: &ResourceId,
        object: &Value,
        mut status: Value,
        memory: &mut SnapshotMemory,
    ) -> Result<(), String> {
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        let savepoint = spec.get("savepoint");
        if savepoint
            .and_then(|s| s.get("alreadyExists"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            let Some(path) = str_at(&spec, &["savepoint", "path"]) else {
                return self.fail_snapshot(
                    id,
                    &spec,
                    status,
                    memory,
                    "spec.savepoint.path is required with alreadyExists",
                );
            };
            set(&mut status, &["state"], json!("COMPLETED"));
            set(&mut status, &["path"], json!(path));
            set(&mut status, &["resultTimestamp"], json!(now_rfc3339()));
            unset(&mut status, &["error"]);
            return self.write_status(SNAPSHOT, id, status);
        }
        let (deployment, job_id) = match self.referenced_job(id, &spec) {
            Ok(found) => found,
            Err(error) => return self.fail_snapshot(id, &spec, status, memory, &error),
        };
        let flink = self.flink()?.clone();
        if !flink.tasks_running(&job_id)? {
            // Just started: a snapshot now would be declined. Try again next pass.
            return Ok(());
        }
        let trigger_id = new_trigger_id();
        let triggered = if spec.get("checkpoint").is_some() {
            flink.trigger_checkpoint(&job_id, &trigger_id)
        } else {
            let target = str_at(&spec, &["savepoint", "path"])
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    savepoint_dir(deployment.get("spec").unwrap_or(&Value::Null), &self.env)
                });
            let format = str_at(&spec, &["savepoint", "formatType"]).unwrap_or("CANONICAL");
            flink.trigger_savepoint(&job_id, &target, format, &trigger_id)
        };
        if let Err(error) = triggered {
            return self.fail_snapshot(id, &spec, status, memory, &error);
        }
        self.event(format!(
            "FlinkStateSnapshot {}/{}: triggered {trigger_id} on job {job_id}",
            id.namespace, id.name
        ));
        memory.job_id = Some(job_id);
        memory.deadline = Some(Instant::now() + SNAPSHOT_TIMEOUT);
        set(&mut status, &["state"], json!("IN_PROGRESS"));
        set(&mut status, &["triggerId"], json!(trigger_id));
        set(&mut status, &["triggerTimestamp"], json!(now_rfc3339()));
        self.write_status(SNAPSHOT, id, status)
    }

    /// The FlinkDeployment a snapshot names, and its running job.
    fn referenced_job(&self, id: &ResourceId, spec: &Value) -> Result<(Value, String), String> {
        let kind = str_at(spec, &["jobReference", "kind"]).unwrap_or(DEPLOYMENT);
        if kind != DEPLOYMENT {
            return Err(format!(
                "jobReference kind {kind} is not supported by this operator"
            ));
        }
        let name =
            str_at(spec, &["jobReference", "name"]).ok_or("spec.jobReference.name is required")?;
        let deployment = self
            .store
            .get_object(DEPLOYMENT, &id.namespace, name)
            .ok_or_else(|| format!("FlinkDeployment {}/{name} not found", id.namespace))?;
        let job_id = str_at(&deployment, &["status", "jobStatus", "jobId"])
            .filter(|_| str_at(&deployment, &["status", "jobStatus", "state"]) == Some("RUNNING"))
            .ok_or_else(|| {
                format!(
                    "the job of FlinkDeployment {}/{name} is not running",
                    id.namespace
                )
            })?
            .to_owned();
        Ok((deployment, job_id))
    }

    fn poll_snapshot(
        &mut self,
        id: &ResourceId,
        object: &Value,
        mut status: Value,
        memory: &mut SnapshotMemory,
    ) -> Result<(), String> {
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        let Some(trigger_id) = str_at(&status, &["triggerId"]).map(str::to_owned) else {
            return self.fail_snapshot(id, &spec, status, memory, "no triggerId recorded");
        };
        let job_id = match memory
            .job_id
            .clone()
            .or_else(|| self.referenced_job(id, &spec).ok().map(|(_, j)| j))
        {
            Some(job_id) => job_id,
            None => return self.abandon_snapshot(id, status),
        };
        let flink = self.flink()?.clone();
        let checkpoint = spec.get("checkpoint").is_some();
        let operation = if checkpoint {
            flink.checkpoint_operation(&job_id, &trigger_id)
        } else {
            flink.savepoint_operation(&job_id, &trigger_id)
        };
        let job_running = || matches!(flink.job_state(&job_id), Ok(Some(s)) if !is_terminal(&s));
        match operation {
            Ok(Operation::Completed(result)) => {
                let path = if checkpoint {
                    result
                        .get("checkpointId")
                        .and_then(Value::as_i64)
                        .map(|n| flink.checkpoint_path(&job_id, n))
                        .transpose()?
                        .flatten()
                } else {
                    result
                        .get("location")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                set(&mut status, &["state"], json!("COMPLETED"));
                if let Some(path) = path {
                    set(&mut status, &["path"], json!(path));
                }
                set(&mut status, &["resultTimestamp"], json!(now_rfc3339()));
                unset(&mut status, &["error"]);
                self.event(format!(
                    "FlinkStateSnapshot {}/{}: completed",
                    id.namespace, id.name
                ));
                self.write_status(SNAPSHOT, id, status)
            }
            Ok(Operation::Failed(message)) => {
                self.fail_snapshot(id, &spec, status, memory, &message)
            }
            Ok(Operation::InProgress) | Err(_) if !job_running() => {
                self.abandon_snapshot(id, status)
            }
            Ok(Operation::InProgress) | Err(_)
                if memory.deadline.is_some_and(|d| Instant::now() >= d) =>
            {
                self.fail_snapshot(
                    id,
                    &spec,
                    status,
                    memory,
                    "the snapshot did not complete in time",
                )
            }
            Ok(Operation::InProgress) | Err(_) => Ok(()),
        }
    }

    fn abandon_snapshot(&self, id: &ResourceId, mut status: Value) -> Result<(), String> {
        self.event(format!(
            "FlinkStateSnapshot {}/{}: abandoned (job stopped)",
            id.namespace, id.name
        ));
        set(&mut status, &["state"], json!("ABANDONED"));
        set(&mut status, &["resultTimestamp"], json!(now_rfc3339()));
        self.write_status(SNAPSHOT, id, status)
    }

    /// One failed attempt: retried with backoff until `spec.backoffLimit` is exceeded.
    fn fail_snapshot(
        &self,
        id: &ResourceId,
        spec: &Value,
        mut status: Value,
        memory: &mut SnapshotMemory,
        message: &str,
    ) -> Result<(), String> {
        let failures = status.get("failures").and_then(Value::as_i64).unwrap_or(0) + 1;
        let limit = spec
            .get("backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        self.event(format!(
            "FlinkStateSnapshot {}/{}: attempt {failures} failed: {message}",
            id.namespace, id.name
        ));
        set(&mut status, &["failures"], json!(failures));
        set(&mut status, &["error"], json!(message));
        if limit >= 0 && failures > limit {
            set(&mut status, &["state"], json!("FAILED"));
            set(&mut status, &["resultTimestamp"], json!(now_rfc3339()));
        } else {
            set(&mut status, &["state"], json!("TRIGGER_PENDING"));
            memory.retry_after = Some(Instant::now() + snapshot_retry_delay(failures));
        }
        memory.job_id = None;
        self.write_status(SNAPSHOT, id, status)
    }

    fn finalize_snapshot(&mut self, id: &ResourceId, object: &Value) -> Result<(), String> {
        let completed = str_at(object, &["status", "state"]) == Some("COMPLETED");
        let savepoint = object.pointer("/spec/checkpoint").is_none();
        let dispose = object
            .pointer("/spec/savepoint/disposeOnDelete")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if let (true, true, true, Some(path)) = (
            completed,
            savepoint,
            dispose,
            str_at(object, &["status", "path"]),
        ) {
            match self.flink().and_then(|f| f.dispose_savepoint(path)) {
                Ok(()) => self.event(format!(
                    "FlinkStateSnapshot {}/{}: disposed {path}",
                    id.namespace, id.name
                )),
                Err(error) => self.event(format!(
                    "FlinkStateSnapshot {}/{}: disposing {path} failed: {error}",
                    id.namespace, id.name
                )),
            }
        }
        self.snapshots.remove(&id.uid);
        self.remove_finalizer(SNAPSHOT, id, SNAPSHOT_FINALIZER)
    }
}

// ---------------------------------------------------------------------------------------------
// Status and spec helpers

/// `status.lifecycleState` from the rest of the status, as the operator computes it.
fn lifecycle_state(status: &Value) -> &'static str {
    let Some(reconciled) = status
        .pointer("/reconciliationStatus/lastReconciledSpec")
        .and_then(Value::as_str)
    else {
        let failed = str_at(status, &["error"]).is_some_and(|e| !e.is_empty());
        return if failed { "FAILED" } else { "CREATED" };
    };
    match str_at(status, &["reconciliationStatus", "state"]) {
        Some("UPGRADING") => return "UPGRADING",
        Some("ROLLING_BACK") => return "ROLLING_BACK",
        _ => {}
    }
    let last_spec: Value = serde_json::from_str(reconciled).unwrap_or(Value::Null);
    if str_at(&last_spec, &["spec", "job", "state"]) == Some("suspended") {
        return "SUSPENDED";
    }
    // Only a FAILED job makes the lifecycle FAILED once deployed: a JobManager deployment in
    // ERROR (an image that cannot be pulled) leaves it DEPLOYED (operator source:
    // `CommonStatus#getLifecycleState`; the error is in `jobManagerDeploymentStatus` and
    // `status.error`).
    if str_at(status, &["jobStatus", "state"]) == Some("FAILED") {
        return "FAILED";
    }
    if str_at(status, &["reconciliationStatus", "state"]) == Some("ROLLED_BACK") {
        return "ROLLED_BACK";
    }
    if str_at(status, &["reconciliationStatus", "lastStableSpec"]) == Some(reconciled) {
        return "STABLE";
    }
    "DEPLOYED"
}

/// The spec recorded in `lastReconciledSpec` (a JSON string `{"spec":..,"resource_metadata":..}`).
fn last_reconciled_spec(status: &Value) -> Option<Value> {
    let text = str_at(status, &["reconciliationStatus", "lastReconciledSpec"])?;
    let parsed: Value = serde_json::from_str(text).ok()?;
    parsed.get("spec").cloned()
}

/// Marks the spec as acted on: `reconciliationStatus` DEPLOYED and `observedGeneration`.
fn record_reconciled(status: &mut Value, spec: &Value, generation: i64, first: bool) {
    let reconciled = json!({
        "spec": spec,
        "resource_metadata": {
            "apiVersion": API_VERSION,
            "metadata": {"generation": generation},
            "firstDeployment": first,
        },
    });
    set(
        status,
        &["reconciliationStatus", "lastReconciledSpec"],
        json!(reconciled.to_string()),
    );
    set(
        status,
        &["reconciliationStatus", "state"],
        json!("DEPLOYED"),
    );
    set(
        status,
        &["reconciliationStatus", "reconciliationTimestamp"],
        json!(epoch_millis()),
    );
    set(status, &["observedGeneration"], json!(generation));
}

/// The spec without the fields whose change alone does not restart the job.
fn restart_fields(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(job) = spec.get_mut("job").and_then(Value::as_object_mut) {
        for field in [
            "upgradeMode",
            "initialSavepointPath",
            "allowNonRestoredState",
        ] {
            job.remove(field);
        }
    }
    spec
}

fn desired_job_state(spec: &Value) -> &str {
    str_at(spec, &["job", "state"]).unwrap_or("running")
}

fn upgrade_mode(spec: &Value) -> &str {
    str_at(spec, &["job", "upgradeMode"]).unwrap_or("stateless")
}

fn nonce(spec: &Value) -> Option<&Value> {
    spec.pointer("/job/savepointRedeployNonce")
        .filter(|v| !v.is_null())
}

/// `spec.job.initialSavepointPath`, or the newer `initialStateReference.path`.
fn initial_path(spec: &Value) -> Option<String> {
    str_at(spec, &["job", "initialSavepointPath"])
        .or_else(|| str_at(spec, &["job", "initialStateReference", "path"]))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

const VALIDATION_EXCEPTION: &str =
    "org.apache.flink.kubernetes.operator.exception.ValidationException";

/// Why the operator's validator rejects a spec, for the rules the tests meet (operator source:
/// `DefaultValidator`: job parallelism, the Flink configuration keys the operator owns, a
/// Flink version).
fn validation_error(spec: &Value) -> Option<String> {
    if spec.get("flinkVersion").is_none_or(Value::is_null) {
        return Some("Flink Version must be defined.".to_owned());
    }
    if let Some(parallelism) = spec.pointer("/job/parallelism").and_then(Value::as_i64)
        && parallelism < 1
    {
        return Some("Job parallelism must be larger than 0".to_owned());
    }
    let forbidden = ["kubernetes.namespace", "kubernetes.cluster-id"];
    spec.get("flinkConfiguration")
        .and_then(Value::as_object)
        .and_then(|config| forbidden.iter().find(|key| config.contains_key(**key)))
        .map(|key| format!("Forbidden Flink config key: {key}"))
}

/// `status.jobStatus.upgradeSavepointPath` when it names a snapshot (not the last-state
/// placeholder).
fn upgrade_savepoint(status: &Value) -> Option<String> {
    str_at(status, &["jobStatus", "upgradeSavepointPath"])
        .filter(|p| !p.is_empty() && *p != LAST_STATE_PLACEHOLDER)
        .map(str::to_owned)
}

/// The savepoint directory of a deployment: its Flink configuration's, else the sandbox's.
fn savepoint_dir(spec: &Value, env: &SandboxEnv) -> String {
    let config = spec.get("flinkConfiguration");
    [
        "execution.checkpointing.savepoint-dir",
        "state.savepoints.dir",
    ]
    .iter()
    .find_map(|key| config.and_then(|c| c.get(*key)).and_then(Value::as_str))
    .map_or_else(|| env.savepoints.clone(), str::to_owned)
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "FINISHED" | "CANCELED" | "FAILED" | "SUSPENDED")
}

/// The operator's error format: a JSON string with the exception type and message.
fn error_json(kind: &str, message: &str, metadata: &[(&str, &str)]) -> String {
    let metadata: serde_json::Map<String, Value> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"type": kind, "message": message, "additionalMetadata": metadata, "throwableList": []})
        .to_string()
}

/// The path in "A savepoint has been created at: <path>" of a failed stop-with-savepoint.
fn created_savepoint(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("A savepoint has been created at: ")?;
    let path: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .collect();
    let path = path.trim_end_matches(['.', ',']).to_owned();
    (!path.is_empty()).then_some(path)
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |node, key| node.get(*key))
        .and_then(Value::as_str)
}

/// Sets a nested field, creating the maps on the way.
fn set(value: &mut Value, path: &[&str], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        *value = new;
        return;
    };
    let mut node = value;
    for key in parents {
        if !node.is_object() {
            *node = json!({});
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        node = map.entry(*key).or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    if let Some(map) = node.as_object_mut() {
        map.insert((*last).to_owned(), new);
    }
}

fn unset(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents
        .iter()
        .try_fold(value, |node, key| node.get_mut(*key));
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.shift_remove(*last);
    }
}

fn new_trigger_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn epoch_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Millisecond timestamps as strings, as `jobStatus.startTime` carries them.
fn now_millis() -> String {
    epoch_millis().to_string()
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

// ---------------------------------------------------------------------------------------------
// Application mode: one JobManager per FlinkDeployment

/// The `<name>-rest` Service of a FlinkDeployment in application mode, emulated in front of the
/// shared session sandbox. A FlinkDeployment with a `job` runs an application cluster: its
/// JobManager runs that one job, and an upgrade deletes the JobManager deployment and creates a
/// new one for the new job (operator docs, "Job Management" and "Custom Resource Overview":
/// "FlinkDeployment ... application deployments"; the operator's `deleteClusterDeployment` on
/// upgrade). So after a redeploy `GET /jobs/OLD` is answered by a JobManager that never ran
/// OLD: 404, as Flink answers for an unknown job (`NotFoundException: Job ... not found`), and
/// `/jobs` and `/jobs/overview` list only the current job. While the deployment has no ready
/// JobManager (`jobManagerDeploymentStatus` other than READY: an image that cannot be pulled,
/// a suspended job) the Service has no endpoints and the connection is dropped unanswered.
/// Everything else is forwarded to the sandbox.
struct JobManagerService {
    url: String,
    thread: JoinHandle<()>,
}

impl JobManagerService {
    fn start(
        store: ApiStore,
        flink_url: &str,
        namespace: &str,
        name: &str,
        stop: Arc<AtomicBool>,
    ) -> Result<JobManagerService, String> {
        let flink = FlinkRest::new(flink_url)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deployment = (namespace.to_owned(), name.to_owned());
        let thread = thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let store = store.clone();
                        let flink = flink.clone();
                        let deployment = deployment.clone();
                        thread::spawn(move || {
                            let _ = serve_jobmanager(stream, &store, &flink, &deployment);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(JobManagerService { url, thread })
    }

    fn join(self) {
        let _ = self.thread.join();
    }
}

/// One request to a deployment's JobManager service (see [`JobManagerService`]).
fn serve_jobmanager(
    stream: TcpStream,
    store: &ApiStore,
    flink: &FlinkRest,
    (namespace, name): &(String, String),
) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(FLINK_IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(FLINK_IO_TIMEOUT));
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut request_line = String::new();
    reader
        .read_line(&mut request_line)
        .map_err(|e| e.to_string())?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    let headers = read_http_headers(&mut reader)?;
    let length = header_value(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let content_type = header_value(&headers, "content-type").unwrap_or("application/json");
    let mut body = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut body).map_err(|e| e.to_string())?;

    let deployment = store.get_object(DEPLOYMENT, namespace, name);
    let current = deployment.as_ref().and_then(|d| {
        let ready = str_at(d, &["status", "jobManagerDeploymentStatus"]) == Some("READY");
        str_at(d, &["status", "jobStatus", "jobId"])
            .filter(|_| ready)
            .map(str::to_owned)
    });
    let Some(current) = current else {
        // No JobManager: the Service has no endpoints.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return Ok(());
    };
    let route = path.split('?').next().unwrap_or(path);
    let asked_job = route
        .strip_prefix("/jobs/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()));
    let (status, answer) = match asked_job {
        Some(job) if job != current => (
            404,
            json!({"errors": [format!(
                "org.apache.flink.runtime.rest.NotFoundException: Job {job} not found"
            )]}),
        ),
        _ => {
            let (status, mut answer) = flink.call(method, path, content_type, &body)?;
            if matches!(route, "/jobs" | "/jobs/overview")
                && let Some(jobs) = answer.get_mut("jobs").and_then(Value::as_array_mut)
            {
                jobs.retain(|job| {
                    job.get("id")
                        .or_else(|| job.get("jid"))
                        .and_then(Value::as_str)
                        == Some(current.as_str())
                });
            }
            (status, answer)
        }
    };
    let text = if answer.is_null() {
        String::new()
    } else {
        answer.to_string()
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        if status < 400 { "OK" } else { "Error" },
        text.len()
    )
    .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Flink REST

/// The outcome of an asynchronous Flink operation (savepoint, checkpoint, disposal).
#[derive(Debug, Clone, PartialEq)]
enum Operation {
    InProgress,
    /// The `operation` object of a success.
    Completed(Value),
    /// The condensed failure cause.
    Failed(String),
}

/// A small blocking client for the JobManager's REST API (one request per connection,
/// bounded by timeouts).
#[derive(Debug, Clone)]
struct FlinkRest {
    /// `127.0.0.1:PORT`.
    authority: String,
}

impl FlinkRest {
    fn new(url: &str) -> Result<FlinkRest, String> {
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?
            .trim_end_matches('/');
        Ok(FlinkRest {
            authority: authority.to_owned(),
        })
    }

    /// One request; answers the status and the JSON body (Null when empty or not JSON).
    fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Value), String> {
        let address = self
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("no address for {}", self.authority))?;
        let mut stream = TcpStream::connect_timeout(&address, FLINK_CONNECT_TIMEOUT)
            .map_err(|e| format!("connecting to Flink at {}: {e}", self.authority))?;
        let _ = stream.set_read_timeout(Some(FLINK_IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(FLINK_IO_TIMEOUT));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.authority,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let (status, text) = read_http_response(&mut BufReader::new(stream))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok((status, serde_json::from_slice(&text).unwrap_or(Value::Null)))
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        expect_success(
            "GET",
            path,
            self.call("GET", path, "application/json", b"")?,
        )
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let body = body.to_string();
        expect_success(
            "POST",
            path,
            self.call("POST", path, "application/json", body.as_bytes())?,
        )
    }

    /// Whether the job and all its tasks run (a savepoint needs them all running).
    fn tasks_running(&self, job_id: &str) -> Result<bool, String> {
        let job = self.get(&format!("/jobs/{job_id}"))?;
        let vertices = job.get("vertices").and_then(Value::as_array);
        Ok(str_at(&job, &["state"]) == Some("RUNNING")
            && vertices.is_some_and(|v| {
                !v.is_empty() && v.iter().all(|v| str_at(v, &["status"]) == Some("RUNNING"))
            }))
    }

    /// The job's state, None when Flink does not know the job.
    fn job_state(&self, job_id: &str) -> Result<Option<String>, String> {
        let (status, body) = self.call(
            "GET",
            &format!("/jobs/{job_id}/status"),
            "application/json",
            b"",
        )?;
        match status {
            200 => Ok(body
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            404 => Ok(None),
            _ => Err(format!(
                "GET /jobs/{job_id}/status: {status} {}",
                condense_flink_error(&body)
            )),
        }
    }

    fn upload_jar(&self, jar: &Path) -> Result<String, String> {
        let bytes = std::fs::read(jar).map_err(|e| format!("reading {}: {e}", jar.display()))?;
        let boundary = format!("----runbook{:016x}", rand::random::<u64>());
        let file_name = jar
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("job.jar");
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{file_name}\"\r\nContent-Type: application/java-archive\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let answer = expect_success(
            "POST",
            "/jars/upload",
            self.call("POST", "/jars/upload", &content_type, &body)?,
        )?;
        let file = answer
            .get("filename")
            .and_then(Value::as_str)
            .ok_or("POST /jars/upload answered no filename")?;
        // The jar id is the last path component of the stored file.
        Ok(file.rsplit('/').next().unwrap_or(file).to_owned())
    }

    fn run_jar(&self, jar_id: &str, request: &Value) -> Result<String, String> {
        let answer = self.post(&format!("/jars/{jar_id}/run"), request)?;
        answer
            .get("jobid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("run answered no jobid: {answer}"))
    }

    fn stop_with_savepoint(
        &self,
        job_id: &str,
        target: &str,
        trigger_id: &str,
    ) -> Result<(), String> {
        self.post(
            &format!("/jobs/{job_id}/stop"),
            &json!({"targetDirectory": target, "drain": false, "formatType": "CANONICAL", "triggerId": trigger_id}),
        )
        .map(|_| ())
    }

    fn trigger_savepoint(
        &self,
        job_id: &str,
        target: &str,
        format: &str,
        trigger_id: &str,
    ) -> Result<(), String> {
        self.post(
            &format!("/jobs/{job_id}/savepoints"),
            &json!({"target-directory": target, "cancel-job": false, "formatType": format, "triggerId": trigger_id}),
        )
        .map(|_| ())
    }

    fn trigger_checkpoint(&self, job_id: &str, trigger_id: &str) -> Result<(), String> {
        self.post(
            &format!("/jobs/{job_id}/checkpoints"),
            &json!({"checkpointType": "FULL", "triggerId": trigger_id}),
        )
        .map(|_| ())
    }

    fn savepoint_operation(&self, job_id: &str, trigger_id: &str) -> Result<Operation, String> {
        self.get(&format!("/jobs/{job_id}/savepoints/{trigger_id}"))
            .map(|a| operation(&a))
    }

    fn checkpoint_operation(&self, job_id: &str, trigger_id: &str) -> Result<Operation, String> {
        self.get(&format!("/jobs/{job_id}/checkpoints/{trigger_id}"))
            .map(|a| operation(&a))
    }

    fn checkpoint_path(&self, job_id: &str, checkpoint_id: i64) -> Result<Option<String>, String> {
        let details = self.get(&format!(
            "/jobs/{job_id}/checkpoints/details/{checkpoint_id}"
        ))?;
        Ok(details
            .get("external_path")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    fn cancel(&self, job_id: &str) -> Result<(), String> {
        let path = format!("/jobs/{job_id}?mode=cancel");
        expect_success(
            "PATCH",
            &path,
            self.call("PATCH", &path, "application/json", b"")?,
        )
        .map(|_| ())
    }

    /// The external path of the job's latest completed checkpoint, if addressable.
    ///
    /// The real operator reads the checkpoint from the job's HA metadata, which always names
    /// the newest completed one. The REST statistics this double reads are cached (for
    /// web.refresh-interval): they can still name a checkpoint that a newer one has since
    /// subsumed and Flink has deleted. So, for a local `file:` path, the newest `chk-N` beside
    /// it that holds a `_metadata` file wins, as the HA metadata would.
    fn latest_checkpoint(&self, job_id: &str) -> Result<Option<String>, String> {
        let checkpoints = self.get(&format!("/jobs/{job_id}/checkpoints"))?;
        Ok(checkpoints
            .pointer("/latest/completed/external_path")
            .and_then(Value::as_str)
            .filter(|p| p.contains(':') && !p.starts_with('<'))
            .map(|path| newest_checkpoint_beside(path).unwrap_or_else(|| path.to_owned())))
    }

    /// The operator's error for a failed job, from its exception history (None until Flink
    /// has recorded it; the next pass asks again).
    fn failure_error(&self, job_id: &str) -> Option<String> {
        let exceptions = self.get(&format!("/jobs/{job_id}/exceptions")).ok()?;
        let entry = exceptions.pointer("/exceptionHistory/entries/0")?;
        let kind =
            str_at(entry, &["exceptionName"]).unwrap_or("org.apache.flink.runtime.JobException");
        let trace = str_at(entry, &["stacktrace"]).unwrap_or("");
        let first = trace.lines().next().unwrap_or("the job failed");
        let message = first.split_once(": ").map_or(first, |(_, m)| m);
        let causes: Vec<Value> = trace
            .lines()
            .filter_map(|l| l.strip_prefix("Caused by: "))
            .map(|cause| {
                let (kind, message) = cause.split_once(": ").unwrap_or((cause, ""));
                json!({"type": kind, "message": message, "additionalMetadata": {}})
            })
            .collect();
        Some(
            json!({"type": kind, "message": message, "additionalMetadata": {}, "throwableList": causes})
                .to_string(),
        )
    }

    /// Disposes a savepoint and waits (bounded) for the disposal to finish.
    fn dispose_savepoint(&self, path: &str) -> Result<(), String> {
        let answer = self.post("/savepoint-disposal", &json!({"savepoint-path": path}))?;
        let trigger = answer
            .get("request-id")
            .and_then(Value::as_str)
            .ok_or("savepoint-disposal answered no request-id")?;
        let deadline = Instant::now() + DISPOSAL_TIMEOUT;
        while Instant::now() < deadline {
            match operation(&self.get(&format!("/savepoint-disposal/{trigger}"))?) {
                Operation::Completed(_) => return Ok(()),
                Operation::Failed(message) => return Err(message),
                Operation::InProgress => thread::sleep(Duration::from_millis(200)),
            }
        }
        Err("the disposal did not finish in time".to_owned())
    }
}

fn expect_success(method: &str, path: &str, (status, body): (u16, Value)) -> Result<Value, String> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!(
            "{method} {path}: {status} {}",
            condense_flink_error(&body)
        ))
    }
}

/// `{status:{id}, operation:{...}}`: COMPLETED with a `failure-cause` is a failure.
fn operation(answer: &Value) -> Operation {
    if str_at(answer, &["status", "id"]) != Some("COMPLETED") {
        return Operation::InProgress;
    }
    let result = answer.get("operation").cloned().unwrap_or(Value::Null);
    match result.get("failure-cause") {
        Some(cause) => {
            let trace = cause
                .get("stack-trace")
                .and_then(Value::as_str)
                .unwrap_or("");
            Operation::Failed(condense_trace(trace))
        }
        None => Operation::Completed(result),
    }
}

/// Flink's `{"errors":[...]}` as its first line and last cause.
fn condense_flink_error(body: &Value) -> String {
    match body.pointer("/errors/0").and_then(Value::as_str) {
        Some(error) => condense_trace(error),
        None => body.to_string(),
    }
}

/// A Java stack trace as "first line; Caused by: last cause" (also keeps the
/// "A savepoint has been created at" line when there is one).
fn condense_trace(trace: &str) -> String {
    let first = trace.lines().next().unwrap_or("").trim();
    let last_cause = trace.lines().rev().find(|l| l.starts_with("Caused by: "));
    let created = trace
        .lines()
        .find(|l| l.contains("A savepoint has been created at: "));
    let mut parts = vec![first.to_owned()];
    parts.extend(last_cause.map(str::to_owned));
    parts.extend(created.map(|l| l.trim().to_owned()));
    parts.dedup();
    parts.join("; ")
}

/// Reads header lines up to the blank line: (lower-case name, value).
fn read_http_headers(reader: &mut impl BufRead) -> Result<Vec<(String, String)>, String> {
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
    Ok(headers)
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Reads an HTTP/1.1 response: status and body (Content-Length, chunked, or to the end).
fn read_http_response(reader: &mut impl BufRead) -> Result<(u16, Vec<u8>), String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed status line {line:?}"))?;
    let headers = read_http_headers(reader)?;
    let length = header_value(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header_value(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| "malformed chunk size".to_owned())?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .map_err(|e| e.to_string())?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).map_err(|e| e.to_string())?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok((status, body))
}

/// The newest retained `chk-N` directory (one with `_metadata`) beside a local checkpoint
/// path `file:/…/<job>/chk-M`, as a `file:` path; None for other schemes or when none is left.
fn newest_checkpoint_beside(path: &str) -> Option<String> {
    let local = path.strip_prefix("file:")?;
    // file:/a, file:///a: one absolute path.
    let local = std::path::PathBuf::from(format!(
        "/{}",
        local.trim_start_matches('/').trim_end_matches('/')
    ));
    let job_dir = local.parent()?;
    std::fs::read_dir(job_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number: u64 = name.strip_prefix("chk-")?.parse().ok()?;
            entry
                .path()
                .join("_metadata")
                .is_file()
                .then_some((number, entry.path()))
        })
        .max_by_key(|(number, _)| *number)
        .map(|(_, dir)| format!("file:{}", dir.display()))
}
