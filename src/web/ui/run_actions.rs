//! The run page's forms: approve or reject, pause, resume, retry from a step, skip a step,
//! abort (with undo). Each needs an operator (refused to anyone else, whatever the page
//! showed), asks for a reason, goes through the same `crate::app` function as the command
//! line and the API, with the signed-in person as who did it, and comes back to the run's
//! page with what happened. Runs are executed by serve's workers, never in a request: a
//! control that leaves a run to go on asks them to resume it.

use super::page::{PageUser, Section, escape, operators_only, page_with_status};
use super::run_page::{LoadedRun, run_body};
use super::runs_list::encode;
use crate::app::{self, AppError};
use crate::web::WebState;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    step: String,
    /// `approve` or `reject`.
    decision: String,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Deserialize)]
pub struct ControlForm {
    #[serde(default)]
    reason: String,
    /// The step of a retry (empty: every failed step) or a skip.
    #[serde(default)]
    step: String,
    /// A checkbox: pause now, abort with undo.
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    undo: Option<String>,
}

/// What a control did, or why it was not done.
type Outcome = Result<&'static str, String>;

pub async fn approve(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    if !user.may_operate() {
        return operators_only(&user, Section::Runs, &back(&run_id));
    }
    let approved = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return refused(
                &state,
                &user,
                &run_id,
                format!("`{other}` is neither approve nor reject"),
            )
            .await;
        }
    };
    let request = app::ApproveRequest {
        run_id: run_id.clone(),
        step: form.step,
        approved,
        by: Some(user.identity.name.clone()),
        comment: Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty()),
    };
    let outcome = app::approve(state.store.as_ref(), request)
        .await
        .map(|_| if approved { "approved" } else { "rejected" })
        .map_err(|error| error.to_string());
    finish(&state, &user, &run_id, outcome).await
}

