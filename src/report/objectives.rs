//! Objectives measured from a run's journal: the one place that decides whether a run met
//! its targets, read by every report format and by `runbook report trend`.
//!
//! The objectives are the ones the run itself read: those of the root runbook's source as
//! the journal's `run_started` keeps it, so a report of an old run measures what that run
//! promised, whatever the file on disk says today.

use super::run_report::duration;
use crate::engine::state::RunState;
use crate::event::{Envelope, RunEvent, StepStatus};
use crate::runbook::diagnostic::SourceFile;
use crate::runbook::{Measure, Objective, RUN_STARTED, load};
use crate::template::jq;
use serde::Serialize;
use serde_json::{Value, json};

/// How a run fared against one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Met,
    Missed,
    /// The run did not get far enough to measure it (a step never reached or failed), or
    /// its `value` gave no number: neither met nor missed.
    NotMeasurable,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Met => "met",
            Outcome::Missed => "missed",
            Outcome::NotMeasurable => "not measurable",
        }
    }
}

/// One objective of a run: its target, what was measured, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub target_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<u64>,
    pub outcome: Outcome,
    /// What was measured (`disaster started → verify ended`), or why nothing could be.
    pub detail: String,
}

/// The objectives the run's runbook declared (as its latest edit left it, if any),
/// measured on its events. Empty when the runbook declared none, or when the journal keeps
/// no source to read them from.
pub fn measure_run(events: &[Envelope]) -> Vec<ObjectiveReport> {
    let edited = events.iter().rev().find_map(|e| match &e.event {
        RunEvent::RunEdited(edited) => Some(&edited.sources),
        _ => None,
    });
    let started = match events.first().map(|e| &e.event) {
        Some(RunEvent::RunStarted { sources, .. }) => Some(sources),
        _ => None,
    };
    let Some(sources) = edited.or(started) else {
        return Vec::new();
    };
    let Some(root) = sources.first() else {
        return Vec::new();
    };
    let (loaded, _) = load::load(SourceFile::new(&root.path, root.text.as_str()));
    let Some(loaded) = loaded else {
        return Vec::new();
    };
    let objectives: Vec<(&str, &Objective)> = loaded
        .runbook
        .objectives
        .iter()
        .map(|(name, objective)| (name.value.as_str(), objective))
        .collect();
    measure(&objectives, events)
}

/// Measures each objective on a run's events.
pub fn measure(objectives: &[(&str, &Objective)], events: &[Envelope]) -> Vec<ObjectiveReport> {
    let mut context = None;
    objectives
        .iter()
        .map(|(name, objective)| {
            let target_ms = millis(objective.target.value.0);
            let measured = match objective.measure() {
                Some(Measure::Between { from, to }) => between(events, from, to),
                Some(Measure::Value(expression)) => {
                    let context = context.get_or_insert_with(|| run_context(events));
                    value(expression, context)
                }
                None => Err("it sets neither `from` and `to` nor `value`".to_owned()),
            };
            let (measured_ms, outcome, detail) = match measured {
                Ok((ms, how)) if ms <= target_ms => (Some(ms), Outcome::Met, how),
                Ok((ms, how)) => (Some(ms), Outcome::Missed, how),
                Err(why) => (None, Outcome::NotMeasurable, why),
            };
            ObjectiveReport {
                name: (*name).to_owned(),
                description: objective.description.clone(),
                target_ms,
                measured_ms,
                outcome,
                detail,
            }
        })
        .collect()
}

/// The objectives as `runs show` prints them on the terminal, under the steps.
pub fn render_text(out: &mut String, objectives: &[ObjectiveReport]) {
    use std::fmt::Write;
    if objectives.is_empty() {
        return;
    }
    let width = objectives
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:>9}  {:>9}  result",
        "objective", "target", "measured"
    );
    for objective in objectives {
        let measured = objective
            .measured_ms
            .map(duration)
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  {}: {}",
            objective.name,
            duration(objective.target_ms),
            measured,
            objective.outcome.name(),
            objective.detail
        );
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

type Measured = Result<(u64, String), String>;

