//! What templates and expressions see: the run, its steps and the step at hand.

use super::*;

impl Run {
    /// The first value of a jq expression over `input`, with the context at `$ctx`.
    /// The first value of a jq expression over `input` (a jq value: the context itself,
    /// or an action's result), with the context at `$ctx`.
    pub(super) fn evaluate(
        &self,
        expression: &str,
        input: Val,
        context: &Val,
    ) -> Result<Value, String> {
        let cached = self
            .programs
            .lock()
            .expect("programs lock")
            .get(expression)
            .cloned();
        let program = match cached {
            Some(program) => program,
            None => {
                let program = Arc::new(compile(expression)?);
                self.programs
                    .lock()
                    .expect("programs lock")
                    .insert(expression.to_owned(), program.clone());
                program
            }
        };
        program.first_with(input, context)
    }

    pub(super) fn run_json(&self) -> Value {
        self.run_json_with(self.run_status())
    }

    /// The context's `run` for the run's status `status`.
    fn run_json_with(&self, status: &'static str) -> Value {
        json!({
            "id": self.run_id,
            "name": self.runbook_name,
            "started_at": self.started_at,
            "status": status,
        })
    }

    /// The context's `run` as a jq value, made once for each status the run goes through.
    fn run_val(&self, status: &'static str) -> Val {
        self.run_vals
            .lock()
            .expect("run values lock")
            .entry(status)
            .or_insert_with(|| jq::to_val(&self.run_json_with(status)))
            .clone()
    }

