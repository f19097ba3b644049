//! What the durable journal costs: the same runs as `benches/engine.rs`, journaled to SQLite
//! (WAL, synchronous=FULL) in a directory on the machine's disk, and the resume of a run whose
//! 10,000 steps had all ended. `scripts/bench.sh` turns the figures into costs per step. The
//! store writes a chain's appends on the run's thread, as `runbook run` has it.

mod common;

use common::{Discard, assert_runbook, bundle};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runbook::engine::{self, Envelope, RunConfig, RunEvent, RunStatus, StepStatus, Via};
use runbook::runbook::validate::Bundle;
use runbook::store::sqlite::SqliteStore;
use runbook::store::{Journal, Owner, Store};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

fn envelope(run_id: &str, event: RunEvent) -> Envelope {
    Envelope {
        run_id: run_id.to_owned(),
        at: jiff::Timestamp::now().to_string(),
        event,
    }
}

fn first_event(run_id: &str) -> Envelope {
    envelope(
        run_id,
        RunEvent::RunStarted {
            runbook: "generated".to_owned(),
            file: "generated.yaml".to_owned(),
            inputs: json!({}),
            sources: Vec::new(),
            origin: None,
            by: None,
        },
    )
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Creates a run in the store and runs it to its end, journaled; `prior` extra events are
/// appended first (a run to resume).
async fn journaled_run(
    store: Arc<dyn Store>,
    bundle: Arc<Bundle>,
    inputs: Map<String, Value>,
    prior: Vec<RunEvent>,
) {
    let run_id = format!("bench-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let first = first_event(&run_id);
    let lease = store
        .create(&run_id, &Owner::current(), &first)
        .await
        .expect("create the run");
    let mut events = vec![first];
    if !prior.is_empty() {
        let extra: Vec<Envelope> = prior.into_iter().map(|e| envelope(&run_id, e)).collect();
        store.append(&lease, 2, &extra).await.expect("append");
        events.extend(extra);
    }
    // Written on the run's own thread, as `runbook run` does.
    let (journal, writer) = Journal::with_writer(store.clone(), lease, events.len() as u64 + 1);
    let journal = Arc::new(journal);
    let config = RunConfig {
        run_id,
        inputs,
        secrets: HashMap::new(),
        max_parallel: None,
        interrupt: CancellationToken::new(),
        journal: journal.clone(),
        prior: events,
        resumed_by: None,
        store: Some(store),
        secret_key: None,
        processes: Default::default(),
        window_until: None,
        taken_up_at: runbook::event::timestamp::now(),
    };
    let run = async {
        let outcome = engine::run(bundle, config, Arc::new(Discard)).await;
        journal.close().await.expect("the journal closes");
        outcome
    };
    let (outcome, ()) = tokio::join!(run, writer);
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
}

fn durable(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On the disk, not in memory: fsync is the cost being measured.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let store: Arc<dyn Store> = Arc::new(
        runtime
            .block_on(SqliteStore::open(&dir.path().join("bench.db")))
            .expect("the store opens"),
    );
    // As `runbook run` has it: a chain's appends written on the run's own thread.
    runtime
        .block_on(store.append_on_calling_thread())
        .expect("the store takes the setting");
    let mut group = c.benchmark_group("journal");
    group.sample_size(10);
    for (name, steps, chain) in [
        ("chain of 1000 asserts", 1_000, true),
        ("10000 independent asserts", 10_000, false),
    ] {
        let (bundle, inputs) = bundle(&assert_runbook(steps, chain));
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(journaled_run(
                    store.clone(),
                    bundle.clone(),
                    inputs.clone(),
                    Vec::new(),
                ))
            })
        });
    }

    // A run of 10,001 steps whose first 10,000 had ended when it stopped: resuming reads
    // and checks the journal, folds it, skips what ended and runs the last step.
    let mut text = assert_runbook(10_000, false);
    text.push_str("  - id: last\n    needs: []\n    assert: { that: 'true' }\n");
    let (bundle, inputs) = bundle(&text);
    let mut ended = Vec::new();
    for step in 0..10_000 {
        let path = format!("s{step}");
        ended.push(RunEvent::StepStarted {
            path: path.clone(),
            attempt: 1,
            attempts: 1,
            fallback: false,
        });
        ended.push(RunEvent::StepEnded {
            path,
            status: StepStatus::Succeeded,
            attempts: 1,
            via: Some(Via::Action),
            outputs: json!({}),
            error: None,
            item: None,
            duration_ms: 0,
            sealed: None,
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("resume of 10000 ended steps", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iterations {
                // The journal is written outside the timed part; the resume is timed from
                // reading it back.
                let run_id = format!("resume-{}", RUNS.fetch_add(1, Ordering::Relaxed));
                let first = first_event(&run_id);
                let (lease, extra) = runtime.block_on(async {
                    let lease = store
                        .create(&run_id, &Owner::current(), &first)
                        .await
                        .expect("create");
                    let extra: Vec<Envelope> = ended
                        .iter()
                        .cloned()
                        .map(|e| envelope(&run_id, e))
                        .collect();
                    store.append(&lease, 2, &extra).await.expect("append");
                    store.release(&lease).await.expect("release");
                    (lease, extra.len())
                });
                black_box((lease, extra));
                let started = std::time::Instant::now();
                runtime.block_on(async {
                    let lease = store
                        .claim(&run_id, &Owner::current())
                        .await
                        .expect("claim");
                    let prior = store.events(&run_id).await.expect("read the journal");
                    let (journal, writer) =
                        Journal::with_writer(store.clone(), lease, prior.len() as u64 + 1);
                    let journal = Arc::new(journal);
                    let config = RunConfig {
                        run_id: run_id.clone(),
                        inputs: inputs.clone(),
                        secrets: HashMap::new(),
                        max_parallel: None,
                        interrupt: CancellationToken::new(),
                        journal: journal.clone(),
                        prior,
                        resumed_by: Some("bench".to_owned()),
                        store: Some(store.clone()),
                        secret_key: None,
                        processes: Default::default(),
                        window_until: None,
                        taken_up_at: runbook::event::timestamp::now(),
                    };
                    let run = async {
                        let outcome = engine::run(bundle.clone(), config, Arc::new(Discard)).await;
                        journal.close().await.expect("the journal closes");
                        outcome
                    };
                    let (outcome, ()) = tokio::join!(run, writer);
                    assert_eq!(outcome.status, RunStatus::Succeeded);
                    assert_eq!(outcome.state.steps["last"].attempts, 1);
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, durable);
criterion_main!(benches);
