//! The seam between the REST API and live rooms.
//!
//! REST handlers that must reach participants in a running session (chat sent
//! as the API, eyeson-style messages, published poll results, raised hands...)
//! call [`LiveRooms`]. The server's signaling layer implements it; the API
//! crate never depends on the server.

use std::fmt::Debug;

use crate::live_events::LiveEvent;

/// An answer a live room gives later (the room may run on another node of a
/// cluster, so asking it is asynchronous).
pub type Later<'a, T> = futures_util::future::BoxFuture<'a, T>;

/// A reply the room actor sends when it has done what it was asked.
pub type Reply<T> = tokio::sync::oneshot::Receiver<T>;

/// Where everyone is after a breakout command, or why it was refused.
pub type BreakoutOutcome =
    Result<Vec<crate::breakouts::Placement>, crate::breakouts::BreakoutRefusal>;

/// Delivery of events into live rooms.
///
/// Every method names the room by id and may be answered by this process
/// or, in a cluster (`--redis-url`), by the node the room runs on.
pub trait LiveRooms: Send + Sync + Debug {
    /// Sends `event` (a signaling server message, see docs/signaling.md;
    /// serialised with [`LiveEvent::to_json`]) to every participant connected
    /// to the room's live session. Answers `false` when the room has no live
    /// session, so the caller can answer 409.
    fn broadcast<'a>(&'a self, room_id: &'a str, event: LiveEvent) -> Later<'a, bool>;

    /// Ends the room's live session now (every participant is disconnected
    /// with `SESSION_ENDED`). Answers `false` when no session is live.
    fn end_session<'a>(&'a self, _room_id: &'a str) -> Later<'a, bool> {
        Box::pin(std::future::ready(false))
    }

    /// Turns live transcription of the room's live session on or off at once
    /// (its `transcription_enabled` changed). Answers `false` when no
    /// session is live.
    fn transcription<'a>(&'a self, _room_id: &'a str, _enabled: bool) -> Later<'a, bool> {
        Box::pin(std::future::ready(false))
    }

    /// Raises or lowers a participant's hand in the room's live session.
    /// Answers `false` when no session is live.
    fn set_hand<'a>(
        &'a self,
        _room_id: &'a str,
        _participant_id: &'a str,
        _raised: bool,
    ) -> Later<'a, bool> {
        Box::pin(std::future::ready(false))
    }

    /// Media counters of the room's live session so far (`None` when the
    /// session is not live).
    fn media<'a>(&'a self, _room_id: &'a str) -> Later<'a, Option<LiveMedia>> {
        Box::pin(std::future::ready(None))
    }

    /// Starts or stops the recording of the room's live session. `None`
    /// when no session is live; otherwise the answer arrives on the
    /// receiver: the recording's id, or a refusal.
    fn recording<'a>(
        &'a self,
        _room_id: &'a str,
        _action: RecordingAction,
    ) -> Later<'a, Option<Reply<Result<String, RecordingRefusal>>>> {
        Box::pin(std::future::ready(None))
    }

    /// Starts or stops restreaming the room's live session. `None` when no
    /// session is live in this process; otherwise the answer arrives on the
    /// receiver: the restreams started or stopped, or a refusal.
    fn restream(
        &self,
        _room_id: &str,
        _action: RestreamAction,
    ) -> Option<Reply<Result<Vec<RestreamInfo>, RecordingRefusal>>> {
        None
    }

    /// Moderates a participant of the room's live session (mute, remove,
    /// role change) through the room actor's own moderation code, with the
    /// API as the moderator. `None` when no session is live; otherwise the
    /// answer arrives on the receiver.
    fn moderate<'a>(
        &'a self,
        _room_id: &'a str,
        _participant_id: &'a str,
        _action: ModerationAction,
    ) -> Later<'a, Option<Reply<Result<(), ModerationRefusal>>>> {
        Box::pin(std::future::ready(None))
    }

    /// Opens, moves between, broadcasts to or closes the breakout rooms of
    /// the room's live session (`crate::breakouts`). `None` when no session
    /// is live in this process; otherwise the answer arrives on the
    /// receiver: where every live participant is afterwards, or a refusal.
    fn breakouts<'a>(
        &'a self,
        _room_id: &'a str,
        _command: crate::breakouts::BreakoutCommand,
    ) -> Later<'a, Option<Reply<BreakoutOutcome>>> {
        Box::pin(std::future::ready(None))
    }
}

