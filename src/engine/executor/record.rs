//! The `record` action: values kept in the store under a name, across runs. It runs here, not
//! among the actions of `crate::actions`, because it needs the run's store.

use serde_json::{Value, json};

use super::{Failure, Instance, Run, failure};
use crate::runbook::{Record, Spanned};
use crate::template::{self, Escape};

impl Run {
    /// Adds the step's values to the record (when it has `add`), then answers the whole
    /// record: `{name, added, values, entries}`.
    pub(super) async fn record(
        &self,
        instance: &Instance,
        record: &Spanned<Record>,
        context: &Value,
    ) -> Result<Value, Failure> {
        let Some(store) = self.store.clone() else {
            return Err(failure("a record needs a store to keep its values in"));
        };
        let text = |template: &str, what: &str| -> Result<String, Failure> {
            match template::render(template, context, Escape::Plain) {
                Ok(Value::String(text)) => Ok(text),
                Ok(Value::Null) => Err(failure(format!("`{what}` is null"))),
                Ok(other) => Ok(other.to_string()),
                Err(e) => Err(failure(format!("`{what}`: {e}"))),
            }
        };
        let name = text(&record.value.name.value, "record.name")?;
        if name.trim().is_empty() {
            return Err(failure("`record.name` is empty"));
        }
        let values = record
            .value
            .add
            .iter()
            .flatten()
            .map(|value| text(&value.value, "record.add"))
            .collect::<Result<Vec<_>, _>>()?;
        // The store keeps records as they are, outside any run's redaction: no secret there.
        if [&name]
            .into_iter()
            .chain(&values)
            .any(|v| self.redactor.finds_in(v))
        {
            return Err(failure(
                "a record's name and values must not contain a secret: the store keeps them \
                 in clear, for every run to read",
            ));
        }
        let added = if values.is_empty() {
            Vec::new()
        } else {
            store
                .add_records(&name, &self.run_id, &instance.path, &values)
                .await
                .map_err(|e| failure(format!("cannot add to record `{name}`: {e}")))?
        };
        let entries = store
            .records(&name)
            .await
            .map_err(|e| failure(format!("cannot read record `{name}`: {e}")))?;
        Ok(json!({
            "name": name,
            "added": added,
            "values": entries.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
            "entries": entries
                .iter()
                .map(|e| json!({"value": e.value, "run_id": e.run_id, "step": e.path, "at": e.at}))
                .collect::<Vec<_>>(),
        }))
    }
}
