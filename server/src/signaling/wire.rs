//! The signaling protocol's JSON messages (docs/signaling.md), version 1.
//!
//! These are the only serde types of the WebSocket edge.

use std::sync::Arc;

use convene_api::live_events::LiveEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted client message. A browser's answer carries one
/// m-section (about 2.5 KiB in Chromium) per track it receives: 95 KiB in a
/// room of twenty, about 500 KiB for a hundred cameras and microphones.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest relayed `e2ee` payload (serialized): a P-256 public key with
/// its MAC, or one wrapped media key, is well under 1 KiB.
pub const MAX_E2EE_PAYLOAD: usize = 4096;

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
        /// The room password, for a join without a token to a room that
        /// has one.
        #[serde(default)]
        password: Option<String>,
        /// The secret of a guest link (`?guest=` of the page), for a join
        /// without a token.
        #[serde(default)]
        guest: Option<String>,
        /// The cluster node that sent this client here (`moved`'s `via`):
        /// its media stays on that node when it is linked to this one.
        #[serde(default)]
        via: Option<String>,
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
    /// Give a participant another of the room's roles (`manage_roles`).
    SetRole {
        participant_id: String,
        role: String,
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
    /// An end-to-end encryption message (docs/e2ee.md): a public key
    /// announcement (`to` absent: every other member) or a wrapped media
    /// key for one member. Opaque to the server, which relays it only in
    /// an E2EE room and only up to [`MAX_E2EE_PAYLOAD`] bytes.
    E2ee {
        #[serde(default)]
        to: Option<String>,
        payload: Value,
    },
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
    /// The breakout it is in (absent: the main room).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakout_id: Option<String>,
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
        /// `RTCConfiguration.iceServers`: TURN with a credential for this
        /// room and participant (absent when the server has no TURN).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<crate::turn::IceServer>,
    },
    Lobby {
        message: String,
    },
    /// The room runs on another node of the cluster: join there (the same
    /// join message, on `url`'s `/rtc`). The socket closes after it.
    Moved {
        /// The node's base URL (`--node-url`).
        url: String,
        node: String,
        /// The node that sends the client away: a client joins with it
        /// (`join`'s `via`) so that its media stays there.
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<String>,
    },
    Error {
        code: &'static str,
        message: String,
        fatal: bool,
        /// Seconds to wait before trying again (`PASSWORD_RATE_LIMITED`).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
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
    /// A relayed end-to-end encryption message of participant `from`
    /// (docs/e2ee.md); `payload` is what the sender sent, unread.
    E2ee {
        from: String,
        payload: Arc<Value>,
    },
    /// A participant's role changed; the participant itself also gets its
    /// new permissions.
    RoleChanged {
        participant_id: String,
        role: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        permissions: Option<Map<String, Value>>,
    },
    /// A room event (chat, hands, polls, Q&A, quizzes, recording; from the
    /// room or the REST API): `convene_api::live_events`, which carries its
    /// own `type`. Shared, so a room's fan-out clones a pointer.
    #[serde(untagged)]
    Live(Arc<LiveEvent>),
}

