//! The engine's own cost per step, without a journal: runbooks of `assert` steps, whose
//! action is a single jq condition, so what is left is scheduling, events and state.
//! Divide a run's time by its number of steps for the figure per step.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runbook::engine::{self, Envelope, EventSink, RunConfig, RunStatus};
use runbook::runbook::diagnostic::SourceFile;
use runbook::runbook::inputs;
use runbook::runbook::validate::{Bundle, validate_source};
use runbook::store::Journal;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Drops every event.
struct Discard;

impl EventSink for Discard {
    fn emit(&self, envelope: &Envelope) {
        black_box(envelope);
    }
}

/// `steps` `assert` steps; chained when `chain`, each needing the one before it, else all
/// independent (`needs: []`).
fn assert_runbook(steps: usize, chain: bool) -> String {
    let mut text = String::from("version: 1\nname: generated\nsteps:\n");
    for step in 0..steps {
        text.push_str(&format!("  - id: s{step}\n"));
        if chain && step > 0 {
            text.push_str(&format!("    needs: [s{}]\n", step - 1));
        } else {
            text.push_str("    needs: []\n");
        }
        text.push_str("    assert: { that: 'true' }\n");
    }
    text
}

fn bundle(text: &str) -> (Arc<Bundle>, Map<String, Value>) {
    let validation = validate_source(SourceFile::new("generated.yaml", text));
    assert!(validation.is_valid(), "{:?}", validation.problems.first());
    let bundle = Arc::new(validation.bundle);
    let root = bundle.root().expect("a valid runbook has loaded");
    let inputs = inputs::resolve(&root.runbook, None, &[]).expect("inputs have defaults");
    (bundle, inputs)
}

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
