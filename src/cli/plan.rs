use super::args::{InputArgs, PlanArgs, PlanFormat};
use super::{ExitStatus, Printer};
use crate::plan::dry_run::{self, Plan, PlannedFallback, PlannedStep, PlannedUndo};
use crate::plan::window;
use crate::runbook::Runbook;
use crate::runbook::bounded_read::read_text_bounded;
use crate::runbook::diagnostic::display_path;
use crate::runbook::inputs;
use crate::runbook::load::MAX_FILE_BYTES;
use crate::runbook::node;
use crate::runbook::validate::validate_file_allowing;
use anyhow::Context;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// `runbook plan FILE`: validate, check the inputs, and show what would run.
pub fn plan(args: &PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let validation = validate_file_allowing(&args.file, &args.uses.allowed);
    if !validation.is_valid() {
        printer.diagnostics(&validation.problems);
        return Ok(ExitStatus::Invalid);
    }
    let root = validation
        .bundle
        .root()
        .expect("a valid runbook has loaded");
    let values = match resolve_inputs(&root.runbook, &args.inputs)? {
        Ok(values) => values,
        Err(errors) => {
            for error in errors {
                printer.error(&error);
            }
            return Ok(ExitStatus::Invalid);
        }
    };
    let mut plan = dry_run::plan(&validation.bundle, values).expect("the root runbook loaded");
    let window = args.window.length();
    let history = step_history(&plan, args.store.store.as_deref())?;
    let empty = Vec::new();
    window::annotate(
        &mut plan,
        &|span| {
            let key = (span.from.to_owned(), span.through.to_owned());
            history.get(&key).unwrap_or(&empty).clone()
        },
        window,
    );
    match args.format {
        PlanFormat::Json => {
            let mut text = serde_json::to_string_pretty(&plan)?;
            text.push('\n');
            printer.out(&text);
        }
        PlanFormat::Text => printer.out(&render_text(&plan, &display_path(&args.file))),
    }
    Ok(ExitStatus::Success)
}

/// How long each step of the plan took in the latest succeeded runs of the runbook, from the
/// store when there is one: a plan never creates a store, and one it cannot read shows no
/// history rather than no plan.
fn step_history(
    plan: &Plan,
    store: Option<&str>,
) -> anyhow::Result<HashMap<(String, String), Vec<u64>>> {
    let runtime = super::execute::runtime()?;
    let history = runtime.block_on(async {
        let mut history = HashMap::new();
        let Ok(store) = crate::app::open_store(store).await else {
            return history;
        };
        for (from, through) in window::spans(plan) {
            let span = crate::store::StepSpan {
                from: &from,
                through: &through,
            };
            if let Ok(durations) = store
                .step_durations(&plan.runbook, span, window::HISTORY_RUNS)
                .await
                && !durations.is_empty()
            {
                history.insert((from, through), durations);
            }
        }
        let _ = store.close().await;
        history
    });
    Ok(history)
}

/// The inputs from `--inputs-file` and `--input`, checked against the runbook. The outer
/// error is for a file that cannot be read; the inner list holds every input problem.
pub fn resolve_inputs(
    runbook: &Runbook,
    args: &InputArgs,
) -> anyhow::Result<Result<Map<String, Value>, Vec<String>>> {
    let mut problems = Vec::new();
    let from_file = match &args.inputs_file {
        None => None,
        Some(path) => {
            let text = read_text_bounded(path, MAX_FILE_BYTES)
                .with_context(|| format!("cannot read the inputs file {}", display_path(path)))?;
            match node::parse(&text).map(|n| n.to_json()) {
                Ok(Value::Object(map)) => Some(map),
                Ok(Value::Null) => Some(Map::new()),
                Ok(_) => anyhow::bail!(
                    "the inputs file {} must be a mapping of input names to values",
                    display_path(path)
                ),
                Err(e) => anyhow::bail!(
                    "the inputs file {} is not valid YAML or JSON: {}",
                    display_path(path),
                    e.without_snippet()
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                ),
            }
        }
    };
    let mut assignments = Vec::new();
    for text in &args.inputs {
        match inputs::split_assignment(text) {
            // Keeping the last of two values would silently drop one the user typed.
            Ok((name, _)) if assignments.iter().any(|(given, _)| *given == name) => {
                let problem = format!(
                    "input `{name}` is given more than once with --input; give it once (a list \
                     input takes a JSON array: --input '{name}=[\"a\",\"b\"]')"
                );
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            Ok(pair) => assignments.push(pair),
            Err(e) => problems.push(e.message),
        }
    }
    match inputs::resolve(runbook, from_file.as_ref(), &assignments) {
        Ok(values) if problems.is_empty() => Ok(Ok(values)),
        Ok(_) => Ok(Err(problems)),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| e.message));
            Ok(Err(problems))
        }
    }
}

