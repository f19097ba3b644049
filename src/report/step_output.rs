//! What a step printed, as `run --verbose` and `runbook logs` show it: every line prefixed
//! by its step, `|` for stdout and `!` for stderr, so that the output of steps running at
//! once stays apart and `grep '^build |'` finds one step's.

/// The lines of one [`crate::engine::RunEvent::StepOutput`], without a final newline.
pub fn prefixed(path: &str, stdout: &str, stderr: &str, cut_bytes: u64) -> String {
    let mut lines = Vec::new();
    if cut_bytes > 0 {
        lines.push(format!(
            "{path} | [{cut_bytes} earlier bytes not kept: the journal keeps the end of each stream]"
        ));
    }
    lines.extend(stdout.lines().map(|line| format!("{path} | {line}")));
    lines.extend(stderr.lines().map(|line| format!("{path} ! {line}")));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_every_line_with_its_step_and_stream() {
        assert_eq!(
            prefixed("build", "one\ntwo\n", "oops\n", 0),
            "build | one\nbuild | two\nbuild ! oops"
        );
        assert!(prefixed("b", "x", "", 5).starts_with("b | [5 earlier bytes"));
    }
}
