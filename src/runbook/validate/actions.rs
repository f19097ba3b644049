//! Each body names exactly one action, and each action's own rules.

use super::references::{declared_list, inner_span};
use super::*;

impl<'a> Checker<'a> {
    /// Exactly one action per body, and each action's own rules.
    pub(super) fn check_actions(
        &self,
        id: &Spanned<String>,
        actions: &[ActionRef<'_>],
        body_span: Span,
        body_node: Option<&Node>,
        what: &str,
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
                    action_span(second),
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
                .with_related(action_span(first), "first action")
                .with_help("a step does exactly one thing; split it into two steps");
                self.problems.borrow_mut().push(problem);
            }
        }
        for action in actions {
            match action {
                ActionRef::Exec(exec) => match (&exec.command, &exec.script) {
                    (None, None) => {
                        self.error(
                            exec.span,
                            "exec needs `command` (a list of arguments) or `script`",
                        );
                    }
                    (Some(command), Some(_)) => {
                        self.error(command.span, "exec takes `command` or `script`, not both");
                    }
                    (Some(command), None) if command.value.is_empty() => {
                        self.error(
                            command.span,
                            "exec `command` is empty: give the program and its arguments",
                        );
                    }
                    _ => {}
                },
                ActionRef::Http(http) => {
                    self.check_timeout(http.timeout.as_ref(), "http.timeout");
                    if let (Some(json), Some(_)) = (&http.json, &http.body) {
                        self.error(json.visible_span(), "http takes `json` or `body`, not both");
                    }
                    if let Some(expect) = &http.expect {
                        for status in &expect.value {
                            if !(100..=599).contains(&status.value) {
                                self.error(
                                    status.span,
                                    format!("{} is not an HTTP status", status.value),
                                );
                            }
                        }
                    }
                }
                ActionRef::Kubernetes(kubernetes) => {
                    if let Some(wait) = &kubernetes.wait {
                        self.check_timeout(wait.timeout.as_ref(), "kubernetes.wait.timeout");
                    }
                    let given: Vec<&str> = [
                        ("get", kubernetes.get.is_some()),
                        ("create", kubernetes.create.is_some()),
                        ("patch", kubernetes.patch.is_some()),
                        ("delete", kubernetes.delete.is_some()),
                        ("wait", kubernetes.wait.is_some()),
                    ]
                    .iter()
                    .filter(|(_, present)| *present)
                    .map(|(name, _)| *name)
                    .collect();
                    if given.len() != 1 {
                        self.error(
                            kubernetes.span,
                            format!(
                                "kubernetes takes exactly one of `get`, `create`, `patch`, `delete`, `wait`; found {}",
                                if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                            ),
                        );
                    }
                }
                ActionRef::Uses(uses, with) => self.check_uses(uses, *with),
                ActionRef::Approval(approval) => {
                    self.check_timeout(approval.timeout.as_ref(), "approval.timeout");
                }
                _ => {}
            }
        }
    }

    /// Templates in every string of each action, and jq where an action holds jq.
    pub(super) fn check_action_values(&self, body: &Node, actions: &[ActionRef<'a>], scope: Scope) {
        for action in actions {
            match action {
                ActionRef::Assert(assert) => {
                    for condition in &assert.that.0 {
                        self.check_jq(condition, Root::Context, scope, "assert");
                    }
                    if let Some(message) = &assert.message {
                        self.check_template_text(&message.value, message.span, scope);
                    }
                }
                ActionRef::Uses(..) => {
                    if let Some(with) = body.get("with") {
                        self.check_templates_in(with, scope);
                    }
                }
                ActionRef::Sleep(_) => {}
                ActionRef::Kubernetes(kubernetes) => {
                    if let Some(wait) = &kubernetes.wait {
                        self.check_jq(&wait.condition, Root::Result, scope, "condition");
                    }
                    if let Some(node) = body.get("kubernetes") {
                        let skip = kubernetes.wait.as_ref().map(|w| w.condition.span);
                        self.check_templates_except(node, scope, skip);
                    }
                }
                other => {
                    if let Some(node) = body.get(other.key()) {
                        self.check_templates_in(node, scope);
                        if matches!(other, ActionRef::Exec(_))
                            && let Some(script) = node.get("script")
                            && let Some(text) = script.as_str()
                        {
                            self.check_script_values(text, script.span);
                        }
                    }
                }
            }
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

pub(super) fn action_span(action: &ActionRef<'_>) -> Span {
    match action {
        ActionRef::Exec(a) => a.span,
        ActionRef::Http(a) => a.span,
        ActionRef::Kubernetes(a) => a.span,
        ActionRef::Uses(a, _) => a.span,
        ActionRef::Approval(a) => a.span,
        ActionRef::Assert(a) => a.span,
        ActionRef::Sleep(a) => a.span,
        ActionRef::Record(a) => a.span,
    }
}
