//! `locks` and `lock_wait`: names that render, read nothing they may not, and appear once.

use super::references::inner_span;
use super::*;

/// What a runbook's own locks may read: they are taken before any step runs.
const RUNBOOK_LOCK_ROOTS: &[&str] = &["inputs", "run"];

impl Checker<'_> {
    /// The runbook's locks and every step's.
    pub(super) fn check_locks(&self) {
        let runbook_scope = Scope {
            step: None,
            for_each: false,
            notice: false,
        };
        self.check_lock_names(self.runbook.locks.as_ref(), runbook_scope, true);
        for (index, step) in self.runbook.all_steps().enumerate() {
            let scope = Scope {
                step: Some(index),
                for_each: step.for_each.is_some(),
                notice: false,
            };
            self.check_lock_names(step.locks.as_ref(), scope, false);
            if let (Some(wait), None) = (&step.lock_wait, &step.locks) {
                self.error(wait.span, "`lock_wait` on a step without `locks`")
                    .help = Some(
                    "add the step's `locks`, or set `lock_wait` at the top of the runbook"
                        .to_owned(),
                );
            }
        }
    }

    fn check_lock_names(&self, locks: Option<&LockNames>, scope: Scope, runbook: bool) {
        let Some(locks) = locks else { return };
        if locks.value.is_empty() {
            self.error(locks.span, "`locks` is empty").help =
                Some("name at least one lock, or remove `locks`".to_owned());
        }
        let mut seen = HashSet::new();
        for name in &locks.value {
            if name.value.trim().is_empty() {
                self.error(name.span, "a lock name must not be empty");
                continue;
            }
            if !seen.insert(name.value.as_str()) {
                self.error(name.span, format!("lock `{}` is named twice", name.value));
                continue;
            }
            if !name.value.contains("{{") {
                continue;
            }
            let Ok(references) = template::check_template(&name.value) else {
                // Reported, with where, by the general template check below.
                self.check_template_text(&name.value, name.span, scope);
                continue;
            };
            for reference in &references {
                let root = reference.path[0].as_str();
                let at = inner_span(self.file, name.span, &name.value, reference.span.clone());
                if root == "secrets" {
                    self.error(
                        at,
                        "a lock name may not read a secret: lock names are kept in the store \
                         and shown to everyone by `runbook locks`",
                    );
                } else if runbook && !RUNBOOK_LOCK_ROOTS.contains(&root) {
                    self.error(
                        at,
                        format!(
                            "a runbook's locks are taken before any step runs: they may read \
                             `inputs` and `run`, not `{}`",
                            reference.dotted()
                        ),
                    )
                    .help = Some(
                        "to lock with a step's outputs, put `locks` on the steps that need it"
                            .to_owned(),
                    );
                }
            }
            self.check_template_text(&name.value, name.span, scope);
        }
    }
}