fn render_text(plan: &Plan, file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan of `{}` ({file})", plan.runbook);
    if !plan.inputs.is_empty() {
        let _ = writeln!(out, "\nInputs");
        for (name, value) in &plan.inputs {
            let _ = writeln!(
                out,
                "  {name} = {}",
                serde_json::to_string(value).unwrap_or_default()
            );
        }
    }
    if let Some(ms) = plan.window_ms {
        let _ = writeln!(
            out,
            "\nWindow {}: a step with `window` starts only while what it needs fits in what \
             is left of it",
            shown(ms)
        );
    }
    let mut any_unknown = false;
    let mut number = 0;
    for stage in &plan.stages {
        let finally = stage.iter().all(|s| s.finally);
        let title = if finally {
            "Finally".to_owned()
        } else {
            number += 1;
            format!("Stage {number}")
        };
        let parallel = if stage.len() > 1 && !finally {
            format!(" ({} in parallel)", stage.len())
        } else {
            String::new()
        };
        let _ = writeln!(out, "\n{title}{parallel}");
        for step in stage {
            any_unknown |= write_step(&mut out, step, 1);
        }
    }
    if let Some(undo) = &plan.undo {
        write_undo(&mut out, undo);
    }
    if any_unknown {
        let _ = writeln!(out, "\n⟨…⟩ is known only at run time.");
    }
    out
}

/// Writes one step; returns whether it shows a value known only at run time.
fn write_step(out: &mut String, step: &PlannedStep, depth: usize) -> bool {
    let indent = "  ".repeat(depth);
    let title = match &step.name {
        Some(name) => format!("{} · {name}", step.path),
        None => step.path.clone(),
    };
    let _ = writeln!(out, "{indent}{title}");
    let detail = format!("{indent}    ");
    let _ = writeln!(out, "{detail}{}", step.summary);
    write_body(out, &step.action, &detail);
    if !step.with.is_null() {
        let _ = writeln!(
            out,
            "{detail}with {}",
            serde_json::to_string(&step.with).unwrap_or_default()
        );
    }
    if let Some(for_each) = &step.for_each {
        let _ = writeln!(out, "{detail}for each item of {for_each}");
    }
    if let Some(when) = &step.when {
        let verdict = match when.decided {
            Some(true) => " (true with these inputs: runs)",
            Some(false) => " (false with these inputs: skipped)",
            None => " (decided at run time)",
        };
        let _ = writeln!(out, "{detail}when {}{verdict}", when.expression);
    }
    if !step.needs.is_empty() && depth == 1 {
        let _ = writeln!(out, "{detail}after {}", step.needs.join(", "));
    }
    write_bounds(out, step.retry.as_deref(), step.timeout.as_deref(), &detail);
    if let Some(window) = &step.window {
        let fits = match window.fits {
            Some(true) => ": fits in the window",
            Some(false) => ": longer than the whole window, it cannot start in it",
            None => "",
        };
        let _ = writeln!(
            out,
            "{detail}window: needs {} ({}){fits}",
            shown(window.needs_ms),
            window.source.describe()
        );
    }
    if let Some(history) = &step.history {
        let plural = if history.runs == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{detail}took: median {}, p95 {} over the last {} succeeded run{plural}",
            shown(history.median_ms),
            shown(history.p95_ms),
            history.runs
        );
    }
    if let Some(fallback) = &step.fallback {
        write_second_body(out, "fallback", fallback, &detail);
    }
    if let Some(undo) = &step.undo {
        write_second_body(out, "undo", undo, &detail);
    }
    let mut unknown = !step.known_at_run_time.is_empty();
    for call in &step.calls {
        unknown |= write_step(out, call, depth + 2);
    }
    unknown
}

