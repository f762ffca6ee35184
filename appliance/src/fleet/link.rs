//! The one outbound WebSocket to the fleet server: connect with the device
//! credential, heartbeat every `heartbeat_secs`, carry out actions and send
//! their results; on any failure reconnect after a capped exponential
//! backoff with jitter.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::FleetSettings;
use super::credentials::{self, Credentials, EnrollError};
use crate::http::AppState;

/// Largest message accepted from the server.
const MAX_SERVER_MESSAGE: usize = 1024 * 1024;
/// Action results queued for the socket.
const RESULTS_QUEUE: usize = 16;
/// Actions carried out at once; further ones wait.
const CONCURRENT_ACTIONS: usize = 4;
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The wait before reconnection attempt `attempt` (0-based): 1 s doubling
/// up to `max`, then a random 50..100 % of it (jitter, so a fleet that lost
/// its server does not come back all at once).
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    use rand::Rng as _;
    let base = Duration::from_secs(1)
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(max);
    let factor = rand::rng().random_range(0.5..=1.0);
    base.mul_f64(factor)
}

/// Runs the fleet side of the appliance until the process ends.
pub async fn run(state: Arc<AppState>, settings: FleetSettings) {
    let client = state.outbound.http.clone();
    let max = Duration::from_secs(settings.max_backoff_secs);
    let mut attempt = 0u32;
    let creds = loop {
        let name = state.config().device.name;
        match credentials::obtain(&settings, &name, &client).await {
            Ok(c) => break c,
            Err(EnrollError::Fatal(e)) => {
                tracing::error!(error = %e, "fleet: not connecting to the fleet server");
                return;
            }
            Err(EnrollError::Retry(e)) => {
                let wait = backoff(attempt, max);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "fleet: enrollment failed");
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(wait).await;
            }
        }
    };
    if creds.server != settings.base() {
        tracing::warn!(
            enrolled_with = %creds.server, configured = %settings.base(),
            "fleet: the credentials were issued by another fleet.server; connecting to the configured one"
        );
    }
    let actions = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ACTIONS));
    let mut attempt = 0u32;
    let mut creds = creds;
    loop {
        // The credential may have been rotated during the last session
        // (`actions::rotate_credential` writes the file first).
        match credentials::load(&settings.credentials_file) {
            Ok(Some(c)) if c.device_id == creds.device_id => creds = c,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "fleet: keeping the credential in memory"),
        }
        let started = tokio::time::Instant::now();
        match session(&state, &settings, &creds, &actions).await {
            Ok(()) => tracing::info!("fleet: connection closed"),
            Err(e) => tracing::warn!(error = %e, "fleet: connection failed"),
        }
        if started.elapsed() >= STABLE_AFTER {
            attempt = 0;
        }
        let wait = backoff(attempt, max);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(wait).await;
    }
}

/// The `ws(s)://` URL of the device connection.
fn connect_url(base: &str) -> Result<String, String> {
    let rest = if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else {
        return Err(format!("fleet.server `{base}` is not an http(s) URL"));
    };
    Ok(format!("{rest}/devices/connect"))
}

/// The heartbeat message: the seed's health figures, version, meeting.
async fn heartbeat(state: &AppState) -> String {
    let cfg = state.config();
    let f = crate::system::figures(&state.cpu, &cfg.media_dir);
    let meeting = state.meetings.summary().await;
    json!({
        "type": "heartbeat",
        "version": env!("CARGO_PKG_VERSION"),
        "health": {
            "cpu_percent": f.cpu_percent, "memory_percent": f.memory_percent,
            "temperature": f.temperature, "disk_percent": f.disk_percent,
            "uptime": f.uptime,
        },
        "meeting": {"active": meeting["active"], "platform": meeting["platform"]},
    })
    .to_string()
}

