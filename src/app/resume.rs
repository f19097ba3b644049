use super::execute::{ClaimedRun, run_processes};
use super::start::{check_actions, check_window, resolve_secrets, sha256_hex};
use super::{AppError, NothingTo, Notice};
use crate::engine::state::RunState;
use crate::event::{Envelope, RunEdited, RunEvent};
use crate::process::{self, RunMark, RunProcesses};
use crate::runbook::validate::{Bundle, validate_stored};
use crate::store::{Lease, Owner, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A run to continue.
pub struct ResumeRequest {
    pub run_id: String,
    /// Actions running at once, run-wide (overrides the runbook's `max_parallel`).
    pub max_parallel: Option<u32>,
    /// The window of this segment of the run (a parked run's next window): when it closes.
    /// `None`: this segment has no window, nothing is gated. An end already past is refused.
    pub window_until: Option<jiff::Timestamp>,
}

/// Claims a run and rebuilds it from its journal, with the runbook sources stored there
/// (not the files on disk), its secrets resolved again; then stops whatever an earlier
/// engine of the run left running. When this fails, the claim is released so that the
/// next attempt can take the run at once. `notice` hears what a person should know.
pub async fn resume(
    store: Arc<dyn Store>,
    request: ResumeRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<ClaimedRun, AppError> {
    check_window(request.window_until)?;
    // Claim first: the journal read next cannot change under us.
    let lease = store.claim(&request.run_id, &Owner::current()).await?;
    resume_claimed(store, lease, &request, notice).await
}

/// [`resume`] of a run this process has claimed already (a control claimed it to journal
/// itself first).
pub async fn resume_claimed(
    store: Arc<dyn Store>,
    lease: Lease,
    request: &ResumeRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<ClaimedRun, AppError> {
    let prepared = match prepare(store.clone(), lease.clone(), request, notice).await {
        Ok(run) => stop_leftovers(run, notice).await,
        Err(error) => Err(error),
    };
    if prepared.is_err() {
        // Nothing ran: let the next attempt claim the run at once.
        let _ = store.release(&lease).await;
    }
    prepared
}

async fn prepare(
    store: Arc<dyn Store>,
    lease: Lease,
    request: &ResumeRequest,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<ClaimedRun, AppError> {
    let run_id = &request.run_id;
    let prior = store.events(run_id).await?;
    let mut state = RunState::default();
    for envelope in &prior {
        state.apply_at(&envelope.event, &envelope.at);
    }
    if let Some(status) = state.status().filter(|s| s.is_over()) {
        return Err(AppError::AlreadyEnded {
            run_id: run_id.clone(),
            status,
            wanted: NothingTo::Resume,
        });
    }
    let bundle = stored_bundle(run_id, &prior, Some(notice))?;
    let secrets = resolve_secrets(&bundle)?;
    let secret_key = crate::engine::seal::SecretKey::from_environment()?;
    // A retry may have changed them since the run started.
    let inputs = super::controls::latest_inputs(&prior);
    check_actions(&bundle, &inputs).await?;
    let processes = run_processes(run_id, &prior, RunProcesses::THIS_PROGRAM);
    Ok(ClaimedRun {
        bundle,
        run_id: run_id.clone(),
        inputs,
        secrets,
        max_parallel: request.max_parallel,
        store,
        resumed_by: Some(lease.owner.to_string()),
        lease,
        prior,
        secret_key,
        processes,
        window_until: request.window_until,
    })
}

/// The runbook kept in a run's journal (as its latest edit left it, else as it started),
/// validated with this version. `notice`, when given, hears which files changed on disk
/// since (the journal's copy is what runs).
pub fn stored_bundle(
    run_id: &str,
    prior: &[Envelope],
    notice: Option<&(dyn Fn(Notice) + Send + Sync)>,
) -> Result<Arc<Bundle>, AppError> {
    let Some(Envelope {
        event: RunEvent::RunStarted { sources, .. },
        ..
    }) = prior.first()
    else {
        return Err(AppError::NotResumable(format!(
            "the journal of run {run_id} does not start with the run's creation; it cannot be resumed"
        )));
    };
    let sources = latest_edit(prior).map_or(sources, |edited| &edited.sources);
    let Some(root) = sources.first() else {
        return Err(AppError::NotResumable(format!(
            "the journal of run {run_id} holds no runbook source; it cannot be resumed"
        )));
    };
    let texts: HashMap<PathBuf, String> = sources
        .iter()
        .map(|s| (PathBuf::from(&s.path), s.text.clone()))
        .collect();
    // Edits since the run started do not apply to it; say so, so nobody is surprised.
    for source in sources {
        let Some(notice) = notice else { break };
        let current = crate::runbook::bounded_read::read_text_bounded(
            std::path::Path::new(&source.path),
            crate::runbook::load::MAX_FILE_BYTES,
        );
        let (run_id, path) = (run_id.to_owned(), source.path.clone());
        match current {
            Ok(text) if sha256_hex(&text) == source.sha256 => {}
            Ok(_) => notice(Notice::SourceChanged { run_id, path }),
            Err(_) => notice(Notice::SourceGone { run_id, path }),
        }
    }
    let validation = validate_stored(&PathBuf::from(&root.path), &texts);
    if !validation.is_valid() {
        return Err(AppError::StoredRunbookInvalid {
            run_id: run_id.to_owned(),
            problems: validation.problems,
        });
    }
    Ok(Arc::new(validation.bundle))
}

/// The latest `runbook resume --runbook` of a run: its runbook from then on.
pub(super) fn latest_edit(prior: &[Envelope]) -> Option<&RunEdited> {
    prior
        .iter()
        .rev()
        .find_map(|envelope| match &envelope.event {
            RunEvent::RunEdited(edited) => Some(edited),
            _ => None,
        })
}

/// Before any step runs again, stops every process an earlier engine of this run left
/// running (killed with its supervisor, nothing stopped them): a step never runs twice at
/// once. They are found by the run's mark in their environment.
///
/// The steps of whichever engine owns the run carry that mark too. So the lease is renewed
/// first (refused if another process took the run over while this one was claiming it, or
/// paused), and a process is signalled only while half the renewed lease is left: a
/// process that lost the run never stops the new owner's steps.
async fn stop_leftovers(
    run: ClaimedRun,
    notice: &(dyn Fn(Notice) + Send + Sync),
) -> Result<ClaimedRun, AppError> {
    let Some(first) = run.prior.first() else {
        return Ok(run);
    };
    // Taken before the renewal is asked for: the lease runs at least this long.
    let renewed_at = std::time::Instant::now();
    run.store.renew(&run.lease).await?;
    let owned_until = renewed_at + crate::store::run_lease() / 2;
    let run_id = run.run_id.clone();
    let mark = RunMark::new(&run_id, &first.at);
    let stopped = tokio::task::spawn_blocking(move || {
        process::stop_leftovers(&run_id, &mark, LEFTOVER_GRACE, &|| {
            std::time::Instant::now() < owned_until
        })
    })
    .await;
    match stopped {
        Ok(Ok(0)) => Ok(run),
        Ok(Ok(count)) => {
            notice(Notice::LeftoversStopped {
                run_id: run.run_id.clone(),
                count,
            });
            Ok(run)
        }
        Ok(Err(error)) => Err(AppError::Leftovers(error)),
        Err(error) => Err(AppError::LeftoverScan {
            run_id: run.run_id.clone(),
            detail: error.to_string(),
        }),
    }
}

/// How long a leftover process has between SIGTERM and SIGKILL: as long as a cancelled step.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
