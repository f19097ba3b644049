//! How long `validate` takes on a large runbook: 10,000 steps in long dependency chains, each
//! step reading the output of the one before it, so reference and cycle checks do real work.

use criterion::{Criterion, criterion_group, criterion_main};
use runbook::runbook::diagnostic::SourceFile;
use runbook::runbook::validate::validate_source;
use std::hint::black_box;

/// `chains` chains of `length` steps; each step needs the one before it in its chain and
/// reads its output; the last step of every chain joins into one final step.
pub fn generated_runbook(chains: usize, length: usize) -> String {
    let mut text = String::from(
        "version: 1\nname: generated\ninputs:\n  greeting: { type: string, default: hi }\nsteps:\n",
    );
    for chain in 0..chains {
        for link in 0..length {
            let id = format!("c{chain}_s{link}");
            text.push_str(&format!("  - id: {id}\n"));
            if link == 0 {
                text.push_str("    needs: []\n");
                text.push_str("    exec: { command: [echo, \"{{inputs.greeting}}\"] }\n");
            } else {
                let previous = format!("c{chain}_s{}", link - 1);
                text.push_str(&format!("    needs: [{previous}]\n"));
                text.push_str(&format!(
                    "    exec: {{ command: [echo, \"{{{{steps.{previous}.outputs.value}}}}\"] }}\n"
                ));
            }
            text.push_str(&format!(
                "    outputs: {{ value: '.stdout | length + {link}' }}\n"
            ));
        }
    }
    let lasts: Vec<String> = (0..chains)
        .map(|c| format!("c{c}_s{}", length - 1))
        .collect();
    text.push_str(&format!(
        "  - id: join\n    needs: [{}]\n    sleep: 1s\n",
        lasts.join(", ")
    ));
    text
}

fn validate_10k(c: &mut Criterion) {
    let text = generated_runbook(10, 1000);
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    group.bench_function("10k steps, 10 chains of 1000", |b| {
        b.iter(|| {
            let validation = validate_source(SourceFile::new("generated.yaml", text.as_str()));
            assert!(validation.is_valid(), "{:?}", validation.problems.first());
            black_box(validation);
        })
    });
    group.finish();
}

criterion_group!(benches, validate_10k);
criterion_main!(benches);
