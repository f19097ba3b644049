//! The run page's forms: approve or reject, pause, resume, retry from a step, skip a step,
//! abort (with undo). Each needs an operator (refused to anyone else, whatever the page
//! showed), asks for a reason, goes through the same `crate::app` function as the command
//! line and the API, with the signed-in person as who did it, and comes back to the run's
//! page with what happened. A control that claims a run (resume, retry, the abort of a
//! parked run, an answer to a parked run) hands it to serve, which runs it as the API's
//! controls do: on serve's own thread, with a store of its own, listed in serve's queue.

use super::page::{PageUser, Section, escape, operators_only, page_with_status};
use super::run_page::{LoadedRun, run_body};
use super::runs_list::encode;
use crate::app::{self, AppError};
use crate::report::run_report::shown_status;
use crate::web::{WebState, api};
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
    let outcome = match app::approve(state.store.as_ref(), request).await {
        Ok(recorded) => {
            // A parked run of serve's queue goes on at once rather than at serve's next look
            // for answers; a live run picks the answer up itself.
            if recorded.picked_up_by.is_none() && api::in_serves_queue(&state, &run_id).await {
                let name = user.identity.name.clone();
                if let Err(message) = resume_in_serve(&state, &run_id, &name, None).await {
                    tracing::info!(run_id = %run_id, %message, "the answered run is left for serve's next look");
                }
            }
            Ok(if approved { "approved" } else { "rejected" })
        }
        Err(error) => Err(error.to_string()),
    };
    finish(&state, &user, &run_id, outcome).await
}

pub async fn pause(
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
    let outcome = resume_in_serve(&state, &run_id, &user.identity.name, Some(reason)).await;
    finish(&state, &user, &run_id, outcome.map(|()| "resumed")).await
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
    let name = user.identity.name.clone();
    let outcome = async {
        let store = api::own_store(&state)
            .await
            .map_err(|error| error.to_string())?;
        let request = app::RetryRequest {
            run_id: run_id.clone(),
            from: Some(form.step.trim().to_owned())
                .filter(|s| !s.is_empty())
                .into_iter()
                .collect(),
            inputs: Vec::new(),
            by: Some(name.clone()),
            reason,
            max_parallel: None,
        };
        let retried = app::retry(store.clone(), request, &log_notice)
            .await
            .map_err(|error| api::closing(&store, error).to_string())?;
        api::run_in_serve(&state, &run_id, retried.run, &name)
            .await
            .map_err(|stopping| stopping.to_string())?;
        Ok("retried")
    }
    .await;
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
    let name = user.identity.name.clone();
    let outcome = async {
        let store = api::own_store(&state)
            .await
            .map_err(|error| error.to_string())?;
        let request = app::AbortRunRequest {
            run_id: run_id.clone(),
            undo: form.undo.is_some(),
            by: Some(name.clone()),
            reason,
            max_parallel: None,
        };
        match app::abort(store.clone(), request, &log_notice).await {
            Ok(app::Aborted::Asked { .. }) => {
                let _ = store.close().await;
                Ok("abort-asked")
            }
            Ok(app::Aborted::Claimed { run, .. }) => {
                api::run_in_serve(&state, &run_id, *run, &name)
                    .await
                    .map_err(|stopping| stopping.to_string())?;
                Ok("aborted")
            }
            Err(error) => Err(api::closing(&store, error).to_string()),
        }
    }
    .await;
    finish(&state, &user, &run_id, outcome).await
}

/// Resumes a parked run in serve (`reason`: the person's, logged; `None` after an answer).
async fn resume_in_serve(
    state: &WebState,
    run_id: &str,
    by: &str,
    reason: Option<String>,
) -> Result<(), String> {
    if state.runs.stopping() {
        return Err("serve is stopping; the run stays parked for the next serve".to_owned());
    }
    let summary = state
        .store
        .run(run_id)
        .await
        .map_err(|error| AppError::from(error).to_string())?;
    let status = shown_status(&summary);
    if !status.is_parked() {
        return Err(format!(
            "run {run_id} is {}: only a parked run (interrupted, waiting, parked) can be resumed",
            status.name()
        ));
    }
    let store = api::own_store(state)
        .await
        .map_err(|error| error.to_string())?;
    let request = app::ResumeRequest {
        run_id: run_id.to_owned(),
        max_parallel: None,
        window_until: None,
    };
    let run = app::resume(store.clone(), request, &log_notice)
        .await
        .map_err(|error| api::closing(&store, error).to_string())?;
    tracing::info!(run_id = %run_id, by = %by, reason = reason.as_deref().unwrap_or(""), "resumed from the web");
    api::run_in_serve(state, run_id, run, by)
        .await
        .map_err(|stopping| stopping.to_string())
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
