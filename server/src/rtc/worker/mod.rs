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
//!
//! This file is the event loop (channels, timers, the send batch) and the
//! dispatch of str0m events and signaling commands. The rest, one job a file:
//! `state` (tracks, peers, rooms), `lifecycle` (peers built and torn down),
//! `negotiation` (offers, answers, publish/unpublish, mute), `forwarding`
//! (fan-out, keyframes, layer allocation, speakers), `copies` (the turn's
//! copies written subscriber by subscriber), `receive` (a datagram
//! to its peer's str0m), `viewers` (what a viewer
//! that cannot renegotiate is shown) and `relay` (rooms held by several
//! workers).

#[cfg(test)]
mod connect_tests;
mod copies;
mod forwarding;
mod lifecycle;
mod negotiation;
mod own;
mod own_hooks;
#[cfg(test)]
mod own_streams_tests;
#[cfg(test)]
mod own_tests;
mod poll;
mod receive;
mod relay;
#[cfg(test)]
mod seal_tests;
mod state;
pub mod stats;
mod viewers;

pub use lifecycle::peer_config;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_sfu::{Layer, TrackDemand};
use crossbeam_channel::{Receiver, Sender, select};
use str0m::media::Mid;
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Input};
use tokio::sync::{mpsc, oneshot};

use super::udp::{DATAGRAM_CAPACITY, Datagram};
use super::{MediaCounters, MediaEvent};
use crate::recording::recorder::RecorderSink;
use crate::rtc::WorkerId;
use crate::rtc::notice::{NoticeSink, PublishedMid, Source, TrackInfo};
pub(crate) use relay::{CtlTx, Relay, RelayedRtp, RemoteTrack, send_ctl};
pub use relay::{Links, Mesh};
pub(crate) use state::Outgoing;
use state::{PeerTable, Room, Slot};

/// A participant handed to a worker by signaling.
pub struct NewPeer {
    pub participant_id: String,
    pub room_id: String,
    pub out: Box<dyn NoticeSink>,
    /// May publish camera and microphone (`broadcast`).
    pub may_broadcast: bool,
    /// May publish a screen track (`screenshare` and the room allows it).
    pub may_screenshare: bool,
    /// Receives the room's tracks (the server offers them). A WHIP
    /// publisher does not: its one offer/answer is all it negotiates.
    pub receives: bool,
    /// A viewer that negotiates once (WHEP): its offer's m-lines are filled
    /// with the room's tracks as `View` says (see `viewers.rs`).
    pub view: Option<View>,
    /// The room's counters (the same Arc for every peer of the room).
    pub room_counters: Arc<super::RoomCounters>,
}

/// What a viewer that cannot renegotiate (a WHEP player) is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// The active speakers (the loudest first), one per m-line of a kind.
    Speakers,
    /// This participant only.
    Participant(String),
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
        tracks: Vec<PublishedMid>,
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
    /// A participant's role changed: what it may publish from now on
    /// (its tracks of sources it lost are muted by signaling).
    SetPermissions {
        participant_id: String,
        may_broadcast: bool,
        may_screenshare: bool,
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
    /// Answer when the worker's loop gets to it (the readiness probe).
    Ping {
        reply: oneshot::Sender<()>,
    },
    /// Stop feeding the room's recorder (it then closes its files).
    StopRecording {
        room_id: String,
    },
    /// Feed every track of the room to a restream (`crate::restream`) until
    /// its thread ends (seen by `housekeeping`: the sink's keyframe channel
    /// disconnects), so ffmpeg is still fed while it closes the stream.
    StartRestream {
        room_id: String,
        id: String,
        sink: Box<RecorderSink>,
    },
}

/// Active speakers and simulcast layer allocations are recomputed this often.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(500);

