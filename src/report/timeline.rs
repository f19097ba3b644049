//! The run drawn over time: for each step, a bar per attempt (retries and the fallback
//! apart), the waits for an answer to an approval, and where a park cut an attempt short.
//! Built from the events alone; the HTML report draws it as a Gantt chart.

use crate::event::{Envelope, RunEvent, StepStatus};
use std::collections::HashMap;

/// What a bar stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// An attempt of the step's action.
    Attempt,
    /// An attempt of its fallback.
    Fallback,
    /// Waiting for someone to answer an approval.
    Approval,
    /// Waiting for a lock another run (or step) holds.
    LockWait,
}

/// The lane of what the run does before its first step, such as waiting for its locks.
pub const RUN_LANE: &str = "(run)";

/// The lane a wait for a lock is drawn on: the step's, or the run's own for `""`.
fn lock_lane(step: &str) -> &str {
    if step.is_empty() { RUN_LANE } else { step }
}

/// How a bar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarEnd {
    Succeeded,
    /// The attempt failed (a retry or the fallback may follow).
    Failed,
    Skipped,
    Cancelled,
    /// An approval answered yes.
    Approved,
    /// An approval answered no.
    Rejected,
    /// Cut short by the run parking or stopping; or still going when the journal ends.
    Unfinished,
}

impl BarEnd {
    pub fn name(self) -> &'static str {
        match self {
            BarEnd::Succeeded => "succeeded",
            BarEnd::Failed => "failed",
            BarEnd::Skipped => "skipped",
            BarEnd::Cancelled => "cancelled",
            BarEnd::Approved => "approved",
            BarEnd::Rejected => "rejected",
            BarEnd::Unfinished => "unfinished",
        }
    }
}

impl From<StepStatus> for BarEnd {
    fn from(status: StepStatus) -> Self {
        match status {
            StepStatus::Succeeded => BarEnd::Succeeded,
            StepStatus::Failed => BarEnd::Failed,
            StepStatus::Skipped => BarEnd::Skipped,
            StepStatus::Cancelled => BarEnd::Cancelled,
        }
    }
}

/// One span of time of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub kind: BarKind,
    /// The attempt's number (1 for an approval wait).
    pub attempt: u32,
    /// Milliseconds since the run's first event.
    pub start_ms: i64,
    pub end_ms: i64,
    pub end: BarEnd,
}

/// The bars of one step path, in the order the step ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub path: String,
    pub bars: Vec<Bar>,
}

/// Every step's bars, and the span of the whole run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Milliseconds from the first event to the last.
    pub span_ms: i64,
    pub lanes: Vec<Lane>,
    /// When the run parked (ms since its start), to mark on the chart.
    pub parks: Vec<i64>,
    /// When a person applied a control (skip, retry, pause, edit; ms since the run's
    /// start), in the order of the report's `controls`.
    pub controls: Vec<i64>,
}

