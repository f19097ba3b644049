//! Exec scripts: each `{{value}}` becomes an environment variable expanded where it stands.

use std::ops::Range;

use handlebars::template::{Template, TemplateElement};
use serde_json::Value;

use super::parse::Parsed;
use super::{Piece, RenderError, render_pieces};
use crate::template::SyntaxError;
use crate::template::shell::{self, ScriptScanner, UnsafePlacement};

/// An exec script ready for `sh`: each `{{value}}` is a parameter expansion in the text and
/// the value itself an environment variable, so no value is ever read as shell code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The script, with `"${RUNBOOK_V1}"` (or `${RUNBOOK_V1}` inside quotes and heredocs)
    /// where each value stands.
    pub text: String,
    /// The values, in order: (`RUNBOOK_V1`, value), ...
    pub variables: Vec<(String, String)>,
}

/// A value in a script template that stands where the shell cannot take it safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeScriptValue {
    /// The `{{…}}` tag, as a byte range of the template.
    pub span: Range<usize>,
    /// Why, and how to write it instead.
    pub problem: UnsafePlacement,
}

/// Render an exec script so that no value can run as code.
///
/// The shell scanner reads the rendered text and writes, at each value, the parameter
/// expansion that suits its place ([`shell::Placement`]), or refuses a place that cannot
/// hold a value. `{{{x}}}` is pasted in as it is: the author's explicit choice.
pub fn render_script(src: &str, ctx: &Value) -> Result<Script, RenderError> {
    Script::from_pieces(render_pieces(src, ctx)?)
}

impl Script {
    /// The script from a rendered template's pieces ([`render_pieces`]).
    pub fn from_pieces(pieces: Vec<Piece>) -> Result<Script, RenderError> {
        let mut scanner = ScriptScanner::new();
        let mut text = String::new();
        let mut variables = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text(piece) => {
                    scanner.text(&piece);
                    text.push_str(&piece);
                }
                Piece::Value(value) => {
                    let name = shell::variable_name(variables.len());
                    text.push_str(&scanner.value()?.expansion(&name));
                    variables.push((name, value));
                }
            }
        }
        Ok(Script { text, variables })
    }
}

/// The values of a script template that stand where the shell cannot take them safely,
/// for the validator (rendering checks the rendered script again, which is what counts
/// when `{{#if}}` or `{{#each}}` decide what text surrounds a value).
pub fn check_script(src: &str) -> Result<Vec<UnsafeScriptValue>, SyntaxError> {
    let parsed = Parsed::new(src)?;
    let value_tags: Vec<Range<usize>> = parsed
        .tags
        .iter()
        .filter(|tag| is_escaped_value_tag(&src[(*tag).clone()]))
        .cloned()
        .collect();
    let mut walk = ScriptWalk {
        scanner: ScriptScanner::new(),
        value_tags: value_tags.into_iter(),
        whole: 0..src.len(),
        problems: Vec::new(),
    };
    walk.template(&parsed.template);
    Ok(walk.problems)
}

/// Whether a tag is a `{{value}}` (escaped) expression, not a block, `{{else}}`, comment
/// or `{{{raw}}}` one.
fn is_escaped_value_tag(tag: &str) -> bool {
    if tag.starts_with("{{{") {
        return false;
    }
    let inner = tag[2..].trim_start_matches('~').trim_start();
    !(inner.starts_with(['#', '/', '^', '!', '>', '*']) || inner.starts_with("else"))
}

/// A walk over a script template in source order, scanning its text as the shell would.
struct ScriptWalk {
    scanner: ScriptScanner,
    value_tags: std::vec::IntoIter<Range<usize>>,
    whole: Range<usize>,
    problems: Vec<UnsafeScriptValue>,
}

