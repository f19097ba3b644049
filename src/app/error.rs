use crate::engine::seal::KeyError;
use crate::engine::secrets::SecretError;
use crate::event::{RunStatus, StepStatus};
use crate::process::ProcessError;
use crate::runbook::diagnostic::Diagnostic;
use crate::store::StoreError;

/// Why an application function did nothing (or stopped before the run began). Each variant
/// says whose mistake it is, so that a front end can answer in its own terms: an exit code,
/// an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The runbook (or one it uses) is invalid; the diagnostics carry file:line:col.
    #[error("the runbook is invalid")]
    InvalidRunbook(Vec<Diagnostic>),
    /// The runbook kept in a run's journal does not validate with this version.
    #[error("the runbook stored with run {run_id} is not valid for this version of runbook")]
    StoredRunbookInvalid {
        run_id: String,
        problems: Vec<Diagnostic>,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    SecretKey(#[from] KeyError),
    /// The store URL cannot be used.
    #[error("{0}")]
    StoreLocation(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An action refused the run before it started: a `kubernetes` step cannot reach its
    /// cluster configuration.
    #[error(transparent)]
    Preflight(crate::actions::PreflightError),
    #[error("run {run_id} has already ended ({}); there is nothing to {}", status.name(), wanted.verb())]
    AlreadyEnded {
        run_id: String,
        status: RunStatus,
        wanted: NothingTo,
    },
    /// The run's window ends before it could begin.
    #[error("the window ends at {until}, which has already passed; give a window that ends later")]
    WindowOver { until: jiff::Timestamp },
    /// The journal lacks what a resume needs.
    #[error("{0}")]
    NotResumable(String),
    /// Processes an earlier engine of the run left behind cannot be stopped.
    #[error(transparent)]
    Leftovers(#[from] ProcessError),
    #[error("cannot look for processes left by run {run_id}: {detail}")]
    LeftoverScan { run_id: String, detail: String },
    #[error("step `{step}` of run {run_id} was already {} by {by}", if *approved { "approved" } else { "rejected" })]
    AlreadyAnswered {
        run_id: String,
        step: String,
        approved: bool,
        by: String,
    },
    /// One person answers a step once, even one that needs several approvers.
    #[error(
        "{by} has already answered step `{step}` of run {run_id}; it needs {needed} different approvers ({approvals} so far): someone else must approve it"
    )]
    AnsweredTwice {
        run_id: String,
        step: String,
        by: String,
        approvals: u32,
        needed: u32,
    },
    /// The step says `distinct_from_starter: true` and the answer is from whoever started
    /// the run.
    #[error(
        "{by} started run {run_id} and step `{step}` needs an approver other than whoever started the run: someone else must answer it"
    )]
    StarterMayNotAnswer {
        run_id: String,
        step: String,
        by: String,
    },
    #[error("run {run_id} has no step `{step}`{}; its steps: {}",
        closest.as_ref().map(|near| format!(" (did you mean `{near}`?)")).unwrap_or_default(),
        steps.join(", "))]
    UnknownStep {
        run_id: String,
        step: String,
        closest: Option<String>,
        steps: Vec<String>,
    },
    #[error("step `{step}` of run {run_id} has already {}; only a failed or not-yet-run step can be skipped", if *status == StepStatus::Skipped { "been skipped" } else { status.name() })]
    NotSkippable {
        run_id: String,
        step: String,
        status: StepStatus,
    },
    #[error("step `{step}` declares no output `{name}`; {}", if declared.is_empty() { "it declares none".to_owned() } else { format!("it declares: {}", declared.join(", ")) })]
    UnknownOutput {
        step: String,
        name: String,
        declared: Vec<String>,
    },
    #[error(
        "output `{name}` given for step `{step}` holds a secret of the runbook; a secret never goes to the journal: give the step a value that is not secret, or let the step run"
    )]
    SecretOutput { step: String, name: String },
    #[error("run {run_id} has no failed step to retry; name one with --from (its steps: {})", steps.join(", "))]
    NothingFailed { run_id: String, steps: Vec<String> },
    #[error("{}", .0.join("\n"))]
    BadInputs(Vec<String>),
    /// A step path `skip` or `retry` cannot work on.
    #[error("run {run_id}: `{path}` cannot be named here: {why}")]
    StepPathRefused {
        run_id: String,
        path: String,
        why: String,
    },
    /// An edited runbook the run cannot continue with: each reason names its steps.
    #[error("run {run_id} cannot continue with the edited runbook {file}:\n{}", reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    EditRefused {
        run_id: String,
        file: String,
        reasons: Vec<String>,
    },
    /// The edited runbook is invalid; the diagnostics carry file:line:col, and `removed`
    /// names the steps the edit removes that had finished and are still read or needed.
    #[error("run {run_id} cannot continue with the edited runbook {file}: it is invalid{}",
        if removed.is_empty() { String::new() } else { format!("; it removes {}, which finished in the run and which a kept step still reads or needs", removed.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")) })]
    EditInvalid {
        run_id: String,
        file: String,
        problems: Vec<Diagnostic>,
        removed: Vec<String>,
    },
    #[error("run {run_id} is not running ({}); only a run a live process runs can be paused", status.name())]
    NotLive { run_id: String, status: RunStatus },
    #[error("step `{step}` of run {run_id} is not waiting for approval{}; {}",
        closest.as_ref().map(|near| format!(" (did you mean `{near}`?)")).unwrap_or_default(),
        if waiting.is_empty() { "no step of it is waiting for approval now".to_owned() }
        else { format!("waiting for approval: {}", waiting.join(", ")) })]
    NotWaiting {
        run_id: String,
        step: String,
        /// The waiting step whose path is nearest the one given.
        closest: Option<String>,
        /// Every step waiting for an answer.
        waiting: Vec<String>,
    },
}

/// What was asked of a run that has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NothingTo {
    Resume,
    Approve,
    Skip,
    Abort,
    Undo,
}

impl NothingTo {
    fn verb(self) -> &'static str {
        match self {
            NothingTo::Resume => "resume",
            NothingTo::Approve => "approve",
            NothingTo::Skip => "skip",
            NothingTo::Abort => "abort",
            NothingTo::Undo => "undo (only a failed or stopped run can be undone)",
        }
    }
}

/// Something a person should know that is neither an event of the run nor a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A runbook file changed since the run started; the journal's copy is what runs.
    SourceChanged { run_id: String, path: String },
    /// A runbook file is gone; the journal's copy is what runs.
    SourceGone { run_id: String, path: String },
    /// Processes an earlier engine of the run left running were stopped before resuming.
    LeftoversStopped { run_id: String, count: usize },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::SourceChanged { run_id, path } => write!(
                f,
                "note: {path} has changed since run {run_id} started; resuming with the runbook as it was then (kept in the journal)"
            ),
            Notice::SourceGone { run_id, path } => write!(
                f,
                "note: {path} is gone; resuming with the runbook as it was when run {run_id} started (kept in the journal)"
            ),
            Notice::LeftoversStopped { run_id, count } => write!(
                f,
                "note: stopped {count} {} left running by run {run_id} before resuming it",
                if *count == 1 { "process" } else { "processes" }
            ),
        }
    }
}
