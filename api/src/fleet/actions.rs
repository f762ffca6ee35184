//! `POST /devices/{id}/actions` (admin): a remote action carried out by the
//! appliance over its connection, answered with the device's result; and
//! `POST /devices/{id}/credential/rotate`, which uses the same channel.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{FleetError, FleetResult};
use super::extract::FleetJson;
use super::hub::Link;
use super::{FleetState, wire};

/// The device's error codes the API passes on, with their status.
fn device_error(code: &str, message: String) -> FleetError {
    let (status, code) = match code {
        "MEETING_ACTIVE" => return FleetError::MeetingActive(message),
        "VALIDATION_ERROR" | "UNSUPPORTED_PLATFORM" => {
            (StatusCode::BAD_REQUEST, "VALIDATION_ERROR")
        }
        "NO_ACTIVE_MEETING" => (StatusCode::CONFLICT, "NO_ACTIVE_MEETING"),
        "NOT_CONFIGURED" => (StatusCode::CONFLICT, "NOT_CONFIGURED"),
        "NO_FRAME" => (StatusCode::SERVICE_UNAVAILABLE, "NO_FRAME"),
        "JOIN_FAILED" => (StatusCode::BAD_GATEWAY, "JOIN_FAILED"),
        _ => (StatusCode::BAD_GATEWAY, "ACTION_FAILED"),
    };
    FleetError::Action {
        status,
        code,
        message: format!("the device answered: {message}"),
    }
}

fn offline(id: &str) -> FleetError {
    FleetError::DeviceOffline(format!("device '{id}' is not connected"))
}

/// Sends an action over the device's connection and waits (bounded) for
/// its result; the device's refusal as its error.
pub(super) async fn call(
    state: &FleetState,
    id: &str,
    link: &Link,
    action: &str,
    params: Value,
) -> FleetResult<Value> {
    let action_id = uuid::Uuid::new_v4().simple().to_string();
    let reply = link
        .expect_reply(&action_id)
        .ok_or_else(|| FleetError::Action {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "DEVICE_BUSY",
            message: format!("device '{id}' has too many actions in progress; retry later"),
        })?;
    let message = json!({"type": "action", "id": action_id, "action": action, "params": params});
    let timeout = Duration::from_secs(state.config.action_timeout_secs.max(1));
    let sent = tokio::time::timeout(timeout, link.outbound.send(message.to_string())).await;
    if !matches!(sent, Ok(Ok(()))) {
        link.forget(&action_id);
        return Err(offline(id));
    }
    tracing::info!(device = %id, action, "fleet action sent");
    let answer = match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(answer)) => answer,
        // The connection ended before the device answered.
        Ok(Err(_)) => return Err(offline(id)),
        Err(_) => {
            link.forget(&action_id);
            return Err(FleetError::Action {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "DEVICE_TIMEOUT",
                message: format!(
                    "device '{id}' did not answer the {action} action within {} s",
                    timeout.as_secs()
                ),
            });
        }
    };
    answer.map_err(|(code, message)| device_error(&code, message))
}

/// `POST /devices/{id}/credential/rotate` (admin): a new device credential,
/// handed to the device over its connection. The device stores it before
/// answering; only then does the old one stop working. If the answer is
/// lost (timeout, the connection drops) the new credential stays pending
/// beside the old one, and the rotation completes when the device next
/// connects with it. The credential itself is never in the response.
pub async fn rotate_credential(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<Value>> {
    if state.db.fleet_device(&id).await?.is_none() {
        return Err(FleetError::not_found("Device", &id));
    }
    let link = state.hub.link(&id).await.ok_or_else(|| offline(&id))?;
    let credential = super::random_secret("cvd");
    let hash = crate::store::teams::key_hash(&credential);
    if !state.db.set_fleet_pending_credential(&id, &hash).await? {
        return Err(FleetError::not_found("Device", &id));
    }
    let params = json!({"device_credential": credential});
    match call(&state, &id, &link, "rotate_credential", params).await {
        Ok(_) => {
            let rotated_at = state.db.promote_fleet_credential(&id, &hash).await?;
            tracing::info!(device = %id, "fleet device credential rotated");
            Ok(Json(json!({
                "device_id": id,
                "status": "rotated",
                // None: it completed meanwhile (the device reconnected with it).
                "rotated_at": rotated_at,
            })))
        }
        Err(
            e @ FleetError::Action {
                code: "DEVICE_TIMEOUT",
                ..
            },
        )
        | Err(e @ FleetError::DeviceOffline(_)) => {
            // The device may have stored it: keep it pending.
            tracing::warn!(device = %id, error = %e, "fleet credential rotation unconfirmed; pending until the device reconnects");
            Err(e)
        }
        Err(e) => {
            state.db.drop_fleet_pending_credential(&id, &hash).await?;
            Err(e)
        }
    }
}

/// `POST /devices/{id}/actions` `{"action": "...", "params": {...}}`.
pub async fn run(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<Value>> {
    let req = wire::action_request(&body)?;
    if state.db.fleet_device(&id).await?.is_none() {
        return Err(FleetError::not_found("Device", &id));
    }
    let link = state.hub.link(&id).await.ok_or_else(|| offline(&id))?;
    if req.action == "join_meeting" && link.in_meeting() {
        return Err(FleetError::MeetingActive(format!(
            "device '{id}' is already in a meeting; leave it first"
        )));
    }
    let result = call(&state, &id, &link, req.action, Value::Object(req.params)).await?;
    let change = match req.action {
        "join_meeting" => {
            let platform = result
                .get("platform")
                .and_then(Value::as_str)
                .unwrap_or("convene")
                .chars()
                .take(32)
                .collect();
            state.hub.set_meeting(&link, Some(platform))
        }
        "leave_meeting" => state.hub.set_meeting(&link, None),
        _ => None,
    };
    state
        .hub
        .record_meeting(&state.db, &link.device_id, change)
        .await;
    Ok(Json(json!({
        "action": req.action,
        "device_id": id,
        "status": "completed",
        "result": result,
    })))
}