    /// The run's status as steps see it (`run.status`).
    fn run_status(&self) -> &'static str {
        // What `finally` steps see: how the run is ending, before it has ended.
        let stop = *self.stop.lock().expect("stop lock");
        // `finally` after an undo that went to its end sees the run undone.
        let undone = matches!(
            *self.undo_outcome.lock().expect("undo lock"),
            Some(undo::UndoOutcome::Done { .. })
        );
        match stop {
            _ if undone && stop != Some(StopReason::Journal) => RunStatus::Undone,
            Some(
                StopReason::Interrupted
                | StopReason::Journal
                | StopReason::Withheld
                | StopReason::LockLost
                | StopReason::Paused,
            ) => RunStatus::Interrupted,
            Some(StopReason::Parked) => RunStatus::Waiting,
            Some(StopReason::WindowClosed) => RunStatus::Parked,
            Some(StopReason::Deadline) => RunStatus::Failed,
            Some(StopReason::Aborted) => RunStatus::Cancelled,
            None if self.run_failed() => RunStatus::Failed,
            None if *self.finishing.lock().expect("finishing lock") => RunStatus::Succeeded,
            None => RunStatus::Running,
        }
        .name()
    }

    pub(super) fn step_json(&self, step: &Step, instance: &Instance) -> Value {
        let mut json =
            json!({ "id": step.id.value, "key": step_key(&self.run_id, &instance.path) });
        // An undo reads how the step it takes back ended, as a notice does.
        if instance.undoing {
            let state = self.state.lock().expect("state lock");
            let record = state.steps.get(&instance.path);
            json["status"] = json!(record.and_then(|r| r.status).map(StepStatus::name));
            json["outputs"] = record.map_or(Value::Null, |r| r.outputs.clone());
            json["error"] = Value::Null;
        }
        json
    }

    /// The context jq expressions see, as a jq value.
    pub(super) fn jq_context(&self, scope: &Scope<'_>, step: Option<(&Step, &Instance)>) -> Val {
        let status = self.run_status();
        let Some((step, instance)) = step else {
            let mut steps = self.steps_val(scope);
            if let Some((made_for, context)) = &steps.bare_context
                && *made_for == status
            {
                return context.clone();
            }
            let context = self.context_val(scope, steps.steps.clone(), status, None);
            steps.bare_context = Some((status, context.clone()));
            return context;
        };
        let steps = self.steps_val(scope).steps.clone();
        self.context_val(scope, steps, status, Some((step, instance)))
    }

    /// The context made afresh from its parts.
    fn context_val(
        &self,
        scope: &Scope<'_>,
        steps: Val,
        status: &'static str,
        step: Option<(&Step, &Instance)>,
    ) -> Val {
        let key = |name: &str| jq::to_val(&Value::String(name.to_owned()));
        let mut context = jaq_json::Map::with_capacity_and_hasher(7, Default::default());
        context.insert(key("inputs"), scope.inputs_val.clone());
        context.insert(key("secrets"), scope.secrets_val.clone());
        context.insert(key("steps"), steps);
        context.insert(key("run"), self.run_val(status));
        if let Some((step, instance)) = step {
            context.insert(key("step"), jq::to_val(&self.step_json(step, instance)));
            if let Some((item, index)) = &instance.item {
                context.insert(key("item"), jq::to_val(item));
                context.insert(key("index"), jq::to_val(&json!(index)));
            }
        }
        Val::obj(context)
    }

    /// The context templates see. Handlebars needs plain JSON, so only the steps the
    /// step's templates name are put in it; templates are strict, so a step left out by
    /// mistake would be a loud error, never a silently wrong value.
    pub(super) fn template_context(
        &self,
        scope: &Scope<'_>,
        step: &Step,
        instance: &Instance,
    ) -> Value {
        let steps = {
            let state = self.state.lock().expect("state lock");
            match self.template_steps(step) {
                Some(ids) => state.steps_context(&scope.prefix, ids.iter().map(String::as_str)),
                None => state.steps_context(
                    &scope.prefix,
                    scope
                        .loaded
                        .runbook
                        .all_steps()
                        .map(|s| s.id.value.as_str()),
                ),
            }
        };
        let mut context = json!({
            "inputs": scope.inputs,
            "secrets": scope.secrets,
            "steps": steps,
            "run": self.run_json(),
            "step": self.step_json(step, instance),
        });
        if let Some((item, index)) = &instance.item {
            context["item"] = item.clone();
            context["index"] = json!(index);
        }
        context
    }

    /// The step ids the templates of a step name; `None` when one names `steps` as a whole.
    pub(super) fn template_steps(&self, step: &Step) -> Option<Vec<String>> {
        let key = step as *const Step as usize;
        if let Some(known) = self.template_refs.lock().expect("refs lock").get(&key) {
            return known.clone();
        }
        let mut ids = Vec::new();
        let mut whole = false;
        step.node.for_each_string(&mut |text, _| {
            if !text.contains("{{") {
                return;
            }
            for reference in template::check_template(text).unwrap_or_default() {
                match reference.path.as_slice() {
                    [root, id, ..] if root == "steps" => ids.push(id.clone()),
                    [root] if root == "steps" => whole = true,
                    _ => {}
                }
            }
        });
        ids.sort();
        ids.dedup();
        let found = (!whole).then_some(ids);
        self.template_refs
            .lock()
            .expect("refs lock")
            .insert(key, found.clone());
        found
    }

    /// Marks the context's `steps.<id>` out of date after the step changed: it is brought up
    /// to date when an expression is next evaluated.
    pub(super) fn refresh(&self, scope: &Scope<'_>, id: &str) {
        let mut stale = scope.stale_steps.lock().expect("stale steps lock");
        if stale.named.insert(id.to_owned()) {
            stale.order.push(id.to_owned());
        }
    }

    /// The context's `steps`, its out-of-date entries made again from the run's state; held
    /// locked, so that the context made from it is kept with it.
    fn steps_val<'s>(&self, scope: &'s Scope<'_>) -> std::sync::MutexGuard<'s, StepsVal> {
        let mut steps = scope.steps_val.lock().expect("steps lock");
        let stale = std::mem::take(&mut *scope.stale_steps.lock().expect("stale steps lock"));
        if !stale.order.is_empty() {
            // Out of date, and its share of `steps` would make the change below a copy.
            steps.bare_context = None;
            let state = self.state.lock().expect("state lock");
            if let Val::Obj(map) = &mut steps.steps {
                let map = std::sync::Arc::make_mut(map);
                for id in stale.order {
                    let path = format!("{}{id}", scope.prefix);
                    if let Some(value) = step_val(&state, &path, &self.shared_entries) {
                        map.insert(Val::from(id), value);
                    }
                }
            }
        }
        steps
    }
}

