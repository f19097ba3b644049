//! The run's state, folded from its events. The executor reads it to build the context of
//! each template and expression, so a run rebuilt from a journal sees the same values.

use super::event::{RunEvent, RunStatus, StepStatus, Via};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// What is known of one step instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepRecord {
    /// `None` while it runs.
    pub status: Option<StepStatus>,
    pub attempts: u32,
    pub via: Option<Via>,
    pub outputs: Value,
    pub error: Option<String>,
    pub item: Option<Value>,
    /// For a `for_each` step: how many items it expanded into.
    pub items: Option<usize>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    pub status: Option<RunStatus>,
    pub steps: HashMap<String, StepRecord>,
    /// Step paths in the order they first appeared, for summaries.
    pub order: Vec<String>,
    pub outputs: Value,
}

impl RunState {
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted { .. } => self.status = Some(RunStatus::Running),
            RunEvent::StepStarted { path, attempt, .. } => {
                let record = self.record(path);
                record.attempts = *attempt;
                record.status = None;
            }
            RunEvent::StepExpanded { path, items } => self.record(path).items = Some(items.len()),
            RunEvent::StepEnded {
                path,
                status,
                attempts,
                via,
                outputs,
                error,
                item,
                duration_ms,
            } => {
                let record = self.record(path);
                record.status = Some(*status);
                record.attempts = *attempts;
                record.via = *via;
                record.outputs = outputs.clone();
                record.error = error.clone();
                record.item = item.clone();
                record.duration_ms = *duration_ms;
            }
            RunEvent::RunEnded {
                status, outputs, ..
            } => {
                self.status = Some(*status);
                self.outputs = outputs.clone();
            }
            RunEvent::RunResumed { .. } => self.status = Some(RunStatus::Running),
            RunEvent::StepPolling { .. }
            | RunEvent::StepAttemptFailed { .. }
            | RunEvent::ApprovalRequested { .. }
            | RunEvent::ApprovalGiven { .. }
            | RunEvent::Warning { .. } => {}
        }
    }

    fn record(&mut self, path: &str) -> &mut StepRecord {
        if !self.steps.contains_key(path) {
            self.order.push(path.to_owned());
        }
        self.steps.entry(path.to_owned()).or_default()
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
            let items: Vec<Value> = (0..record.items.unwrap_or(0))
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
