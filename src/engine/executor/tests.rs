//! The scheduler in-process: runbooks of `sleep` and `assert` steps run without a journal,
//! their events collected, so the order, the limit on steps at once,
//! the fate of what needs a failed step and `finally` are checked without a process or a
//! store.

use super::*;
use std::path::Path;

struct Collect(Mutex<Vec<RunEvent>>);

impl EventSink for Collect {
    fn emit(&self, envelope: &Envelope) {
        self.0.lock().unwrap().push(envelope.event.clone());
    }
}

/// Runs a runbook given as text; returns how it ended and every event, in order.
async fn run_text(text: &str, max_parallel: Option<usize>) -> (RunOutcome, Vec<RunEvent>) {
    let root = Path::new("/runbooks/scheduled.yaml");
    let sources = HashMap::from([(root.to_owned(), text.to_owned())]);
    let validation = crate::runbook::validate::validate_stored(root, &sources);
    assert!(validation.is_valid(), "{:?}", validation.problems);
    let config = RunConfig {
        run_id: "scheduled".to_owned(),
        inputs: Map::new(),
        secrets: HashMap::new(),
        max_parallel,
        interrupt: CancellationToken::new(),
        journal: Arc::new(Journal::none()),
        prior: Vec::new(),
        resumed_by: None,
        store: None,
        secret_key: None,
        processes: Default::default(),
        window_until: None,
        taken_up_at: crate::event::timestamp::now(),
    };
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let outcome = run(Arc::new(validation.bundle), config, sink.clone()).await;
    let events = sink.0.lock().unwrap().clone();
    (outcome, events)
}

/// `started:x` and `ended:x:status` for each step event, in order.
fn timeline(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            RunEvent::StepStarted { path, .. } => Some(format!("started:{path}")),
            RunEvent::StepEnded { path, status, .. } => {
                Some(format!("ended:{path}:{}", status.name()))
            }
            _ => None,
        })
        .collect()
}

fn position(timeline: &[String], entry: &str) -> usize {
    timeline
        .iter()
        .position(|e| e == entry)
        .unwrap_or_else(|| panic!("no `{entry}` in {timeline:?}"))
}

#[tokio::test]
async fn a_step_starts_once_what_it_needs_has_ended_and_an_independent_one_at_once() {
    let (outcome, events) = run_text(
        "version: 1
name: order
steps:
  - id: first
    sleep: 100ms
  - id: second
    sleep: 10ms
  - id: aside
    needs: []
    sleep: 10ms
",
        None,
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
    let timeline = timeline(&events);
    // `second` needs `first` (the one before it); `aside` needs nothing.
    assert!(position(&timeline, "ended:first:succeeded") < position(&timeline, "started:second"));
    assert!(position(&timeline, "started:aside") < position(&timeline, "ended:first:succeeded"));
}

#[tokio::test]
async fn max_parallel_bounds_the_steps_running_at_once() {
    let text = "version: 1
name: fan
steps:
  - { id: a, needs: [], sleep: 30ms }
  - { id: b, needs: [], sleep: 30ms }
  - { id: c, needs: [], sleep: 30ms }
  - { id: d, needs: [], sleep: 30ms }
";
    let most_at_once = |events: &[RunEvent]| {
        let (mut now, mut most) = (0i32, 0i32);
        for entry in timeline(events) {
            now += if entry.starts_with("started:") { 1 } else { -1 };
            most = most.max(now);
        }
        most
    };
    let (outcome, events) = run_text(text, Some(2)).await;
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(most_at_once(&events), 2);
    let (_, events) = run_text(text, None).await;
    assert_eq!(most_at_once(&events), 4);
}

#[tokio::test]
async fn what_needs_a_failed_step_never_starts_and_finally_still_runs() {
    let (outcome, events) = run_text(
        "version: 1
name: failing
steps:
  - id: check
    assert: { that: 'false', message: no }
  - id: after
    sleep: 10ms
  - id: aside
    needs: []
    sleep: 10ms
finally:
  - id: cleanup
    sleep: 10ms
",
        None,
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Failed);
    let timeline = timeline(&events);
    assert!(
        timeline.contains(&"ended:check:failed".to_owned()),
        "{timeline:?}"
    );
    // What needs a failed step never starts.
    assert!(
        !timeline.iter().any(|e| e.contains(":after")),
        "{timeline:?}"
    );
    assert!(
        timeline.contains(&"ended:aside:succeeded".to_owned()),
        "{timeline:?}"
    );
    // `finally` starts once everything in `steps` has ended.
    let cleanup = position(&timeline, "started:cleanup");
    assert!(position(&timeline, "ended:aside:succeeded") < cleanup);
    assert!(position(&timeline, "ended:check:failed") < cleanup);
    assert!(timeline.contains(&"ended:cleanup:succeeded".to_owned()));
}

/// Steps that ended alike share one context entry, and steps that start together one
/// context: what a later step reads must still be each step's own end, and a context made
/// before a step ended must not be read after it.
#[tokio::test]
async fn shared_context_entries_read_as_each_steps_own_end() {
    let (outcome, events) = run_text(
        r#"version: 1
name: shared
steps:
  - { id: a, needs: [], assert: { that: "true" } }
  - { id: b, needs: [], assert: { that: "true" } }
  - { id: c, needs: [], when: "false", assert: { that: "true" } }
  - id: d
    needs: [a, b, c]
    when: '.steps.a.status == "succeeded" and .steps.c.status == "skipped"'
    assert:
      that: >-
        .steps.a == .steps.b and .steps.a.outputs == {} and .steps.a.items == []
        and .steps.a.attempts == 1 and .steps.a.via == "action"
        and .steps.c.outputs == null and .steps.c.via == null
  - id: e
    needs: [d]
    assert: { that: '.steps.d.status == "succeeded"' }
"#,
        None,
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
    let line = timeline(&events);
    assert!(line.contains(&"ended:d:succeeded".to_owned()), "{line:?}");
    assert!(line.contains(&"ended:e:succeeded".to_owned()), "{line:?}");
}

/// Runbooks make idempotency keys of a step's key (a savepoint resource's name, the id of a
/// restarted Flink job), which a resume by a newer engine must find again, so it never
/// changes: the first 16 bytes of SHA-256 over the run id, a zero byte and the step's path,
/// in lower-case hex.
#[test]
fn a_step_key_is_the_first_half_of_its_digest_in_lower_case_hex() {
    assert_eq!(
        step_key("20261205T212838Z-4521ca", "restart[0]"),
        "66203f8a854fb2b15a6a6b30a2c218b6"
    );
}
