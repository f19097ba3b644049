//! How the API says no: an HTTP status and a JSON body `{error, fields?}`, the status saying
//! whose mistake it is (404 no such run, 409 the run is not in a state for it, 422 a field is
//! wrong, 503 the store cannot be reached).

use crate::app::AppError;
use crate::store::StoreError;
use crate::web::catalog::{FieldProblem, StartProblems};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The fields at fault, each with its own message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                fields: Vec::new(),
            },
        }
    }

    /// 422 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                error: message.clone(),
                fields: vec![FieldProblem {
                    field: field.to_owned(),
                    message,
                }],
            },
        }
    }

    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        store_answer(&error)
    }
}

fn store_answer(error: &StoreError) -> ApiError {
    {
        let status = match error {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Exists(_)
            | StoreError::Owned { .. }
            | StoreError::AlreadyDecided { .. }
            | StoreError::LostOwnership(_) => StatusCode::CONFLICT,
            StoreError::Corrupt { .. } | StoreError::Damaged { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match error {
            StoreError::Owned { run_id, owner } => format!(
                "run `{run_id}` is owned by {owner}, which runs it now; pause it first, or wait \
                 until it parks"
            ),
            other => other.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        let message = error.to_string();
        let (status, field) = match &error {
            AppError::Store(store) | AppError::StoreLocation(store) => {
                return store_answer(store);
            }
            AppError::AlreadyEnded { .. }
            | AppError::AlreadyAnswered { .. }
            | AppError::NotWaiting { .. }
            | AppError::NotLive { .. }
            | AppError::NothingFailed { .. }
            | AppError::NotSkippable { .. }
            | AppError::NotResumable(_) => (StatusCode::CONFLICT, None),
            AppError::UnknownStep { .. } | AppError::StepPathRefused { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("step"))
            }
            AppError::UnknownOutput { .. } | AppError::SecretOutput { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("outputs"))
            }
            AppError::BadInputs(_) => (StatusCode::UNPROCESSABLE_ENTITY, Some("inputs")),
            AppError::WindowOver { .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some("window")),
            AppError::InvalidRunbook(problems)
            | AppError::StoredRunbookInvalid { problems, .. }
            | AppError::EditInvalid { problems, .. } => {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| match p.location() {
                        Some(at) => format!("{at}: {}", p.message),
                        None => p.message.clone(),
                    })
                    .collect();
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{message}: {}", lines.join("; ")),
                );
            }
            AppError::EditRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, None),
            // What serve itself lacks (a secret in its environment, a cluster configuration):
            // not the asker's mistake.
            AppError::Secret(_)
            | AppError::SecretKey(_)
            | AppError::Preflight(_)
            | AppError::Leftovers(_)
            | AppError::LeftoverScan { .. } => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        match field {
            Some(field) => ApiError {
                status,
                body: ErrorBody {
                    error: message.clone(),
                    fields: vec![FieldProblem {
                        field: field.to_owned(),
                        message,
                    }],
                },
            },
            None => ApiError::new(status, message),
        }
    }
}

impl From<StartProblems> for ApiError {
    fn from(problems: StartProblems) -> ApiError {
        match problems {
            StartProblems::UnknownRunbook(_) => ApiError::not_found(problems.to_string()),
            StartProblems::InvalidRunbook { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, problems.to_string())
            }
            StartProblems::Fields(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: ErrorBody {
                    error: fields
                        .iter()
                        .map(|f| f.message.clone())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    fields,
                },
            },
            StartProblems::App(error) => ApiError::from(error),
        }
    }
}
