//! What the journal keeps of a run's window: when it closes, and every decision a gated step
//! met before it started, with its numbers.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a gated step's need came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum NeedSource {
    /// Written in the runbook: `needs: 30m`.
    Declared,
    /// `needs: auto`: the p95 of the step's durations in the `runs` latest earlier succeeded
    /// runs of the runbook, times `margin`.
    History { runs: u32, p95_ms: u64, margin: f64 },
    /// `needs: auto` with too little history (`runs` earlier durations): the `estimate`.
    Estimate { runs: u32 },
}

impl NeedSource {
    /// `declared`, `history p95 20m of 5 runs x 1.25`, `estimate (2 earlier runs)`.
    pub fn describe(&self) -> String {
        match self {
            NeedSource::Declared => "declared".to_owned(),
            NeedSource::History {
                runs,
                p95_ms,
                margin,
            } => format!("history: p95 {} of {runs} runs x {margin}", short(*p95_ms)),
            NeedSource::Estimate { runs } => {
                let plural = if *runs == 1 { "" } else { "s" };
                format!("estimate: {runs} earlier run{plural}, too few for history")
            }
        }
    }
}

/// What a gate decided for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    /// Enough time left: the step starts.
    Start,
    /// Too little: the run parks (`on_window_close: park`).
    Park,
    /// Too little: the step and the run fail (`on_window_close: fail`).
    Fail,
}

impl GateDecision {
    pub fn name(self) -> &'static str {
        match self {
            GateDecision::Start => "start",
            GateDecision::Park => "park",
            GateDecision::Fail => "fail",
        }
    }
}

/// One gate decision, as the journal's `window_checked` event holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowGate {
    pub path: String,
    /// When the window closes (RFC 3339).
    pub until: String,
    /// Time left in the window when the step was about to start; 0 once it has closed.
    pub left_ms: u64,
    pub needed_ms: u64,
    pub source: NeedSource,
    pub decision: GateDecision,
}

impl WindowGate {
    /// `step `restart` needs 30m (declared), 4m left in the window (until ...)`.
    pub fn numbers(&self) -> String {
        format!(
            "step `{}` needs {} ({}), {} left in the window (until {})",
            self.path,
            short(self.needed_ms),
            self.source.describe(),
            short(self.left_ms),
            self.until,
        )
    }

    /// The numbers and what was decided: `...: the run parks`.
    pub fn describe(&self) -> String {
        let decided = match self.decision {
            GateDecision::Start => "it starts",
            GateDecision::Park => "the run parks",
            GateDecision::Fail => "the step fails",
        };
        format!("{}: {decided}", self.numbers())
    }
}

/// A duration as runbooks write it: to the millisecond under 10s (`1s250ms`), else to the
/// second (`1h2m3s`), where milliseconds are noise.
fn short(ms: u64) -> String {
    if ms < 10_000 && !ms.is_multiple_of(1000) {
        let (s, ms) = (ms / 1000, ms % 1000);
        return if s > 0 {
            format!("{s}s{ms}ms")
        } else {
            format!("{ms}ms")
        };
    }
    let seconds = Duration::from_secs(ms.div_ceil(1000));
    let (h, m, s) = (
        seconds.as_secs() / 3600,
        seconds.as_secs() / 60 % 60,
        seconds.as_secs() % 60,
    );
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_says_its_numbers_and_where_the_need_came_from() {
        let gate = WindowGate {
            path: "restart".into(),
            until: "2026-12-06T03:00:00Z".into(),
            left_ms: 240_000,
            needed_ms: 1_875_000,
            source: NeedSource::History {
                runs: 5,
                p95_ms: 1_500_000,
                margin: 1.25,
            },
            decision: GateDecision::Park,
        };
        assert_eq!(
            gate.describe(),
            "step `restart` needs 31m15s (history: p95 25m of 5 runs x 1.25), 4m left in the \
             window (until 2026-12-06T03:00:00Z): the run parks"
        );
        assert_eq!(short(1), "1ms");
        assert_eq!(short(1_250), "1s250ms");
        assert_eq!(short(10_001), "11s", "a part of a second rounds up");
        assert_eq!(short(0), "0s");
    }
}
