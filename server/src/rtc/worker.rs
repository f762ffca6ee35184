//! A media worker: one thread that is the single owner of the peers (str0m
//! `Rtc`s) and rooms sharded to it.
//!
//! The loop waits on its channels — datagrams from the receive thread,
//! commands from signaling, and packets and control messages relayed by the
//! other workers — or until the earliest str0m timeout, feeds str0m, drains
//! its output, forwards RTP between the room's peers, and sends datagrams on
//! the shared socket. Nothing here awaits or takes a lock shared with another
//! worker; one peer's error disconnects that peer only.
//!
//! A room may be held by several workers (each with its own participants of
//! it, see `MediaPlane::place`). Every worker holding a room knows all of its
//! tracks: its own publishers' (`Origin::Local`) and replicas of the others'
//! (`Origin::Remote`). A local publisher's packet is fanned out to the local
//! subscribers and handed, as one `RelayedRtp` (Arcs and a queue slot, no
//! copy), to every other worker holding the room, which fans it out to its
//! own. Track changes, keyframe requests and connection quality travel on the
//! control channel (`Relay`); keyframe requests end at the publisher's worker.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::sdp_scan;
use super::udp::{DATAGRAM_CAPACITY, Datagram};
use super::{MediaCounters, MediaEvent};
use crate::recording::recorder::{RecEvent, RecPacket, RecorderSink};
use crate::signaling::wire::{OfferTrack, OfferedTrack, ServerMsg, Source, TrackInfo};
use convene_sfu::{
    Allocator, Decision, Forwarder, KeyframeLimiter, Kind, Layer, Packet, RateMeter,
    SpeakerDetector, TrackDemand,
};

/// A participant handed to a worker by signaling.
pub struct NewPeer {
    pub participant_id: String,
    pub room_id: String,
    pub out: mpsc::Sender<ServerMsg>,
    /// May publish camera and microphone (`broadcast`).
    pub may_broadcast: bool,
    /// May publish a screen track (`screenshare` and the room allows it).
    pub may_screenshare: bool,
    /// The room's counters (the same Arc for every peer of the room).
    pub room_counters: Arc<super::RoomCounters>,
}

/// Commands from signaling to the worker owning a participant or room.
pub enum Command {
    AddPeer(Box<NewPeer>),
    RemovePeer {
        participant_id: String,
    },
    ClientOffer {
        participant_id: String,
        sdp: String,
        tracks: Vec<OfferTrack>,
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
        max_layer: Option<Layer>,
        max_height: Option<u32>,
    },
    Mute {
        participant_id: String,
        source: Option<Source>,
        muted: bool,
        by: Option<String>,
    },
    RoomTracks {
        room_id: String,
        reply: oneshot::Sender<HashMap<String, Vec<TrackInfo>>>,
    },
    /// Feed every track of the room to a recorder from now on.
    StartRecording {
        room_id: String,
        sink: Box<RecorderSink>,
    },
    /// Stop feeding the room's recorder (it then closes its files).
    StopRecording {
        room_id: String,
    },
}

/// Active speakers and simulcast layer allocations are recomputed this often.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(500);
/// Keyframe limiters are checked this often.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// A worker's DTLS certificate is remade this often (new peers get the new
/// one; connected peers keep theirs). The certificates are valid a year.
const DTLS_CERT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A subscriber whose allocated video needs more than this many times its
/// bandwidth estimate is congested: its forwarders drop whole frames.
const CONGESTION_FACTOR: u64 = 2;
/// Guard against a peer that keeps asking for an immediate timeout: after
/// this many in one poll, the rest waits for the next turn of the loop.
const MAX_IMMEDIATE_TIMEOUTS: u32 = 4096;
/// How often str0m reports per-stream statistics (NACK counts).
const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// What an audio track is assumed to take from a subscriber's bandwidth.
const AUDIO_BPS: u64 = 48_000;
/// Packets kept per outgoing video stream to answer NACKs, and for how long.
const NACK_CACHE_PACKETS: usize = 1024;
const NACK_CACHE_AGE: Duration = Duration::from_secs(2);

/// Where a track's packets come from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A peer of this worker publishes it on `mid`.
    Local { slot: usize, mid: Mid },
    /// Another worker holding the room publishes it and relays its packets.
    Remote { worker: usize },
}

struct Track {
    /// Unique across workers (each worker hands out keys of its own residue).
    key: u64,
    id: String,
    origin: Origin,
    participant_id: String,
    kind: MediaKind,
    source: Source,
    muted: bool,
    simulcast: bool,
    /// Keyframe requests towards the publisher, at most one per 500 ms.
    keyframes: KeyframeLimiter,
    /// Incoming bitrate per simulcast layer `[q, h, f]` (non-simulcast: f).
    rates: [RateMeter; 3],
    /// Audio levels of a remote track since the last speaker tick (local
    /// publishers' levels are summed on their peer).
    level_sum: f32,
    level_count: u32,
}

impl Track {
    /// The local peer publishing this track, if any.
    fn publisher(&self) -> Option<usize> {
        match self.origin {
            Origin::Local { slot, .. } => Some(slot),
            Origin::Remote { .. } => None,
        }
    }

    /// What another worker needs to hold a replica of this track.
    fn replica(&self, home: usize) -> RemoteTrack {
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

    fn from_replica(r: RemoteTrack) -> Track {
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
            level_sum: 0.0,
            level_count: 0,
        }
    }

    fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.clone(),
            kind: kind_str(self.kind),
            source: self.source,
            muted: self.muted,
        }
    }
}

fn kind_str(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// In an offer not yet answered.
    Offered,
    Active,
    /// The track is gone; the m-line goes inactive in the next offer.
    Closing,
    /// Inactive in an offer not yet answered.
    ClosingOffered,
    Closed,
}

struct OutTrack {
    mid: Mid,
    track_key: u64,
    state: OutState,
    subscribed: bool,
    paused: bool,
    forward: Forwarder,
    kind: MediaKind,
    /// NACKs str0m had counted for this stream at the last stats event.
    nacks_seen: u64,
    /// Payload type cache: (incoming codec, outgoing pt).
    pt: Option<(Codec, str0m::media::Pt)>,
}

struct Peer {
    participant_id: String,
    /// Shared with the room map key: cloning it per packet does not allocate.
    room_id: Arc<str>,
    rtc: Rtc,
    out: mpsc::Sender<ServerMsg>,
    ufrag: String,
    may_broadcast: bool,
    may_screenshare: bool,
    /// The time of this peer's live entry in the worker's timer heap
    /// (`None`: no entry; the next poll arms one).
    next_timeout: Option<Instant>,
    dirty: bool,
    /// Sources declared for mids in the latest client offer.
    offered_sources: HashMap<String, Source>,
    /// Published tracks by mid.
    published: HashMap<Mid, u64>,
    ssrcs: HashMap<Ssrc, (Mid, Option<Rid>)>,
    outs: Vec<OutTrack>,
    pending_offer: Option<SdpPendingOffer>,
    ice_state: IceConnectionState,
    joined_at: Instant,
    connected_logged: bool,
    bwe: Option<Bitrate>,
    /// Sum and count of audio levels (-dBov) since the last speaker tick.
    level_sum: f32,
    level_count: u32,
    quality: &'static str,
    /// Simulcast layer allocation from this subscriber's bandwidth estimate.
    alloc: Allocator,
}

