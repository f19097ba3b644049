//! The DAG in Graphviz dot.

use super::picture::{EdgeKind, Group, Picture, ShapeKind};
use std::fmt::Write;

pub fn render(picture: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&picture.title));
    let _ = writeln!(
        out,
        "    rankdir=TB;\n    node [shape=box, fontname=\"Helvetica\"];"
    );
    write_group(&mut out, &picture.top, 1);
    for edge in &picture.edges {
        let style = match edge.kind {
            EdgeKind::Needs => String::new(),
            EdgeKind::Uses => " [style=dashed, label=\"uses\"]".to_owned(),
            EdgeKind::Fallback => {
                " [style=dashed, color=\"#b35900\", label=\"fallback\"]".to_owned()
            }
        };
        let _ = writeln!(out, "    {} -> {}{style};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}

fn write_group(out: &mut String, group: &Group, depth: usize) {
    let indent = "    ".repeat(depth);
    for shape in &group.shapes {
        let label = shape
            .lines
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("\\n");
        let style = match shape.kind {
            ShapeKind::Step => "",
            ShapeKind::Uses => ", peripheries=2",
            ShapeKind::Fallback => ", shape=hexagon, color=\"#b35900\"",
        };
        let _ = writeln!(out, "{indent}{} [label=\"{label}\"{style}];", shape.id);
    }
    for nested in &group.groups {
        let _ = writeln!(out, "{indent}subgraph cluster_{} {{", nested.id);
        let _ = writeln!(
            out,
            "{indent}    label=\"{}\";\n{indent}    style=dashed;",
            escape(&nested.label)
        );
        write_group(out, nested, depth + 1);
        let _ = writeln!(out, "{indent}}}");
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
