//! What the notifier knows of each run it follows: the events it has read, and the clocks
//! that may still ring (a window closing, a lock waited for). Pure: the notifier feeds it
//! runs and events, and asks it what to send.

use super::{Notification, NotifyEvent, Webhook};
use crate::event::{Envelope, RunEvent, RunStatus};
use crate::store::RunSummary;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One run as the notifier follows it.
#[derive(Debug, Default)]
struct Followed {
    runbook: String,
    /// The store's `updated_at` when its events were last read.
    updated_at: String,
    /// Events up to this number have been read.
    seen_seq: u64,
    /// Events at or before this moment are not notified: the run was already old when
    /// serve started.
    quiet_until: Option<Timestamp>,
    over: bool,
    window_until: Option<Timestamp>,
    /// Locks waited for now, by `(lock, step)`: since when.
    lock_waits: BTreeMap<(String, String), Timestamp>,
    /// The steps that failed, with their error (masked by the engine), for `run_failed`.
    failed_steps: BTreeMap<String, String>,
}

/// Every run followed, and what was already sent for the clocks (per webhook).
#[derive(Debug)]
pub struct Follower {
    runs: HashMap<String, Followed>,
    /// Runs last changed before this when first seen are old news.
    started: Timestamp,
    /// The link base: `https://runbook.example.com`.
    link_base: Option<String>,
    rung: HashSet<(usize, String)>,
}

/// How far back serve notifies what happened before it started: a restart does not lose
/// what happened meanwhile, and an old store does not flood the receivers.
const LOOKBACK: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

impl Follower {
    pub fn new(now: Timestamp, link_base: Option<String>) -> Follower {
        Follower {
            runs: HashMap::new(),
            started: now,
            link_base: link_base.map(|l| l.trim_end_matches('/').to_owned()),
            rung: HashSet::new(),
        }
    }

    /// Whether the run changed since its events were last read.
    pub fn changed(&mut self, run: &RunSummary) -> bool {
        match self.runs.get_mut(&run.id) {
            Some(followed) => followed.updated_at != run.updated_at,
            None => {
                let updated = run.updated_at.parse::<Timestamp>().ok();
                let old = updated.is_some_and(|at| at < self.started - LOOKBACK);
                if old {
                    // Old news: remember it, and read it only once it changes again.
                    self.runs.insert(
                        run.id.clone(),
                        Followed {
                            runbook: run.runbook.clone(),
                            updated_at: run.updated_at.clone(),
                            quiet_until: updated,
                            over: run.status.is_over(),
                            ..Followed::default()
                        },
                    );
                    false
                } else {
                    true
                }
            }
        }
    }

