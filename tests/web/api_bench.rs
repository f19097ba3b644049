//! Fills a store with many runs through the store API, for `scripts/bench-web.sh` (which
//! then times the API against it). Ignored: run it through the script.

use runbook::event::Envelope;
use runbook::store::Owner;
use runbook::store::Store;
use runbook::store::sqlite::SqliteStore;
use serde_json::json;

/// `BENCH_STORE=PATH BENCH_RUNS=N cargo test --test web -- --ignored fill_a_store`: N runs of
/// a four-step runbook (ten events each), ended, newest last.
#[test]
#[ignore]
fn fill_a_store_with_runs() {
    let path = std::env::var("BENCH_STORE").expect("BENCH_STORE: the store file to fill");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(std::path::Path::new(&path)).await.unwrap();
        let owner = Owner::current();
        let base = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 365);
        for n in 0..runs {
            let at = (base + jiff::SignedDuration::from_secs(n as i64 * 60)).to_string();
            let run_id = format!("{}-{n:06x}", at.replace([':', '-'], "").get(..16).unwrap());
            let envelope = |event: serde_json::Value| -> Envelope {
                let mut value = event;
                value["run_id"] = json!(run_id);
                value["at"] = json!(at);
                serde_json::from_value(value).expect("an event")
            };
            let first = envelope(json!({
                "event": "run_started", "runbook": if n % 2 == 0 { "flink-upgrade" } else { "dr-drill" },
                "file": "runbooks/flink-upgrade.yaml", "inputs": {"cluster": "prod"}, "by": "bench"
            }));
            let lease = store.create(&run_id, &owner, &first).await.unwrap();
            let mut events = Vec::new();
            for step in ["savepoint", "stop", "upgrade", "verify"] {
                events.push(envelope(json!({"event": "step_started", "path": step, "attempt": 1, "attempts": 1})));
                events.push(envelope(json!({
                    "event": "step_ended", "path": step, "status": "succeeded", "attempts": 1,
                    "outputs": {"said": format!("{step} done")}, "duration_ms": 1200
                })));
            }
            let status = if n % 10 == 0 { "failed" } else { "succeeded" };
            events.push(envelope(json!({"event": "run_ended", "status": status, "outputs": {}, "duration_ms": 4800})));
            store.append(&lease, 2, &events).await.unwrap();
            store.release(&lease).await.unwrap();
        }
        store.close().await.unwrap();
    });
}
