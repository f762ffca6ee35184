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
use super::collab::{self, CollabMsg, CollabRecords};
use super::outbox::Outbox;
use super::wire::{LobbyEntry, ParticipantInfo, RoomInfo, ServerMsg, TrackInfo};
use crate::rtc::{Command, RoomCounters, RoomCountersSnapshot, WorkerId};

mod join;

/// How long a participant whose connection dropped keeps its place.
pub const DEPARTURE_WINDOW: Duration = Duration::from_secs(20);

/// The room's housekeeping tick.
const TICK: Duration = Duration::from_secs(1);

/// A tick later than its second by more than this came after a stall of
/// the server (a paused VM, a starved host): that time is not counted
/// against members who are away (as the connection's deadlines do).
const STALL_SLACK: Duration = Duration::from_secs(1);

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
    /// The cluster node whose media plane should keep its peer (`join`'s
    /// `via`; `rtc::nodes`).
    pub via: Option<String>,
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
    /// This node drains: the room now runs on `node` at `url`; tell every
    /// member to go there and end the session here.
    Move {
        url: String,
        node: String,
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
    /// What ran when a draining node handed this room's session over (a
    /// recording, restreams): it goes on here once a member is in.
    pub(super) handed_over: convene_api::store::sessions::HandedOver,
    /// Running RTMP restreams.
    pub(super) restreams: Vec<super::restream::ActiveRestream>,
    /// The session's transcriber (`transcription_enabled`).
    pub(super) transcriber: Option<crate::voice::transcriber::TranscriberHandle>,
    /// The library file being presented (`presentation.rs`).
    pub(super) presentation: Option<convene_api::live_events::Presentation>,
    /// The open (or closing) breakout rooms (`breakouts.rs`).
    pub(super) breakouts: Option<super::breakouts::LiveBreakouts>,
    pub(super) rx: mpsc::Receiver<RoomMsg>,
    /// When the last tick ran (a stall shows as a late one).
    last_tick: Instant,
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
            handed_over: Default::default(),
            restreams: Vec::new(),
            transcriber: None,
            presentation: None,
            breakouts: None,
            rx,
            last_tick: Instant::now(),
        }
    }

    pub async fn run(mut self) {
        self.load_bans().await;
        let mut tick = tokio::time::interval(TICK);
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
                self.finish_transcriber(false);
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
            RoomMsg::Move { url, node } => {
                self.end_session_moving("node_drained", Some((url, node)))
                    .await
            }
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
    }

    async fn end_session(&mut self, reason: &'static str) {
        self.end_session_moving(reason, None).await;
    }

    /// Ends the session; with `to` (a drain), its members are told the room
    /// runs on that node now (`moved`) instead of that it ended, they leave
    /// with `reason`, and the session is handed over rather than ended: the
    /// room on the other node goes on with it (`ensure_session`).
    async fn end_session_moving(&mut self, reason: &'static str, to: Option<(String, String)>) {
        // A recording running at a move goes on as a new recording on the
        // room's new node, and its restreams start again there; here they
        // end (the recording's files complete).
        let running = convene_api::store::sessions::HandedOver {
            recording: to.as_ref().and(self.recording.as_ref()).map(|r| {
                r.started_by
                    .clone()
                    .unwrap_or_else(|| super::recording::BY_API.into())
            }),
            restreams: to.as_ref().and_then(|_| self.restreams_to_hand_over()),
        };
        let why = if to.is_some() {
            "node_drained"
        } else {
            "session_ended"
        };
        self.finish_recording(why).await;
        self.finish_restreams(why).await;
        self.finish_transcriber(to.is_some());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            if let Some(m) = self.members.get(id) {
                let _ = m.out.try_send(match &to {
                    Some((url, node)) => ServerMsg::Moved {
                        url: url.clone(),
                        node: node.clone(),
                        via: None,
                    },
                    None => ServerMsg::error(
                        "SESSION_ENDED",
                        format!("the session has ended ({reason})"),
                        true,
                    ),
                });
            }
        }
        let departure = if to.is_some() {
            reason
        } else {
            "session_ended"
        };
        for id in ids {
            self.depart(&id, departure).await;
        }
        for (_, w) in self.lobby.drain() {
            let _ = w
                .decision
                .send(Err(("SESSION_ENDED", "the session has ended".into())));
        }
        if let Some((session_id, _)) = self.session.take() {
            if to.is_some() {
                self.hand_over_record(&session_id, &running).await;
            } else {
                self.end_session_record(&session_id, reason).await;
            }
        }
    }

    /// The media this node counted for the session, so far.
    fn session_media(&self) -> convene_api::store::sessions::SessionMedia {
        let media = self.counters.snapshot().since(&self.session_baseline);
        convene_api::store::sessions::SessionMedia {
            packets_in: media.rtp_in,
            bytes_in: media.bytes_in,
            packets_out: media.rtp_forwarded,
            bytes_out: media.bytes_forwarded,
        }
    }

    /// Hands the session over to the node the room moves to (a drain).
    async fn hand_over_record(
        &mut self,
        session_id: &str,
        running: &convene_api::store::sessions::HandedOver,
    ) {
        self.breakouts_ended().await;
        let media = self.session_media();
        match self
            .sig
            .db
            .hand_over_session(session_id, &media, running)
            .await
        {
            Ok(()) => {
                tracing::info!(room = %self.friendly_url, session = %session_id, "session handed over to the room's new node")
            }
            Err(e) => tracing::error!(error = %e, "could not record a session's hand-over"),
        }
    }

    async fn end_session_record(&mut self, session_id: &str, reason: &str) {
        self.breakouts_ended().await;
        let media = self.session_media();
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
        // Time the server did not run is not time away: a stall moves every
        // hold on by its length, so a member whose connection dropped just
        // before it still has the rest of its 20 s to come back.
        let stalled = now
            .saturating_duration_since(self.last_tick)
            .saturating_sub(TICK + STALL_SLACK);
        self.last_tick = now;
        if !stalled.is_zero() {
            tracing::info!(room = %self.friendly_url, stalled_ms = stalled.as_millis() as u64,
                "the room's tick came late; holds of members who are away moved on");
            for m in self.members.values_mut() {
                if let Some(t) = m.disconnected_since.as_mut() {
                    *t += stalled;
                }
            }
        }
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