/// What the context's step entries can share across a run. A jq value is never changed in
/// place (a change copies it), so equal entries may be one value: a run of 10,000 steps that
/// ended alike, with no outputs and no items, keeps one entry for them all, not 10,000
/// (about 1.2 KB each).
#[derive(Default)]
pub(super) struct SharedEntries {
    /// The entry of a step without items or outputs, by how it ended and whether its
    /// outputs are `{}` (or `null`).
    plain: Mutex<HashMap<EntryShape, Val>>,
}

/// How a step without items ended: its status, attempts, via, and whether its outputs are
/// `{}` (else `null`).
type EntryShape = (Option<StepStatus>, u32, Option<Via>, bool);

/// A step's entry in the context (`steps.<id>`, as [`RunState::steps_context`] writes it),
/// made as a jq value at once: through JSON first, a `for_each` of hundreds of thousands of
/// items held its items twice at the end of the step.
fn step_val(state: &RunState, path: &str, shared: &SharedEntries) -> Option<Val> {
    let record = state.steps.get(path)?;
    let count = record.expanded().map_or(0, Vec::len);
    let empty_outputs = match &record.outputs {
        Value::Null => Some(false),
        Value::Object(map) if map.is_empty() => Some(true),
        _ => None,
    };
    let Some(empty_object) = empty_outputs.filter(|_| count == 0) else {
        return Some(entry_val(state, path, record, count));
    };
    let shape = (record.status, record.attempts, record.via, empty_object);
    let mut plain = shared.plain.lock().expect("plain entries lock");
    let entry = plain
        .entry(shape)
        .or_insert_with(|| entry_val(state, path, record, 0));
    Some(entry.clone())
}

/// The entry of `record` made afresh, with its `count` items. The keys, the statuses and an
/// empty `outputs` are made once and shared by every item.
fn entry_val(state: &RunState, path: &str, record: &StepRecord, count: usize) -> Val {
    let key = |name: &str| Val::from(name.to_owned());
    let (item_key, index_key, status_key, outputs_key, via_key) = (
        key("item"),
        key("index"),
        key("status"),
        key("outputs"),
        key("via"),
    );
    let mut statuses: HashMap<StepStatus, Val> = HashMap::new();
    let mut status = |status: Option<StepStatus>| match status {
        None => Val::Null,
        Some(status) => statuses
            .entry(status)
            .or_insert_with(|| Val::from(status.name().to_owned()))
            .clone(),
    };
    let mut vias: HashMap<Via, Val> = HashMap::new();
    let mut via = |via: Option<Via>| match via {
        None => Val::Null,
        Some(via) => vias
            .entry(via)
            .or_insert_with(|| jq::to_val(&json!(via)))
            .clone(),
    };
    let empty_object = Val::obj(jaq_json::Map::default());
    let outputs = |outputs: &Value| match outputs {
        Value::Object(map) if map.is_empty() => empty_object.clone(),
        outputs => jq::to_val(outputs),
    };
    let items: Val = (0..count)
        .map(|index| {
            let item = state.steps.get(&format!("{path}[{index}]"));
            let mut entry = jaq_json::Map::with_capacity_and_hasher(5, Default::default());
            entry.insert(
                item_key.clone(),
                item.and_then(|r| r.item.as_ref())
                    .map_or(Val::Null, jq::to_val),
            );
            entry.insert(index_key.clone(), Val::from(index as isize));
            entry.insert(status_key.clone(), status(item.and_then(|r| r.status)));
            entry.insert(
                outputs_key.clone(),
                item.map_or(Val::Null, |r| outputs(&r.outputs)),
            );
            entry.insert(via_key.clone(), via(item.and_then(|r| r.via)));
            Val::obj(entry)
        })
        .collect();
    let mut entry = jaq_json::Map::with_capacity_and_hasher(5, Default::default());
    entry.insert(status_key, status(record.status));
    entry.insert(outputs_key, outputs(&record.outputs));
    entry.insert(key("attempts"), Val::from(record.attempts as isize));
    entry.insert(via_key, via(record.via));
    entry.insert(key("items"), items);
    Val::obj(entry)
}

/// Compiles a jq expression; the message joins every compile error.
fn compile(expression: &str) -> Result<jq::Program, String> {
    jq::compile(expression).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ")
    })
}
