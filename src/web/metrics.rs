//! `/metrics`, in Prometheus text format (version 0.0.4): runs by runbook and status, step
//! durations and lock waits as histograms, approvals and locks waited for now, and the lag
//! of each schedule's last fire. Everything but the fire lag is read from the store at each
//! scrape, so it counts the runs of every process that shares the store; the histograms fold
//! each ended run once and keep it.

use super::WebState;
use super::auth::{AuthRejection, Viewer};
use crate::engine::state::RunState;
use crate::event::{RunEvent, StepStatus};
use crate::serve::ServeMetrics;
use crate::store::{Store, StoreError};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

pub fn routes() -> Router<WebState> {
    Router::new().route("/metrics", get(scrape))
}

/// Upper bounds of the histograms' buckets, in seconds: from a quick check to a long wait
/// in an upgrade window.
const BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
];

/// What `/metrics` keeps between scrapes, and who may read it.
#[derive(Debug, Default)]
pub struct Metrics {
    /// What the serve runner measures.
    pub serve: Arc<ServeMetrics>,
    /// `http.metrics_public: true`: anyone may scrape, signed in or not.
    pub public: bool,
    folded: Mutex<Folded>,
}

impl Metrics {
    pub fn new(serve: Arc<ServeMetrics>, public: bool) -> Metrics {
        Metrics {
            serve,
            public,
            folded: Mutex::default(),
        }
    }
}

/// The ended runs already counted in the histograms.
#[derive(Debug, Default)]
struct Folded {
    runs: HashSet<String>,
    steps: BTreeMap<(String, String), Histogram>,
    lock_waits: BTreeMap<String, Histogram>,
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at or under each bound of [`BUCKETS`] (not cumulated).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

async fn scrape(State(state): State<WebState>, viewer: Result<Viewer, AuthRejection>) -> Response {
    if !state.metrics.public
        && let Err(rejection) = viewer
    {
        return rejection.into_response();
    }
    match render(state.store.as_ref(), &state.metrics).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": format!("cannot read the store: {error}") })),
        )
            .into_response(),
    }
}

/// What is going on now in the runs that are not over.
#[derive(Debug, Default)]
struct Now {
    approvals_pending: BTreeMap<String, u64>,
    lock_waiting: BTreeMap<String, u64>,
}