/// A step's fallback or undo, under the step.
fn write_second_body(out: &mut String, what: &str, body: &PlannedFallback, detail: &str) {
    let _ = writeln!(out, "{detail}{what}: {}", body.summary);
    let indent = format!("{detail}  ");
    write_body(out, &body.action, &indent);
    write_bounds(out, body.retry.as_deref(), body.timeout.as_deref(), &indent);
    if !body.with.is_null() {
        let _ = writeln!(
            out,
            "{indent}with {}",
            serde_json::to_string(&body.with).unwrap_or_default()
        );
    }
}

/// The order of the run's undo: stages of steps, the steps without an undo, what starts it.
fn write_undo(out: &mut String, undo: &PlannedUndo) {
    let triggers = if undo.triggers.is_empty() {
        "runbook abort --undo".to_owned()
    } else {
        format!("{}, or runbook abort --undo", undo.triggers.join(", "))
    };
    let _ = writeln!(
        out,
        "\nUndo ({triggers}): the undo of each step that succeeded, in this order"
    );
    for (number, stage) in undo.stages.iter().enumerate() {
        let parallel = if stage.len() > 1 {
            " (in parallel)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {}. {}{parallel}", number + 1, stage.join(", "));
    }
    if !undo.without.is_empty() {
        let _ = writeln!(out, "  no undo: {}", undo.without.join(", "));
    }
}

/// The retry and timeout that apply to an action, when it has them.
fn write_bounds(out: &mut String, retry: Option<&str>, timeout: Option<&str>, indent: &str) {
    if let Some(retry) = retry {
        let _ = writeln!(out, "{indent}retry: {retry}");
    }
    if let Some(timeout) = timeout {
        let _ = writeln!(out, "{indent}timeout: {timeout}");
    }
}

/// The fields of an action body the one-line summary does not already show; a multi-line
/// value (a script) is shown as its lines.
fn write_body(out: &mut String, body: &Value, indent: &str) {
    const IN_SUMMARY: &[&str] = &["command", "url", "method"];
    let Value::Object(fields) = body else { return };
    for (key, value) in fields {
        if IN_SUMMARY.contains(&key.as_str()) {
            continue;
        }
        match value {
            Value::String(text) if text.contains('\n') => {
                let _ = writeln!(out, "{indent}{key}:");
                for line in text.trim_end().lines() {
                    let _ = writeln!(out, "{indent}  │ {line}");
                }
            }
            Value::String(text) => {
                let _ = writeln!(out, "{indent}{key}: {text}");
            }
            // A Kubernetes patch or manifest: shown whole, as the document that is sent.
            Value::Object(_) | Value::Array(_) if matches!(key.as_str(), "patch" | "manifest") => {
                let _ = writeln!(out, "{indent}{key}:");
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                for line in pretty.lines() {
                    let _ = writeln!(out, "{indent}  │ {line}");
                }
            }
            other => {
                let _ = writeln!(
                    out,
                    "{indent}{key}: {}",
                    serde_json::to_string(other).unwrap_or_default()
                );
            }
        }
    }
}

/// A duration in milliseconds as runbooks write one.
fn shown(ms: u64) -> String {
    crate::runbook::Duration(std::time::Duration::from_millis(ms)).to_string()
}
