//! Events out of the executor: to the sink and the journal, with secrets masked and
//! sealed, and what the journal holds of a step.

use super::*;

impl Run {
    /// Records an event: it is folded into the state, queued for the journal in the same
    /// order, and shown. Await the result where later work must not start before the event
    /// is durable.
    pub(super) fn emit(&self, event: RunEvent) -> Durable {
        self.emit_with(event, true)
    }

    /// Records an event that nothing waits for on disk: it shares the next commit.
    pub(super) fn emit_soon(&self, event: RunEvent) -> Durable {
        self.emit_with(event, false)
    }

    /// Every event is masked before anything sees it: the journal, the terminal and the
    /// run's own state get the same masked event. Values that later steps may read are put
    /// back in clear in the state only, and sealed in the event when the run has a key.
    pub(super) fn emit_with(&self, mut event: RunEvent, urgent: bool) -> Durable {
        let revealed = event.redact(&self.redactor);
        let revealed = if revealed.is_empty() {
            None
        } else {
            let masked = masked_names(&revealed, &event);
            event.sealed_slot().map(|(path, slot)| {
                let ciphertext = self.run_key.as_ref().and_then(|k| k.seal(path, &revealed));
                *slot = Some(Sealed { masked, ciphertext });
                (path.to_owned(), revealed)
            })
        };
        let envelope = self.envelope(event);
        let durable = {
            let mut state = self.state.lock().expect("state lock");
            state.apply_at(&envelope.event, &envelope.at);
            if let Some((path, revealed)) = revealed {
                state.reveal(&path, revealed);
            }
            if urgent {
                self.journal.record(envelope.clone())
            } else {
                self.journal.record_soon(envelope.clone())
            }
        };
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.sink.emit(&envelope);
        durable
    }

    /// Why the run stopped when its journal broke, naming the steps whose end was not
    /// written: they ended in this process, but a resume runs them again. Forgets those ends
    /// in the state, so that the summary shows them as not ended.
    pub(super) fn unrecorded_reason(&self) -> String {
        let unwritten = self.journal.unwritten();
        let forgotten = self
            .state
            .lock()
            .expect("state lock")
            .forget_unrecorded_ends(&unwritten);
        let reason = "the journal could not be written".to_owned();
        match forgotten.len() {
            0 => reason,
            1 => format!(
                "{reason}; the end of {} was not recorded: resume runs it again",
                forgotten[0]
            ),
            n => {
                const SHOWN: usize = 5;
                let mut names = forgotten[..n.min(SHOWN)].join(", ");
                if n > SHOWN {
                    names.push_str(&format!(" and {} more", n - SHOWN));
                }
                format!("{reason}; the ends of {names} were not recorded: resume runs them again")
            }
        }
    }

    /// The event as it leaves the engine: this run's, stamped now.
    pub(super) fn envelope(&self, event: RunEvent) -> Envelope {
        Envelope {
            run_id: self.run_id.clone(),
            at: crate::event::timestamp::now(),
            event,
        }
    }

    /// Records an event and shows it only once it is durable (or not at all).
    pub(super) async fn emit_durable(&self, mut event: RunEvent) -> Result<(), Arc<StoreError>> {
        // The run's end carries nothing a later step reads: masked is all it needs.
        let _ = event.redact(&self.redactor);
        let envelope = self.envelope(event);
        let durable = {
            let mut state = self.state.lock().expect("state lock");
            state.apply_at(&envelope.event, &envelope.at);
            self.journal.record(envelope.clone())
        };
        durable.await?;
        self.sink.emit(&envelope);
        Ok(())
    }

    /// How a step ended in the journal this run started from, if it ended for good: a
    /// cancelled step runs again, and so does a `finally` step that ran for a park.
    pub(super) fn recorded_end(&self, path: &str, finally: bool) -> Option<StepStatus> {
        let state = self.state.lock().expect("state lock");
        let record = state.steps.get(path)?;
        match record.status? {
            StepStatus::Cancelled => None,
            _ if finally && record.segment != state.run.parks => None,
            status => Some(status),
        }
    }

    /// The approval steps the run waits for: asked and not ended, from the journal's own
    /// record (each approval stops waiting in memory as the run parks, before it ends).
    pub(super) fn waiting_paths(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("state lock")
            .steps
            .iter()
            .filter(|(_, record)| {
                record.approval_requested_at().is_some() && record.status.is_none()
            })
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// The first value withheld from this process (see [`StopReason::Withheld`]) that one
    /// of `texts` reads, as `steps.a.outputs.token`, with why it is withheld. Templates and
    /// jq expressions are both looked at in every text: a text that is not one of them
    /// names nothing.
    pub(super) fn withheld_read<'t>(
        &self,
        scope: &Scope<'_>,
        texts: impl Iterator<Item = &'t str>,
    ) -> Option<(String, OpenError)> {
        if !self.any_withheld {
            return None;
        }
        let withheld = self
            .state
            .lock()
            .expect("state lock")
            .withheld_paths(&scope.prefix);
        if withheld.is_empty() {
            return None;
        }
        for text in texts {
            let mut references = jq::references(text, jq::Root::Context);
            references.extend(jq::references(text, jq::Root::Result));
            if text.contains("{{") {
                references.extend(template::check_template(text).unwrap_or_default());
            }
            for reference in references {
                let read = &reference.path;
                for (path, reason) in &withheld {
                    let n = read.len().min(path.len());
                    if read[..n] == path[..n] {
                        return Some((crate::template::reference::dotted(path), reason.clone()));
                    }
                }
            }
        }
        None
    }

    /// Stops a step that would read a withheld value. Without the key (or with another one)
    /// the run is left interrupted, for a resume with the key; a value that was never kept
    /// fails the step, since no resume can bring it back.
    pub(super) async fn refuse_withheld(
        &self,
        path: &str,
        started: Instant,
        read: String,
        reason: OpenError,
    ) -> StepStatus {
        let message = format!(
            "step `{path}` reads `{read}`, which carried a secret and is kept masked in the journal: {reason}"
        );
        if reason == OpenError::NotKept {
            return self
                .end(
                    path,
                    None,
                    started,
                    Ending::without_outputs(StepStatus::Failed, 0, Some(message)),
                )
                .await;
        }
        self.withheld_reason
            .lock()
            .expect("withheld lock")
            .get_or_insert(message);
        self.stop_because(StopReason::Withheld);
        self.halt.cancel();
        StepStatus::Cancelled
    }

    /// Records why the run stops early; the first reason wins.
    pub(super) fn stop_because(&self, reason: StopReason) {
        self.stop.lock().expect("stop lock").get_or_insert(reason);
    }

    pub(super) fn fail_run(&self) {
        *self.failed.lock().expect("failed lock") = true;
    }

    pub(super) fn run_failed(&self) -> bool {
        *self.failed.lock().expect("failed lock")
    }
}

/// The values masking changed in an event: `outputs.<name>` for each output, `item`, `items`.
fn masked_names(revealed: &Revealed, event: &RunEvent) -> Vec<String> {
    let mut names = Vec::new();
    for (field, real) in revealed {
        match (field.as_str(), real, event) {
            ("outputs", Value::Object(real), RunEvent::StepEnded { outputs, .. }) => {
                for (name, value) in real {
                    if outputs.get(name) != Some(value) {
                        names.push(format!("outputs.{name}"));
                    }
                }
            }
            _ => names.push(field.clone()),
        }
    }
    names
}
