//! Handlebars templates in step fields: `"http://{{inputs.host}}/jobs/{{item.id}}"`.
//!
//! Rendering is strict (a name that is not in the context is an error, never an empty
//! string) and never HTML-escapes. A field that is exactly one `{{path}}` keeps the JSON
//! type of the value, so `with: { hosts: "{{inputs.hosts}}" }` passes a list, not its text.
//! Inside exec scripts ([`render_script`]) every `{{value}}` reaches the shell as an
//! environment variable, never as script text, and `{{{value}}}` is pasted in as it is.

use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, Path, PathSeg, RenderContext, RenderErrorReason,
    Renderable, ScopedJson, StringOutput, TemplateErrorReason,
};
use serde_json::Value;

use super::reference::{dotted, lookup};
use super::shell::{self, ScriptScanner, UnsafePlacement};
use super::{MAX_NESTING, Reference, SyntaxError, char_span, clamp_span, close_enough};

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

// ---------------------------------------------------------------------------------------
// Registries

/// Internal helper that renders a value as text; see [`render_values_as_text`].
const VALUE_HELPER: &str = "__runbook_value";

/// Helpers a template may call: Handlebars' built-ins except `log`, plus `json`.
const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "json",
];

/// Block helpers that render their body in the same context (others change `this`).
const SAME_SCOPE_BLOCKS: &[&str] = &["if", "unless"];

static PLAIN: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(Escape::Plain));

fn registry(mode: Escape) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    match mode {
        Escape::Plain => hb.register_escape_fn(handlebars::no_escape),
    }
    // `{{log x}}` would write values, secrets included, to the process log.
    hb.unregister_helper("log");
    hb.register_helper("json", Box::new(JsonHelper));
    hb.register_helper(VALUE_HELPER, Box::new(ValueHelper));
    hb
}

/// The text a value becomes inside a larger string: strings as they are, numbers and
/// booleans as JSON, `null` as nothing (Handlebars' convention), lists and objects as
/// compact JSON rather than Handlebars' lossy `[object]`.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The first argument of a helper, which must exist in the context (strict mode does not
/// apply to helper arguments in Handlebars itself).
fn first_param<'h, 'rc>(
    h: &'h Helper<'rc>,
    helper: &'static str,
) -> Result<&'h handlebars::PathAndJson<'rc>, handlebars::RenderError> {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, 0))?;
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
    }
    Ok(param)
}

/// `{{x}}`, rewritten to `{{__runbook_value x}}` so lists and objects render as JSON.
/// Returning the text from `call_inner` lets Handlebars apply the registry's escaping
/// (a script's value marks), which `{{{x}}}` switches off as usual.
struct ValueHelper;

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        let param = first_param(h, VALUE_HELPER)?;
        Ok(ScopedJson::Derived(Value::String(value_text(
            param.value(),
        ))))
    }
}

/// `{{json x}}`: the value as compact JSON (strings quoted), for request bodies.
struct JsonHelper;

impl HelperDef for JsonHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        let param = first_param(h, "json")?;
        Ok(ScopedJson::Derived(Value::String(
            param.value().to_string(),
        )))
    }
}

fn render_compiled(template: &Template, ctx: &Value, mode: Escape) -> Result<String, RenderError> {
    let registry: &Handlebars<'static> = match mode {
        Escape::Plain => &PLAIN,
    };
    render_with(registry, template, ctx)
}

fn render_with(
    registry: &Handlebars<'_>,
    template: &Template,
    ctx: &Value,
) -> Result<String, RenderError> {
    let context = Context::from(ctx.clone());
    let mut rc = RenderContext::new(None);
    let mut out = StringOutput::new();
    template
        .render(registry, &context, &mut rc, &mut out)
        .map_err(convert_render_error)?;
    out.into_string().map_err(|e| RenderError::Failed {
        message: e.to_string(),
    })
}

fn convert_render_error(error: handlebars::RenderError) -> RenderError {
    match error.reason() {
        RenderErrorReason::MissingVariable(path) => RenderError::Missing {
            path: path
                .clone()
                .unwrap_or_else(|| "(a helper's result)".to_owned()),
        },
        reason => RenderError::Failed {
            message: reason.to_string(),
        },
    }
}

