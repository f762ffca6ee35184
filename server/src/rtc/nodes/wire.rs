//! What crosses a node link (postcard-encoded, inside the Noise channel of
//! `link.rs`): the relay mesh's messages between the workers of two nodes
//! holding the same room, the commands of a peer one node's signaling keeps
//! on the other node's media plane, and that peer's notices back.
//!
//! Rooms are named once per connection ([`LinkMsg::RoomName`]) and then
//! numbered, so a relayed packet carries no string.

use serde::{Deserialize, Serialize};
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind};

use crate::rtc::notice::{MediaNotice, OfferedTrack, Source, TrackInfo};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum LinkMsg<'a> {
    /// Nothing to say (keeps an idle link's liveness check happy).
    Ping,
    /// From now on, room number `id` is `room` on this connection.
    RoomName {
        id: u32,
        room: String,
    },
    /// The sender's node now holds the room: holders answer `Welcome`.
    Hello {
        room: u32,
    },
    Welcome {
        room: u32,
    },
    /// The sender's node no longer holds the room.
    Goodbye {
        room: u32,
    },
    TrackAdded {
        room: u32,
        track: WireTrack,
    },
    TrackRemoved {
        room: u32,
        key: u64,
    },
    TrackMuted {
        room: u32,
        key: u64,
        muted: bool,
        by: Option<String>,
    },
    /// For a track the receiver publishes (its own key).
    Keyframe {
        room: u32,
        key: u64,
        fir: bool,
        force: bool,
    },
    Quality {
        room: u32,
        participant_id: String,
        quality: String,
    },
    /// One packet of a track the sender publishes.
    Rtp(#[serde(borrow)] WireRtp<'a>),
    /// Commands for a peer the receiver keeps for the sender's signaling.
    AddPeer {
        participant_id: String,
        room: String,
        may_broadcast: bool,
        may_screenshare: bool,
        receives: bool,
    },
    RemovePeer {
        participant_id: String,
    },
    ClientOffer {
        participant_id: String,
        sdp: String,
        tracks: Vec<(String, Source)>,
    },
    ClientAnswer {
        participant_id: String,
        sdp: String,
    },
    Subscribe {
        participant_id: String,
        track_id: String,
        subscribe: bool,
    },
    Pause {
        participant_id: String,
        track_id: String,
        paused: bool,
    },
    Layer {
        participant_id: String,
        track_id: String,
        max_layer: Option<u8>,
        max_height: Option<u32>,
    },
    Mute {
        participant_id: String,
        source: Option<Source>,
        muted: bool,
        by: Option<String>,
    },
    SetPermissions {
        participant_id: String,
        may_broadcast: bool,
        may_screenshare: bool,
    },
    /// The tracks the receiver's peers publish in `room` (answered with
    /// `Tracks` and the same `req`).
    RoomTracks {
        req: u64,
        room: String,
    },
    Tracks {
        req: u64,
        tracks: Vec<(String, Vec<WireTrackInfo>)>,
    },
    /// A notice for a peer the sender keeps for the receiver's signaling.
    Notice {
        participant_id: String,
        notice: WireNotice,
    },
    /// What the sender's workers counted for the peers it keeps in the
    /// receiver's `room`, since it began keeping them (about once a
    /// second while they change; the receiver adds the difference to the
    /// room's session counters).
    Counters {
        room: String,
        totals: crate::rtc::RoomCountersSnapshot,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireTrack {
    pub key: u64,
    pub id: String,
    pub participant_id: String,
    pub video: bool,
    pub source: Source,
    pub muted: bool,
    pub simulcast: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WireRtp<'a> {
    pub room: u32,
    pub key: u64,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub layer: u8,
    pub keyframe: bool,
    pub clock_rate: u32,
    pub codec: u8,
    pub payload: &'a [u8],
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    /// The sender's capture time, in nanoseconds since the Unix epoch.
    pub capture_ns: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireTrackInfo {
    pub id: String,
    pub video: bool,
    pub source: Source,
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireOffered {
    pub mid: String,
    pub track_id: String,
    pub participant_id: String,
    pub video: bool,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum WireNotice {
    Offer {
        sdp: String,
        tracks: Vec<WireOffered>,
    },
    Answer {
        sdp: String,
    },
    OfferRejected {
        code: String,
        message: String,
    },
    Error {
        code: String,
        message: String,
    },
    TrackPublished {
        participant_id: String,
        track: WireTrackInfo,
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
    ActiveSpeakers {
        speakers: Vec<String>,
    },
    ConnectionQuality {
        participant_id: String,
        quality: String,
    },
}

pub fn codec_to_u8(c: Codec) -> u8 {
    match c {
        Codec::Opus => 1,
        Codec::Vp8 => 2,
        Codec::Vp9 => 3,
        Codec::H264 => 4,
        Codec::Av1 => 5,
        Codec::H265 => 6,
        Codec::PCMU => 7,
        Codec::PCMA => 8,
        Codec::G722 => 9,
        _ => 0,
    }
}

pub fn codec_from_u8(n: u8) -> Option<Codec> {
    Some(match n {
        1 => Codec::Opus,
        2 => Codec::Vp8,
        3 => Codec::Vp9,
        4 => Codec::H264,
        5 => Codec::Av1,
        6 => Codec::H265,
        7 => Codec::PCMU,
        8 => Codec::PCMA,
        9 => Codec::G722,
        _ => return None,
    })
}

pub fn kind_of(video: bool) -> MediaKind {
    if video {
        MediaKind::Video
    } else {
        MediaKind::Audio
    }
}

pub fn keyframe_kind(fir: bool) -> KeyframeRequestKind {
    if fir {
        KeyframeRequestKind::Fir
    } else {
        KeyframeRequestKind::Pli
    }
}

/// The static text the media plane uses for a code, kind or quality read
/// from another node (unknown ones become a generic code: a newer node's
/// code still reaches the client as an error).
fn known(s: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "BAD_MESSAGE",
        "FORBIDDEN",
        "MEDIA_LOST",
        "SERVER_BUSY",
        "audio",
        "video",
        "poor",
        "good",
        "excellent",
        "lost",
    ];
    KNOWN
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("MEDIA_ERROR")
}

fn info_to_wire(t: &TrackInfo) -> WireTrackInfo {
    WireTrackInfo {
        id: t.id.clone(),
        video: t.kind == "video",
        source: t.source,
        muted: t.muted,
    }
}

pub fn info_from_wire(t: WireTrackInfo) -> TrackInfo {
    TrackInfo {
        id: t.id,
        kind: if t.video { "video" } else { "audio" },
        source: t.source,
        muted: t.muted,
    }
}

pub fn tracks_to_wire(
    tracks: std::collections::HashMap<String, Vec<TrackInfo>>,
) -> Vec<(String, Vec<WireTrackInfo>)> {
    tracks
        .into_iter()
        .map(|(p, ts)| (p, ts.iter().map(info_to_wire).collect()))
        .collect()
}

impl WireNotice {
    pub fn from_notice(n: MediaNotice) -> WireNotice {
        match n {
            MediaNotice::Offer { sdp, tracks } => WireNotice::Offer {
                sdp,
                tracks: tracks
                    .into_iter()
                    .map(|t| WireOffered {
                        mid: t.mid,
                        track_id: t.track_id,
                        participant_id: t.participant_id,
                        video: t.kind == "video",
                        source: t.source,
                    })
                    .collect(),
            },
            MediaNotice::Answer { sdp } => WireNotice::Answer { sdp },
            MediaNotice::OfferRejected { code, message } => WireNotice::OfferRejected {
                code: code.into(),
                message,
            },
            MediaNotice::Error { code, message } => WireNotice::Error {
                code: code.into(),
                message,
            },
            MediaNotice::TrackPublished {
                participant_id,
                track,
            } => WireNotice::TrackPublished {
                participant_id,
                track: info_to_wire(&track),
            },
            MediaNotice::TrackUnpublished {
                participant_id,
                track_id,
            } => WireNotice::TrackUnpublished {
                participant_id,
                track_id,
            },
            MediaNotice::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            } => WireNotice::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            },
            MediaNotice::ActiveSpeakers { speakers } => WireNotice::ActiveSpeakers { speakers },
            MediaNotice::ConnectionQuality {
                participant_id,
                quality,
            } => WireNotice::ConnectionQuality {
                participant_id,
                quality: quality.into(),
            },
        }
    }

    pub fn into_notice(self) -> MediaNotice {
        match self {
            WireNotice::Offer { sdp, tracks } => MediaNotice::Offer {
                sdp,
                tracks: tracks
                    .into_iter()
                    .map(|t| OfferedTrack {
                        mid: t.mid,
                        track_id: t.track_id,
                        participant_id: t.participant_id,
                        kind: if t.video { "video" } else { "audio" },
                        source: t.source,
                    })
                    .collect(),
            },
            WireNotice::Answer { sdp } => MediaNotice::Answer { sdp },
            WireNotice::OfferRejected { code, message } => MediaNotice::OfferRejected {
                code: known(&code),
                message,
            },
            WireNotice::Error { code, message } => MediaNotice::Error {
                code: known(&code),
                message,
            },
            WireNotice::TrackPublished {
                participant_id,
                track,
            } => MediaNotice::TrackPublished {
                participant_id,
                track: info_from_wire(track),
            },
            WireNotice::TrackUnpublished {
                participant_id,
                track_id,
            } => MediaNotice::TrackUnpublished {
                participant_id,
                track_id,
            },
            WireNotice::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            } => MediaNotice::TrackMuted {
                participant_id,
                track_id,
                source,
                muted,
                by,
            },
            WireNotice::ActiveSpeakers { speakers } => MediaNotice::ActiveSpeakers { speakers },
            WireNotice::ConnectionQuality {
                participant_id,
                quality,
            } => MediaNotice::ConnectionQuality {
                participant_id,
                quality: known(&quality),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(m: &LinkMsg<'_>) {
        let bytes = postcard::to_stdvec(m).unwrap();
        let back: LinkMsg<'_> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, m);
    }

    #[test]
    fn messages_round_trip_and_packets_borrow_their_payload() {
        let payload = [1u8, 2, 3, 250];
        let rtp = LinkMsg::Rtp(WireRtp {
            room: 7,
            key: 42,
            seq: 1 << 40,
            ts: 9,
            marker: true,
            layer: 2,
            keyframe: false,
            clock_rate: 90_000,
            codec: codec_to_u8(Codec::Vp8),
            payload: &payload,
            audio_level: Some(-30),
            voice_activity: None,
            capture_ns: Some(5),
        });
        round(&rtp);
        let bytes = postcard::to_stdvec(&rtp).unwrap();
        match postcard::from_bytes::<LinkMsg<'_>>(&bytes).unwrap() {
            LinkMsg::Rtp(r) => {
                let start = bytes.as_ptr() as usize;
                let at = r.payload.as_ptr() as usize;
                assert!(
                    at >= start && at < start + bytes.len(),
                    "the payload is borrowed"
                );
            }
            other => panic!("{other:?}"),
        }
        round(&LinkMsg::Notice {
            participant_id: "p".into(),
            notice: WireNotice::from_notice(MediaNotice::Error {
                code: "MEDIA_LOST",
                message: "m".into(),
            }),
        });
        round(&LinkMsg::ClientOffer {
            participant_id: "p".into(),
            sdp: "v=0".into(),
            tracks: vec![("0".into(), Source::Camera)],
        });
    }

    #[test]
    fn notices_keep_their_codes_and_unknown_codes_become_a_generic_one() {
        let n = MediaNotice::ConnectionQuality {
            participant_id: "p".into(),
            quality: "poor",
        };
        assert_eq!(WireNotice::from_notice(n.clone()).into_notice(), n);
        let odd = WireNotice::Error {
            code: "NEW_CODE".into(),
            message: "x".into(),
        };
        assert_eq!(
            odd.into_notice(),
            MediaNotice::Error {
                code: "MEDIA_ERROR",
                message: "x".into()
            }
        );
        for c in 0..=12u8 {
            if let Some(codec) = codec_from_u8(c) {
                assert_eq!(codec_to_u8(codec), c);
            }
        }
    }

    #[test]
    fn garbage_does_not_decode_into_a_message_or_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = postcard::from_bytes::<LinkMsg<'_>>(&bytes);
        }
    }
}