/// A peer whose ICE has been disconnected this long is dropped: with str0m's
/// 15 s without a binding request before it disconnects, a peer that went
/// silent is dropped about 30 s after its last sign of consent (RFC 7675's
/// consent lifetime). The participant is told (`MEDIA_LOST`) and can resume
/// with a fresh peer connection.
const MEDIA_LOST_AFTER: Duration = Duration::from_secs(15);

/// Most datagrams one turn of the worker takes before it forwards (the
/// rest wait for the next turn, so that timers and commands are not held up
/// behind a flood).
const TURN_DATAGRAMS: usize = 64;

/// Keyframe limiters are checked this often.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// A worker's DTLS certificate is remade this often (new peers get the new
/// one; connected peers keep theirs). The certificates are valid a year.
const DTLS_CERT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How often str0m reports per-peer and per-stream statistics (NACK
/// counts, and the admin console's figures, which update every second).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

pub struct Worker {
    bwe: bool,
    /// Subscribers' RTP is written by `own/`, not str0m.
    own_write: bool,
    index: WorkerId,
    /// Senders to every worker's relay channels (`[index]` is our own).
    rtp_links: Vec<Sender<RelayedRtp>>,
    ctl_links: Vec<CtlTx>,
    socket: Arc<UdpSocket>,
    /// The address str0m is told every datagram arrived at: the advertised
    /// candidate's. The socket may be bound to 0.0.0.0 (the default) or to
    /// a private address behind a 1:1 NAT (`--public-ip`), and str0m's ICE
    /// answers only binding requests addressed to one of its own local
    /// candidates; the socket's own address would match none of them.
    arrived_at: SocketAddr,
    candidate: Candidate,
    peers: PeerTable,
    by_participant: HashMap<String, Slot>,
    by_ufrag: HashMap<String, Slot>,
    /// Shared with the routers: where a restarted peer's ufrag goes.
    ufrags: Arc<super::stun::UfragRoutes>,
    by_addr: HashMap<SocketAddr, Slot>,
    /// ICE-TCP connections by remote address.
    tcp: HashMap<SocketAddr, super::tcp::TcpWriter>,
    tcp_candidate: Option<Candidate>,
    rooms: HashMap<Arc<str>, Room>,
    /// The next track key: `index + 1` plus multiples of the worker count,
    /// so keys never collide between workers.
    next_track: u64,
    pool: Sender<Box<[u8; DATAGRAM_CAPACITY]>>,
    counters: Arc<MediaCounters>,
    events: mpsc::Sender<MediaEvent>,
    /// Built-in TURN relay addresses by room (see `on_datagram`).
    relay_rooms: Arc<super::RelayRooms>,
    /// Incoming RTP waiting to be forwarded: (publisher slot, packet).
    rtp_queue: Vec<(Slot, RtpPacket)>,
    /// Slots that need polling.
    dirty: Vec<Slot>,
    /// The turn's forwarded copies, written subscriber by subscriber.
    copies: copies::Copies,
    last_speaker_tick: Instant,
    last_housekeeping: Instant,
    /// Scratch space of the housekeeping passes (kept to avoid allocating).
    scratch_demands: Vec<TrackDemand>,
    scratch_keyframes: Vec<(Slot, Mid, bool)>,
    /// One packet's sends, as the track's fan-out decided them.
    scratch_sends: Vec<(state::Sub, u64, u32)>,
    /// Peers' str0m timeouts, earliest first: (when, slot). Entries that no
    /// longer match their peer's `next_timeout` are stale and skipped.
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, Slot)>>,
    /// The own write path's timers (`own/`), as `timers` for str0m's:
    /// an entry not matching its peer's `OwnPath::next_timeout` is stale.
    own_timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, Slot)>>,
    /// A copy of an RTCP datagram from an own-path peer, opened in place.
    scratch_rtcp: Vec<u8>,
    /// UDP datagrams produced this turn, flushed at its end.
    batch: super::batch::SendBatch,
    /// The DTLS certificate of this worker's peers, and when it was made
    /// (see [`Worker::dtls_cert`]).
    dtls_cert: Option<(str0m::config::DtlsCert, Instant)>,
    /// Per-peer figures for the admin console (`stats.rs`).
    stats: stats::PeerStatsBook,
}

