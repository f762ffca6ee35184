//! WebSocket signaling at `/rtc` (protocol in docs/signaling.md): join with a
//! token or a name, SDP exchange with the media worker, events, moderation,
//! keepalive, reconnect.
//!
//! Each connection is one task; each live room is one [`room::RoomActor`]
//! task. Neither touches media: SDP and track commands go to the room's media
//! worker over its bounded command channel.

mod admission;
pub mod breakouts;
pub mod collab;
mod connection;
mod e2ee;
mod gate;
pub mod http_media;
mod layout;
pub mod moderation;
pub mod outbox;
pub mod password;
mod presentation;
pub mod recording;
pub mod restream;
pub mod room;
mod room_media;
mod transcription;
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
use convene_api::live::{Later, ModerationAction, Reply};
use convene_api::store::rooms::RoomRecord;
use tokio::sync::{mpsc, oneshot, watch};

use crate::rtc::{Command, MediaPlane, PublishedMid, RoomCounters};
use admission::{Admission, JoinRefusal, Refusal, admit};
use outbox::{Outbox, OutboxRx};
use room::{JoinOutcome, Joined, RoomActor, RoomMsg};
use wire::{ClientMsg, ServerMsg};

pub use connection::{RtcQuery, ws_handler};

/// Ping a client after this long without a message from it.
pub const IDLE_PING: Duration = Duration::from_secs(20);
/// Drop a client after this long without a message from it.
pub const IDLE_DEAD: Duration = Duration::from_secs(45);
/// How often a joined connection looks at its client's silence.
pub const KEEPALIVE: Duration = Duration::from_secs(5);
/// Messages per second a client may send.
const MESSAGE_RATE: u32 = 50;

/// Shared state of signaling.
pub struct Signaling {
    pub db: Db,
    pub media: Arc<MediaPlane>,
    pub recordings: Arc<crate::recording::Recordings>,
    /// ffmpeg and the SSRF opt-out of RTMP restreams.
    pub restream: crate::restream::RestreamConfig,
    /// The speech recogniser of live transcription.
    pub voice: std::sync::Arc<crate::voice::Voice>,
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
    /// The cluster this node belongs to (`--redis-url`), if any.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Participants connected over `/rtc` right now (a node's load).
    connected: std::sync::atomic::AtomicUsize,
    /// This node's SIP endpoint (`--sip-addr`), which other nodes ask
    /// about its calls (`cluster::phone`).
    phone: std::sync::OnceLock<Arc<crate::phone::PhoneBridge>>,
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
    /// Called once, by `lib.rs` (each argument a separate service).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        media: Arc<MediaPlane>,
        recordings: Arc<crate::recording::Recordings>,
        limits: Arc<IpLimits>,
        trust_proxy: bool,
        ice_servers: Option<crate::turn::IceServers>,
        restream: crate::restream::RestreamConfig,
        voice: Arc<crate::voice::Voice>,
    ) -> Arc<Signaling> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Signaling {
            db,
            media,
            recordings,
            restream,
            voice,
            rooms: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            shutdown,
            limits,
            trust_proxy,
            http_media: http_media::Sessions::default(),
            ice_servers,
            passwords: password::PasswordLimiter::default(),
            cluster: std::sync::OnceLock::new(),
            connected: std::sync::atomic::AtomicUsize::new(0),
            phone: std::sync::OnceLock::new(),
        })
    }

    /// Makes this node one of a cluster's (once, at start).
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Attaches this node's SIP endpoint (once, at start).
    pub fn set_phone(&self, bridge: Arc<crate::phone::PhoneBridge>) {
        let _ = self.phone.set(bridge);
    }

    /// This node's SIP endpoint, if it has one.
    pub fn phone(&self) -> Option<&Arc<crate::phone::PhoneBridge>> {
        self.phone.get()
    }

    /// The cluster secret (`None` outside a cluster), for values sealed
    /// between nodes (`cluster::seal`).
    pub fn cluster_secret(&self) -> Option<Vec<u8>> {
        self.cluster.get().map(|c| c.secret_bytes().to_vec())
    }

    /// Whether a member's peer may be kept on cluster node `node` (its
    /// `via`): another node, not draining.
    pub fn media_node_usable(&self, node: &str) -> bool {
        self.cluster
            .get()
            .is_some_and(|c| c.node_id() != node && !c.is_node_draining(node))
    }

    /// This node's name in its cluster (`None` outside a cluster).
    pub fn cluster_node_id(&self) -> Option<String> {
        self.cluster.get().map(|c| c.node_id().to_string())
    }

    /// Participants connected over `/rtc` right now.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Where a room that is about to be joined runs: here when this node
    /// runs it (or there is no cluster).
    pub async fn place(&self, room_id: &str) -> crate::cluster::Place {
        match self.cluster.get() {
            Some(c) if c.is_draining() || !self.is_live_here(room_id) => c.place(room_id).await,
            _ => crate::cluster::Place::Here,
        }
    }

    /// Tells a room of this node that it runs on `node` now (drain).
    pub async fn move_room(&self, room_id: &str, url: String, node: String) {
        self.to_live_room(room_id, RoomMsg::Move { url, node })
            .await;
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
        if let Some(c) = self.cluster.get() {
            c.released(room_id);
        }
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

/// This process's live rooms. In a cluster, [`crate::cluster::ClusterLive`]
/// asks these first and then the node the room runs on.
impl convene_api::live::LiveRooms for Signaling {
    fn moderate<'a>(
        &'a self,
        room_id: &'a str,
        participant_id: &'a str,
        action: ModerationAction,
    ) -> Later<'a, Option<Reply<Result<(), convene_api::live::ModerationRefusal>>>> {
        Box::pin(std::future::ready(self.moderate_here(
            room_id,
            participant_id,
            action,
        )))
    }

    fn breakouts<'a>(
        &'a self,
        room_id: &'a str,
        command: convene_api::breakouts::BreakoutCommand,
    ) -> Later<'a, Option<oneshot::Receiver<breakouts::Reply>>> {
        Box::pin(std::future::ready(self.breakouts_here(room_id, command)))
    }

    fn broadcast<'a>(
        &'a self,
        room_id: &'a str,
        event: convene_api::live_events::LiveEvent,
    ) -> Later<'a, bool> {
        Box::pin(std::future::ready(self.broadcast_here(room_id, event)))
    }

    fn end_session<'a>(&'a self, room_id: &'a str) -> Later<'a, bool> {
        Box::pin(std::future::ready(self.end_session_here(room_id)))
    }

    fn transcription<'a>(&'a self, room_id: &'a str, enabled: bool) -> Later<'a, bool> {
        Box::pin(std::future::ready(
            self.transcription_here(room_id, enabled),
        ))
    }

    fn set_hand<'a>(
        &'a self,
        room_id: &'a str,
        participant_id: &'a str,
        raised: bool,
    ) -> Later<'a, bool> {
        Box::pin(std::future::ready(self.set_hand_here(
            room_id,
            participant_id,
            raised,
        )))
    }

    fn recording<'a>(
        &'a self,
        room_id: &'a str,
        action: convene_api::live::RecordingAction,
    ) -> Later<'a, Option<Reply<Result<String, convene_api::live::RecordingRefusal>>>> {
        Box::pin(std::future::ready(self.recording_here(room_id, action)))
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

    fn media<'a>(&'a self, room_id: &'a str) -> Later<'a, Option<convene_api::live::LiveMedia>> {
        Box::pin(std::future::ready(self.media_here(room_id)))
    }
}

