//! Media threads: each owns many str0m peers (one UDP socket each) and one
//! mio poll; no tokio on this path. Signaling reaches a thread through its
//! command channel and a waker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc::UnboundedSender;

use crate::payload::{self, VideoShape};
use crate::signaling::{SigIn, SigOut};
use crate::stats;

const WAKE: Token = Token(usize::MAX);

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct PublishCfg {
    pub video: VideoShape,
    pub audio: bool,
}

/// The phases of one join, from its start.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JoinTimes {
    pub ws_open_ms: f64,
    pub joined_ms: f64,
    /// The offer (a subscriber's) or answer (a publisher's) that completes
    /// the first negotiation reached the media thread's queue.
    pub sdp_in_ms: Option<f64>,
    pub sdp_done_ms: Option<f64>,
    /// The first datagram sent after `sdp_done` (the first ICE check).
    pub first_check_ms: Option<f64>,
    /// The first datagram received (the SFU's answer to a check).
    pub first_reply_ms: Option<f64>,
    pub ice_connected_ms: Option<f64>,
    pub dtls_done_ms: Option<f64>,
    pub first_rtp_ms: Option<f64>,
    pub first_keyframe_ms: Option<f64>,
    /// When the generator's thread read the first keyframe (it stamps
    /// `first_keyframe_ms` with the datagram's arrival).
    pub first_keyframe_read_ms: Option<f64>,
}

pub struct NewPeer {
    pub id: u64,
    pub publish: Option<PublishCfg>,
    pub out: UnboundedSender<SigOut>,
    pub started: Instant,
    pub ws_open: Duration,
    pub joined: Duration,
    pub local_ip: std::net::IpAddr,
}

pub enum Cmd {
    Add(Box<NewPeer>),
    /// A signaling message, with when the signaling task handed it over.
    Signal(u64, SigIn, Instant),
    Remove(u64),
    WindowStart,
    WindowEnd,
    Report(mpsc::Sender<ThreadReport>),
}

/// Per-peer state as reported.
#[derive(Debug, Clone)]
pub struct PeerState {
    pub id: u64,
    pub connected: bool,
    pub dead: bool,
    /// Incoming streams that delivered at least one packet.
    pub rx_streams: usize,
    /// Incoming video streams that delivered a keyframe.
    pub rx_keyframes: usize,
    pub join: JoinTimes,
}

/// One thread's figures for the last measurement window.
#[derive(Debug, Clone, Default)]
pub struct ThreadReport {
    /// Added latency of every stamped packet received in the window, µs:
    /// from the publisher's write to str0m's delivery at the subscriber.
    pub latency_us: Vec<u32>,
    /// The generator's own share of it (see [`Tally`]), µs: on receive,
    /// the kernel's arrival stamp to str0m's delivery ...
    pub rx_floor_us: Vec<u32>,
    /// ... and on send, the write to the datagram handed to the kernel.
    pub tx_floor_us: Vec<u32>,
    /// The publisher's write to the kernel's arrival stamp at the
    /// subscriber's socket, µs: the SFU's share plus the send share.
    pub to_socket_us: Vec<u32>,
    /// Packets expected and missing (after the NACK window) in the window.
    pub expected: u64,
    pub lost: u64,
    /// RTP packets and bytes received in the window (forwarded by the SFU).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// RTP packets sent by publishers in the window.
    pub tx_packets: u64,
    /// CPU seconds of this thread in the window, and the window's length.
    pub cpu_secs: f64,
    pub window_secs: f64,
    pub send_errors: u64,
    pub peers: Vec<PeerState>,
}

/// A running media thread.
#[derive(Clone)]
pub struct MediaThread {
    pub tx: mpsc::Sender<Cmd>,
    waker: Arc<Waker>,
}

impl MediaThread {
    pub fn start(index: usize) -> Result<MediaThread> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || Worker::new(poll, rx).run())?;
        Ok(MediaThread { tx, waker })
    }

    pub fn send(&self, cmd: Cmd) {
        let _ = self.tx.send(cmd);
        let _ = self.waker.wake();
    }

    /// Asks for a report and waits for it.
    pub fn report(&self) -> ThreadReport {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Report(tx));
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
    }
}

