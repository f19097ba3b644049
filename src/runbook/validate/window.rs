//! Windows: a step's `window` and the runbook's `on_window_close`.

use super::*;

impl Checker<'_> {
    pub(super) fn check_windows(&self) {
        if let Some(policy) = &self.runbook.on_window_close
            && policy.value == OnWindowClose::Undo
        {
            self.error(
                policy.span,
                "`on_window_close: undo` is not available yet: undoing what a run did comes \
                 with operator controls",
            )
            .help = Some(
                "use `park` (stop starting steps, resume in a later window) or `fail`".to_owned(),
            );
        }
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
        }
    }
}
