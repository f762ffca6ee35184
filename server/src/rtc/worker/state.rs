//! The worker's state: tracks (local and replicated), peers and their
//! outgoing tracks, rooms, the room recorder, and small codec helpers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use convene_sfu::{
    Allocator, Fanout, Forwarder, KeyframeLimiter, Kind, LevelMeter, Packet, Publisher, RateMeter,
    SpeakerDetector,
};
use str0m::bwe::Bitrate;
use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::{RtpPacket, Ssrc};
use str0m::{IceConnectionState, Rtc};

use super::relay::RemoteTrack;
use crate::recording::recorder::{RecEvent, RecorderSink};
use crate::rtc::MediaCounters;
use crate::rtc::TrackKey;
use crate::rtc::WorkerId;
use crate::rtc::notice::{MediaNotice, NoticeSink, Source, TrackInfo};

/// A peer's place in its worker's [`PeerTable`]; reused after the peer
/// leaves (lookups check the peer is still there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Slot(u32);

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The peers of one worker, by [`Slot`]: a vector of places, the free ones
/// reused first.
#[derive(Default)]
pub(super) struct PeerTable {
    places: Vec<Option<Peer>>,
    free: Vec<Slot>,
}

impl PeerTable {
    pub(super) fn get(&self, slot: Slot) -> Option<&Peer> {
        self.places.get(slot.0 as usize)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> Option<&mut Peer> {
        self.places.get_mut(slot.0 as usize)?.as_mut()
    }

    /// A free place for a new peer (see [`PeerTable::put`]).
    pub(super) fn reserve(&mut self) -> Slot {
        self.free.pop().unwrap_or_else(|| {
            self.places.push(None);
            Slot((self.places.len() - 1) as u32)
        })
    }

    /// Puts a peer in the place `reserve` gave.
    pub(super) fn put(&mut self, slot: Slot, peer: Peer) {
        if let Some(place) = self.places.get_mut(slot.0 as usize) {
            *place = Some(peer);
        }
    }

    /// Takes the peer out; its place is free again.
    pub(super) fn remove(&mut self, slot: Slot) -> Option<Peer> {
        let peer = self.places.get_mut(slot.0 as usize)?.take()?;
        self.free.push(slot);
        Some(peer)
    }

    /// Every place, occupied or not.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + use<> {
        (0..self.places.len() as u32).map(Slot)
    }

    /// How many places there are.
    pub(super) fn capacity(&self) -> usize {
        self.places.len()
    }
}

/// Where a track's packets come from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    /// A peer of this worker publishes it on `mid`.
    Local { slot: Slot, mid: Mid },
    /// Another worker holding the room publishes it and relays its packets.
    Remote { worker: WorkerId },
}

pub(super) struct Track {
    /// Unique across workers (each worker hands out keys of its own residue).
    pub(super) key: TrackKey,
    pub(super) id: String,
    pub(super) origin: Origin,
    pub(super) participant_id: String,
    pub(super) kind: MediaKind,
    pub(super) source: Source,
    pub(super) muted: bool,
    pub(super) simulcast: bool,
    /// Keyframe requests towards the publisher, at most one per 500 ms.
    pub(super) keyframes: KeyframeLimiter,
    /// Incoming bitrate per simulcast layer `[q, h, f]` (non-simulcast: f).
    pub(super) rates: [RateMeter; 3],
    /// Audio levels of a remote track since the last speaker tick (local
    /// publishers' levels are measured on their peer).
    pub(super) levels: LevelMeter,
    /// This worker's subscribers of the track: a peer and the index of
    /// its outgoing track (`Peer::outs`, never reordered), each behind its
    /// own forwarder.
    pub(super) fanout: Fanout<Sub>,
}

/// A subscriber of a track: the peer, and which of its outgoing tracks.
pub(super) type Sub = (Slot, u32);

/// The forwarding kind of a media kind.
pub(super) fn forward_kind(kind: MediaKind) -> Kind {
    match kind {
        MediaKind::Audio => Kind::Audio,
        MediaKind::Video => Kind::Video,
    }
}

impl Track {
    /// The local peer publishing this track, if any.
    pub(super) fn publisher(&self) -> Option<Slot> {
        match self.origin {
            Origin::Local { slot, .. } => Some(slot),
            Origin::Remote { .. } => None,
        }
    }

