//! A drawing of a runbook's DAG, independent of the format it is printed in: the steps, the
//! runbooks they call through `uses` (as nested groups) and their fallbacks.

use crate::runbook::dag::{Dag, Section};
use crate::runbook::load::Loaded;
use crate::runbook::validate::Bundle;
use crate::runbook::{ActionRef, Step};

/// A box in the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Unique in the drawing, safe in Mermaid and dot: letters, digits and `_`.
    pub id: String,
    /// Lines of text, the first being the step path.
    pub lines: Vec<String>,
    pub kind: ShapeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    Step,
    /// A step that runs another runbook.
    Uses,
    Fallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// The second step needs the first.
    Needs,
    /// A step and the runbook it runs.
    Uses,
    /// A step and the fallback that runs when it fails.
    Fallback,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

/// A group of shapes: the `finally` steps, or the steps of a called runbook.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub id: String,
    pub label: String,
    pub shapes: Vec<Shape>,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Picture {
    pub title: String,
    pub top: Group,
    pub edges: Vec<Edge>,
}

/// How deep called runbooks are drawn; validation already refuses cycles, this only keeps a
/// drawing readable.
const MAX_USES_DEPTH: usize = 8;

impl Picture {
    pub fn new(bundle: &Bundle) -> Option<Picture> {
        let root = bundle.root()?;
        let mut picture = Picture {
            title: root.runbook.name.value.clone(),
            ..Picture::default()
        };
        let mut top = Group::default();
        picture.draw_runbook(bundle, root, "", &mut top, 0);
        picture.top = top;
        Some(picture)
    }

    fn draw_runbook(
        &mut self,
        bundle: &Bundle,
        loaded: &Loaded,
        prefix: &str,
        group: &mut Group,
        depth: usize,
    ) -> Vec<String> {
        let dag = Dag::new(&loaded.runbook);
        let steps: Vec<&Step> = loaded.runbook.all_steps().collect();
        let mut finally = Group {
            id: format!("{}finally", safe_id(prefix)),
            label: "finally".to_owned(),
            ..Group::default()
        };
        let id_of = |index: usize| safe_id(&format!("{prefix}{}", dag.ids[index]));
        let mut roots = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let path = format!("{prefix}{}", step.id.value);
            let id = id_of(index);
            let mut lines = vec![path.clone()];
            if let Some(for_each) = &step.for_each {
                lines.push(format!("for each {}", for_each.value));
            }
            if let Some(when) = &step.when {
                lines.push(format!("when {}", when.value));
            }
            let action = step.action();
            lines.push(action.map(describe).unwrap_or_default());
            let kind = if step.uses.is_some() {
                ShapeKind::Uses
            } else {
                ShapeKind::Step
            };
            let target = if dag.sections[index] == Section::Finally {
                &mut finally
            } else {
                &mut *group
            };
            target.shapes.push(Shape {
                id: id.clone(),
                lines,
                kind,
            });
            if let Some(ActionRef::Uses(uses, _)) = action {
                self.draw_uses(bundle, loaded, &uses.value, &path, &id, target, depth);
            }
            if let Some(fallback) = &step.fallback {
                let fallback_id = format!("{id}__fallback");
                let action = fallback.action();
                target.shapes.push(Shape {
                    id: fallback_id.clone(),
                    lines: vec![
                        format!("{path} fallback"),
                        action.map(describe).unwrap_or_default(),
                    ],
                    kind: ShapeKind::Fallback,
                });
                self.edges.push(Edge {
                    from: id.clone(),
                    to: fallback_id.clone(),
                    kind: EdgeKind::Fallback,
                });
                if let Some(ActionRef::Uses(uses, _)) = action {
                    self.draw_uses(
                        bundle,
                        loaded,
                        &uses.value,
                        &format!("{path}.fallback"),
                        &fallback_id,
                        target,
                        depth,
                    );
                }
            }
            if dag.needs[index].is_empty() && dag.sections[index] == Section::Steps {
                roots.push(id.clone());
            }
            for need in &dag.needs[index] {
                self.edges.push(Edge {
                    from: id_of(need.step),
                    to: id.clone(),
                    kind: EdgeKind::Needs,
                });
            }
        }
        if !finally.shapes.is_empty() {
            group.groups.push(finally);
        }
        roots
    }

    #[allow(clippy::too_many_arguments)]
    fn draw_uses(
        &mut self,
        bundle: &Bundle,
        caller: &Loaded,
        uses: &str,
        path: &str,
        from: &str,
        group: &mut Group,
        depth: usize,
    ) {
        if depth >= MAX_USES_DEPTH {
            return;
        }
        let Some(called) = bundle.called(caller, uses) else {
            return;
        };
        let mut nested = Group {
            id: format!("{from}__uses"),
            label: format!("{path}: {uses}"),
            ..Group::default()
        };
        let roots = self.draw_runbook(bundle, called, &format!("{path}/"), &mut nested, depth + 1);
        for root in roots {
            self.edges.push(Edge {
                from: from.to_owned(),
                to: root,
                kind: EdgeKind::Uses,
            });
        }
        group.groups.push(nested);
    }
}

/// A one-line summary of an action, as a person would say it; each action says its own.
pub fn describe(action: ActionRef<'_>) -> String {
    action.describe()
}

/// Mermaid and dot ids: letters, digits and `_`; anything else becomes `_` plus its code,
/// so distinct step paths stay distinct ids.
fn safe_id(path: &str) -> String {
    let mut id = String::with_capacity(path.len() + 2);
    id.push_str("s_");
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            id.push(c);
        } else {
            id.push_str(&format!("_{:x}_", c as u32));
        }
    }
    id
}
