//! Handlebars templates in step fields: `"http://{{inputs.host}}/jobs/{{item.id}}"`.
//!
//! Rendering is strict (a name that is not in the context is an error, never an empty
//! string) and never HTML-escapes. A field that is exactly one `{{path}}` keeps the JSON
//! type of the value, so `with: { hosts: "{{inputs.hosts}}" }` passes a list, not its text.
//! Inside exec scripts ([`render_script`]) every `{{value}}` reaches the shell as an
//! environment variable, never as script text, and `{{{value}}}` is pasted in as it is.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::reference::{dotted, lookup};
use super::shell::UnsafePlacement;
use super::{MAX_NESTING, Reference, SyntaxError};

mod helpers;
mod parse;
mod partial;
mod scan;
mod script;

use helpers::{registry, render_compiled, render_values_as_text, render_with};
use parse::Parsed;
use partial::{mark_unknown, render_piecewise};
pub use script::{Script, UnsafeScriptValue, check_script, render_script};

/// How values are written into the rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are: arguments, request bodies, headers. (Scripts have [`render_script`].)
    Plain,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template reads a name the context does not have.
    #[error("no value at `{path}` (templates are strict: every name must exist)")]
    Missing {
        /// The missing path, dotted (`steps.a.outputs.x`).
        path: String,
    },
    /// The template does not parse, or uses something unsupported.
    #[error("invalid template: {0}")]
    Syntax(#[from] SyntaxError),
    /// A helper failed, for example `{{#each}}` over a number.
    #[error("cannot render template: {message}")]
    Failed {
        /// Handlebars' description of the failure.
        message: String,
    },
    /// A script puts a value where the shell cannot take it safely (for example inside
    /// single quotes, once a `{{#if}}` has chosen its branch).
    #[error("{}; {}", .0.reason, .0.help)]
    UnsafeInScript(#[from] UnsafePlacement),
}
/// A template rendered as far as the known context allows, for dry-run plans.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// The rendered value: a string with `⟨path⟩` where a value is only known at run time,
    /// or the value itself when the template is one `{{path}}` that resolved.
    pub text: Value,
    /// The dotted paths that could not be resolved, in source order.
    pub unknown: Vec<String>,
}

/// Parse a template and return the context paths it reads, or its first error.
///
/// Each `{{a.b}}`, `{{{a.b}}}` and helper argument (`{{#if a.b}}`, `{{json a.b}}`,
/// `{{eq (len a.b) 2}}`) at the top level is a reference. Inside `{{#each X}}` and
/// `{{#with X}}` the context changes, so only `X` and paths that climb back out
/// (`@root.a.b`, `../a.b` at enough levels) are reported. Literals, `this` and `@index`
/// are not references. Partials, decorators and unknown helpers are errors: they could
/// only fail at run time.
pub fn check_template(src: &str) -> Result<Vec<Reference>, SyntaxError> {
    let parsed = Parsed::new(src)?;
    Ok(parsed.references())
}

/// Render `src` strictly against `ctx`.
///
/// In [`Escape::Plain`] mode a template that is exactly one `{{path}}` returns the value
/// itself (a list stays a list, a number a number); every other template returns a string.
/// Lists and objects rendered inside text are written as JSON, `null` as nothing.
pub fn render(src: &str, ctx: &Value, mode: Escape) -> Result<Value, RenderError> {
    // Text without a tag is itself (validation and the engine treat it so too): no
    // template to compile for each of a chain's `command: [/bin/true]`.
    if !src.contains("{{") {
        return Ok(Value::String(src.to_owned()));
    }
    let parsed = Parsed::new(src)?;
    if mode == Escape::Plain
        && let Some(path) = parsed.single_path()
    {
        return lookup(ctx, &path)
            .cloned()
            .ok_or_else(|| RenderError::Missing {
                path: dotted(&path),
            });
    }
    check_found(&parsed, ctx)?;
    let mut template = parsed.template;
    render_values_as_text(&mut template);
    render_compiled(&template, ctx, mode).map(Value::String)
}

/// Helpers such as `if` treat a missing argument as false; runbooks want every name
/// checked, so the statically known paths are checked before rendering. The outputs of a
/// step that was skipped are the exception: `{{#if}}` may name them in the branch it does
/// not take, and strict rendering still refuses them in a branch it takes.
fn check_found(parsed: &Parsed<'_>, ctx: &Value) -> Result<(), RenderError> {
    match parsed
        .found()
        .into_iter()
        .find(|f| lookup(ctx, &f.path).is_none() && !under_skipped_step(ctx, &f.path))
    {
        Some(missing) => Err(RenderError::Missing {
            path: dotted(&missing.path),
        }),
        None => Ok(()),
    }
}

/// Marks a value's place in the text while it renders. No script can hold it (`sh -c`
/// takes a C string) and no URL either, so author text cannot be mistaken for it.
const VALUE_MARK: char = '\u{0}';

