use super::Claimed;
use crate::app::AppError;
use crate::event::StepStatus;

/// What `skip` and `retry` can name: a step of the root runbook (`deploy`), or one item of
/// one of its `for_each` steps (`deploy[3]`), as the journal writes step paths. A step
/// inside a called runbook (`call/child`) is refused: a `uses` step ends from its whole
/// runbook, so the calling step is what is skipped or retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepPath {
    Step(String),
    Item { step: String, index: usize },
}

impl StepPath {
    /// Reads `text` and checks it against the run: the step exists, and an item is one the
    /// step expanded into.
    pub(super) fn known(claimed: &Claimed, text: &str) -> Result<StepPath, AppError> {
        let refuse = |why: String| AppError::StepPathRefused {
            run_id: claimed.lease.run_id.clone(),
            path: text.to_owned(),
            why,
        };
        if text.contains('/') {
            return Err(refuse(
                "a step inside a called runbook cannot be named: skip or retry the `uses` \
                 step that calls it (its path before the first `/`)"
                    .to_owned(),
            ));
        }
        let Some(open) = text.strip_suffix(']').and_then(|t| t.split_once('[')) else {
            claimed.known_step(text)?;
            return Ok(StepPath::Step(text.to_owned()));
        };
        let (step, index) = open;
        claimed.known_step(step)?;
        let index: usize = index.parse().map_err(|_| {
            refuse("an item is named by its index from 0, as in `step[3]`".to_owned())
        })?;
        let root = claimed.bundle.root().expect("a valid bundle has its root");
        let for_each = root
            .runbook
            .all_steps()
            .find(|s| s.id.value == step)
            .is_some_and(|s| s.for_each.is_some());
        if !for_each {
            return Err(refuse(format!(
                "step `{step}` has no for_each: name it without an index"
            )));
        }
        let items = claimed
            .state
            .steps
            .get(step)
            .and_then(|r| r.expanded())
            .map_or(0, Vec::len);
        if index >= items {
            return Err(refuse(if items == 0 {
                format!("step `{step}` has not expanded into its items yet")
            } else {
                format!(
                    "step `{step}` expanded into {items} items, `{step}[0]` to `{step}[{}]`",
                    items - 1
                )
            }));
        }
        Ok(StepPath::Item {
            step: step.to_owned(),
            index,
        })
    }

    /// The root step it is, or whose item it is.
    pub(super) fn step(&self) -> &str {
        match self {
            StepPath::Step(step) | StepPath::Item { step, .. } => step,
        }
    }

    /// As the journal writes it.
    pub(super) fn path(&self) -> String {
        match self {
            StepPath::Step(step) => step.clone(),
            StepPath::Item { step, index } => format!("{step}[{index}]"),
        }
    }

    /// How it ended in the run, if it did.
    pub(super) fn status(&self, claimed: &Claimed) -> Option<StepStatus> {
        claimed.state.steps.get(&self.path()).and_then(|r| r.status)
    }
}