/// Everything a worker thread needs.
pub struct WorkerSetup {
    pub index: WorkerId,
    /// Send-side bandwidth estimation for subscribers.
    pub bwe: bool,
    /// UDP GSO sends (see `batch.rs`).
    pub gso: bool,
    /// Subscribers' RTP written by `own/` (`--media-write-path own`).
    pub own_write: bool,
    pub links: Links,
    pub socket: Arc<UdpSocket>,
    /// The advertised media address (the host candidate, UDP and TCP).
    pub candidate: SocketAddr,
    /// Also offer a passive ICE-TCP candidate on the same address.
    pub tcp: bool,
    pub datagrams: Receiver<Datagram>,
    pub commands: Receiver<Command>,
    pub pool: Sender<Box<[u8; DATAGRAM_CAPACITY]>>,
    pub counters: Arc<MediaCounters>,
    pub events: mpsc::Sender<MediaEvent>,
    /// Ufrags of restarted peers, for the routers (`stun::UfragRoutes`).
    pub ufrags: Arc<super::stun::UfragRoutes>,
    pub relay_rooms: Arc<super::RelayRooms>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Where the worker publishes its peers' figures once a second.
    pub peer_stats: Arc<stats::PeerStatsBoard>,
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
        own_write: setup.own_write,
        next_track: setup.index.index() as u64 + 1,
        rtp_links,
        ctl_links,
        socket: setup.socket,
        arrived_at: setup.candidate,
        candidate,
        peers: PeerTable::default(),
        by_participant: HashMap::new(),
        by_ufrag: HashMap::new(),
        by_addr: HashMap::new(),
        tcp: HashMap::new(),
        tcp_candidate,
        rooms: HashMap::new(),
        pool: setup.pool,
        counters: setup.counters,
        events: setup.events,
        ufrags: setup.ufrags,
        relay_rooms: setup.relay_rooms,
        rtp_queue: Vec::with_capacity(64),
        dirty: Vec::with_capacity(64),
        copies: copies::Copies::default(),
        last_speaker_tick: Instant::now(),
        last_housekeeping: Instant::now(),
        scratch_demands: Vec::new(),
        scratch_keyframes: Vec::new(),
        scratch_sends: Vec::new(),
        timers: std::collections::BinaryHeap::new(),
        own_timers: std::collections::BinaryHeap::new(),
        scratch_rtcp: Vec::with_capacity(1500),
        batch: super::batch::SendBatch::with_gso(setup.gso),
        dtls_cert: None,
        stats: stats::PeerStatsBook::new(setup.peer_stats),
    };
    // The certificate is made now, not at the first join: it is that
    // join's wait otherwise, and aws-lc's first random bytes in the process
    // seed its generator from CPU jitter (~25 ms on the benchmark machine,
    // `tree_jitter_initialize`), which landed in the first joins of a
    // storm after a restart.
    let _ = w.dtls_cert(Instant::now());
    // The own write path seals with the keys each handshake on this
    // thread exports (`rtc::dtls`; taken in `poll.rs`).
    crate::rtc::dtls::export_keys_on_this_thread(w.own_write);
    let datagrams = setup.datagrams;
    let commands = setup.commands;
    let stop = setup.stop;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        let deadline = w.next_deadline(now);
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        let mut taken = 0usize;
        select! {
            recv(datagrams) -> d => match d {
                Ok(d) => {
                    taken = 1;
                    w.on_datagram(d)
                }
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
        taken = take_queued(&mut w, &datagrams, taken);
        // A turn woken by a datagram yields once before it forwards, then
        // takes what came meanwhile (up to [`TURN_DATAGRAMS`] in all). A
        // frame's packets arrive within tens of microseconds, and where the
        // receive thread shares this core it is the one that moves them
        // here: without the yield the first packet's wake-up ran the turn
        // before the rest were read, and a frame to each subscriber left in
        // two or three GSO sends instead of one, where the kernel's cost per
        // datagram falls with a send's length (docs/benchmarks.md, "a
        // turn's datagrams read after one yield"). Where nothing else is
        // runnable on this core the yield returns at once.
        if taken > 0 && taken < TURN_DATAGRAMS {
            std::thread::yield_now();
            take_queued(&mut w, &datagrams, taken);
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
    for slot in w.peers.slots() {
        if let Some(p) = w.peers.get_mut(slot) {
            p.rtc.disconnect();
        }
    }
    tracing::debug!(worker = %w.index, "media worker stopped");
}

/// Takes datagrams queued for the worker without blocking until a turn
/// holds [`TURN_DATAGRAMS`] (`taken` so far); gives the turn's count.
fn take_queued(w: &mut Worker, datagrams: &Receiver<Datagram>, mut taken: usize) -> usize {
    while taken < TURN_DATAGRAMS {
        let Ok(d) = datagrams.try_recv() else {
            break;
        };
        taken += 1;
        w.on_datagram(d);
    }
    taken
}

/// Sends a batch's queued datagrams (see `batch.rs`) and counts them.
fn flush(batch: &mut super::batch::SendBatch, socket: &UdpSocket, counters: &MediaCounters) {
    use std::sync::atomic::Ordering::Relaxed;
    if batch.is_empty() {
        return;
    }
    let f = batch.flush(socket);
    counters.packets_out.fetch_add(f.packets, Relaxed);
    counters.gso_packets_out.fetch_add(f.gso_packets, Relaxed);
    counters.gso_sends.fetch_add(f.gso_sends, Relaxed);
    counters.bytes_out.fetch_add(f.bytes, Relaxed);
}

/// The worker's ways out for what the own write path writes: the send
/// batch (flushed before it would overflow) or the peer's ICE-TCP
/// connection; spare buffers from the batch.
struct Io<'a> {
    batch: &'a mut super::batch::SendBatch,
    socket: &'a UdpSocket,
    counters: &'a MediaCounters,
    tcp: &'a HashMap<SocketAddr, super::tcp::TcpWriter>,
}

impl own::Datagrams for Io<'_> {
    fn spare(&mut self) -> Vec<u8> {
        self.batch.spare()
    }

    fn send(&mut self, dest: own::Dest, datagram: Vec<u8>) {
        use std::sync::atomic::Ordering::Relaxed;
        if dest.tcp {
            if self.tcp.get(&dest.addr).is_some_and(|w| w.send(&datagram)) {
                self.counters
                    .bytes_out
                    .fetch_add(datagram.len() as u64, Relaxed);
                self.counters.packets_out.fetch_add(1, Relaxed);
            }
            self.batch.recycle(datagram);
            return;
        }
        if self.batch.flush_before(dest.addr) {
            flush(self.batch, self.socket, self.counters);
        }
        self.batch.push(dest.addr, datagram);
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.batch.recycle(buf);
    }
}

