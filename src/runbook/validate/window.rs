//! Windows: a step's `window` and the runbook's `on_window_close`.

use super::*;

impl Checker<'_> {
    pub(super) fn check_windows(&self) {
        for (index, step) in self.steps.iter().enumerate() {
            let Some(window) = &step.window else {
                continue;
            };
            if self.dag.sections[index] == Section::Finally {
                self.error(
                    window.span,
                    format!(
                        "`finally` step `{}` cannot have a `window`: `finally` always runs",
                        step.id.value
                    ),
                )
                .help = Some("gate the step of `steps` that starts the work instead".to_owned());
            }
            match (window.needs.value, &window.estimate) {
                (WindowNeed::Auto, None) => {
                    self.error(
                        window.needs.span,
                        "`needs: auto` needs an `estimate` for when the journal holds too \
                         little history (the first runs of a runbook have none)",
                    )
                    .help =
                        Some("add `estimate: 20m`, or declare the need: `needs: 30m`".to_owned());
                }
                (WindowNeed::Declared(_), Some(estimate)) => {
                    self.error(
                        estimate.span,
                        "`estimate` is only read by `needs: auto`; this step declares its need",
                    )
                    .help = Some("remove `estimate`, or write `needs: auto`".to_owned());
                }
                _ => {}
            }
            if let Some(through) = &window.through {
                self.check_through(index, step, window, through);
            }
        }
    }

    /// `through` names a step of this runbook that runs after the gated one (it needs it,
    /// directly or not), and is read only by `needs: auto`.
    fn check_through(
        &self,
        index: usize,
        step: &Step,
        window: &StepWindow,
        through: &Spanned<String>,
    ) {
        if !matches!(window.needs.value, WindowNeed::Auto) {
            self.error(
                through.span,
                "`through` is only read by `needs: auto`; this step declares its need",
            )
            .help = Some("remove `through`, or write `needs: auto`".to_owned());
            return;
        }
        let Some(&target) = self.dag.index_of.get(&through.value) else {
            let message = format!(
                "`through` names no step of this runbook: `{}`",
                through.value
            );
            let help = closest(&through.value, self.dag.ids.iter().map(String::as_str))
                .map(|near| format!("did you mean `{near}`?"));
            self.error(through.span, message).help = help;
            return;
        };
        if target == index || !self.dag.depends_on(target, index) {
            self.error(
                through.span,
                format!(
                    "`through: {}` must name a step that runs after `{}` (one that needs it, \
                     directly or through others)",
                    through.value, step.id.value
                ),
            )
            .help = Some(
                "name the last step the window must hold, such as the one that verifies the \
                 restart"
                    .to_owned(),
            );
        }
    }
}
