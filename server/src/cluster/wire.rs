//! What nodes tell each other through Redis, and how it is signed.
//!
//! Every value a node writes for the others (its heartbeat, a request, a
//! reply) is an [`Envelope`]: the sender, the body as a JSON string, and an
//! HMAC-SHA256 over both with the cluster secret. A reader drops what does
//! not verify, so a node started with another secret is neither counted as
//! a node nor obeyed. Bodies are bounded ([`MAX_BODY`]).

use convene_api::breakouts::BreakoutCommand;
use convene_api::live::{
    BreakoutOutcome, LiveMedia, ModerationAction, ModerationRefusal, RecordingAction,
    RecordingRefusal,
};
use convene_api::live_events::LiveEvent;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Largest body a node accepts (a chat message with its room is far less).
pub const MAX_BODY: usize = 256 * 1024;

/// A signed message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    /// The sending node.
    pub from: String,
    /// The message, as JSON text.
    pub body: String,
    /// Hex HMAC-SHA256 of `from`, a newline and `body`.
    pub mac: String,
}

/// Why an envelope was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Unreadable {
    NotAnEnvelope,
    TooLarge,
    BadSignature,
    BadBody,
}

fn mac(secret: &[u8], from: &str, body: &str) -> Hmac<Sha256> {
    let mut m = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes a key of any length.
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    m.update(from.as_bytes());
    m.update(b"\n");
    m.update(body.as_bytes());
    m
}

impl Envelope {
    /// Signs `msg` as `from`.
    pub fn seal<T: Serialize>(secret: &[u8], from: &str, msg: &T) -> String {
        let body = serde_json::to_string(msg).unwrap_or_default();
        let tag = hex::encode(mac(secret, from, &body).finalize().into_bytes());
        serde_json::to_string(&Envelope {
            from: from.to_string(),
            body,
            mac: tag,
        })
        .unwrap_or_default()
    }

    /// Reads and verifies (constant-time) an envelope; the sender and the
    /// message.
    pub fn open<T: for<'de> Deserialize<'de>>(
        secret: &[u8],
        bytes: &[u8],
    ) -> Result<(String, T), Unreadable> {
        if bytes.len() > MAX_BODY * 2 {
            return Err(Unreadable::TooLarge);
        }
        let env: Envelope = serde_json::from_slice(bytes).map_err(|_| Unreadable::NotAnEnvelope)?;
        if env.body.len() > MAX_BODY {
            return Err(Unreadable::TooLarge);
        }
        let tag = hex::decode(&env.mac).map_err(|_| Unreadable::BadSignature)?;
        mac(secret, &env.from, &env.body)
            .verify_slice(&tag)
            .map_err(|_| Unreadable::BadSignature)?;
        let msg = serde_json::from_str(&env.body).map_err(|_| Unreadable::BadBody)?;
        Ok((env.from, msg))
    }
}

/// What a node says about itself every heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: String,
    /// Where clients reach it (`--node-url`).
    pub url: String,
    /// Rooms running on it.
    pub rooms: usize,
    /// Participants connected to it.
    pub participants: usize,
    /// It takes no new rooms (`convene drain`).
    #[serde(default)]
    pub draining: bool,
    /// Where other nodes dial its media link (`--node-link-addr`).
    #[serde(default)]
    pub link: Option<String>,
}

/// What one node asks of the node a room runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    Broadcast {
        event: Box<LiveEvent>,
    },
    EndSession,
    Transcription {
        enabled: bool,
    },
    Hand {
        participant_id: String,
        raised: bool,
    },
    Moderate {
        participant_id: String,
        action: ModerationAction,
    },
    Recording {
        action: RecordingAction,
    },
    Media,
    Breakouts {
        command: BreakoutCommand,
    },
    Restream {
        action: RestreamCall,
    },
    /// The phone calls of the room a node's SIP endpoint holds (asked of
    /// every node: a call lives where its SIP request arrived).
    Phone {
        action: PhoneAction,
    },
    /// A phone call that arrived on another node joins the room here: the
    /// room's node negotiates its leg like a WHIP publisher's (`offer`),
    /// its peer kept on `via` when linked.
    PhoneLeg {
        team_id: String,
        name: String,
        offer: String,
        via: Option<String>,
    },
    /// A leg joined through [`Call::PhoneLeg`] leaves, or its moderator's
    /// mute is lifted.
    PhoneLegControl {
        resource: String,
        action: LegAction,
    },
}

/// What a node does with its own calls of a room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "phone", rename_all = "snake_case")]
pub enum PhoneAction {
    List,
    EndRoom,
    SetMuted { call_id: String, muted: bool },
}

/// What happens to a leg kept on the room's node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LegAction {
    Leave,
    Unmute,
}

/// A phone call as another node reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WirePhoneCall {
    pub call_id: String,
    pub name: String,
    pub joined: bool,
    pub muted: bool,
}