/// The time from `from` (a step's first start, or the run's creation) to the last end of
/// step `to`, which must have succeeded. Wall-clock time: a run parked overnight and resumed
/// took that long to recover.
fn between(events: &[Envelope], from: &str, to: &str) -> Measured {
    let start = if from == RUN_STARTED {
        events.first().map(|e| e.at.as_str())
    } else {
        events.iter().find_map(|envelope| match &envelope.event {
            RunEvent::StepStarted { path, .. } if is_instance_of(path, from) => {
                Some(envelope.at.as_str())
            }
            _ => None,
        })
    };
    let Some(start) = start else {
        return Err(format!("step `{from}` never started"));
    };
    let end = events
        .iter()
        .rev()
        .find_map(|envelope| match &envelope.event {
            RunEvent::StepEnded { path, status, .. } if path == to => {
                Some((envelope.at.as_str(), *status))
            }
            _ => None,
        });
    let end = match end {
        None => return Err(format!("step `{to}` was never reached")),
        Some((_, status)) if status != StepStatus::Succeeded => {
            return Err(format!("step `{to}` {}", status.name()));
        }
        Some((at, _)) => at,
    };
    let (Ok(start_at), Ok(end_at)) = (
        start.parse::<jiff::Timestamp>(),
        end.parse::<jiff::Timestamp>(),
    ) else {
        return Err("the journal's times cannot be read".to_owned());
    };
    let ms = end_at.as_millisecond() - start_at.as_millisecond();
    let from_name = if from == RUN_STARTED {
        "run started".to_owned()
    } else {
        format!("`{from}` started")
    };
    match u64::try_from(ms) {
        Ok(ms) => Ok((ms, format!("{from_name} → `{to}` succeeded"))),
        Err(_) => Err(format!("`{to}` ended before {from_name}")),
    }
}

/// `path` is step `id` of the root runbook, or one of its `for_each` items.
fn is_instance_of(path: &str, id: &str) -> bool {
    path.strip_prefix(id)
        .is_some_and(|rest| rest.is_empty() || (rest.starts_with('[') && !rest.contains('/')))
}

/// A jq `value` giving seconds, or an array of seconds of which the largest counts.
fn value(expression: &str, context: &Value) -> Measured {
    let program = jq::compile(expression).map_err(|_| "its `value` does not compile".to_owned())?;
    let result = program
        .first(context, context)
        .map_err(|error| format!("its `value` failed: {error}"))?;
    let seconds: Vec<f64> = match &result {
        Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
        other => other.as_f64().into_iter().collect(),
    };
    let counted = match &result {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    if seconds.is_empty() || seconds.len() != counted {
        return Err(format!(
            "its `value` gave {}, not seconds",
            crate::report::run_report::compact(&result)
        ));
    }
    let worst = seconds.iter().copied().fold(f64::MIN, f64::max);
    if !worst.is_finite() || worst < 0.0 {
        return Err(format!("its `value` gave {worst} seconds"));
    }
    let how = match seconds.len() {
        1 => "computed by `value`".to_owned(),
        n => format!("the largest of {n} values"),
    };
    Ok(((worst * 1000.0).round() as u64, how))
}

/// The context a runbook's `outputs` see at the end of the run, rebuilt from the journal:
/// `.inputs`, `.steps`, `.run` (secrets stay masked, as the journal holds them).
fn run_context(events: &[Envelope]) -> Value {
    let mut state = RunState::default();
    let mut inputs = Value::Null;
    let mut name = String::new();
    for envelope in events {
        state.apply_at(&envelope.event, &envelope.at);
        if let RunEvent::RunStarted {
            inputs: given,
            runbook,
            ..
        } = &envelope.event
        {
            inputs = given.clone();
            name = runbook.clone();
        }
    }
    let ids: Vec<&str> = state
        .steps
        .keys()
        .map(String::as_str)
        .filter(|path| !path.contains(['/', '[']))
        .collect();
    json!({
        "inputs": inputs,
        "steps": state.steps_context("", ids.into_iter()),
        "run": {
            "id": events.first().map(|e| e.run_id.as_str()),
            "name": name,
            "started_at": state.created_at,
            "status": state.status().map(|s| s.name()),
        },
    })
}

#[cfg(test)]
mod tests;
