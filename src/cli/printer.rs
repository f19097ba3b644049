//! All output goes through here: results to stdout, diagnostics and notes to stderr.

use crate::report::symbols::Symbols;
use crate::runbook::diagnostic::Diagnostic;
use miette::{GraphicalReportHandler, GraphicalTheme};
use std::io::{IsTerminal, Write};

pub struct Printer {
    color: bool,
    width: usize,
    /// Whether stderr is a terminal: a person reads it, not a script.
    terminal: bool,
}

impl Default for Printer {
    fn default() -> Self {
        Self::new()
    }
}

impl Printer {
    pub fn new() -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let color = stderr_is_terminal && std::env::var_os("NO_COLOR").is_none();
        let width = if stderr_is_terminal {
            terminal_width().unwrap_or(100)
        } else {
            100
        };
        Printer {
            color,
            width,
            terminal: stderr_is_terminal,
        }
    }

    /// Writes a result to stdout. A closed pipe (`| head`) is not an error worth reporting.
    pub fn out(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// Writes an error to stderr. Like everything on stderr, it is lost rather than a panic
    /// when the terminal is gone (a dropped SSH session): the run must still end cleanly.
    pub fn error(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "error: {message}");
    }

    /// A note for a person only: written when stderr is a terminal, left out in scripts and
    /// logs, where silence means success.
    pub fn note_on_terminal(&self, message: &str) {
        if self.terminal {
            self.note(message);
        }
    }

    pub fn note(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }

    /// Renders diagnostics with their snippets; plain Unicode without color off a terminal,
    /// so logs and snapshots read the same everywhere.
    pub fn diagnostics(&self, problems: &[Diagnostic]) {
        let theme = match (self.color, Symbols::from_env().unicode) {
            (true, true) => GraphicalTheme::unicode(),
            (false, true) => GraphicalTheme::unicode_nocolor(),
            (true, false) => GraphicalTheme::ascii(),
            (false, false) => GraphicalTheme::none(),
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(self.width)
            .with_context_lines(1);
        let mut text = String::new();
        for problem in problems {
            let rendered = problem.to_miette();
            if handler.render_report(&mut text, &rendered).is_err() {
                text.push_str(&format!("error: {}\n", problem.message));
            }
            if !text.ends_with('\n') {
                text.push('\n');
            }
            // A blank line between problems, so each reads as its own block.
            text.push('\n');
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
    }
}

fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.parse().ok()
}
