//! `objectives`: each measured one way (`from` and `to`, or `value`), between steps that
//! exist, with a jq `value` that compiles and a target longer than nothing.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn check_objectives(&self) {
        for (name, objective) in self.runbook.objectives.iter() {
            if !is_identifier(&name.value) {
                self.error(
                    name.span,
                    format!("invalid objective name `{}`", name.value),
                )
                .help = Some(
                    "objective names use letters, digits and `_` (rto, rpo, time_to_running)"
                        .to_owned(),
                );
            }
            let between = objective.from.is_some() || objective.to.is_some();
            match (&objective.from, &objective.to, &objective.value) {
                (_, _, Some(_)) if between => {
                    self.error(
                        name.span,
                        format!("objective `{}` sets both `value` and `from`/`to`", name.value),
                    )
                    .help = Some(
                        "measure a time between two moments (`from` and `to`) or compute one (`value`), not both"
                            .to_owned(),
                    );
                }
                (Some(_), None, None) | (None, Some(_), None) => {
                    let missing = if objective.from.is_some() {
                        "to"
                    } else {
                        "from"
                    };
                    self.error(
                        name.span,
                        format!("objective `{}` has no `{missing}`", name.value),
                    )
                    .help = Some(
                        "`from` and `to` go together: the time from one to the other is measured"
                            .to_owned(),
                    );
                }
                (None, None, None) => {
                    self.error(
                        name.span,
                        format!("objective `{}` measures nothing", name.value),
                    )
                    .help = Some(
                        "give `from` and `to` (steps, or `run.started` for `from`), or a jq `value` giving seconds"
                            .to_owned(),
                    );
                }
                _ => {}
            }
            if let Some(from) = &objective.from
                && from.value != RUN_STARTED
            {
                self.check_objective_step(from, "from");
            }
            if let Some(to) = &objective.to {
                self.check_objective_step(to, "to");
            }
            if let Some(value) = &objective.value {
                let scope = Scope {
                    step: None,
                    for_each: false,
                    notice: false,
                };
                self.check_jq(value, Root::Context, scope, "objective value");
            }
            if objective.target.value.0.is_zero() {
                self.error(
                    objective.target.span,
                    "an objective's target must be more than 0s",
                );
            }
        }
    }

    /// `from` and `to` name a step of this runbook (`steps` or `finally`).
    fn check_objective_step(&self, step: &Spanned<String>, key: &str) {
        let known: Vec<&str> = self.steps.iter().map(|s| s.id.value.as_str()).collect();
        if known.contains(&step.value.as_str()) || self.loaded.unloaded.steps.contains(&step.value)
        {
            return;
        }
        let mut error = self.error(
            step.span,
            format!("objective `{key}` names no step `{}`", step.value),
        );
        error.help = Some(match closest(&step.value, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None if key == "from" => {
                format!("`from` is a step id of this runbook, or `{RUN_STARTED}`")
            }
            None => "`to` is a step id of this runbook".to_owned(),
        });
    }
}
