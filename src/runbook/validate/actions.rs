//! Each body names exactly one action, and each action's own rules.

use super::references::{declared_list, inner_span};
use super::*;

impl<'a> Checker<'a> {
    /// Exactly one action per body, and each action's own rules.
    pub(super) fn check_actions(
        &self,
        id: &Spanned<String>,
        actions: &[ActionRef<'a>],
        body_span: Span,
        body_node: Option<&Node>,
        what: &str,
        scope: Scope,
    ) {
        let subject = if what == "step" {
            format!("step `{}`", id.value)
        } else {
            format!("the {what} of step `{}`", id.value)
        };
        match actions {
            [] if self.loaded.unloaded.damaged_steps.contains(&id.value) => {}
            // A misspelt action (`exce:`) is already reported as an unknown key.
            [] if body_node.is_some_and(misspells_an_action) => {}
            [] => {
                let span = if what == "step" { id.span } else { body_span };
                self.error(span, format!("{subject} has no action")).help = Some(format!(
                    "give exactly one of {}",
                    ACTION_KEYS
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            [_] => {}
            [first, second, ..] => {
                let problem = Diagnostic::at(
                    self.file,
                    second.span(),
                    format!(
                        "{subject} has {} actions: `{}` and `{}`",
                        if actions.len() == 2 {
                            "two".to_owned()
                        } else {
                            actions.len().to_string()
                        },
                        first.key(),
                        second.key()
                    ),
                )
                .with_label("second action")
                .with_related(first.span(), "first action")
                .with_help("a step does exactly one thing; split it into two steps");
                self.problems.borrow_mut().push(problem);
            }
        }
        for action in actions {
            match (action, action.body()) {
                (ActionRef::Uses(uses, with), _) => self.check_uses(uses, *with),
                (_, Some(body)) => {
                    body.check_rules(action.span(), &self.action_checks(None, scope))
                }
                (_, None) => {}
            }
        }
    }

    /// Templates in every string of each action, and jq where an action holds jq: each
    /// action says which of its fields are which.
    pub(super) fn check_action_values(&self, body: &Node, actions: &[ActionRef<'a>], scope: Scope) {
        for action in actions {
            match (action, action.body()) {
                (ActionRef::Uses(..), _) => {
                    if let Some(with) = body.get("with") {
                        self.check_templates_in(with, scope);
                    }
                }
                (_, Some(action_body)) => {
                    let checks = self.action_checks(body.get(action.key()), scope);
                    action_body.check_values(&checks);
                }
                (_, None) => {}
            }
        }
    }

    /// The checks an action's own rules use, for one body of one step.
    fn action_checks<'c>(
        &'c self,
        body: Option<&'c Node>,
        scope: Scope,
    ) -> StepActionChecks<'c, 'a> {
        StepActionChecks {
            checker: self,
            body,
            scope,
        }
    }

    /// Values in a script stand only where the shell takes them as data (see
    /// `template::shell`); the others are refused here, at their place.
    pub(super) fn check_script_values(&self, text: &str, span: Span) {
        if !text.contains("{{") {
            return;
        }
        // A script that does not parse is reported by the template check.
        let Ok(problems) = template::check_script(text) else {
            return;
        };
        for problem in problems {
            let at = inner_span(self.file, span, text, problem.span);
            let mut diagnostic = self.error(at, problem.problem.reason);
            diagnostic.labels[0].1 = "this value".to_owned();
            diagnostic.help = Some(problem.problem.help.to_owned());
        }
    }

    pub(super) fn check_uses(
        &self,
        uses: &Spanned<String>,
        with: Option<&Spanned<SpannedMap<Node>>>,
    ) {
        let Some(called) = self.bundle.called(self.loaded, &uses.value) else {
            return;
        };
        let declared = &called.runbook.inputs;
        if let Some(with) = with {
            for key in with.value.keys() {
                if !declared.contains_key(&key.value)
                    && !called.unloaded.inputs.contains(&key.value)
                {
                    let help = closest(&key.value, declared.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| {
                            declared_list("inputs", declared.keys().map(|k| k.value.as_str()))
                        });
                    self.error(
                        key.span,
                        format!("`{}` does not declare an input `{}`", uses.value, key.value),
                    )
                    .help = Some(help);
                }
            }
        }
        let missing: Vec<&str> = declared
            .iter()
            .filter(|(name, input)| {
                input.default.is_none() && !with.is_some_and(|w| w.value.contains_key(&name.value))
            })
            .map(|(name, _)| name.value.as_str())
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.error(
                uses.span,
                format!(
                    "`{}` requires {} {list}, not given in `with`",
                    uses.value,
                    if missing.len() == 1 {
                        "input"
                    } else {
                        "inputs"
                    }
                ),
            );
        }
    }
}

/// Whether a mapping has a key that is not an action but is close to one.
pub(super) fn misspells_an_action(node: &Node) -> bool {
    node.as_map().is_some_and(|entries| {
        entries.iter().any(|(key, _)| {
            !ACTION_KEYS.contains(&key.name.as_str())
                && closest(&key.name, ACTION_KEYS.iter().copied()).is_some()
        })
    })
}

/// [`ActionChecks`] for the action of one body of one step.
struct StepActionChecks<'c, 'a> {
    checker: &'c Checker<'a>,
    /// The action's body as written (`step.node["exec"]`), when there is one.
    body: Option<&'c Node>,
    scope: Scope,
}

impl<'a> ActionChecks<'a> for StepActionChecks<'_, 'a> {
    fn error(&self, at: Span, message: String, help: Option<String>) {
        self.checker.error(at, message).help = help;
    }

    fn timeout(&self, timeout: Option<&Spanned<Duration>>, what: &str) {
        self.checker.check_timeout(timeout, what);
    }

    fn jq(&self, expression: &'a Spanned<String>, root: Root, what: &'static str) {
        self.checker.check_jq(expression, root, self.scope, what);
    }

    fn template(&self, text: &Spanned<String>) {
        self.checker
            .check_template_text(&text.value, text.span, self.scope);
    }

    fn templates_in_body(&self, skip: Option<Span>) {
        if let Some(body) = self.body {
            self.checker.check_templates_except(body, self.scope, skip);
        }
    }

    fn script_values(&self, script: &Spanned<String>) {
        self.checker.check_script_values(&script.value, script.span);
    }
}
