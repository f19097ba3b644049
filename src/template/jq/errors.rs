//! jaq's load and compile errors, turned into located messages with suggestions.

use std::ops::Range;

use jaq_core::compile::Undefined;
use jaq_core::load::lex;

use super::CTX_VAR;
use super::references::BUILTINS;
use crate::template::{SyntaxError, char_span, close_enough};

/// Byte range of `part` within `src`, when `part` is a slice of it (jaq reports errors as
/// slices of the source).
pub(super) fn slice_span(src: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(src.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= src.len()).then_some(start..end)
}

/// Shorten a token for a message: a whole `( … )` block can be the "found" token.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 24;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) fn load_errors(src: &str, errs: jaq_core::load::Errors<&str, ()>) -> Vec<SyntaxError> {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_file, error) in errs {
        match error {
            Error::Lex(errs) => {
                for (expect, rest) in errs {
                    // The lexer reports the unread rest of the input; underline its first char.
                    let at = slice_span(src, rest).map_or(src.len(), |s| s.start);
                    let message = match expect {
                        lex::Expect::Delim(open) => match open {
                            "(" => "unclosed `(`: expected `)`".to_owned(),
                            "[" => "unclosed `[`: expected `]`".to_owned(),
                            "{" => "unclosed `{`: expected `}`".to_owned(),
                            _ => "unterminated string: expected `\"`".to_owned(),
                        },
                        lex::Expect::Digit => "expected a digit".to_owned(),
                        lex::Expect::Ident => "expected an identifier".to_owned(),
                        lex::Expect::Escape => "invalid escape sequence in string".to_owned(),
                        lex::Expect::Unicode => {
                            "expected 4 hexadecimal digits of a unicode code point".to_owned()
                        }
                        _ => format!("unexpected character {}", excerpt(rest)),
                    };
                    out.push(SyntaxError::new(message, char_span(src, at), src));
                }
            }
            Error::Parse(errs) => {
                for (expect, found) in errs {
                    let span = slice_span(src, found).unwrap_or(src.len()..src.len());
                    let found = if found.is_empty() {
                        "end of input".to_owned()
                    } else {
                        format!("`{}`", excerpt(found))
                    };
                    let message = format!("expected {}, found {found}", expect.as_str());
                    out.push(SyntaxError::new(message, span, src));
                }
            }
            Error::Io(errs) => {
                for (path, why) in errs {
                    let span = slice_span(src, path).unwrap_or(0..src.len());
                    let message = format!("cannot load module `{path}`: {why}");
                    out.push(SyntaxError::new(message, span, src));
                }
            }
        }
    }
    if out.is_empty() {
        out.push(SyntaxError::new("invalid jq program", 0..src.len(), src));
    }
    out
}

pub(super) fn compile_errors<'s>(
    src: &str,
    errs: impl IntoIterator<Item = (&'s str, Undefined)>,
) -> Vec<SyntaxError> {
    let mut out = Vec::new();
    for (name, undefined) in errs {
        let span = slice_span(src, name).unwrap_or(0..src.len());
        let message = match undefined {
            Undefined::Var if name == "$__loc__" => "`$__loc__` is not supported".to_owned(),
            Undefined::Var => format!("undefined variable `{name}`{}", suggest_var(name)),
            Undefined::Filter(arity) => format!(
                "undefined function `{name}/{arity}`{}",
                suggest_filter(name, arity)
            ),
            Undefined::Label => format!("undefined label `{name}`"),
            Undefined::Mod => format!("undefined module `{name}`"),
            _ => format!("undefined name `{name}`"),
        };
        out.push(SyntaxError::new(message, span, src));
    }
    out
}

fn suggest_var(name: &str) -> String {
    if strsim::damerau_levenshtein(name, CTX_VAR) <= 1 {
        format!(" (did you mean `{CTX_VAR}`?)")
    } else {
        String::new()
    }
}

fn suggest_filter(name: &str, arity: usize) -> String {
    let best = BUILTINS
        .keys()
        .filter(|(_, a)| *a == arity)
        .map(|(candidate, _)| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= close_enough(name))
        .min();
    match best {
        Some((_, candidate)) => format!(" (did you mean `{candidate}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {

    use crate::template::jq::tests::errors;
    use crate::template::jq::*;

    #[test]
    fn syntax_errors_point_at_the_offending_text() {
        assert_eq!(
            errors(".a | foo"),
            vec![("undefined function `foo/0`".to_owned(), "foo".to_owned())]
        );
        assert_eq!(
            errors("1 +"),
            vec![(
                "expected term, found end of input".to_owned(),
                String::new()
            )]
        );
        let unclosed = check("map(.a", Root::Context).unwrap_err();
        assert_eq!(unclosed[0].message, "unclosed `(`: expected `)`");
        assert_eq!(unclosed[0].span, 6..6);
        assert_eq!(
            errors(r#""a\qb""#),
            vec![(
                "invalid escape sequence in string".to_owned(),
                "q".to_owned()
            )]
        );
        assert_eq!(
            errors("if . then 1 else 2"),
            vec![("expected end, found end of input".to_owned(), String::new())]
        );
    }

    #[test]
    fn every_undefined_name_is_reported_with_a_suggestion() {
        let errs = errors(". as $a | $b + $cxt + lenght");
        let messages: Vec<&str> = errs.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "undefined variable `$b`",
                "undefined variable `$cxt` (did you mean `$ctx`?)",
                "undefined function `lenght/0` (did you mean `length`?)",
            ]
        );
        let spans: Vec<&str> = errs.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(spans, vec!["$b", "$cxt", "lenght"]);
    }
}