/// A piece of a rendered template: text the author wrote (or a `{{{raw}}}` value), or a
/// `{{value}}` that the caller places as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text of the template itself, or a value the author pasted in with `{{{…}}}`.
    Text(String),
    /// A value from `{{…}}` (`{{x}}`, `{{json x}}`, each `{{this}}` of an `{{#each}}`).
    Value(String),
}

/// Render `src`, keeping the author's text and each escaped value apart, for the fields
/// where a value must not be read as the surrounding language: exec scripts
/// ([`render_script`]) and URLs (`template::url`).
///
/// Handlebars renders with each escaped value replaced by a numbered mark, and the marks
/// are then split out of the text; `{{{x}}}` is not escaped, so it stays text.
pub fn render_pieces(src: &str, ctx: &Value) -> Result<Vec<Piece>, RenderError> {
    let parsed = Parsed::new(src)?;
    check_found(&parsed, ctx)?;
    let mut template = parsed.template;
    render_values_as_text(&mut template);
    let values: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut registry = registry(Escape::Plain);
    let collected = Arc::clone(&values);
    registry.register_escape_fn(move |value| {
        let mut values = collected.lock().unwrap_or_else(PoisonError::into_inner);
        values.push(value.to_owned());
        format!("{VALUE_MARK}{}{VALUE_MARK}", values.len() - 1)
    });
    let rendered = render_with(&registry, &template, ctx)?;
    drop(registry);
    let values = std::mem::take(&mut *values.lock().unwrap_or_else(PoisonError::into_inner));
    let nul = || RenderError::Failed {
        message: "a template and the values in it cannot contain a NUL character".to_owned(),
    };
    let mut split = rendered.split(VALUE_MARK);
    let mut pieces = Vec::with_capacity(2 * values.len() + 1);
    pieces.push(Piece::Text(split.next().unwrap_or_default().to_owned()));
    let mut index = 0;
    while let Some(number) = split.next() {
        let after = split.next().ok_or_else(nul)?;
        let value = values
            .get(index)
            .filter(|value| number == index.to_string() && !value.contains(VALUE_MARK))
            .ok_or_else(nul)?;
        pieces.push(Piece::Value(value.clone()));
        pieces.push(Piece::Text(after.to_owned()));
        index += 1;
    }
    if index != values.len() {
        return Err(nul());
    }
    Ok(pieces)
}

/// Whether a path reads into a step that was skipped (`steps.<id>...` with status `skipped`).
fn under_skipped_step(ctx: &Value, path: &[String]) -> bool {
    match path {
        [root, id, _, ..] if root == "steps" => {
            ctx.get("steps")
                .and_then(|steps| steps.get(id))
                .and_then(|step| step.get("status"))
                .and_then(Value::as_str)
                == Some("skipped")
        }
        _ => false,
    }
}

/// Render what is already known, for a dry-run plan.
///
/// Every `{{…}}` whose paths resolve in `ctx` is rendered; every one that reads something
/// `ctx` does not have yet (`steps.*`, `run.*`, or `secrets.*` when the plan leaves them
/// out) stays in the text as `⟨steps.x.outputs.y⟩` and is listed in
/// [`Partial::unknown`], so a reader sees which parts are only known at run time.
pub fn render_partial(src: &str, ctx: &Value, mode: Escape) -> Result<Partial, SyntaxError> {
    let parsed = Parsed::new(src)?;
    if mode == Escape::Plain
        && let Some(path) = parsed.single_path()
    {
        return Ok(match lookup(ctx, &path) {
            Some(value) => Partial {
                text: value.clone(),
                unknown: Vec::new(),
            },
            None => Partial {
                text: Value::String(placeholder(&dotted(&path))),
                unknown: vec![dotted(&path)],
            },
        });
    }
    let mut template = parsed.template;
    let mut unknown = Vec::new();
    mark_unknown(&mut template, 0, ctx, &mut unknown);
    render_values_as_text(&mut template);
    let text = match render_compiled(&template, ctx, mode) {
        Ok(text) => text,
        // A name inside a block (`{{#each list}}{{this.x}}{{/each}}`) cannot be checked
        // before rendering; render the top-level parts one by one and mark those that fail.
        Err(_) => render_piecewise(&template, ctx, mode, &mut unknown),
    };
    Ok(Partial {
        text: Value::String(text),
        unknown,
    })
}

/// Render every string inside a JSON value (object values, array items), for `with:`
/// maps, HTTP JSON bodies and the like. Object keys are left as they are.
pub fn render_value(value: &Value, ctx: &Value, mode: Escape) -> Result<Value, RenderError> {
    map_strings(value, 0, &mut |s| render(s, ctx, mode))
}