    /// Reads a run's events (all of them, as the store gives them) and answers the
    /// notifications of those not read before.
    pub fn read(&mut self, run: &RunSummary, events: &[Envelope]) -> Vec<Notification> {
        let link = self
            .link_base
            .as_ref()
            .map(|base| format!("{base}/runs/{}", run.id));
        let followed = self.runs.entry(run.id.clone()).or_default();
        followed.updated_at = run.updated_at.clone();
        followed.runbook = run.runbook.clone();
        let mut out = Vec::new();
        let mut started_by: Option<String> = None;
        for (index, envelope) in events.iter().enumerate() {
            // Events are numbered from 1, in order, without gaps.
            let seq = index as u64 + 1;
            if let RunEvent::RunStarted { by, .. } = &envelope.event {
                started_by = by.clone();
            }
            if seq <= followed.seen_seq {
                continue;
            }
            followed.seen_seq = seq;
            let at = envelope.at.parse::<Timestamp>().ok();
            let quiet = matches!((followed.quiet_until, at), (Some(q), Some(a)) if a <= q);
            let mut notify = |event: NotifyEvent, text: String, fields: Map<String, Value>| {
                if !quiet {
                    out.push(Notification {
                        event,
                        id: format!("{}#{seq}", run.id),
                        run_id: run.id.clone(),
                        runbook: run.runbook.clone(),
                        at: envelope.at.clone(),
                        text,
                        fields,
                    });
                }
            };
            let mut fields = Map::new();
            if let Some(link) = &link {
                fields.insert("link".into(), link.clone().into());
            }
            match &envelope.event {
                RunEvent::RunStarted { by, .. } => {
                    followed.over = false;
                    if let Some(by) = by {
                        fields.insert("started_by".into(), by.clone().into());
                    }
                    notify(
                        NotifyEvent::RunStarted,
                        format!(
                            "Run {} of {} started{}",
                            run.id,
                            run.runbook,
                            by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default()
                        ),
                        fields,
                    );
                }
                RunEvent::ApprovalRequested {
                    path,
                    prompt,
                    needed,
                    distinct_from_starter,
                    ..
                } => {
                    fields.insert("step".into(), path.clone().into());
                    fields.insert("prompt".into(), prompt.clone().into());
                    fields.insert("needed".into(), needed.unwrap_or(1).into());
                    fields.insert(
                        "distinct_from_starter".into(),
                        (*distinct_from_starter).into(),
                    );
                    if let Some(by) = &started_by {
                        fields.insert("started_by".into(), by.clone().into());
                    }
                    let answer = match &link {
                        Some(link) => format!("approve or reject at {link}"),
                        None => format!("answer with: runbook approve {} {path}", run.id),
                    };
                    notify(
                        NotifyEvent::ApprovalWaiting,
                        format!(
                            "Run {} of {} waits for approval of `{path}`: {prompt} ({answer})",
                            run.id, run.runbook
                        ),
                        fields,
                    );
                }
                RunEvent::RunEnded { status, reason, .. } => {
                    followed.over = status.is_over();
                    if followed.over {
                        followed.lock_waits.clear();
                    }
                    let kind = match status {
                        RunStatus::Failed => NotifyEvent::RunFailed,
                        RunStatus::Succeeded => NotifyEvent::RunSucceeded,
                        _ => continue,
                    };
                    fields.insert("status".into(), status.name().into());
                    if let Some(reason) = reason {
                        fields.insert("reason".into(), reason.clone().into());
                    }
                    let failed: Vec<Value> = followed
                        .failed_steps
                        .iter()
                        .map(|(step, error)| json!({ "step": step, "error": error }))
                        .collect();
                    if kind == NotifyEvent::RunFailed && !failed.is_empty() {
                        fields.insert("failed_steps".into(), failed.into());
                    }
                    notify(
                        kind,
                        format!(
                            "Run {} of {} {}{}",
                            run.id,
                            run.runbook,
                            status.name(),
                            reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        fields,
                    );
                }
                RunEvent::RunResumed { .. } => followed.over = false,
                RunEvent::StepEnded {
                    path,
                    status,
                    error,
                    ..
                } => {
                    if *status == crate::event::StepStatus::Failed {
                        followed
                            .failed_steps
                            .insert(path.clone(), error.clone().unwrap_or_default());
                    } else {
                        followed.failed_steps.remove(path);
                    }
                }
                RunEvent::WindowOpened { until } => {
                    followed.window_until = until.parse().ok();
                }
                RunEvent::LockWaiting(waiting) => {
                    if let Some(at) = at {
                        followed
                            .lock_waits
                            .entry((waiting.lock.clone(), waiting.step.clone()))
                            .or_insert(at);
                    }
                }
                RunEvent::LockAcquired(acquired) => {
                    followed
                        .lock_waits
                        .remove(&(acquired.lock.clone(), acquired.step.clone()));
                }
                _ => {}
            }
        }
        out
    }

    /// The clocks that ring at `now` for the webhook numbered `number`, each once.
    pub fn ringing(
        &mut self,
        now: Timestamp,
        number: usize,
        webhook: &Webhook,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for (run_id, followed) in &self.runs {
            if followed.over {
                continue;
            }
            let mut fields = Map::new();
            if let Some(base) = &self.link_base {
                fields.insert("link".into(), format!("{base}/runs/{run_id}").into());
            }
            if webhook.wants(NotifyEvent::WindowClosing)
                && let Some(until) = followed.window_until
                && now < until
                && until.duration_since(now) <= signed(webhook.window_closing_before)
            {
                let id = format!("{run_id}#window_closing#{until}");
                if self.rung.insert((number, id.clone())) {
                    let left = until.duration_since(now).as_secs();
                    let mut fields = fields.clone();
                    fields.insert("window_until".into(), until.to_string().into());
                    fields.insert("seconds_left".into(), json!(left));
                    out.push(Notification {
                        event: NotifyEvent::WindowClosing,
                        id,
                        run_id: run_id.clone(),
                        runbook: followed.runbook.clone(),
                        at: now.to_string(),
                        text: format!(
                            "The window of run {run_id} of {} closes at {until} ({} left) and the run is not over",
                            followed.runbook,
                            crate::runbook::Duration(std::time::Duration::from_secs(left.max(0) as u64))
                        ),
                        fields,
                    });
                }
            }
            if !webhook.wants(NotifyEvent::LockWaited) {
                continue;
            }
            for ((lock, step), since) in &followed.lock_waits {
                if now.duration_since(*since) < signed(webhook.lock_wait_over) {
                    continue;
                }
                let id = format!("{run_id}#lock_waited#{step}#{lock}#{since}");
                if !self.rung.insert((number, id.clone())) {
                    continue;
                }
                let waited = now.duration_since(*since).as_secs().max(0) as u64;
                let mut fields = fields.clone();
                fields.insert("lock".into(), lock.clone().into());
                if !step.is_empty() {
                    fields.insert("step".into(), step.clone().into());
                }
                fields.insert("waiting_since".into(), since.to_string().into());
                fields.insert("seconds_waited".into(), json!(waited));
                out.push(Notification {
                    event: NotifyEvent::LockWaited,
                    id,
                    run_id: run_id.clone(),
                    runbook: followed.runbook.clone(),
                    at: now.to_string(),
                    text: format!(
                        "Run {run_id} of {}{} has waited {} for lock `{lock}`",
                        followed.runbook,
                        if step.is_empty() {
                            String::new()
                        } else {
                            format!(" (step {step})")
                        },
                        crate::runbook::Duration(std::time::Duration::from_secs(waited))
                    ),
                    fields,
                });
            }
        }
        out
    }
}

fn signed(duration: std::time::Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LockAcquired, LockHolding, LockWaiting};
    use crate::notify::{WebhookConfig, WebhookFormat};

