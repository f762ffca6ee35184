//! WebSocket signaling at `/rtc` (protocol in docs/signaling.md): join with a
//! token or a name, SDP exchange with the media worker, events, moderation,
//! keepalive, reconnect.
//!
//! Each connection is one task; each live room is one [`room::RoomActor`]
//! task. Neither touches media: SDP and track commands go to the room's media
//! worker over its bounded command channel.

mod admission;
pub mod collab;
mod gate;
pub mod http_media;
mod layout;
pub mod moderation;
pub mod outbox;
pub mod password;
pub mod recording;
pub mod restream;
pub mod room;
mod room_media;
pub mod whep;
pub mod whip;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use convene_api::Db;
use convene_api::limits::{IpLimits, PreJoin};
use convene_api::live::ModerationAction;
use convene_api::store::rooms::RoomRecord;
use tokio::sync::{mpsc, oneshot, watch};

use crate::rtc::{Command, MediaPlane, PublishedMid, RoomCounters};
use admission::{Admission, Refusal, admit};
use outbox::{Outbox, OutboxRx};
use room::{JoinOutcome, Joined, RoomActor, RoomMsg};
use wire::{ClientMsg, ServerMsg};

/// Ping a client after this long without a message from it.
pub const IDLE_PING: Duration = Duration::from_secs(20);
/// Drop a client after this long without a message from it.
pub const IDLE_DEAD: Duration = Duration::from_secs(45);
/// Messages per second a client may send.
const MESSAGE_RATE: u32 = 50;