pub async fn pause(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Response {
    let reason = match checked(&user, &run_id, &form) {
        Ok(reason) => reason,
        Err(response) => return *response,
    };
    let reason = match reason {
        Ok(reason) => reason,
        Err(message) => return refused(&state, &user, &run_id, message).await,
    };
    let request = app::PauseRunRequest {
        run_id: run_id.clone(),
        now: form.now.is_some(),
        by: Some(user.identity.name.clone()),
        reason,
    };
    let outcome = app::pause(state.store.as_ref(), request)
        .await
        .map(|_| "paused")
        .map_err(|error| error.to_string());
    finish(&state, &user, &run_id, outcome).await
}

pub async fn resume(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Response {
    let reason = match checked(&user, &run_id, &form) {
        Ok(Ok(reason)) => reason,
        Ok(Err(message)) => return refused(&state, &user, &run_id, message).await,
        Err(response) => return *response,
    };
    let outcome = app::ask_resume(
        state.store.as_ref(),
        &run_id,
        Some(user.identity.name.clone()),
        reason,
    )
    .await
    .map(|_| "resumed")
    .map_err(|error| error.to_string());
    finish(&state, &user, &run_id, outcome).await
}

pub async fn retry(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Response {
    let reason = match checked(&user, &run_id, &form) {
        Ok(Ok(reason)) => reason,
        Ok(Err(message)) => return refused(&state, &user, &run_id, message).await,
        Err(response) => return *response,
    };
    let by = Some(user.identity.name.clone());
    let request = app::RetryRequest {
        run_id: run_id.clone(),
        from: Some(form.step.trim().to_owned())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
        inputs: Vec::new(),
        by: by.clone(),
        reason: reason.clone(),
        max_parallel: None,
    };
    let outcome = match app::retry(state.store.clone(), request, &log_notice).await {
        Ok(retried) => hand_over(&state, retried.run, &run_id, by, reason, "retried").await,
        Err(error) => Err(error.to_string()),
    };
    finish(&state, &user, &run_id, outcome).await
}

pub async fn skip(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Response {
    let reason = match checked(&user, &run_id, &form) {
        Ok(Ok(reason)) => reason,
        Ok(Err(message)) => return refused(&state, &user, &run_id, message).await,
        Err(response) => return *response,
    };
    let request = app::SkipRequest {
        run_id: run_id.clone(),
        step: form.step.trim().to_owned(),
        outputs: serde_json::Map::new(),
        by: Some(user.identity.name.clone()),
        reason,
    };
    let outcome = app::skip(state.store.as_ref(), request)
        .await
        .map(|_| "skipped")
        .map_err(|error| error.to_string());
    finish(&state, &user, &run_id, outcome).await
}

pub async fn abort(
    user: PageUser,
    State(state): State<WebState>,
    Path(run_id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Response {
    let reason = match checked(&user, &run_id, &form) {
        Ok(Ok(reason)) => reason,
        Ok(Err(message)) => return refused(&state, &user, &run_id, message).await,
        Err(response) => return *response,
    };
    let by = Some(user.identity.name.clone());
    let request = app::AbortRunRequest {
        run_id: run_id.clone(),
        undo: form.undo.is_some(),
        by: by.clone(),
        reason: reason.clone(),
        max_parallel: None,
    };
    let outcome = match app::abort(state.store.clone(), request, &log_notice).await {
        Ok(app::Aborted::Asked { .. }) => Ok("abort-asked"),
        Ok(app::Aborted::Claimed { run, .. }) => {
            hand_over(&state, *run, &run_id, by, reason, "aborted").await
        }
        Err(error) => Err(error.to_string()),
    };
    finish(&state, &user, &run_id, outcome).await
}

/// Journaled and claimed: let go of the run and ask serve's workers to finish it.
async fn hand_over(
    state: &WebState,
    run: app::ClaimedRun,
    run_id: &str,
    by: Option<String>,
    reason: String,
    done: &'static str,
) -> Outcome {
    run.release()
        .await
        .map_err(|error| AppError::from(error).to_string())?;
    app::ask_resume(state.store.as_ref(), run_id, by, reason)
        .await
        .map(|_| done)
        .map_err(|error| error.to_string())
}

fn log_notice(notice: app::Notice) {
    tracing::info!("{notice}");
}

/// An operator, and a reason given: the reason, or why not; a page refusing a viewer.
#[allow(clippy::result_large_err)]
fn checked(
    user: &PageUser,
    run_id: &str,
    form: &ControlForm,
) -> Result<Result<String, String>, Box<Response>> {
    if !user.may_operate() {
        return Err(Box::new(operators_only(user, Section::Runs, &back(run_id))));
    }
    let reason = form.reason.trim();
    Ok(if reason.is_empty() {
        Err("say why: the reason is journaled with the control".to_owned())
    } else {
        Ok(reason.to_owned())
    })
}

fn back(run_id: &str) -> String {
    format!("/runs/{}", encode(run_id))
}

/// Back to the run's page: with what was done, or the page again with why not.
async fn finish(state: &WebState, user: &PageUser, run_id: &str, outcome: Outcome) -> Response {
    match outcome {
        Ok(done) => Redirect::to(&format!("{}?done={done}", back(run_id))).into_response(),
        Err(message) => refused(state, user, run_id, message).await,
    }
}

async fn refused(state: &WebState, user: &PageUser, run_id: &str, message: String) -> Response {
    let mut body = format!(
        "<p class=\"problem\" role=\"alert\" id=\"problem\"><span aria-hidden=\"true\">✗ </span>{}</p>\n",
        escape(&message)
    );
    let title = match LoadedRun::load(state, run_id).await {
        Ok(run) => {
            body.push_str(&run_body(user, &run));
            format!("Run {} of {}", run.report.id, run.report.runbook)
        }
        Err(_) => format!("Run {run_id}"),
    };
    page_with_status(StatusCode::CONFLICT, user, Section::Runs, &title, &body)
}
