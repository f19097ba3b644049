//! Parsing a template, checking its helpers and finding the context paths it reads.

use std::ops::Range;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use super::helpers::{HELPERS, SAME_SCOPE_BLOCKS, path_raw, value_path};
use super::scan::scan_tags;
use crate::template::{Reference, SyntaxError, close_enough};

/// A template that passed every check, with what is needed to locate its references.
pub(super) struct Parsed<'s> {
    src: &'s str,
    pub(super) template: Template,
    /// Byte ranges of the `{{…}}` tags, for spans.
    pub(super) tags: Vec<Range<usize>>,
}

/// A path found while walking the template, before it is located in the source.
pub(super) struct Found {
    pub(super) path: Vec<String>,
    /// The text Handlebars parsed (`inputs.host`, `@root.a`), searched for in the tags.
    raw: String,
}

impl<'s> Parsed<'s> {
    pub(super) fn new(src: &'s str) -> Result<Self, SyntaxError> {
        let scan = scan_tags(src)?;
        let template = match Template::compile(src) {
            Ok(template) => template,
            // Handlebars' own message lists grammar rules; the scan can usually say more.
            Err(error) => return Err(scan.explain(src, &error)),
        };
        let parsed = Self {
            src,
            template,
            tags: scan.tags,
        };
        parsed.check_supported(&parsed.template)?;
        Ok(parsed)
    }

    /// Every root path the template reads, without spans (for rendering).
    pub(super) fn found(&self) -> Vec<Found> {
        let mut found = Vec::new();
        template_refs(&self.template, 0, &mut found);
        found
    }