impl ScriptWalk {
    fn template(&mut self, template: &Template) {
        for element in &template.elements {
            match element {
                TemplateElement::RawString(text) => self.scanner.text(text),
                TemplateElement::Expression(_) => {
                    let span = self.value_tags.next().unwrap_or(self.whole.clone());
                    if let Err(problem) = self.scanner.value() {
                        self.problems.push(UnsafeScriptValue { span, problem });
                    }
                }
                TemplateElement::HelperBlock(ht) => {
                    for inner in ht.template.iter().chain(ht.inverse.iter()) {
                        self.template(inner);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::handlebars_template::tests::*;
    use crate::template::handlebars_template::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn script_values_become_variables_expanded_to_suit_their_place() {
        let script = shell("echo {{inputs.evil}} \"at {{inputs.host}}\"").expect("renders");
        assert_eq!(script.text, "echo \"${RUNBOOK_V1}\" \"at ${RUNBOOK_V2}\"");
        assert_eq!(
            script.variables,
            vars(&[
                ("RUNBOOK_V1", "a'b; rm -rf /"),
                ("RUNBOOK_V2", "db.internal")
            ])
        );
        let each =
            shell("{{#each inputs.list}}echo {{this}} {{@index}}\n{{/each}}").expect("renders");
        assert_eq!(
            each.text,
            "echo \"${RUNBOOK_V1}\" \"${RUNBOOK_V2}\"\necho \"${RUNBOOK_V3}\" \"${RUNBOOK_V4}\"\n"
        );
        assert_eq!(
            each.variables,
            vars(&[
                ("RUNBOOK_V1", "a"),
                ("RUNBOOK_V2", "0"),
                ("RUNBOOK_V3", "b"),
                ("RUNBOOK_V4", "1")
            ])
        );
        let list = shell("{{inputs.list}}").expect("renders");
        assert_eq!(list.variables, vars(&[("RUNBOOK_V1", r#"["a","b"]"#)]));
        // The shell reads the value back as exactly the value.
        let script = shell("printf '%s\\n' {{inputs.evil}}").expect("renders");
        if let Ok(out) = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script.text)
            .envs(script.variables.iter().map(|(k, v)| (k, v)))
            .output()
        {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "a'b; rm -rf /\n");
        }
    }

    #[test]
    fn triple_stash_is_pasted_into_a_script_as_is() {
        let raw = shell("x={{{inputs.evil}}}").expect("renders");
        assert_eq!(raw.text, "x=a'b; rm -rf /");
        assert!(raw.variables.is_empty());
        let json = shell("{{json inputs.host}}").expect("renders");
        assert_eq!(json.variables, vars(&[("RUNBOOK_V1", "\"db.internal\"")]));
    }

    #[test]
    fn unsafe_script_places_are_refused_when_rendered_and_found_when_checked() {
        assert!(matches!(
            shell("echo '{{inputs.host}}'"),
            Err(RenderError::UnsafeInScript(_))
        ));
        // A branch decides the quoting: only rendering can tell.
        assert!(matches!(
            shell("echo {{#if inputs.flag}}'{{/if}}{{inputs.host}}'"),
            Err(RenderError::UnsafeInScript(_))
        ));
        assert!(matches!(
            shell("echo {{{inputs.nul}}}{{inputs.host}}"),
            Err(RenderError::Failed { .. })
        ));
        let src =
            "echo {{inputs.a}} '{{ inputs.b }}' \"{{inputs.c}}\" `x {{{inputs.d}}} {{inputs.e}}`";
        let problems = check_script(src).expect("parses");
        let spans: Vec<&str> = problems.iter().map(|p| &src[p.span.clone()]).collect();
        assert_eq!(spans, vec!["{{ inputs.b }}", "{{inputs.e}}"]);
        assert!(problems[0].problem.reason.contains("single quotes"));
        assert!(problems[1].problem.reason.contains("backticks"));
        assert_eq!(
            check_script("cat <<EOF\n{{#each inputs.list}}- {{this}}\n{{/each}}EOF\n"),
            Ok(vec![])
        );
    }
}