    fn summary(updated_at: &str) -> RunSummary {
        RunSummary {
            id: "r1".into(),
            runbook: "upgrade".into(),
            file: "upgrade.yaml".into(),
            status: RunStatus::Running,
            created_at: "2026-12-03T06:00:00Z".into(),
            updated_at: updated_at.into(),
            ended_at: None,
            duration_ms: None,
            owner: None,
            chain_head: String::new(),
        }
    }

    fn at(time: &str, event: RunEvent) -> Envelope {
        Envelope {
            run_id: "r1".into(),
            at: time.into(),
            event,
        }
    }

    fn webhook() -> Webhook {
        let config = WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            events: None,
            format: WebhookFormat::Json,
            headers: Default::default(),
            lock_wait_over: crate::runbook::Duration::parse("10m"),
            window_closing_before: crate::runbook::Duration::parse("15m"),
        };
        Webhook::resolve(&config, 0).unwrap()
    }

    fn now(time: &str) -> Timestamp {
        time.parse().unwrap()
    }

    #[test]
    fn a_closing_window_and_a_long_lock_wait_ring_once_each() {
        let mut follower = Follower::new(
            now("2026-12-03T06:00:00Z"),
            Some("https://rb.example/".into()),
        );
        let run = summary("2026-12-03T06:00:01Z");
        let holder = LockHolding {
            run_id: "other".into(),
            runbook: "upgrade".into(),
            step: String::new(),
            host: "h".into(),
            pid: 1,
            since: "2026-12-03T05:00:00Z".into(),
            expires_at: None,
        };
        let events = vec![
            at(
                "2026-12-03T06:00:00Z",
                RunEvent::RunStarted {
                    runbook: "upgrade".into(),
                    file: "upgrade.yaml".into(),
                    inputs: json!({}),
                    sources: Vec::new(),
                    origin: None,
                    by: Some("ana".into()),
                },
            ),
            at(
                "2026-12-03T06:00:00Z",
                RunEvent::WindowOpened {
                    until: "2026-12-03T07:00:00Z".into(),
                },
            ),
            at(
                "2026-12-03T06:00:01Z",
                RunEvent::LockWaiting(LockWaiting {
                    lock: "cluster".into(),
                    step: "cancel".into(),
                    held_by: holder,
                }),
            ),
        ];
        assert!(follower.changed(&run));
        let read = follower.read(&run, &events);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].event, NotifyEvent::RunStarted);
        assert_eq!(read[0].fields["link"], "https://rb.example/runs/r1");
        // Reading again gives nothing new.
        assert!(follower.read(&run, &events).is_empty());

        let hook = webhook();
        assert!(
            follower
                .ringing(now("2026-12-03T06:05:00Z"), 0, &hook)
                .is_empty()
        );
        let rung = follower.ringing(now("2026-12-03T06:11:00Z"), 0, &hook);
        assert_eq!(rung.len(), 1);
        assert_eq!(rung[0].event, NotifyEvent::LockWaited);
        assert_eq!(rung[0].fields["lock"], "cluster");
        assert_eq!(rung[0].fields["step"], "cancel");
        let rung = follower.ringing(now("2026-12-03T06:46:00Z"), 0, &hook);
        assert_eq!(rung.len(), 1, "{rung:?}");
        assert_eq!(rung[0].event, NotifyEvent::WindowClosing);
        assert_eq!(rung[0].fields["seconds_left"], 14 * 60);
        assert!(
            follower
                .ringing(now("2026-12-03T06:50:00Z"), 0, &hook)
                .is_empty()
        );
        // Another webhook has clocks of its own.
        assert_eq!(
            follower
                .ringing(now("2026-12-03T06:50:00Z"), 1, &hook)
                .len(),
            2
        );

        // Once the lock is taken, nothing more rings for it.
        let mut more = events.clone();
        more.push(at(
            "2026-12-03T06:51:00Z",
            RunEvent::LockAcquired(LockAcquired {
                lock: "cluster".into(),
                step: "cancel".into(),
                waited_ms: 1,
            }),
        ));
        let run = summary("2026-12-03T06:51:00Z");
        assert!(follower.changed(&run));
        assert!(follower.read(&run, &more).is_empty());
        assert!(
            follower
                .ringing(now("2026-12-03T06:52:00Z"), 2, &hook)
                .len()
                == 1
        );
    }

    #[test]
    fn runs_older_than_serve_are_not_notified_until_they_change() {
        let mut follower = Follower::new(now("2026-12-03T06:00:00Z"), None);
        let old = summary("2026-12-03T05:00:00Z");
        assert!(!follower.changed(&old));
        assert!(!follower.changed(&old));
        let resumed = summary("2026-12-03T06:01:00Z");
        assert!(follower.changed(&resumed));
        let events = vec![
            at(
                "2026-12-03T05:00:00Z",
                RunEvent::RunStarted {
                    runbook: "upgrade".into(),
                    file: String::new(),
                    inputs: json!({}),
                    sources: Vec::new(),
                    origin: None,
                    by: None,
                },
            ),
            at(
                "2026-12-03T06:01:00Z",
                RunEvent::RunEnded {
                    status: RunStatus::Succeeded,
                    reason: None,
                    outputs: json!(null),
                    duration_ms: 1,
                    notices: Vec::new(),
                },
            ),
        ];
        let read = follower.read(&resumed, &events);
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read[0].event, NotifyEvent::RunSucceeded);
        assert_eq!(read[0].id, "r1#2");
    }
}
