//! Controls a person applies to a run from outside it: a step marked done by hand, a run
//! retried from some of its steps. Each is journaled with who and why (the envelope says
//! when), by a process that claimed the run as a resume does, so that the next resume, after
//! a crash or not, rebuilds the run as the control left it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A failed or not-yet-run step marked done by hand, with the outputs its dependents read.
/// Its status is `skipped`; unlike a step whose `when` did not hold, it carries outputs and
/// names who skipped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSkippedByHand {
    pub path: String,
    /// The outputs given, by the names the step declares.
    #[serde(default)]
    pub outputs: Value,
    /// `$USER@host`, or the name given with `--as`.
    pub by: String,
    pub reason: String,
}

/// A run that runs again from some of its steps: they and everything downstream of them
/// lose their ends and run again at the next resume; every other step keeps its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRetried {
    /// The steps the retry starts from: those named, or every failed one.
    pub from: Vec<String>,
    /// Every step that runs again: `from` and the steps downstream of them, in order.
    pub rerun: Vec<String>,
    /// The run's inputs from now on, when they changed (secrets are never inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// What changed in the inputs, one entry per input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<InputChange>,
    pub by: String,
    pub reason: String,
}

/// One input a retry changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputChange {
    pub name: String,
    /// `None` when the input had no value before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    pub new: Value,
}

impl InputChange {
    /// `name: old -> new`, values as JSON.
    pub fn describe(&self) -> String {
        let old = self
            .old
            .as_ref()
            .map_or_else(|| "(unset)".to_owned(), Value::to_string);
        format!("{}: {old} -> {}", self.name, self.new)
    }
}

/// A person's request that a live run stop starting steps and park (`runbook pause`). It
/// reaches the run's process through the store (a named record, [`PauseRequest::record`]),
/// and that process journals it as it parks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseRequest {
    pub by: String,
    pub reason: String,
    /// Interrupt the running steps too (they run again on resume), rather than let them
    /// finish.
    #[serde(default)]
    pub now: bool,
    /// When it was asked (RFC 3339): a process ignores requests made before it took the
    /// run up, which were meant for an earlier one. (Not `at`: that is the envelope's.)
    pub asked_at: String,
}

impl PauseRequest {
    /// The name of the store's record that carries the pause requests of run `run_id`.
    pub fn record(run_id: &str) -> String {
        format!("runbook:pause:{run_id}")
    }

    /// `paused by NAME: REASON`.
    pub fn describe(&self) -> String {
        let now = if self.now {
            " (running steps interrupted)"
        } else {
            ""
        };
        format!("paused by {}: {}{now}", self.by, self.reason)
    }
}

/// A person's request that a run stop for good (`runbook abort`), and be undone when
/// `undo` is set. A run no process runs has it journaled by the process that aborts it; a
/// live run gets it through the store (a named record, [`AbortRequest::record`]) and its
/// process journals it as it stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbortRequest {
    pub by: String,
    pub reason: String,
    /// Run the `undo` of every step that succeeded, in reverse order of the graph.
    #[serde(default)]
    pub undo: bool,
    /// When it was asked (RFC 3339): a live process ignores requests made before it took
    /// the run up.
    pub asked_at: String,
}

impl AbortRequest {
    /// The name of the store's record that carries the abort requests of run `run_id`.
    pub fn record(run_id: &str) -> String {
        format!("runbook:abort:{run_id}")
    }

    /// `aborted by NAME: REASON`.
    pub fn describe(&self) -> String {
        let undo = if self.undo { " (with undo)" } else { "" };
        format!("aborted by {}{undo}: {}", self.by, self.reason)
    }
}

/// A run that continues with an edited runbook (`runbook resume --runbook`): from this
/// event on, `sources` are what runs, for every later resume (after a crash or not) as for
/// the process that journaled it. Steps that ended keep their ends unless they are in
/// `rerun`; those and everything downstream of them run again, their attempts counting on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEdited {
    /// The root runbook file as the person named it.
    pub file: String,
    /// The root runbook first, then every runbook it uses, as they were read for the edit.
    pub sources: Vec<super::RunbookSource>,
    /// What changed, step by step, in file order (removed steps last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<StepChange>,
    /// Settings of the root runbook outside its steps that changed (`inputs`, `outputs`,
    /// `defaults`...), by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// Every step that runs again because of the edit, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerun: Vec<String>,
    /// The run's inputs from now on, when the edit changed them (an input added with a
    /// default, one removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    pub by: String,
    pub reason: String,
}

impl RunEdited {
    /// The hash of the root runbook as edited.
    pub fn root_sha256(&self) -> &str {
        self.sources.first().map_or("", |s| s.sha256.as_str())
    }
}

/// How one step of a runbook differs after an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepChange {
    pub step: String,
    pub kind: StepChangeKind,
    /// For a changed step: what it does changed (its action, outputs, retry, the runbook
    /// it uses...: everything but `needs` and `name`).
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub body: bool,
    /// For a changed step: the steps it needs, before and after, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<NeedsChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepChangeKind {
    Added,
    Removed,
    Changed,
}

/// The steps a step needs, before and after an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsChange {
    pub old: Vec<String>,
    pub new: Vec<String>,
}

impl StepChange {
    /// `+ step (added)`, `- step (removed)`, `~ step: body changed; needs a -> a, b`.
    pub fn describe(&self) -> String {
        match self.kind {
            StepChangeKind::Added => format!("+ {} (added)", self.step),
            StepChangeKind::Removed => format!("- {} (removed)", self.step),
            StepChangeKind::Changed => {
                let mut parts = Vec::new();
                if self.body {
                    parts.push("body changed".to_owned());
                }
                if let Some(needs) = &self.needs {
                    let list = |names: &[String]| {
                        if names.is_empty() {
                            "(none)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    };
                    parts.push(format!(
                        "needs {} -> {}",
                        list(&needs.old),
                        list(&needs.new)
                    ));
                }
                format!("~ {}: {}", self.step, parts.join("; "))
            }
        }
    }
}
