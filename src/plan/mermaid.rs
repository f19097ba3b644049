//! The DAG as a Mermaid flowchart, for Markdown pages that render it.

use super::picture::{EdgeKind, Group, Picture, Shape, ShapeKind};
use std::fmt::Write;

pub fn render(picture: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: {}\n---\nflowchart TD", picture.title);
    write_group(&mut out, &picture.top, 1);
    for edge in &picture.edges {
        let arrow = match edge.kind {
            EdgeKind::Needs => "-->".to_owned(),
            EdgeKind::Uses => "-. uses .->".to_owned(),
            EdgeKind::Fallback => "-. fallback .->".to_owned(),
        };
        let _ = writeln!(out, "    {} {arrow} {}", edge.from, edge.to);
    }
    out
}

fn write_group(out: &mut String, group: &Group, depth: usize) {
    let indent = "    ".repeat(depth);
    for shape in &group.shapes {
        let _ = writeln!(out, "{indent}{}", shape_text(shape));
    }
    for nested in &group.groups {
        let _ = writeln!(
            out,
            "{indent}subgraph {}[\"{}\"]",
            nested.id,
            escape(&nested.label)
        );
        write_group(out, nested, depth + 1);
        let _ = writeln!(out, "{indent}end");
    }
}

fn shape_text(shape: &Shape) -> String {
    let label = shape
        .lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("<br/>");
    match shape.kind {
        ShapeKind::Step => format!("{}[\"{label}\"]", shape.id),
        ShapeKind::Uses => format!("{}[[\"{label}\"]]", shape.id),
        ShapeKind::Fallback => format!("{}{{{{\"{label}\"}}}}", shape.id),
    }
}

/// Mermaid labels are quoted; quotes and angle brackets become entity codes.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}