    /// Where keyframe requests for this track go (see `route_keyframe`).
    pub(super) fn publisher_at(&self) -> Publisher<(Slot, Mid), WorkerId> {
        match self.origin {
            Origin::Local { slot, mid } => Publisher::Local((slot, mid)),
            Origin::Remote { worker } => Publisher::Remote(worker),
        }
    }

    /// What another worker needs to hold a replica of this track.
    pub(super) fn replica(&self, home: WorkerId) -> RemoteTrack {
        RemoteTrack {
            key: self.key,
            home,
            id: self.id.clone(),
            participant_id: self.participant_id.clone(),
            kind: self.kind,
            source: self.source,
            muted: self.muted,
            simulcast: self.simulcast,
        }
    }

    pub(super) fn from_replica(r: RemoteTrack) -> Track {
        Track {
            key: r.key,
            id: r.id,
            origin: Origin::Remote { worker: r.home },
            participant_id: r.participant_id,
            kind: r.kind,
            source: r.source,
            muted: r.muted,
            simulcast: r.simulcast,
            keyframes: KeyframeLimiter::default(),
            rates: Default::default(),
            levels: LevelMeter::default(),
            fanout: Fanout::new(forward_kind(r.kind)),
        }
    }

    pub(super) fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.clone(),
            kind: kind_str(self.kind),
            source: self.source,
            muted: self.muted,
        }
    }
}