struct Publisher {
    shape: VideoShape,
    audio: Option<Mid>,
    video: Mid,
    audio_seq: u64,
    video_seq: u64,
    next_audio: Instant,
    next_video: Instant,
    frame: u64,
    last_key: Option<Instant>,
    force_key: bool,
}

/// Received sequence numbers of one incoming stream, as a bitmap.
struct RxStream {
    video: bool,
    base: u64,
    bits: Vec<u64>,
    highest: u64,
    win_start: Option<u64>,
    win_end: Option<u64>,
    keyframe: bool,
}

impl RxStream {
    fn mark(&mut self, seq: u64) -> bool {
        if seq < self.base {
            return false;
        }
        let i = (seq - self.base) as usize;
        if i / 64 >= self.bits.len() {
            self.bits.resize(i / 64 + 1, 0);
        }
        let fresh = self.bits[i / 64] & (1 << (i % 64)) == 0;
        self.bits[i / 64] |= 1 << (i % 64);
        self.highest = self.highest.max(seq);
        fresh
    }

    fn has(&self, seq: u64) -> bool {
        let i = (seq - self.base) as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

struct Peer {
    id: u64,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    out: UnboundedSender<SigOut>,
    publish: Option<PublishCfg>,
    publish_offered: bool,
    pending: Option<SdpPendingOffer>,
    publisher: Option<Publisher>,
    connected: bool,
    dead: bool,
    timeout: Instant,
    started: Instant,
    join: JoinTimes,
    rx: HashMap<Ssrc, RxStream>,
    pts: Option<(Pt, Pt)>,
}

struct Worker {
    poll: Poll,
    cmds: mpsc::Receiver<Cmd>,
    peers: Vec<Option<Peer>>,
    by_id: HashMap<u64, usize>,
    window_started: Option<(Instant, f64)>,
    window_ended: Option<(Instant, f64)>,
    tally: Tally,
    tx_packets: u64,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

/// What the media thread counts while it receives and sends.
///
/// The generator's floor: a latency figure is the publisher's write to the
/// subscriber's delivery, and part of it is the generator's own work (its
/// publisher's str0m, encryption and `sendto`; on the way back, time in the
/// subscriber socket's queue while the thread is busy, decryption and
/// str0m). The kernel stamps every datagram as it enters a subscriber's
/// socket (`SO_TIMESTAMPNS`): what comes after is the generator's receive
/// share; the publisher measures write-to-sent per packet for its send
/// share. On loopback nothing but the SFU lies between the publisher's
/// `sendto` and that kernel stamp.
#[derive(Default)]
struct Tally {
    in_window: bool,
    latency_us: Vec<u32>,
    rx_floor_us: Vec<u32>,
    tx_floor_us: Vec<u32>,
    to_socket_us: Vec<u32>,
    rx_packets: u64,
    rx_bytes: u64,
    send_errors: u64,
    /// Kernel arrival of the datagram being handled (None: not known).
    arrival: Option<Instant>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Worker {
    fn new(poll: Poll, cmds: mpsc::Receiver<Cmd>) -> Worker {
        Worker {
            poll,
            cmds,
            peers: Vec::new(),
            by_id: HashMap::new(),
            window_started: None,
            window_ended: None,
            tally: Tally::default(),
            tx_packets: 0,
            buf: vec![0u8; RECV_BUF],
            cmsg: nix::cmsg_space!(nix::sys::time::TimeSpec, i32),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            loop {
                match self.cmds.try_recv() {
                    Ok(c) => self.command(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            let mut next = now + Duration::from_millis(100);
            for slot in 0..self.peers.len() {
                let Some(p) = self.peers[slot].as_mut() else {
                    continue;
                };
                if p.dead {
                    continue;
                }
                if p.timeout <= now {
                    let _ = p.rtc.handle_input(Input::Timeout(now));
                }
                // The clock now, not the loop's: the peers before this one
                // took time, and a stale clock would stamp late packets early.
                self.tx_packets += send_media(p, Instant::now(), &mut self.tally);
                self.drain(slot);
                if let Some(p) = self.peers[slot].as_ref()
                    && !p.dead
                {
                    next = next.min(p.timeout);
                    if let Some(pb) = p.publisher.as_ref().filter(|_| p.connected) {
                        next = next.min(pb.next_video);
                        if pb.audio.is_some() {
                            next = next.min(pb.next_audio);
                        }
                    }
                }
            }
            let wait = next.saturating_duration_since(Instant::now());
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                continue;
            }
            let ready: Vec<usize> = events
                .iter()
                .map(|e| e.token())
                .filter(|t| *t != WAKE)
                .map(|t| t.0)
                .collect();
            for slot in ready {
                self.receive(slot);
            }
        }
    }

    fn receive(&mut self, slot: usize) {
        loop {
            let Some(p) = self.peers[slot].as_mut() else {
                return;
            };
            let Some(got) = recv_stamped(&p.socket, &mut self.buf, &mut self.cmsg) else {
                return;
            };
            let now = Instant::now();
            if p.join.first_reply_ms.is_none() {
                // When the kernel took it in, not when this thread got to it.
                let at = got.arrival.unwrap_or(now);
                p.join.first_reply_ms = Some(ms(at.saturating_duration_since(p.started)));
            }
            // A GSO send arrives whole (`UDP_GRO`): its datagrams are cut
            // apart here, each `segment` bytes but the last.
            let segment = got.segment.unwrap_or(got.len).max(1);
            let mut at = 0;
            while at < got.len {
                let end = (at + segment).min(got.len);
                let Some(p) = self.peers[slot].as_mut() else {
                    return;
                };
                if let Ok(r) = Receive::new(Protocol::Udp, got.from, p.local, &self.buf[at..end]) {
                    let _ = p.rtc.handle_input(Input::Receive(now, r));
                }
                self.tally.arrival = got.arrival;
                self.drain(slot);
                self.tally.arrival = None;
                at = end;
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Add(n) => {
                if let Err(e) = self.add(*n) {
                    eprintln!("peer setup failed: {e}");
                }
            }
            Cmd::Signal(id, m, queued) => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.signal(slot, m, queued);
                    self.drain(slot);
                }
            }
            Cmd::Remove(id) => {
                if let Some(slot) = self.by_id.remove(&id)
                    && let Some(mut p) = self.peers[slot].take()
                {
                    let _ = p.out.send(SigOut::Leave);
                    let _ = self.poll.registry().deregister(&mut p.socket);
                }
            }
            Cmd::WindowStart => {
                self.tally.in_window = true;
                self.tally.latency_us.clear();
                self.tally.rx_floor_us.clear();
                self.tally.tx_floor_us.clear();
                self.tally.to_socket_us.clear();
                self.tally.rx_packets = 0;
                self.tally.rx_bytes = 0;
                self.tx_packets = 0;
                self.window_started = Some((Instant::now(), stats::thread_cpu_secs()));
                self.window_ended = None;
                for p in self.peers.iter_mut().flatten() {
                    for s in p.rx.values_mut() {
                        s.win_start = Some(s.highest + 1);
                        s.win_end = None;
                    }
                }
            }
            Cmd::WindowEnd => {
                self.tally.in_window = false;
                self.window_ended = Some((Instant::now(), stats::thread_cpu_secs()));
                for p in self.peers.iter_mut().flatten() {
                    for s in p.rx.values_mut() {
                        s.win_end = Some(s.highest);
                    }
                }
            }
            Cmd::Report(reply) => {
                let _ = reply.send(self.report());
            }
        }
    }

    fn report(&self) -> ThreadReport {
        let mut r = ThreadReport {
            latency_us: self.tally.latency_us.clone(),
            rx_floor_us: self.tally.rx_floor_us.clone(),
            tx_floor_us: self.tally.tx_floor_us.clone(),
            to_socket_us: self.tally.to_socket_us.clone(),
            rx_packets: self.tally.rx_packets,
            rx_bytes: self.tally.rx_bytes,
            tx_packets: self.tx_packets,
            send_errors: self.tally.send_errors,
            ..Default::default()
        };
        if let (Some((t0, c0)), Some((t1, c1))) = (self.window_started, self.window_ended) {
            r.cpu_secs = c1 - c0;
            r.window_secs = (t1 - t0).as_secs_f64();
        }
        for p in self.peers.iter().flatten() {
            for s in p.rx.values() {
                if let (Some(a), Some(b)) = (s.win_start, s.win_end)
                    && b >= a
                {
                    r.expected += b - a + 1;
                    r.lost += (a..=b).filter(|q| !s.has(*q)).count() as u64;
                }
            }
            r.peers.push(PeerState {
                id: p.id,
                connected: p.connected,
                dead: p.dead,
                rx_streams: p.rx.len(),
                rx_keyframes: p.rx.values().filter(|s| s.video && s.keyframe).count(),
                join: p.join.clone(),
            });
        }
        r
    }

    fn add(&mut self, n: NewPeer) -> Result<()> {
        let mut socket = UdpSocket::bind(SocketAddr::new(n.local_ip, 0))?;
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimestampns,
            &true,
        )?;
        if subscriber_gro() {
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::UdpGroSegment, &true)?;
        }
        let local = socket.local_addr()?;
        let slot = match self.peers.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.peers.push(None);
                self.peers.len() - 1
            }
        };
        self.poll
            .registry()
            .register(&mut socket, Token(slot), Interest::READABLE)?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_stats_interval(None)
            .set_crypto_provider(crate::srtp::provider())
            .set_dtls_cert(crate::srtp::certificate()?)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let peer = Peer {
            id: n.id,
            rtc,
            socket,
            local,
            out: n.out,
            publish: n.publish,
            publish_offered: false,
            pending: None,
            publisher: None,
            connected: false,
            dead: false,
            timeout: now,
            started: n.started,
            join: JoinTimes {
                ws_open_ms: ms(n.ws_open),
                joined_ms: ms(n.joined),
                ..Default::default()
            },
            rx: HashMap::new(),
            pts: None,
        };
        self.peers[slot] = Some(peer);
        self.by_id.insert(n.id, slot);
        self.maybe_offer(slot);
        self.drain(slot);
        Ok(())
    }

    /// A publisher offers its audio and video once nothing else is being negotiated.
    fn maybe_offer(&mut self, slot: usize) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        let Some(cfg) = p.publish else { return };
        if p.publish_offered || p.pending.is_some() {
            return;
        }
        let mut change = p.rtc.sdp_api();
        let audio = cfg
            .audio
            .then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        if let Some((offer, pending)) = change.apply() {
            p.pending = Some(pending);
            p.publish_offered = true;
            let now = Instant::now();
            p.publisher = Some(Publisher {
                shape: cfg.video,
                audio,
                video,
                audio_seq: 1,
                video_seq: 1,
                next_audio: now,
                next_video: now,
                frame: 0,
                last_key: None,
                force_key: false,
            });
            let mut tracks = vec![(video.to_string(), "camera")];
            if let Some(a) = audio {
                tracks.insert(0, (a.to_string(), "microphone"));
            }
            let _ = p.out.send(SigOut::Offer(offer.to_sdp_string(), tracks));
        }
    }