/// The whole scrape.
async fn render(store: &dyn Store, metrics: &Metrics) -> Result<String, StoreError> {
    let runs = store.runs().await?;
    let mut by_status: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut now = Now::default();
    let mut to_fold = Vec::new();
    {
        let folded = metrics.folded.lock().expect("metrics lock");
        for run in &runs {
            *by_status
                .entry((run.runbook.clone(), run.status.name()))
                .or_default() += 1;
            if !run.status.is_over() || !folded.runs.contains(&run.id) {
                to_fold.push(run.clone());
            }
        }
    }
    for run in to_fold {
        // A run pruned between the list and this read is simply left out.
        let Ok(events) = store.events(&run.id).await else {
            continue;
        };
        if run.status.is_over() {
            let mut folded = metrics.folded.lock().expect("metrics lock");
            if folded.runs.insert(run.id.clone()) {
                fold(&mut folded, &run.runbook, &events);
            }
        } else {
            look_at_live(&mut now, &run.runbook, &events);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP runbook_runs Runs in the store, by runbook and status.\n# TYPE runbook_runs gauge"
    );
    for ((runbook, status), count) in &by_status {
        let _ = writeln!(
            out,
            "runbook_runs{{runbook=\"{}\",status=\"{status}\"}} {count}",
            label(runbook)
        );
    }
    let _ = writeln!(
        out,
        "# HELP runbook_approvals_pending Approval steps waiting for an answer, by runbook.\n# TYPE runbook_approvals_pending gauge"
    );
    let total: u64 = now.approvals_pending.values().sum();
    let _ = writeln!(out, "runbook_approvals_pending {total}");
    let _ = writeln!(
        out,
        "# HELP runbook_approvals_pending_by_runbook Approval steps waiting for an answer, by runbook.\n# TYPE runbook_approvals_pending_by_runbook gauge"
    );
    for (runbook, count) in &now.approvals_pending {
        let _ = writeln!(
            out,
            "runbook_approvals_pending_by_runbook{{runbook=\"{}\"}} {count}",
            label(runbook)
        );
    }
    let _ = writeln!(
        out,
        "# HELP runbook_lock_waiting Runs and steps waiting now for a lock another run holds, by runbook.\n# TYPE runbook_lock_waiting gauge"
    );
    for (runbook, count) in &now.lock_waiting {
        let _ = writeln!(
            out,
            "runbook_lock_waiting{{runbook=\"{}\"}} {count}",
            label(runbook)
        );
    }
    {
        let folded = metrics.folded.lock().expect("metrics lock");
        let _ = writeln!(
            out,
            "# HELP runbook_step_duration_seconds How long steps of ended runs took, by runbook and step.\n# TYPE runbook_step_duration_seconds histogram"
        );
        for ((runbook, step), histogram) in &folded.steps {
            let labels = format!("runbook=\"{}\",step=\"{}\"", label(runbook), label(step));
            write_histogram(
                &mut out,
                "runbook_step_duration_seconds",
                &labels,
                histogram,
            );
        }
        let _ = writeln!(
            out,
            "# HELP runbook_lock_wait_seconds How long ended runs waited for each lock they took, by runbook.\n# TYPE runbook_lock_wait_seconds histogram"
        );
        for (runbook, histogram) in &folded.lock_waits {
            let labels = format!("runbook=\"{}\"", label(runbook));
            write_histogram(&mut out, "runbook_lock_wait_seconds", &labels, histogram);
        }
    }
    let _ = writeln!(
        out,
        "# HELP runbook_schedule_fire_lag_seconds From a schedule's last fire time to the start of its run.\n# TYPE runbook_schedule_fire_lag_seconds gauge"
    );
    for (schedule, seconds) in metrics.serve.fire_lags() {
        let _ = writeln!(
            out,
            "runbook_schedule_fire_lag_seconds{{schedule=\"{}\"}} {seconds}",
            label(&schedule)
        );
    }
    Ok(out)
}

/// Adds an ended run's step durations and lock waits to the histograms.
fn fold(folded: &mut Folded, runbook: &str, events: &[crate::event::Envelope]) {
    for envelope in events {
        match &envelope.event {
            // A skipped step took no time worth a bucket.
            RunEvent::StepEnded {
                path,
                status: StepStatus::Succeeded | StepStatus::Failed,
                duration_ms: ms,
                ..
            } => folded
                .steps
                .entry((runbook.to_owned(), step_name(path)))
                .or_default()
                .observe(*ms as f64 / 1000.0),
            RunEvent::LockAcquired(acquired) => folded
                .lock_waits
                .entry(runbook.to_owned())
                .or_default()
                .observe(acquired.waited_ms as f64 / 1000.0),
            _ => {}
        }
    }
}

/// A step's name without its `for_each` item and `uses` nesting indexes (`jobs[3]/cancel`
/// is `jobs/cancel`): one series per step, not per item.
fn step_name(path: &str) -> String {
    let mut name = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => name.push(c),
            _ => {}
        }
    }
    name
}

/// Counts what a run that is not over waits for now.
fn look_at_live(now: &mut Now, runbook: &str, events: &[crate::event::Envelope]) {
    let mut state = RunState::default();
    let mut waiting: BTreeMap<(String, String), bool> = BTreeMap::new();
    for envelope in events {
        state.apply_at(&envelope.event, &envelope.at);
        match &envelope.event {
            RunEvent::LockWaiting(w) => {
                waiting.insert((w.lock.clone(), w.step.clone()), true);
            }
            RunEvent::LockAcquired(a) => {
                waiting.remove(&(a.lock.clone(), a.step.clone()));
            }
            _ => {}
        }
    }
    let pending = state
        .steps
        .values()
        .filter(|record| record.status.is_none() && record.awaits_answers())
        .count() as u64;
    if pending > 0 {
        *now.approvals_pending.entry(runbook.to_owned()).or_default() += pending;
    }
    if !waiting.is_empty() {
        *now.lock_waiting.entry(runbook.to_owned()).or_default() += waiting.len() as u64;
    }
}

fn write_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let mut cumulated = 0;
    for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
        cumulated += count;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulated}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        histogram.count
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
}

/// A label value as the text format writes it: backslash, double quote and line feed
/// escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_item_indexes_left_out_of_step_names() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(step_name("jobs[3]/cancel[0]"), "jobs/cancel");
        assert_eq!(step_name("plain"), "plain");
    }

    #[test]
    fn a_histogram_cumulates_its_buckets() {
        let mut histogram = Histogram::default();
        for seconds in [0.05, 0.7, 2.0, 99999.0] {
            histogram.observe(seconds);
        }
        let mut out = String::new();
        write_histogram(&mut out, "h", "a=\"b\"", &histogram);
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"14400\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_count{a=\"b\"} 4\n"), "{out}");
    }
}
