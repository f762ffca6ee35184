//! The one error type of the REST API and its JSON shape.
//!
//! Every failure leaves a handler as an [`ApiError`]; its `IntoResponse` writes
//! `{"message", "error", "code", "errors"?}` with the matching HTTP status.
//! Internal errors are logged here and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::domain::fields::FieldErrors;
use crate::domain::fields::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: an upload of a type the endpoint does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 507: the disk is below the configured floor.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{message}")]
    Validation {
        message: String,
        errors: FieldErrors,
    },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Human-readable description of what went wrong.
    pub message: String,
    /// Same text as `message`, for clients that look for an `error` string.
    pub error: String,
    /// Machine-readable code: `UNAUTHORIZED`, `NOT_FOUND`, `VALIDATION_ERROR`, ...
    pub code: &'static str,
    /// Per-field validation problems (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// A 422 for a single field.
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![problem.clone()]);
        ApiError::Validation {
            message: format!("{field}: {problem}"),
            errors,
        }
    }

    /// A 422 from collected field errors (callers only build this when non-empty).
    pub fn fields(errors: FieldErrors) -> Self {
        let message = errors
            .iter()
            .flat_map(|(f, msgs)| msgs.iter().map(move |m| format!("{f}: {m}")))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Validation { message, errors }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::InsufficientStorage(_) => "INSUFFICIENT_STORAGE",
            ApiError::Validation { .. } => "VALIDATION_ERROR",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

/// A body that failed the domain's validation: 422 with the per-field map.
impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::fields(e.0)
    }
}

/// SQLite's "database or disk is full" (`SQLITE_FULL`, 13).
fn disk_full(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => {
            e.code().as_deref() == Some("13") || e.message().contains("disk is full")
        }
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if disk_full(&err) {
            tracing::error!(error = %err, "the database's disk is full: writes fail until space is freed");
            return ApiError::InsufficientStorage(
                "the server's disk is full: nothing was saved; try again later".into(),
            );
        }
        ApiError::Internal(format!("database: {err}"))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Sqlx(err) => err.into(),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let (message, errors) = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a request");
                ("internal server error".to_string(), None)
            }
            ApiError::Validation { message, errors } => (message, Some(errors)),
            ApiError::RateLimited { .. } => (
                "rate limit exceeded: too many requests for this developer key, retry later"
                    .to_string(),
                None,
            ),
            other => (other.to_string(), None),
        };
        let body = ErrorBody {
            error: message.clone(),
            message,
            code,
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"convene\", Basic realm=\"convene\""),
            );
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
