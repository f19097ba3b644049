//! What the engine benchmarks share: a sink that drops events and generated runbooks of
//! `assert` steps.

use runbook::engine::{Envelope, EventSink};
use runbook::runbook::diagnostic::SourceFile;
use runbook::runbook::inputs;
use runbook::runbook::validate::{Bundle, validate_source};
use serde_json::{Map, Value};
use std::hint::black_box;
use std::sync::Arc;

/// Drops every event.
pub struct Discard;

impl EventSink for Discard {
    fn emit(&self, envelope: &Envelope) {
        black_box(envelope);
    }
}

/// `steps` `assert` steps; chained when `chain`, each needing the one before it, else all
/// independent (`needs: []`).
pub fn assert_runbook(steps: usize, chain: bool) -> String {
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

/// A generated runbook, validated, with its inputs resolved.
pub fn bundle(text: &str) -> (Arc<Bundle>, Map<String, Value>) {
    let validation = validate_source(SourceFile::new("generated.yaml", text));
    assert!(validation.is_valid(), "{:?}", validation.problems.first());
    let bundle = Arc::new(validation.bundle);
    let root = bundle.root().expect("a valid runbook has loaded");
    let inputs = inputs::resolve(&root.runbook, None, &[]).expect("inputs have defaults");
    (bundle, inputs)
}
