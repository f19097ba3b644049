//! The step graph: ids, `needs` and cycles.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn check_ids(&self) {
        let mut first_seen: HashMap<&str, Span> = HashMap::new();
        for step in self.runbook.all_steps() {
            let id = &step.id;
            if !is_name(&id.value, false) {
                self.error(id.span, format!("invalid step id `{}`", id.value))
                    .help = Some("step ids use lowercase letters, digits and `_`".to_owned());
            }
            if let Some(first) = first_seen.get(id.value.as_str()) {
                let first = *first;
                let problem = Diagnostic::at(
                    self.file,
                    id.span,
                    format!("duplicate step id `{}`", id.value),
                )
                .with_label("used again here")
                .with_related(first, "first used here")
                .with_help("step ids are unique across `steps` and `finally`");
                self.problems.borrow_mut().push(problem);
            } else {
                first_seen.insert(&id.value, id.span);
            }
        }
    }

    pub(super) fn check_needs(&self) {
        let known: Vec<&str> = self.dag.ids.iter().map(String::as_str).collect();
        for (index, step) in self.runbook.all_steps().enumerate() {
            let Some(needs) = &step.needs else { continue };
            let mut seen = HashSet::new();
            for name in &needs.value {
                if !seen.insert(name.value.as_str()) {
                    self.error(
                        name.span,
                        format!("`{}` is listed twice in needs", name.value),
                    );
                    continue;
                }
                match self.dag.index_of.get(&name.value) {
                    None if self.loaded.unloaded.steps.contains(&name.value) => {}
                    None => {
                        let help = closest(&name.value, known.iter().copied())
                            .map(|c| format!("did you mean `{c}`?"));
                        self.error(
                            name.span,
                            format!(
                                "step `{}` needs `{}`, which is not a step of this runbook",
                                step.id.value, name.value
                            ),
                        )
                        .help = help;
                    }
                    Some(&needed) => {
                        if self.dag.sections[index] == Section::Finally
                            && self.dag.sections[needed] == Section::Steps
                        {
                            self.error(
                                name.span,
                                format!(
                                    "`finally` step `{}` needs `{}`, which is not a `finally` step",
                                    step.id.value, name.value
                                ),
                            )
                            .help = Some("`finally` steps run after every other step has ended; their needs name only `finally` steps".to_owned());
                        }
                        if self.dag.sections[index] == Section::Steps
                            && self.dag.sections[needed] == Section::Finally
                        {
                            self.error(
                                name.span,
                                format!(
                                    "step `{}` needs `{}`, a `finally` step; `finally` steps run after all others",
                                    step.id.value, name.value
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    pub(super) fn check_cycles(&self) {
        for cycle in self.dag.cycles() {
            let mut names: Vec<&str> = cycle.iter().map(|&i| self.dag.ids[i].as_str()).collect();
            names.push(names[0]);
            let mut problem: Option<Diagnostic> = None;
            for (position, &step) in cycle.iter().enumerate() {
                let next = cycle[(position + 1) % cycle.len()];
                let span = self.dag.needs[step]
                    .iter()
                    .find(|n| n.step == next)
                    .and_then(|n| n.written_at)
                    .unwrap_or_else(|| self.step(step).id.span);
                let label = format!("`{}` needs `{}`", self.dag.ids[step], self.dag.ids[next]);
                problem = Some(match problem {
                    None => Diagnostic::at(
                        self.file,
                        span,
                        format!("dependency cycle: {}", names.join(" -> ")),
                    )
                    .with_label(label),
                    Some(p) => p.with_related(span, label),
                });
            }
            if let Some(problem) = problem {
                self.problems.borrow_mut().push(problem.with_help(
                    "a step cannot wait, directly or not, for itself; remove one of these needs",
                ));
            }
        }
    }
}
