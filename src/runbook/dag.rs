//! The DAG of a runbook's steps: who needs whom, cycles, and the stages a plan shows.

use crate::runbook::{Runbook, Span, Step};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// Where a step sits: in `steps` or in `finally`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Steps,
    Finally,
}

/// One dependency of a step: the step it needs, and where the `needs` entry is written
/// (`None` when implied by the order of the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub step: usize,
    pub written_at: Option<Span>,
}

/// The steps of one runbook as a graph. Steps are numbered in file order, `steps` first,
/// then `finally`; an edge goes from a dependency to the step that needs it.
#[derive(Debug, Clone)]
pub struct Dag {
    pub ids: Vec<String>,
    pub sections: Vec<Section>,
    pub needs: Vec<Vec<Need>>,
    pub index_of: HashMap<String, usize>,
    pub graph: DiGraph<usize, ()>,
}

impl Dag {
    /// Builds the graph. Names in `needs` that match no step are left out (validation
    /// reports them); so are duplicate ids after the first.
    pub fn new(runbook: &Runbook) -> Dag {
        let all: Vec<(&Step, Section)> = runbook
            .steps
            .iter()
            .map(|s| (s, Section::Steps))
            .chain(runbook.finally.iter().map(|s| (s, Section::Finally)))
            .collect();
        let mut index_of = HashMap::with_capacity(all.len());
        for (index, (step, _)) in all.iter().enumerate() {
            index_of.entry(step.id.value.clone()).or_insert(index);
        }
        let mut needs = Vec::with_capacity(all.len());
        for (index, (step, section)) in all.iter().enumerate() {
            let step_needs = match &step.needs {
                Some(list) => list
                    .value
                    .iter()
                    .filter_map(|name| {
                        index_of.get(&name.value).map(|&step| Need {
                            step,
                            written_at: Some(name.span),
                        })
                    })
                    .collect(),
                // Omitted: the step before it in the same list.
                None => {
                    let first_of_section = match section {
                        Section::Steps => 0,
                        Section::Finally => runbook.steps.len(),
                    };
                    if index > first_of_section {
                        vec![Need {
                            step: index - 1,
                            written_at: None,
                        }]
                    } else {
                        Vec::new()
                    }
                }
            };
            needs.push(step_needs);
        }
        let mut graph = DiGraph::with_capacity(all.len(), all.len());
        for index in 0..all.len() {
            graph.add_node(index);
        }
        for (index, step_needs) in needs.iter().enumerate() {
            for need in step_needs {
                graph.add_edge(NodeIndex::new(need.step), NodeIndex::new(index), ());
            }
        }
        Dag {
            ids: all.iter().map(|(s, _)| s.id.value.clone()).collect(),
            sections: all.iter().map(|(_, section)| *section).collect(),
            needs,
            index_of,
            graph,
        }
    }

    /// The steps of `steps` whose `has_undo` is set, in stages of the order their undos run:
    /// a step comes after every step with an undo that depends on it, directly or through
    /// steps without one; steps in one stage are independent of each other.
    pub fn undo_stages(&self, has_undo: &[bool]) -> Vec<Vec<usize>> {
        let members: Vec<usize> = (0..self.len())
            .filter(|&i| self.sections[i] == Section::Steps)
            .collect();
        // Dependents come later in a topological order; walking it backwards, each step's
        // level is known once every dependent's is.
        let Ok(order) = petgraph::algo::toposort(&self.graph, None) else {
            return Vec::new();
        };
        let mut level = vec![0usize; self.len()];
        for node in order.into_iter().rev() {
            let index = node.index();
            for need in &self.needs[index] {
                let after = level[index] + usize::from(has_undo[index]);
                level[need.step] = level[need.step].max(after);
            }
        }
        let mut stages: Vec<Vec<usize>> = Vec::new();
        for index in members.into_iter().filter(|&i| has_undo[i]) {
            if stages.len() <= level[index] {
                stages.resize(level[index] + 1, Vec::new());
            }
            stages[level[index]].push(index);
        }
        stages.retain(|stage| !stage.is_empty());
        stages
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every dependency cycle, each as the steps in order around it (the first step is
    /// not repeated at the end).
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles = Vec::new();
        for component in petgraph::algo::tarjan_scc(&self.graph) {
            let members: std::collections::HashSet<usize> =
                component.iter().map(|n| n.index()).collect();
            let start = *members.iter().min().expect("a component is never empty");
            let self_loop = self.needs[start].iter().any(|n| n.step == start);
            if members.len() == 1 && !self_loop {
                continue;
            }
            cycles.push(self.cycle_through(start, &members));
        }
        cycles.sort();
        cycles
    }

    /// A cycle inside one strongly connected component, found by walking `needs` edges
    /// (step -> a step it needs) until a step repeats.
    fn cycle_through(
        &self,
        start: usize,
        members: &std::collections::HashSet<usize>,
    ) -> Vec<usize> {
        let mut path = vec![start];
        let mut position = HashMap::from([(start, 0usize)]);
        let mut current = start;
        loop {
            let next = self.needs[current]
                .iter()
                .map(|n| n.step)
                .filter(|s| members.contains(s))
                .min()
                .expect("every member of a cycle needs another member");
            if let Some(&at) = position.get(&next) {
                // Rotate so the cycle reads from its first step in file order.
                let mut cycle = path[at..].to_vec();
                let lowest = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| **s)
                    .map_or(0, |(i, _)| i);
                cycle.rotate_left(lowest);
                return cycle;
            }
            position.insert(next, path.len());
            path.push(next);
            current = next;
        }
    }

