//! `objectives`: what a run of the runbook is measured against (a recovery time, the data a
//! recovery could lose), each with its target. Reports show each objective as met, missed or
//! not measurable; `runbook report trend` follows them from run to run.

use super::super::duration::Duration;
use super::super::spanned::Spanned;
use schemars::JsonSchema;
use serde::Deserialize;

/// Where a measured time starts when it is not a step: the run's creation.
pub const RUN_STARTED: &str = "run.started";

/// One objective: a time measured from the run's journal (`from` and `to`) or a number of
/// seconds computed from its context (`value`), and the most it may be.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// What the objective measures, for people (shown in reports).
    #[serde(default)]
    pub description: Option<String>,
    /// Where the measured time starts: a step id (when its first attempt started) or
    /// `run.started` (when the run was created). Goes with `to`.
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    /// Where the measured time ends: a step id (when it ended, succeeded; a step that did not
    /// succeed leaves the objective not measurable). Goes with `from`.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// Instead of `from` and `to`: a jq expression over the run's context (`.inputs`,
    /// `.steps.<id>.outputs`, `.run`) giving seconds, or an array of seconds (the largest
    /// counts: the worst job of several).
    #[serde(default)]
    pub value: Option<Spanned<String>>,
    /// The most the measure may be for the objective to be met: a duration (15m).
    pub target: Spanned<Duration>,
}

/// The two ways an objective is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure<'a> {
    /// The time between two moments of the run.
    Between { from: &'a str, to: &'a str },
    /// A number of seconds computed by a jq expression.
    Value(&'a str),
}

impl Objective {
    /// How it is measured; `None` when it sets neither (or both) ways, which validation
    /// reports.
    pub fn measure(&self) -> Option<Measure<'_>> {
        match (&self.from, &self.to, &self.value) {
            (Some(from), Some(to), None) => Some(Measure::Between {
                from: &from.value,
                to: &to.value,
            }),
            (None, None, Some(value)) => Some(Measure::Value(&value.value)),
            _ => None,
        }
    }
}
