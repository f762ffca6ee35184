//! The signaling protocol's JSON messages (docs/signaling.md), version 1.
//!
//! These are the only serde types of the WebSocket edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted client message.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

use crate::rtc::notice::{MediaNotice, NoticeSink};
pub use crate::rtc::notice::{OfferedTrack, Source, TrackInfo};

#[derive(Debug, Clone, Deserialize)]
pub struct ClientInfo {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OfferTrack {
    pub mid: String,
    pub source: Source,
}

/// Messages from a client.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Join {
        #[serde(default)]
        v: Option<u32>,
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        resume: Option<String>,
        #[serde(default)]
        client: Option<ClientInfo>,
    },
    Offer {
        sdp: String,
        #[serde(default)]
        tracks: Vec<OfferTrack>,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
    },
    Subscribe {
        track_id: String,
        subscribe: bool,
    },
    Pause {
        track_id: String,
        paused: bool,
    },
    Layer {
        track_id: String,
        #[serde(default)]
        max_layer: Option<String>,
        #[serde(default)]
        max_height: Option<u32>,
    },
    Mute {
        source: Source,
        muted: bool,
    },
    MuteParticipant {
        participant_id: String,
        #[serde(default)]
        source: Option<Source>,
    },
    RemoveParticipant {
        participant_id: String,
    },
    Admit {
        participant_id: String,
    },
    Reject {
        participant_id: String,
    },
    Ping,
    Pong,
    Leave,
    /// Chat, hands, reactions, polls, Q&A and quizzes (handled by the room).
    #[serde(untagged)]
    Collab(super::collab::CollabMsg),
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Vec<TrackInfo>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomInfo {
    pub id: String,
    pub friendly_url: String,
    pub settings: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LobbyEntry {
    pub id: String,
    pub name: String,
}

/// Messages to a client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Joined {
        v: u32,
        participant: ParticipantInfo,
        permissions: Map<String, Value>,
        room: RoomInfo,
        session_id: String,
        participants: Vec<ParticipantInfo>,
        resume_token: String,
        resumed: bool,
    },
    Lobby {
        message: String,
    },
    Error {
        code: &'static str,
        message: String,
        fatal: bool,
    },
    Offer {
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    Answer {
        sdp: String,
    },
    OfferRejected {
        code: &'static str,
        message: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: String,
        reason: &'static str,
    },
    TrackPublished {
        participant_id: String,
        track: TrackInfo,
    },
    TrackUnpublished {
        participant_id: String,
        track_id: String,
    },
    TrackMuted {
        participant_id: String,
        track_id: String,
        source: Source,
        muted: bool,
        by: Option<String>,
    },
    MutedByModerator {
        source: Option<Source>,
        by: String,
    },
    ActiveSpeakers {
        speakers: Vec<String>,
    },
    ConnectionQuality {
        participant_id: String,
        quality: &'static str,
    },
    LobbyRequest {
        participant: LobbyEntry,
    },
    LobbyResolved {
        participant_id: String,
        admitted: bool,
    },
    Ping,
    Pong,
    /// An event built elsewhere (REST deliveries): a JSON object that carries
    /// its own `type`, sent as is.
    #[serde(untagged)]
    Event(Value),
}

impl ServerMsg {
    pub fn error(code: &'static str, message: impl Into<String>, fatal: bool) -> ServerMsg {
        ServerMsg::Error {
            code,
            message: message.into(),
            fatal,
        }
    }
}

impl From<MediaNotice> for ServerMsg {
    fn from(n: MediaNotice) -> ServerMsg {
        match n {
            MediaNotice::Offer { sdp, tracks } => ServerMsg::Offer { sdp, tracks },
            MediaNotice::Answer { sdp } => ServerMsg::Answer { sdp },
            MediaNotice::OfferRejected { code, message } => {
                ServerMsg::OfferRejected { code, message }
            }
            MediaNotice::Error { code, message } => ServerMsg::error(code, message, false),
            MediaNotice::TrackPublished {
                participant_id,
                track,
            } => ServerMsg::TrackPublished {
                participant_id,
                track,
            },
            MediaNotice::TrackUnpublished {
                participant_id,
                track_id,
            } => ServerMsg::TrackUnpublished {
                participant_id,
                track_id,
            },
            MediaNotice::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            } => ServerMsg::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            },
            MediaNotice::ActiveSpeakers { speakers } => ServerMsg::ActiveSpeakers { speakers },
            MediaNotice::ConnectionQuality {
                participant_id,
                quality,
            } => ServerMsg::ConnectionQuality {
                participant_id,
                quality,
            },
        }
    }
}

/// A participant's outbound queue takes the media plane's notices as
/// protocol messages (without waiting: a full queue drops the notice and
/// the connection resumes, see `outbox`).
impl NoticeSink for super::outbox::Outbox {
    fn notify(&self, notice: MediaNotice) -> bool {
        self.try_send(notice.into()).is_ok()
    }
}
