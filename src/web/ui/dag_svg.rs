//! The runbook's DAG as an SVG picture, left to right: a step stands one column after the
//! last step it needs; the `finally` steps come last. Each box says the step's status in
//! words, with its mark, not by colour alone.

use super::page::escape;
use crate::plan::picture::{EdgeKind, Group, Picture, Shape, ShapeKind};
use crate::report::run_report::RunReport;
use std::collections::HashMap;
use std::fmt::Write;

const BOX_WIDTH: f64 = 210.0;
const COLUMN: f64 = 250.0;
const LINE: f64 = 14.0;
const GAP: f64 = 14.0;
const MARGIN: f64 = 10.0;
/// Characters of a line that fit in a box.
const LINE_CHARS: usize = 32;

struct Placed<'p> {
    shape: &'p Shape,
    finally: bool,
    x: f64,
    y: f64,
    height: f64,
}

pub fn render(picture: &Picture, report: &RunReport) -> String {
    let mut shapes: Vec<(&Shape, bool)> = Vec::new();
    collect(&picture.top, false, &mut shapes);
    let index: HashMap<&str, usize> = shapes
        .iter()
        .enumerate()
        .map(|(n, (shape, _))| (shape.id.as_str(), n))
        .collect();
    // Longest path from a root; edges only go forward, so as many passes as shapes settle it.
    let mut column = vec![0usize; shapes.len()];
    for _ in 0..shapes.len() {
        let mut changed = false;
        for edge in &picture.edges {
            if let (Some(&from), Some(&to)) =
                (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
                && column[to] < column[from] + 1
            {
                column[to] = column[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let last_step_column = shapes
        .iter()
        .zip(&column)
        .filter(|((_, finally), _)| !finally)
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(0);
    let mut placed: Vec<Placed> = Vec::with_capacity(shapes.len());
    let mut next_y: HashMap<usize, f64> = HashMap::new();
    for ((shape, finally), column) in shapes.iter().zip(&column) {
        let column = if *finally {
            last_step_column + 1 + column
        } else {
            *column
        };
        let lines = lines(shape, report).len() as f64;
        let height = LINE * lines + 10.0;
        let y = next_y.entry(column).or_insert(MARGIN + 16.0);
        placed.push(Placed {
            shape,
            finally: *finally,
            x: MARGIN + COLUMN * column as f64,
            y: *y,
            height,
        });
        *y += height + GAP;
    }
    let width = placed
        .iter()
        .map(|p| p.x + BOX_WIDTH + MARGIN)
        .fold(BOX_WIDTH + 2.0 * MARGIN, f64::max);
    let height = next_y.values().fold(60.0_f64, |a, b| a.max(*b)) + MARGIN;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"The steps of {} and what each needs\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#57606a\"/></marker></defs>",
        escape(&picture.title)
    );
    let by_id: HashMap<&str, &Placed> = placed.iter().map(|p| (p.shape.id.as_str(), p)).collect();
    for edge in &picture.edges {
        let (Some(from), Some(to)) = (by_id.get(edge.from.as_str()), by_id.get(edge.to.as_str()))
        else {
            continue;
        };
        let dash = match edge.kind {
            EdgeKind::Needs => "",
            EdgeKind::Uses | EdgeKind::Fallback => "4 3",
        };
        let (x1, y1) = (from.x + BOX_WIDTH, from.y + from.height / 2.0);
        let (x2, y2) = (to.x, to.y + to.height / 2.0);
        let _ = writeln!(
            out,
            "<path d=\"M {x1:.1} {y1:.1} C {:.1} {y1:.1}, {:.1} {y2:.1}, {x2:.1} {y2:.1}\" fill=\"none\" \
             stroke=\"#57606a\" stroke-dasharray=\"{dash}\" marker-end=\"url(#arrow)\"/>",
            x1 + 20.0,
            x2 - 20.0
        );
    }
    if placed.iter().any(|p| p.finally) {
        let x = MARGIN + COLUMN * (last_step_column + 1) as f64;
        let _ = writeln!(out, "<text x=\"{x:.1}\" y=\"14\">finally</text>");
    }
    for place in &placed {
        let status = step_status(place.shape, report);
        let (fill, dash) = match place.shape.kind {
            ShapeKind::Step => ("#f6f8fa", ""),
            ShapeKind::Uses => ("#ddf4ff", ""),
            ShapeKind::Fallback => ("#fff8c5", "5 3"),
        };
        let _ = writeln!(
            out,
            "<g class=\"node\" data-step=\"{}\" data-status=\"{}\"><rect x=\"{:.1}\" y=\"{:.1}\" \
             width=\"{BOX_WIDTH}\" height=\"{:.1}\" rx=\"4\" fill=\"{fill}\" stroke=\"#57606a\" \
             stroke-dasharray=\"{dash}\"/>",
            escape(&place.shape.lines[0]),
            escape(status.unwrap_or("")),
            place.x,
            place.y,
            place.height
        );
        for (number, line) in lines(place.shape, report).iter().enumerate() {
            let weight = if number == 0 {
                " font-weight=\"bold\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\"{weight}>{}</text>",
                place.x + 6.0,
                place.y + 16.0 + LINE * number as f64,
                escape(line)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>");
    out
}

fn collect<'p>(group: &'p Group, finally: bool, out: &mut Vec<(&'p Shape, bool)>) {
    for shape in &group.shapes {
        out.push((shape, finally));
    }
    for nested in &group.groups {
        let finally = finally || nested.label == "finally";
        collect(nested, finally, out);
    }
}

fn step_status<'r>(shape: &Shape, report: &'r RunReport) -> Option<&'r str> {
    let path = shape.lines.first()?;
    report
        .steps
        .iter()
        .find(|step| &step.path == path)
        .map(|step| step.status.name())
}

/// The box's lines: the step, what it does, and its status in this run.
fn lines(shape: &Shape, report: &RunReport) -> Vec<String> {
    let mut lines: Vec<String> = shape
        .lines
        .iter()
        .filter(|line| !line.is_empty())
        .map(|line| cut(line))
        .collect();
    let status = step_status(shape, report).unwrap_or("not started");
    lines.push(format!("{} {status}", crate::report::html::mark(status)));
    lines
}

fn cut(line: &str) -> String {
    if line.chars().count() <= LINE_CHARS {
        return line.to_owned();
    }
    let kept: String = line.chars().take(LINE_CHARS - 1).collect();
    format!("{kept}…")
}
