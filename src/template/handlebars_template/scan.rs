//! A quick pass over a template's tags: spans for errors, and the nesting bound.

use std::ops::Range;

use handlebars::TemplateErrorReason;

use super::parse::line_col_offset;
use crate::template::{MAX_NESTING, SyntaxError, char_span, clamp_span};

/// What a quick pass over a template's tags found, before Handlebars parses it.
pub(super) struct Scan {
    /// Byte ranges of the complete `{{…}}` tags.
    pub(super) tags: Vec<Range<usize>>,
    /// A `{{` without its `}}`.
    unclosed_tag: Option<usize>,
    /// `{{#…}}` tags never closed, outermost first.
    open_blocks: Vec<Range<usize>>,
    /// A `{{/…}}` with no block open.
    stray_close: Option<Range<usize>>,
    /// An `{{else}}` or `{{^}}` with no block open.
    stray_else: Option<Range<usize>>,
}

impl Scan {
    /// A parse error in the author's terms: the scan explains the common mistakes
    /// (unclosed tags and blocks, stray closers); otherwise the position Handlebars gave.
    pub(super) fn explain(&self, src: &str, error: &handlebars::TemplateError) -> SyntaxError {
        if let Some(at) = self.unclosed_tag {
            let message = if src[at..].contains("}}") {
                "unterminated string inside `{{…}}`"
            } else {
                "unclosed `{{`: expected `}}`"
            };
            return SyntaxError::new(message, at..at + 2, src);
        }
        if let Some(tag) = &self.stray_close {
            let message = format!("`{}` closes a block that is not open", &src[tag.clone()]);
            return SyntaxError::new(message, tag.clone(), src);
        }
        if let Some(tag) = &self.stray_else {
            let message = format!("`{}` outside a block", &src[tag.clone()]);
            return SyntaxError::new(message, tag.clone(), src);
        }
        let at = error
            .pos()
            .map(|(line, column)| line_col_offset(src, line, column));
        if let TemplateErrorReason::MismatchingClosedHelper(..) = error.reason() {
            let span = at
                .and_then(|at| self.tags.iter().find(|tag| tag.start == at).cloned())
                .unwrap_or(0..src.len());
            return SyntaxError::new(error.reason().to_string(), span, src);
        }
        if let Some(block) = self.open_blocks.last() {
            let message = format!("`{}` is never closed", &src[block.clone()]);
            return SyntaxError::new(message, block.clone(), src);
        }
        match at {
            Some(at) => {
                let near: String = src[at..].chars().take(12).collect();
                let message = if near.is_empty() {
                    "invalid Handlebars syntax at the end of the template".to_owned()
                } else {
                    format!("invalid Handlebars syntax at `{near}`")
                };
                SyntaxError::new(message, char_span(src, at), src)
            }
            None => SyntaxError::new(error.reason().to_string(), 0..src.len(), src),
        }
    }
}