/// Rewrite every plain value expression into a call of [`ValueHelper`].
fn render_values_as_text(template: &mut Template) {
    for element in &mut template.elements {
        match element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht)
                if value_path(ht).is_some() =>
            {
                let name = std::mem::replace(&mut ht.name, Parameter::Name(VALUE_HELPER.into()));
                ht.params = vec![name];
            }
            TemplateElement::HelperBlock(ht) => {
                for inner in ht.template.iter_mut().chain(ht.inverse.iter_mut()) {
                    render_values_as_text(inner);
                }
            }
            _ => {}
        }
    }
}

/// The path of `{{path}}` when the expression is a plain value, not a helper call.
fn value_path(ht: &handlebars::template::HelperTemplate) -> Option<&Path> {
    match &ht.name {
        Parameter::Path(path)
            if !ht.block
                && ht.params.is_empty()
                && ht.hash.is_empty()
                && !HELPERS.contains(&path_raw(path)) =>
        {
            Some(path)
        }
        _ => None,
    }
}

fn path_raw(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

// ---------------------------------------------------------------------------------------
// Partial rendering

/// Replace each element that reads a path missing from `ctx` with a `⟨…⟩` placeholder,
/// recording the missing paths. Blocks whose own arguments resolve are kept and searched.
fn mark_unknown(template: &mut Template, depth: usize, ctx: &Value, unknown: &mut Vec<String>) {
    for element in &mut template.elements {
        let mut refs = Vec::new();
        let is_block = matches!(element, TemplateElement::HelperBlock(_));
        match &*element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                expression_refs(ht, depth, &mut refs);
            }
            TemplateElement::HelperBlock(ht) => {
                for param in ht.params.iter().chain(ht.hash.values()) {
                    param_refs(param, depth, &mut refs);
                }
            }
            _ => continue,
        }
        let missing: Vec<String> = refs
            .iter()
            .filter(|r| lookup(ctx, &r.path).is_none())
            .map(|r| dotted(&r.path))
            .collect();
        if let Some(first) = missing.first() {
            let shown = if is_block {
                format!("{first} …")
            } else {
                first.clone()
            };
            *element = TemplateElement::RawString(placeholder(&shown));
            unknown.extend(missing);
        } else if let TemplateElement::HelperBlock(ht) = element {
            let (inner, inverse) = block_depths(ht, depth);
            if let Some(t) = ht.template.as_mut() {
                mark_unknown(t, inner, ctx, unknown);
            }
            if let Some(t) = ht.inverse.as_mut() {
                mark_unknown(t, inverse, ctx, unknown);
            }
        }
    }
}

/// Render the top-level elements one at a time, replacing any that fails.
fn render_piecewise(
    template: &Template,
    ctx: &Value,
    mode: Escape,
    unknown: &mut Vec<String>,
) -> String {
    let mut text = String::new();
    for element in &template.elements {
        let mut single = Template::new();
        single.elements.push(element.clone());
        match render_compiled(&single, ctx, mode) {
            Ok(part) => text.push_str(&part),
            Err(RenderError::Missing { path }) => {
                text.push_str(&placeholder(&path));
                unknown.push(path);
            }
            Err(other) => text.push_str(&placeholder(&other.to_string())),
        }
    }
    text
}

// ---------------------------------------------------------------------------------------
// Parsing and references

/// A template that passed every check, with what is needed to locate its references.
struct Parsed<'s> {
    src: &'s str,
    template: Template,
    /// Byte ranges of the `{{…}}` tags, for spans.
    tags: Vec<Range<usize>>,
}

/// A path found while walking the template, before it is located in the source.
struct Found {
    path: Vec<String>,
    /// The text Handlebars parsed (`inputs.host`, `@root.a`), searched for in the tags.
    raw: String,
}

impl<'s> Parsed<'s> {
    fn new(src: &'s str) -> Result<Self, SyntaxError> {
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
    fn found(&self) -> Vec<Found> {
        let mut found = Vec::new();
        template_refs(&self.template, 0, &mut found);
        found
    }

    /// The path when the whole template is exactly one `{{path}}` (or `{{{path}}}`).
    fn single_path(&self) -> Option<Vec<String>> {
        match self.template.elements.as_slice() {
            [TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht)] => {
                root_path(value_path(ht)?, 0)
            }
            _ => None,
        }
    }

