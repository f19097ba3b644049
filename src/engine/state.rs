//! The run's state, folded from its events. The executor reads it to build the context of
//! each template and expression, and a resumed run starts from the fold of its journal, so
//! a run rebuilt from a journal sees the same values and knows where each step stood.

use super::redact::Revealed;
use super::seal::OpenError;
use crate::event::{RunEvent, RunFold, RunStatus, StepStatus, Via};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// What is known of one step instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepRecord {
    /// `None` while it runs.
    pub status: Option<StepStatus>,
    /// The attempt under way or last made (of the fallback, when `fallback` is set).
    pub attempts: u32,
    pub via: Option<Via>,
    pub outputs: Value,
    pub error: Option<String>,
    pub item: Option<Value>,
    pub duration_ms: u64,
    /// The attempt under way is the fallback's.
    pub fallback: bool,
    /// The attempt under way has already failed (a retry was due).
    pub attempt_failed: bool,
    /// The run segment (see [`RunState::segment`]) in which the step ended.
    pub segment: u32,
    /// When it started (see [`Self::started_at`]).
    started_at: Moment,
    /// When it ended (see [`Self::ended_at`]).
    ended_at: Moment,
    /// The process segment in which it last started: the run's resumes before it.
    pub started_in: Option<u32>,
    /// Attempts made before a `runbook retry` had the step run again: `attempts` counts
    /// those made since.
    pub earlier_attempts: u32,
    /// What few step instances have, boxed together: a run keeps a record per step
    /// instance, and these fields took most of its room. `None` until one is set.
    extras: Option<Box<StepExtras>>,
}

/// The fields of a [`StepRecord`] that few steps use (see [`StepRecord::extras_mut`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepExtras {
    /// For a `for_each` step: the items it expanded into.
    pub expanded: Option<Vec<Value>>,
    /// Attempts of the action itself, and its last error, once the fallback has taken over.
    pub action_attempts: u32,
    pub action_error: Option<String>,
    /// When an approval step asked its question (RFC 3339).
    pub approval_requested_at: Option<String>,
    /// The answers journaled, in order: one person each.
    pub answers: Vec<Answer>,
    /// What an approval step asks for, once it asked.
    pub approval_rule: Option<ApprovalRule>,
    /// Values the journal holds masked because they carried a secret, and that this process
    /// cannot read in clear (`outputs.<name>`, `item`, `items`), with why.
    pub withheld: BTreeMap<String, OpenError>,
    /// Set when a person marked the step done by hand (`runbook skip`): who, and why.
    pub skipped_by_hand: Option<String>,
}

/// A moment or none in 8 bytes, where an `Option<Timestamp>` takes 24: microseconds since
/// the Unix epoch (the journal's times have no finer digits), `i64::MIN` for none. A run
/// keeps two per step instance, hundreds of thousands for a wide `for_each`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moment(i64);

impl Moment {
    const NONE: Moment = Moment(i64::MIN);

    fn of(at: Timestamp) -> Self {
        Moment(at.as_microsecond())
    }

    fn get(self) -> Option<Timestamp> {
        if self == Self::NONE {
            return None;
        }
        Timestamp::from_microsecond(self.0).ok()
    }

    fn is_some(self) -> bool {
        self != Self::NONE
    }

    /// Sets the moment unless it is set already.
    fn set_once(&mut self, at: Timestamp) {
        if !self.is_some() {
            *self = Moment::of(at);
        }
    }
}

impl Default for Moment {
    fn default() -> Self {
        Moment::NONE
    }
}

/// No values withheld: what [`StepRecord::withheld`] answers for a step without extras.
static NONE_WITHHELD: BTreeMap<String, OpenError> = BTreeMap::new();

/// What is known of the undo of one step instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UndoRecord {
    /// `None` while it runs.
    pub status: Option<StepStatus>,
    /// The attempt under way or last made.
    pub attempts: u32,
    /// The attempt under way has already failed (a retry was due).
    pub attempt_failed: bool,
    pub error: Option<String>,
}