/// Find the `{{…}}` tags of a template (for spans and error messages) and reject nesting
/// deeper than [`MAX_NESTING`] before Handlebars parses it.
///
/// Handlebars' parser recurses into every nested subexpression and its renderer into
/// every nested block or `{{else if}}` link; a few hundred levels overflow a 2 MiB thread
/// in a debug build. Depth here is open blocks plus `{{else …}}` links of the open blocks
/// plus brackets inside a tag.
pub(super) fn scan_tags(src: &str) -> Result<Scan, SyntaxError> {
    let too_deep = |at: Range<usize>| {
        SyntaxError::new(
            format!("template nested deeper than {MAX_NESTING} levels"),
            at,
            src,
        )
    };
    let mut scan = Scan {
        tags: Vec::new(),
        unclosed_tag: None,
        open_blocks: Vec::new(),
        stray_close: None,
        stray_else: None,
    };
    // `{{else …}}` links of each open block.
    let mut links: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(found) = src[i..].find("{{") {
        let start = i + found;
        if start > 0 && src.as_bytes()[start - 1] == b'\\' {
            i = start + 2;
            continue;
        }
        let rest = &src[start..];
        if rest.starts_with("{{!--") {
            i = rest.find("--}}").map_or(src.len(), |end| start + end + 4);
            continue;
        }
        if rest.starts_with("{{!") {
            i = rest.find("}}").map_or(src.len(), |end| start + end + 2);
            continue;
        }
        let Some(end) = tag_end(src, start) else {
            scan.unclosed_tag = Some(start);
            break;
        };
        let tag = &src[start..end];
        let inner = tag
            .trim_start_matches('{')
            .trim_start_matches('~')
            .trim_start();
        if inner.starts_with('#') {
            scan.open_blocks.push(start..end);
            links.push(0);
        } else if inner.starts_with('/') {
            if scan.open_blocks.pop().is_none() && scan.stray_close.is_none() {
                scan.stray_close = Some(start..end);
            }
            links.pop();
        } else if inner.starts_with('^') || inner.starts_with("else") {
            let chained = inner
                .strip_prefix("else")
                .map(|rest| rest.trim_start().trim_start_matches('~').trim_start())
                .is_some_and(|rest| !rest.starts_with('}'));
            match links.last_mut() {
                Some(count) if chained => *count += 1,
                Some(_) => {}
                None if scan.stray_else.is_none() => scan.stray_else = Some(start..end),
                None => {}
            }
        }
        let open = scan.open_blocks.len() + links.iter().sum::<usize>();
        if open + bracket_depth(tag) > MAX_NESTING {
            return Err(too_deep(start..end));
        }
        scan.tags.push(start..end);
        // `{{{{raw}}}} … {{{{/raw}}}}`: what is between is text, not tags.
        i = if tag.starts_with("{{{{") && !inner.starts_with('/') {
            src[end..].find("{{{{/").map_or(end, |close| end + close)
        } else {
            end
        };
    }
    Ok(scan)
}

/// Where the tag opened at `start` ends (after its closing braces), skipping quoted
/// strings, which may contain `}}`.
fn tag_end(src: &str, start: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = start + 2;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => {
                let mut end = i + 2;
                while end < bytes.len() && bytes[end] == b'}' {
                    end += 1;
                }
                return Some(clamp_span(end..end, src).start);
            }
            None => {}
        }
        i += 1;
    }
    None
}

/// Deepest nesting of `(` `[` `{` inside one tag (subexpressions, literals), outside
/// quoted strings, not counting the tag's own braces.
fn bracket_depth(tag: &str) -> usize {
    let inner = tag.trim_start_matches('{').trim_end_matches('}');
    let mut depth = 0usize;
    let mut deepest = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in inner.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::handlebars_template::*;

    use serde_json::json;

    #[test]
    fn deep_nesting_is_rejected_before_parsing() {
        let n = 10_000;
        let deep = [
            format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n)),
            format!("{{{{eq {}a{} 1}}}}", "(len ".repeat(n), ")".repeat(n)),
            format!("{{{{eq {}1{} 1}}}}", "[".repeat(n), "]".repeat(n)),
            format!("{{{{#if a}}}}x{}{{{{/if}}}}", "{{else if a}}y".repeat(n)),
        ];
        for src in &deep {
            let e = check_template(src).unwrap_err();
            assert!(e.message.contains("nested deeper"), "{e}");
            assert!(matches!(
                render(src, &json!({"a": true}), Escape::Plain),
                Err(RenderError::Syntax(_))
            ));
        }
        // A value nested beyond the bound is refused rather than recursed into.
        let mut value = json!("{{a}}");
        for _ in 0..=MAX_NESTING + 1 {
            value = json!([value]);
        }
        assert!(render_value(&value, &json!({"a": 1}), Escape::Plain).is_err());
    }

    #[test]
    fn nesting_within_the_bound_renders() {
        // On the test harness's 2 MiB thread in a debug build.
        let n = MAX_NESTING - 1;
        let ctx = json!({"a": true, "l": [1]});
        let blocks = format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        assert_eq!(render(&blocks, &ctx, Escape::Plain), Ok(json!("x")));
        let chain = format!(
            "{{{{#if nope_false}}}}x{}{{{{else}}}}z{{{{/if}}}}",
            "{{else if nope_false}}y".repeat(n - 1)
        );
        let ctx_false = json!({"nope_false": false});
        assert_eq!(render(&chain, &ctx_false, Escape::Plain), Ok(json!("z")));
        let subexpressions = format!(
            "{{{{eq {}l{} 1}}}}",
            "(len ".repeat(n - 1),
            ")".repeat(n - 1)
        );
        assert!(check_template(&subexpressions).is_ok());
    }
}