impl Peer {
    fn send(&self, msg: ServerMsg, counters: &MediaCounters) {
        if self.out.try_send(msg).is_err() {
            counters
                .signal_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Room {
    counters: Arc<super::RoomCounters>,
    peers: Vec<usize>,
    tracks: HashMap<u64, Track>,
    speakers: SpeakerDetector<String>,
    recorder: Option<RoomRecorder>,
    /// The other workers holding this room (they get our publishers'
    /// packets and track changes).
    shards: Vec<usize>,
}

/// A track as replicated to another worker.
struct RemoteTrack {
    key: u64,
    home: usize,
    id: String,
    participant_id: String,
    kind: MediaKind,
    source: Source,
    muted: bool,
    simulcast: bool,
}

/// One incoming packet, ready for fan-out: what every subscriber's
/// forwarder and the recorder need. Cloning it clones Arcs only.
#[derive(Clone)]
struct Outgoing {
    key: u64,
    view: Packet,
    codec: Codec,
    payload: Arc<[u8]>,
    audio_level: Option<i8>,
    voice_activity: Option<bool>,
    /// The sender's capture time (from its RTCP sender reports).
    capture: Option<SystemTime>,
}

/// A publisher's packet handed to another worker holding its room.
struct RelayedRtp {
    room: Arc<str>,
    pkt: Outgoing,
}

/// Control messages between workers holding the same room.
enum Relay {
    /// `from` now holds peers of the room: those holding it answer
    /// `Welcome` and send their tracks.
    Hello {
        room: Arc<str>,
        from: usize,
    },
    Welcome {
        room: Arc<str>,
        from: usize,
    },
    /// `from` no longer holds the room.
    Goodbye {
        room: Arc<str>,
        from: usize,
    },
    TrackAdded {
        room: Arc<str>,
        track: Box<RemoteTrack>,
    },
    TrackRemoved {
        room: Arc<str>,
        key: u64,
    },
    TrackMuted {
        room: Arc<str>,
        key: u64,
        muted: bool,
        by: Option<String>,
    },
    /// For the worker publishing the track.
    Keyframe {
        room: Arc<str>,
        key: u64,
        kind: KeyframeRequestKind,
        force: bool,
    },
    Quality {
        room: Arc<str>,
        participant_id: String,
        quality: &'static str,
    },
    /// The room's recorder, from a worker that no longer holds the room.
    Recorder {
        room: Arc<str>,
        recorder: Box<RoomRecorder>,
    },
}

/// Relayed packets a worker queues before further ones are dropped (and
/// counted): about 100 ms of a busy worker's input.
const RELAY_QUEUE: usize = 8192;

/// The channels between all workers, made once by the media plane.
pub struct Mesh {
    rtp: Vec<(Sender<RelayedRtp>, Receiver<RelayedRtp>)>,
    ctl: Vec<(Sender<Relay>, Receiver<Relay>)>,
}

impl Mesh {
    pub fn new(workers: usize) -> Mesh {
        Mesh {
            rtp: (0..workers).map(|_| bounded(RELAY_QUEUE)).collect(),
            // Control messages follow signaling (joins, publishes, mutes),
            // never packets; losing one would leave a replica wrong.
            ctl: (0..workers).map(|_| unbounded()).collect(),
        }
    }

    /// Worker `index`'s ends: senders to every worker, its own receivers.
    pub fn links(&self, index: usize) -> Links {
        Links {
            rtp: self.rtp.iter().map(|(tx, _)| tx.clone()).collect(),
            ctl: self.ctl.iter().map(|(tx, _)| tx.clone()).collect(),
            rtp_rx: self.rtp[index].1.clone(),
            ctl_rx: self.ctl[index].1.clone(),
        }
    }
}

/// One worker's ends of the [`Mesh`].
pub struct Links {
    rtp: Vec<Sender<RelayedRtp>>,
    ctl: Vec<Sender<Relay>>,
    rtp_rx: Receiver<RelayedRtp>,
    ctl_rx: Receiver<Relay>,
}

/// The room's recorder, fed like one more subscriber: a forwarder per
/// track (highest simulcast layer, continuous sequence numbers) in front of
/// the recorder's bounded queue. A full queue drops; forwarding never waits.
struct RoomRecorder {
    sink: Box<RecorderSink>,
    forwarders: HashMap<u64, Forwarder>,
}

impl RoomRecorder {
    fn track(&self, t: &Track) {
        self.sink.offer(RecEvent::Track {
            key: t.key,
            participant_id: t.participant_id.clone(),
            source: t.source,
        });
    }
}

/// The sender's capture time of a packet, from its stream's latest RTCP
/// sender report.
fn capture_time(pkt: &RtpPacket, clock_rate: u32) -> Option<std::time::SystemTime> {
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

pub struct Worker {
    bwe: bool,
    index: usize,
    /// Senders to every worker's relay channels (`[index]` is our own).
    rtp_links: Vec<Sender<RelayedRtp>>,
    ctl_links: Vec<Sender<Relay>>,
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    candidate: Candidate,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    by_participant: HashMap<String, usize>,
    by_ufrag: HashMap<String, usize>,
    by_addr: HashMap<SocketAddr, usize>,
    /// ICE-TCP connections by remote address.
    tcp: HashMap<SocketAddr, super::tcp::TcpWriter>,
    tcp_candidate: Option<Candidate>,
    rooms: HashMap<Arc<str>, Room>,
    /// The next track key: `index + 1` plus multiples of the worker count,
    /// so keys never collide between workers.
    next_track: u64,
    pool: Sender<Box<[u8; DATAGRAM_CAPACITY]>>,
    counters: Arc<MediaCounters>,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// Incoming RTP waiting to be forwarded: (publisher slot, packet).
    rtp_queue: Vec<(usize, RtpPacket)>,
    /// Slots that need polling.
    dirty: Vec<usize>,
    last_speaker_tick: Instant,
    last_housekeeping: Instant,
    /// Scratch space of the housekeeping passes (kept to avoid allocating).
    scratch_demands: Vec<TrackDemand>,
    scratch_outs: Vec<usize>,
    scratch_keyframes: Vec<(usize, Mid, bool)>,
    /// Peers' str0m timeouts, earliest first: (when, slot). Entries that no
    /// longer match their peer's `next_timeout` are stale and skipped.
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, usize)>>,
    /// UDP datagrams produced this turn, flushed at its end.
    batch: super::batch::SendBatch,
    /// The DTLS certificate of this worker's peers, and when it was made
    /// (see [`Worker::dtls_cert`]).
    dtls_cert: Option<(str0m::config::DtlsCert, Instant)>,
}

/// Everything a worker thread needs.
pub struct WorkerSetup {
    pub index: usize,
    /// Send-side bandwidth estimation for subscribers.
    pub bwe: bool,
    pub links: Links,
    pub socket: Arc<UdpSocket>,
    pub local_addr: SocketAddr,
    pub candidate: SocketAddr,
    /// Also offer a passive ICE-TCP candidate on the same address.
    pub tcp: bool,
    pub datagrams: Receiver<Datagram>,
    pub commands: Receiver<Command>,
    pub pool: Sender<Box<[u8; DATAGRAM_CAPACITY]>>,
    pub counters: Arc<MediaCounters>,
    pub events: mpsc::UnboundedSender<MediaEvent>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

pub fn run(setup: WorkerSetup) {
    let candidate = match Candidate::host(setup.candidate, "udp") {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, addr = %setup.candidate, "invalid media candidate address; worker not started");
            return;
        }
    };
    let tcp_candidate = if setup.tcp {
        Candidate::builder()
            .tcp()
            .host(setup.candidate)
            .tcptype(str0m::net::TcpType::Passive)
            .build()
            .ok()
    } else {
        None
    };
    let Links {
        rtp: rtp_links,
        ctl: ctl_links,
        rtp_rx,
        ctl_rx,
    } = setup.links;
    let mut w = Worker {
        index: setup.index,
        bwe: setup.bwe,
        next_track: setup.index as u64 + 1,
        rtp_links,
        ctl_links,
        socket: setup.socket,
        local_addr: setup.local_addr,
        candidate,
        peers: Vec::new(),
        free: Vec::new(),
        by_participant: HashMap::new(),
        by_ufrag: HashMap::new(),
        by_addr: HashMap::new(),
        tcp: HashMap::new(),
        tcp_candidate,
        rooms: HashMap::new(),
        pool: setup.pool,
        counters: setup.counters,
        events: setup.events,
        rtp_queue: Vec::with_capacity(64),
        dirty: Vec::with_capacity(64),
        last_speaker_tick: Instant::now(),
        last_housekeeping: Instant::now(),
        scratch_demands: Vec::new(),
        scratch_outs: Vec::new(),
        scratch_keyframes: Vec::new(),
        timers: std::collections::BinaryHeap::new(),
        batch: super::batch::SendBatch::new(),
        dtls_cert: None,
    };
    let datagrams = setup.datagrams;
    let commands = setup.commands;
    let stop = setup.stop;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        let deadline = w.next_deadline(now);
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        select! {
            recv(datagrams) -> d => match d {
                Ok(d) => w.on_datagram(d),
                Err(_) => break,
            },
            recv(commands) -> c => match c {
                Ok(c) => w.on_command(c),
                Err(_) => break,
            },
            recv(rtp_rx) -> r => if let Ok(r) = r {
                w.on_relayed_rtp(r);
            },
            recv(ctl_rx) -> m => if let Ok(m) = m {
                w.on_relay(m);
            },
            default(wait) => {}
        }
        // Take whatever else is queued without blocking, bounded per round.
        for _ in 0..64 {
            match datagrams.try_recv() {
                Ok(d) => w.on_datagram(d),
                Err(_) => break,
            }
        }
        for _ in 0..256 {
            match rtp_rx.try_recv() {
                Ok(r) => w.on_relayed_rtp(r),
                Err(_) => break,
            }
        }
        while let Ok(m) = ctl_rx.try_recv() {
            w.on_relay(m);
        }
        while let Ok(c) = commands.try_recv() {
            w.on_command(c);
        }
        w.drive(Instant::now());
    }
    // Channels closed: the server is stopping. Say goodbye to every peer.
    for slot in 0..w.peers.len() {
        if let Some(p) = w.peers[slot].as_mut() {
            p.rtc.disconnect();
        }
    }
    tracing::debug!(worker = w.index, "media worker stopped");
}

impl Worker {
    fn next_deadline(&self, now: Instant) -> Instant {
        if !self.dirty.is_empty() || !self.rtp_queue.is_empty() {
            return now;
        }
        let mut t = now + Duration::from_millis(100);
        if let Some(&std::cmp::Reverse((due, _))) = self.timers.peek() {
            t = t.min(due);
        }
        t.min(self.last_speaker_tick + SPEAKER_INTERVAL)
            .min(self.last_housekeeping + HOUSEKEEPING_INTERVAL)
    }

