//! The two embedded languages of a runbook, both evaluated over one JSON context object
//! (`inputs`, `secrets`, `item`, `index`, `steps.<id>.…`, `run.…`, `step.…`):
//!
//! - [`handlebars_template`]: Handlebars strings such as `"http://{{inputs.host}}/jobs"`,
//!   rendered strictly (an unknown name is an error) and without HTML escaping;
//!   inside exec scripts values reach the shell as environment variables ([`shell`]).
//! - [`jq`]: jq programs (via jaq), evaluated over the context, or over an action's
//!   result with the context bound to `$ctx`.
//!
//! Both sides offer a `check` that a validator runs before anything executes: it reports
//! syntax errors with byte spans and the context paths an expression reads, so a reference
//! to a missing input, step or output is caught at load time rather than mid-run.
//!
//! Rendering and evaluation are pure functions of their arguments: nothing here logs,
//! because the context holds secrets.

pub mod handlebars_template;
pub mod jq;
pub mod reference;
pub mod shell;
pub mod url_template;

use std::ops::Range;

pub use handlebars_template::{
    Escape, Partial, Piece, RenderError, Script, UnsafeScriptValue, check_script, check_template,
    render, render_partial, render_pieces, render_script, render_value, render_value_partial,
};
pub use reference::Reference;

/// How deep the syntax tree of one expression or template may be.
///
/// The parsers, compilers and evaluators of both languages recurse once per level, and a
/// stack overflow aborts the whole process (it cannot be caught). In a debug build jaq
/// overflows a 2 MiB thread at about 190 nested parentheses, Handlebars at a few hundred
/// nested blocks; 100 keeps a margin for the caller's own frames. Real runbook expressions
/// nest a handful of levels. Deeper input is rejected with a [`SyntaxError`] by a cheap
/// scan before any parser sees it (see `jq::nesting::check_nesting` and
/// `handlebars_template::scan::scan_tags` for what counts as a level).
pub const MAX_NESTING: usize = 100;

/// A compile error inside an expression or template, located in its source string.
///
/// The span is a byte range within that source (not within the YAML file): the caller
/// adds the offset at which the string starts, so an editor can underline the exact part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// What is wrong, phrased for the runbook author.
    pub message: String,
    /// Byte range in the source string; best effort, the whole string when unknown.
    pub span: Range<usize>,
}

impl SyntaxError {
    /// Build an error, clamping the span to the source so slicing with it never panics.
    pub(crate) fn new(message: impl Into<String>, span: Range<usize>, src: &str) -> Self {
        Self {
            message: message.into(),
            span: clamp_span(span, src),
        }
    }
}

/// Clamp a byte range to `src` and to char boundaries, so `&src[span]` is always valid.
pub(crate) fn clamp_span(span: Range<usize>, src: &str) -> Range<usize> {
    let mut start = span.start.min(src.len());
    let mut end = span.end.clamp(start, src.len());
    while !src.is_char_boundary(start) {
        start -= 1;
    }
    while !src.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// The span of the character starting at byte `at` (empty at the end of the string):
/// what a parser error that only knows a position underlines.
pub(crate) fn char_span(src: &str, at: usize) -> Range<usize> {
    let at = clamp_span(at..at, src).start;
    let len = src[at..].chars().next().map_or(0, char::len_utf8);
    at..at + len
}

/// How many edits a misspelling may be from a name we suggest instead: short names are
/// easily near an unrelated one (`foo` is two edits from `not`).
pub(crate) fn close_enough(name: &str) -> usize {
    (name.chars().count() / 3).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_clamped_to_char_boundaries_inside_the_source() {
        let src = "aé💣";
        assert_eq!(clamp_span(2..4, src), 1..7);
        assert_eq!(clamp_span(5..99, src), 3..7);
        assert_eq!(char_span(src, 1), 1..3);
        assert_eq!(char_span(src, 4), 3..7);
        assert_eq!(char_span(src, 7), 7..7);
        assert_eq!(char_span(src, 100), 7..7);
    }

    #[test]
    fn suggestions_need_longer_names_for_more_edits() {
        assert_eq!(close_enough("foo"), 1);
        assert_eq!(close_enough("lenght"), 2);
    }

    #[test]
    fn compiled_programs_and_errors_can_cross_threads() {
        // The engine compiles once at load time and evaluates on worker threads.
        fn shareable<T: Send + Sync>() {}
        shareable::<jq::Program>();
        shareable::<SyntaxError>();
        shareable::<RenderError>();
        shareable::<Reference>();
    }
}