    fn signal(&mut self, slot: usize, m: SigIn, queued: Instant) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        let elapsed = ms(p.started.elapsed());
        let queued = ms(queued.saturating_duration_since(p.started));
        match m {
            SigIn::Offer(sdp) => {
                // Polite peer: our own outstanding offer is dropped and made again.
                if p.pending.take().is_some() {
                    p.publish_offered = false;
                    p.publisher = None;
                }
                let answer = SdpOffer::from_sdp_string(&sdp)
                    .map_err(anyhow::Error::from)
                    .and_then(|o| p.rtc.sdp_api().accept_offer(o).map_err(Into::into));
                match answer {
                    Ok(a) => {
                        start_checks(p);
                        let _ = p.out.send(SigOut::Answer(a.to_sdp_string()));
                        if p.publish.is_none() && p.join.sdp_done_ms.is_none() {
                            p.join.sdp_in_ms = Some(queued);
                            p.join.sdp_done_ms = Some(elapsed);
                        }
                    }
                    Err(e) => {
                        eprintln!("peer {}: bad offer: {e}", p.id);
                        p.dead = true;
                    }
                }
                self.maybe_offer(slot);
            }
            SigIn::Answer(sdp) => {
                if let Some(pending) = p.pending.take() {
                    let r = SdpAnswer::from_sdp_string(&sdp)
                        .map_err(anyhow::Error::from)
                        .and_then(|a| {
                            p.rtc
                                .sdp_api()
                                .accept_answer(pending, a)
                                .map_err(Into::into)
                        });
                    match r {
                        Ok(()) => {
                            start_checks(p);
                            if p.join.sdp_done_ms.is_none() {
                                p.join.sdp_in_ms = Some(queued);
                                p.join.sdp_done_ms = Some(elapsed);
                            }
                        }
                        Err(e) => {
                            eprintln!("peer {}: bad answer: {e}", p.id);
                            p.dead = true;
                        }
                    }
                }
            }
            SigIn::OfferRejected(m) => {
                eprintln!("peer {}: offer rejected: {m}", p.id);
                p.pending = None;
                p.publisher = None;
                p.publish = None;
            }
            SigIn::Closed(why) => {
                if !p.dead {
                    eprintln!("peer {}: signaling closed: {why}", p.id);
                }
                p.dead = true;
            }
        }
    }

    /// Polls a peer until str0m wants time to pass.
    fn drain(&mut self, slot: usize) {
        if let Some(p) = self.peers[slot].as_mut() {
            drain(p, &mut self.tally);
        }
    }
}