    fn on_datagram(&mut self, d: Datagram) {
        let slot = self.by_addr.get(&d.from).copied().or_else(|| {
            let ufrag = super::stun::binding_request_ufrag(d.bytes())?;
            self.by_ufrag.get(ufrag).copied()
        });
        if let Some(slot) = slot
            && let Some(peer) = self.peers[slot].as_mut()
        {
            let now = Instant::now();
            let known = self.by_addr.contains_key(&d.from);
            let proto = if d.tcp.is_some() {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            match Receive::new(proto, d.from, self.local_addr, d.bytes()) {
                Ok(recv) => {
                    let input = Input::Receive(now, recv);
                    if known || peer.rtc.accepts(&input) {
                        self.by_addr.insert(d.from, slot);
                        if let Some(w) = &d.tcp
                            && !self.tcp.contains_key(&d.from)
                        {
                            self.tcp.insert(d.from, w.clone());
                        }
                        if let Err(e) = peer.rtc.handle_input(input) {
                            tracing::debug!(participant = %peer.participant_id, error = %e, "input refused");
                        }
                        // str0m holds one received RTP packet at a time: drain
                        // it before the next input.
                        self.poll_peer(slot, now);
                    }
                }
                Err(_) => {
                    self.counters
                        .malformed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        } else {
            self.counters
                .unroutable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.pool.try_send(d.buf);
    }

    /// Drops the stale entries of the timer heap (each poll that changes a
    /// peer's deadline leaves the old entry behind until its time comes).
    /// Run when the heap holds more than a few entries per peer slot, it
    /// costs O(1) amortised per push and keeps the heap small.
    fn compact_timers(&mut self) {
        let peers = &self.peers;
        self.timers.retain(|std::cmp::Reverse((t, slot))| {
            peers[*slot]
                .as_ref()
                .is_some_and(|p| p.next_timeout == Some(*t))
        });
    }

    /// Sends the queued datagrams (see `batch.rs`).
    fn flush_sends(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.batch.is_empty() {
            return;
        }
        let f = self.batch.flush(&self.socket);
        self.counters.packets_out.fetch_add(f.packets, Relaxed);
        self.counters.bytes_out.fetch_add(f.bytes, Relaxed);
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(p) = self.peers[slot].as_mut()
            && !p.dirty
        {
            p.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Advances every peer whose timer is due, polls every dirty peer, and
    /// forwards the RTP that came out, until nothing is left to do.
    fn drive(&mut self, now: Instant) {
        // Due timers, earliest first. An entry is stale when the peer has
        // asked for another time since (or the slot was reused): skip it.
        while let Some(&std::cmp::Reverse((t, slot))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(p) = self.peers[slot].as_mut()
                && p.next_timeout == Some(t)
            {
                p.next_timeout = None;
                let _ = p.rtc.handle_input(Input::Timeout(now));
                self.mark_dirty(slot);
            }
        }
        let mut rounds = 0;
        while !(self.dirty.is_empty() && self.rtp_queue.is_empty()) && rounds < 16 {
            rounds += 1;
            // Peers marked while this batch is polled land in a fresh list.
            let mut batch = std::mem::take(&mut self.dirty);
            for &slot in &batch {
                if let Some(p) = self.peers[slot].as_mut() {
                    p.dirty = false;
                }
                self.poll_peer(slot, now);
            }
            let mut queue = std::mem::take(&mut self.rtp_queue);
            for (slot, pkt) in queue.iter() {
                self.forward_rtp(*slot, pkt, now);
            }
            queue.clear();
            self.rtp_queue = queue;
            if self.dirty.is_empty() {
                batch.clear();
                self.dirty = batch;
            }
        }
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING_INTERVAL {
            self.last_housekeeping = now;
            self.housekeeping(now);
        }
        if now.saturating_duration_since(self.last_speaker_tick) >= SPEAKER_INTERVAL {
            self.last_speaker_tick = now;
            self.speaker_tick();
            self.allocate_layers(now);
        }
        self.flush_sends();
    }

    fn poll_peer(&mut self, slot: usize, now: Instant) {
        let mut dead = false;
        let mut immediate = 0u32;
        loop {
            let Some(peer) = self.peers[slot].as_mut() else {
                return;
            };
            if !peer.rtc.is_alive() {
                dead = true;
                break;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // str0m asks for a timeout "now" between two packets of
                    // the same send queue (and after each input). Serving it
                    // here drains a burst in one call instead of one packet
                    // per turn of the worker loop.
                    if immediate < MAX_IMMEDIATE_TIMEOUTS {
                        let at = Instant::now();
                        if t <= at {
                            immediate += 1;
                            let _ = peer.rtc.handle_input(Input::Timeout(at));
                            continue;
                        }
                    }
                    if peer.next_timeout != Some(t) {
                        peer.next_timeout = Some(t);
                        self.timers.push(std::cmp::Reverse((t, slot)));
                        if self.timers.len() > 4 * self.peers.len() + 64 {
                            self.compact_timers();
                        }
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Tcp {
                        if self
                            .tcp
                            .get(&t.destination)
                            .is_some_and(|w| w.send(&t.contents))
                        {
                            self.counters.bytes_out.fetch_add(
                                t.contents.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            self.counters
                                .packets_out
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            tracing::trace!(dest = %t.destination, "send failed");
                        }
                    } else {
                        self.batch.push(t.destination, t.contents.into());
                        if self.batch.is_full() {
                            self.flush_sends();
                        }
                    }
                }
                Ok(Output::Event(e)) => self.on_event(slot, e, now),
                Err(e) => {
                    tracing::info!(participant = %peer.participant_id, error = %e, "peer connection failed");
                    dead = true;
                    break;
                }
            }
        }
        if dead && let Some(peer) = self.peers[slot].as_ref() {
            let pid = peer.participant_id.clone();
            let _ = self.events.send(MediaEvent::PeerFailed {
                participant_id: pid.clone(),
            });
            self.remove_peer(&pid);
        }
    }

    fn on_event(&mut self, slot: usize, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(pkt) => self.rtp_queue.push((slot, pkt)),
            Event::IceConnectionStateChange(state) => {
                if let Some(p) = self.peers[slot].as_mut() {
                    p.ice_state = state;
                    tracing::debug!(participant = %p.participant_id, ?state, "ice state");
                }
                if state == IceConnectionState::Disconnected {
                    self.set_quality(slot, "lost");
                }
            }
            Event::Connected => {
                if let Some(p) = self.peers[slot].as_mut()
                    && !p.connected_logged
                {
                    p.connected_logged = true;
                    tracing::info!(
                        participant = %p.participant_id,
                        room = %p.room_id,
                        ms_since_join = now.duration_since(p.joined_at).as_millis() as u64,
                        "media connected (ICE + DTLS)"
                    );
                }
                self.set_quality(slot, "excellent");
            }
            Event::MediaAdded(m) => {
                self.on_media_added(slot, m.mid, m.kind, m.direction, m.simulcast.is_some())
            }
            Event::MediaChanged(m) if !m.direction.is_receiving() => {
                self.unpublish_mid(slot, m.mid);
            }
            Event::KeyframeRequest(req) => self.on_keyframe_request(slot, req.mid, req.kind, now),
            Event::MediaEgressStats(st) => {
                if let Some(p) = self.peers[slot].as_mut()
                    && let Some(o) = p.outs.iter_mut().find(|o| o.mid == st.mid)
                    && st.nacks > o.nacks_seen
                {
                    self.counters.nacks.fetch_add(
                        st.nacks - o.nacks_seen,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    o.nacks_seen = st.nacks;
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
            | Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                if let Some(p) = self.peers[slot].as_mut() {
                    p.bwe = Some(estimate);
                }
                let q = if estimate.as_u64() < 250_000 {
                    "poor"
                } else if estimate.as_u64() < 1_000_000 {
                    "good"
                } else {
                    "excellent"
                };
                self.set_quality(slot, q);
            }
            _ => {}
        }
    }

    fn set_quality(&mut self, slot: usize, quality: &'static str) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        if p.quality == quality {
            return;
        }
        p.quality = quality;
        let pid = p.participant_id.clone();
        let room_id = p.room_id.clone();
        self.broadcast(&room_id, None, || ServerMsg::ConnectionQuality {
            participant_id: pid.clone(),
            quality,
        });
        if let Some(room) = self.rooms.get(&room_id) {
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::Quality {
                        room: room_id.clone(),
                        participant_id: pid.clone(),
                        quality,
                    },
                );
            }
        }
    }

    /// Sends a message to every peer of the room except `except`.
    fn broadcast(&self, room_id: &str, except: Option<usize>, msg: impl Fn() -> ServerMsg) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        for &s in &room.peers {
            if Some(s) == except {
                continue;
            }
            if let Some(p) = self.peers[s].as_ref() {
                p.send(msg(), &self.counters);
            }
        }
    }

    fn on_media_added(
        &mut self,
        slot: usize,
        mid: Mid,
        kind: MediaKind,
        dir: Direction,
        simulcast: bool,
    ) {
        if !dir.is_receiving() {
            return;
        }
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        if p.published.contains_key(&mid) {
            return;
        }
        let source = p
            .offered_sources
            .get(&mid.to_string())
            .copied()
            .unwrap_or(match kind {
                MediaKind::Audio => Source::Microphone,
                MediaKind::Video => Source::Camera,
            });
        let key = self.next_track;
        self.next_track += self.ctl_links.len().max(1) as u64;
        p.published.insert(mid, key);
        let track = Track {
            key,
            id: format!("{}-{}", p.participant_id, key),
            origin: Origin::Local { slot, mid },
            participant_id: p.participant_id.clone(),
            kind,
            source,
            muted: false,
            simulcast,
            keyframes: KeyframeLimiter::default(),
            rates: Default::default(),
            level_sum: 0.0,
            level_count: 0,
        };
        let room_id = p.room_id.clone();
        tracing::info!(participant = %track.participant_id, track = %track.id, kind = kind_str(kind), source = source.as_str(), simulcast, "track published");
        self.counters
            .tracks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.insert_track(&room_id, track);
    }

    /// Adds a track to a room this worker holds — a local publisher's, or a
    /// replica of another worker's — tells the room's local peers and offers
    /// it to them. A local track is replicated to the room's other workers.
    fn insert_track(&mut self, room_id: &Arc<str>, track: Track) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.tracks.contains_key(&track.key) {
            return;
        }
        if let Some(rec) = room.recorder.as_ref() {
            rec.track(&track);
        }
        let publisher = track.publisher();
        if publisher.is_some() {
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::TrackAdded {
                        room: room_id.clone(),
                        track: Box::new(track.replica(self.index)),
                    },
                );
            }
        }
        let info = track.info();
        let pid = track.participant_id.clone();
        room.tracks.insert(track.key, track);
        let others: Vec<usize> = room
            .peers
            .iter()
            .copied()
            .filter(|&s| Some(s) != publisher)
            .collect();
        self.broadcast(room_id, publisher, || ServerMsg::TrackPublished {
            participant_id: pid.clone(),
            track: info.clone(),
        });
        for s in others {
            self.renegotiate(s);
        }
    }

    fn unpublish_mid(&mut self, slot: usize, mid: Mid) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        let Some(key) = p.published.remove(&mid) else {
            return;
        };
        let room_id = p.room_id.clone();
        self.remove_track(&room_id, key);
    }