/// Shared state of signaling.
pub struct Signaling {
    pub db: Db,
    pub media: Arc<MediaPlane>,
    pub recordings: Arc<crate::recording::Recordings>,
    /// ffmpeg and the SSRF opt-out of RTMP restreams.
    pub restream: crate::restream::RestreamConfig,
    rooms: Mutex<HashMap<String, mpsc::Sender<RoomMsg>>>,
    /// Media counters of each running room actor.
    counters: Mutex<HashMap<String, Arc<RoomCounters>>>,
    next_conn: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Per-address limits before a socket has joined (shared with the REST
    /// API's authentication).
    limits: Arc<IpLimits>,
    trust_proxy: bool,
    /// Live WHIP publishing and WHEP viewing sessions (`http_media/`).
    pub http_media: http_media::Sessions,
    /// TURN servers and credentials handed to each join (`None`: no TURN).
    pub ice_servers: Option<crate::turn::IceServers>,
    /// Wrong room passwords per room and address (`password.rs`).
    passwords: password::PasswordLimiter,
}

/// A recorder that stopped on its own tells its room; false when the room
/// is not live here.
impl crate::recording::LiveRecordings for Signaling {
    fn recording_ended(&self, room_id: &str, recording_id: &str, reason: &'static str) -> bool {
        self.live_room(room_id).is_some_and(|tx| {
            tx.try_send(RoomMsg::RecordingEnded {
                recording_id: recording_id.to_string(),
                reason,
            })
            .is_ok()
        })
    }
}

impl Signaling {
    pub fn new(
        db: Db,
        media: Arc<MediaPlane>,
        recordings: Arc<crate::recording::Recordings>,
        limits: Arc<IpLimits>,
        trust_proxy: bool,
        ice_servers: Option<crate::turn::IceServers>,
        restream: crate::restream::RestreamConfig,
    ) -> Arc<Signaling> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Signaling {
            db,
            media,
            recordings,
            restream,
            rooms: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            shutdown,
            limits,
            trust_proxy,
            http_media: http_media::Sessions::default(),
            ice_servers,
            passwords: password::PasswordLimiter::default(),
        })
    }

    /// The ICE servers (TURN with a fresh credential for this room and
    /// participant) a join receives.
    pub fn ice_servers_for(
        &self,
        room_id: &str,
        participant_id: &str,
    ) -> Vec<crate::turn::IceServer> {
        self.ice_servers.as_ref().map_or_else(Vec::new, |i| {
            i.for_join(
                room_id,
                participant_id,
                crate::turn::credentials::unix_now(),
            )
        })
    }

    /// The room actor of a room id if the room is live in this process.
    fn live_room(&self, room_id: &str) -> Option<mpsc::Sender<RoomMsg>> {
        self.rooms()
            .get(room_id)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Tells every connection the server is stopping.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<RoomMsg>>> {
        match self.rooms.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The room actor of a room, started when needed.
    fn room_sender(self: &Arc<Self>, room: &RoomRecord) -> mpsc::Sender<RoomMsg> {
        let mut rooms = self.rooms();
        if let Some(tx) = rooms.get(&room.id)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(256);
        let counters = Arc::new(RoomCounters::default());
        lock(&self.counters).insert(room.id.clone(), counters.clone());
        let actor = RoomActor::new(
            self.clone(),
            room.team_id.clone(),
            room.id.clone(),
            room.friendly_url.clone(),
            room.settings.clone(),
            counters,
            rx,
        );
        rooms.insert(room.id.clone(), tx.clone());
        tokio::spawn(actor.run());
        tx
    }

    /// Sends to a room actor, restarting it once if it just retired.
    async fn to_room(self: &Arc<Self>, room: &RoomRecord, msg: RoomMsg) -> bool {
        let tx = self.room_sender(room);
        match tx.send(msg).await {
            Ok(()) => true,
            Err(mpsc::error::SendError(msg)) => {
                let tx = self.room_sender(room);
                tx.send(msg).await.is_ok()
            }
        }
    }

    /// A moderation command of participant `from` (its refusal is told to it
    /// by the room actor).
    async fn moderate_as(
        self: &Arc<Self>,
        room: &RoomRecord,
        from: String,
        target: String,
        action: ModerationAction,
    ) {
        let msg = RoomMsg::Moderate {
            by: moderation::Moderator::Participant(from),
            target,
            action,
            reply: None,
        };
        self.to_room(room, msg).await;
    }

    /// Sends to a running room actor (none running: nothing to do).
    async fn to_live_room(&self, room_id: &str, msg: RoomMsg) {
        let tx = self.rooms().get(room_id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(msg).await;
        }
    }

    /// Called by an idle room actor: removes it from the registry unless a
    /// message is waiting for it. Returns true when the actor may stop.
    pub(crate) fn retire_room(&self, room_id: &str, rx: &mut mpsc::Receiver<RoomMsg>) -> bool {
        let mut rooms = self.rooms();
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(room_id);
        lock(&self.counters).remove(room_id);
        rx.close();
        true
    }

    /// Ends the live session of a room, if any (REST `end`, room deletion).
    pub async fn end_session(&self, room_id: &str, reason: &'static str) {
        self.to_live_room(room_id, RoomMsg::EndSession { reason })
            .await;
    }

    /// Number of running room actors.
    pub fn live_rooms(&self) -> usize {
        self.rooms().len()
    }
}

/// An opaque random secret (resume tokens).
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[derive(Debug, serde::Deserialize)]
pub struct RtcQuery {
    token: Option<String>,
}

/// `GET /rtc`: upgrades to the signaling WebSocket.
/// Read buffer of a signaling WebSocket (see `ws_handler`).
const WS_READ_BUFFER: usize = 16 * 1024;

pub async fn ws_handler(
    State(sig): State<Arc<Signaling>>,
    Query(q): Query<RtcQuery>,
    gate::PeerAddr(peer): gate::PeerAddr,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let (ip, pre_join) = match gate::admit(&sig.limits, sig.trust_proxy, &headers, peer) {
        Ok(admitted) => admitted,
        Err(refused) => return axum::response::IntoResponse::into_response(refused),
    };
    // tungstenite's default read buffer is 128 KiB, zero-filled as it is
    // read into: per participant that was more than str0m's peer state.
    // Signaling messages are a few KiB (an SDP under 20); a larger one
    // still fits, the buffer grows to MAX_MESSAGE_BYTES for it.
    ws.read_buffer_size(WS_READ_BUFFER)
        .max_message_size(wire::MAX_MESSAGE_BYTES)
        .max_frame_size(wire::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let conn = sig.next_conn.fetch_add(1, Ordering::Relaxed);
            Connection::run(sig, socket, q.token, conn, ip, pre_join).await;
        })
}

