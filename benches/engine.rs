//! The engine's own cost per step, without a journal: runbooks of `assert` steps, whose
//! action is a single jq condition, so what is left is scheduling, events and state.
//! Divide a run's time by its number of steps for the figure per step.

mod common;

use common::{Discard, assert_runbook, bundle};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runbook::engine::{self, EventSink, RunConfig, RunStatus};
use runbook::runbook::validate::Bundle;
use runbook::store::Journal;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn run_once(runtime: &tokio::runtime::Runtime, bundle: &Arc<Bundle>, inputs: &Map<String, Value>) {
    let config = RunConfig {
        run_id: "bench".to_owned(),
        inputs: inputs.clone(),
        secrets: HashMap::new(),
        max_parallel: None,
        interrupt: CancellationToken::new(),
        journal: Arc::new(Journal::none()),
        prior: Vec::new(),
        resumed_by: None,
        store: None,
        secret_key: None,
        processes: Default::default(),
        window_until: None,
        taken_up_at: runbook::event::timestamp::now(),
    };
    let sink: Arc<dyn EventSink> = Arc::new(Discard);
    let outcome = runtime.block_on(engine::run(bundle.clone(), config, sink));
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
    black_box(outcome);
}

fn engine_overhead(c: &mut Criterion) {
    // Like the CLI: one multi-threaded runtime, built outside the timed loop.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for (name, steps, chain) in [
        ("chain of 1000 asserts", 1_000, true),
        ("10000 independent asserts", 10_000, false),
    ] {
        let (bundle, inputs) = bundle(&assert_runbook(steps, chain));
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_function(name, |b| b.iter(|| run_once(&runtime, &bundle, &inputs)));
    }
    group.finish();
}

criterion_group!(benches, engine_overhead);
criterion_main!(benches);