/// [`render_partial`] over every string inside a JSON value.
pub fn render_value_partial(
    value: &Value,
    ctx: &Value,
    mode: Escape,
) -> Result<Partial, SyntaxError> {
    let mut unknown = Vec::new();
    let text = map_strings(value, 0, &mut |s| {
        let partial = render_partial(s, ctx, mode)?;
        unknown.extend(partial.unknown);
        Ok::<_, SyntaxError>(partial.text)
    })?;
    Ok(Partial { text, unknown })
}

/// Apply `f` to every string in `value`, rebuilding the value around the results.
fn map_strings<E: From<SyntaxError>>(
    value: &Value,
    depth: usize,
    f: &mut impl FnMut(&str) -> Result<Value, E>,
) -> Result<Value, E> {
    if depth > MAX_NESTING {
        return Err(SyntaxError {
            message: format!("value nested deeper than {MAX_NESTING} levels"),
            span: 0..0,
        }
        .into());
    }
    Ok(match value {
        Value::String(s) => f(s)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| map_strings(item, depth + 1, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), map_strings(v, depth + 1, f)?)))
                .collect::<Result<_, E>>()?,
        ),
        other => other.clone(),
    })
}

fn placeholder(what: &str) -> String {
    format!("⟨{what}⟩")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn ctx() -> Value {
        json!({
            "inputs": {
                "host": "db.internal",
                "port": 5432,
                "list": ["a", "b"],
                "flag": true,
                "nothing": null,
                "obj": {"k": 1},
                "evil": "a'b; rm -rf /",
                "html": "<a href=\"x\">&amp;</a>",
                "hosts": [{"name": "h1"}, {"name": "h2"}],
            },
            "item": {"id": 7},
            "index": 0,
            "steps": {"snap": {"status": "ok", "outputs": {"location": "/sp/7"}}},
        })
    }

    /// References as (dotted path, source text of the span).
    pub(super) fn refs(src: &str) -> Vec<(String, String)> {
        check_template(src)
            .unwrap_or_else(|e| panic!("{src:?} should parse: {e}"))
            .into_iter()
            .map(|r| (r.dotted(), src[r.span.clone()].to_owned()))
            .collect()
    }

    #[test]
    fn text_without_a_tag_is_rendered_as_it_is() {
        for text in [
            "/bin/true",
            "a }} b",
            "<a href=\"x\">&amp;</a>",
            "{ \\ } {",
            "",
        ] {
            let rendered = render(text, &ctx(), Escape::Plain).unwrap();
            assert_eq!(rendered, json!(text), "{text:?}");
        }
    }

    pub(super) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    /// A parse error as (message, source text of the span).
    pub(super) fn error(src: &str) -> (String, String) {
        match check_template(src) {
            Ok(refs) => panic!("{src:?} should not parse, got {refs:?}"),
            Err(e) => (e.message.clone(), src[e.span].to_owned()),
        }
    }

    pub(super) fn plain(src: &str) -> Result<Value, RenderError> {
        render(src, &ctx(), Escape::Plain)
    }

    pub(super) fn shell(src: &str) -> Result<Script, RenderError> {
        let mut ctx = ctx();
        ctx["inputs"]["nul"] = json!("\u{0}0\u{0}");
        render_script(src, &ctx)
    }

    pub(super) fn missing(path: &str) -> Result<Value, RenderError> {
        Err(RenderError::Missing {
            path: path.to_owned(),
        })
    }

    #[test]
    fn rendering_is_strict_and_names_the_missing_path() {
        assert_eq!(plain("x {{inputs.nope}}"), missing("inputs.nope"));
        assert_eq!(
            plain("{{steps.snap.outputs.size}}"),
            missing("steps.snap.outputs.size")
        );
        // Helpers do not get to treat a missing name as false or null.
        assert_eq!(plain("{{#if inputs.nope}}y{{/if}}"), missing("inputs.nope"));
        assert_eq!(plain("{{json inputs.nope}} x"), missing("inputs.nope"));
        assert_eq!(plain("{{eq inputs.nope 1}}"), missing("inputs.nope"));
        // Inside a block the check happens while rendering.
        assert_eq!(
            plain("{{#each inputs.hosts}}{{this.nope}}{{/each}}"),
            missing("this.nope")
        );
        // Present but null is not missing.
        assert_eq!(plain("[{{inputs.nothing}}]"), Ok(json!("[]")));
    }

    #[test]
    fn renders_text_without_html_escaping() {
        assert_eq!(
            plain("http://{{inputs.host}}:{{inputs.port}}/jobs/{{item.id}}"),
            Ok(json!("http://db.internal:5432/jobs/7"))
        );
        assert_eq!(
            plain("{{inputs.html}}!"),
            Ok(json!("<a href=\"x\">&amp;</a>!"))
        );
        assert_eq!(
            plain("{{#each inputs.hosts}}{{@index}}={{name}}@{{@root.inputs.host}};{{/each}}"),
            Ok(json!("0=h1@db.internal;1=h2@db.internal;"))
        );
        assert_eq!(
            plain("{{#if inputs.flag}}on{{else}}off{{/if}} {{json inputs.host}}"),
            Ok(json!("on \"db.internal\""))
        );
    }

    #[test]
    fn lists_and_objects_inside_text_render_as_json() {
        assert_eq!(
            plain("list={{inputs.list}} obj={{inputs.obj}}"),
            Ok(json!(r#"list=["a","b"] obj={"k":1}"#))
        );
    }

    #[test]
    fn a_whole_string_single_path_keeps_its_type() {
        assert_eq!(plain("{{inputs.list}}"), Ok(json!(["a", "b"])));
        assert_eq!(plain("{{ inputs.port }}"), Ok(json!(5432)));
        assert_eq!(plain("{{inputs.flag}}"), Ok(json!(true)));
        assert_eq!(plain("{{inputs.obj}}"), Ok(json!({"k": 1})));
        assert_eq!(plain("{{{inputs.nothing}}}"), Ok(json!(null)));
        assert_eq!(plain("{{inputs.hosts.1.name}}"), Ok(json!("h2")));
        assert_eq!(plain("{{inputs.absent}}"), missing("inputs.absent"));
        // Anything around the expression makes it text.
        assert_eq!(plain(" {{inputs.port}}"), Ok(json!(" 5432")));
        assert_eq!(
            plain("{{inputs.port}}{{inputs.port}}"),
            Ok(json!("54325432"))
        );
    }

    #[test]
    fn values_inside_json_structures_are_rendered() {
        let with = json!({
            "hosts": "{{inputs.list}}",
            "url": "http://{{inputs.host}}",
            "nested": [{"port": "{{inputs.port}}"}, 3, null],
            "{{key}}": "keys are not templates",
        });
        assert_eq!(
            render_value(&with, &ctx(), Escape::Plain),
            Ok(json!({
                "hosts": ["a", "b"],
                "url": "http://db.internal",
                "nested": [{"port": 5432}, 3, null],
                "{{key}}": "keys are not templates",
            }))
        );
        assert_eq!(
            render_value(&json!({"a": ["{{inputs.nope}}"]}), &ctx(), Escape::Plain),
            missing("inputs.nope")
        );
        let partial = render_value_partial(
            &json!({"a": "{{inputs.host}}", "b": ["{{steps.x.outputs.y}}"]}),
            &json!({"inputs": {"host": "h"}}),
            Escape::Plain,
        )
        .unwrap();
        assert_eq!(
            partial.text,
            json!({"a": "h", "b": ["⟨steps.x.outputs.y⟩"]})
        );
        assert_eq!(partial.unknown, vec!["steps.x.outputs.y"]);
    }

    /// A small deterministic generator, so the fuzz cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            items[(self.0 % items.len() as u64) as usize]
        }
    }

    #[test]
    fn malformed_templates_never_panic() {
        let pieces = [
            "{{",
            "}}",
            "{{{",
            "}}}",
            "{{{{",
            "}}}}",
            "#",
            "/",
            "else",
            "if",
            "each",
            "with",
            "unless",
            "this",
            "@root",
            "../",
            ".",
            "[",
            "]",
            "(",
            ")",
            "\"",
            "'",
            "~",
            "!",
            "--",
            ">",
            "*",
            " ",
            "a",
            "inputs.host",
            "inputs.list",
            "1",
            "true",
            "json",
            "lookup",
            "as |x|",
            "\\",
            "=",
            "é",
            "💣",
            "@index",
            "\n",
            "len",
            "eq",
            "{",
            "}",
            "raw",
            "null",
            "[x y]",
            "^",
            "{{inputs.host}}",
            "{{#if inputs.flag}}",
            "{{/if}}",
            "{{#each inputs.list}}",
            "{{/each}}",
            "{{else}}",
        ];
        let partial_ctx = json!({"inputs": {"host": "h"}});
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut parsed, mut rejected) = (0, 0);
        for round in 0..600 {
            let src: String = (0..1 + round % 16).map(|_| rng.pick(&pieces)).collect();
            match check_template(&src) {
                Ok(_) => parsed += 1,
                Err(e) => {
                    rejected += 1;
                    // Spans must always be usable on the source.
                    assert!(src.get(e.span.clone()).is_some(), "{src:?} {e:?}");
                }
            }
            let _ = render(&src, &ctx(), Escape::Plain);
            let _ = render_script(&src, &ctx());
            let _ = check_script(&src);
            let _ = render_partial(&src, &partial_ctx, Escape::Plain);
        }
        assert!(
            parsed > 50 && rejected > 50,
            "{parsed} parsed, {rejected} rejected"
        );
    }
}
