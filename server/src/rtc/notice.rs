//! What the media plane tells a participant, in its own terms.
//!
//! A worker does not speak the client protocol: it hands each participant's
//! [`NoticeSink`] a [`MediaNotice`], and signaling (which implements the sink
//! on the participant's outbound queue) turns it into a protocol message.
//! The few value types notices carry (`Source`, `TrackInfo`, `OfferedTrack`)
//! are serialisable because the protocol embeds them as they are.

use serde::{Deserialize, Serialize};

/// A published track's number, unique across the media workers (each hands
/// out numbers of its own residue). Shared with the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u64);

impl TrackKey {
    /// No track: a viewer's m-line with nothing to show (never handed out).
    pub const UNBOUND: TrackKey = TrackKey(u64::MAX);
}

impl std::fmt::Display for TrackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

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

/// A published track as participants see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackInfo {
    pub id: String,
    pub kind: &'static str,
    pub source: Source,
    pub muted: bool,
}

/// A track the server offers a subscriber, and the m-line it comes on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OfferedTrack {
    pub mid: String,
    pub track_id: String,
    pub participant_id: String,
    pub kind: &'static str,
    pub source: Source,
}

/// A client's declaration of what one m-line of its offer publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedMid {
    pub mid: String,
    pub source: Source,
}

/// Something a participant must hear from the media plane.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaNotice {
    /// The server's offer of the room's tracks.
    Offer {
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    /// The answer to the participant's own offer.
    Answer {
        sdp: String,
    },
    /// The participant's offer was refused as a whole.
    OfferRejected {
        code: &'static str,
        message: String,
    },
    /// A non-fatal problem with something the participant sent.
    Error {
        code: &'static str,
        message: String,
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
    ActiveSpeakers {
        speakers: Vec<String>,
    },
    ConnectionQuality {
        participant_id: String,
        quality: &'static str,
    },
}

/// Where a worker's notices for one participant go. `notify` never blocks:
/// false means the notice was dropped (a stuck client loses its own).
pub trait NoticeSink: Send {
    fn notify(&self, notice: MediaNotice) -> bool;
}
