//! The nesting bound: programs too deep for jaq's recursion are rejected before it sees them.

use std::ops::Range;

use crate::template::{MAX_NESTING, SyntaxError, char_span};

/// Reject programs whose syntax tree would be deeper than [`MAX_NESTING`] before jaq sees
/// them.
///
/// jaq's lexer, parser, compiler, evaluator and even the tree's destructor recurse once
/// per level; in a debug build each level of brackets costs about 10 KiB of stack while
/// parsing, so about 190 nested parentheses overflow a 2 MiB thread and abort the process.
/// Depth comes from brackets, but equally from flat chains: `1 + 1 + … + 1` and
/// `[1, 1, …, 1]` are left-deep trees, `. | . | … | .` a right-deep one, and `if`, `try`,
/// `reduce` or `def` nest their operands without brackets.
///
/// So this estimates the depth with a scanner of its own (jaq's lexer already recurses):
/// each bracket, `\( … )` interpolation or the top level is a frame, every operator and
/// nesting keyword in a frame counts one level, and a frame is as deep as its count plus
/// its deepest child frame. Brackets inside strings and comments do not count. The
/// estimate over-counts (`{a: 1, b: 2}` counts its comma) but never under-counts.
pub(super) fn check_nesting(src: &str) -> Result<(), SyntaxError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Open {
        Top,
        Paren,
        Bracket,
        Brace,
        Str,
        Interp,
    }
    struct Frame {
        open: Open,
        /// Operators and keywords counted directly in this frame.
        levels: usize,
        /// Depth of the deepest frame closed inside this one.
        deepest_child: usize,
    }
    impl Frame {
        fn new(open: Open) -> Self {
            Self {
                open,
                levels: 0,
                deepest_child: 0,
            }
        }
        fn depth(&self) -> usize {
            // A string frame is not a level of its own; its interpolations are.
            let own = usize::from(self.open != Open::Str);
            own + self.levels + self.deepest_child
        }
    }
    let too_deep = |at: Range<usize>| {
        SyntaxError::new(
            format!(
                "expression nested too deeply (more than {MAX_NESTING} levels of brackets, \
                 operators and keywords); split it up"
            ),
            at,
            src,
        )
    };
    let close = |stack: &mut Vec<Frame>| {
        if let Some(frame) = stack.pop()
            && let Some(parent) = stack.last_mut()
        {
            parent.deepest_child = parent.deepest_child.max(frame.depth());
        }
    };

    let mut stack = vec![Frame::new(Open::Top)];
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let top = stack.last().map_or(Open::Top, |f| f.open);
        if top == Open::Str {
            match b {
                b'\\' if bytes.get(i + 1) == Some(&b'(') => {
                    stack.push(Frame::new(Open::Interp));
                    i += 1;
                }
                b'\\' => i += 1,
                b'"' => close(&mut stack),
                _ => {}
            }
        } else {
            let mut level = false;
            match b {
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' => stack.push(Frame::new(Open::Str)),
                b'(' => stack.push(Frame::new(Open::Paren)),
                b'[' => stack.push(Frame::new(Open::Bracket)),
                b'{' => stack.push(Frame::new(Open::Brace)),
                b')' | b']' | b'}' => {
                    let closes = matches!(
                        (b, top),
                        (b')', Open::Paren | Open::Interp)
                            | (b']', Open::Bracket)
                            | (b'}', Open::Brace)
                    );
                    // An unbalanced closer is left for jaq to report with a proper message.
                    if closes {
                        close(&mut stack);
                    }
                }
                b'|' | b',' | b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<' | b'>' | b'?' => {
                    level = true;
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = i;
                    while i + 1 < bytes.len()
                        && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
                    {
                        i += 1;
                    }
                    level = matches!(
                        &src[start..=i],
                        "and"
                            | "or"
                            | "as"
                            | "if"
                            | "elif"
                            | "try"
                            | "def"
                            | "label"
                            | "reduce"
                            | "foreach"
                    );
                }
                _ => {}
            }
            if level && let Some(frame) = stack.last_mut() {
                frame.levels += 1;
            }
        }
        // What is open right now is at least this deep (closed children aside, as they are
        // alternatives rather than additions): fail at the spot where it happens.
        let open_depth: usize = stack.iter().map(|f| f.depth() - f.deepest_child).sum();
        if open_depth > MAX_NESTING {
            return Err(too_deep(char_span(src, i)));
        }
        i += 1;
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    // Levels counted after a child closed (`(…) + 1 + 1`) only add up at the end.
    if stack.last().map_or(0, Frame::depth) > MAX_NESTING {
        return Err(too_deep(0..src.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::jq::tests::run1;
    use crate::template::jq::*;
    use serde_json::json;

    #[test]
    fn deep_nesting_is_rejected_before_parsing() {
        let deep = [
            format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{}1", "[".repeat(10_000)),
            format!("1{}", " + 1".repeat(10_000)),
            format!(".{}", " | .".repeat(10_000)),
            format!("[1{}]", ", 1".repeat(10_000)),
            format!("{}1", "-".repeat(10_000)),
            format!("{}1{}", "if . then ".repeat(5_000), " end".repeat(5_000)),
            format!("{}1{}", r#""\("#.repeat(5_000), r#")""#.repeat(5_000)),
            format!("({}) + 1{}", "(1)".repeat(3), " + 1".repeat(MAX_NESTING)),
        ];
        for src in &deep {
            let errs = check(src, Root::Context).unwrap_err();
            assert!(errs[0].message.contains("nested too deeply"), "{}", errs[0]);
            assert!(compile(src).is_err());
            assert!(references(src, Root::Context).is_empty());
        }
    }

    #[test]
    fn nesting_within_the_bound_parses_compiles_and_runs() {
        // Runs on the test harness's 2 MiB thread in a debug build: the bound must leave
        // room for the real recursion of jaq's parser, compiler and evaluator.
        let n = MAX_NESTING - 1;
        let within = [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "{a:".repeat(n), "}".repeat(n)),
            format!("1{}", " + 1".repeat(n - 1)),
            format!(".{}", " | .".repeat(n - 1)),
            format!("{}1{}", "if . then ".repeat(n / 2), " end".repeat(n / 2)),
            format!("{}1", "- ".repeat(n - 1)),
        ];
        for src in &within {
            let program = compile(src).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(program.first(&json!(true), &json!({})).is_ok());
            assert!(check(src, Root::Context).is_ok());
        }
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let src = format!("\"{}\" # {}\n| length", "(".repeat(500), "[".repeat(500));
        assert_eq!(run1(&src, json!(null), json!({})), Ok(vec![json!(500)]));
    }
}
