//! `/runbooks`: the runbooks the web may start; `/runbooks/{name}/start`: a form generated
//! from a runbook's typed inputs (a text field for a string, a number field, a checkbox for
//! a boolean, a JSON text area for an array or an object). A start that is refused shows the
//! form again with each problem next to its field and the values as given.

use super::page::{PageUser, Section, escape, operators_only, page, page_with_status, problem};
use super::runs_list::encode;
use crate::web::WebState;
use crate::web::catalog::{self, CatalogInput, CatalogRunbook, FieldProblem, StartProblems};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write;

pub async fn runbooks_page(user: PageUser, State(state): State<WebState>) -> Response {
    let runbooks = catalog::list(&state);
    let mut body = String::new();
    if runbooks.is_empty() {
        body.push_str(
            "<p>No runbook may be started from here: list runbook files or folders under \
             <code>http.runbooks</code> in serve.yaml.</p>\n",
        );
    }
    body.push_str("<ul class=\"runbooks\">\n");
    for runbook in &runbooks {
        let start = if !runbook.problems.is_empty() {
            format!(
                " <span class=\"failed\">✗ cannot start: {}</span>",
                escape(&runbook.problems.join("; "))
            )
        } else if user.may_operate() {
            format!(
                " <a href=\"/runbooks/{}/start\">Start…</a>",
                escape(&encode(&runbook.name))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            body,
            "<li data-runbook=\"{name}\"><b>{name}</b> <code>{}</code>{start}{}</li>",
            escape(&runbook.path),
            runbook
                .description
                .as_ref()
                .map(|d| format!("<br><span class=\"hint\">{}</span>", escape(d)))
                .unwrap_or_default(),
            name = escape(&runbook.name),
        );
    }
    body.push_str("</ul>\n");
    page(&user, Section::Runbooks, "Runbooks", &body).into_response()
}

pub async fn start_page(
    user: PageUser,
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> Response {
    if !user.may_operate() {
        return operators_only(&user, Section::Runbooks, "/runbooks");
    }
    match find(&state, &name) {
        Some(runbook) => {
            let body = form(&user, &runbook, &HashMap::new(), &[], None);
            page(
                &user,
                Section::Runbooks,
                &format!("Start {}", runbook.name),
                &body,
            )
            .into_response()
        }
        None => unknown(&user, &name),
    }
}

pub async fn start(
    user: PageUser,
    State(state): State<WebState>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if !user.may_operate() {
        return operators_only(&user, Section::Runbooks, "/runbooks");
    }
    let Some(runbook) = find(&state, &name) else {
        return unknown(&user, &name);
    };
    let given: HashMap<String, String> = fields
        .into_iter()
        .filter(|(field, _)| field.starts_with("input."))
        .map(|(field, value)| (field["input.".len()..].to_owned(), value))
        .collect();
    let inputs = values(&runbook, &given);
    match catalog::start_run(
        &state,
        &user.identity,
        &runbook.name,
        &Value::Object(inputs),
    )
    .await
    {
        Ok(run_id) => {
            Redirect::to(&format!("/runs/{}?done=started", encode(&run_id))).into_response()
        }
        Err(StartProblems::Fields(problems)) => {
            let body = form(&user, &runbook, &given, &problems, None);
            page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &user,
                Section::Runbooks,
                &format!("Start {}", runbook.name),
                &body,
            )
        }
        Err(other) => {
            let body = form(&user, &runbook, &given, &[], Some(&other.to_string()));
            page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &user,
                Section::Runbooks,
                &format!("Start {}", runbook.name),
                &body,
            )
        }
    }
}

fn find(state: &WebState, name: &str) -> Option<CatalogRunbook> {
    catalog::list(state).into_iter().find(|r| r.name == name)
}

fn unknown(user: &PageUser, name: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        user,
        Section::Runbooks,
        &format!("no runbook `{name}` may be started here"),
        "/runbooks",
    )
}

/// The form's fields as a start request's inputs: texts as typed (the catalog reads them as
/// the command line reads `--input NAME=TEXT`), a checkbox as a boolean. An empty field is
/// not given: its default applies, or it is reported missing.
fn values(runbook: &CatalogRunbook, given: &HashMap<String, String>) -> Map<String, Value> {
    let mut inputs = Map::new();
    for input in &runbook.inputs {
        let text = given.get(&input.name).map(String::as_str).unwrap_or("");
        if input.kind == "boolean" {
            inputs.insert(input.name.clone(), Value::Bool(!text.is_empty()));
        } else if !text.is_empty() {
            inputs.insert(input.name.clone(), Value::String(text.to_owned()));
        }
    }
    inputs
}