/// Lets the peer's ICE agent see the remote description at once, as a
/// browser's does: its connectivity checks begin when the remote
/// description is set. Without this they wait for the agent's next paced
/// step, which str0m's agent (`is` 0.12, `IceAgent::poll_timeout`) puts at
/// least 50 ms (its `Ta`) after its previous `handle_timeout`; that one
/// came when the `Rtc` was built, before it had remote candidates. So a
/// joiner whose offer came in a message after `joined` (Convene's) had its
/// first check held up to 50 ms, and one whose offer came with `joined`
/// (Janus's) did not.
fn start_checks(p: &mut Peer) {
    let _ = p.rtc.handle_input(Input::Timeout(Instant::now()));
}

/// Most "time is due now" timeouts served in one drain (str0m asks for one
/// between two packets of a send queue); the rest wait for the loop.
const MAX_IMMEDIATE_TIMEOUTS: u32 = 64;

/// Polls a peer until str0m wants time to pass, sending what it emits and
/// counting what it delivers.
fn drain(p: &mut Peer, tally: &mut Tally) {
    if p.dead {
        return;
    }
    let mut immediate = 0;
    loop {
        match p.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                let at = Instant::now();
                if t <= at && immediate < MAX_IMMEDIATE_TIMEOUTS {
                    immediate += 1;
                    let _ = p.rtc.handle_input(Input::Timeout(at));
                    continue;
                }
                p.timeout = t;
                return;
            }
            Ok(Output::Transmit(t)) => {
                if p.socket.send_to(&t.contents, t.destination).is_err() {
                    tally.send_errors += 1;
                }
                if p.join.first_check_ms.is_none() && p.join.sdp_done_ms.is_some() {
                    p.join.first_check_ms = Some(ms(p.started.elapsed()));
                }
            }
            Ok(Output::Event(e)) => {
                let now = Instant::now();
                let elapsed = ms(now - p.started);
                match e {
                    Event::IceConnectionStateChange(
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    ) => {
                        p.join.ice_connected_ms.get_or_insert(elapsed);
                    }
                    Event::Connected => {
                        p.connected = true;
                        if let Some(pb) = p.publisher.as_mut() {
                            pb.next_audio = now;
                            pb.next_video = now;
                        }
                        p.join.dtls_done_ms.get_or_insert(elapsed);
                    }
                    Event::KeyframeRequest(_) => {
                        if let Some(pb) = p.publisher.as_mut() {
                            pb.force_key = true;
                        }
                    }
                    Event::RtpPacket(pkt) => {
                        // First media is stamped when its datagram reached the
                        // joiner's socket (the kernel's stamp), not when this
                        // thread, busy with other joiners' handshakes, read it:
                        // what the SFU did, not how long the generator's one core
                        // took to get to it (that wait is `first_keyframe_read`).
                        let reached = || {
                            ms(tally
                                .arrival
                                .unwrap_or(now)
                                .saturating_duration_since(p.started))
                        };
                        if p.join.first_rtp_ms.is_none() {
                            p.join.first_rtp_ms = Some(reached());
                        }
                        let seq = *pkt.seq_no;
                        let ssrc = pkt.header.ssrc;
                        let s = p.rx.entry(ssrc).or_insert_with(|| {
                            let mid = p.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                            let video = mid
                                .and_then(|m| p.rtc.media(m).map(|m| m.kind()))
                                .is_some_and(|k| k == MediaKind::Video);
                            RxStream {
                                video,
                                base: seq,
                                bits: Vec::new(),
                                highest: seq,
                                win_start: None,
                                win_end: None,
                                keyframe: false,
                            }
                        });
                        if s.video && !s.keyframe && payload::is_keyframe(&pkt.payload) {
                            s.keyframe = true;
                            if p.join.first_keyframe_ms.is_none() {
                                p.join.first_keyframe_ms = Some(reached());
                                p.join.first_keyframe_read_ms = Some(elapsed);
                            }
                        }
                        let fresh = s.mark(seq);
                        if tally.in_window {
                            if s.win_start.is_none() {
                                s.win_start = Some(seq);
                            }
                            tally.rx_packets += 1;
                            tally.rx_bytes += pkt.payload.len() as u64;
                            if fresh && let Some(sent) = payload::read_stamp(&pkt.payload) {
                                let lat = payload::stamp(now).saturating_sub(sent);
                                tally.latency_us.push(lat.min(u64::from(u32::MAX)) as u32);
                                if let Some(arrived) = tally.arrival {
                                    tally.rx_floor_us.push(us(now - arrived));
                                    let to_socket = payload::stamp(arrived).saturating_sub(sent);
                                    tally
                                        .to_socket_us
                                        .push(to_socket.min(u64::from(u32::MAX)) as u32);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            Err(e) => {
                eprintln!("peer {}: rtc error: {e}", p.id);
                p.dead = true;
                return;
            }
        }
    }
}

fn payload_types(rtc: &Rtc) -> Option<(Pt, Pt)> {
    use str0m::format::Codec;
    let find = |c: Codec| {
        rtc.codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == c)
            .map(|p| p.pt())
    };
    Some((find(Codec::Opus)?, find(Codec::Vp8)?))
}

/// Writes the audio and video due at `now`; returns the packets written.
/// Writes the publisher's due packets, each stamped with the clock at its
/// write and sent at once (the send share of the generator's floor is the
/// time from that stamp to its datagram leaving).
fn send_media(p: &mut Peer, now: Instant, tally: &mut Tally) -> u64 {
    if !p.connected || p.pending.is_some() {
        return 0;
    }
    let Some(pb) = p.publisher.as_mut() else {
        return 0;
    };
    if p.pts.is_none() {
        p.pts = payload_types(&p.rtc);
    }
    let Some((opus, vp8)) = p.pts else { return 0 };
    // (sequence number, RTP time) of the audio packets due.
    let mut audio_due: Vec<(u64, u32)> = Vec::new();
    let audio = pb.audio;
    if audio.is_some() {
        while pb.next_audio <= now {
            audio_due.push((pb.audio_seq, (pb.audio_seq * 960) as u32));
            pb.audio_seq += 1;
            pb.next_audio += payload::OPUS_INTERVAL;
        }
    }
    let mut frames: Vec<(u32, Vec<Vec<u8>>)> = Vec::new();
    while pb.next_video <= now {
        let key = pb.force_key
            || pb
                .last_key
                .is_none_or(|t| now.saturating_duration_since(t) >= pb.shape.keyframe_interval);
        if key {
            pb.last_key = Some(now);
            pb.force_key = false;
        }
        let ts = (pb.frame * 90_000 / u64::from(pb.shape.fps.max(1))) as u32;
        frames.push((ts, pb.shape.frame(key, pb.frame as u16, now)));
        pb.frame += 1;
        pb.next_video += pb.shape.frame_interval();
        // Behind by more than a second (e.g. a stall): skip rather than burst.
        if now.saturating_duration_since(pb.next_video) > Duration::from_secs(1) {
            pb.next_video = now;
        }
    }
    if now.saturating_duration_since(pb.next_audio) > Duration::from_secs(1) {
        pb.next_audio = now;
    }
    let video = pb.video;
    let mut sent = 0;
    let mut send = |p: &mut Peer, mid: Mid, w: RtpWrite, stamp: Instant| {
        let mut api = p.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        tx.write_rtp(w);
        sent += 1;
        drain(p, tally);
        if tally.in_window {
            tally.tx_floor_us.push(us(Instant::now() - stamp));
        }
    };
    if let Some(audio) = audio {
        for (seq, ts) in audio_due {
            let stamp = Instant::now();
            let w = RtpWrite::new(
                opus,
                SeqNo::from(seq),
                ts,
                stamp,
                payload::opus_packet(stamp),
            );
            send(p, audio, w, stamp);
        }
    }
    for (ts, packets) in frames {
        let last = packets.len().saturating_sub(1);
        for (i, mut payload) in packets.into_iter().enumerate() {
            let stamp = Instant::now();
            payload::restamp(&mut payload, stamp);
            let seq = p.publisher.as_mut().map_or(0, |pb| {
                pb.video_seq += 1;
                pb.video_seq - 1
            });
            let w = RtpWrite::new(vp8, SeqNo::from(seq), ts, stamp, payload)
                .marker(i == last)
                .nackable(true);
            send(p, video, w, stamp);
        }
    }
    sent
}

/// Microseconds of a duration, saturated to `u32`.
fn us(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Room for what one receive can bring: a GSO send taken whole is at most
/// 64 KiB.
const RECV_BUF: usize = 65_536;

/// Whether subscriber sockets take a GSO send whole (`UDP_GRO`) rather
/// than have the kernel cut it into datagrams as it arrives. On loopback
/// that cutting runs in the sending thread's softirq, on the SFU's core:
/// work a subscriber's own machine does in a deployment, not the SFU's.
/// An SFU that sends one datagram a call is not affected. On by default.
static SUBSCRIBER_GRO: AtomicBool = AtomicBool::new(true);

/// Sets [`SUBSCRIBER_GRO`] for peers added from now on.
pub fn set_subscriber_gro(on: bool) {
    SUBSCRIBER_GRO.store(on, Ordering::Relaxed);
}

fn subscriber_gro() -> bool {
    SUBSCRIBER_GRO.load(Ordering::Relaxed)
}

/// What one receive brought.
struct Received {
    len: usize,
    from: SocketAddr,
    /// The kernel's arrival stamp.
    arrival: Option<Instant>,
    /// Set when the kernel passed a GSO send whole: its datagrams' size.
    segment: Option<usize>,
}

/// Reads one datagram (or one GSO send, whole) with the kernel's arrival
/// stamp (`SO_TIMESTAMPNS`, the wall clock), turned into an `Instant`.
/// None when the socket has nothing more (or fails).
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8], cmsg: &mut Vec<u8>) -> Option<Received> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
            .ok()?;
    let (wall, mono) = (std::time::SystemTime::now(), Instant::now());
    let from = msg.address.as_ref().and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
            .or_else(|| {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
            })
    })?;
    let mut arrival = None;
    let mut segment = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    let at = std::time::UNIX_EPOCH
                        + Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32);
                    let age = wall.duration_since(at).unwrap_or_default();
                    arrival = mono.checked_sub(age);
                }
                ControlMessageOwned::UdpGroSegments(size) if size > 0 => {
                    segment = Some(size as usize);
                }
                _ => {}
            }
        }
    }
    Some(Received {
        len: msg.bytes,
        from,
        arrival,
        segment,
    })
}