    /// Whether `ancestor` must end before `step` starts.
    pub fn depends_on(&self, step: usize, ancestor: usize) -> bool {
        // Most reads are of a direct dependency: answer those without a walk.
        if self.needs[step].iter().any(|n| n.step == ancestor) {
            return true;
        }
        let mut seen = vec![false; self.len()];
        let mut stack = vec![step];
        while let Some(current) = stack.pop() {
            for need in &self.needs[current] {
                if need.step == ancestor {
                    return true;
                }
                if !seen[need.step] {
                    seen[need.step] = true;
                    stack.push(need.step);
                }
            }
        }
        false
    }

    /// Steps grouped into stages: each stage holds the steps whose dependencies all sit in
    /// earlier stages, so a stage's steps can run in parallel. `finally` steps come after
    /// every other stage. `None` when the graph has a cycle.
    pub fn stages(&self) -> Option<Vec<Vec<usize>>> {
        let order = petgraph::algo::toposort(&self.graph, None).ok()?;
        let mut depth = vec![0usize; self.len()];
        let main_depth = order
            .iter()
            .map(|n| n.index())
            .filter(|&i| self.sections[i] == Section::Steps)
            .fold(0, |deepest, i| {
                let d = self.needs[i]
                    .iter()
                    .map(|n| depth[n.step] + 1)
                    .max()
                    .unwrap_or(0);
                depth[i] = d;
                deepest.max(d + 1)
            });
        for index in order.iter().map(|n| n.index()) {
            if self.sections[index] == Section::Finally {
                depth[index] = self.needs[index]
                    .iter()
                    .map(|n| depth[n.step] + 1)
                    .max()
                    .unwrap_or(0)
                    .max(main_depth);
            }
        }
        let stage_count = depth.iter().map(|d| d + 1).max().unwrap_or(0);
        let mut stages = vec![Vec::new(); stage_count];
        for (index, d) in depth.iter().enumerate() {
            stages[*d].push(index);
        }
        stages.retain(|s| !s.is_empty());
        Some(stages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::diagnostic::SourceFile;
    use crate::runbook::load;

    fn dag(text: &str) -> (Dag, Vec<bool>) {
        let (loaded, problems) = load::load(SourceFile::new("d.yaml", text));
        assert!(problems.is_empty(), "{problems:?}");
        let runbook = loaded.expect("loaded").runbook;
        let has_undo = runbook.all_steps().map(|s| s.undo.is_some()).collect();
        (Dag::new(&runbook), has_undo)
    }

    fn ids(dag: &Dag, stages: Vec<Vec<usize>>) -> Vec<Vec<&str>> {
        stages
            .into_iter()
            .map(|s| s.into_iter().map(|i| dag.ids[i].as_str()).collect())
            .collect()
    }

    /// A step's undo comes after those of every step that depends on it, even through a
    /// step without an undo; `finally` steps are never undone.
    #[test]
    fn undo_stages_reverse_the_graph_through_steps_without_an_undo() {
        let (dag, has_undo) = dag(r#"
version: 1
name: d
steps:
  - id: a
    exec: {command: [a]}
    undo: {exec: {command: [ua]}}
  - id: b
    needs: [a]
    exec: {command: [b]}
  - id: c
    needs: [b]
    exec: {command: [c]}
    undo: {exec: {command: [uc]}}
  - id: d
    needs: [a]
    exec: {command: [d]}
    undo: {exec: {command: [ud]}}
  - id: e
    needs: []
    exec: {command: [e]}
    undo: {exec: {command: [ue]}}
finally:
  - id: f
    exec: {command: [f]}
"#);
        assert_eq!(
            ids(&dag, dag.undo_stages(&has_undo)),
            [vec!["c", "d", "e"], vec!["a"]]
        );
    }
}
