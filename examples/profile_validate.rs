#[path = "../benches/validate.rs"]
#[allow(dead_code)]
mod bench;
use std::time::Instant;
fn main() {
    let text = bench::generated_runbook(10, 1000);
    load_only(&text);
    for _ in 0..3 {
        let t = Instant::now();
        let v = runbook::runbook::validate::validate_source(
            runbook::runbook::diagnostic::SourceFile::new("g.yaml", text.as_str()),
        );
        println!("validate: {:?} valid={}", t.elapsed(), v.is_valid());
    }
}
#[allow(dead_code)]
fn load_only(text: &str) {
    let t = Instant::now();
    let n = runbook::runbook::node::parse(text).unwrap();
    println!("parse: {:?}", t.elapsed());
    drop(n);
    let t = Instant::now();
    let (l, p) = runbook::runbook::load::load(runbook::runbook::diagnostic::SourceFile::new(
        "g.yaml", text,
    ));
    println!("load: {:?} {} {}", t.elapsed(), l.is_some(), p.len());
    let t = Instant::now();
    let dag = runbook::plan::Dag::new(&l.unwrap().runbook);
    println!("dag: {:?} cycles {}", t.elapsed(), dag.cycles().len());
}
