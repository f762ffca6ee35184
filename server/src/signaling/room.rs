//! The room actor: one tokio task per live room, the single owner of its
//! membership — who is in, who waits in the lobby, who was removed — and of
//! the session's lifecycle and its persistence.
//!
//! Media state (tracks) lives in the room's media worker; the actor tells the
//! worker when a participant's peer is added or removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_api::live_events::LiveEvent;
use convene_api::store::sessions::NewParticipant;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::Signaling;
use super::collab::{self, CollabMsg};
use super::outbox::Outbox;
use super::wire::{LobbyEntry, ParticipantInfo, RoomInfo, ServerMsg, TrackInfo};
use crate::rtc::{Command, RoomCounters, RoomCountersSnapshot, WorkerId};

/// How long a participant whose connection dropped keeps its place.
pub const DEPARTURE_WINDOW: Duration = Duration::from_secs(20);

/// Who is asking to join (already authenticated by the WebSocket handler).
pub struct JoinRequest {
    pub name: String,
    pub external_id: Option<String>,
    pub role: String,
    pub permissions: Map<String, Value>,
    /// Identifies the token (a hash), to refuse it after a removal.
    pub token_fingerprint: Option<String>,
    /// The token's expiry (Unix seconds): a removal bans it until then.
    pub token_exp: Option<i64>,
    pub resume: Option<String>,
    pub client_kind: String,
    /// A viewer that negotiates once (WHEP): what it is shown.
    pub view: Option<crate::rtc::View>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    pub out: Outbox,
    /// Distinguishes this connection from an earlier one of the same participant.
    pub conn: u64,
    /// The guest link it joins with; one use is counted when it is admitted.
    pub guest_link: Option<String>,
    /// The breakout the token (`breakoutId`) sends it into.
    pub breakout: Option<String>,
}

/// At most this many queued joins are admitted together (one commit).
const JOIN_BURST: usize = 64;

/// A join waiting in the room's mailbox, and where its outcome goes.
type QueuedJoin = (Box<JoinRequest>, oneshot::Sender<JoinOutcome>);

/// A join after its checks (see `RoomActor::screen`).
enum Screened {
    Decided(JoinOutcome),
    Admit(String, Box<JoinRequest>),
}

pub struct Joined {
    pub participant_id: String,
    pub worker: WorkerId,
}