/// Who an approval step needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRule {
    /// Different people who must approve.
    pub needed: u32,
    /// Whoever started the run may not answer.
    pub distinct_from_starter: bool,
}

/// Where an approval step stands after its answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<'a> {
    /// More approvals are needed: how many so far, and how many in all.
    Open { approvals: u32, needed: u32 },
    /// Enough different people approved; the answers, in order.
    Approved(Vec<&'a Answer>),
    /// Someone rejected it.
    Rejected(&'a Answer),
}

impl StepRecord {
    /// A record with nothing known yet but the attempts earlier retries made.
    fn new(earlier_attempts: u32) -> Self {
        StepRecord {
            earlier_attempts,
            ..StepRecord::default()
        }
    }

    /// When it started: its first attempt, or the last time it ran again (a `finally` step
    /// after a resume, a step a resume takes up again).
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at.get()
    }

    /// When it ended; `None` while it runs or when it never ended.
    pub fn ended_at(&self) -> Option<Timestamp> {
        self.ended_at.get()
    }

    /// The fields few steps use, made when first needed.
    pub fn extras_mut(&mut self) -> &mut StepExtras {
        self.extras.get_or_insert_default()
    }

    /// For a `for_each` step: the items it expanded into.
    pub fn expanded(&self) -> Option<&Vec<Value>> {
        self.extras.as_ref()?.expanded.as_ref()
    }

    /// Attempts of the action itself once the fallback has taken over.
    pub fn action_attempts(&self) -> u32 {
        self.extras.as_ref().map_or(0, |e| e.action_attempts)
    }

    /// The action's last error once the fallback has taken over.
    pub fn action_error(&self) -> Option<&str> {
        self.extras.as_ref()?.action_error.as_deref()
    }

    /// When an approval step asked its question (RFC 3339; empty until the envelope's time
    /// is known).
    pub fn approval_requested_at(&self) -> Option<&str> {
        self.extras.as_ref()?.approval_requested_at.as_deref()
    }

    /// The answers journaled for an approval step, in order: one person each.
    pub fn answers(&self) -> &[Answer] {
        self.extras.as_ref().map_or(&[], |e| &e.answers)
    }

    /// What an approval step asks for, once it asked.
    pub fn approval_rule(&self) -> Option<&ApprovalRule> {
        self.extras.as_ref()?.approval_rule.as_ref()
    }

    /// Values the journal holds masked that this process cannot read in clear, with why.
    pub fn withheld(&self) -> &BTreeMap<String, OpenError> {
        self.extras.as_ref().map_or(&NONE_WITHHELD, |e| &e.withheld)
    }

    /// Who marked the step done by hand, and why (`runbook skip`).
    pub fn skipped_by_hand(&self) -> Option<&str> {
        self.extras.as_ref()?.skipped_by_hand.as_deref()
    }

    /// The approval step's verdict from its journaled answers: the first rejection settles
    /// it; so do `needed` approvals by different people.
    pub fn verdict(&self) -> Verdict<'_> {
        verdict(self.answers(), self.approvals_needed())
    }

    /// How many different people the approval step needs (one when it did not say).
    pub fn approvals_needed(&self) -> u32 {
        self.approval_rule().map_or(1, |rule| rule.needed)
    }

    /// Whether an approval step asked and is still open.
    pub fn awaits_answers(&self) -> bool {
        self.approval_requested_at().is_some() && matches!(self.verdict(), Verdict::Open { .. })
    }
}

/// The verdict of `answers` (in the order given) on a step that needs `needed` approvals.
/// A person's later answers do not count: each counts once.
pub fn verdict(answers: &[Answer], needed: u32) -> Verdict<'_> {
    let mut approvals: Vec<&Answer> = Vec::new();
    for answer in answers {
        if approvals.iter().any(|a| a.by == answer.by) {
            continue;
        }
        if !answer.approved {
            return Verdict::Rejected(answer);
        }
        approvals.push(answer);
        if approvals.len() as u32 >= needed.max(1) {
            return Verdict::Approved(approvals);
        }
    }
    Verdict::Open {
        approvals: approvals.len() as u32,
        needed: needed.max(1),
    }
}