impl Timeline {
    pub fn new(events: &[Envelope]) -> Timeline {
        let Some(first) = events.first().and_then(|e| millis(&e.at)) else {
            return Timeline::default();
        };
        let mut timeline = Timeline::default();
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        // The bar still open on each lane.
        let mut open: HashMap<usize, usize> = HashMap::new();
        let mut last = 0;
        for envelope in events {
            let Some(at) = millis(&envelope.at).map(|ms| ms - first) else {
                continue;
            };
            last = last.max(at);
            let mut lane = |path: &str, timeline: &mut Timeline| -> usize {
                *lane_of.entry(path.to_owned()).or_insert_with(|| {
                    timeline.lanes.push(Lane {
                        path: path.to_owned(),
                        bars: Vec::new(),
                    });
                    timeline.lanes.len() - 1
                })
            };
            let close = |timeline: &mut Timeline, open: &mut HashMap<usize, usize>, lane, end| {
                if let Some(bar) = open.remove(&lane) {
                    let bar = &mut timeline.lanes[lane].bars[bar];
                    bar.end_ms = at;
                    bar.end = end;
                }
            };
            match &envelope.event {
                RunEvent::StepStarted {
                    path,
                    attempt,
                    fallback,
                    ..
                } => {
                    let index = lane(path, &mut timeline);
                    close(&mut timeline, &mut open, index, BarEnd::Unfinished);
                    let kind = if *fallback {
                        BarKind::Fallback
                    } else {
                        BarKind::Attempt
                    };
                    timeline.open_bar(&mut open, index, kind, *attempt, at);
                }
                RunEvent::StepAttemptFailed { path, .. } => {
                    let index = lane(path, &mut timeline);
                    close(&mut timeline, &mut open, index, BarEnd::Failed);
                }
                RunEvent::ApprovalRequested { path, .. } => {
                    let index = lane(path, &mut timeline);
                    close(&mut timeline, &mut open, index, BarEnd::Succeeded);
                    timeline.open_bar(&mut open, index, BarKind::Approval, 1, at);
                }
                RunEvent::ApprovalGiven {
                    path,
                    approved,
                    answered_at,
                    ..
                } => {
                    let index = lane(path, &mut timeline);
                    let end = if *approved {
                        BarEnd::Approved
                    } else {
                        BarEnd::Rejected
                    };
                    // The wait lasted until the answer, even when the run was parked
                    // meanwhile and the answer is journaled only once it resumed.
                    let answered = millis(answered_at).map_or(at, |ms| (ms - first).min(at));
                    let bars = &mut timeline.lanes[index].bars;
                    if let Some(wait) = bars.iter().rposition(|b| b.kind == BarKind::Approval) {
                        if open.get(&index) == Some(&wait) {
                            open.remove(&index);
                        }
                        let bar = &mut bars[wait];
                        bar.end_ms = answered.max(bar.start_ms);
                        bar.end = end;
                    }
                }
                RunEvent::LockWaiting(waiting) => {
                    let path = lock_lane(&waiting.step);
                    let index = lane(path, &mut timeline);
                    let waits = open.get(&index).is_some_and(|&bar| {
                        timeline.lanes[index].bars[bar].kind == BarKind::LockWait
                    });
                    if !waits {
                        close(&mut timeline, &mut open, index, BarEnd::Unfinished);
                        timeline.open_bar(&mut open, index, BarKind::LockWait, 1, at);
                    }
                }
                RunEvent::LockAcquired(acquired) => {
                    let path = lock_lane(&acquired.step);
                    if let Some(&index) = lane_of.get(path)
                        && open.get(&index).is_some_and(|&bar| {
                            timeline.lanes[index].bars[bar].kind == BarKind::LockWait
                        })
                    {
                        close(&mut timeline, &mut open, index, BarEnd::Succeeded);
                    }
                }
                RunEvent::StepEnded {
                    path,
                    status,
                    attempts,
                    ..
                } => {
                    let index = lane(path, &mut timeline);
                    if open.contains_key(&index) {
                        close(&mut timeline, &mut open, index, (*status).into());
                    } else if timeline.lanes[index].bars.is_empty() {
                        // Skipped (or ended at once): a mark at the moment it was decided.
                        timeline.open_bar(&mut open, index, BarKind::Attempt, *attempts, at);
                        close(&mut timeline, &mut open, index, (*status).into());
                    }
                }
                RunEvent::StepSkippedByHand(_)
                | RunEvent::RunRetried(_)
                | RunEvent::RunPaused(_)
                | RunEvent::RunEdited(_) => timeline.controls.push(at),
                RunEvent::RunEnded { .. } => {
                    let lanes: Vec<usize> = open.keys().copied().collect();
                    for index in lanes {
                        close(&mut timeline, &mut open, index, BarEnd::Unfinished);
                    }
                    timeline.parks.push(at);
                }
                _ => {}
            }
        }
        for (lane, bar) in open {
            timeline.lanes[lane].bars[bar].end_ms = last;
        }
        // The run's real end is no park.
        if matches!(
            events.last().map(|e| &e.event),
            Some(RunEvent::RunEnded { status, .. }) if !status.is_parked()
        ) {
            timeline.parks.pop();
        }
        timeline.span_ms = last;
        timeline
    }

    fn open_bar(
        &mut self,
        open: &mut HashMap<usize, usize>,
        lane: usize,
        kind: BarKind,
        attempt: u32,
        at: i64,
    ) {
        let bars = &mut self.lanes[lane].bars;
        bars.push(Bar {
            kind,
            attempt,
            start_ms: at,
            end_ms: at,
            end: BarEnd::Unfinished,
        });
        open.insert(lane, bars.len() - 1);
    }
}

