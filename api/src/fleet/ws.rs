//! `GET /ws`: the seed's fleet WebSocket API. The client sends
//! `{"type": "auth", "token": "<access token>"}` first (within 10 s), then
//! `{"type": "subscribe", "events": [...]}` (any number of times; each
//! replaces the set), and receives the events it subscribed to:
//! `device.status`, `meeting.started`, `meeting.ended`.
//!
//! Answers: `{"type": "authenticated"}`, `{"type": "subscribed", "events"}`,
//! `{"type": "error", "code", "message"}` (an auth error closes). A
//! subscriber that falls more than the event buffer behind is closed with a
//! reason instead of being buffered without bound; the socket closes when
//! the access token expires.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::FleetState;
use super::auth::{not_blocked, unix_now, user_of_token};
use super::error::FleetError;
use super::extract::ClientIp;
use super::hub::EVENT_TYPES;

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// Time allowed for the `auth` message.
const AUTH_WITHIN: Duration = Duration::from_secs(10);

/// `GET /ws` (WebSocket upgrade; authentication is the first message).
pub async fn upgrade(
    State(state): State<FleetState>,
    ClientIp(ip): ClientIp,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = not_blocked(&state, ip, unix_now()) {
        return e.into_response();
    }
    match ws {
        Ok(ws) => ws
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .on_upgrade(move |socket| run(state, ip, socket)),
        Err(e) => FleetError::BadBody(format!(
            "this endpoint is a WebSocket (send the upgrade headers): {e}"
        ))
        .into_response(),
    }
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let reason: String = reason.chars().take(100).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

/// Reads the next text message as a JSON object; `Err` closes the socket.
async fn next_object(
    socket: &mut WebSocket,
) -> Result<serde_json::Map<String, Value>, (u16, String)> {
    loop {
        match socket.recv().await {
            None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {
                return Err((close_code::NORMAL, String::new()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                return Err((close_code::UNSUPPORTED, "send JSON text messages".into()));
            }
            Some(Ok(Message::Text(t))) => {
                return match serde_json::from_str(t.as_str()) {
                    Ok(Value::Object(m)) => Ok(m),
                    _ => Err((close_code::POLICY, "a message must be a JSON object".into())),
                };
            }
        }
    }
}

async fn run(state: FleetState, ip: Option<std::net::IpAddr>, mut socket: WebSocket) {
    // 1. auth
    let first = match tokio::time::timeout(AUTH_WITHIN, next_object(&mut socket)).await {
        Ok(Ok(m)) => m,
        Ok(Err((code, reason))) => return close(socket, code, &reason).await,
        Err(_) => {
            let _ = send(
                &mut socket,
                error("UNAUTHORIZED", "no auth message within 10 s"),
            )
            .await;
            return close(socket, close_code::POLICY, "authentication timed out").await;
        }
    };
    let token = match (
        first.get("type").and_then(Value::as_str),
        first.get("token"),
    ) {
        (Some("auth"), Some(Value::String(t))) if t.len() <= 4096 => t.clone(),
        _ => {
            let m = "the first message must be {\"type\": \"auth\", \"token\": \"<access token>\"}";
            let _ = send(&mut socket, error("UNAUTHORIZED", m)).await;
            return close(socket, close_code::POLICY, "authentication required").await;
        }
    };
    let (user, exp) = match user_of_token(&state, &token).await {
        Ok(u) => u,
        Err(e) => {
            if let (Some(ip), FleetError::Unauthorized(_)) = (ip, &e) {
                state.ip_limits.failed(ip, unix_now());
            }
            let _ = send(&mut socket, error(e.code(), &e.to_string())).await;
            return close(socket, close_code::POLICY, "authentication failed").await;
        }
    };
    if !send(
        &mut socket,
        json!({"type": "authenticated", "role": user.role.as_str()}),
    )
    .await
    {
        return;
    }
    // Subscribe to the hub before anything else can be missed.
    let mut events = state.hub.subscribe();
    let mut wanted: BTreeSet<&'static str> = BTreeSet::new();
    let left = u64::try_from(exp).unwrap_or(0).saturating_sub(unix_now());
    let expiry = tokio::time::sleep(Duration::from_secs(left));
    tokio::pin!(expiry);
    let end: (u16, String) = loop {
        tokio::select! {
            msg = next_object(&mut socket) => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => break e,
                };
                match subscription(&msg) {
                    Ok(set) => {
                        wanted = set;
                        let list: Vec<&str> = wanted.iter().copied().collect();
                        if !send(&mut socket, json!({"type": "subscribed", "events": list})).await {
                            break (close_code::NORMAL, String::new());
                        }
                    }
                    Err(m) => {
                        if !send(&mut socket, error("VALIDATION_ERROR", &m)).await {
                            break (close_code::NORMAL, String::new());
                        }
                    }
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if wanted.contains(ev.kind) {
                        let v = serde_json::to_value(&ev).unwrap_or(Value::Null);
                        if !send(&mut socket, v).await {
                            break (close_code::NORMAL, String::new());
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(user = %user.id, missed = n, "fleet WebSocket subscriber too slow; closing it");
                    break (close_code::POLICY, format!("too slow: {n} events missed; reconnect"));
                }
                Err(RecvError::Closed) => break (close_code::AWAY, "server shutting down".into()),
            },
            _ = &mut expiry => {
                let _ = send(&mut socket, error("UNAUTHORIZED", "the access token expired")).await;
                break (close_code::POLICY, "token expired".into());
            }
        }
    };
    close(socket, end.0, &end.1).await;
}

/// Validates a `subscribe` message: the set of known event types.
fn subscription(msg: &serde_json::Map<String, Value>) -> Result<BTreeSet<&'static str>, String> {
    if msg.get("type").and_then(Value::as_str) != Some("subscribe") {
        return Err("expected {\"type\": \"subscribe\", \"events\": [...]}".into());
    }
    let Some(list) = msg.get("events").and_then(Value::as_array) else {
        return Err("events must be a list of event types".into());
    };
    let mut out = BTreeSet::new();
    for e in list.iter().take(64) {
        let name = e.as_str().unwrap_or("");
        match EVENT_TYPES.iter().find(|t| **t == name) {
            Some(t) => {
                out.insert(*t);
            }
            None => {
                let name: String = name.chars().take(64).collect();
                return Err(format!(
                    "unknown event type '{name}' (known: {})",
                    EVENT_TYPES.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn subscriptions_name_known_events_only() {
        let set = subscription(&obj(
            json!({"type": "subscribe", "events": ["device.status", "alert.triggered", "device.status"]}),
        ))
        .unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["alert.triggered", "device.status"]
        );
        assert!(
            subscription(&obj(json!({"type": "subscribe", "events": []})))
                .unwrap()
                .is_empty()
        );
        for bad in [
            json!({"type": "subscribe", "events": ["device.exploded"]}),
            json!({"type": "subscribe", "events": "device.status"}),
            json!({"type": "subscribe"}),
            json!({"type": "auth", "token": "x"}),
        ] {
            assert!(subscription(&obj(bad.clone())).is_err(), "{bad}");
        }
    }
}
