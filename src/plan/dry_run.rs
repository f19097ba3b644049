//! What a run would do, worked out before it runs: the steps in stages, each action with its
//! templates rendered where the values are already known (inputs and their defaults), and
//! what is only known at run time marked as such.

use super::picture::describe;
use crate::runbook::dag::{Dag, Section};
use crate::runbook::load::Loaded;
use crate::runbook::validate::Bundle;
use crate::runbook::{ActionRef, Applies, Node, PlannedTemplates, Step};
use crate::template::{self, jq};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The plan of one runbook.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    /// The window the plan was checked against (`--window`), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    pub inputs: Map<String, Value>,
    /// Groups of steps that can run in parallel, in order; `finally` steps come last.
    pub stages: Vec<Vec<PlannedStep>>,
    /// When some step has an `undo`: the order undos run in, and what starts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<PlannedUndo>,
}

/// The undo of a run, as it would go.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedUndo {
    /// What undoes a run besides `runbook abort --undo`: `on_failure: undo`,
    /// `on_window_close: undo`.
    pub triggers: Vec<String>,
    /// Step ids whose undo runs, in stages: a stage's undos may run in parallel, and run
    /// after the stages before it.
    pub stages: Vec<Vec<String>>,
    /// Steps of `steps` that have no `undo`: what they did stays.
    pub without: Vec<String>,
}

/// One step as it would run.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The step path: `snapshot`, or `snapshot/trigger` inside a called runbook.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub finally: bool,
    pub needs: Vec<String>,
    /// One line: `http GET http://...`.
    pub summary: String,
    /// The action's body, templates rendered where known.
    pub action: Value,
    pub with: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// The values this step reads that only exist at run time (step outputs, run data, secrets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_at_run_time: Vec<String>,
    /// The retry that applies (its own, or the runbook's `defaults`); `None`: runs once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// The bound on one attempt that applies (`30s an attempt`); `None`: unbounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Box<PlannedFallback>>,
    /// What takes the step back when the run is undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<Box<PlannedFallback>>,
    /// The steps of the runbook this step calls through `uses`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<PlannedStep>,
    /// The step's `window`, as written: [`super::window::annotate`] resolves it.
    #[serde(skip)]
    pub window_written: Option<crate::runbook::StepWindow>,
    /// For a step with `window`: what it needs and where that comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<super::window::PlannedWindow>,
    /// How long the step took in earlier succeeded runs, when the store has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<super::window::StepHistory>,
}

/// A second body of a step (its `fallback` or its `undo`): one action, with its own bounds.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFallback {
    pub summary: String,
    pub action: Value,
    pub with: Value,
    /// The retry that applies (its own, or the runbook's `defaults`); `None`: runs once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// The bound on one attempt that applies (`30s an attempt`); `None`: unbounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_at_run_time: Vec<String>,
}

/// A `when` condition: decided now when it reads only inputs, otherwise at run time.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    pub expression: String,
    /// `Some(true)`: the step runs; `Some(false)`: it will be skipped; `None`: decided at run time.
    pub decided: Option<bool>,
}

/// Works out the plan of a valid bundle with resolved inputs.
pub fn plan(bundle: &Bundle, inputs: Map<String, Value>) -> Option<Plan> {
    let root = bundle.root()?;
    let context = json!({ "inputs": Value::Object(inputs.clone()) });
    let stages = plan_runbook(bundle, root, &context, "", 0);
    Some(Plan {
        runbook: root.runbook.name.value.clone(),
        window_ms: None,
        inputs,
        stages,
        undo: plan_undo(&root.runbook),
    })
}

/// The order of a run's undo, when any step of the root runbook has one.
fn plan_undo(runbook: &crate::runbook::Runbook) -> Option<PlannedUndo> {
    let steps: Vec<&Step> = runbook.all_steps().collect();
    let has_undo: Vec<bool> = steps.iter().map(|s| s.undo.is_some()).collect();
    if !has_undo.iter().any(|&h| h) {
        return None;
    }
    let dag = Dag::new(runbook);
    let stages = dag
        .undo_stages(&has_undo)
        .into_iter()
        .map(|stage| stage.into_iter().map(|i| dag.ids[i].clone()).collect())
        .collect();
    let without = runbook
        .steps
        .iter()
        .filter(|s| s.undo.is_none())
        .map(|s| s.id.value.clone())
        .collect();
    let mut triggers = Vec::new();
    if runbook
        .on_failure
        .as_ref()
        .is_some_and(|p| p.value == crate::runbook::OnFailure::Undo)
    {
        triggers.push("on_failure: undo".to_owned());
    }
    if runbook
        .on_window_close
        .as_ref()
        .is_some_and(|p| p.value == crate::runbook::OnWindowClose::Undo)
    {
        triggers.push("on_window_close: undo".to_owned());
    }
    Some(PlannedUndo {
        triggers,
        stages,
        without,
    })
}