impl ServerMsg {
    pub fn error(code: &'static str, message: impl Into<String>, fatal: bool) -> ServerMsg {
        ServerMsg::Error {
            code,
            message: message.into(),
            fatal,
            retry_after: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// How many variants `ServerMsg` has: `example` below builds each.
    const VARIANTS: usize = 22;

    /// One message of every kind; a new variant fails to compile here
    /// until it has an example (and a bumped `VARIANTS`).
    fn example(i: usize) -> ServerMsg {
        let who = || ParticipantInfo {
            id: "p1".into(),
            name: "Ann".into(),
            role: "attendee".into(),
            external_id: None,
            breakout_id: None,
            tracks: None,
        };
        let track = || TrackInfo {
            id: "t1".into(),
            kind: "video",
            source: Source::Camera,
            muted: false,
        };
        let msg = match i {
            0 => ServerMsg::Joined {
                v: PROTOCOL_VERSION,
                participant: who(),
                permissions: Map::new(),
                room: RoomInfo {
                    id: "r".into(),
                    friendly_url: "r".into(),
                    settings: Map::new(),
                },
                session_id: "s".into(),
                participants: vec![who()],
                resume_token: "x".into(),
                resumed: false,
                ice_servers: Vec::new(),
            },
            1 => ServerMsg::Lobby {
                message: "wait".into(),
            },
            2 => ServerMsg::error("ROOM_FULL", "full", true),
            3 => ServerMsg::Offer {
                sdp: "v=0".into(),
                tracks: vec![],
            },
            4 => ServerMsg::Answer { sdp: "v=0".into() },
            5 => ServerMsg::OfferRejected {
                code: "FORBIDDEN",
                message: "no".into(),
            },
            6 => ServerMsg::ParticipantJoined { participant: who() },
            7 => ServerMsg::ParticipantLeft {
                participant_id: "p1".into(),
                reason: "left",
            },
            8 => ServerMsg::TrackPublished {
                participant_id: "p1".into(),
                track: track(),
            },
            9 => ServerMsg::TrackUnpublished {
                participant_id: "p1".into(),
                track_id: "t1".into(),
            },
            10 => ServerMsg::TrackMuted {
                participant_id: "p1".into(),
                track_id: "t1".into(),
                source: Source::Camera,
                muted: true,
                by: None,
            },
            11 => ServerMsg::MutedByModerator {
                source: None,
                by: "p2".into(),
            },
            12 => ServerMsg::ActiveSpeakers { speakers: vec![] },
            13 => ServerMsg::ConnectionQuality {
                participant_id: "p1".into(),
                quality: "good",
            },
            14 => ServerMsg::LobbyRequest {
                participant: LobbyEntry {
                    id: "p3".into(),
                    name: "Bo".into(),
                },
            },
            15 => ServerMsg::LobbyResolved {
                participant_id: "p3".into(),
                admitted: true,
            },
            16 => ServerMsg::Ping,
            17 => ServerMsg::Pong,
            18 => ServerMsg::RoleChanged {
                participant_id: "p1".into(),
                role: "speaker".into(),
                permissions: None,
            },
            19 => ServerMsg::E2ee {
                from: "p1".into(),
                payload: Arc::new(serde_json::json!({"kind": "key"})),
            },
            20 => ServerMsg::Moved {
                url: "https://node-2.example.org".into(),
                node: "node-2".into(),
                via: Some("node-1".into()),
            },
            _ => ServerMsg::Live(Arc::new(LiveEvent::PollVoted {
                poll_id: "q".into(),
            })),
        };
        // Exhaustive on purpose (see above).
        let n = match &msg {
            ServerMsg::Joined { .. } => 0,
            ServerMsg::Lobby { .. } => 1,
            ServerMsg::Error { .. } => 2,
            ServerMsg::Offer { .. } => 3,
            ServerMsg::Answer { .. } => 4,
            ServerMsg::OfferRejected { .. } => 5,
            ServerMsg::ParticipantJoined { .. } => 6,
            ServerMsg::ParticipantLeft { .. } => 7,
            ServerMsg::TrackPublished { .. } => 8,
            ServerMsg::TrackUnpublished { .. } => 9,
            ServerMsg::TrackMuted { .. } => 10,
            ServerMsg::MutedByModerator { .. } => 11,
            ServerMsg::ActiveSpeakers { .. } => 12,
            ServerMsg::ConnectionQuality { .. } => 13,
            ServerMsg::LobbyRequest { .. } => 14,
            ServerMsg::LobbyResolved { .. } => 15,
            ServerMsg::Ping => 16,
            ServerMsg::Pong => 17,
            ServerMsg::RoleChanged { .. } => 18,
            ServerMsg::E2ee { .. } => 19,
            ServerMsg::Moved { .. } => 20,
            ServerMsg::Live(_) => 21,
        };
        assert_eq!(n, i.min(VARIANTS - 1));
        msg
    }

    /// Every server message is documented in docs/signaling.md as
    /// `{"type": "<kind>", ...}` (room events in their own table, checked
    /// by `convene_api::live_events`).
    #[test]
    fn every_server_message_is_documented() {
        let doc = include_str!("../../../docs/signaling.md");
        // The last example is a room event, documented in its table.
        for i in 0..VARIANTS - 1 {
            let json = serde_json::to_value(example(i)).unwrap();
            let kind = json["type"].as_str().expect("every message has a type");
            assert!(
                doc.contains(&format!("\"type\": \"{kind}\"")),
                "docs/signaling.md does not show a `{kind}` message"
            );
        }
    }

    /// A room event goes out as the event itself, not wrapped.
    #[test]
    fn a_room_event_is_sent_as_is() {
        let json = serde_json::to_value(example(VARIANTS - 1)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "poll_voted", "poll_id": "q"})
        );
    }
}