/// A restream's start or stop for the room's node. The stream key crosses
/// Redis sealed ([`super::seal`]: ChaCha20-Poly1305 under a key derived from
/// the cluster secret), never in clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "restream", rename_all = "snake_case")]
pub enum RestreamCall {
    Start {
        provider: Option<String>,
        server_url: String,
        sealed_key: String,
    },
    Stop {
        server_url: Option<String>,
        sealed_key: Option<String>,
    },
}

/// A running restream as another node reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireRestream {
    pub id: String,
    pub room_id: String,
    pub provider: Option<String>,
    pub server_url: String,
    pub status: String,
    pub started_at: String,
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// Whether the room was live there and took it.
    Done {
        live: bool,
    },
    /// A moderation's outcome (`None`: the room is not live there).
    Moderated {
        outcome: Option<Result<(), ModerationRefusal>>,
    },
    /// A recording's start or stop (`None`: the room is not live there).
    Recorded {
        outcome: Option<Result<String, RecordingRefusal>>,
    },
    Media {
        media: Option<LiveMedia>,
    },
    /// A breakout command's outcome (`None`: the room is not live there).
    Breakouts {
        outcome: Option<BreakoutOutcome>,
    },
    /// A restream's start or stop (`None`: the room is not live there).
    Restreamed {
        outcome: Option<Result<Vec<WireRestream>, RecordingRefusal>>,
    },
    /// A node's calls of the room (`List`), how many it ended (`EndRoom`),
    /// or the call it muted or unmuted (`SetMuted`; none when it holds no
    /// such call).
    Phone {
        calls: Vec<WirePhoneCall>,
        ended: usize,
    },
    /// A leg's SDP answer and its WHIP resource on the room's node, or why
    /// the room refused it.
    PhoneLeg {
        outcome: Result<(String, String), String>,
    },
}

/// A message on a node's channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMsg {
    Request {
        id: u64,
        room_id: String,
        #[serde(flatten)]
        call: Call,
    },
    Reply {
        id: u64,
        #[serde(flatten)]
        answer: Answer,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_with_the_same_secret_only() {
        let msg = NodeMsg::Request {
            id: 7,
            room_id: "r".into(),
            call: Call::Hand {
                participant_id: "p".into(),
                raised: true,
            },
        };
        let sealed = Envelope::seal(b"0123456789abcdef", "node-a", &msg);
        let (from, back): (String, NodeMsg) =
            Envelope::open(b"0123456789abcdef", sealed.as_bytes()).unwrap();
        assert_eq!(from, "node-a");
        assert!(matches!(
            back,
            NodeMsg::Request {
                id: 7,
                call: Call::Hand { raised: true, .. },
                ..
            }
        ));
        assert_eq!(
            Envelope::open::<NodeMsg>(b"another secret!!", sealed.as_bytes()).unwrap_err(),
            Unreadable::BadSignature
        );
    }

    #[test]
    fn a_changed_sender_or_body_does_not_verify() {
        let sealed = Envelope::seal(b"k", "node-a", &Answer::Done { live: true });
        let mut env: Envelope = serde_json::from_str(&sealed).unwrap();
        env.from = "node-b".into();
        let forged = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            Envelope::open::<Answer>(b"k", &forged).unwrap_err(),
            Unreadable::BadSignature
        );
        let mut env: Envelope = serde_json::from_str(&sealed).unwrap();
        env.body = r#"{"answer":"done","live":false}"#.into();
        let forged = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            Envelope::open::<Answer>(b"k", &forged).unwrap_err(),
            Unreadable::BadSignature
        );
    }

    #[test]
    fn garbage_and_oversized_input_is_dropped() {
        for bytes in [&b""[..], b"{", b"null", b"{\"from\":1}", &[0xff; 64]] {
            assert_eq!(
                Envelope::open::<Answer>(b"k", bytes).unwrap_err(),
                Unreadable::NotAnEnvelope
            );
        }
        let big = vec![b' '; MAX_BODY * 2 + 1];
        assert_eq!(
            Envelope::open::<Answer>(b"k", &big).unwrap_err(),
            Unreadable::TooLarge
        );
        // Signed but not a message of this kind.
        let sealed = Envelope::seal(b"k", "a", &"just a string");
        assert_eq!(
            Envelope::open::<Answer>(b"k", sealed.as_bytes()).unwrap_err(),
            Unreadable::BadBody
        );
    }

    #[test]
    fn a_moderation_refusal_crosses_intact() {
        let answer = Answer::Moderated {
            outcome: Some(Err(ModerationRefusal::UnknownRole("x".into()))),
        };
        let sealed = Envelope::seal(
            b"k",
            "a",
            &NodeMsg::Reply {
                id: 1,
                answer: answer.clone(),
            },
        );
        let (_, back): (String, NodeMsg) = Envelope::open(b"k", sealed.as_bytes()).unwrap();
        match back {
            NodeMsg::Reply { id: 1, answer: got } => assert_eq!(got, answer),
            other => panic!("{other:?}"),
        }
    }
}
