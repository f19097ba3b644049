//! Controls a person applies to a run. `pause` asks the live process that runs it to park
//! it, through the store. `skip` (mark a step done by hand) and `retry` (run the run again
//! from some of its steps) apply to a run that no process runs now: each claims the run as a
//! resume does (a run a live process owns is refused), checks the control against the
//! runbook kept in the journal, and journals it as one event with who and why: a crash
//! after that leaves a parked run that the next resume continues as the control left it.

mod abort;
mod edit;
mod pause;
mod retry;
mod skip;
mod step_path;

pub use abort::{AbortRunRequest, Aborted, abort};

pub use edit::{EditRequest, Edited, EditedStep, Standing, edit};
pub use pause::{PauseAsked, PauseRunRequest, pause};
pub(super) use retry::latest_inputs;
pub use retry::{Retried, RetryRequest, retry};
pub use skip::{SkipRequest, StepSkipped, skip};

use super::AppError;
use crate::engine::state::RunState;
use crate::event::{Envelope, RunEvent};
use crate::runbook::validate::Bundle;
use crate::store::{Lease, Owner, Store};
use std::sync::Arc;

/// Who applies a control or answers an approval: the name given, or `$USER@host`.
pub(super) fn person(given: Option<String>) -> String {
    given.unwrap_or_else(super::this_user)
}

/// A run claimed for a control, read back from its journal.
struct Claimed {
    lease: Lease,
    prior: Vec<Envelope>,
    state: RunState,
    bundle: Arc<Bundle>,
}

/// Claims the run and rebuilds it from its journal, with the runbook kept there. On an
/// error the claim is released.
async fn claim(store: &dyn Store, run_id: &str) -> Result<Claimed, AppError> {
    let lease = store.claim(run_id, &Owner::current()).await?;
    match read(store, run_id).await {
        Ok((prior, state, bundle)) => Ok(Claimed {
            lease,
            prior,
            state,
            bundle,
        }),
        Err(error) => {
            let _ = store.release(&lease).await;
            Err(error)
        }
    }
}

async fn read(
    store: &dyn Store,
    run_id: &str,
) -> Result<(Vec<Envelope>, RunState, Arc<Bundle>), AppError> {
    let prior = store.events(run_id).await?;
    let mut state = RunState::default();
    for envelope in &prior {
        state.apply_at(&envelope.event, &envelope.at);
    }
    let bundle = super::resume::stored_bundle(run_id, &prior, None)?;
    Ok((prior, state, bundle))
}

impl Claimed {
    /// Journals the control's event, durable when this returns `Ok`.
    async fn journal(&self, store: &dyn Store, event: RunEvent) -> Result<Envelope, AppError> {
        let envelope = Envelope {
            run_id: self.lease.run_id.clone(),
            at: crate::event::timestamp::now(),
            event,
        };
        store
            .append(
                &self.lease,
                self.prior.len() as u64 + 1,
                std::slice::from_ref(&envelope),
            )
            .await?;
        Ok(envelope)
    }

    /// The ids of the root runbook's steps, in file order.
    fn step_ids(&self) -> Vec<String> {
        self.bundle
            .root()
            .map(|root| {
                root.runbook
                    .all_steps()
                    .map(|s| s.id.value.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Refuses a step the root runbook does not have, naming the nearest and all of them.
    fn known_step(&self, step: &str) -> Result<(), AppError> {
        let ids = self.step_ids();
        if ids.iter().any(|id| id == step) {
            return Ok(());
        }
        Err(AppError::UnknownStep {
            run_id: self.lease.run_id.clone(),
            step: step.to_owned(),
            closest: crate::runbook::de::closest(step, ids.iter().map(String::as_str))
                .map(str::to_owned),
            steps: ids,
        })
    }
}
