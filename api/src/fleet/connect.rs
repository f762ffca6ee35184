//! `GET /devices/connect`: an enrolled appliance's one outbound WebSocket
//! (docs/fleet.md, "Appliance connection").
//!
//! The appliance authenticates the upgrade request with its device id
//! (`X-Device-Id`) and credential (`Authorization: Bearer cvd_...`), compared
//! in constant time against the stored SHA-256. Then, as JSON text frames:
//!
//! - device -> server: `{"type": "heartbeat", "health": {...}, "version",
//!   "meeting": {"active", "platform"}}` and `{"type": "result", "id", "ok",
//!   "result" | "error": {"code", "message"}}` answering an action;
//! - server -> device: `{"type": "action", "id", "action", "params"}`, and
//!   `{"type": "error", "message"}` before closing on a bad message.
//!
//! No heartbeat for `offline_after` seconds closes the socket; closing (or
//! a newer connection of the same device) makes the device `offline`.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::auth::{not_blocked, unix_now};
use super::error::{FleetError, FleetResult};
use super::extract::ClientIp;
use super::hub::Link;
use super::{FleetState, wire};
use crate::store::teams::key_hash;

/// Largest message a device may send (a screenshot, base64, fits).
pub const MAX_DEVICE_MESSAGE: usize = 8 * 1024 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The device id whose credential the request carries, or 401.
async fn device_of(state: &FleetState, headers: &HeaderMap) -> FleetResult<String> {
    let unauthorized = || {
        FleetError::Unauthorized(
            "device credentials required: `X-Device-Id: <device id>` and \
             `Authorization: Bearer <device credential>` (from POST /devices/enroll)"
                .into(),
        )
    };
    let id = header(headers, "x-device-id")
        .filter(|id| !id.is_empty() && id.len() <= 100)
        .ok_or_else(unauthorized)?;
    let credential = header(headers, "authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, c)| c.trim())
        .filter(|c| !c.is_empty())
        .ok_or_else(unauthorized)?;
    let presented = key_hash(credential);
    // An unknown device is compared against a decoy so both take as long;
    // both the current and a pending (rotation) credential are compared.
    let stored = state.db.fleet_device_credential_hashes(id).await?;
    let (current, pending) = match &stored {
        Some((c, p)) => (c.as_str(), p.as_deref().unwrap_or(DECOY_HASH)),
        None => (DECOY_HASH, DECOY_HASH),
    };
    let eq = |expected: &str| {
        presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    };
    let (is_current, is_pending) = (eq(current), eq(pending));
    match stored {
        Some(_) if is_current => Ok(id.to_string()),
        Some((_, Some(_))) if is_pending => {
            // The device stored the new credential (it connects with it)
            // but its acknowledgement was lost: the rotation ends here.
            if state
                .db
                .promote_fleet_credential(id, &presented)
                .await?
                .is_some()
            {
                tracing::info!(device = %id, "fleet device credential rotated (confirmed by the device connecting with it)");
            }
            Ok(id.to_string())
        }
        _ => Err(FleetError::Unauthorized(
            "the device id or credential is not valid (deleted device, or wrong credential)".into(),
        )),
    }
}

const DECOY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `GET /devices/connect` (WebSocket upgrade, device credentials).
pub async fn connect(
    State(state): State<FleetState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let now = unix_now();
    if let Err(e) = not_blocked(&state, ip, now) {
        return e.into_response();
    }
    let device_id = match device_of(&state, &headers).await {
        Ok(id) => id,
        Err(e) => {
            if let (Some(ip), FleetError::Unauthorized(_)) = (ip, &e) {
                state.ip_limits.failed(ip, now);
            }
            return e.into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return FleetError::BadBody(format!(
                "this endpoint is a WebSocket (send the upgrade headers): {e}"
            ))
            .into_response();
        }
    };
    ws.max_message_size(MAX_DEVICE_MESSAGE)
        .max_frame_size(MAX_DEVICE_MESSAGE)
        .on_upgrade(move |socket| run(state, device_id, socket))
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn run(state: FleetState, device_id: String, mut socket: WebSocket) {
    let (link, mut outbound) = match state.hub.connect(&state.db, &device_id).await {
        Ok(Some(l)) => l,
        Ok(None) => return close(socket, close_code::POLICY, "device deleted").await,
        Err(e) => {
            tracing::error!(device = %device_id, error = %e, "cannot register a device connection");
            return close(socket, close_code::ERROR, "internal error").await;
        }
    };
    super::alerts::clear(&state, &device_id, "offline").await;
    super::policy_push::push(&state, &link).await;
    let offline_after = Duration::from_secs(state.config.offline_after_secs.max(1));
    let mut deadline = tokio::time::Instant::now() + offline_after;
    let end: Option<(u16, String)> = loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    None | Some(Ok(Message::Close(_))) => break None,
                    Some(Err(e)) => {
                        tracing::debug!(device = %device_id, error = %e, "device socket failed");
                        break None;
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        break Some((close_code::UNSUPPORTED, "binary messages are not accepted; send JSON text".into()));
                    }
                };
                match handle(&state, &link, text.as_str()).await {
                    Ok(heartbeat) => {
                        if heartbeat {
                            deadline = tokio::time::Instant::now() + offline_after;
                        }
                    }
                    Err(message) => {
                        let _ = socket
                            .send(Message::Text(json!({"type": "error", "message": message}).to_string().into()))
                            .await;
                        break Some((close_code::POLICY, message));
                    }
                }
            }
            out = outbound.recv() => {
                let Some(text) = out else { break None };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break None;
                }
            }
            _ = link.replaced.notified() => {
                break Some((close_code::NORMAL, "replaced by a newer connection of this device".into()));
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(device = %device_id, "no heartbeat in time; closing the device connection");
                break Some((close_code::POLICY, format!("no heartbeat within {} s", offline_after.as_secs())));
            }
        }
    };
    if let Some((code, reason)) = end {
        // Close reasons are at most 123 bytes.
        let reason: String = reason.chars().take(100).collect();
        close(socket, code, &reason).await;
    }
    link.drop_pending();
    state.hub.disconnect(&state.db, &link).await;
}