    fn references(&self) -> Vec<Reference> {
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
fn block_depths(ht: &handlebars::template::HelperTemplate, depth: usize) -> (usize, usize) {
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

fn expression_refs(ht: &handlebars::template::HelperTemplate, depth: usize, out: &mut Vec<Found>) {
    if let Some(path) = value_path(ht) {
        push_path(path, depth, out);
    }
    for param in ht.params.iter().chain(ht.hash.values()) {
        param_refs(param, depth, out);
    }
}

fn param_refs(param: &Parameter, depth: usize, out: &mut Vec<Found>) {
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
fn line_col_offset(src: &str, line: usize, column: usize) -> usize {
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

/// What a quick pass over a template's tags found, before Handlebars parses it.
struct Scan {
    /// Byte ranges of the complete `{{…}}` tags.
    tags: Vec<Range<usize>>,
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
    fn explain(&self, src: &str, error: &handlebars::TemplateError) -> SyntaxError {
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
fn scan_tags(src: &str) -> Result<Scan, SyntaxError> {
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
    use serde_json::json;

    fn ctx() -> Value {
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
    fn refs(src: &str) -> Vec<(String, String)> {
        check_template(src)
            .unwrap_or_else(|e| panic!("{src:?} should parse: {e}"))
            .into_iter()
            .map(|r| (r.dotted(), src[r.span.clone()].to_owned()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    /// A parse error as (message, source text of the span).
    fn error(src: &str) -> (String, String) {
        match check_template(src) {
            Ok(refs) => panic!("{src:?} should not parse, got {refs:?}"),
            Err(e) => (e.message.clone(), src[e.span].to_owned()),
        }
    }

    fn plain(src: &str) -> Result<Value, RenderError> {
        render(src, &ctx(), Escape::Plain)
    }

    fn shell(src: &str) -> Result<Script, RenderError> {
        let mut ctx = ctx();
        ctx["inputs"]["nul"] = json!("\u{0}0\u{0}");
        render_script(src, &ctx)
    }

    fn missing(path: &str) -> Result<Value, RenderError> {
        Err(RenderError::Missing {
            path: path.to_owned(),
        })
    }

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

    #[test]
    fn partial_rendering_marks_what_is_only_known_at_run_time() {
        let known = json!({"inputs": {"host": "db", "list": [1, 2]}, "item": {"id": 7}});
        let partial = render_partial(
            "http://{{inputs.host}}/{{steps.snap.outputs.location}}?run={{run.id}}&t={{secrets.token}}",
            &known,
            Escape::Plain,
        )
        .unwrap();
        assert_eq!(
            partial.text,
            json!("http://db/⟨steps.snap.outputs.location⟩?run=⟨run.id⟩&t=⟨secrets.token⟩")
        );
        assert_eq!(
            partial.unknown,
            vec!["steps.snap.outputs.location", "run.id", "secrets.token"]
        );

        let typed = render_partial("{{inputs.list}}", &known, Escape::Plain).unwrap();
        assert_eq!(typed.text, json!([1, 2]));
        assert!(typed.unknown.is_empty());

        let block = render_partial(
            "{{#each steps.a.items}}{{outputs.x}}{{/each}}|{{#if inputs.host}}{{run.name}}{{/if}}",
            &known,
            Escape::Plain,
        )
        .unwrap();
        assert_eq!(block.text, json!("⟨steps.a.items …⟩|⟨run.name⟩"));
        assert_eq!(block.unknown, vec!["steps.a.items", "run.name"]);

        // A failure only visible while rendering a block is marked too.
        let inner = render_partial(
            "{{item.id}} {{#each inputs.list}}{{this.x}}{{/each}}",
            &known,
            Escape::Plain,
        )
        .unwrap();
        assert_eq!(inner.text, json!("7 ⟨this.x⟩"));
        assert_eq!(inner.unknown, vec!["this.x"]);
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