struct Connection {
    sig: Arc<Signaling>,
    socket: WebSocket,
    conn: u64,
    out_rx: OutboxRx,
    out_tx: Outbox,
    last_heard: Instant,
    pinged: bool,
    window_start: Instant,
    window_count: u32,
    /// The caller's address (for the per-address limits), if known.
    ip: Option<std::net::IpAddr>,
}

enum Flow {
    Continue,
    Close,
}

impl Connection {
    async fn run(
        sig: Arc<Signaling>,
        socket: WebSocket,
        query_token: Option<String>,
        conn: u64,
        ip: Option<std::net::IpAddr>,
        mut pre_join: Option<PreJoin>,
    ) {
        let (out_tx, out_rx) = outbox::outbox(outbox::OUTBOX_CAPACITY);
        let mut c = Connection {
            sig,
            socket,
            conn,
            out_rx,
            out_tx,
            last_heard: Instant::now(),
            pinged: false,
            window_start: Instant::now(),
            window_count: 0,
            ip,
        };
        let started = Instant::now();
        let Some(admission) = c.await_join(query_token).await else {
            return;
        };
        // Joined: no longer counts against its address's pre-join sockets.
        if let Some(p) = pre_join.as_mut() {
            p.release();
        }
        let room = admission.room.clone();
        let reply = match c.join(admission).await {
            Ok(j) => j,
            Err((code, message)) => {
                c.fatal(code, message).await;
                return;
            }
        };
        tracing::debug!(participant = %reply.participant_id, join_ms = started.elapsed().as_millis() as u64, "signaling joined");
        let leave = c.session(&room, &reply).await;
        let sig = c.sig.clone();
        sig.to_room(
            &room,
            RoomMsg::Disconnected {
                participant_id: reply.participant_id.clone(),
                conn,
                leave,
            },
        )
        .await;
    }

    async fn send(&mut self, msg: &ServerMsg) -> bool {
        match serde_json::to_string(msg) {
            Ok(text) => self.socket.send(Message::Text(text.into())).await.is_ok(),
            Err(_) => false,
        }
    }