    /// The path when the whole template is exactly one `{{path}}` (or `{{{path}}}`).
    pub(super) fn single_path(&self) -> Option<Vec<String>> {
        match self.template.elements.as_slice() {
            [TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht)] => {
                root_path(value_path(ht)?, 0)
            }
            _ => None,
        }
    }

    pub(super) fn references(&self) -> Vec<Reference> {
        let mut cursor = 0;
        self.found()
            .into_iter()
            .map(|f| {
                let span = self.locate(&f.raw, &mut cursor);
                Reference { path: f.path, span }
            })
            .collect()
    }

    /// Find `raw` inside a tag at a token boundary, preferring the first occurrence after
    /// the previous reference (references are walked in source order, mostly).
    fn locate(&self, raw: &str, cursor: &mut usize) -> Range<usize> {
        let occurrences: Vec<Range<usize>> = self
            .src
            .match_indices(raw)
            .map(|(at, _)| at..at + raw.len())
            .filter(|span| {
                let in_tag = self
                    .tags
                    .iter()
                    .any(|tag| tag.start <= span.start && span.end <= tag.end);
                let before = self.src[..span.start].chars().next_back();
                let after = self.src[span.end..].chars().next();
                in_tag && !before.is_some_and(is_path_char) && !after.is_some_and(is_path_char)
            })
            .collect();
        let span = occurrences
            .iter()
            .find(|span| span.start >= *cursor)
            .or(occurrences.first())
            .cloned()
            .unwrap_or(0..self.src.len());
        *cursor = span.end;
        span
    }

    /// Reject what parses but could only fail at run time: partials and decorators (none
    /// are registered) and calls of unknown helpers.
    fn check_supported(&self, template: &Template) -> Result<(), SyntaxError> {
        for element in &template.elements {
            match element {
                TemplateElement::Expression(ht)
                | TemplateElement::HtmlExpression(ht)
                | TemplateElement::HelperBlock(ht) => {
                    if let Parameter::Name(name) = &ht.name {
                        let mut cursor = 0;
                        if !HELPERS.contains(&name.as_str()) {
                            return Err(SyntaxError::new(
                                format!("unknown helper `{name}`{}", suggest_helper(name)),
                                self.locate(name, &mut cursor),
                                self.src,
                            ));
                        }
                        let needs = min_args(name);
                        if ht.params.len() < needs {
                            let plural = if needs == 1 { "" } else { "s" };
                            return Err(SyntaxError::new(
                                format!("`{name}` needs {needs} argument{plural}"),
                                self.locate(name, &mut cursor),
                                self.src,
                            ));
                        }
                    }
                    for param in ht.params.iter().chain(ht.hash.values()) {
                        self.check_param(param)?;
                    }
                    for inner in ht.template.iter().chain(ht.inverse.iter()) {
                        self.check_supported(inner)?;
                    }
                }
                TemplateElement::DecoratorExpression(_)
                | TemplateElement::DecoratorBlock(_)
                | TemplateElement::PartialExpression(_)
                | TemplateElement::PartialBlock(_) => {
                    return Err(SyntaxError::new(
                        "partials (`{{> …}}`) and decorators (`{{* …}}`) are not supported",
                        0..self.src.len(),
                        self.src,
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_param(&self, param: &Parameter) -> Result<(), SyntaxError> {
        if let Parameter::Subexpression(sub) = param {
            let mut inner = Template::new();
            inner.elements.push(sub.as_element().clone());
            self.check_supported(&inner)?;
        }
        Ok(())
    }
}

/// Arguments a helper cannot do without; Handlebars only notices at render time.
fn min_args(helper: &str) -> usize {
    match helper {
        "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "lookup" => 2,
        "raw" => 0,
        _ => 1,
    }
}

fn suggest_helper(name: &str) -> String {
    HELPERS
        .iter()
        .map(|h| (strsim::damerau_levenshtein(name, h), *h))
        .filter(|(distance, _)| *distance <= close_enough(name))
        .min()
        .map(|(_, h)| format!(" (did you mean `{h}`?)"))
        .unwrap_or_default()
}

/// Characters that can continue a Handlebars path, so a match inside a longer path is
/// not taken for the reference.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.' | '/' | '@' | '[' | ']')
}

/// How deep the scope is inside a block's body and its `{{else}}` part.
pub(super) fn block_depths(
    ht: &handlebars::template::HelperTemplate,
    depth: usize,
) -> (usize, usize) {
    match &ht.name {
        Parameter::Name(name) if SAME_SCOPE_BLOCKS.contains(&name.as_str()) => (depth, depth),
        // `{{else}}` of `each`/`with` renders in the outer scope.
        Parameter::Name(name) if name == "each" || name == "with" => (depth + 1, depth),
        _ => (depth + 1, depth + 1),
    }
}

fn template_refs(template: &Template, depth: usize, out: &mut Vec<Found>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                expression_refs(ht, depth, out);
            }
            TemplateElement::HelperBlock(ht) => {
                for param in ht.params.iter().chain(ht.hash.values()) {
                    param_refs(param, depth, out);
                }
                let (inner, inverse) = block_depths(ht, depth);
                if let Some(t) = &ht.template {
                    template_refs(t, inner, out);
                }
                if let Some(t) = &ht.inverse {
                    template_refs(t, inverse, out);
                }
            }
            _ => {}
        }
    }
}

pub(super) fn expression_refs(
    ht: &handlebars::template::HelperTemplate,
    depth: usize,
    out: &mut Vec<Found>,
) {
    if let Some(path) = value_path(ht) {
        push_path(path, depth, out);
    }
    for param in ht.params.iter().chain(ht.hash.values()) {
        param_refs(param, depth, out);
    }
}

pub(super) fn param_refs(param: &Parameter, depth: usize, out: &mut Vec<Found>) {
    match param {
        Parameter::Path(path) => push_path(path, depth, out),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(ht) = sub.as_element() {
                expression_refs(ht, depth, out);
            }
        }
        _ => {}
    }
}

fn push_path(path: &Path, depth: usize, out: &mut Vec<Found>) {
    if let Some(keys) = root_path(path, depth) {
        out.push(Found {
            path: keys,
            raw: path_raw(path).to_owned(),
        });
    }
}

/// The keys from the context root that `path` reads at block `depth`, if it reads the
/// root: any path at depth 0, `@root.…` anywhere, `../…` climbing out of every block.
/// `this`, `@index` and block parameters yield nothing.
fn root_path(path: &Path, depth: usize) -> Option<Vec<String>> {
    let Path::Relative((segments, _)) = path else {
        return None;
    };
    let mut keys = Vec::new();
    let mut from_root = false;
    let mut ups = 0;
    for segment in segments {
        match segment {
            PathSeg::Named(key) => keys.push(key.clone()),
            // Handlebars' grammar rule type is private; its Debug name is the rule name.
            ruled => match format!("{ruled:?}").as_str() {
                "Ruled(path_root)" if keys.is_empty() => from_root = true,
                "Ruled(path_up)" if keys.is_empty() => ups += 1,
                _ => return None,
            },
        }
    }
    let reaches_root = from_root || ups >= depth;
    (reaches_root && !keys.is_empty()).then_some(keys)
}