impl From<Result<Joined, (&'static str, String)>> for JoinOutcome {
    fn from(r: Result<Joined, (&'static str, String)>) -> JoinOutcome {
        match r {
            Ok(j) => JoinOutcome::Joined(j),
            Err((code, message)) => JoinOutcome::Refused(code, message),
        }
    }
}

pub enum JoinOutcome {
    Joined(Joined),
    /// Wait for the decision (`Ok` admitted, `Err` refusal).
    Lobby(oneshot::Receiver<Result<Joined, (&'static str, String)>>),
    Refused(&'static str, String),
}

pub enum RoomMsg {
    Join {
        req: Box<JoinRequest>,
        reply: oneshot::Sender<JoinOutcome>,
    },
    /// The connection `conn` of a participant ended (`leave`: on purpose).
    Disconnected {
        participant_id: String,
        conn: u64,
        leave: bool,
    },
    /// Mute, remove or change the role of `target`, by a moderator in the
    /// room or the REST API (whose answer goes to `reply`).
    Moderate {
        by: super::moderation::Moderator,
        target: String,
        action: convene_api::live::ModerationAction,
        reply: Option<oneshot::Sender<Result<(), convene_api::live::ModerationRefusal>>>,
    },
    LobbyDecision {
        from: String,
        target: String,
        admit: bool,
    },
    /// End the session now (REST `end`, shutdown).
    EndSession {
        reason: &'static str,
    },
    /// Deliver an event to every connected member (REST -> room).
    Broadcast(Box<LiveEvent>),
    /// A collaboration action of participant `from`.
    Collab {
        from: String,
        msg: CollabMsg,
    },
    /// The room's `transcription_enabled` changed (REST).
    Transcription {
        enabled: bool,
    },
    /// Raise or lower a participant's hand (REST).
    Hand {
        participant_id: String,
        raised: bool,
    },
    /// Start or stop the recording (REST).
    Recording {
        action: convene_api::live::RecordingAction,
        reply: oneshot::Sender<Result<String, convene_api::live::RecordingRefusal>>,
    },
    /// The recorder stopped on its own.
    /// Start or stop restreaming (REST).
    Restream {
        action: convene_api::live::RestreamAction,
        reply: oneshot::Sender<
            Result<Vec<convene_api::live::RestreamInfo>, convene_api::live::RecordingRefusal>,
        >,
    },
    RecordingEnded {
        recording_id: String,
        reason: &'static str,
    },
    /// An opaque end-to-end encryption message of `from` to relay
    /// (`to`: one member, `None`: every other member; `super::e2ee`).
    E2ee {
        from: String,
        to: Option<String>,
        payload: Value,
    },
    /// A breakout command of the REST API (`super::breakouts`).
    Breakouts {
        command: convene_api::breakouts::BreakoutCommand,
        reply: oneshot::Sender<super::breakouts::Reply>,
    },
    Tick,
}

pub(super) struct Member {
    pub(super) name: String,
    pub(super) external_id: Option<String>,
    pub(super) role: String,
    pub(super) permissions: Map<String, Value>,
    pub(super) out: Outbox,
    pub(super) conn: u64,
    pub(super) resume_token: String,
    pub(super) token_fingerprint: Option<String>,
    pub(super) token_exp: Option<i64>,
    pub(super) disconnected_since: Option<Instant>,
    /// The media worker holding this participant's peer connection.
    pub(super) worker: WorkerId,
    /// Is offered the room's media (a WHIP publisher and a WHEP viewer are
    /// not: they negotiate once).
    pub(super) receives: bool,
    /// A WHEP viewer's choice of what it is shown.
    pub(super) view: Option<crate::rtc::View>,
    /// The open breakout it is in (`None`: the main room); its peer is in
    /// that breakout's media room.
    pub(super) breakout: Option<String>,
}

impl Member {
    pub(super) fn may(&self, permission: &str) -> bool {
        self.permissions
            .get(permission)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

pub(super) struct Waiting {
    pub(super) req: Box<JoinRequest>,
    pub(super) decision: oneshot::Sender<Result<Joined, (&'static str, String)>>,
}

pub struct RoomActor {
    pub(super) sig: Arc<Signaling>,
    pub(super) team_id: String,
    pub(super) room_id: String,
    pub(super) friendly_url: String,
    pub(super) settings: Map<String, Value>,
    pub(super) counters: Arc<RoomCounters>,
    /// Reactions on chat messages during this session.
    pub(super) chat_reactions: Vec<collab::ChatReaction>,
    /// Raised hands, in the order they were raised.
    pub(super) hands: Vec<collab::Hand>,
    /// Running quizzes with a time limit, and when they end.
    pub(super) quiz_deadlines: Vec<(String, Instant)>,
    /// The counters when the current session started.
    pub(super) session_baseline: RoomCountersSnapshot,
    pub(super) worker: WorkerId,
    pub(super) session: Option<(String, Instant)>,
    pub(super) members: HashMap<String, Member>,
    pub(super) lobby: HashMap<String, Waiting>,
    pub(super) banned_tokens: HashSet<String>,
    pub(super) banned_external: HashSet<String>,
    /// The running recording.
    pub(super) recording: Option<super::recording::ActiveRecording>,
    /// Running RTMP restreams.
    pub(super) restreams: Vec<super::restream::ActiveRestream>,
    /// The session's transcriber (`transcription_enabled`).
    pub(super) transcriber: Option<crate::voice::transcriber::TranscriberHandle>,
    /// The library file being presented (`presentation.rs`).
    pub(super) presentation: Option<convene_api::live_events::Presentation>,
    /// The open (or closing) breakout rooms (`breakouts.rs`).
    pub(super) breakouts: Option<super::breakouts::LiveBreakouts>,
    pub(super) rx: mpsc::Receiver<RoomMsg>,
}

impl RoomActor {
    pub fn new(
        sig: Arc<Signaling>,
        team_id: String,
        room_id: String,
        friendly_url: String,
        settings: Map<String, Value>,
        counters: Arc<RoomCounters>,
        rx: mpsc::Receiver<RoomMsg>,
    ) -> RoomActor {
        let worker = sig.media.worker_of(&room_id);
        RoomActor {
            sig,
            team_id,
            room_id,
            friendly_url,
            settings,
            counters,
            hands: Vec::new(),
            chat_reactions: Vec::new(),
            quiz_deadlines: Vec::new(),
            session_baseline: RoomCountersSnapshot::default(),
            worker,
            session: None,
            members: HashMap::new(),
            lobby: HashMap::new(),
            banned_tokens: HashSet::new(),
            banned_external: HashSet::new(),
            recording: None,
            restreams: Vec::new(),
            transcriber: None,
            presentation: None,
            breakouts: None,
            rx,
        }
    }

    pub async fn run(mut self) {
        self.load_bans().await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                m = self.rx.recv() => m,
                _ = tick.tick() => Some(RoomMsg::Tick),
            };
            match msg {
                Some(RoomMsg::Join { req, reply }) => {
                    let (burst, next) = self.queued_joins(req, reply);
                    self.join_burst(burst).await;
                    if let Some(m) = next {
                        self.handle(m).await;
                    }
                }
                Some(m) => self.handle(m).await,
                None => break,
            }
            if self.members.is_empty() && self.lobby.is_empty() {
                self.finish_recording("session_ended").await;
                self.finish_restreams("session_ended").await;
                self.finish_transcriber();
                if let Some((session_id, _)) = self.session.take() {
                    self.end_session_record(&session_id, "empty").await;
                }
                // Leave the registry unless a message raced in.
                if self.sig.retire_room(&self.room_id, &mut self.rx) {
                    break;
                }
            }
        }
        tracing::debug!(room = %self.friendly_url, "room actor stopped");
    }

    async fn handle(&mut self, msg: RoomMsg) {
        match msg {
            RoomMsg::Join { req, reply } => self.join_burst(vec![(req, reply)]).await,
            RoomMsg::Disconnected {
                participant_id,
                conn,
                leave,
            } => self.disconnected(&participant_id, conn, leave).await,
            RoomMsg::Moderate {
                by,
                target,
                action,
                reply,
            } => self.moderate(by, &target, action, reply).await,
            RoomMsg::LobbyDecision {
                from,
                target,
                admit,
            } => self.lobby_decision(&from, &target, admit).await,
            RoomMsg::EndSession { reason } => self.end_session(reason).await,
            RoomMsg::Collab { from, msg } => self.collab(&from, msg).await,
            RoomMsg::Hand {
                participant_id,
                raised,
            } => {
                if self.members.contains_key(&participant_id) {
                    self.set_hand(&participant_id, raised, None).await;
                }
            }
            RoomMsg::Broadcast(event) => self.broadcast_event(*event),
            RoomMsg::Transcription { enabled } => self.set_transcription(enabled),
            RoomMsg::Recording { action, reply } => {
                let r = self
                    .recording_control(action, None)
                    .await
                    .map_err(super::recording::rest_refusal);
                let _ = reply.send(r);
            }
            RoomMsg::Restream { action, reply } => {
                let r = self.restream_control(action).await;
                let _ = reply.send(r);
            }
            RoomMsg::RecordingEnded {
                recording_id,
                reason,
            } => self.recording_ended(&recording_id, reason).await,
            RoomMsg::E2ee { from, to, payload } => self.relay_e2ee(&from, to.as_deref(), payload),
            RoomMsg::Breakouts { command, reply } => {
                let r = self.breakout_command(command).await;
                let _ = reply.send(r);
            }
            RoomMsg::Tick => self.tick().await,
        }
    }

    pub(super) fn max_participants(&self) -> usize {
        self.settings
            .get("max_participants")
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize
    }

    fn is_locked(&self) -> bool {
        self.settings
            .get("is_locked")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A join and the joins queued behind it in the mailbox (up to
    /// [`JOIN_BURST`]), and the first other message if one stopped the
    /// draining (to be handled after them).
    fn queued_joins(
        &mut self,
        req: Box<JoinRequest>,
        reply: oneshot::Sender<JoinOutcome>,
    ) -> (Vec<QueuedJoin>, Option<RoomMsg>) {
        let mut burst = vec![(req, reply)];
        while burst.len() < JOIN_BURST {
            match self.rx.try_recv() {
                Ok(RoomMsg::Join { req, reply }) => burst.push((req, reply)),
                Ok(other) => return (burst, Some(other)),
                Err(_) => break,
            }
        }
        (burst, None)
    }

    /// Joins that arrived together: each is screened in arrival order, then
    /// those let in are admitted together, with one database commit for all
    /// of them. A storm of joins into one room then costs one fsync per
    /// burst rather than one per join.
    async fn join_burst(&mut self, burst: Vec<QueuedJoin>) {
        let mut admits = Vec::new();
        let mut replies = Vec::new();
        for (req, reply) in burst {
            match self.screen(req, admits.len()).await {
                Screened::Decided(outcome) => {
                    let _ = reply.send(outcome);
                }
                Screened::Admit(pid, req) => {
                    admits.push((pid, req));
                    replies.push(reply);
                }
            }
        }
        if admits.is_empty() {
            return;
        }
        let results = self.admit_all(admits).await;
        for (result, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(result.into());
        }
    }

    /// The room's stored bans (removals whose tokens have not expired).
    async fn load_bans(&mut self) {
        let now = convene_api::store::now();
        // Expired bans of every room go first (they never match again).
        if let Err(e) = self.sig.db.prune_room_bans(&now).await {
            tracing::warn!(error = %e, "could not prune expired bans");
        }
        match self.sig.db.room_bans(&self.room_id, &now).await {
            Ok(bans) => {
                for b in bans {
                    if let Some(fp) = b.token_fingerprint {
                        self.banned_tokens.insert(fp);
                    }
                    if let Some(ext) = b.external_id {
                        self.banned_external.insert(ext);
                    }
                }
            }
            Err(e) => {
                tracing::error!(room = %self.friendly_url, error = %e, "could not read the room's bans");
            }
        }
    }

    /// Decides a join short of admitting it: a resume, a refusal, the
    /// lobby, or a participant id to admit. `pending` joins screened ahead
    /// of this one are about to be admitted and count against the room's
    /// size.
    async fn screen(&mut self, req: Box<JoinRequest>, pending: usize) -> Screened {
        // Resume: the same participant comes back on a new connection.
        if let Some(token) = &req.resume
            && let Some(pid) = self
                .members
                .iter()
                .find(|(_, m)| &m.resume_token == token)
                .map(|(id, _)| id.clone())
        {
            return Screened::Decided(self.resume(&pid, req).await.into());
        }
        if let Some(fp) = &req.token_fingerprint
            && self.banned_tokens.contains(fp)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "REMOVED",
                "you were removed from this session by a moderator".into(),
            ));
        }
        if let Some(ext) = &req.external_id
            && self.banned_external.contains(ext)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "REMOVED",
                "you were removed from this session by a moderator".into(),
            ));
        }
        if self.members.len() + pending >= self.max_participants() {
            return Screened::Decided(JoinOutcome::Refused(
                "ROOM_FULL",
                format!(
                    "the room is full ({} participants at most)",
                    self.max_participants()
                ),
            ));
        }
        if let Some(b) = &req.breakout
            && !self.breakout_is_open(b)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "BREAKOUT_NOT_OPEN",
                format!("breakout '{b}' is not open in this room"),
            ));
        }
        let is_moderator = req
            .permissions
            .get("admit_participants")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if self.is_locked() && !is_moderator {
            let pid = uuid::Uuid::new_v4().to_string();
            let (tx, rx) = oneshot::channel();
            let entry = LobbyEntry {
                id: pid.clone(),
                name: req.name.clone(),
            };
            for m in self.members.values() {
                if m.may("admit_participants") {
                    let _ = m.out.try_send(ServerMsg::LobbyRequest {
                        participant: entry.clone(),
                    });
                }
            }
            let _ = req.out.try_send(ServerMsg::Lobby {
                message: "the room is locked: waiting for a moderator to let you in".into(),
            });
            tracing::info!(room = %self.friendly_url, participant = %pid, "waiting in the lobby");
            self.lobby.insert(pid, Waiting { req, decision: tx });
            return Screened::Decided(JoinOutcome::Lobby(rx));
        }
        if let Some(link) = &req.guest_link
            && let Err((code, message)) =
                super::admission::spend_guest_use(&self.sig.db, link).await
        {
            return Screened::Decided(JoinOutcome::Refused(code, message));
        }
        Screened::Admit(uuid::Uuid::new_v4().to_string(), req)
    }

    pub(super) fn participant_info(&self, id: &str, m: &Member) -> ParticipantInfo {
        ParticipantInfo {
            id: id.to_string(),
            name: m.name.clone(),
            role: m.role.clone(),
            external_id: m.external_id.clone(),
            breakout_id: m.breakout.clone(),
            tracks: None,
        }
    }

    async fn ensure_session(&mut self) -> Result<String, (&'static str, String)> {
        if let Some((id, _)) = &self.session {
            return Ok(id.clone());
        }
        let id = self
            .sig
            .db
            .start_session(&self.team_id, &self.room_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not start a session");
                (
                    "INTERNAL",
                    "the server could not start the session".to_string(),
                )
            })?;
        tracing::info!(room = %self.friendly_url, session = %id, "session started");
        self.session_baseline = self.counters.snapshot();
        // A new session starts with nothing from the last one in memory.
        self.chat_reactions.clear();
        self.hands.clear();
        self.quiz_deadlines.clear();
        self.presentation = None;
        metrics::counter!("convene_sessions_started_total").increment(1);
        self.session = Some((id.clone(), Instant::now()));
        Ok(id)
    }

    /// Lets a participant in (see [`RoomActor::admit_all`]).
    pub(super) async fn admit(
        &mut self,
        pid: String,
        req: Box<JoinRequest>,
    ) -> Result<Joined, (&'static str, String)> {
        let mut results = self.admit_all(vec![(pid, req)]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(("INTERNAL", "the server could not record the join".into())))
    }

    /// Lets participants in: the session row, their participant rows (one
    /// transaction for all), then for each in turn its media peer, `joined`
    /// to it and `participant_joined` to the others. One result per
    /// participant, in order.
    async fn admit_all(
        &mut self,
        admits: Vec<(String, Box<JoinRequest>)>,
    ) -> Vec<Result<Joined, (&'static str, String)>> {
        let session_id = match self.ensure_session().await {
            Ok(id) => id,
            Err(e) => return admits.iter().map(|_| Err(e.clone())).collect(),
        };
        let started = Instant::now();
        let rows: Vec<NewParticipant<'_>> = admits
            .iter()
            .map(|(pid, req)| NewParticipant {
                id: pid,
                team_id: &self.team_id,
                room_id: &self.room_id,
                session_id: &session_id,
                name: &req.name,
                external_id: req.external_id.as_deref(),
                role: &req.role,
                client_kind: &req.client_kind,
                user_agent: req.user_agent.as_deref(),
                device_id: req.device_id.as_deref(),
            })
            .collect();
        if let Err(e) = self.sig.db.add_participants(&rows).await {
            tracing::error!(error = %e, joins = admits.len(), "could not record participants");
            return admits
                .iter()
                .map(|_| Err(("INTERNAL", "the server could not record the join".into())))
                .collect();
        }
        drop(rows);
        // The tracks already published, asked of the media workers once for
        // the lot: the participants admitted here publish none yet.
        let tracks = self.room_tracks().await;
        let burst = admits.len();
        let mut results = Vec::with_capacity(burst);
        for (pid, req) in admits {
            let result = self
                .admitted(pid, req, &session_id, &tracks, started, burst)
                .await;
            results.push(result);
        }
        results
    }

    /// The rest of an admission once its participant row is stored.
    async fn admitted(
        &mut self,
        pid: String,
        req: Box<JoinRequest>,
        session_id: &str,
        tracks: &HashMap<String, Vec<TrackInfo>>,
        started: Instant,
        burst: usize,
    ) -> Result<Joined, (&'static str, String)> {
        let member = Member {
            name: req.name.clone(),
            external_id: req.external_id.clone(),
            role: req.role.clone(),
            permissions: req.permissions.clone(),
            out: req.out.clone(),
            conn: req.conn,
            resume_token: super::random_secret(),
            token_fingerprint: req.token_fingerprint.clone(),
            token_exp: req.token_exp,
            disconnected_since: None,
            worker: self.place_member(),
            receives: req.client_kind != super::http_media::Protocol::Whip.name()
                && req.view.is_none(),
            view: req.view.clone(),
            // Its breakout may have closed while it waited in the lobby.
            breakout: req.breakout.clone().filter(|b| self.breakout_is_open(b)),
        };
        if let Some(b) = &member.breakout
            && let Err(e) = self.sig.db.set_participant_breakout(&pid, b).await
        {
            tracing::error!(error = %e, "could not record a participant's breakout");
        }
        let me = self.participant_info(&pid, &member);
        let others = self.others(tracks, &pid, member.breakout.as_deref());
        let _ = member.out.try_send(ServerMsg::Joined {
            v: super::wire::PROTOCOL_VERSION,
            participant: me.clone(),
            permissions: member.permissions.clone(),
            room: RoomInfo {
                id: self.room_id.clone(),
                friendly_url: self.friendly_url.clone(),
                settings: self.settings.clone(),
            },
            session_id: session_id.to_string(),
            participants: others,
            resume_token: member.resume_token.clone(),
            resumed: false,
            ice_servers: self.sig.ice_servers_for(&self.room_id, &pid),
        });
        // Media only after `joined` is queued: the worker's first offer
        // must not overtake it.
        if let Err(refusal) = self.attach_media(&pid, &member) {
            // Stored as joined a moment ago: record that it never got in.
            if let Err(e) = self.sig.db.participant_left(&pid, "disconnected").await {
                tracing::error!(error = %e, "could not record a refused join");
            }
            return Err(refusal);
        }
        for m in self.members.values() {
            let _ = m.out.try_send(ServerMsg::ParticipantJoined {
                participant: me.clone(),
            });
        }
        // Moderators joining see who is waiting.
        if member.may("admit_participants") {
            for (id, w) in &self.lobby {
                let _ = member.out.try_send(ServerMsg::LobbyRequest {
                    participant: LobbyEntry {
                        id: id.clone(),
                        name: w.req.name.clone(),
                    },
                });
            }
        }
        tracing::info!(
            room = %self.friendly_url,
            participant = %pid,
            name = %member.name,
            role = %member.role,
            session = %session_id,
            admit_ms = started.elapsed().as_millis() as u64,
            admitted_with = burst,
            "participant joined"
        );
        metrics::counter!("convene_participants_joined_total").increment(1);
        let worker = member.worker;
        self.members.insert(pid.clone(), member);
        // The first member's worker now holds the room: it feeds the
        // transcriber, if the room wants one.
        self.start_transcriber(session_id, worker);
        // Catch-up state (chat history, Q&A, running polls...), queued
        // behind `joined` on the participant's outbound channel.
        let state = self.collab_state(&pid, session_id).await;
        self.tell(&pid, state);
        self.breakouts_catch_up(&pid);
        let worker = self.members.get(&pid).map_or(self.worker, |m| m.worker);
        Ok(Joined {
            participant_id: pid,
            worker,
        })
    }

    async fn resume(
        &mut self,
        pid: &str,
        req: Box<JoinRequest>,
    ) -> Result<Joined, (&'static str, String)> {
        let session_id = self.ensure_session().await?;
        let Some(m) = self.members.get_mut(pid) else {
            return Err(("RESUME_FAILED", "nothing to resume".into()));
        };
        if m.conn != req.conn && m.disconnected_since.is_none() {
            // The old connection is still open: it is replaced.
            let _ = m.out.try_send(ServerMsg::error(
                "REPLACED",
                "this participant connected again elsewhere",
                true,
            ));
        }
        m.out = req.out.clone();
        m.conn = req.conn;
        m.disconnected_since = None;
        m.resume_token = super::random_secret();
        let snapshot = Member {
            name: m.name.clone(),
            external_id: m.external_id.clone(),
            role: m.role.clone(),
            permissions: m.permissions.clone(),
            out: m.out.clone(),
            conn: m.conn,
            resume_token: m.resume_token.clone(),
            token_fingerprint: m.token_fingerprint.clone(),
            token_exp: m.token_exp,
            disconnected_since: None,
            worker: m.worker,
            receives: m.receives,
            view: m.view.clone(),
            breakout: m.breakout.clone(),
        };
        let tracks = self.room_tracks().await;
        let others = self.others(&tracks, pid, snapshot.breakout.as_deref());
        let _ = snapshot.out.try_send(ServerMsg::Joined {
            v: super::wire::PROTOCOL_VERSION,
            participant: self.participant_info(pid, &snapshot),
            permissions: snapshot.permissions.clone(),
            room: RoomInfo {
                id: self.room_id.clone(),
                friendly_url: self.friendly_url.clone(),
                settings: self.settings.clone(),
            },
            session_id: session_id.clone(),
            participants: others,
            resume_token: snapshot.resume_token.clone(),
            resumed: true,
            ice_servers: self.sig.ice_servers_for(&self.room_id, pid),
        });
        // What happened while the connection was gone (chat, polls, hands).
        let state = self.collab_state(pid, &session_id).await;
        let _ = snapshot.out.try_send(ServerMsg::Live(Arc::new(state)));
        self.breakouts_catch_up(pid);
        // Media only after `joined` is queued: the worker's first offer
        // must not overtake it.
        self.attach_media(pid, &snapshot)?;
        tracing::info!(room = %self.friendly_url, participant = %pid, "participant resumed");
        Ok(Joined {
            participant_id: pid.to_string(),
            worker: snapshot.worker,
        })
    }

    async fn disconnected(&mut self, pid: &str, conn: u64, leave: bool) {
        if let Some(w) = self.lobby.remove(pid) {
            drop(w);
            for m in self.members.values() {
                if m.may("admit_participants") {
                    let _ = m.out.try_send(ServerMsg::LobbyResolved {
                        participant_id: pid.to_string(),
                        admitted: false,
                    });
                }
            }
            return;
        }
        let Some(m) = self.members.get_mut(pid) else {
            return;
        };
        if m.conn != conn {
            return; // an older connection of a resumed participant
        }
        let _ = self.sig.media.send(
            m.worker,
            Command::RemovePeer {
                participant_id: pid.to_string(),
            },
        );
        if leave {
            self.depart(pid, "left").await;
        } else {
            tracing::info!(room = %self.friendly_url, participant = %pid, "connection lost; keeping the place for 20 s");
            m.disconnected_since = Some(Instant::now());
            self.retap_transcriber();
        }
    }

    /// Removes a member for good.
    pub(super) async fn depart(&mut self, pid: &str, reason: &'static str) {
        let Some(m) = self.members.remove(pid) else {
            return;
        };
        if self.hands.iter().any(|h| h.participant_id == pid) {
            self.set_hand(pid, false, None).await;
        }
        self.presenter_left(pid).await;
        let _ = self.sig.media.send(
            m.worker,
            Command::RemovePeer {
                participant_id: pid.to_string(),
            },
        );
        if let Err(e) = self.sig.db.participant_left(pid, reason).await {
            tracing::error!(error = %e, "could not record a departure");
        }
        for other in self.members.values() {
            let _ = other.out.try_send(ServerMsg::ParticipantLeft {
                participant_id: pid.to_string(),
                reason,
            });
        }
        tracing::info!(room = %self.friendly_url, participant = %pid, name = %m.name, reason, "participant left");
        self.retap_transcriber();
    }

    async fn end_session(&mut self, reason: &'static str) {
        self.finish_recording("session_ended").await;
        self.finish_restreams("session_ended").await;
        self.finish_transcriber();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            if let Some(m) = self.members.get(id) {
                let _ = m.out.try_send(ServerMsg::error(
                    "SESSION_ENDED",
                    format!("the session has ended ({reason})"),
                    true,
                ));
            }
        }
        for id in ids {
            self.depart(&id, "session_ended").await;
        }
        for (_, w) in self.lobby.drain() {
            let _ = w
                .decision
                .send(Err(("SESSION_ENDED", "the session has ended".into())));
        }
        if let Some((session_id, _)) = self.session.take() {
            self.end_session_record(&session_id, reason).await;
        }
    }

    async fn end_session_record(&mut self, session_id: &str, reason: &str) {
        self.breakouts_ended().await;
        let media = self.counters.snapshot().since(&self.session_baseline);
        let media = convene_api::store::sessions::SessionMedia {
            packets_in: media.rtp_in,
            bytes_in: media.bytes_in,
            packets_out: media.rtp_forwarded,
            bytes_out: media.bytes_forwarded,
        };
        match self
            .sig
            .db
            .end_session_with(session_id, reason, &media)
            .await
        {
            Ok(()) => {
                tracing::info!(room = %self.friendly_url, session = %session_id, reason, "session ended")
            }
            Err(e) => tracing::error!(error = %e, "could not record the end of a session"),
        }
    }

    async fn tick(&mut self) {
        self.quiz_timers().await;
        self.breakout_timers().await;
        let now = Instant::now();
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.disconnected_since
                    .is_some_and(|t| now.duration_since(t) >= DEPARTURE_WINDOW)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.depart(&id, "disconnected").await;
        }
        let length = self
            .settings
            .get("session_length")
            .and_then(Value::as_u64)
            .unwrap_or(1440);
        if let Some((_, started)) = &self.session
            && now.duration_since(*started) >= Duration::from_secs(length * 60)
        {
            self.end_session("session_length reached").await;
        }
    }
}