/// One connection, until it ends.
async fn session(
    state: &Arc<AppState>,
    settings: &FleetSettings,
    creds: &Credentials,
    actions: &Arc<tokio::sync::Semaphore>,
) -> Result<(), String> {
    let url = connect_url(&settings.base())?;
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", creds.device_credential))
        .map_err(|_| "the stored credential is not a valid header value".to_string())?;
    let id = HeaderValue::from_str(&creds.device_id)
        .map_err(|_| "the stored device id is not a valid header value".to_string())?;
    req.headers_mut().insert("authorization", bearer);
    req.headers_mut().insert("x-device-id", id);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_SERVER_MESSAGE))
        .max_frame_size(Some(MAX_SERVER_MESSAGE));
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            false,
            Some(state.outbound.connector()),
        ),
    )
    .await
    .map_err(|_| format!("connecting to {url} timed out"))?
    .map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) if r.status().as_u16() == 401 => format!(
            "the server refused the device credential (401): was the device deleted? \
             Remove {} and enroll again with a new token",
            settings.credentials_file.display()
        ),
        other => format!("connecting to {url}: {}", crate::tls::describe(&other)),
    })?;
    tracing::info!(device = %creds.device_id, "fleet: connected");
    let (mut sink, mut stream) = ws.split();
    let (results_tx, mut results) = mpsc::channel::<String>(RESULTS_QUEUE);
    let mut beat = tokio::time::interval(Duration::from_secs(settings.heartbeat_secs));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                sink.send(Message::text(heartbeat(state).await)).await.map_err(|e| e.to_string())?;
            }
            r = results.recv() => {
                // The sender lives in this function: never None.
                let Some(text) = r else { return Ok(()) };
                sink.send(Message::text(text)).await.map_err(|e| e.to_string())?;
                // Report the meeting state a join or leave just changed.
                sink.send(Message::text(heartbeat(state).await)).await.map_err(|e| e.to_string())?;
            }
            msg = stream.next() => {
                let text = match msg {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        return Err(format!("the server closed the connection: {why}"));
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                };
                dispatch(state, settings, text.as_str(), &results_tx, actions);
            }
        }
    }
}

/// Starts the action a server message asks for; its result goes to `results`.
fn dispatch(
    state: &Arc<AppState>,
    settings: &FleetSettings,
    text: &str,
    results: &mpsc::Sender<String>,
    actions: &Arc<tokio::sync::Semaphore>,
) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            tracing::warn!("fleet: the server sent a message that is not JSON");
            return;
        }
    };
    match v["type"].as_str() {
        Some("action") => {}
        Some("policy") => {
            let revision: String = v["revision"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            let report = match super::policy::apply(state, &v["config"]) {
                Ok(()) => {
                    tracing::info!(revision = %revision, "fleet: policies applied");
                    json!({"type": "policy_status", "revision": revision, "status": "applied"})
                }
                Err(reason) => {
                    tracing::warn!(revision = %revision, reason = %reason, "fleet: policies refused");
                    json!({"type": "policy_status", "revision": revision, "status": "failed", "reason": reason})
                }
            };
            if results.try_send(report.to_string()).is_err() {
                tracing::warn!("fleet: result queue full; the policy report is dropped");
            }
            return;
        }
        Some("error") => {
            tracing::warn!(message = %v["message"].as_str().unwrap_or(""), "fleet: the server reported an error");
            return;
        }
        _ => {
            tracing::warn!("fleet: unknown message from the server");
            return;
        }
    }
    let Some(id) = v["id"]
        .as_str()
        .filter(|s| s.len() <= 64)
        .map(str::to_string)
    else {
        tracing::warn!("fleet: an action without an id");
        return;
    };
    let action = v["action"].as_str().unwrap_or("").to_string();
    let params = v["params"].clone();
    let (state, settings, results, actions) = (
        state.clone(),
        settings.clone(),
        results.clone(),
        actions.clone(),
    );
    tokio::spawn(async move {
        let _permit = actions.acquire_owned().await;
        tracing::info!(action = %action, "fleet: carrying out an action");
        let out = match super::actions::run(&state, &settings, &action, &params).await {
            Ok(result) => json!({"type": "result", "id": id, "ok": true, "result": result}),
            Err(e) => {
                tracing::warn!(action = %action, code = e.code, error = %e.message, "fleet: action failed");
                json!({"type": "result", "id": id, "ok": false,
                       "error": {"code": e.code, "message": e.message}})
            }
        };
        // The connection may be gone; the server then answers DEVICE_OFFLINE.
        let _ = results.send(out.to_string()).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let max = Duration::from_secs(60);
        for attempt in 0..40 {
            let d = backoff(attempt, max);
            let base = Duration::from_secs(1u64 << attempt.min(6)).min(max);
            assert!(d <= base && d >= base / 2, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            connect_url("http://h:8080/fleet/api/v1").ok().as_deref(),
            Some("ws://h:8080/fleet/api/v1/devices/connect")
        );
        assert_eq!(
            connect_url("https://h/api/v1").ok().as_deref(),
            Some("wss://h/api/v1/devices/connect")
        );
        assert!(connect_url("ftp://h").is_err());
    }
}
