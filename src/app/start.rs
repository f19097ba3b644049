use super::AppError;
use super::execute::{ClaimedRun, run_processes};
use crate::engine::secrets;
use crate::event::{Envelope, RunEvent, RunOrigin, RunbookSource};
use crate::process::RunProcesses;
use crate::runbook::validate::{Bundle, validate_file_allowing};
use crate::store::{self, Owner, StoreLocation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads and validates a runbook and every runbook it uses; `allowed` are the directories
/// outside the root's own that `uses` may read from.
pub fn load(file: &Path, allowed: &[PathBuf]) -> Result<Arc<Bundle>, AppError> {
    let validation = validate_file_allowing(file, allowed);
    if !validation.is_valid() {
        return Err(AppError::InvalidRunbook(validation.problems));
    }
    Ok(Arc::new(validation.bundle))
}

/// A new run of a loaded runbook.
pub struct StartRequest {
    pub bundle: Arc<Bundle>,
    /// The root runbook file as the person named it, kept with the run.
    pub file: String,
    /// Checked against the runbook's inputs already; secrets are never among them.
    pub inputs: Map<String, Value>,
    /// A chosen run id; a new one when `None`.
    pub run_id: Option<String>,
    /// The store's URL; `None` for the default store (or `RUNBOOK_STORE`).
    pub store: Option<String>,
    /// Actions running at once, run-wide (overrides the runbook's `max_parallel`).
    pub max_parallel: Option<u32>,
    /// When the run's window closes: steps with a `window` start only while they fit before
    /// it. `None`: no window, nothing is gated. An end already past is refused.
    pub window_until: Option<jiff::Timestamp>,
    /// What started the run besides a person (a schedule of `runbook serve`), journaled.
    pub origin: Option<RunOrigin>,
    /// Who starts it, journaled; `$USER@host` when `None`.
    pub started_by: Option<String>,
}

/// Creates a run: resolves secrets and the secret key, runs each action's checks before a start,
/// and records the run in the store (created if needed) with the source of every runbook
/// it uses. Nothing has run yet; [`ClaimedRun::execute`] runs it.
pub async fn start(request: StartRequest) -> Result<ClaimedRun, AppError> {
    check_window(request.window_until)?;
    let bundle = request.bundle;
    let secrets = resolve_secrets(&bundle)?;
    let secret_key = crate::engine::seal::SecretKey::from_environment()?;
    let location =
        StoreLocation::resolve(request.store.as_deref()).map_err(AppError::StoreLocation)?;
    let run_id = request.run_id.unwrap_or_else(new_run_id);
    let first = first_event(
        &run_id,
        &bundle,
        request.file,
        &request.inputs,
        request.origin,
        request.started_by,
    );
    check_actions(&bundle, &request.inputs).await?;
    let store = store::open(&location).await?;
    let lease = store.create(&run_id, &Owner::current(), &first).await?;
    let prior = vec![first];
    let processes = run_processes(&run_id, &prior, RunProcesses::THIS_PROGRAM);
    Ok(ClaimedRun {
        bundle,
        run_id,
        inputs: request.inputs,
        secrets,
        max_parallel: request.max_parallel,
        store,
        lease,
        prior,
        resumed_by: None,
        secret_key,
        processes,
        window_until: request.window_until,
    })
}

/// A new run of a loaded runbook, queued for a `runbook serve` worker rather than run here:
/// created in the store (status `queued`, its runbooks' sources and inputs journaled) and
/// answered by id. The worker that claims it resolves the secrets and runs each action's
/// checks, as a resume does.
pub struct EnqueueRequest {
    pub bundle: Arc<Bundle>,
    pub file: String,
    pub inputs: Map<String, Value>,
    pub run_id: Option<String>,
    pub store: Option<String>,
    pub started_by: Option<String>,
}

/// Enqueues a run; answers its id.
pub async fn enqueue(request: EnqueueRequest) -> Result<String, AppError> {
    let location =
        StoreLocation::resolve(request.store.as_deref()).map_err(AppError::StoreLocation)?;
    let run_id = request.run_id.unwrap_or_else(new_run_id);
    let first = first_event(
        &run_id,
        &request.bundle,
        request.file,
        &request.inputs,
        None,
        request.started_by,
    );
    let store = store::open(&location).await?;
    let enqueued = store.enqueue(&run_id, &first).await;
    let _ = store.close().await;
    enqueued?;
    Ok(run_id)
}

/// The run's first event: what it runs (every runbook's source), with which inputs, who
/// and what started it.
fn first_event(
    run_id: &str,
    bundle: &Bundle,
    file: String,
    inputs: &Map<String, Value>,
    origin: Option<RunOrigin>,
    started_by: Option<String>,
) -> Envelope {
    let root = bundle.root().expect("a valid runbook has loaded");
    Envelope {
        run_id: run_id.to_owned(),
        at: crate::event::timestamp::now(),
        event: RunEvent::RunStarted {
            runbook: root.runbook.name.value.clone(),
            file,
            inputs: Value::Object(inputs.clone()),
            sources: sources(bundle),
            origin,
            by: Some(started_by.unwrap_or_else(super::this_user)),
        },
    }
}

/// Refuses a window that has already closed: every gated step would be refused at once.
pub(super) fn check_window(until: Option<jiff::Timestamp>) -> Result<(), AppError> {
    match until {
        Some(until) if until <= jiff::Timestamp::now() => Err(AppError::WindowOver { until }),
        _ => Ok(()),
    }
}

/// The secrets of every runbook of the bundle, from their `env` or `file`; a missing one
/// stops everything before it runs.
pub(super) fn resolve_secrets(
    bundle: &Bundle,
) -> Result<HashMap<PathBuf, Map<String, Value>>, AppError> {
    let mut resolved = HashMap::new();
    for (path, loaded) in &bundle.runbooks {
        resolved.insert(path.clone(), secrets::resolve(loaded)?);
    }
    Ok(resolved)
}

/// Refuses to start a run whose steps cannot work at all, each action checking its own
/// (`kubernetes` steps without a usable cluster configuration): found before anything runs.
pub(super) async fn check_actions(
    bundle: &Bundle,
    inputs: &Map<String, Value>,
) -> Result<(), AppError> {
    crate::actions::preflight(bundle, inputs)
        .await
        .map_err(AppError::Preflight)
}

/// The text of every runbook of the bundle, the root first: a resume runs exactly these.
pub fn sources(bundle: &Bundle) -> Vec<RunbookSource> {
    let root = bundle.runbooks.get_key_value(&bundle.root);
    let others = bundle
        .runbooks
        .iter()
        .filter(|(path, _)| **path != bundle.root);
    root.into_iter()
        .chain(others)
        .map(|(path, loaded)| RunbookSource {
            path: path.display().to_string(),
            sha256: sha256_hex(&loaded.file.text),
            text: loaded.file.text.to_string(),
        })
        .collect()
}

pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A run id that sorts by start time and does not collide: `20261121T061530Z-3f9a2c`.
fn new_run_id() -> String {
    let now = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    format!("{now}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