/// An answer journaled for an approval step.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    /// The run-level reading of the events, as the store and the reports read them. Its
    /// `parks` counts the times the run was parked: `finally` steps that ended before the
    /// last park ran for that park, not for the run's real end, and a resume runs them again.
    pub run: RunFold,
    pub steps: BTreeMap<String, StepRecord>,
    /// Step paths in the order they ran, for summaries and reports: a step that runs again
    /// (a `finally` step after a resume, a step a resume takes up again) moves to where it
    /// ran last. Each path is one allocation, shared with `seen`.
    pub order: Vec<Arc<str>>,
    seen: HashSet<Arc<str>>,
    /// How many times a process took the run up again.
    resumes: u32,
    /// When the run was created (RFC 3339), from its first event.
    pub created_at: Option<String>,
    /// Attempts each step retried by `runbook retry` made before, added up.
    retried_attempts: HashMap<String, u32>,
    /// The undo of each step instance that has one under way or done, by step path.
    pub undos: BTreeMap<String, UndoRecord>,
}

impl RunState {
    /// The run's status, as its last run-level event left it.
    pub fn status(&self) -> Option<RunStatus> {
        self.run.status
    }

    /// Applies an event that happened at `at` (RFC 3339; a time runbook did not write reads
    /// as the Unix epoch).
    pub fn apply_at(&mut self, event: &RunEvent, at: &str) {
        self.run.apply(event, at);
        let moment = || at.parse::<Timestamp>().unwrap_or_default();
        if let RunEvent::RunResumed { .. } = event {
            self.resumes += 1;
        }
        self.apply_to_steps(event);
        match event {
            RunEvent::StepStarted { path, .. } | RunEvent::StepExpanded { path, .. } => {
                self.runs_again(path, moment())
            }
            RunEvent::RunStarted { .. } if self.created_at.is_none() => {
                self.created_at = Some(at.to_owned())
            }
            RunEvent::StepEnded { path, .. } => {
                if let Some(record) = self.steps.get_mut(path) {
                    let at = moment();
                    record.started_at.set_once(at);
                    record.ended_at = Moment::of(at);
                }
            }
            RunEvent::StepSkippedByHand(skipped) => {
                if let Some(record) = self.steps.get_mut(&skipped.path) {
                    let at = moment();
                    record.started_at.set_once(at);
                    record.ended_at = Moment::of(at);
                }
            }
            RunEvent::ApprovalRequested { path, .. } => {
                if let Some(record) = self.steps.get_mut(path)
                    && record.approval_requested_at() == Some("")
                {
                    record.extras_mut().approval_requested_at = Some(at.to_owned());
                }
            }
            _ => {}
        }
    }