    /// Removes a track (local, or a replica) from a room this worker holds,
    /// closes it for the local subscribers and tells them; a local track's
    /// end is replicated to the room's other workers.
    fn remove_track(&mut self, room_id: &Arc<str>, key: u64) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(track) = room.tracks.remove(&key) else {
            return;
        };
        if let Some(rec) = room.recorder.as_mut() {
            rec.forwarders.remove(&key);
            rec.sink.offer(RecEvent::TrackEnded { key });
        }
        let publisher = track.publisher();
        if publisher.is_some() {
            self.counters
                .tracks
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(participant = %track.participant_id, track = %track.id, "track unpublished");
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::TrackRemoved {
                        room: room_id.clone(),
                        key,
                    },
                );
            }
        }
        let peers = room.peers.clone();
        for &s in &peers {
            if let Some(p) = self.peers[s].as_mut() {
                for o in p.outs.iter_mut().filter(|o| o.track_key == key) {
                    o.state = match o.state {
                        OutState::Closed | OutState::ClosingOffered => o.state,
                        _ => OutState::Closing,
                    };
                }
            }
        }
        self.broadcast(room_id, publisher, || ServerMsg::TrackUnpublished {
            participant_id: track.participant_id.clone(),
            track_id: track.id.clone(),
        });
        for s in peers {
            if Some(s) != publisher {
                self.renegotiate(s);
            }
        }
    }

    fn start_recording(&mut self, room_id: &str, sink: Box<RecorderSink>) {
        let Some(room_id) = self.rooms.get_key_value(room_id).map(|(k, _)| k.clone()) else {
            tracing::warn!(room = %room_id, "recording asked of a room this worker does not hold");
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let rec = RoomRecorder {
            sink,
            forwarders: HashMap::new(),
        };
        let mut video = Vec::new();
        for t in room.tracks.values() {
            rec.track(t);
            if t.kind == MediaKind::Video {
                video.push(t.key);
            }
        }
        room.recorder = Some(rec);
        let now = Instant::now();
        for key in video {
            self.request_keyframe(&room_id, key, KeyframeRequestKind::Pli, now, true);
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AddPeer(new) => self.add_peer(*new),
            Command::RemovePeer { participant_id } => self.remove_peer(&participant_id),
            Command::ClientOffer {
                participant_id,
                sdp,
                tracks,
            } => self.client_offer(&participant_id, &sdp, tracks),
            Command::ClientAnswer {
                participant_id,
                sdp,
            } => self.client_answer(&participant_id, &sdp),
            Command::Subscribe {
                participant_id,
                track_id,
                subscribe,
            } => self.with_out(&participant_id, &track_id, |o| {
                o.subscribed = subscribe;
                o.forward.set_paused(o.paused || !o.subscribed);
            }),
            Command::Pause {
                participant_id,
                track_id,
                paused,
            } => self.with_out(&participant_id, &track_id, |o| {
                o.paused = paused;
                o.forward.set_paused(o.paused || !o.subscribed);
            }),
            Command::Layer {
                participant_id,
                track_id,
                max_layer,
                max_height,
            } => self.with_out(&participant_id, &track_id, |o| {
                o.forward.set_preference(max_layer, max_height);
            }),
            Command::Mute {
                participant_id,
                source,
                muted,
                by,
            } => self.mute(&participant_id, source, muted, by),
            Command::StartRecording { room_id, sink } => self.start_recording(&room_id, sink),
            Command::StopRecording { room_id } => {
                if let Some(room) = self.rooms.get_mut(room_id.as_str()) {
                    room.recorder = None;
                }
            }
            Command::RoomTracks { room_id, reply } => {
                let mut out: HashMap<String, Vec<TrackInfo>> = HashMap::new();
                // This worker's publishers only: signaling asks every
                // worker holding the room and merges.
                if let Some(room) = self.rooms.get(room_id.as_str()) {
                    for t in room.tracks.values().filter(|t| t.publisher().is_some()) {
                        out.entry(t.participant_id.clone())
                            .or_default()
                            .push(t.info());
                    }
                }
                let _ = reply.send(out);
            }
        }
    }

    /// The DTLS certificate for a new peer: one per worker, remade after
    /// [`DTLS_CERT_LIFETIME`]. Making one (a P-256 key pair, a self-signed
    /// certificate, fresh entropy) costs more than the rest of a peer's
    /// setup together; every peer presenting the same certificate is what
    /// other SFUs do too (peers check it by its fingerprint in the SDP).
    /// `None` only if generation fails, and str0m then makes its own.
    fn dtls_cert(&mut self, now: Instant) -> Option<str0m::config::DtlsCert> {
        let fresh = self
            .dtls_cert
            .as_ref()
            .is_some_and(|(_, made)| now.saturating_duration_since(*made) < DTLS_CERT_LIFETIME);
        if !fresh {
            match super::dtls::provider().dtls_provider.generate_certificate() {
                Some(cert) => self.dtls_cert = Some((cert, now)),
                None => tracing::warn!(worker = self.index, "could not make a DTLS certificate"),
            }
        }
        self.dtls_cert.as_ref().map(|(cert, _)| cert.clone())
    }

    fn add_peer(&mut self, new: NewPeer) {
        if self.by_participant.contains_key(&new.participant_id) {
            self.remove_peer(&new.participant_id);
        }
        let now = Instant::now();
        let ufrag = format!("w{:02x}{}", self.index, random_token(12));
        let pass = random_token(24);
        let mut config = Rtc::builder().set_crypto_provider(super::dtls::provider());
        if let Some(cert) = self.dtls_cert(now) {
            config = config.set_dtls_cert(cert);
        }
        let mut rtc = config
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass,
            })
            .enable_bwe(self.bwe.then(|| Bitrate::kbps(1500)))
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            .enable_av1(true)
            .set_send_buffer_video(1000)
            // Egress stats carry the NACK counts for the metrics.
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        rtc.add_local_candidate(self.candidate.clone());
        if let Some(c) = &self.tcp_candidate {
            rtc.add_local_candidate(c.clone());
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.peers.push(None);
                self.peers.len() - 1
            }
        };
        tracing::debug!(participant = %new.participant_id, worker = self.index, slot, "peer added");
        self.by_ufrag.insert(ufrag.clone(), slot);
        self.by_participant.insert(new.participant_id.clone(), slot);
        self.counters
            .peers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (room_key, created): (Arc<str>, bool) =
            match self.rooms.get_key_value(new.room_id.as_str()) {
                Some((k, _)) => (k.clone(), false),
                None => (Arc::from(new.room_id.as_str()), true),
            };
        if created {
            // Other workers holding the room answer with their tracks.
            for w in (0..self.ctl_links.len()).filter(|&w| w != self.index) {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::Hello {
                        room: room_key.clone(),
                        from: self.index,
                    },
                );
            }
        }
        let room = self.rooms.entry(room_key.clone()).or_insert_with(|| Room {
            counters: new.room_counters.clone(),
            ..Room::default()
        });
        room.peers.push(slot);
        // The `joined` snapshot of others' tracks was taken before this
        // command: a track published since would reach nobody's list here.
        // Tell the new peer of every track in the room now (clients replace
        // tracks they already know by id).
        for t in room.tracks.values() {
            let _ = new.out.try_send(ServerMsg::TrackPublished {
                participant_id: t.participant_id.clone(),
                track: t.info(),
            });
        }
        self.peers[slot] = Some(Peer {
            participant_id: new.participant_id,
            room_id: room_key,
            rtc,
            out: new.out,
            ufrag,
            may_broadcast: new.may_broadcast,
            may_screenshare: new.may_screenshare,
            next_timeout: None,
            dirty: false,
            offered_sources: HashMap::new(),
            published: HashMap::new(),
            ssrcs: HashMap::new(),
            outs: Vec::new(),
            pending_offer: None,
            ice_state: IceConnectionState::New,
            joined_at: now,
            connected_logged: false,
            bwe: None,
            level_sum: 0.0,
            level_count: 0,
            quality: "good",
            alloc: Allocator::default(),
        });
        self.mark_dirty(slot);
        // Offer what the room already publishes.
        self.renegotiate(slot);
    }

    fn remove_peer(&mut self, participant_id: &str) {
        let Some(slot) = self.by_participant.remove(participant_id) else {
            return;
        };
        let Some(mut peer) = self.peers[slot].take() else {
            return;
        };
        peer.rtc.disconnect();
        // Flush what disconnect produced (nothing critical if it fails).
        while let Ok(Output::Transmit(t)) = peer.rtc.poll_output() {
            if t.proto == Protocol::Udp {
                let _ = self.socket.send_to(&t.contents, t.destination);
            }
        }
        self.by_ufrag.remove(&peer.ufrag);
        let tcp = &mut self.tcp;
        self.by_addr.retain(|addr, s| {
            if *s == slot {
                tcp.remove(addr);
                false
            } else {
                true
            }
        });
        self.free.push(slot);
        self.counters
            .peers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let keys: Vec<u64> = peer.published.values().copied().collect();
        if let Some(room) = self.rooms.get_mut(&peer.room_id) {
            room.peers.retain(|&s| s != slot);
        }
        for key in keys {
            self.remove_track(&peer.room_id, key);
        }
        if self
            .rooms
            .get(&peer.room_id)
            .is_some_and(|r| r.peers.is_empty())
            && let Some(room) = self.rooms.remove(&peer.room_id)
        {
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::Goodbye {
                        room: peer.room_id.clone(),
                        from: self.index,
                    },
                );
            }
            // The recording goes on with the room's other workers.
            if let (Some(rec), Some(&w)) = (room.recorder, room.shards.first()) {
                send_ctl(
                    &self.ctl_links,
                    w,
                    Relay::Recorder {
                        room: peer.room_id.clone(),
                        recorder: Box::new(rec),
                    },
                );
            }
        }
        tracing::debug!(participant = %participant_id, "peer removed");
    }

    fn with_out(&mut self, participant_id: &str, track_id: &str, f: impl FnOnce(&mut OutTrack)) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(room_id) = self.peers[slot].as_ref().map(|p| p.room_id.clone()) else {
            return;
        };
        let Some(key) = self
            .rooms
            .get(&room_id)
            .and_then(|r| r.tracks.values().find(|t| t.id == track_id))
            .map(|t| t.key)
        else {
            return;
        };
        let mut wants_keyframe = false;
        if let Some(p) = self.peers[slot].as_mut()
            && let Some(o) = p.outs.iter_mut().find(|o| o.track_key == key)
        {
            f(o);
            wants_keyframe = o.subscribed && !o.paused;
        }
        if wants_keyframe {
            self.request_keyframe(
                &room_id,
                key,
                KeyframeRequestKind::Pli,
                Instant::now(),
                true,
            );
        }
    }

    fn mute(
        &mut self,
        participant_id: &str,
        source: Option<Source>,
        muted: bool,
        by: Option<String>,
    ) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(room_id) = self.peers[slot].as_ref().map(|p| p.room_id.clone()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let mut changed = Vec::new();
        for t in room.tracks.values_mut() {
            if t.publisher() == Some(slot)
                && source.is_none_or(|s| s == t.source)
                && t.muted != muted
            {
                t.muted = muted;
                changed.push((t.id.clone(), t.source));
                for &w in &room.shards {
                    send_ctl(
                        &self.ctl_links,
                        w,
                        Relay::TrackMuted {
                            room: room_id.clone(),
                            key: t.key,
                            muted,
                            by: by.clone(),
                        },
                    );
                }
            }
        }
        for (track_id, src) in changed {
            let by = by.clone();
            self.broadcast(&room_id, None, || ServerMsg::TrackMuted {
                participant_id: participant_id.to_string(),
                track_id: track_id.clone(),
                source: src,
                muted,
                by: by.clone(),
            });
        }
    }

    fn client_offer(&mut self, participant_id: &str, sdp: &str, tracks: Vec<OfferTrack>) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        if p.pending_offer.is_some() {
            // Glare: our offer is outstanding; the polite client rolls back.
            tracing::debug!(participant = %participant_id, "ignoring client offer during our own offer");
            return;
        }
        let declared: HashMap<String, Source> =
            tracks.into_iter().map(|t| (t.mid, t.source)).collect();
        let own_mids: Vec<String> = p.outs.iter().map(|o| o.mid.to_string()).collect();
        for line in sdp_scan::sending_lines(sdp) {
            if own_mids.contains(&line.mid) {
                continue;
            }
            let source = declared.get(&line.mid).copied().unwrap_or(match line.kind {
                MediaKind::Audio => Source::Microphone,
                MediaKind::Video => Source::Camera,
            });
            let allowed = match source {
                Source::Screen => p.may_screenshare && line.kind == MediaKind::Video,
                Source::Microphone => p.may_broadcast && line.kind == MediaKind::Audio,
                Source::Camera => p.may_broadcast && line.kind == MediaKind::Video,
            };
            if !allowed {
                let message = match source {
                    Source::Screen => "your role may not share the screen in this room",
                    _ => "your role may not publish camera or microphone (no broadcast permission)",
                };
                tracing::info!(participant = %participant_id, source = source.as_str(), "publish refused");
                p.send(
                    ServerMsg::OfferRejected {
                        code: "FORBIDDEN",
                        message: message.into(),
                    },
                    &self.counters,
                );
                return;
            }
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                p.send(
                    ServerMsg::OfferRejected {
                        code: "BAD_MESSAGE",
                        message: format!("the offer is not valid SDP: {e}"),
                    },
                    &self.counters,
                );
                return;
            }
        };
        p.offered_sources.extend(declared);
        match p.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                p.send(
                    ServerMsg::Answer {
                        sdp: answer.to_sdp_string(),
                    },
                    &self.counters,
                );
            }
            Err(e) => {
                tracing::info!(participant = %participant_id, error = %e, "offer refused");
                p.send(
                    ServerMsg::OfferRejected {
                        code: "BAD_MESSAGE",
                        message: format!("the offer could not be accepted: {e}"),
                    },
                    &self.counters,
                );
                return;
            }
        }
        // Mids the client stopped sending are unpublished.
        let still: Vec<String> = sdp_scan::sending_lines(sdp)
            .into_iter()
            .map(|l| l.mid)
            .collect();
        let gone: Vec<Mid> = p
            .published
            .keys()
            .copied()
            .filter(|m| !still.contains(&m.to_string()))
            .collect();
        self.mark_dirty(slot);
        self.poll_peer(slot, Instant::now());
        for mid in gone {
            self.unpublish_mid(slot, mid);
        }
        self.renegotiate(slot);
    }

    fn client_answer(&mut self, participant_id: &str, sdp: &str) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        let Some(pending) = p.pending_offer.take() else {
            tracing::debug!(participant = %participant_id, "answer without an offer; ignored");
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                p.send(
                    ServerMsg::error(
                        "BAD_MESSAGE",
                        format!("the answer is not valid SDP: {e}"),
                        false,
                    ),
                    &self.counters,
                );
                return;
            }
        };
        if let Err(e) = p.rtc.sdp_api().accept_answer(pending, answer) {
            tracing::info!(participant = %participant_id, error = %e, "answer refused");
            p.send(
                ServerMsg::error(
                    "BAD_MESSAGE",
                    format!("the answer could not be applied: {e}"),
                    false,
                ),
                &self.counters,
            );
            return;
        }
        let mut newly_active = Vec::new();
        for o in p.outs.iter_mut() {
            o.state = match o.state {
                OutState::Offered => {
                    newly_active.push(o.track_key);
                    if o.kind == MediaKind::Video
                        && let Some(tx) = p.rtc.direct_api().stream_tx_by_mid(o.mid, None)
                    {
                        // The bounded per-stream packet cache NACKs are
                        // answered from (rewritten packets, as sent).
                        tx.set_rtx_cache(NACK_CACHE_PACKETS, NACK_CACHE_AGE, Some(0.15));
                        // Forwarded video leaves as it arrives, like audio:
                        // the publisher already paced it, and str0m's pacer
                        // (1.1 x the estimate) held keyframe bursts back for
                        // tens of milliseconds. The estimate still comes from
                        // TWCC feedback; it drives the layer allocation and,
                        // when it falls far below what is sent, whole-frame
                        // drops (`allocate_layers`). Probes and padding stay
                        // paced.
                        tx.set_unpaced(true);
                    }
                    OutState::Active
                }
                OutState::ClosingOffered => OutState::Closed,
                s => s,
            };
        }
        let room_id = p.room_id.clone();
        self.mark_dirty(slot);
        for key in newly_active {
            self.request_keyframe(
                &room_id,
                key,
                KeyframeRequestKind::Pli,
                Instant::now(),
                true,
            );
        }
        self.renegotiate(slot);
    }

    /// Offers the peer the room's current tracks when they differ from what
    /// it receives, unless an offer is already outstanding.
    fn renegotiate(&mut self, slot: usize) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        if p.pending_offer.is_some() {
            return;
        }
        let Some(room) = self.rooms.get(&p.room_id) else {
            return;
        };
        let mut to_add: Vec<&Track> = room
            .tracks
            .values()
            .filter(|t| t.publisher() != Some(slot) && !p.outs.iter().any(|o| o.track_key == t.key))
            .collect();
        to_add.sort_by_key(|t| t.key);
        let closing: Vec<Mid> = p
            .outs
            .iter()
            .filter(|o| o.state == OutState::Closing)
            .map(|o| o.mid)
            .collect();
        if to_add.is_empty() && closing.is_empty() {
            return;
        }
        let mut change = p.rtc.sdp_api();
        let mut added = Vec::new();
        for t in &to_add {
            let mid = change.add_media(
                t.kind,
                Direction::SendOnly,
                Some(t.participant_id.clone()),
                Some(t.id.clone()),
                None,
            );
            added.push((mid, t.key, t.kind));
        }
        for mid in &closing {
            change.set_direction(*mid, Direction::Inactive);
        }
        let Some((offer, pending)) = change.apply() else {
            return;
        };
        for (mid, key, kind) in added {
            p.outs.push(OutTrack {
                mid,
                track_key: key,
                state: OutState::Offered,
                subscribed: true,
                paused: false,
                forward: Forwarder::new(match kind {
                    MediaKind::Audio => Kind::Audio,
                    MediaKind::Video => Kind::Video,
                }),
                kind,
                nacks_seen: 0,
                pt: None,
            });
        }
        for o in p.outs.iter_mut() {
            if o.state == OutState::Closing {
                o.state = OutState::ClosingOffered;
            }
        }
        let tracks: Vec<OfferedTrack> = p
            .outs
            .iter()
            .filter(|o| matches!(o.state, OutState::Offered | OutState::Active))
            .filter_map(|o| {
                let t = room.tracks.get(&o.track_key)?;
                Some(OfferedTrack {
                    mid: o.mid.to_string(),
                    track_id: t.id.clone(),
                    participant_id: t.participant_id.clone(),
                    kind: kind_str(t.kind),
                    source: t.source,
                })
            })
            .collect();
        p.pending_offer = Some(pending);
        p.send(
            ServerMsg::Offer {
                sdp: offer.to_sdp_string(),
                tracks,
            },
            &self.counters,
        );
        self.mark_dirty(slot);
    }

    fn on_keyframe_request(
        &mut self,
        slot: usize,
        mid: Mid,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let Some(p) = self.peers[slot].as_ref() else {
            return;
        };
        let Some(o) = p.outs.iter().find(|o| o.mid == mid) else {
            return;
        };
        let key = o.track_key;
        let room_id = p.room_id.clone();
        self.request_keyframe(&room_id, key, kind, now, false);
    }

    /// Asks a track's publisher for a keyframe, at most once per 500 ms
    /// (a request inside the interval is deferred, not lost) unless `force`d
    /// by a new subscriber.
    fn request_keyframe(
        &mut self,
        room_id: &Arc<str>,
        key: u64,
        kind: KeyframeRequestKind,
        now: Instant,
        force: bool,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&key) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let (publisher, mid) = match track.origin {
            Origin::Local { slot, mid } => (slot, mid),
            Origin::Remote { worker } => {
                // The publisher's worker limits and counts.
                send_ctl(
                    &self.ctl_links,
                    worker,
                    Relay::Keyframe {
                        room: room_id.clone(),
                        key,
                        kind,
                        force,
                    },
                );
                return;
            }
        };
        if !track.keyframes.request(now) && !force {
            return;
        }
        let simulcast = track.simulcast;
        room.counters
            .plis
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send_keyframe_request(publisher, mid, simulcast, kind);
    }

    fn send_keyframe_request(
        &mut self,
        publisher: usize,
        mid: Mid,
        simulcast: bool,
        kind: KeyframeRequestKind,
    ) {
        self.counters
            .plis
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self.peers[publisher].as_mut() {
            let mut api = p.rtc.direct_api();
            if simulcast {
                for rid in ["q", "h", "f"] {
                    if let Some(rx) = api.stream_rx_by_mid(mid, Some(Rid::from(rid))) {
                        rx.request_keyframe(kind);
                    }
                }
            } else if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                rx.request_keyframe(kind);
            }
        }
        self.mark_dirty(publisher);
    }

    /// Every 100 ms: releases deferred keyframe requests and updates each
    /// subscriber's congestion state from its send queues.
    fn housekeeping(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_keyframes);
        for (room_id, room) in self.rooms.iter_mut() {
            if let Some(rec) = room.recorder.as_ref() {
                while let Ok(key) = rec.sink.keyframes.try_recv() {
                    let Some(t) = room.tracks.get_mut(&key) else {
                        continue;
                    };
                    match t.origin {
                        Origin::Local { slot, mid } => {
                            if t.keyframes.request(now) {
                                due.push((slot, mid, t.simulcast));
                            }
                        }
                        Origin::Remote { worker } => send_ctl(
                            &self.ctl_links,
                            worker,
                            Relay::Keyframe {
                                room: room_id.clone(),
                                key,
                                kind: KeyframeRequestKind::Pli,
                                force: false,
                            },
                        ),
                    }
                }
            }
            for t in room.tracks.values_mut() {
                if let Origin::Local { slot, mid } = t.origin
                    && t.keyframes.poll(now)
                {
                    due.push((slot, mid, t.simulcast));
                }
            }
        }
        for (publisher, mid, simulcast) in due.drain(..) {
            self.send_keyframe_request(publisher, mid, simulcast, KeyframeRequestKind::Pli);
        }
        self.scratch_keyframes = due;
    }

    /// Every 500 ms: shares each subscriber's bandwidth estimate among the
    /// video tracks it receives (simulcast layer caps), and tells str0m's
    /// BWE what to probe for.
    fn allocate_layers(&mut self, now: Instant) {
        let mut demands = std::mem::take(&mut self.scratch_demands);
        let mut outs = std::mem::take(&mut self.scratch_outs);
        for slot in 0..self.peers.len() {
            let Some(p) = self.peers[slot].as_mut() else {
                continue;
            };
            let Some(room) = self.rooms.get_mut(&p.room_id) else {
                continue;
            };
            demands.clear();
            outs.clear();
            let mut audio = 0u64;
            let mut desired = 0u64;
            for (i, o) in p.outs.iter().enumerate() {
                if o.state != OutState::Active || !o.subscribed || o.paused {
                    continue;
                }
                let Some(t) = room.tracks.get_mut(&o.track_key) else {
                    continue;
                };
                if o.kind == MediaKind::Audio {
                    audio += AUDIO_BPS;
                    continue;
                }
                let layer_bps = [
                    t.rates[0].bps(now),
                    t.rates[1].bps(now),
                    t.rates[2].bps(now),
                ];
                if layer_bps == [0; 3] {
                    continue;
                }
                let preferred = o.forward.preferred();
                desired += Layer::ALL
                    .into_iter()
                    .rev()
                    .filter(|l| *l <= preferred)
                    .map(|l| layer_bps[l.index()])
                    .find(|b| *b > 0)
                    .unwrap_or(0);
                demands.push(TrackDemand {
                    preferred,
                    layer_bps,
                    cap: o.forward.cap(),
                });
                outs.push(i);
            }
            if demands.is_empty() {
                continue;
            }
            if let Some(estimate) = p.bwe {
                let budget = estimate.as_u64().saturating_sub(audio);
                if p.alloc.allocate(budget, now, &mut demands) {
                    tracing::debug!(
                        participant = %p.participant_id,
                        estimate_bps = estimate.as_u64(),
                        caps = ?demands.iter().map(|d| d.cap).collect::<Vec<_>>(),
                        "simulcast layer caps changed"
                    );
                }
                for (d, &i) in demands.iter().zip(outs.iter()) {
                    p.outs[i].forward.set_cap(d.cap);
                }
            }
            // Keep traffic up to the next layer up (padding fills the gap)
            // and let the estimator probe for what the preferences want.
            let current: u64 = demands.iter().map(|d| d.layer_bps[d.cap.index()]).sum();
            let next = demands
                .iter()
                .filter_map(|d| {
                    let up = d.cap.higher()?;
                    (up <= d.preferred && d.layer_bps[up.index()] > 0).then(|| {
                        d.layer_bps[up.index()]
                            - d.layer_bps[d.cap.index()].min(d.layer_bps[up.index()])
                    })
                })
                .min()
                .unwrap_or(0);
            // Congested: even the allocated layers need more than twice
            // what the estimate says the path carries. Video then goes frame
            // by frame (whole frames dropped, resumed at a keyframe) until
            // the estimate recovers; audio is untouched.
            let congested = p
                .bwe
                .is_some_and(|e| e.as_u64().saturating_mul(CONGESTION_FACTOR) < current);
            for &i in outs.iter() {
                p.outs[i].forward.set_congested(congested);
            }
            let minimum = current + audio + next;
            let desired = (desired + audio).max(minimum);
            p.rtc
                .bwe()
                .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(slot);
            }
        }
        self.scratch_demands = demands;
        self.scratch_outs = outs;
    }

    fn forward_rtp(&mut self, slot: usize, pkt: &RtpPacket, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.rtp_in.fetch_add(1, Relaxed);
        self.counters
            .rtp_bytes_in
            .fetch_add(pkt.payload.len() as u64, Relaxed);
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let (mid, rid) = match p.ssrcs.get(&ssrc) {
            Some(v) => *v,
            None => {
                let Some(rx) = p
                    .rtc
                    .direct_api()
                    .stream_rx(&ssrc)
                    .map(|s| (s.mid(), s.rid()))
                else {
                    return;
                };
                p.ssrcs.insert(ssrc, rx);
                rx
            }
        };
        let Some(&key) = p.published.get(&mid) else {
            return;
        };
        let codec = p
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|pp| pp.pt() == pkt.header.payload_type)
            .map(|pp| pp.spec().codec);
        let Some(codec) = codec else {
            return;
        };
        if let Some(level) = pkt.header.ext_vals.audio_level {
            p.level_sum += f32::from(level.unsigned_abs());
            p.level_count += 1;
        }
        let room_id = p.room_id.clone();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&key) else {
            return;
        };
        tracing::trace!(track = %track.id, seq = *pkt.seq_no, "rtp in");
        if track.muted && track.kind == MediaKind::Audio {
            // A muted microphone still sends DTX comfort noise; nobody needs it.
            return;
        }
        let layer = match rid {
            Some(r) if track.simulcast => Layer::from_rid(r.as_bytes()),
            _ => Layer::F,
        };
        track.rates[layer.index()].record(pkt.payload.len(), now);
        room.counters.rtp_in.fetch_add(1, Relaxed);
        room.counters
            .bytes_in
            .fetch_add(pkt.payload.len() as u64, Relaxed);
        let view = Packet {
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            layer,
            keyframe: track.kind == MediaKind::Video && is_keyframe(codec, &pkt.payload),
            clock_rate: if track.kind == MediaKind::Audio {
                48_000
            } else {
                90_000
            },
            arrival: now,
        };
        let wants_capture = room.recorder.is_some() || !room.shards.is_empty();
        let out = Outgoing {
            key,
            view,
            codec,
            payload: pkt.payload.clone(),
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            capture: if wants_capture {
                capture_time(pkt, view.clock_rate)
            } else {
                None
            },
        };
        // The room's other workers fan it out to their own subscribers.
        for &w in &room.shards {
            let relayed = RelayedRtp {
                room: room_id.clone(),
                pkt: out.clone(),
            };
            match self.rtp_links.get(w).map(|l| l.try_send(relayed)) {
                Some(Ok(())) => self.counters.rtp_relayed.fetch_add(1, Relaxed),
                _ => self.counters.relay_dropped.fetch_add(1, Relaxed),
            };
        }
        self.deliver(&room_id, &out, Some(slot), now);
    }

    /// A packet another worker relayed: counted into the track's rates and
    /// audio level here too (layer allocation and active speakers are
    /// computed per worker), then fanned out to this worker's subscribers.
    fn on_relayed_rtp(&mut self, r: RelayedRtp) {
        let now = Instant::now();
        let Some(room) = self.rooms.get_mut(&r.room) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&r.pkt.key) else {
            return;
        };
        track.rates[r.pkt.view.layer.index()].record(r.pkt.payload.len(), now);
        if let Some(level) = r.pkt.audio_level {
            track.level_sum += f32::from(level.unsigned_abs());
            track.level_count += 1;
        }
        self.deliver(&r.room, &r.pkt, None, now);
    }

    /// Fans a packet out to the room's recorder and every local subscriber
    /// of its track (but `except`, its publisher).
    fn deliver(&mut self, room_id: &Arc<str>, out: &Outgoing, except: Option<usize>, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(track) = room.tracks.get(&out.key) else {
            return;
        };
        let key = out.key;
        let kind = track.kind;
        let view = &out.view;
        let nackable = kind == MediaKind::Video;
        let mut need_keyframe = false;
        if let Some(rec) = room.recorder.as_mut() {
            let rec_kind = if kind == MediaKind::Audio {
                Kind::Audio
            } else {
                Kind::Video
            };
            let fwd = rec
                .forwarders
                .entry(key)
                .or_insert_with(|| Forwarder::new(rec_kind));
            if let (Decision::Forward { seq, ts }, Some(codec)) =
                (fwd.decide(view), media_codec(out.codec))
            {
                rec.sink.offer(RecEvent::Packet(RecPacket {
                    key,
                    codec,
                    seq,
                    ts,
                    marker: view.marker,
                    payload: out.payload.clone(),
                    arrival: view.arrival,
                    capture: out.capture,
                }));
            }
            need_keyframe |= fwd.take_keyframe_request();
        }
        for &s in &room.peers {
            if Some(s) == except {
                continue;
            }
            let Some(sub) = self.peers[s].as_mut() else {
                continue;
            };
            let Some(o) = sub.outs.iter_mut().find(|o| o.track_key == key) else {
                continue;
            };
            if o.state != OutState::Active {
                continue;
            }
            let decision = o.forward.decide(view);
            need_keyframe |= o.forward.take_keyframe_request();
            let (seq, ts) = match decision {
                Decision::Forward { seq, ts } => (seq, ts),
                Decision::Drop(_) => {
                    self.counters.rtp_dropped.fetch_add(1, Relaxed);
                    room.counters.rtp_dropped.fetch_add(1, Relaxed);
                    continue;
                }
            };
            let pt = match o.pt {
                Some((c, pt)) if c == out.codec => pt,
                _ => {
                    let Some(pt) = sub
                        .rtc
                        .codec_config()
                        .params()
                        .iter()
                        .find(|pp| pp.spec().codec == out.codec)
                        .map(|pp| pp.pt())
                    else {
                        continue;
                    };
                    o.pt = Some((out.codec, pt));
                    pt
                }
            };
            let out_mid = o.mid;
            let ext = ExtensionValues {
                audio_level: out.audio_level,
                voice_activity: out.voice_activity,
                ..Default::default()
            };
            let mut api = sub.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), ts, now, out.payload.clone())
                    .marker(view.marker)
                    .nackable(nackable)
                    .ext_vals(ext),
            );
            self.counters.rtp_forwarded.fetch_add(1, Relaxed);
            self.counters
                .rtp_bytes_forwarded
                .fetch_add(out.payload.len() as u64, Relaxed);
            room.counters.rtp_forwarded.fetch_add(1, Relaxed);
            room.counters
                .bytes_forwarded
                .fetch_add(out.payload.len() as u64, Relaxed);
            if !sub.dirty {
                sub.dirty = true;
                self.dirty.push(s);
            }
        }
        if need_keyframe {
            self.request_keyframe(room_id, key, KeyframeRequestKind::Pli, now, false);
        }
    }

    /// Notes that worker `from` holds the room too and sends it this
    /// worker's tracks of it (both sides do, on `Hello` and on `Welcome`: a
    /// track published between the two would otherwise reach one side
    /// only; a track already known is ignored). False when this worker
    /// does not hold the room.
    fn add_shard(&mut self, room: &Arc<str>, from: usize) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        if !r.shards.contains(&from) {
            r.shards.push(from);
        }
        for t in r.tracks.values().filter(|t| t.publisher().is_some()) {
            send_ctl(
                &self.ctl_links,
                from,
                Relay::TrackAdded {
                    room: room.clone(),
                    track: Box::new(t.replica(self.index)),
                },
            );
        }
        true
    }

    /// A control message from another worker holding (or joining) a room.
    fn on_relay(&mut self, m: Relay) {
        match m {
            Relay::Hello { room, from } => {
                if self.add_shard(&room, from) {
                    send_ctl(
                        &self.ctl_links,
                        from,
                        Relay::Welcome {
                            room: room.clone(),
                            from: self.index,
                        },
                    );
                }
            }
            // Our tracks go there too. If the room has left this worker
            // since its `Hello`, `from` must stop relaying to it.
            Relay::Welcome { room, from } => {
                if !self.add_shard(&room, from) {
                    send_ctl(
                        &self.ctl_links,
                        from,
                        Relay::Goodbye {
                            room,
                            from: self.index,
                        },
                    );
                }
            }
            Relay::Goodbye { room, from } => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.shards.retain(|&w| w != from);
                let gone: Vec<u64> = r
                    .tracks
                    .values()
                    .filter(|t| matches!(t.origin, Origin::Remote { worker } if worker == from))
                    .map(|t| t.key)
                    .collect();
                for key in gone {
                    self.remove_track(&room, key);
                }
            }
            Relay::TrackAdded { room, track } => {
                self.insert_track(&room, Track::from_replica(*track));
            }
            Relay::TrackRemoved { room, key } => self.remove_track(&room, key),
            Relay::TrackMuted {
                room,
                key,
                muted,
                by,
            } => {
                let Some(t) = self
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.tracks.get_mut(&key))
                else {
                    return;
                };
                t.muted = muted;
                let (pid, track_id, source) = (t.participant_id.clone(), t.id.clone(), t.source);
                self.broadcast(&room, None, || ServerMsg::TrackMuted {
                    participant_id: pid.clone(),
                    track_id: track_id.clone(),
                    source,
                    muted,
                    by: by.clone(),
                });
            }
            Relay::Keyframe {
                room,
                key,
                kind,
                force,
            } => self.request_keyframe(&room, key, kind, Instant::now(), force),
            Relay::Quality {
                room,
                participant_id,
                quality,
            } => self.broadcast(&room, None, || ServerMsg::ConnectionQuality {
                participant_id: participant_id.clone(),
                quality,
            }),
            Relay::Recorder { room, recorder } => {
                if let Some(r) = self.rooms.get_mut(&room)
                    && r.recorder.is_none()
                {
                    r.recorder = Some(*recorder);
                } else {
                    // Nobody holds the room any more: dropping the sink
                    // ends the recording (its files are closed).
                    tracing::info!(room = %room, "recorder handed over to a worker without the room; recording ends");
                }
            }
        }
    }

    fn speaker_tick(&mut self) {
        for room in self.rooms.values_mut() {
            let local = room.peers.iter().filter_map(|&s| {
                let p = self.peers[s].as_mut()?;
                let avg = (p.level_count > 0).then(|| p.level_sum / p.level_count as f32);
                p.level_sum = 0.0;
                p.level_count = 0;
                Some((p.participant_id.clone(), avg))
            });
            // Participants of other workers, by the levels of their relayed audio.
            let remote = room
                .tracks
                .values_mut()
                .filter(|t| t.publisher().is_none() && t.kind == MediaKind::Audio)
                .map(|t| {
                    let avg = (t.level_count > 0).then(|| t.level_sum / t.level_count as f32);
                    t.level_sum = 0.0;
                    t.level_count = 0;
                    (t.participant_id.clone(), avg)
                });
            if let Some(speakers) = room.speakers.tick(local.chain(remote)) {
                if let (Some(rec), Some(first)) = (room.recorder.as_ref(), speakers.first()) {
                    rec.sink.offer(RecEvent::Speaker {
                        participant_id: first.clone(),
                    });
                }
                for &s in &room.peers {
                    if let Some(p) = self.peers[s].as_ref() {
                        p.send(
                            ServerMsg::ActiveSpeakers {
                                speakers: speakers.clone(),
                            },
                            &self.counters,
                        );
                    }
                }
            }
        }
    }
}

/// Queues a control message for worker `to` (unbounded: it never waits;
/// it fails only when that worker has stopped, and then nobody needs it).
fn send_ctl(links: &[Sender<Relay>], to: usize, m: Relay) {
    if let Some(l) = links.get(to) {
        let _ = l.send(m);
    }
}

/// The codec as the media crate names it (`None` for codecs not recorded).
fn media_codec(c: Codec) -> Option<convene_media::Codec> {
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
fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => convene_media::vp8::is_keyframe(payload),
        Codec::Vp9 => convene_media::vp9::is_keyframe(payload),
        Codec::H264 => convene_media::h264::is_keyframe(payload),
        Codec::Av1 => convene_media::av1::is_keyframe(payload),
        _ => false,
    }
}

fn random_token(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}
