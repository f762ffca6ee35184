//! Webhooks: CRUD, the event list, delivery history and redelivery.
//!
//! The secret and the authorization header are write-only: responses say
//! whether each is set, never what it is.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::store::webhooks::{
    Delivery, MAX_WEBHOOKS_PER_TEAM, NewWebhook, WebhookPatch, WebhookRecord,
};
use crate::webhooks::{Event, guard};

const MAX_NAME: usize = 255;
const MAX_SECRET: usize = 256;
const MAX_AUTHORIZATION: usize = 1024;
const MAX_EVENTS: usize = 64;

/// A webhook as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub name: Option<String>,
    pub endpoint: String,
    /// Event names as subscribed (dotted or snake_case).
    pub events: Vec<String>,
    /// Whether deliveries are signed (`X-Signature`, `X-Webhook-Signature`).
    pub has_secret: bool,
    /// Whether deliveries carry the configured `Authorization` header.
    pub has_authorization_header: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<WebhookRecord> for WebhookView {
    fn from(w: WebhookRecord) -> Self {
        WebhookView {
            has_secret: w.secret.is_some(),
            has_authorization_header: w.authorization_header.is_some(),
            id: w.id,
            name: w.name,
            endpoint: w.endpoint,
            events: w.events,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// The body of a create or update (documentation only; bodies are read as
/// JSON objects and validated field by field).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookBody {
    /// http(s) URL of a public address. Required on create.
    endpoint: Option<String>,
    name: Option<String>,
    /// Event names (dotted or snake_case). Required on create.
    events: Option<Vec<String>>,
    /// Signs deliveries with HMAC-SHA256 (write-only; null clears).
    secret: Option<String>,
    /// Sent verbatim as `Authorization` (write-only; null clears).
    authorization_header: Option<String>,
}

/// `Some(None)` for null, `Some(Some(s))` for a valid string, `None` when absent
/// or invalid (the error is pushed).
fn nullable_text(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    header: bool,
    errors: &mut FieldErrors,
) -> Option<Option<String>> {
    let mut push = |m: String| errors.entry(field.to_string()).or_default().push(m);
    match body.get(field)? {
        Value::Null => Some(None),
        Value::String(s) if s.is_empty() => {
            push("must not be empty (use null to clear it)".into());
            None
        }
        Value::String(s) if s.chars().count() > max => {
            push(format!("must be at most {max} characters"));
            None
        }
        Value::String(s)
            if header && !s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) =>
        {
            push("must be printable ASCII (it is sent as an HTTP header)".into());
            None
        }
        Value::String(s) => Some(Some(s.clone())),
        _ => {
            push("must be a string or null".into());
            None
        }
    }
}

fn events_field(v: &Value) -> Result<Vec<String>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| "must be an array of event names".to_string())?;
    if items.is_empty() {
        return Err("must name at least one event".into());
    }
    if items.len() > MAX_EVENTS {
        return Err(format!("at most {MAX_EVENTS} events"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut unknown = Vec::new();
    for item in items {
        let Some(s) = item.as_str() else {
            return Err("must be an array of event names".into());
        };
        match Event::parse(s) {
            Some(e) => {
                if !out.iter().any(|o| Event::parse(o) == Some(e)) {
                    out.push(s.to_string());
                }
            }
            None => unknown.push(s.chars().take(64).collect::<String>()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown event(s): {}; see GET /api/v1/events",
            unknown.join(", ")
        ));
    }
    Ok(out)
}

/// Validates a body into a patch; on create, `endpoint` and `events` are
/// required. The endpoint's address is checked separately (async).
fn webhook_patch(body: &Map<String, Value>, create: bool) -> ApiResult<WebhookPatch> {
    let mut errors = FieldErrors::new();
    let mut patch = WebhookPatch::default();
    match body.get("endpoint") {
        None if create => {
            errors.insert("endpoint".into(), vec!["is required".into()]);
        }
        None => {}
        Some(Value::String(s)) => match guard::parse_endpoint(s.trim()) {
            Ok(u) => patch.endpoint = Some(u.to_string()),
            Err(m) => {
                errors.insert("endpoint".into(), vec![m]);
            }
        },
        Some(_) => {
            errors.insert(
                "endpoint".into(),
                vec!["must be a string (an http(s) URL)".into()],
            );
        }
    }
    match body.get("events") {
        None if create => {
            errors.insert("events".into(), vec!["is required".into()]);
        }
        None => {}
        Some(v) => match events_field(v) {
            Ok(e) => patch.events = Some(e),
            Err(m) => {
                errors.insert("events".into(), vec![m]);
            }
        },
    }
    patch.name = nullable_text(body, "name", MAX_NAME, false, &mut errors);
    patch.secret = nullable_text(body, "secret", MAX_SECRET, false, &mut errors);
    patch.authorization_header = nullable_text(
        body,
        "authorization_header",
        MAX_AUTHORIZATION,
        true,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(patch)
}

async fn check_address(state: &ApiState, endpoint: Option<&str>) -> ApiResult<()> {
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    if state.config.webhooks.allow_private {
        return Ok(());
    }
    let url = guard::parse_endpoint(endpoint).map_err(|m| ApiError::field("endpoint", m))?;
    guard::check_endpoint(&url)
        .await
        .map_err(|m| ApiError::field("endpoint", m))
}

async fn find(state: &ApiState, team: &Team, id: &str) -> ApiResult<WebhookRecord> {
    state
        .db
        .webhook(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// List the team's webhooks (paginated).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query), ("order" = Option<String>, Query),
           ("after" = Option<String>, Query)),
    responses((status = 200, body = List<WebhookView>), (status = 422, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<WebhookView>>> {
    let (page, after) = query.page()?;
    if let Some(a) = &after
        && state.db.webhook(&team.id, a).await?.is_none()
    {
        return Err(ApiError::field(
            "after",
            format!("no webhook '{a}' to page after"),
        ));
    }
    let (total, hooks) = state
        .db
        .list_webhooks(&team.id, &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count: total,
        data: hooks.into_iter().map(WebhookView::from).collect(),
    }))
}

/// Create a webhook.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookBody,
    responses((status = 200, body = WebhookView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<WebhookView>> {
    let patch = webhook_patch(&body, true)?;
    check_address(&state, patch.endpoint.as_deref()).await?;
    let input = NewWebhook {
        name: patch.name.flatten(),
        endpoint: patch.endpoint.unwrap_or_default(),
        events: patch.events.unwrap_or_default(),
        secret: patch.secret.flatten(),
        authorization_header: patch.authorization_header.flatten(),
    };
    let Some(w) = state
        .db
        .create_webhook(&team.id, &input, MAX_WEBHOOKS_PER_TEAM)
        .await?
    else {
        return Err(ApiError::Conflict(format!(
            "a team can have at most {MAX_WEBHOOKS_PER_TEAM} webhooks"
        )));
    };
    tracing::info!(webhook = %w.id, endpoint = %w.endpoint, "webhook created");
    Ok(Json(w.into()))
}

/// Get a webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook}", tag = "webhooks",
    params(("webhook" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<ApiState>,
    team: Team,
    Path(webhook): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(find(&state, &team, &webhook).await?.into()))
}

/// Update a webhook; only the fields given change (`null` clears `name`,
/// `secret`, `authorization_header`).
#[utoipa::path(patch, path = "/api/v1/webhooks/{webhook}", tag = "webhooks", request_body = WebhookBody,
    params(("webhook" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_webhook(
    State(state): State<ApiState>,
    team: Team,
    Path(webhook): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<WebhookView>> {
    find(&state, &team, &webhook).await?;
    let patch = webhook_patch(&body, false)?;
    check_address(&state, patch.endpoint.as_deref()).await?;
    let w = state
        .db
        .update_webhook(&team.id, &webhook, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(w.into()))
}

/// Delete a webhook and its delivery history (pending deliveries are dropped).
#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook}", tag = "webhooks",
    params(("webhook" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<ApiState>,
    team: Team,
    Path(webhook): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.db.delete_webhook(&team.id, &webhook).await? {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The events a webhook can subscribe to (dotted names; the snake_case
/// spelling, e.g. `participant_joined`, is accepted too).
#[utoipa::path(get, path = "/api/v1/events", tag = "webhooks",
    responses((status = 200, body = Vec<String>)))]
pub async fn list_events(_team: Team) -> Json<Vec<&'static str>> {
    Json(Event::ALL.iter().map(|e| e.name()).collect())
}

/// A webhook's deliveries, newest first (paginated; `status` filters:
/// pending, succeeded, failed).
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook}/deliveries", tag = "webhooks",
    params(("webhook" = String, Path, description = "Webhook id"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query), ("order" = Option<String>, Query),
           ("after" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, body = List<Delivery>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<ApiState>,
    team: Team,
    Path(webhook): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<Delivery>>> {
    let w = find(&state, &team, &webhook).await?;
    let (page, after) = query.page()?;
    let status = match query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("pending" | "succeeded" | "failed")) => Some(s),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be pending, succeeded or failed",
            ));
        }
    };
    if let Some(a) = &after
        && state.db.delivery(&w.id, a).await?.is_none()
    {
        return Err(ApiError::field(
            "after",
            format!("no delivery '{a}' to page after"),
        ));
    }
    let (total, data) = state
        .db
        .list_deliveries(&w.id, &page, after.as_deref(), status)
        .await?;
    Ok(Json(List {
        total_count: total,
        data,
    }))
}

/// One delivery of a webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook}/deliveries/{delivery}", tag = "webhooks",
    params(("webhook" = String, Path, description = "Webhook id"),
           ("delivery" = String, Path, description = "Delivery id")),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)))]
pub async fn get_delivery(
    State(state): State<ApiState>,
    team: Team,
    Path((webhook, delivery)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    let w = find(&state, &team, &webhook).await?;
    Ok(Json(
        state
            .db
            .delivery(&w.id, &delivery)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?,
    ))
}

/// Send a delivery's body again, as a new delivery queued behind the
/// webhook's pending ones (refused while the original is still pending).
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("webhook" = String, Path, description = "Webhook id"),
           ("delivery" = String, Path, description = "Delivery id")),
    responses((status = 202, body = Delivery), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<ApiState>,
    team: Team,
    Path((webhook, delivery)): Path<(String, String)>,
) -> ApiResult<Response> {
    let w = find(&state, &team, &webhook).await?;
    let original = state
        .db
        .delivery(&w.id, &delivery)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    if original.status == "pending" {
        return Err(ApiError::Conflict(
            "the delivery is still pending; it will be retried on its own".into(),
        ));
    }
    let new = state
        .db
        .redeliver(&team.id, &w.id, &delivery)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok((StatusCode::ACCEPTED, Json(new)).into_response())
}