/// What this process's room actors answer at once (the cluster's message
/// loop calls these for requests from other nodes).
impl Signaling {
    pub fn broadcast_here(
        &self,
        room_id: &str,
        event: convene_api::live_events::LiveEvent,
    ) -> bool {
        let Some(tx) = self.live_room(room_id) else {
            return false;
        };
        tx.try_send(RoomMsg::Broadcast(Box::new(event))).is_ok()
    }

    pub fn end_session_here(&self, room_id: &str) -> bool {
        match self.live_room(room_id) {
            Some(tx) => tx
                .try_send(RoomMsg::EndSession {
                    reason: "ended_by_api",
                })
                .is_ok(),
            None => false,
        }
    }

    pub fn transcription_here(&self, room_id: &str, enabled: bool) -> bool {
        match self.live_room(room_id) {
            Some(tx) => tx.try_send(RoomMsg::Transcription { enabled }).is_ok(),
            None => false,
        }
    }

    pub fn set_hand_here(&self, room_id: &str, participant_id: &str, raised: bool) -> bool {
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

    pub fn moderate_here(
        &self,
        room_id: &str,
        participant_id: &str,
        action: ModerationAction,
    ) -> Option<Reply<Result<(), convene_api::live::ModerationRefusal>>> {
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

    pub fn recording_here(
        &self,
        room_id: &str,
        action: convene_api::live::RecordingAction,
    ) -> Option<Reply<Result<String, convene_api::live::RecordingRefusal>>> {
        let tx = self.live_room(room_id)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(RoomMsg::Recording { action, reply }).ok()?;
        Some(rx)
    }

    pub fn media_here(&self, room_id: &str) -> Option<convene_api::live::LiveMedia> {
        let s = lock(&self.counters).get(room_id)?.snapshot();
        Some(convene_api::live::LiveMedia {
            packets_in: s.rtp_in,
            bytes_in: s.bytes_in,
            packets_out: s.rtp_forwarded,
            bytes_out: s.bytes_forwarded,
        })
    }

    pub fn breakouts_here(
        &self,
        room_id: &str,
        command: convene_api::breakouts::BreakoutCommand,
    ) -> Option<oneshot::Receiver<breakouts::Reply>> {
        let tx = self.live_room(room_id)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(RoomMsg::Breakouts { command, reply }).ok()?;
        Some(rx)
    }

    /// Whether the room has a running room actor in this process.
    pub fn is_live_here(&self, room_id: &str) -> bool {
        self.live_room(room_id).is_some()
    }

    /// The rooms with a running room actor in this process.
    pub fn live_room_ids(&self) -> Vec<String> {
        self.rooms()
            .iter()
            .filter(|(_, tx)| !tx.is_closed())
            .map(|(id, _)| id.clone())
            .collect()
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