const MAX_USES_DEPTH: usize = 8;

fn plan_runbook(
    bundle: &Bundle,
    loaded: &Loaded,
    context: &Value,
    prefix: &str,
    depth: usize,
) -> Vec<Vec<PlannedStep>> {
    let dag = Dag::new(&loaded.runbook);
    let steps: Vec<&Step> = loaded.runbook.all_steps().collect();
    let Some(stages) = dag.stages() else {
        return Vec::new();
    };
    stages
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|&index| {
                    plan_step(
                        bundle,
                        loaded,
                        &dag,
                        index,
                        steps[index],
                        context,
                        prefix,
                        depth,
                    )
                })
                .collect()
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plan_step(
    bundle: &Bundle,
    loaded: &Loaded,
    dag: &Dag,
    index: usize,
    step: &Step,
    context: &Value,
    prefix: &str,
    depth: usize,
) -> PlannedStep {
    let path = format!("{prefix}{}", step.id.value);
    let action = step.action();
    let (body, mut unknown) = render_body(&step.node, action, context);
    let view = action_view(action, &body);
    let with = step.node.get("with").map_or(Value::Null, |n| {
        let partial = render_partial(&n.to_json(), context, template::Escape::Plain);
        unknown.extend(partial.unknown);
        partial.text
    });
    let when = step.when.as_ref().map(|when| Condition {
        expression: when.value.clone(),
        decided: decide(&when.value, context),
    });
    let fallback = step.fallback.as_ref().map(|fallback| {
        plan_second_body(
            loaded,
            step.node.get("fallback"),
            fallback.action(),
            fallback.retry.as_ref(),
            fallback.timeout.as_ref(),
            context,
        )
    });
    let undo = step.undo.as_ref().map(|undo| {
        plan_second_body(
            loaded,
            step.node.get("undo"),
            undo.action(),
            undo.retry.as_ref(),
            undo.timeout.as_ref(),
            context,
        )
    });
    let calls = match action {
        Some(ActionRef::Uses(uses, _)) if depth < MAX_USES_DEPTH => {
            bundle
                .called(loaded, &uses.value)
                .map_or_else(Vec::new, |called| {
                    // The called runbook sees the `with` values as its inputs, plus its defaults.
                    let mut inputs = Map::new();
                    for (name, input) in called.runbook.inputs.iter() {
                        if let Some(default) = &input.default {
                            inputs.insert(name.value.clone(), default.to_json());
                        }
                    }
                    if let Value::Object(given) = &with {
                        for (k, v) in given {
                            inputs.insert(k.clone(), v.clone());
                        }
                    }
                    let inner = json!({ "inputs": inputs });
                    plan_runbook(bundle, called, &inner, &format!("{path}/"), depth + 1)
                        .into_iter()
                        .flatten()
                        .collect()
                })
        }
        _ => Vec::new(),
    };
    unknown.sort();
    unknown.dedup();
    let applies = loaded
        .runbook
        .applies(step.retry.as_ref(), step.timeout.as_ref());
    PlannedStep {
        path,
        name: step.name.clone(),
        finally: dag.sections[index] == Section::Finally,
        needs: dag.needs[index]
            .iter()
            .map(|n| dag.ids[n.step].clone())
            .collect(),
        summary: match &view {
            Some((summary, _)) => summary.clone(),
            None => action
                .map(|a| render_summary(a, context))
                .unwrap_or_default(),
        },
        action: view.map_or(body, |(_, shown)| shown),
        with,
        when,
        for_each: step.for_each.as_ref().map(|f| f.value.clone()),
        known_at_run_time: unknown,
        retry: retry_shown(&applies),
        timeout: timeout_shown(&applies),
        fallback,
        undo,
        calls,
        window_written: step.window.as_ref().map(|w| w.value.clone()),
        window: None,
        history: None,
    }
}

