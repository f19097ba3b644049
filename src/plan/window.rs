//! How much time a gated step needs, and whether it may start: the arithmetic of windows,
//! shared by the executor (which decides) and `runbook plan` (which shows).

use super::dry_run::{Plan, PlannedStep};
use crate::event::{GateDecision, NeedSource};
use crate::runbook::{OnWindowClose, StepWindow, WindowNeed};
use crate::store::StepSpan;
use serde::Serialize;
use std::time::Duration;

/// What a gated step needs, as the plan shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedWindow {
    pub needs_ms: u64,
    pub source: NeedSource,
    /// With a window to check against: whether the need fits in the whole window. A step
    /// whose need does not can never start in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fits: Option<bool>,
}

/// How long a step took in earlier succeeded runs of the runbook.
#[derive(Debug, Clone, Serialize)]
pub struct StepHistory {
    pub runs: u32,
    pub median_ms: u64,
    pub p95_ms: u64,
}

/// What to ask the store for a plan: every step path (the steps of called runbooks
/// included) for its own durations, as `(path, path)`, and for each step gated with
/// `needs: auto` and `through`, `(path, through_path)`.
pub fn spans(plan: &Plan) -> Vec<(String, String)> {
    fn walk(steps: &[PlannedStep], out: &mut Vec<(String, String)>) {
        for step in steps {
            out.push((step.path.clone(), step.path.clone()));
            if let Some(window) = &step.window_written
                && window.through.is_some()
            {
                out.push((step.path.clone(), window.through_path(&step.path)));
            }
            walk(&step.calls, out);
        }
    }
    let mut out = Vec::new();
    for stage in &plan.stages {
        walk(stage, &mut out);
    }
    out
}

/// Fills in each step's history and each gated step's need from `history` (the earlier
/// durations of a span, newest first), checked against `window` when there is one.
pub fn annotate(plan: &mut Plan, history: &dyn Fn(StepSpan) -> Vec<u64>, window: Option<Duration>) {
    fn walk(
        steps: &mut [PlannedStep],
        history: &dyn Fn(StepSpan) -> Vec<u64>,
        window: Option<Duration>,
    ) {
        for step in steps {
            let durations = history(StepSpan::step(&step.path));
            if let (Some(median_ms), Some(p95_ms)) = (percentile(&durations, 0.5), p95(&durations))
            {
                step.history = Some(StepHistory {
                    runs: durations.len() as u32,
                    median_ms,
                    p95_ms,
                });
            }
            if let Some(written) = &step.window_written {
                let through = written.through_path(&step.path);
                let span = StepSpan {
                    from: &step.path,
                    through: &through,
                };
                let (needed, source) = need(written, &history(span));
                step.window = Some(PlannedWindow {
                    needs_ms: needed.as_millis() as u64,
                    source,
                    fits: window.map(|w| needed <= w),
                });
            }
            walk(&mut step.calls, history, window);
        }
    }
    plan.window_ms = window.map(|w| w.as_millis() as u64);
    for stage in &mut plan.stages {
        walk(stage, history, window);
    }
}

/// `needs: auto` is the p95 of earlier durations times this: the p95 of a few runs
/// underestimates the tail, and stopping short of a point of no return costs less than
/// starting what cannot finish.
pub const MARGIN: f64 = 1.25;

/// Earlier durations `needs: auto` wants before it trusts history over the `estimate`: with
/// fewer, one lucky run would set the need.
pub const MIN_HISTORY: usize = 3;

/// How many of the latest earlier succeeded runs history reads: recent runs say more about
/// the next one than old ones (the cluster grew, the job got bigger).
pub const HISTORY_RUNS: usize = 20;

