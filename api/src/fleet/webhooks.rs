//! Fleet webhooks (`/webhooks`): the seed's list and create, plus get,
//! delete and a delivery history. Deliveries are signed and retried by the
//! room API's delivery worker (`webhooks::delivery`, `Outbox::Fleet`); the
//! events are [`FleetWebhookEvent`]s, written in the transaction of their
//! cause. The secret is write-only: responses say whether one is set.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::FleetState;
use super::domain::no_unknown;
use super::error::{FleetError, FleetResult};
use super::extract::{FleetJson, FleetQuery};
use super::webhook_events::FleetWebhookEvent;
use crate::domain::fields::{check, push};
use crate::domain::{FieldErrors, Invalid};
use crate::store::fleet::{CreateFleetWebhookError, FleetDelivery, FleetWebhookRecord};
use crate::webhooks::guard;

const MAX_SECRET: usize = 256;
/// Deliveries listed at most (the newest).
const MAX_DELIVERIES: i64 = 100;

#[derive(Debug, Serialize)]
pub struct FleetWebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Whether deliveries are signed (`X-Signature`, `X-Webhook-Signature`).
    pub has_secret: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<FleetWebhookRecord> for FleetWebhookView {
    fn from(w: FleetWebhookRecord) -> Self {
        FleetWebhookView {
            has_secret: w.secret.is_some(),
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FleetWebhookList {
    pub webhooks: Vec<FleetWebhookView>,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The exact body sent.
    pub payload: Value,
    pub created_at: String,
}

impl From<FleetDelivery> for DeliveryView {
    fn from(d: FleetDelivery) -> Self {
        DeliveryView {
            id: d.id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            payload: d.payload,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    pub total: usize,
}

/// A validated create body.
#[derive(Debug, PartialEq)]
pub struct NewFleetWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
}

/// `POST /webhooks`: `url` (http(s)), `events` (names from
/// [`FleetWebhookEvent`], at least one, no repeats kept), `secret` (optional).
pub fn new_webhook(body: &Map<String, Value>) -> Result<NewFleetWebhook, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["url", "events", "secret"], &mut errors);
    let url = match body.get("url") {
        None | Some(Value::Null) => {
            push(&mut errors, "url", "is required");
            None
        }
        Some(Value::String(s)) => match guard::parse_endpoint(s.trim()) {
            Ok(u) => Some(u.to_string()),
            Err(m) => {
                push(&mut errors, "url", m);
                None
            }
        },
        Some(_) => {
            push(&mut errors, "url", "must be a string (an http(s) URL)");
            None
        }
    };
    let events = match body.get("events") {
        None | Some(Value::Null) => {
            push(&mut errors, "events", "is required");
            None
        }
        Some(v) => match events(v) {
            Ok(e) => Some(e),
            Err(m) => {
                push(&mut errors, "events", m);
                None
            }
        },
    };
    let secret = match body.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() || s.chars().count() > MAX_SECRET => {
            push(
                &mut errors,
                "secret",
                format!("must be 1 to {MAX_SECRET} characters"),
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            push(&mut errors, "secret", "must be a string");
            None
        }
    };
    check(errors)?;
    match (url, events) {
        (Some(url), Some(events)) => Ok(NewFleetWebhook {
            url,
            events,
            secret,
        }),
        _ => Err(Invalid::field("url", "is required")),
    }
}

fn events(v: &Value) -> Result<Vec<String>, String> {
    let known = || {
        FleetWebhookEvent::ALL
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items = v
        .as_array()
        .ok_or_else(|| format!("must be an array of event names ({})", known()))?;
    if items.is_empty() {
        return Err("must name at least one event".into());
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| format!("must be an array of event names ({})", known()))?;
        match FleetWebhookEvent::parse(name) {
            Some(e) if !out.iter().any(|o| o == e.name()) => out.push(e.name().to_string()),
            Some(_) => {}
            None => {
                let shown: String = name.chars().take(64).collect();
                return Err(format!("unknown event '{shown}' (expected: {})", known()));
            }
        }
    }
    Ok(out)
}

/// `GET /webhooks`
pub async fn list(State(state): State<FleetState>) -> FleetResult<Json<FleetWebhookList>> {
    let webhooks: Vec<FleetWebhookView> = state
        .db
        .fleet_webhooks()
        .await?
        .into_iter()
        .map(FleetWebhookView::from)
        .collect();
    Ok(Json(FleetWebhookList {
        total: webhooks.len(),
        webhooks,
    }))
}

/// `POST /webhooks`: 201 with the webhook. The URL must resolve to public
/// addresses unless the server allows private ones for webhooks.
pub async fn create(
    State(state): State<FleetState>,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let new = new_webhook(&body)?;
    if !state.config.webhooks_allow_private {
        let url = guard::parse_endpoint(&new.url)
            .map_err(|m| FleetError::Validation(Invalid::field("url", m)))?;
        guard::check_endpoint(&url)
            .await
            .map_err(|m| FleetError::Validation(Invalid::field("url", m)))?;
    }
    let hook = state
        .db
        .create_fleet_webhook(&new.url, &new.events, new.secret.as_deref())
        .await
        .map_err(|e| match e {
            CreateFleetWebhookError::TooMany => FleetError::Conflict(e.to_string()),
            CreateFleetWebhookError::Store(e) => e.into(),
        })?;
    tracing::info!(webhook = %hook.id, events = ?hook.events, "fleet webhook created");
    Ok((StatusCode::CREATED, Json(FleetWebhookView::from(hook))).into_response())
}

async fn find(state: &FleetState, id: &str) -> FleetResult<FleetWebhookRecord> {
    state
        .db
        .fleet_webhook(id)
        .await?
        .ok_or_else(|| FleetError::not_found("Webhook", id))
}

/// `GET /webhooks/{id}`
pub async fn get_one(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<FleetWebhookView>> {
    Ok(Json(find(&state, &id).await?.into()))
}

/// `DELETE /webhooks/{id}`: 204; its pending deliveries go with it.
pub async fn remove(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    if state.db.delete_fleet_webhook(&id).await? {
        tracing::info!(webhook = %id, "fleet webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(FleetError::not_found("Webhook", &id))
    }
}

/// `GET /webhooks/{id}/deliveries?limit=`: the newest deliveries first
/// (`limit` 1..=100, default 100).
pub async fn deliveries(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    query: FleetQuery,
) -> FleetResult<Json<DeliveryList>> {
    let limit = match query.get("limit") {
        None => MAX_DELIVERIES,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_DELIVERIES).contains(&n) => n,
            _ => {
                return Err(FleetError::Validation(Invalid::field(
                    "limit",
                    format!("must be an integer from 1 to {MAX_DELIVERIES}"),
                )));
            }
        },
    };
    find(&state, &id).await?;
    let deliveries: Vec<DeliveryView> = state
        .db
        .fleet_webhook_deliveries(&id, limit)
        .await?
        .into_iter()
        .map(DeliveryView::from)
        .collect();
    Ok(Json(DeliveryList {
        total: deliveries.len(),
        deliveries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_seeds_example_is_valid() {
        let w = new_webhook(&body(json!({
            "url": "https://company.com/croom-events",
            "events": ["device.online", "device.offline", "alert.triggered"],
            "secret": "webhook-secret"
        })))
        .unwrap();
        assert_eq!(w.url, "https://company.com/croom-events");
        assert_eq!(
            w.events,
            ["device.online", "device.offline", "alert.triggered"]
        );
        assert_eq!(w.secret.as_deref(), Some("webhook-secret"));
    }

    #[test]
    fn repeats_collapse_and_bad_fields_are_named() {
        let w = new_webhook(&body(json!({
            "url": "http://example.com/x", "events": ["alert.cleared", "alert.cleared"]
        })))
        .unwrap();
        assert_eq!(w.events, ["alert.cleared"]);
        assert_eq!(w.secret, None);
        let bad = |v: Value| new_webhook(&body(v)).unwrap_err().0;
        let e = bad(json!({}));
        assert!(e.contains_key("url") && e.contains_key("events"), "{e:?}");
        let e = bad(json!({"url": "ftp://x", "events": ["device.online"]}));
        assert!(e.contains_key("url"), "{e:?}");
        let e = bad(json!({"url": "http://x.com", "events": []}));
        assert!(e.contains_key("events"), "{e:?}");
        let e = bad(json!({"url": "http://x.com", "events": ["device.status"]}));
        assert!(e["events"][0].contains("unknown event"), "{e:?}");
        let e = bad(json!({"url": "http://x.com", "events": "device.online"}));
        assert!(e.contains_key("events"), "{e:?}");
        let e = bad(json!({"url": "http://x.com", "events": ["device.online"], "secret": ""}));
        assert!(e.contains_key("secret"), "{e:?}");
        let e = bad(json!({"url": "http://x.com", "events": ["device.online"], "extra": 1}));
        assert!(e.contains_key("extra"), "{e:?}");
    }
}
