//! `--output json`: one JSON object per event on stdout, for tools.

use crate::engine::{Envelope, EventSink};
use std::io::Write;

#[derive(Default)]
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, envelope: &Envelope) {
        let Ok(line) = serde_json::to_string(envelope) else {
            return;
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe must not stop the run: the journal, not stdout, is the record.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}
