//! `GET /admin/api/live`: the console's WebSocket. On connect the server's
//! five-minute history, then once a second the live rooms, their
//! participants with their tracks and media figures (from the workers'
//! `PeerStatsBoard`), and the newest server sample. One message is in
//! flight at a time: a console that does not take it within
//! [`SEND_TIMEOUT`] is dropped, nothing queues up behind it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use convene_api::ApiError;
use convene_api::auth::Team;
use serde_json::{Value, json};

use super::{AdminState, presented_session, same_origin};
use crate::rtc::worker::stats::PeerFigures;

/// How often the console is updated.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one message may take to go out before the console is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest message a console may send (it sends none that matter).
const MAX_INCOMING: usize = 4096;
/// Live consoles open at once (each costs a database read a second).
pub const MAX_CONSOLES: usize = 16;

/// Counts an open console; released when the socket task ends.
struct ConsoleSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl ConsoleSlot {
    fn take(n: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Option<ConsoleSlot> {
        use std::sync::atomic::Ordering::SeqCst;
        n.fetch_update(SeqCst, SeqCst, |v| (v < MAX_CONSOLES).then_some(v + 1))
            .ok()
            .map(|_| ConsoleSlot(n.clone()))
    }
}

impl Drop for ConsoleSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Upgrades a signed-in console (the session middleware ran) whose
/// `Origin` is this server.
pub async fn handler(
    Extension(state): Extension<AdminState>,
    team: Team,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if same_origin(&headers) != Some(true) {
        return ApiError::Forbidden(
            "the live console only opens from this server's own page".into(),
        )
        .into_response();
    }
    let Some(session) = presented_session(&headers) else {
        return ApiError::Unauthorized("sign in to the admin console first".into()).into_response();
    };
    let Some(slot) = ConsoleSlot::take(&state.consoles) else {
        return ApiError::RateLimited {
            retry_after_secs: 5,
        }
        .into_response();
    };
    ws.max_message_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            run(state, team, session, socket).await
        })
}

async fn send(socket: &mut WebSocket, v: &Value) -> bool {
    let text = v.to_string();
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn run(state: AdminState, team: Team, session: String, mut socket: WebSocket) {
    let history = json!({"type": "history", "samples": state.history.all()});
    if !send(&mut socket, &history).await {
        return;
    }
    let mut tick = tokio::time::interval(UPDATE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A signed-out or expired session ends the stream.
                if state.sessions.check(&session, Instant::now()).is_none() {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                let msg = snapshot(&state, &team).await;
                if !send(&mut socket, &msg).await {
                    tracing::info!("admin console too slow or gone; dropped");
                    return;
                }
            }
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn figures_json(f: Option<&PeerFigures>) -> Value {
    match f {
        Some(f) => json!({
            "send_bps": f.send_bps,
            "recv_bps": f.recv_bps,
            "loss_in": f.loss_in,
            "loss_out": f.loss_out,
            "rtt_ms": f.rtt_ms,
            "jitter_ms": f.jitter_ms,
            "tracks": f.tracks,
            "receiving": f.receiving,
        }),
        None => json!({
            "send_bps": 0, "recv_bps": 0, "loss_in": null, "loss_out": null,
            "rtt_ms": null, "jitter_ms": null, "tracks": [], "receiving": [],
        }),
    }
}

/// One update: the team's live rooms with participants and figures, and
/// the newest server sample.
async fn snapshot(state: &AdminState, team: &Team) -> Value {
    let boards = state.sig.media.peer_stats.all();
    let figures: HashMap<&str, &PeerFigures> = boards
        .iter()
        .flat_map(|b| b.iter())
        .map(|f| (f.participant_id.as_str(), f))
        .collect();
    let rooms = match convene_api::routes::live::live_rooms_participants(
        State(state.api.clone()),
        team.clone(),
    )
    .await
    {
        Ok(list) => list.0.data,
        Err(e) => {
            tracing::warn!(error = %e, "admin console: live rooms unavailable");
            Vec::new()
        }
    };
    let rooms: Vec<Value> = rooms
        .into_iter()
        .map(|r| {
            let participants: Vec<Value> = r
                .live_participants
                .into_iter()
                .map(|p| {
                    let mut v = figures_json(figures.get(p.id.as_str()).copied());
                    if let Value::Object(m) = &mut v {
                        m.insert("id".into(), json!(p.id));
                        m.insert("name".into(), json!(p.name));
                        m.insert("role".into(), json!(p.role));
                        m.insert("join_time".into(), json!(p.join_time));
                    }
                    v
                })
                .collect();
            json!({
                "id": r.id,
                "friendly_url": r.friendly_url,
                "session_id": r.session_id,
                "session_duration": r.session_duration,
                "participants": participants,
            })
        })
        .collect();
    json!({"type": "tick", "server": state.history.latest(), "rooms": rooms})
}