impl Worker {
    fn next_deadline(&self, now: Instant) -> Instant {
        if !self.dirty.is_empty() || !self.rtp_queue.is_empty() || !self.copies.is_empty() {
            return now;
        }
        let mut t = now + Duration::from_millis(100);
        if let Some(&std::cmp::Reverse((due, _))) = self.timers.peek() {
            t = t.min(due);
        }
        if let Some(&std::cmp::Reverse((due, _))) = self.own_timers.peek() {
            t = t.min(due);
        }
        t.min(self.last_speaker_tick + SPEAKER_INTERVAL)
            .min(self.last_housekeeping + HOUSEKEEPING_INTERVAL)
    }

    /// Drops the stale entries of the timer heap (each poll that changes a
    /// peer's deadline leaves the old entry behind until its time comes).
    /// Run when the heap holds more than a few entries per peer slot, it
    /// costs O(1) amortised per push and keeps the heap small.
    fn compact_timers(&mut self) {
        let peers = &self.peers;
        self.timers.retain(|std::cmp::Reverse((t, slot))| {
            peers.get(*slot).is_some_and(|p| p.next_timeout == Some(*t))
        });
    }

    /// Sends the queued datagrams (see `batch.rs`).
    fn flush_sends(&mut self) {
        flush(&mut self.batch, &self.socket, &self.counters);
    }