/// Byte offset of a 1-based line and (character) column, as pest reports positions.
pub(super) fn line_col_offset(src: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        src.match_indices('\n')
            .nth(line - 2)
            .map_or(src.len(), |(at, _)| at + 1)
    };
    let rest = &src[line_start..];
    let within = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(at, _)| at);
    line_start + within
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::handlebars_template::tests::*;
    use crate::template::handlebars_template::*;

    #[test]
    fn references_of_values_and_helper_arguments() {
        assert_eq!(
            refs("http://{{inputs.host}}:{{{ inputs.port }}}/jobs/{{item.id}}"),
            pairs(&[
                ("inputs.host", "inputs.host"),
                ("inputs.port", "inputs.port"),
                ("item.id", "item.id"),
            ])
        );
        assert_eq!(
            refs(
                "{{#if inputs.flag}}{{json steps.x.outputs}}{{else}}{{eq (len inputs.list) 2}}{{/if}}"
            ),
            pairs(&[
                ("inputs.flag", "inputs.flag"),
                ("steps.x.outputs", "steps.x.outputs"),
                ("inputs.list", "inputs.list"),
            ])
        );
        assert_eq!(
            refs("{{a.[weird-key].b}}"),
            pairs(&[("a.weird-key.b", "a.[weird-key].b")])
        );
    }

    #[test]
    fn literals_this_and_locals_are_not_references() {
        assert_eq!(
            refs(r#"{{eq "x" 1}} {{this}} {{@index}} plain text"#),
            vec![]
        );
    }

    #[test]
    fn blocks_that_change_the_context_only_report_what_climbs_out() {
        assert_eq!(
            refs(concat!(
                "{{#each inputs.hosts}}{{name}} {{this.port}} {{@index}} ",
                "{{@root.inputs.user}} {{../inputs.domain}}{{else}}{{inputs.none}}{{/each}}",
                "{{#with inputs.db as |db|}}{{db.host}}{{host}}{{/with}}",
            )),
            pairs(&[
                ("inputs.hosts", "inputs.hosts"),
                ("inputs.user", "@root.inputs.user"),
                ("inputs.domain", "../inputs.domain"),
                ("inputs.none", "inputs.none"),
                ("inputs.db", "inputs.db"),
            ])
        );
    }

    #[test]
    fn repeated_paths_get_their_own_spans() {
        let src = "{{inputs.host}}-{{inputs.host}} {{inputs.hostname}}";
        let spans: Vec<Range<usize>> = check_template(src)
            .unwrap()
            .into_iter()
            .map(|r| r.span)
            .collect();
        assert_eq!(spans, vec![2..13, 18..29, 34..49]);
    }

    #[test]
    fn parse_errors_point_at_the_offending_tag() {
        assert_eq!(
            error("url {{inputs.host"),
            ("unclosed `{{`: expected `}}`".to_owned(), "{{".to_owned())
        );
        assert_eq!(
            error("a {{#if inputs.flag}} b"),
            (
                "`{{#if inputs.flag}}` is never closed".to_owned(),
                "{{#if inputs.flag}}".to_owned()
            )
        );
        assert_eq!(
            error("{{#if a}}x{{/each}}"),
            (
                "helper \"if\" was opened, but \"each\" is closing".to_owned(),
                "{{/each}}".to_owned()
            )
        );
        assert_eq!(
            error("x {{else}} y"),
            (
                "`{{else}}` outside a block".to_owned(),
                "{{else}}".to_owned()
            )
        );
        assert_eq!(
            error("line one\nline two {{a..b}}"),
            (
                "invalid Handlebars syntax at `.b}}`".to_owned(),
                ".".to_owned()
            )
        );
    }

    #[test]
    fn unsupported_features_and_unknown_helpers_are_syntax_errors() {
        assert_eq!(
            error("{{shout inputs.host}}"),
            ("unknown helper `shout`".to_owned(), "shout".to_owned())
        );
        assert_eq!(
            error("{{#eahc inputs.list}}{{/eahc}}"),
            (
                "unknown helper `eahc` (did you mean `each`?)".to_owned(),
                "eahc".to_owned()
            )
        );
        // `log` would write values (secrets) to the process log.
        assert!(
            error("{{log inputs.host}}")
                .0
                .contains("unknown helper `log`")
        );
        assert!(error("{{> header}}").0.contains("partials"));
        assert_eq!(
            error("{{#each}}{{/each}}"),
            ("`each` needs 1 argument".to_owned(), "each".to_owned())
        );
        assert!(matches!(plain("{{> header}}"), Err(RenderError::Syntax(_))));
    }
}