pub(super) fn kind_str(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutState {
    /// In an offer not yet answered.
    Offered,
    Active,
    /// The track is gone; the m-line goes inactive in the next offer.
    Closing,
    /// Inactive in an offer not yet answered.
    ClosingOffered,
    Closed,
}

pub(super) struct OutTrack {
    pub(super) mid: Mid,
    pub(super) track_key: TrackKey,
    pub(super) state: OutState,
    pub(super) subscribed: bool,
    pub(super) paused: bool,
    pub(super) kind: MediaKind,
    /// NACKs str0m had counted for this stream at the last stats event.
    pub(super) nacks_seen: u64,
    /// Payload type cache: (incoming codec, outgoing pt).
    pub(super) pt: Option<(Codec, str0m::media::Pt)>,
}

pub(super) struct Peer {
    pub(super) participant_id: String,
    /// Shared with the room map key: cloning it per packet does not allocate.
    pub(super) room_id: Arc<str>,
    pub(super) rtc: Rtc,
    pub(super) out: Box<dyn NoticeSink>,
    pub(super) ufrag: String,
    pub(super) may_broadcast: bool,
    pub(super) may_screenshare: bool,
    /// Offered the room's tracks (see `NewPeer::receives`).
    pub(super) receives: bool,
    /// A viewer's choice (see `NewPeer::view`).
    pub(super) view: Option<super::View>,
    /// A viewer's forwarders whose track went away, by out index: the next
    /// track shown on that m-line continues their numbering.
    pub(super) parked: Vec<(u32, Forwarder)>,
    /// The time of this peer's live entry in the worker's timer heap
    /// (`None`: no entry; the next poll arms one).
    pub(super) next_timeout: Option<Instant>,
    pub(super) dirty: bool,
    /// This turn's copies for it, not yet written (`copies.rs`).
    pub(super) copies: super::copies::CopyList,
    /// Sources declared for mids in the latest client offer.
    pub(super) offered_sources: HashMap<String, Source>,
    /// Published tracks by mid.
    pub(super) published: HashMap<Mid, TrackKey>,
    pub(super) ssrcs: HashMap<Ssrc, (Mid, Option<Rid>)>,
    pub(super) outs: Vec<OutTrack>,
    pub(super) pending_offer: Option<SdpPendingOffer>,
    pub(super) ice_state: IceConnectionState,
    /// Since when a connected peer's ICE has been disconnected (no binding
    /// request for 15 s: str0m stopped sending to it); see `drop_silent_peers`.
    pub(super) lost_since: Option<Instant>,
    pub(super) joined_at: Instant,
    pub(super) connected_logged: bool,
    /// DTLS has just completed: the next poll serves str0m a timeout at
    /// once (see `Worker::poll_peer`).
    pub(super) keys_ready: bool,
    pub(super) bwe: Option<Bitrate>,
    /// Audio levels (-dBov) since the last speaker tick.
    pub(super) levels: LevelMeter,
    pub(super) quality: &'static str,
    /// Simulcast layer allocation from this subscriber's bandwidth estimate.
    pub(super) alloc: Allocator,
    /// How long its outgoing video keeps sent packets for NACKs (by its
    /// round trip).
    pub(super) nack: convene_sfu::NackWindow,
    /// The own write path's state (`own/`), when the worker runs it.
    pub(super) own: Option<Box<super::own::OwnPath>>,
}

impl Peer {
    pub(super) fn send(&self, msg: MediaNotice, counters: &MediaCounters) {
        if !self.out.notify(msg) {
            counters
                .signal_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub(super) struct Room {
    pub(super) counters: Arc<crate::rtc::RoomCounters>,
    pub(super) peers: Vec<Slot>,
    pub(super) tracks: HashMap<TrackKey, Track>,
    pub(super) speakers: SpeakerDetector<String>,
    pub(super) recorder: Option<RoomRecorder>,
    /// RTMP restreams, by id: fed like the recorder (`crate::restream`).
    pub(super) restreams: Vec<(String, RoomRecorder)>,
    /// The other workers holding this room (they get our publishers'
    /// packets and track changes).
    pub(super) shards: Vec<WorkerId>,
}

/// One incoming packet, ready for fan-out: what every subscriber's
/// forwarder and the recorder need. Cloning it clones Arcs only.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub(crate) key: TrackKey,
    pub(crate) view: Packet,
    pub(crate) codec: Codec,
    pub(crate) payload: Arc<[u8]>,
    pub(crate) audio_level: Option<i8>,
    pub(crate) voice_activity: Option<bool>,
    /// The sender's capture time (from its RTCP sender reports).
    pub(crate) capture: Option<SystemTime>,
}

/// The room's recorder, fed like one more subscriber: a forwarder per
/// track (highest simulcast layer, continuous sequence numbers) in front of
/// the recorder's bounded queue. A full queue drops; forwarding never waits.
pub(super) struct RoomRecorder {
    pub(super) sink: Box<RecorderSink>,
    pub(super) forwarders: HashMap<TrackKey, Forwarder>,
}

impl RoomRecorder {
    pub(super) fn track(&self, t: &Track) {
        self.sink.offer(RecEvent::Track {
            key: t.key,
            participant_id: t.participant_id.clone(),
            source: t.source,
        });
    }
}

/// The sender's capture time of a packet, from its stream's latest RTCP
/// sender report.
pub(super) fn capture_time(pkt: &RtpPacket, clock_rate: u32) -> Option<std::time::SystemTime> {
    let si = pkt.last_sender_info?;
    let diff = pkt
        .header
        .timestamp
        .wrapping_sub(si.rtp_time.numer() as u32) as i32;
    let d = Duration::from_secs_f64(f64::from(diff.unsigned_abs()) / f64::from(clock_rate));
    if diff >= 0 {
        si.ntp_time.checked_add(d)
    } else {
        si.ntp_time.checked_sub(d)
    }
}

/// The codec as the media crate names it (`None` for codecs not recorded).
pub(super) fn media_codec(c: Codec) -> Option<convene_media::Codec> {
    Some(match c {
        Codec::Opus => convene_media::Codec::Opus,
        Codec::Vp8 => convene_media::Codec::Vp8,
        Codec::Vp9 => convene_media::Codec::Vp9,
        Codec::H264 => convene_media::Codec::H264,
        Codec::Av1 => convene_media::Codec::Av1,
        _ => return None,
    })
}

/// Whether an RTP payload starts a keyframe.
pub(super) fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => convene_media::vp8::is_keyframe(payload),
        Codec::Vp9 => convene_media::vp9::is_keyframe(payload),
        Codec::H264 => convene_media::h264::is_keyframe(payload),
        Codec::Av1 => convene_media::av1::is_keyframe(payload),
        _ => false,
    }
}

/// Fresh local ICE credentials for a peer of `worker`. The ufrag starts
/// with the worker's number: the UDP router sends a binding request from an
/// unknown address to the worker its ufrag names (`stun::worker_of_ufrag`).
pub(super) fn ice_credentials(worker: WorkerId) -> str0m::IceCreds {
    str0m::IceCreds {
        ufrag: format!("w{:02x}{}", worker.as_u8(), random_token(12)),
        pass: random_token(24),
    }
}

pub(super) fn random_token(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}
