//! The fleet API's error type and the seed's error shape:
//! `{"error": {"code", "message", "details"}}`.
//!
//! Internal errors are logged here and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::{FieldErrors, Invalid};
use crate::store::StoreError;
use crate::store::fleet::FleetStoreError;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// 401 `UNAUTHORIZED`: missing, invalid or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `FORBIDDEN`: authenticated, but the role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// 400 `VALIDATION_ERROR` with the problems per field in `details`.
    #[error("{0}")]
    Validation(Invalid),
    /// 400 `VALIDATION_ERROR` about the body as a whole (not JSON, not an object).
    #[error("{0}")]
    BadBody(String),
    /// 409 `CONFLICT`: a unique name or id is taken.
    #[error("{0}")]
    Conflict(String),
    /// 405 `METHOD_NOT_ALLOWED`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413 `PAYLOAD_TOO_LARGE`.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 429 `RATE_LIMITED` with `Retry-After`.
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    /// 503 `DEVICE_OFFLINE`: the device has no open connection.
    #[error("{0}")]
    DeviceOffline(String),
    /// 409 `MEETING_ACTIVE`: the device is already in a meeting.
    #[error("{0}")]
    MeetingActive(String),
    /// An action the device could not carry out, or did not answer in
    /// time: the status and code say which (`NOT_CONFIGURED`,
    /// `NO_ACTIVE_MEETING`, `DEVICE_TIMEOUT`, `ACTION_FAILED`, ...).
    #[error("{message}")]
    Action {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type FleetResult<T> = Result<T, FleetError>;

impl FleetError {
    pub fn not_found(what: &str, id: &str) -> FleetError {
        let id: String = id.chars().take(100).collect();
        FleetError::NotFound(format!("{what} with ID '{id}' not found"))
    }

    pub fn internal(e: impl std::fmt::Display) -> FleetError {
        FleetError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            FleetError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            FleetError::Forbidden(_) => StatusCode::FORBIDDEN,
            FleetError::NotFound(_) => StatusCode::NOT_FOUND,
            FleetError::Validation(_) | FleetError::BadBody(_) => StatusCode::BAD_REQUEST,
            FleetError::Conflict(_) => StatusCode::CONFLICT,
            FleetError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            FleetError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FleetError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            FleetError::DeviceOffline(_) => StatusCode::SERVICE_UNAVAILABLE,
            FleetError::MeetingActive(_) => StatusCode::CONFLICT,
            FleetError::Action { status, .. } => *status,
            FleetError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            FleetError::Unauthorized(_) => "UNAUTHORIZED",
            FleetError::Forbidden(_) => "FORBIDDEN",
            FleetError::NotFound(_) => "NOT_FOUND",
            FleetError::Validation(_) | FleetError::BadBody(_) => "VALIDATION_ERROR",
            FleetError::Conflict(_) => "CONFLICT",
            FleetError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            FleetError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            FleetError::RateLimited { .. } => "RATE_LIMITED",
            FleetError::DeviceOffline(_) => "DEVICE_OFFLINE",
            FleetError::MeetingActive(_) => "MEETING_ACTIVE",
            FleetError::Action { code, .. } => code,
            FleetError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl From<Invalid> for FleetError {
    fn from(e: Invalid) -> Self {
        FleetError::Validation(e)
    }
}

impl From<StoreError> for FleetError {
    fn from(e: StoreError) -> Self {
        FleetError::Internal(e.to_string())
    }
}

impl From<FleetStoreError> for FleetError {
    fn from(e: FleetStoreError) -> Self {
        match e {
            FleetStoreError::Store(s) => s.into(),
            FleetStoreError::NotFound(what) => FleetError::NotFound(format!("{what} not found")),
            FleetStoreError::Taken { field, value } => {
                let value: String = value.chars().take(100).collect();
                FleetError::Conflict(format!("{field} '{value}' is already taken"))
            }
            FleetStoreError::LastAdmin(m) => FleetError::Conflict(m.to_string()),
            FleetStoreError::Unknown { field, ids } => {
                let ids: Vec<String> = ids
                    .iter()
                    .take(20)
                    .map(|i| i.chars().take(100).collect())
                    .collect();
                FleetError::Validation(Invalid::field(
                    field,
                    format!("no such {}: {}", noun(field), ids.join(", ")),
                ))
            }
        }
    }
}

fn noun(field: &str) -> &'static str {
    if field.ends_with("devices") {
        "device(s)"
    } else {
        "group(s)"
    }
}

fn details(errors: &FieldErrors) -> Value {
    let mut m = Map::new();
    for (field, problems) in errors {
        m.insert(field.clone(), Value::from(problems.clone()));
    }
    Value::Object(m)
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let (message, details) = match &self {
            FleetError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a fleet request");
                ("internal server error".to_string(), json!({}))
            }
            FleetError::Validation(invalid) => (invalid.message(), details(&invalid.0)),
            FleetError::RateLimited { retry_after_secs } => (
                "rate limit exceeded: too many requests for this user, retry later".to_string(),
                json!({ "retry_after": retry_after_secs }),
            ),
            FleetError::PayloadTooLarge(max) => (self.to_string(), json!({ "max_bytes": max })),
            other => (other.to_string(), json!({})),
        };
        let body = json!({
            "error": { "code": code, "message": message, "details": details }
        });
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            FleetError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"convene-fleet\""),
                );
            }
            FleetError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