fn form(
    user: &PageUser,
    runbook: &CatalogRunbook,
    given: &HashMap<String, String>,
    problems: &[FieldProblem],
    general: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(description) = &runbook.description {
        let _ = writeln!(out, "<p>{}</p>", escape(description));
    }
    let _ = writeln!(
        out,
        "<p>From <code>{}</code>. The run is queued; a worker of serve starts it.</p>",
        escape(&runbook.path)
    );
    let unplaced: Vec<&FieldProblem> = problems
        .iter()
        .filter(|p| !runbook.inputs.iter().any(|i| i.name == p.field))
        .collect();
    if !problems.is_empty() || general.is_some() {
        let _ = writeln!(
            out,
            "<div class=\"problem\" role=\"alert\" id=\"form-problems\"><p><span aria-hidden=\"true\">✗ </span>\
             The run was not started: {} problem(s).</p>",
            problems.len() + usize::from(general.is_some())
        );
        if let Some(general) = general {
            let _ = writeln!(out, "<p>{}</p>", escape(general));
        }
        for problem in &unplaced {
            let _ = writeln!(
                out,
                "<p><code>{}</code>: {}</p>",
                escape(&problem.field),
                escape(&problem.message)
            );
        }
        out.push_str("</div>\n");
    }
    let _ = writeln!(
        out,
        "<form method=\"post\" action=\"/runbooks/{}/start\" id=\"start-form\" novalidate>{}",
        escape(&encode(&runbook.name)),
        user.csrf_field()
    );
    if runbook.inputs.is_empty() {
        out.push_str("<p>This runbook has no inputs.</p>\n");
    }
    for (number, input) in runbook.inputs.iter().enumerate() {
        field(&mut out, number, input, given, problems);
    }
    if !runbook.secrets.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"hint\">Its secrets ({}) are read where serve runs, never given here.</p>",
            escape(&runbook.secrets.join(", "))
        );
    }
    out.push_str(
        "<p><button type=\"submit\" class=\"primary\">▶ Start the run</button></p>\n</form>\n",
    );
    out
}

fn field(
    out: &mut String,
    number: usize,
    input: &CatalogInput,
    given: &HashMap<String, String>,
    problems: &[FieldProblem],
) {
    let id = format!("input-{number}");
    let name = format!("input.{}", input.name);
    let errors: Vec<&FieldProblem> = problems.iter().filter(|p| p.field == input.name).collect();
    let default = input.default.as_ref().map(|d| match d {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    let value = given
        .get(&input.name)
        .cloned()
        .or_else(|| default.clone())
        .unwrap_or_default();
    let mut described = vec![format!("{id}-hint")];
    if !errors.is_empty() {
        described.push(format!("{id}-error"));
    }
    let described = described.join(" ");
    let invalid = if errors.is_empty() {
        ""
    } else {
        " aria-invalid=\"true\""
    };
    let required = if input.required { " (required)" } else { "" };
    let _ = writeln!(
        out,
        "<div class=\"field\" data-input=\"{}\">",
        escape(&input.name)
    );
    let hint = format!(
        "{}{}",
        input.kind,
        input
            .description
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    match input.kind.as_str() {
        "boolean" => {
            let checked =
                if value == "true" || (given.is_empty() && default.as_deref() == Some("true")) {
                    " checked"
                } else {
                    ""
                };
            let _ = writeln!(
                out,
                "<input type=\"checkbox\" id=\"{id}\" name=\"{n}\" value=\"true\"{checked}{invalid} \
                 aria-describedby=\"{described}\"> <label class=\"check\" for=\"{id}\">{label}</label>",
                n = escape(&name),
                label = escape(&input.name),
            );
        }
        kind => {
            let _ = writeln!(
                out,
                "<label for=\"{id}\">{}{required}</label>",
                escape(&input.name)
            );
            if kind == "array" || kind == "object" {
                let _ = writeln!(
                    out,
                    "<textarea id=\"{id}\" name=\"{n}\"{invalid} aria-describedby=\"{described}\">{}</textarea>",
                    escape(&value),
                    n = escape(&name),
                );
            } else {
                let mode = if kind == "integer" {
                    " inputmode=\"numeric\""
                } else if kind == "number" {
                    " inputmode=\"decimal\""
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "<input type=\"text\" id=\"{id}\" name=\"{n}\" value=\"{}\"{mode}{invalid} \
                     aria-describedby=\"{described}\" autocomplete=\"off\">",
                    escape(&value),
                    n = escape(&name),
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "<p class=\"hint\" id=\"{id}-hint\">{}</p>",
        escape(&hint)
    );
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"field-error\" id=\"{id}-error\"><span aria-hidden=\"true\">✗ </span>{}</p>",
            escape(
                &errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        );
    }
    out.push_str("</div>\n");
}
