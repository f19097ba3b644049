//! Maintenance windows in the language: how much time a step needs left in the run's window
//! before it may start (`window:` on a step), and what the run does when it has too little
//! (`on_window_close:` on the runbook).

use super::super::duration::Duration;
use super::super::spanned::Spanned;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// How much time must be left in the run's window for this step (or the phase it `uses`) to
/// start. A run without a window never waits on it.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepWindow {
    /// A duration (`30m`), or `auto`: the p95 of this step's durations in earlier succeeded
    /// runs of the runbook, times 1.25; `estimate` while there are fewer than 3 of them.
    pub needs: Spanned<WindowNeed>,
    /// What `needs: auto` takes while the journal holds too little history. Required with
    /// `auto`, and only read by it.
    #[serde(default)]
    pub estimate: Option<Spanned<Duration>>,
    /// With `needs: auto`: measure from this step's start to the end of step `through` (of
    /// the same runbook, after this one), rather than this step alone: the time from a point
    /// of no return (stop the jobs) to the work that must follow it done (restarted and
    /// verified).
    #[serde(default)]
    pub through: Option<Spanned<String>>,
}

impl StepWindow {
    /// The step path whose end history is measured to, for a gated step at `path`: the
    /// `through` step, beside it in the same runbook; else the step itself.
    pub fn through_path(&self, path: &str) -> String {
        match &self.through {
            Some(through) => match path.rsplit_once('/') {
                Some((prefix, _)) => format!("{prefix}/{}", through.value),
                None => through.value.clone(),
            },
            None => path.to_owned(),
        }
    }
}

/// Where a step's need comes from, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowNeed {
    /// `needs: auto`: from the run history in the journal.
    Auto,
    /// `needs: 30m`.
    Declared(Duration),
}

const NEED_EXPECTED: &str = "`auto` or a duration such as 30m or 1h30m";

impl<'de> Deserialize<'de> for WindowNeed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NeedVisitor;
        impl Visitor<'_> for NeedVisitor {
            type Value = WindowNeed;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(NEED_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WindowNeed, E> {
                if text == "auto" {
                    return Ok(WindowNeed::Auto);
                }
                Duration::parse(text)
                    .map(WindowNeed::Declared)
                    .ok_or_else(|| {
                        E::custom(format_args!(
                            "invalid window need `{text}`: expected {NEED_EXPECTED}"
                        ))
                    })
            }
        }
        deserializer.deserialize_str(NeedVisitor)
    }
}

impl JsonSchema for WindowNeed {
    fn schema_name() -> Cow<'static, str> {
        "WindowNeed".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<Duration>();
        json_schema!({
            "description": "`auto` (from the run history) or a duration (30m).",
            "anyOf": [ { "const": "auto" }, duration ],
        })
    }
}

/// What a run does when a gated step has less time left in the window than it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnWindowClose {
    /// Start nothing more, let running steps finish, and park the run (exit 3) to be
    /// resumed in a later window with `runbook resume RUN_ID --window 2h`.
    Park,
    /// Fail the gated step and the run; `finally` still runs.
    Fail,
    /// Fail the gated step and the run, then run the `undo` of every step that succeeded,
    /// in reverse order of the graph; `finally` runs after.
    Undo,
}

impl OnWindowClose {
    pub fn name(self) -> &'static str {
        match self {
            OnWindowClose::Park => "park",
            OnWindowClose::Fail => "fail",
            OnWindowClose::Undo => "undo",
        }
    }
}