/// Handles one message from the device; `Ok(true)` for a heartbeat,
/// `Err(why)` for a message that closes the connection.
async fn handle(state: &FleetState, link: &Link, text: &str) -> Result<bool, String> {
    let msg: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => return Err("a message must be a JSON object".into()),
    };
    match msg.get("type").and_then(Value::as_str) {
        Some("heartbeat") => {
            let beat = wire::heartbeat(&msg).map_err(|e| format!("bad heartbeat: {e}"))?;
            match state
                .db
                .fleet_heartbeat(&link.device_id, &beat.health, beat.version.as_deref())
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err("device deleted".into()),
                Err(e) => {
                    tracing::error!(device = %link.device_id, error = %e, "cannot record a heartbeat");
                }
            }
            let change = state.hub.set_meeting(link, beat.meeting);
            state
                .hub
                .record_meeting(&state.db, &link.device_id, change)
                .await;
            super::alerts::on_heartbeat(state, link, &beat.health).await;
            Ok(true)
        }
        Some("policy_status") => {
            let (revision, applied, reason) =
                wire::policy_status(&msg).map_err(|e| format!("bad policy_status: {e}"))?;
            if let Err(e) = state
                .db
                .set_fleet_policy_report(&link.device_id, &revision, applied, reason.as_deref())
                .await
            {
                tracing::error!(device = %link.device_id, error = %e, "cannot record a policy report");
            }
            Ok(false)
        }
        Some("result") => {
            let (id, reply) = wire::action_reply(&msg).map_err(|e| format!("bad result: {e}"))?;
            if !link.reply(&id, reply) {
                tracing::debug!(device = %link.device_id, action = %id, "late or unknown action result dropped");
            }
            Ok(false)
        }
        _ => Err("unknown message type (expected heartbeat, result or policy_status)".into()),
    }
}
