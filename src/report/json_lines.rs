//! `--output json`: one JSON object per event on stdout, for tools.

use crate::event::{Envelope, EventSink, RunEvent};
use serde_json::Value;
use std::io::Write;

#[derive(Default)]
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, envelope: &Envelope) {
        // The runbook sources belong in the journal, not in every consumer's stream: keep
        // their paths and hashes, drop their text.
        let line = match &envelope.event {
            RunEvent::RunStarted { sources, .. } if !sources.is_empty() => {
                let mut value = match serde_json::to_value(envelope) {
                    Ok(value) => value,
                    Err(_) => return,
                };
                if let Some(Value::Array(sources)) = value.get_mut("sources") {
                    for source in sources {
                        if let Some(source) = source.as_object_mut() {
                            source.remove("text");
                        }
                    }
                }
                serde_json::to_string(&value)
            }
            _ => serde_json::to_string(envelope),
        };
        let Ok(line) = line else {
            return;
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe must not stop the run: the journal, not stdout, is the record.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}
