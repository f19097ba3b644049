//! `exec`: what the language knows of it (its fields, its rules, its summary). It runs in
//! `actions::exec`.

use super::*;

/// Run a command.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The program and its arguments, run without a shell. Numbers and booleans are
    /// arguments too: `[sleep, 1]`.
    #[serde(default)]
    pub command: Option<Spanned<Vec<Spanned<Text>>>>,
    /// A script run by `sh -eu`; each `{{value}}` reaches it as data, never as code, in or out of double quotes and heredocs (`{{{raw}}}` is pasted in as it is).
    #[serde(default)]
    pub script: Option<Spanned<String>>,
    /// Environment variables added to the engine's own.
    #[serde(default)]
    pub env: SpannedMap<Spanned<Text>>,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<Spanned<String>>,
    /// Text written to the command's standard input.
    #[serde(default)]
    pub stdin: Option<Spanned<String>>,
}

impl ActionBody for Exec {
    fn describe(&self) -> String {
        match (&self.command, &self.script) {
            (Some(command), _) => format!(
                "exec {}",
                command
                    .value
                    .iter()
                    .map(|a| a.value.0.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            (None, Some(_)) => "exec script".to_owned(),
            _ => "exec".to_owned(),
        }
    }

    fn check_rules<'a>(&'a self, at: Span, checks: &dyn ActionChecks<'a>) {
        match (&self.command, &self.script) {
            (None, None) => checks.error(
                at,
                "exec needs `command` (a list of arguments) or `script`".to_owned(),
                None,
            ),
            (Some(command), Some(_)) => checks.error(
                command.span,
                "exec takes `command` or `script`, not both".to_owned(),
                None,
            ),
            (Some(command), None) if command.value.is_empty() => checks.error(
                command.span,
                "exec `command` is empty: give the program and its arguments".to_owned(),
                None,
            ),
            _ => {}
        }
    }

    fn check_values<'a>(&'a self, checks: &dyn ActionChecks<'a>) {
        checks.templates_in_body(None);
        if let Some(script) = &self.script {
            checks.script_values(script);
        }
    }
}