fn millis(at: &str) -> Option<i64> {
    at.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RunStatus, Via};
    use serde_json::json;

    fn at(second: u32, event: RunEvent) -> Envelope {
        Envelope {
            run_id: "r".into(),
            at: format!("2026-11-20T10:00:{second:02}.000000Z"),
            event,
        }
    }

    fn ended(path: &str, status: StepStatus) -> RunEvent {
        RunEvent::StepEnded {
            path: path.into(),
            status,
            attempts: 2,
            via: Some(Via::Fallback),
            outputs: json!({}),
            error: None,
            item: None,
            duration_ms: 0,
            sealed: None,
        }
    }

    #[test]
    fn retries_fallbacks_approvals_and_skips_each_get_their_bar() {
        let start = |path: &str, attempt, fallback| RunEvent::StepStarted {
            path: path.into(),
            attempt,
            attempts: 2,
            fallback,
        };
        let failed = |path: &str| RunEvent::StepAttemptFailed {
            path: path.into(),
            attempt: 1,
            error: "no".into(),
            retry_in_ms: Some(1),
            fallback: false,
        };
        let events = vec![
            at(
                0,
                RunEvent::RunStarted {
                    runbook: "r".into(),
                    file: "r.yaml".into(),
                    inputs: json!({}),
                    sources: vec![],
                    origin: None,
                    by: None,
                },
            ),
            at(1, start("a", 1, false)),
            at(2, failed("a")),
            at(3, start("a", 2, false)),
            at(4, failed("a")),
            at(5, start("a", 1, true)),
            at(6, ended("a", StepStatus::Succeeded)),
            at(6, ended("skipped", StepStatus::Skipped)),
            at(7, start("gate", 1, false)),
            at(
                7,
                RunEvent::ApprovalRequested {
                    path: "gate".into(),
                    prompt: "ok?".into(),
                    timeout_ms: None,
                    needed: None,
                    distinct_from_starter: false,
                },
            ),
            at(
                9,
                RunEvent::RunEnded {
                    status: RunStatus::Waiting,
                    reason: None,
                    outputs: json!(null),
                    duration_ms: 9000,
                    notices: vec![],
                },
            ),
        ];
        let timeline = Timeline::new(&events);
        assert_eq!(timeline.span_ms, 9000);
        assert_eq!(timeline.parks, [9000]);
        let a = &timeline.lanes[0];
        let kinds: Vec<_> = a.bars.iter().map(|b| (b.kind, b.attempt, b.end)).collect();
        assert_eq!(
            kinds,
            [
                (BarKind::Attempt, 1, BarEnd::Failed),
                (BarKind::Attempt, 2, BarEnd::Failed),
                (BarKind::Fallback, 1, BarEnd::Succeeded),
            ]
        );
        assert_eq!((a.bars[2].start_ms, a.bars[2].end_ms), (5000, 6000));
        assert_eq!(timeline.lanes[1].bars[0].end, BarEnd::Skipped);
        let gate = &timeline.lanes[2].bars;
        assert_eq!(gate[1].kind, BarKind::Approval);
        assert_eq!((gate[1].end, gate[1].end_ms), (BarEnd::Unfinished, 9000));
    }

    #[test]
    fn a_wait_for_a_lock_is_a_bar_of_its_own_before_the_attempt() {
        use crate::event::{LockAcquired, LockHolding, LockWaiting};
        let holder = LockHolding {
            run_id: "other".into(),
            runbook: "upgrade".into(),
            step: String::new(),
            host: "h".into(),
            pid: 1,
            since: "2026-11-20T09:59:00.000000Z".into(),
            expires_at: None,
        };
        let waiting = |step: &str| {
            RunEvent::LockWaiting(LockWaiting {
                lock: "flink-prod".into(),
                step: step.into(),
                held_by: holder.clone(),
            })
        };
        let acquired = |step: &str| {
            RunEvent::LockAcquired(LockAcquired {
                lock: "flink-prod".into(),
                step: step.into(),
                waited_ms: 2000,
            })
        };
        let events = [
            at(0, waiting("")),
            at(2, acquired("")),
            at(3, waiting("restart")),
            // Told again when the holder changes: still the same wait.
            at(4, waiting("restart")),
            at(5, acquired("restart")),
            at(
                5,
                RunEvent::StepStarted {
                    path: "restart".into(),
                    attempt: 1,
                    attempts: 1,
                    fallback: false,
                },
            ),
            at(6, ended("restart", StepStatus::Succeeded)),
        ];
        let timeline = Timeline::new(&events);
        let run = &timeline.lanes[0];
        assert_eq!(run.path, RUN_LANE);
        assert_eq!(run.bars.len(), 1);
        assert_eq!(run.bars[0].kind, BarKind::LockWait);
        assert_eq!((run.bars[0].start_ms, run.bars[0].end_ms), (0, 2000));
        let step = &timeline.lanes[1];
        let kinds: Vec<_> = step.bars.iter().map(|b| (b.kind, b.end)).collect();
        assert_eq!(
            kinds,
            [
                (BarKind::LockWait, BarEnd::Succeeded),
                (BarKind::Attempt, BarEnd::Succeeded)
            ]
        );
        assert_eq!((step.bars[0].start_ms, step.bars[0].end_ms), (3000, 5000));
    }
}
