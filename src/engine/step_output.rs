//! What a step printed: the stdout and stderr of each run of an `exec` action, kept in the
//! journal as a [`RunEvent::StepOutput`] so that `runbook logs` and `run --verbose` can show
//! it, bounded so that a chatty program cannot fill the store.

use super::redact::Redactor;
use crate::event::RunEvent;
use serde_json::Value;

/// How much of each stream the journal keeps: the last 64 KiB, where a failure usually says
/// what went wrong.
pub const KEPT_BYTES: usize = 64 * 1024;

/// The event recording what one run of an action printed, or `None` when it printed nothing
/// (or is not an action that prints: only results with `stdout`/`stderr` strings count).
///
/// Secrets are masked in the whole text before it is cut, so that a cut can never leave
/// part of a secret in clear.
pub fn step_output_event(path: &str, result: &Value, redactor: &Redactor) -> Option<RunEvent> {
    let stream = |name: &str| {
        let text = result.get(name).and_then(Value::as_str).unwrap_or_default();
        last_bytes(&redactor.text(text), KEPT_BYTES)
    };
    let (stdout, stdout_cut) = stream("stdout");
    let (stderr, stderr_cut) = stream("stderr");
    if stdout.is_empty() && stderr.is_empty() {
        return None;
    }
    Some(RunEvent::StepOutput {
        path: path.to_owned(),
        stdout,
        stderr,
        cut_bytes: (stdout_cut + stderr_cut) as u64,
    })
}

/// The last `limit` bytes of `text` (starting on a character boundary), and how many bytes
/// were left out.
fn last_bytes(text: &str, limit: usize) -> (String, usize) {
    if text.len() <= limit {
        return (text.to_owned(), 0);
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (text[start..].to_owned(), start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_last_bytes_of_each_stream_on_a_character_boundary() {
        let (kept, cut) = last_bytes("ééé", 3);
        assert_eq!((kept.as_str(), cut), ("é", 4));
        assert_eq!(last_bytes("abc", 3), ("abc".to_owned(), 0));
    }

    #[test]
    fn masks_before_cutting_and_skips_silent_results() {
        let redactor = Redactor::new(["hunter2".to_owned()]);
        let result = json!({ "stdout": "pw hunter2\n", "stderr": "" });
        let Some(RunEvent::StepOutput { stdout, stderr, .. }) =
            step_output_event("a", &result, &redactor)
        else {
            panic!("an event");
        };
        assert_eq!(stdout, "pw ***\n");
        assert_eq!(stderr, "");
        let silent = json!({ "stdout": "", "stderr": "" });
        assert!(step_output_event("a", &silent, &redactor).is_none());
        assert!(step_output_event("a", &json!({ "status": 200 }), &redactor).is_none());
    }
}