/// The `fraction` percentile of `durations` by nearest rank (the smallest value at or above
/// that fraction of them); `None` without durations.
pub fn percentile(durations: &[u64], fraction: f64) -> Option<u64> {
    if durations.is_empty() {
        return None;
    }
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The p95 of `durations` (milliseconds).
pub fn p95(durations: &[u64]) -> Option<u64> {
    percentile(durations, 0.95)
}

/// What a step gated by `window` needs, and where that came from, given the step's durations
/// (milliseconds) in earlier succeeded runs. A valid runbook has an `estimate` with `auto`.
pub fn need(window: &StepWindow, history: &[u64]) -> (Duration, NeedSource) {
    match window.needs.value {
        WindowNeed::Declared(need) => (need.0, NeedSource::Declared),
        WindowNeed::Auto => match p95(history).filter(|_| history.len() >= MIN_HISTORY) {
            Some(p95_ms) => (
                Duration::from_millis(p95_ms).mul_f64(MARGIN),
                NeedSource::History {
                    runs: history.len() as u32,
                    p95_ms,
                    margin: MARGIN,
                },
            ),
            None => (
                window
                    .estimate
                    .as_ref()
                    .map_or(Duration::ZERO, |estimate| estimate.value.0),
                NeedSource::Estimate {
                    runs: history.len() as u32,
                },
            ),
        },
    }
}

/// Whether a gated step with `left` of the window may start, needing `need`: it starts
/// when what it needs fits in what is left (and the window has not closed), else the
/// runbook's policy says.
pub fn decide(left: Duration, need: Duration, policy: OnWindowClose) -> GateDecision {
    if need <= left && !left.is_zero() {
        GateDecision::Start
    } else if policy != OnWindowClose::Park {
        // `undo` fails the gated step as `fail` does; the run's failure then undoes it.
        GateDecision::Fail
    } else {
        GateDecision::Park
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::{Duration as Written, Span, Spanned};

    fn window(needs: WindowNeed, estimate: Option<u64>) -> StepWindow {
        StepWindow {
            needs: Spanned {
                value: needs,
                span: Span::default(),
            },
            estimate: estimate.map(|s| Spanned {
                value: Written(Duration::from_secs(s)),
                span: Span::default(),
            }),
            through: None,
        }
    }

    #[test]
    fn through_names_a_step_beside_the_gated_one() {
        let mut gated = window(WindowNeed::Auto, Some(60));
        assert_eq!(gated.through_path("phase/stop"), "phase/stop");
        gated.through = Some(Spanned {
            value: "verify".to_owned(),
            span: Span::default(),
        });
        assert_eq!(gated.through_path("stop"), "verify");
        assert_eq!(gated.through_path("upgrade/stop"), "upgrade/verify");
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        assert_eq!(p95(&[]), None);
        assert_eq!(p95(&[7]), Some(7));
        // 20 values 1..=20: the 19th is the smallest with 95% at or below it.
        let twenty: Vec<u64> = (1..=20).rev().collect();
        assert_eq!(p95(&twenty), Some(19));
        // 21 values: rank ceil(19.95) = 20.
        let twenty_one: Vec<u64> = (1..=21).collect();
        assert_eq!(p95(&twenty_one), Some(20));
        // Few values: the largest.
        assert_eq!(p95(&[300, 100, 200]), Some(300));
        assert_eq!(percentile(&[300, 100, 200], 0.5), Some(200));
    }

    #[test]
    fn auto_takes_history_times_the_margin_once_there_is_enough() {
        let auto = window(WindowNeed::Auto, Some(600));
        let (need_ms, source) = need(&auto, &[10_000, 12_000, 8_000]);
        assert_eq!(need_ms, Duration::from_millis(15_000), "12s x 1.25");
        assert_eq!(
            source,
            NeedSource::History {
                runs: 3,
                p95_ms: 12_000,
                margin: MARGIN
            }
        );
        let (need_ms, source) = need(&auto, &[10_000, 12_000]);
        assert_eq!(need_ms, Duration::from_secs(600), "too little history");
        assert_eq!(source, NeedSource::Estimate { runs: 2 });
        let declared = window(WindowNeed::Declared(Written(Duration::from_secs(90))), None);
        assert_eq!(
            need(&declared, &[1, 2, 3, 4]),
            (Duration::from_secs(90), NeedSource::Declared),
            "a declared need ignores history"
        );
    }

    #[test]
    fn a_step_starts_only_when_its_need_fits_in_what_is_left() {
        let (min, sec) = (Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!(decide(min, min, OnWindowClose::Park), GateDecision::Start);
        assert_eq!(
            decide(min - sec, min, OnWindowClose::Park),
            GateDecision::Park
        );
        assert_eq!(
            decide(min - sec, min, OnWindowClose::Fail),
            GateDecision::Fail
        );
        assert_eq!(
            decide(Duration::ZERO, Duration::ZERO, OnWindowClose::Fail),
            GateDecision::Fail,
            "once the window has closed, no gated step starts, whatever it needs"
        );
        assert_eq!(
            decide(sec, Duration::ZERO, OnWindowClose::Park),
            GateDecision::Start
        );
    }
}
