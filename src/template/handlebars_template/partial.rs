//! Partial rendering for dry-run plans: what is only known at run time stays a placeholder.

use handlebars::template::{Template, TemplateElement};
use serde_json::Value;

use super::helpers::render_compiled;
use super::parse::{block_depths, expression_refs, param_refs};
use super::{Escape, RenderError, placeholder};
use crate::template::reference::{dotted, lookup};

/// Replace each element that reads a path missing from `ctx` with a `⟨…⟩` placeholder,
/// recording the missing paths. Blocks whose own arguments resolve are kept and searched.
pub(super) fn mark_unknown(
    template: &mut Template,
    depth: usize,
    ctx: &Value,
    unknown: &mut Vec<String>,
) {
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
pub(super) fn render_piecewise(
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

#[cfg(test)]
mod tests {

    use crate::template::handlebars_template::*;

    use serde_json::json;

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
}