    fn mark_dirty(&mut self, slot: Slot) {
        if let Some(p) = self.peers.get_mut(slot)
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
            if let Some(p) = self.peers.get_mut(slot)
                && p.next_timeout == Some(t)
            {
                p.next_timeout = None;
                let _ = p.rtc.handle_input(Input::Timeout(now));
                self.claim_keys(slot, now);
                self.mark_dirty(slot);
            }
        }
        self.own_timeouts(now);
        let mut rounds = 0;
        while !(self.dirty.is_empty() && self.rtp_queue.is_empty() && self.copies.is_empty())
            && rounds < 16
        {
            rounds += 1;
            // Peers marked while this batch is polled land in a fresh list.
            let mut batch = std::mem::take(&mut self.dirty);
            for &slot in &batch {
                if let Some(p) = self.peers.get_mut(slot) {
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
            // The copies decided above, and any relayed in before the turn.
            self.write_copies(now);
            if self.dirty.is_empty() {
                batch.clear();
                self.dirty = batch;
            }
        }
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING_INTERVAL {
            self.last_housekeeping = now;
            self.housekeeping(now);
            self.drop_silent_peers(now);
            self.publish_peer_stats(now);
        }
        if now.saturating_duration_since(self.last_speaker_tick) >= SPEAKER_INTERVAL {
            self.last_speaker_tick = now;
            self.speaker_tick();
            self.allocate_layers(now);
        }
        self.flush_sends();
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
            } => self.with_out(&participant_id, &track_id, |o, forward| {
                o.subscribed = subscribe;
                forward.set_paused(o.paused || !o.subscribed);
            }),
            Command::Pause {
                participant_id,
                track_id,
                paused,
            } => self.with_out(&participant_id, &track_id, |o, forward| {
                o.paused = paused;
                forward.set_paused(o.paused || !o.subscribed);
            }),
            Command::Layer {
                participant_id,
                track_id,
                max_layer,
                max_height,
            } => self.with_out(&participant_id, &track_id, |_, forward| {
                forward.set_preference(max_layer, max_height);
            }),
            Command::Mute {
                participant_id,
                source,
                muted,
                by,
            } => self.mute(&participant_id, source, muted, by),
            Command::SetPermissions {
                participant_id,
                may_broadcast,
                may_screenshare,
            } => {
                if let Some(&slot) = self.by_participant.get(&participant_id)
                    && let Some(p) = self.peers.get_mut(slot)
                {
                    p.may_broadcast = may_broadcast;
                    p.may_screenshare = may_screenshare;
                }
            }
            Command::StartRecording { room_id, sink } => self.start_recording(&room_id, sink),
            Command::StopRecording { room_id } => {
                let key = self
                    .rooms
                    .get_key_value(room_id.as_str())
                    .map(|(k, _)| k.clone());
                if let Some(key) = key {
                    if let Some(room) = self.rooms.get_mut(&key) {
                        room.recorder = None;
                    }
                    // A room held only for its recording is let go.
                    self.drop_room_if_unused(&key);
                }
            }
            Command::Ping { reply } => {
                let _ = reply.send(());
            }
            Command::StartRestream { room_id, id, sink } => self.start_restream(&room_id, id, sink),
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
}