    fn apply_to_steps(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted { .. } | RunEvent::RunResumed { .. } => {}
            RunEvent::StepStarted {
                path,
                attempt,
                fallback,
                ..
            } => {
                let record = self.record(path);
                // A step that a crash or a signal left unfinished starts the same attempt again.
                let same_attempt = matches!(record.status, None | Some(StepStatus::Cancelled))
                    && record.attempts == *attempt
                    && record.fallback == *fallback;
                record.status = None;
                if !same_attempt {
                    record.attempts = *attempt;
                    record.fallback = *fallback;
                    record.attempt_failed = false;
                    if let Some(extras) = &mut record.extras {
                        extras.approval_requested_at = None;
                        extras.answers.clear();
                        extras.approval_rule = None;
                    }
                    // A new attempt of a `uses` step runs the called runbook afresh: what its
                    // steps did in the attempt before no longer counts.
                    self.forget_children(path);
                }
            }
            RunEvent::StepAttemptFailed {
                path,
                attempt,
                error,
                fallback,
                ..
            } => {
                let record = self.record(path);
                record.attempt_failed = true;
                if !*fallback {
                    let extras = record.extras_mut();
                    extras.action_attempts = *attempt;
                    extras.action_error = Some(error.clone());
                }
            }
            RunEvent::StepExpanded { path, items, .. } => {
                let record = self.record(path);
                let extras = record.extras_mut();
                extras.expanded = Some(items.clone());
                extras.withheld.remove("items");
            }
            RunEvent::StepEnded {
                path,
                status,
                attempts,
                via,
                outputs,
                error,
                item,
                duration_ms,
                ..
            } => {
                let segment = self.run.parks;
                let record = self.record(path);
                if let Some(extras) = &mut record.extras {
                    extras.withheld.retain(|name, _| name == "items");
                }
                record.status = Some(*status);
                record.attempts = *attempts;
                record.via = *via;
                record.outputs = outputs.clone();
                record.error = error.clone();
                record.item = item.clone();
                record.duration_ms = *duration_ms;
                record.segment = segment;
            }
            RunEvent::ApprovalRequested {
                path,
                needed,
                distinct_from_starter,
                ..
            } => {
                // The time is the envelope's; the executor fills it in through `requested`.
                let record = self.record(path);
                let extras = record.extras_mut();
                if extras.approval_requested_at.is_none() {
                    extras.approval_requested_at = Some(String::new());
                }
                extras.approval_rule = Some(ApprovalRule {
                    needed: needed.unwrap_or(1),
                    distinct_from_starter: *distinct_from_starter,
                });
            }
            RunEvent::ApprovalGiven {
                path,
                approved,
                by,
                comment,
                answered_at,
            } => {
                let record = self.record(path);
                // A person answers once; a second event for them (none is written) would not
                // count twice.
                let answers = &mut record.extras_mut().answers;
                if !answers.iter().any(|a| a.by == *by) {
                    answers.push(Answer {
                        approved: *approved,
                        by: by.clone(),
                        comment: comment.clone(),
                        at: answered_at.clone(),
                    });
                }
            }
            RunEvent::StepSkippedByHand(skipped) => {
                let segment = self.run.parks;
                let record = self.record(&skipped.path);
                record.status = Some(StepStatus::Skipped);
                record.via = None;
                record.outputs = skipped.outputs.clone();
                record.error = None;
                record.attempt_failed = false;
                record.duration_ms = 0;
                record.segment = segment;
                let extras = record.extras_mut();
                extras.withheld.clear();
                extras.skipped_by_hand = Some(format!("{}: {}", skipped.by, skipped.reason));
                // What it ran of a called runbook no longer counts: it is done by hand.
                self.forget_children(&skipped.path);
                self.reopen_step_of_item(&skipped.path);
            }
            RunEvent::RunRetried(retried) => {
                for path in &retried.rerun {
                    self.forget_for_retry(path);
                    self.reopen_step_of_item(path);
                }
            }
            RunEvent::RunEdited(edited) => {
                for path in &edited.rerun {
                    self.forget_for_retry(path);
                }
                // The run goes forward again: what an earlier undo took back may be redone.
                self.undos.clear();
            }
            RunEvent::UndoStarted { path, attempt, .. } => {
                let record = self.undos.entry(path.clone()).or_default();
                // A crash or a signal left it unfinished: the same attempt starts again.
                let same_attempt = record.status.is_none() && record.attempts == *attempt;
                if !same_attempt {
                    record.attempts = *attempt;
                    record.attempt_failed = false;
                }
                record.status = None;
            }
            RunEvent::UndoAttemptFailed { path, error, .. } => {
                let record = self.undos.entry(path.clone()).or_default();
                record.attempt_failed = true;
                record.error = Some(error.clone());
            }
            RunEvent::UndoEnded {
                path,
                status,
                attempts,
                error,
                ..
            } => {
                let record = self.undos.entry(path.clone()).or_default();
                record.status = Some(*status);
                record.attempts = *attempts;
                record.error = error.clone();
            }
            RunEvent::RunEnded { .. }
            | RunEvent::RunAborted(_)
            | RunEvent::RunUndoing { .. }
            | RunEvent::RunPaused(_)
            | RunEvent::StepPolling { .. }
            | RunEvent::StepNotice { .. }
            | RunEvent::LockWaiting(_)
            | RunEvent::LockAcquired(_)
            | RunEvent::LockReleased(_)
            | RunEvent::StepOutput { .. }
            | RunEvent::Warning { .. }
            | RunEvent::WindowOpened { .. }
            | RunEvent::WindowChecked(_) => {}
        }
    }

    /// Undoes the ends of steps that the journal could not write, so that the state shows as
    /// ended only what a resume will find ended. Returns, in order, the paths of those that
    /// had done their work (any end but `cancelled`): a resume does it again.
    pub fn forget_unrecorded_ends(&mut self, unwritten: &[super::Envelope]) -> Vec<String> {
        let mut forgotten = Vec::new();
        for envelope in unwritten {
            if let RunEvent::StepEnded { path, .. } = &envelope.event
                && let Some(record) = self.steps.get_mut(path)
                && let Some(status) = record.status.take()
            {
                record.via = None;
                record.outputs = Value::Null;
                record.duration_ms = 0;
                record.ended_at = Moment::NONE;
                if status != StepStatus::Cancelled {
                    forgotten.push(path.clone());
                }
            }
        }
        forgotten
    }

    /// Puts back the real values of a step's fields that the event it just applied holds
    /// masked.
    pub fn reveal(&mut self, path: &str, mut revealed: Revealed) {
        let Some(record) = self.steps.get_mut(path) else {
            return;
        };
        if let Some(outputs) = revealed.remove("outputs") {
            record.outputs = outputs;
        }
        if let Some(item) = revealed.remove("item") {
            record.item = Some(item);
        }
        if let Some(Value::Array(items)) = revealed.remove("items") {
            record.extras_mut().expanded = Some(items);
        }
    }

    /// Notes that masked values of a step cannot be read in clear, and why.
    pub fn withhold(&mut self, path: &str, masked: &[String], reason: &OpenError) {
        if let Some(record) = self.steps.get_mut(path) {
            for name in masked {
                record
                    .extras_mut()
                    .withheld
                    .insert(name.clone(), reason.clone());
            }
        }
    }

    /// The context paths of the values withheld from the steps of one runbook (those whose
    /// paths start with `prefix`): `steps.a.outputs.token`, `steps.a.items.2.item`, with why
    /// each is withheld.
    pub fn withheld_paths(&self, prefix: &str) -> Vec<(Vec<String>, OpenError)> {
        let mut paths = Vec::new();
        for (path, record) in &self.steps {
            if record.withheld().is_empty() {
                continue;
            }
            let Some(rest) = path.strip_prefix(prefix).filter(|r| !r.contains('/')) else {
                continue;
            };
            let mut base = vec!["steps".to_owned()];
            match rest.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
                Some((id, index)) => {
                    base.extend([id.to_owned(), "items".to_owned(), index.to_owned()])
                }
                None => base.push(rest.to_owned()),
            }
            for (name, reason) in record.withheld() {
                let mut full = base.clone();
                match name.split_once('.') {
                    Some((field, key)) => full.extend([field.to_owned(), key.to_owned()]),
                    None => full.push(name.clone()),
                }
                paths.push((full, reason.clone()));
            }
        }
        paths
    }

    /// Notes that the step at `path` starts at `at`. One that had ended, or that last
    /// started before a resume, runs again: it moves to the end of [`order`](Self::order).
    fn runs_again(&mut self, path: &str, at: Timestamp) {
        let segment = self.resumes;
        let Some(record) = self.steps.get_mut(path) else {
            return;
        };
        let earlier = record.started_in.replace(segment);
        // Ended before, or started in an earlier process: it runs again.
        let again = record.ended_at.is_some() || earlier.is_some_and(|s| s < segment);
        if again {
            record.started_at = Moment::of(at);
            record.ended_at = Moment::NONE;
            self.order.retain(|p| &**p != path);
            let shared = self.seen.get(path).cloned().unwrap_or_else(|| path.into());
            self.order.push(shared);
        } else {
            record.started_at.set_once(at);
        }
    }

    fn record(&mut self, path: &str) -> &mut StepRecord {
        if !self.seen.contains(path) {
            let shared: Arc<str> = path.into();
            self.seen.insert(shared.clone());
            self.order.push(shared);
        }
        let earlier_attempts = self.retried_attempts.get(path).copied().unwrap_or(0);
        self.steps
            .entry(path.to_owned())
            .or_insert_with(|| StepRecord::new(earlier_attempts))
    }

    /// Forgets what a step, its `for_each` instances and the steps it called did, so that
    /// it runs again as if it never had (its `when` included); the attempts it made are
    /// kept in [`StepRecord::earlier_attempts`] of its next record.
    fn forget_for_retry(&mut self, path: &str) {
        let instances = format!("{path}[");
        let doomed: Vec<String> = self
            .steps
            .range(path.to_owned()..)
            .take_while(|(key, _)| key.starts_with(path))
            .filter(|(key, _)| {
                key.as_str() == path
                    || key.starts_with(&instances)
                    || key.starts_with(&format!("{path}/"))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            if let Some(record) = self.steps.remove(&key) {
                *self.retried_attempts.entry(key.clone()).or_default() += record.attempts;
            }
        }
    }

    /// When `path` is an item of a `for_each` step (`step[3]`) that a person skipped or
    /// retried, the step itself has not ended any more: the next resume ends it again from
    /// its items, those that ended keeping their ends. The item learns what it is for.
    fn reopen_step_of_item(&mut self, path: &str) {
        let Some((step, index)) = path.strip_suffix(']').and_then(|p| p.rsplit_once('[')) else {
            return;
        };
        let Some(record) = self.steps.get_mut(step) else {
            return;
        };
        record.status = None;
        record.ended_at = Moment::NONE;
        record.error = None;
        let item = index
            .parse::<usize>()
            .ok()
            .and_then(|i| record.expanded()?.get(i).cloned());
        if let (Some(item), Some(instance)) = (item, self.steps.get_mut(path)) {
            instance.item.get_or_insert(item);
        }
    }

    /// Drops the records of the steps a `uses` step at `path` ran.
    fn forget_children(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let children: Vec<String> = self
            .steps
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(key, _)| key.clone())
            .collect();
        for child in children {
            self.steps.remove(&child);
        }
    }

    /// `steps.<id>` of the context for the steps of one runbook, whose paths start with
    /// `prefix`. A step that has not run is absent.
    pub fn steps_context<'a>(&self, prefix: &str, ids: impl Iterator<Item = &'a str>) -> Value {
        let mut steps = Map::new();
        for id in ids {
            let path = format!("{prefix}{id}");
            let Some(record) = self.steps.get(&path) else {
                continue;
            };
            let count = record.expanded().map_or(0, Vec::len);
            let items: Vec<Value> = (0..count)
                .map(|index| {
                    let item = self.steps.get(&format!("{path}[{index}]"));
                    json!({
                        "item": item.and_then(|r| r.item.clone()).unwrap_or(Value::Null),
                        "index": index,
                        "status": item.and_then(|r| r.status).map(StepStatus::name),
                        "outputs": item.map_or(Value::Null, |r| r.outputs.clone()),
                        "via": item.and_then(|r| r.via),
                    })
                })
                .collect();
            steps.insert(
                id.to_owned(),
                json!({
                    "status": record.status.map(StepStatus::name),
                    "outputs": record.outputs,
                    "attempts": record.attempts,
                    "via": record.via,
                    "items": items,
                }),
            );
        }
        Value::Object(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(path: &str, attempt: u32, fallback: bool) -> RunEvent {
        RunEvent::StepStarted {
            path: path.to_owned(),
            attempt,
            attempts: 3,
            fallback,
        }
    }

    fn order(state: &RunState) -> Vec<&str> {
        state.order.iter().map(|p| &**p).collect()
    }

    /// The `n`th second of a day, as an event's time.
    fn t(n: u8) -> String {
        format!("2026-11-21T06:00:{n:02}.000000Z")
    }

    fn moment(n: u8) -> Timestamp {
        t(n).parse().unwrap()
    }

    fn ended(path: &str) -> RunEvent {
        RunEvent::StepEnded {
            path: path.to_owned(),
            status: StepStatus::Succeeded,
            attempts: 1,
            via: Some(Via::Action),
            outputs: json!({}),
            error: None,
            item: None,
            duration_ms: 1,
            sealed: None,
        }
    }

    /// A run keeps one record per step instance, 500,000 for a wide `for_each`: each byte
    /// here is half a megabyte there. Fields few steps use belong in [`StepExtras`].
    #[test]
    fn a_step_record_stays_small() {
        let size = std::mem::size_of::<StepRecord>();
        assert!(size <= 224, "StepRecord grew to {size} bytes");
        let mut state = RunState::default();
        state.apply_at(&started("s", 1, false), &t(1));
        state.apply_at(&ended("s"), &t(2));
        assert!(
            state.steps["s"].extras.is_none(),
            "a plain step has no extras"
        );
    }

    #[test]
    fn a_new_attempt_of_a_uses_step_forgets_what_its_runbook_did() {
        let mut state = RunState::default();
        state.apply_at(&started("call", 1, false), "");
        state.apply_at(&started("call/a", 1, false), "");
        state.apply_at(&ended("call/a"), "");
        state.apply_at(&started("caller", 1, false), "");
        // The same attempt again (a resume) keeps the called runbook's progress...
        state.apply_at(&started("call", 1, false), "");
        assert!(state.steps.contains_key("call/a"));
        // ...a new one does not, and leaves steps with a similar name alone.
        state.apply_at(&started("call", 2, false), "");
        assert!(!state.steps.contains_key("call/a"));
        assert!(state.steps.contains_key("caller"));
        state.apply_at(&started("call/a", 1, false), "");
        assert_eq!(order(&state), ["call", "call/a", "caller"]);
    }

    #[test]
    fn a_failed_attempt_and_the_fallback_are_remembered_for_resume() {
        let mut state = RunState::default();
        state.apply_at(&started("s", 2, false), "");
        state.apply_at(
            &RunEvent::StepAttemptFailed {
                path: "s".to_owned(),
                attempt: 2,
                error: "boom".to_owned(),
                retry_in_ms: None,
                fallback: false,
            },
            "",
        );
        let record = &state.steps["s"];
        assert!(record.attempt_failed);
        assert_eq!(record.action_attempts(), 2);
        state.apply_at(&started("s", 1, true), "");
        let record = &state.steps["s"];
        assert!(record.fallback && !record.attempt_failed);
        assert_eq!(record.action_error(), Some("boom"));
    }

    #[test]
    fn parking_starts_a_new_segment() {
        let mut state = RunState::default();
        state.apply_at(&ended("cleanup"), "");
        let parked = RunEvent::RunEnded {
            status: RunStatus::Interrupted,
            reason: None,
            outputs: Value::Null,
            duration_ms: 1,
            notices: Vec::new(),
        };
        state.apply_at(&parked, "");
        assert_eq!(state.steps["cleanup"].segment, 0);
        assert_eq!(state.run.parks, 1);
    }

    #[test]
    fn a_step_that_runs_again_after_a_resume_moves_to_where_it_ran_last() {
        let mut state = RunState::default();
        state.apply_at(&started("cleanup", 1, false), &t(1));
        state.apply_at(&ended("cleanup"), &t(2));
        state.apply_at(&started("work", 1, false), &t(3));
        assert_eq!(order(&state), ["cleanup", "work"]);
        // A retry in the same process does not move the step, nor restart its clock.
        state.apply_at(&started("work", 2, false), &t(4));
        assert_eq!(state.steps["work"].started_at(), Some(moment(3)));
        state.apply_at(&RunEvent::RunResumed { by: "pid 2".into() }, &t(5));
        state.apply_at(&started("work", 2, false), &t(6));
        state.apply_at(&started("cleanup", 1, false), &t(7));
        assert_eq!(order(&state), ["work", "cleanup"]);
        let cleanup = &state.steps["cleanup"];
        assert_eq!(cleanup.started_at(), Some(moment(7)));
        assert_eq!(cleanup.ended_at(), None);
        assert_eq!(state.steps["work"].started_at(), Some(moment(6)));
    }

    #[test]
    fn an_undo_in_flight_keeps_its_attempt_and_a_new_round_starts_afresh() {
        let mut state = RunState::default();
        let started = |attempt| RunEvent::UndoStarted {
            path: "s".to_owned(),
            attempt,
            attempts: 3,
        };
        state.apply_at(&started(1), "");
        state.apply_at(
            &RunEvent::UndoAttemptFailed {
                path: "s".to_owned(),
                attempt: 1,
                error: "boom".to_owned(),
                retry_in_ms: Some(10),
            },
            "",
        );
        state.apply_at(&started(2), "");
        // A resume makes attempt 2 again: the same attempt, not a third.
        state.apply_at(&started(2), "");
        let undo = &state.undos["s"];
        assert_eq!((undo.attempts, undo.status), (2, None));
        state.apply_at(
            &RunEvent::UndoEnded {
                path: "s".to_owned(),
                status: StepStatus::Failed,
                attempts: 2,
                error: Some("boom".to_owned()),
                duration_ms: 1,
            },
            "",
        );
        // Taken up again by a later abort: attempts count from 1.
        state.apply_at(&started(1), "");
        let undo = &state.undos["s"];
        assert_eq!(
            (undo.attempts, undo.status, undo.attempt_failed),
            (1, None, false)
        );
        assert!(state.steps.is_empty(), "undo events leave the steps alone");
    }

    fn answer(by: &str, approved: bool) -> Answer {
        Answer {
            approved,
            by: by.to_owned(),
            comment: None,
            at: "2025-01-02T03:04:05Z".to_owned(),
        }
    }

    #[test]
    fn a_quorum_counts_each_person_once_and_a_rejection_settles_it() {
        let ana = answer("ana", true);
        let bo = answer("bo", true);
        assert_eq!(
            verdict(&[], 2),
            Verdict::Open {
                approvals: 0,
                needed: 2
            }
        );
        assert_eq!(
            verdict(&[ana.clone(), ana.clone()], 2),
            Verdict::Open {
                approvals: 1,
                needed: 2
            }
        );
        assert_eq!(
            verdict(&[ana.clone(), bo.clone()], 2),
            Verdict::Approved(vec![&ana, &bo])
        );
        let no = answer("cy", false);
        assert_eq!(
            verdict(&[ana.clone(), no.clone(), bo.clone()], 2),
            Verdict::Rejected(&no)
        );
        // One approval is the default, and a person's later change of mind does not count.
        assert_eq!(
            verdict(std::slice::from_ref(&ana), 1),
            Verdict::Approved(vec![&ana])
        );
        assert_eq!(
            verdict(&[ana.clone(), answer("ana", false)], 2),
            Verdict::Open {
                approvals: 1,
                needed: 2
            }
        );
    }
}
