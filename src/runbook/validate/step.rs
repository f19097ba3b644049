//! One step's own settings: its bodies (action, fallback, verify), retries, timeouts,
//! polling and outputs.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn check_step(&self, index: usize, step: &'a Step) {
        let scope = Scope {
            step: Some(index),
            for_each: step.for_each.is_some(),
            notice: false,
        };
        self.check_actions(
            &step.id,
            &step.actions(),
            step.id.span,
            Some(&step.node),
            "step",
            scope,
        );
        self.check_with_has_uses(step.uses.as_ref(), step.with.as_deref());
        if let Some(fallback) = &step.fallback {
            self.check_with_has_uses(fallback.uses.as_ref(), fallback.with.as_deref());
        }
        if let Some(verify) = &step.verify {
            self.check_with_has_uses(verify.uses.as_ref(), verify.with.as_deref());
        }
        if let Some(undo) = &step.undo {
            self.check_with_has_uses(undo.uses.as_ref(), undo.with.as_deref());
        }
        if let Some(when) = &step.when {
            self.check_jq(when, Root::Context, scope, "when");
        }
        if let Some(for_each) = &step.for_each {
            // `for_each` is evaluated before any instance exists: no `item` yet.
            let outer = Scope {
                for_each: false,
                ..scope
            };
            self.check_jq(for_each, Root::Context, outer, "for_each");
        }
        if let Some(max) = &step.max_parallel {
            if step.for_each.is_none() {
                self.error(
                    max.span,
                    "a step's max_parallel applies only to a for_each step",
                )
                .help = Some(
                    "use max_parallel at the top of the runbook to bound the whole run".to_owned(),
                );
            } else if max.value == 0 {
                self.error(max.span, "max_parallel must be at least 1");
            }
        }
        if let Some(retry) = &step.retry {
            self.check_retry(retry);
        }
        self.check_timeout(step.timeout.as_ref(), "timeout");
        self.check_polling(step.until.as_ref(), step.poll.as_ref(), scope);
        if let Some(outputs) = &step.outputs {
            self.check_outputs(outputs, scope);
        }
        self.check_action_values(&step.node, &step.actions(), scope);
        if let Some(notice) = &step.notice {
            let scope = Scope {
                notice: true,
                ..scope
            };
            self.check_template_text(&notice.value, notice.span, scope);
        }
        if let Some(fallback) = &step.fallback {
            let actions = fallback.actions();
            self.check_actions(
                &step.id,
                &actions,
                fallback.span,
                step.node.get("fallback"),
                "fallback",
                scope,
            );
            if let Some(retry) = &fallback.retry {
                self.check_retry(retry);
            }
            self.check_timeout(fallback.timeout.as_ref(), "fallback.timeout");
            self.check_polling(fallback.until.as_ref(), fallback.poll.as_ref(), scope);
            if let Some(outputs) = &fallback.outputs {
                self.check_outputs(outputs, scope);
            }
            if let Some(node) = step.node.get("fallback") {
                self.check_action_values(node, &actions, scope);
            }
        }
        if let Some(verify) = &step.verify {
            let actions = verify.actions();
            self.check_actions(
                &step.id,
                &actions,
                verify.span,
                step.node.get("verify"),
                "verify",
                scope,
            );
            self.check_jq(&verify.that, Root::Result, scope, "verify.that");
            if let Some(outputs) = &verify.outputs {
                self.check_outputs(outputs, scope);
            }
            if let Some(node) = step.node.get("verify") {
                self.check_action_values(node, &actions, scope);
            }
        }
        if let Some(undo) = &step.undo {
            self.check_undo(index, step, undo, scope);
        }
    }

    /// A step's `undo`: one action that does not wait for a person, on a step of `steps`.
    /// It reads the step's own end (`step.outputs`), as a notice does.
    fn check_undo(&self, index: usize, step: &'a Step, undo: &'a Spanned<Undo>, scope: Scope) {
        if self.dag.sections[index] == Section::Finally {
            self.error(undo.span, "a `finally` step cannot have an `undo`")
                .help = Some(
                "`finally` runs after the undo, whatever happened; move the step to `steps`, \
                 or remove `undo`"
                    .to_owned(),
            );
        }
        let actions = undo.actions();
        self.check_actions(
            &step.id,
            &actions,
            undo.span,
            step.node.get("undo"),
            "undo",
            scope,
        );
        if let Some(approval) = &undo.approval {
            self.error(approval.span, "an `undo` cannot wait for an approval")
                .help = Some(
                "an undo runs when the run is being taken back, often with nobody watching; \
                 put the approval in a step of its own"
                    .to_owned(),
            );
        }
        if let Some(retry) = &undo.retry {
            self.check_retry(retry);
        }
        self.check_timeout(undo.timeout.as_ref(), "undo.timeout");
        let scope = Scope {
            notice: true,
            ..scope
        };
        self.check_polling(undo.until.as_ref(), undo.poll.as_ref(), scope);
        if let Some(node) = step.node.get("undo") {
            self.check_action_values(node, &actions, scope);
        }
    }

    pub(super) fn check_with_has_uses(
        &self,
        uses: Option<&Spanned<String>>,
        with: Option<&Spanned<SpannedMap<Node>>>,
    ) {
        if let (None, Some(with)) = (uses, with) {
            self.error(
                with.span,
                "`with` gives inputs to a called runbook, but there is no `uses`",
            )
            .help = Some("add `uses: path/to/runbook.yaml`, or remove `with`".to_owned());
        }
    }

    pub(super) fn check_retry(&self, retry: &Spanned<Retry>) {
        if retry.attempts.value == 0 {
            self.error(retry.attempts.span, "retry attempts must be at least 1")
                .help = Some("attempts counts the first try: 1 means no retry".to_owned());
        }
        if let Some(backoff) = &retry.backoff
            && !(backoff.value >= 1.0 && backoff.value.is_finite())
        {
            self.error(
                backoff.span,
                "retry backoff must be a number of at least 1.0",
            );
        }
    }

    /// A timeout of the runbook is at least [`MIN_TIMEOUT`].
    pub(super) fn check_timeout(&self, timeout: Option<&Spanned<Duration>>, what: &str) {
        if let Some(timeout) = timeout
            && timeout.value.0 < MIN_TIMEOUT
        {
            self.error(
                timeout.span,
                format!(
                    "`{what}` is {}, shorter than the shortest timeout, {}",
                    timeout.value,
                    Duration(MIN_TIMEOUT)
                ),
            )
            .help = Some(
                "a timeout this short ends every attempt before it can do anything; \
                 give the longest the work may take, such as 30s or 5m"
                    .to_owned(),
            );
        }
    }

    pub(super) fn check_polling(
        &self,
        until: Option<&'a Spanned<String>>,
        poll: Option<&Spanned<Poll>>,
        scope: Scope,
    ) {
        if let Some(poll) = poll {
            self.check_timeout(poll.timeout.as_ref(), "poll.timeout");
            if let Some(interval) = &poll.interval
                && interval.value.0 < MIN_POLL_INTERVAL
            {
                self.error(
                    interval.span,
                    format!(
                        "`poll.interval` is {}, shorter than the shortest poll interval, {}",
                        interval.value,
                        Duration(MIN_POLL_INTERVAL)
                    ),
                )
                .help = Some(
                    "the action runs again after each interval: a shorter one would start it \
                     many times a second; 1s or more suits most waits"
                        .to_owned(),
                );
            }
        }
        if let Some(until) = until {
            self.check_jq(until, Root::Result, scope, "until");
        } else if let Some(poll) = poll {
            self.error(poll.span, "`poll` has no effect without `until`")
                .help =
                Some("add `until:` with the condition to wait for, or remove `poll`".to_owned());
        }
    }

    pub(super) fn check_outputs(
        &self,
        outputs: &'a Spanned<SpannedMap<Spanned<String>>>,
        scope: Scope,
    ) {
        for (name, expression) in outputs.value.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid output name `{}`", name.value))
                    .help = Some("output names use letters, digits and `_`".to_owned());
            }
            self.check_jq(expression, Root::Result, scope, "output");
        }
    }
}
