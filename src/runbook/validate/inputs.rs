//! The runbook's own settings (version, name, defaults) and its inputs and secrets.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn check_header(&self) {
        let runbook = self.runbook;
        if runbook.version.value != 1 {
            self.error(
                runbook.version.span,
                format!("unsupported version {}", runbook.version.value),
            )
            .help = Some("this engine reads version 1".to_owned());
        }
        if !is_name(&runbook.name.value, true) {
            self.error(
                runbook.name.span,
                format!("invalid runbook name `{}`", runbook.name.value),
            )
            .help = Some(
                "a name uses lowercase letters, digits, `-` and `_`, and starts with a letter or digit"
                    .to_owned(),
            );
        }
        if let Some(max) = &runbook.max_parallel
            && max.value == 0
        {
            self.error(max.span, "max_parallel must be at least 1");
        }
        if runbook.steps.is_empty() && self.loaded.unloaded.steps.is_empty() {
            let span = self.loaded.runbook.name.span;
            self.error(span, "the runbook has no steps").help =
                Some("add at least one step under `steps:`".to_owned());
        }
        if let Some(defaults) = &runbook.defaults {
            if let Some(retry) = &defaults.retry {
                self.check_retry(retry);
            }
            self.check_timeout(defaults.timeout.as_ref(), "defaults.timeout");
        }
    }

    pub(super) fn check_inputs(&self) {
        for (name, input) in self.runbook.inputs.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid input name `{}`", name.value)).help = Some(
                    "input names use letters, digits and `_`, and do not start with a digit, so templates can name them".to_owned(),
                );
            }
            if let Some(default) = &input.default {
                let value = default.to_json();
                let kind = input.kind.value;
                if !kind.accepts(&value) {
                    let mut error = self.error(
                        default.visible_span(),
                        format!(
                            "the default of input `{}` is {}, but its type is {}",
                            name.value,
                            default.kind_name(),
                            kind.name()
                        ),
                    );
                    error.labels[0].1 = format!("expected {}", kind.name());
                    if kind == crate::runbook::model::InputType::Boolean
                        && let Some(text) = value.as_str()
                    {
                        error.help = crate::runbook::de::yaml_1_1_boolean_hint(text);
                    }
                }
            }
        }
        for (name, _) in self.runbook.secrets.iter() {
            if !is_identifier(&name.value) {
                self.error(name.span, format!("invalid secret name `{}`", name.value))
                    .help = Some("secret names use letters, digits and `_`".to_owned());
            }
        }
    }
}
