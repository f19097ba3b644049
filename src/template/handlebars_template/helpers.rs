//! The Handlebars registries, the helpers a template may call, and rendering a compiled template.

use std::sync::LazyLock;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, Path, RenderContext, RenderErrorReason, Renderable,
    ScopedJson, StringOutput,
};
use serde_json::Value;

use super::{Escape, RenderError};

/// Internal helper that renders a value as text; see [`render_values_as_text`].
const VALUE_HELPER: &str = "__runbook_value";

/// Helpers a template may call: Handlebars' built-ins except `log`, plus `json`.
pub(super) const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "json",
];

/// Block helpers that render their body in the same context (others change `this`).
pub(super) const SAME_SCOPE_BLOCKS: &[&str] = &["if", "unless"];

static PLAIN: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(Escape::Plain));

pub(super) fn registry(mode: Escape) -> Handlebars<'static> {
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

pub(super) fn render_compiled(
    template: &Template,
    ctx: &Value,
    mode: Escape,
) -> Result<String, RenderError> {
    let registry: &Handlebars<'static> = match mode {
        Escape::Plain => &PLAIN,
    };
    render_with(registry, template, ctx)
}

pub(super) fn render_with(
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
pub(super) fn render_values_as_text(template: &mut Template) {
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
pub(super) fn value_path(ht: &handlebars::template::HelperTemplate) -> Option<&Path> {
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

pub(super) fn path_raw(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}
