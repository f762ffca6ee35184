//! The signaling protocol's JSON messages (docs/signaling.md), version 1.
//!
//! These are the only serde types of the WebSocket edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted client message.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Where a published track comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Microphone,
    Camera,
    Screen,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Microphone => "microphone",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }
}

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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackInfo {
    pub id: String,
    pub kind: &'static str,
    pub source: Source,
    pub muted: bool,
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
pub struct OfferedTrack {
    pub mid: String,
    pub track_id: String,
    pub participant_id: String,
    pub kind: &'static str,
    pub source: Source,
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
