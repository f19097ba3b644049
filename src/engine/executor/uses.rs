//! `uses` steps: running another runbook as a scope of its own.

use super::*;

impl Run {
    /// Runs a called runbook as this step's action; its outputs are the result.
    pub(super) async fn run_uses(
        &self,
        scope: &Scope<'_>,
        instance: &Instance,
        uses: &str,
        with: Option<&SpannedMap<crate::runbook::Node>>,
        context: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let Some(called) = self.bundle.called(scope.loaded, uses) else {
            return Err(failure(format!("the runbook `{uses}` is not loaded")));
        };
        let mut inputs = Map::new();
        for (name, input) in called.runbook.inputs.iter() {
            if let Some(default) = &input.default {
                inputs.insert(name.value.clone(), default.to_json());
            }
        }
        for (name, value) in with.into_iter().flat_map(|w| w.iter()) {
            let rendered = template::render_value(&value.to_json(), context, Escape::Plain)
                .map_err(|e| failure(format!("`with.{}`: {e}", name.value)))?;
            if let Some(input) = called.runbook.inputs.get(&name.value)
                && !input.kind.accepts(&rendered)
            {
                return Err(failure(format!(
                    "`with.{}` gives {} to `{uses}`, whose input `{}` is {}",
                    name.value,
                    kind_of(&rendered),
                    name.value,
                    input.kind.name()
                )));
            }
            inputs.insert(name.value.clone(), rendered);
        }
        let secrets = self
            .bundle
            .called_path(scope.loaded, uses)
            .and_then(|path| self.secrets.get(path))
            .cloned()
            .unwrap_or_default();
        // An undo's called runbook keeps its steps apart from those the step's own call ran.
        let prefix = if instance.undoing {
            format!("{}@undo/", instance.path)
        } else {
            format!("{}/", instance.path)
        };
        let child = Scope::new(called, prefix, Value::Object(inputs), secrets);
        self.run_locked_scope(&child, cancel)
            .await
            .map_err(|reason| {
                if self.window_closed() {
                    // Not an end: the phase goes on in a later window.
                    parked_for_window()
                } else {
                    failure(format!("runbook `{uses}`: {reason}"))
                }
            })
    }
}