    async fn fatal(&mut self, code: &'static str, message: String) {
        tracing::info!(conn = self.conn, code, %message, "signaling refused");
        let _ = self.send(&ServerMsg::error(code, message, true)).await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: 4000,
                reason: code.into(),
            })))
            .await;
    }

    /// Reads one client message (text JSON), enforcing the rate limit.
    fn parse(&mut self, msg: Message) -> Result<Option<ClientMsg>, Refusal> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                return Err(("BAD_MESSAGE", "messages must be JSON text".into()));
            }
            Message::Close(_) => return Ok(None),
            Message::Ping(_) | Message::Pong(_) => return Ok(None),
        };
        self.last_heard = Instant::now();
        self.pinged = false;
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > MESSAGE_RATE {
            return Err((
                "RATE_LIMITED",
                format!("more than {MESSAGE_RATE} messages per second"),
            ));
        }
        serde_json::from_str::<ClientMsg>(&text)
            .map(Some)
            .map_err(|e| ("BAD_MESSAGE", format!("not a valid message: {e}")))
    }

    /// Waits up to 15 s for the `join` message and authenticates it.
    async fn await_join(&mut self, query_token: Option<String>) -> Option<Admission> {
        let deadline = tokio::time::sleep(Duration::from_secs(15));
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                m = self.socket.recv() => m,
                _ = &mut deadline => {
                    self.fatal("TIMEOUT", "no join message within 15 s".into()).await;
                    return None;
                }
            };
            let msg = match msg {
                Some(Ok(m)) => m,
                _ => return None,
            };
            match self.parse(msg) {
                Ok(Some(ClientMsg::Join {
                    v,
                    room,
                    token,
                    name,
                    resume,
                    client,
                    password,
                })) => {
                    if let Some(v) = v
                        && v != wire::PROTOCOL_VERSION
                    {
                        self.fatal(
                            "PROTOCOL_VERSION",
                            format!(
                                "protocol version {v} is not supported (this server speaks {})",
                                wire::PROTOCOL_VERSION
                            ),
                        )
                        .await;
                        return None;
                    }
                    let token = token.or(query_token.clone()).filter(|t| !t.is_empty());
                    let admitted = admit(
                        &self.sig,
                        self.out_tx.clone(),
                        self.conn,
                        room,
                        token,
                        name,
                        resume,
                        client,
                        password,
                        self.ip,
                    )
                    .await;
                    match admitted {
                        Ok(a) => return Some(a),
                        Err((code, message)) => {
                            // A token that is not ours, or a room that does
                            // not exist, counts against the address like a
                            // bad developer key (guessing is slowed down).
                            // An expired or not-yet-valid token is a real
                            // invitation, possibly of many people behind one
                            // address: it does not count.
                            let guessing = code == "TOKEN_INVALID" || code == "ROOM_NOT_FOUND";
                            if guessing && let Some(ip) = self.ip {
                                self.sig.limits.failed(ip, gate::unix_now());
                            }
                            self.fatal(code, message).await;
                            return None;
                        }
                    }
                }
                Ok(Some(ClientMsg::Ping)) => {
                    let _ = self.send(&ServerMsg::Pong).await;
                }
                Ok(Some(_)) => {
                    let _ = self
                        .send(&ServerMsg::error("BAD_MESSAGE", "send `join` first", false))
                        .await;
                }
                Ok(None) => {}
                Err((code, message)) => {
                    self.fatal(code, message).await;
                    return None;
                }
            }
        }
    }

    async fn join(&mut self, a: Admission) -> Result<Joined, Refusal> {
        let (tx, rx) = oneshot::channel();
        let sig = self.sig.clone();
        if !sig
            .to_room(
                &a.room,
                RoomMsg::Join {
                    req: Box::new(a.req),
                    reply: tx,
                },
            )
            .await
        {
            return Err(("INTERNAL", "the room is not available".into()));
        }
        let outcome = rx
            .await
            .map_err(|_| ("INTERNAL", "the room did not answer".to_string()))?;
        match outcome {
            JoinOutcome::Joined(j) => Ok(j),
            JoinOutcome::Refused(code, message) => Err((code, message)),
            JoinOutcome::Lobby(decision) => {
                // Wait, forwarding what the actor sends (lobby notice), until decided.
                tokio::pin!(decision);
                loop {
                    tokio::select! {
                        d = &mut decision => {
                            return match d {
                                Ok(r) => r,
                                Err(_) => Err(("REJECTED", "the lobby was closed".to_string())),
                            };
                        }
                        Some(m) = self.out_rx.recv() => {
                            if !self.send(&m).await {
                                return Err(("INTERNAL", "connection lost".into()));
                            }
                        }
                        m = self.socket.recv() => {
                            match m {
                                Some(Ok(m)) => match self.parse(m) {
                                    Ok(Some(ClientMsg::Ping)) => { let _ = self.send(&ServerMsg::Pong).await; }
                                    Ok(Some(ClientMsg::Leave)) | Err(_) => return Err(("LEFT", "left the lobby".into())),
                                    _ => {}
                                },
                                _ => return Err(("LEFT", "left the lobby".into())),
                            }
                        }
                    }
                }
            }
        }
    }

    /// The joined part of the connection. Returns true when the participant
    /// left on purpose (or was removed), false when the connection was lost.
    async fn session(&mut self, room: &RoomRecord, me: &Joined) -> bool {
        let mut shutdown = self.sig.shutdown.subscribe();
        let mut keepalive = tokio::time::interval(Duration::from_secs(5));
        let behind = self.out_rx.watch();
        loop {
            tokio::select! {
                _ = behind.wait() => {
                    // A message to this client was dropped: close, and the
                    // client resumes into a fresh snapshot of the room.
                    tracing::info!(conn = self.conn, "outbound queue full; closing so the client resumes");
                    let close = Message::Close(Some(CloseFrame {
                        code: 1013,
                        reason: "fell behind; resume".into(),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(close)).await;
                    return false;
                }
                m = self.out_rx.recv() => {
                    let Some(m) = m else { return false };
                    let fatal = matches!(m, ServerMsg::Error { fatal: true, .. });
                    if !self.send(&m).await {
                        // The client may have said `leave` and closed while
                        // we were writing: what it sent is still readable.
                        return self.left_before_close().await;
                    }
                    if fatal {
                        let _ = self.socket.send(Message::Close(None)).await;
                        return true;
                    }
                }
                m = self.socket.recv() => {
                    let msg = match m {
                        Some(Ok(m)) => m,
                        _ => return false,
                    };
                    if let Message::Close(_) = msg {
                        return false;
                    }
                    match self.parse(msg) {
                        Ok(Some(cm)) => {
                            if let Flow::Close = self.on_client(room, me, cm).await {
                                return true;
                            }
                        }
                        Ok(None) => {}
                        Err((code, message)) => {
                            let _ = self.send(&ServerMsg::error(code, message, false)).await;
                        }
                    }
                }
                _ = keepalive.tick() => {
                    let idle = self.last_heard.elapsed();
                    if idle >= IDLE_DEAD {
                        self.fatal("TIMEOUT", "no message for 45 s".into()).await;
                        return false;
                    }
                    if idle >= IDLE_PING && !self.pinged {
                        self.pinged = true;
                        if !self.send(&ServerMsg::Ping).await {
                            return false;
                        }
                    }
                }
                _ = shutdown.changed() => {
                    self.fatal("SERVER_SHUTDOWN", "the server is shutting down".into()).await;
                    return true;
                }
            }
        }
    }

    /// After a failed write: reads what the client sent before the
    /// connection went away, briefly, looking for a `leave`.
    async fn left_before_close(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.recv()).await {
                Ok(Some(Ok(m))) => {
                    if let Ok(Some(ClientMsg::Leave)) = self.parse(m) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }

    async fn on_client(&mut self, room: &RoomRecord, me: &Joined, msg: ClientMsg) -> Flow {
        let pid = me.participant_id.clone();
        let media = |c: Command| self.sig.media.send(me.worker, c);
        let result = match msg {
            ClientMsg::Join { .. } => {
                let _ = self
                    .send(&ServerMsg::error("BAD_MESSAGE", "already joined", false))
                    .await;
                return Flow::Continue;
            }
            ClientMsg::Offer { sdp, tracks } => media(Command::ClientOffer {
                participant_id: pid,
                sdp,
                tracks: tracks
                    .into_iter()
                    .map(|t| PublishedMid {
                        mid: t.mid,
                        source: t.source,
                    })
                    .collect(),
            }),
            ClientMsg::Answer { sdp } => media(Command::ClientAnswer {
                participant_id: pid,
                sdp,
            }),
            ClientMsg::Candidate { .. } => Ok(()),
            ClientMsg::Subscribe {
                track_id,
                subscribe,
            } => media(Command::Subscribe {
                participant_id: pid,
                track_id,
                subscribe,
            }),
            ClientMsg::Pause { track_id, paused } => media(Command::Pause {
                participant_id: pid,
                track_id,
                paused,
            }),
            ClientMsg::Layer {
                track_id,
                max_layer,
                max_height,
            } => media(Command::Layer {
                participant_id: pid,
                track_id,
                max_layer: max_layer.as_deref().and_then(convene_sfu::Layer::parse),
                max_height,
            }),
            ClientMsg::Mute { source, muted } => media(Command::Mute {
                participant_id: pid,
                source: Some(source),
                muted,
                by: None,
            }),
            ClientMsg::MuteParticipant {
                participant_id,
                source,
            } => {
                let action = ModerationAction::Mute(source.map(moderation::mute_source));
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::RemoveParticipant { participant_id } => {
                let action = ModerationAction::Remove;
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::SetRole {
                participant_id,
                role,
            } => {
                let action = ModerationAction::SetRole(role);
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::Collab(msg) => {
                self.sig
                    .to_room(room, RoomMsg::Collab { from: pid, msg })
                    .await;
                Ok(())
            }
            ClientMsg::Admit { participant_id } => {
                self.sig
                    .to_room(
                        room,
                        RoomMsg::LobbyDecision {
                            from: pid,
                            target: participant_id,
                            admit: true,
                        },
                    )
                    .await;
                Ok(())
            }
            ClientMsg::Reject { participant_id } => {
                self.sig
                    .to_room(
                        room,
                        RoomMsg::LobbyDecision {
                            from: pid,
                            target: participant_id,
                            admit: false,
                        },
                    )
                    .await;
                Ok(())
            }
            ClientMsg::Ping => {
                let _ = self.send(&ServerMsg::Pong).await;
                Ok(())
            }
            ClientMsg::Pong => Ok(()),
            ClientMsg::Leave => return Flow::Close,
        };
        if let Err(e) = result {
            let _ = self
                .send(&ServerMsg::error("SERVER_BUSY", e.to_string(), false))
                .await;
        }
        Flow::Continue
    }
}

impl convene_api::live::LiveRooms for Signaling {
    fn moderate(
        &self,
        room_id: &str,
        participant_id: &str,
        action: ModerationAction,
    ) -> Option<oneshot::Receiver<Result<(), convene_api::live::ModerationRefusal>>> {
        let tx = self.live_room(room_id)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(RoomMsg::Moderate {
            by: moderation::Moderator::Api,
            target: participant_id.to_string(),
            action,
            reply: Some(reply),
        })
        .ok()?;
        Some(rx)
    }

    fn broadcast(&self, room_id: &str, event: convene_api::live_events::LiveEvent) -> bool {
        let Some(tx) = self.live_room(room_id) else {
            return false;
        };
        tx.try_send(RoomMsg::Broadcast(Box::new(event))).is_ok()
    }

    fn end_session(&self, room_id: &str) -> bool {
        match self.live_room(room_id) {
            Some(tx) => tx
                .try_send(RoomMsg::EndSession {
                    reason: "ended_by_api",
                })
                .is_ok(),
            None => false,
        }
    }

    fn set_hand(&self, room_id: &str, participant_id: &str, raised: bool) -> bool {
        match self.live_room(room_id) {
            Some(tx) => tx
                .try_send(RoomMsg::Hand {
                    participant_id: participant_id.to_string(),
                    raised,
                })
                .is_ok(),
            None => false,
        }
    }

    fn recording(
        &self,
        room_id: &str,
        action: convene_api::live::RecordingAction,
    ) -> Option<oneshot::Receiver<Result<String, convene_api::live::RecordingRefusal>>> {
        let tx = self.live_room(room_id)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(RoomMsg::Recording { action, reply }).ok()?;
        Some(rx)
    }

    fn restream(
        &self,
        room_id: &str,
        action: convene_api::live::RestreamAction,
    ) -> Option<
        oneshot::Receiver<
            Result<Vec<convene_api::live::RestreamInfo>, convene_api::live::RecordingRefusal>,
        >,
    > {
        let tx = self.live_room(room_id)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(RoomMsg::Restream { action, reply }).ok()?;
        Some(rx)
    }

    fn media(&self, room_id: &str) -> Option<convene_api::live::LiveMedia> {
        let s = lock(&self.counters).get(room_id)?.snapshot();
        Some(convene_api::live::LiveMedia {
            packets_in: s.rtp_in,
            bytes_in: s.bytes_in,
            packets_out: s.rtp_forwarded,
            bytes_out: s.bytes_forwarded,
        })
    }
}

/// Locks a mutex, recovering from poisoning (the data is plain maps).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl std::fmt::Debug for Signaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signaling").finish_non_exhaustive()
    }
}