/// A step's fallback or undo as it would run.
fn plan_second_body(
    loaded: &Loaded,
    node: Option<&Node>,
    action: Option<ActionRef<'_>>,
    retry: Option<&crate::runbook::Spanned<crate::runbook::Retry>>,
    timeout: Option<&crate::runbook::Spanned<crate::runbook::Duration>>,
    context: &Value,
) -> Box<PlannedFallback> {
    let node = node.cloned().unwrap_or_default();
    let (body, unknown) = render_body(&node, action, context);
    let with = node.get("with").map_or(Value::Null, |n| {
        render_partial(&n.to_json(), context, template::Escape::Plain).text
    });
    let applies = loaded.runbook.applies(retry, timeout);
    Box::new(PlannedFallback {
        summary: action
            .map(|a| render_summary(a, context))
            .unwrap_or_default(),
        action: body,
        with,
        retry: retry_shown(&applies),
        timeout: timeout_shown(&applies),
        known_at_run_time: unknown,
    })
}

/// The retry that applies, saying when it comes from the runbook's `defaults`.
fn retry_shown(applies: &Applies<'_>) -> Option<String> {
    let text = applies.retry_text()?;
    Some(if applies.retry_from_defaults {
        format!("{text} (from defaults)")
    } else {
        text
    })
}

/// The bound on one attempt that applies, saying when it comes from the runbook's `defaults`.
fn timeout_shown(applies: &Applies<'_>) -> Option<String> {
    let text = format!("{} an attempt", crate::runbook::Duration(applies.timeout?));
    Some(if applies.timeout_from_defaults {
        format!("{text} (from defaults)")
    } else {
        text
    })
}

/// The action's body with known templates rendered: as the run would see it, except that
/// what only the run knows is marked.
fn render_body(
    node: &Node,
    action: Option<ActionRef<'_>>,
    context: &Value,
) -> (Value, Vec<String>) {
    let Some(action) = action else {
        return (Value::Null, Vec::new());
    };
    let Some(body) = node.get(action.key()) else {
        return (Value::Null, Vec::new());
    };
    let json = body.to_json();
    // jq conditions in an action are expressions, not templates: shown as written. Its
    // templates (an assert's message) are rendered where the values are known.
    if let Some(PlannedTemplates::Only(fields)) = action.body().map(|b| b.planned_templates()) {
        let mut json = json;
        let mut unknown = Vec::new();
        for field in fields {
            if let Some(value) = json.get_mut(*field) {
                let partial = render_partial(value, context, template::Escape::Plain);
                *value = partial.text;
                unknown.extend(partial.unknown);
            }
        }
        return (json, unknown);
    }
    // A script's values are shown in place, as the script will read them (they reach it as
    // environment variables, so no quoting is involved).
    let partial = render_partial(&json, context, template::Escape::Plain);
    (partial.text, partial.unknown)
}

/// The action as its own [`plan_view`](crate::actions::Action::plan_view) shows it, when
/// it has one: the request a `kubernetes` step would send.
fn action_view(action: Option<ActionRef<'_>>, body: &Value) -> Option<(String, Value)> {
    let view = crate::actions::action_for(action?.key())?.plan_view(body)?;
    Some((view.summary, view.shown))
}

fn render_summary(action: ActionRef<'_>, context: &Value) -> String {
    compact(
        &render_partial(
            &Value::String(describe(action)),
            context,
            template::Escape::Plain,
        )
        .text,
    )
}

/// Renders what is known; a template that does not parse (validation has already said so)
/// is shown as written.
fn render_partial(value: &Value, context: &Value, escape: template::Escape) -> template::Partial {
    template::render_value_partial(value, context, escape).unwrap_or_else(|_| template::Partial {
        text: value.clone(),
        unknown: Vec::new(),
    })
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Evaluates a `when` now if it reads nothing but inputs.
fn decide(expression: &str, context: &Value) -> Option<bool> {
    let references = jq::check(expression, jq::Root::Context).ok()?;
    if references
        .iter()
        .any(|r| r.path.first().map(String::as_str) != Some("inputs"))
    {
        return None;
    }
    let program = jq::compile(expression).ok()?;
    let value = program.first(context, context).ok()?;
    Some(!matches!(value, Value::Null | Value::Bool(false)))
}