/// What a moderator (a participant over signaling, or the API) does to a
/// live participant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModerationAction {
    /// Mute one source (`None`: every source) as `mute_participant` does.
    Mute(Option<MuteSource>),
    /// Remove from the session, with the ban a signaling removal stores.
    Remove,
    /// Give the participant another of the room's roles.
    SetRole(String),
}

/// A source a moderator mutes. REST also accepts `audio` and `video`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MuteSource {
    #[serde(alias = "audio")]
    Microphone,
    #[serde(alias = "video")]
    Camera,
    Screen,
}

/// Why a moderation action was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModerationRefusal {
    /// The moderator's role lacks the permission.
    Forbidden(String),
    /// The participant is not in the live session.
    NotLive,
    /// The role is not one of the room's roles (or does not exist).
    UnknownRole(String),
    /// The change could not be stored.
    Internal,
}

impl ModerationRefusal {
    /// The signaling error code of the refusal (docs/signaling.md).
    pub fn code(&self) -> &'static str {
        match self {
            ModerationRefusal::Forbidden(_) => "FORBIDDEN",
            ModerationRefusal::NotLive => "NOT_FOUND",
            ModerationRefusal::UnknownRole(_) => "ROLE_NOT_IN_ROOM",
            ModerationRefusal::Internal => "INTERNAL",
        }
    }

    /// What the moderator is told.
    pub fn message(&self) -> String {
        match self {
            ModerationRefusal::Forbidden(what) => format!("your role may not {what}"),
            ModerationRefusal::NotLive => "no such participant in this room".into(),
            ModerationRefusal::UnknownRole(r) => {
                format!("role '{r}' is not one of this room's roles")
            }
            ModerationRefusal::Internal => "the server could not store the change".into(),
        }
    }
}

/// What REST asks of a room's restreams.
#[derive(Debug, Clone)]
pub enum RestreamAction {
    Start(crate::domain::restream::RestreamTarget),
    Stop(crate::domain::restream::StopSelector),
}

/// A running restream, as the API shows it (never with its stream key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RestreamInfo {
    pub id: String,
    pub room_id: String,
    /// `youtube`, `vimeo`, `cloudflare`, or absent for a custom server.
    #[serde(rename = "type")]
    pub provider: Option<&'static str>,
    /// The RTMP(S) server, without the stream key.
    pub server_url: String,
    /// `starting` (connecting), `live`, `retrying` (the target dropped; the
    /// server reconnects with backoff) or `stopped`.
    pub status: &'static str,
    pub started_at: String,
}

/// What REST asks of a room's recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecordingAction {
    Start,
    Stop,
}

/// Why a recording could not be started or stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingRefusal {
    /// `CONFLICT`, `FORBIDDEN` or `INSUFFICIENT_STORAGE`.
    pub code: &'static str,
    pub message: String,
}

/// A refusal read back (from another node): a code that is not one of the
/// known ones becomes `CONFLICT`.
impl<'de> serde::Deserialize<'de> for RecordingRefusal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            code: String,
            message: String,
        }
        let w = Wire::deserialize(d)?;
        Ok(RecordingRefusal {
            code: match w.code.as_str() {
                "FORBIDDEN" => "FORBIDDEN",
                "INSUFFICIENT_STORAGE" => "INSUFFICIENT_STORAGE",
                _ => "CONFLICT",
            },
            message: w.message,
        })
    }
}

/// Media counted through the SFU for one room.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct LiveMedia {
    /// RTP packets received from publishers.
    pub packets_in: u64,
    /// RTP payload bytes received from publishers.
    pub bytes_in: u64,
    /// RTP packets forwarded to subscribers.
    pub packets_out: u64,
    /// RTP payload bytes forwarded to subscribers.
    pub bytes_out: u64,
}

/// The default when no signaling layer is attached: no room is ever live.
#[derive(Debug, Default)]
pub struct NoLiveRooms;

impl LiveRooms for NoLiveRooms {
    fn broadcast<'a>(&'a self, _room_id: &'a str, _event: LiveEvent) -> Later<'a, bool> {
        Box::pin(std::future::ready(false))
    }
}
