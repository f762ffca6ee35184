//! An in-process WebRTC participant for tests: str0m over real UDP, speaking
//! Convene's signaling over a real WebSocket.
//!
//! One tokio task owns the `Rtc`, the UDP socket and the WebSocket. It can
//! publish synthetic Opus (20 ms packets) and VP8 (30 fps, a keyframe every
//! second) and records every RTP packet it receives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

mod http;

/// What a client should do.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `ws://host:port/rtc`
    pub ws_url: String,
    pub room: Option<String>,
    pub token: Option<String>,
    pub name: Option<String>,
    /// Publish synthetic Opus + VP8 once joined.
    pub publish: bool,
    /// Local IP to bind the media socket to.
    pub media_ip: IpAddr,
    /// A `resume_token` from an earlier `joined`.
    pub resume: Option<String>,
    /// Use ICE over TCP (an active candidate) instead of UDP.
    pub tcp: bool,
    /// A cluster node named by an earlier `moved` (`join`'s `via`).
    pub node_via: Option<String>,
}

impl ClientOptions {
    /// Joins through `ws_url` with no room, token or name, over UDP, media on [`crate::media_ip`].
    pub fn new(ws_url: String) -> ClientOptions {
        ClientOptions {
            ws_url,
            room: None,
            token: None,
            name: None,
            publish: false,
            media_ip: crate::media_ip(),
            resume: None,
            tcp: false,
            node_via: None,
        }
    }

    /// [`ClientOptions::new`] joining with `token`.
    pub fn with_token(ws_url: String, token: String) -> ClientOptions {
        ClientOptions {
            token: Some(token),
            ..ClientOptions::new(ws_url)
        }
    }
}

/// A received RTP packet, as recorded.
#[derive(Clone, Debug)]
pub struct Received {
    pub mid: Mid,
    pub kind: MediaKind,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub len: usize,
    /// Whether the payload is what the synthetic publisher writes (see
    /// [`intact`]): a forged packet let through would not be.
    pub intact: bool,
    /// The first [`KEPT_ENDS`] and last [`KEPT_ENDS`] bytes of the payload
    /// (what an end-to-end encryption test reads: the clear header, the
    /// trailer).
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub at: Instant,
}

/// How many bytes of each end of a payload [`Received`] keeps.
pub const KEPT_ENDS: usize = 16;

/// The first and last [`KEPT_ENDS`] bytes of `payload`.
pub fn ends(payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = payload.len();
    (
        payload[..n.min(KEPT_ENDS)].to_vec(),
        payload[n.saturating_sub(KEPT_ENDS)..].to_vec(),
    )
}

/// Whether `payload` is one that [`write_media`] produces: audio is `0x78`
/// then 0..79; video ends in a run of one fill byte (the frame number), and
/// its middle byte is that byte too.
pub fn intact(kind: MediaKind, payload: &[u8]) -> bool {
    match kind {
        MediaKind::Audio => {
            payload.len() == 80
                && payload[0] == 0x78
                && payload[1..]
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b as usize == i)
        }
        MediaKind::Video => {
            let n = payload.len();
            n >= 16 && {
                let fill = payload[n - 1];
                payload[n - 8..].iter().all(|b| *b == fill) && payload[n / 2] == fill
            }
        }
    }
}

/// Everything the client saw.
#[derive(Debug)]
pub enum ClientEvent {
    /// A signaling message from the server.
    Signal(Value),
    /// ICE + DTLS are up.
    Connected,
    Rtp(Received),
    /// An RTCP sender report on a stream we receive (str0m's
    /// `Event::SenderFeedback`).
    SenderReport(str0m::media::SenderFeedback),
    /// The connection ended (with the reason).
    Closed(String),
}

enum Cmd {
    Send(Value),
    /// Publish what is not published yet of these (audio, video, simulcast).
    Publish {
        audio: bool,
        video: bool,
        simulcast: bool,
    },
    /// Rewrite the SDP of our publish offers before sending (a test playing
    /// a client that lies).
    Mangle(fn(&str) -> String),
    Leave,
    /// Drop the connection without saying goodbye.
    Vanish,
    /// Move the media to a new UDP socket (a new local port): a network
    /// change as a laptop sees one. The old socket is closed.
    Rebind,
    /// What the published media looks like from now on.
    Shape(Shape),
    /// Restart ICE: new credentials in an offer (what a browser does after
    /// a network change).
    IceRestart,
    /// Stop all media traffic (sent and received) but keep the WebSocket:
    /// a peer whose media path died silently.
    Silence,
    /// Send these Opus packets (20 ms each) as the microphone, in order,
    /// then repeat the last one (see [`Client::speak`]).
    Speak(Vec<Vec<u8>>),
}

/// What a publisher's synthetic media looks like, so that a receiver can
/// tell publishers apart and the server hears who speaks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// Every video packet this long (default: [`SIMULCAST_LEN`] per layer).
    pub video_len: Option<usize>,
    /// The RFC 6464 audio level (-dBov, 0 loudest) each audio packet carries.
    pub audio_level: Option<i8>,
}

/// Handle on a running client task.
pub struct Client {
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
    cmd: mpsc::UnboundedSender<Cmd>,
    /// Every event seen so far (filled by the `wait_*` helpers).
    pub seen: Vec<ClientEvent>,
    consumed: Vec<usize>,
}

impl Client {
    pub async fn connect(opts: ClientOptions) -> Client {
        Self::connect_via(opts, None).await
    }

    /// Like [`Client::connect`], but media goes through `via = (server media
    /// address, relay address)`: the server's candidate is replaced by the
    /// relay's in every SDP the client applies.
    pub async fn connect_via(opts: ClientOptions, via: Option<(SocketAddr, SocketAddr)>) -> Client {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(opts, via, ev_tx, cmd_rx));
        Client {
            events: ev_rx,
            cmd: cmd_tx,
            seen: Vec::new(),
            consumed: Vec::new(),
        }
    }

    /// A WHIP publisher (RFC 9725): posts an offer of Opus and VP8 to
    /// `url` (`http://host:port/whip/{room}`) with `token` as Bearer, then
    /// sends synthetic media. The answer's status and `Location` arrive as
    /// a `{"type": "whip", "status", "location", "body"}` signal; a refusal
    /// also ends the client (`Closed`). `leave` deletes the resource.
    pub fn whip(url: String, token: Option<String>, media_ip: IpAddr) -> Client {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(http::run_whip(url, token, media_ip, ev_tx, cmd_rx));
        Client {
            events: ev_rx,
            cmd: cmd_tx,
            seen: Vec::new(),
            consumed: Vec::new(),
        }
    }

    /// A WHEP viewer: posts an offer receiving `audio` Opus and `video` VP8
    /// m-lines to `url` (`http://host:port/whep/{room}[?participant=id]`)
    /// with `token` as Bearer, then records what it receives. The answer's
    /// status and `Location` arrive as a `{"type": "whep", ...}` signal, as
    /// for [`Client::whip`]; `leave` deletes the resource.
    pub fn whep(
        url: String,
        token: Option<String>,
        media_ip: IpAddr,
        audio: usize,
        video: usize,
    ) -> Client {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(http::run_whep(
            url,
            token,
            media_ip,
            (audio, video),
            ev_tx,
            cmd_rx,
        ));
        Client {
            events: ev_rx,
            cmd: cmd_tx,
            seen: Vec::new(),
            consumed: Vec::new(),
        }
    }

    /// Restarts ICE with a new offer (see `Cmd::IceRestart`); the server's
    /// answer arrives as an `answer` signal.
    pub fn ice_restart(&self) {
        let _ = self.cmd.send(Cmd::IceRestart);
    }

    /// Goes silent on the media path, the WebSocket staying up (see `Cmd::Silence`).
    pub fn silence(&self) {
        let _ = self.cmd.send(Cmd::Silence);
    }

    /// Changes what the published media looks like (see [`Shape`]).
    pub fn shape(&self, shape: Shape) {
        let _ = self.cmd.send(Cmd::Shape(shape));
    }

    pub fn send(&self, msg: Value) {
        let _ = self.cmd.send(Cmd::Send(msg));
    }

    /// Makes the microphone send these real Opus packets (20 ms each) from
    /// now on instead of the synthetic ones, then repeat the last packet
    /// for ever (make it silence); `publish_kinds` still starts the track.
    pub fn speak(&self, packets: Vec<Vec<u8>>) {
        let _ = self.cmd.send(Cmd::Speak(packets));
    }

    /// Publishes synthetic Opus and VP8 (microphone and camera).
    pub fn publish(&self) {
        self.publish_kinds(true, true);
    }

    /// Publishes the microphone (`audio`) and/or the camera (`video`). Called
    /// again later, it adds what is not published yet in a new offer (a
    /// camera turned on after the microphone, say).
    pub fn publish_kinds(&self, audio: bool, video: bool) {
        let _ = self.cmd.send(Cmd::Publish {
            audio,
            video,
            simulcast: false,
        });
    }

    /// From now on, the SDP of our publish offers goes through `f` before
    /// it is sent (str0m keeps its own view of the offer).
    pub fn mangle_offers(&self, f: fn(&str) -> String) {
        let _ = self.cmd.send(Cmd::Mangle(f));
    }

    /// Publishes like [`Client::publish`], with the camera as three
    /// simulcast layers (RIDs `q`, `h`, `f`). Every packet of a layer has
    /// the payload length [`SIMULCAST_LEN`]`[layer]`, so a receiver can
    /// tell which layer it gets.
    pub fn publish_simulcast(&self) {
        let _ = self.cmd.send(Cmd::Publish {
            audio: true,
            video: true,
            simulcast: true,
        });
    }

    /// Moves the media to a new local UDP port mid-call (see `Cmd::Rebind`).
    pub fn rebind(&self) {
        let _ = self.cmd.send(Cmd::Rebind);
    }

    pub fn leave(&self) {
        let _ = self.cmd.send(Cmd::Leave);
    }

    /// Drops the WebSocket and the media without a `leave`, like a lost network.
    pub fn vanish(&self) {
        let _ = self.cmd.send(Cmd::Vanish);
    }

    /// Waits for a signaling message matching `pred`, up to `timeout`. Each
    /// message is returned at most once (waits consume what they match).
    pub async fn wait_signal(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        for (i, e) in self.seen.iter().enumerate() {
            if let ClientEvent::Signal(v) = e
                && !self.consumed.contains(&i)
                && pred(v)
            {
                self.consumed.push(i);
                return v.clone();
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) => {
                    let hit = matches!(&e, ClientEvent::Signal(v) if pred(v));
                    let v = if let ClientEvent::Signal(v) = &e {
                        Some(v.clone())
                    } else {
                        None
                    };
                    self.seen.push(e);
                    if hit {
                        self.consumed.push(self.seen.len() - 1);
                        return v.unwrap();
                    }
                }
                Ok(None) => panic!("client ended; saw {:?}", self.signals()),
                Err(_) => panic!("timed out waiting for a signal; saw {:?}", self.signals()),
            }
        }
    }

    /// Waits for a signal of `type`.
    pub async fn wait_type(&mut self, ty: &str) -> Value {
        let ty = ty.to_string();
        self.wait_signal(Duration::from_secs(20), move |v| v["type"] == ty.as_str())
            .await
    }

    /// Collects events for `d`.
    pub async fn collect_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => return,
            }
        }
    }

    /// Waits until at least `n` RTP packets of `kind` have been received.
    pub async fn wait_rtp(&mut self, kind: MediaKind, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received(kind).len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!(
                    "only {} {kind:?} packets within {timeout:?}; signals: {:?}",
                    self.received(kind).len(),
                    self.signals()
                ),
            }
        }
    }

    pub fn received(&self, kind: MediaKind) -> Vec<&Received> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Rtp(r) if r.kind == kind => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn signals(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Signal(v) => Some(v["type"].as_str().unwrap_or("?").to_string()),
                ClientEvent::Closed(r) => Some(format!("closed: {r}")),
                _ => None,
            })
            .collect()
    }
}

/// Payload length of the synthetic VP8 packets of each simulcast layer
/// (`q`, `h`, `f`); without simulcast every packet has the `f` length.
pub const SIMULCAST_LEN: [usize; 3] = [300, 600, 900];

/// What is being published: the mids the server accepted.
struct Publisher {
    audio: Option<Mid>,
    video: Option<Mid>,
    simulcast: bool,
    audio_seq: u64,
    video_seq: [u64; 3],
    next_audio: Instant,
    next_video: Instant,
    frame: u64,
    started: Instant,
    shape: Shape,
}

async fn run(
    opts: ClientOptions,
    via: Option<(SocketAddr, SocketAddr)>,
    events: mpsc::UnboundedSender<ClientEvent>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    // Without Nagle, as browsers connect: a `leave` goes out when written.
    let (ws, _) = match tokio_tungstenite::connect_async_with_config(&opts.ws_url, None, true).await
    {
        Ok(x) => x,
        Err(e) => {
            let _ = events.send(ClientEvent::Closed(format!("connect: {e}")));
            return;
        }
    };
    let (mut ws_tx, mut ws_rx) = ws.split();
    let join = json!({
        "type": "join", "v": 1, "room": opts.room, "token": opts.token,
        "name": opts.name, "resume": opts.resume, "via": opts.node_via,
        "client": {"kind": "bot", "user_agent": "convene-tests"}
    });
    crate::capture_signaling_seed(&join);
    let _ = ws_tx.send(Message::Text(join.to_string().into())).await;

    let mut socket = UdpSocket::bind(SocketAddr::new(opts.media_ip, 0))
        .await
        .unwrap();
    let mut local = socket.local_addr().unwrap();
    let mut rtc = new_rtc();
    if opts.tcp {
        rtc.add_local_candidate(
            Candidate::builder()
                .tcp()
                .host(local)
                .tcptype(str0m::net::TcpType::Active)
                .build()
                .unwrap(),
        );
    } else {
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    }
    // ICE-TCP: one connection per remote address, frames in, frames out.
    let (tcp_in_tx, mut tcp_in_rx) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
    let mut tcp_out: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();

    let mut pending: Option<SdpPendingOffer> = None;
    let mut publisher: Option<Publisher> = None;
    let mut want_audio = false;
    let mut want_video = false;
    let mut want_simulcast = false;
    let mut mangle: Option<fn(&str) -> String> = None;
    let mut shape = Shape::default();
    // Real Opus packets to send instead of the synthetic ones (`speak`).
    let mut speech = Speech::default();
    let mut silent = false;
    // The (audio, video) mids our outstanding publish offer adds.
    let mut offered: Option<(Option<Mid>, Option<Mid>)> = None;
    let mut mids: HashMap<Mid, MediaKind> = HashMap::new();
    let mut connected = false;
    let mut seeds = crate::seeds::RtpSeedTap::default();
    let mut buf = vec![0u8; 2048];
    let mut send_ws = Vec::<Value>::new();

    loop {
        // Synthetic media, written before draining so it goes out at once.
        if connected
            && let Some(p) = publisher.as_mut()
            && pending.is_none()
        {
            write_media(&mut rtc, p, &mut speech);
        }
        // Drain str0m.
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(_)) if silent => {}
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Tcp {
                        let dest = t.destination;
                        let w = tcp_out
                            .entry(dest)
                            .or_insert_with(|| tcp_connection(dest, tcp_in_tx.clone()));
                        let _ = w.send(t.contents.to_vec());
                    } else {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        connected = true;
                        let _ = events.send(ClientEvent::Connected);
                    }
                    Event::MediaAdded(m) => {
                        mids.insert(m.mid, m.kind);
                    }
                    Event::RtpPacket(p) => {
                        let mid = rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid());
                        if let Some(mid) = mid {
                            let kind = rtc.media(mid).map(|m| m.kind()).unwrap_or(MediaKind::Audio);
                            let synthetic = intact(kind, &p.payload);
                            seeds.packet(
                                mid,
                                kind,
                                p.header.timestamp,
                                p.header.marker,
                                &p.payload,
                                synthetic,
                            );
                            let _ = events.send(ClientEvent::Rtp(Received {
                                mid,
                                kind,
                                seq: p.header.sequence_number,
                                ts: p.header.timestamp,
                                marker: p.header.marker,
                                len: p.payload.len(),
                                intact: synthetic,
                                head: ends(&p.payload).0,
                                tail: ends(&p.payload).1,
                                at: Instant::now(),
                            }));
                        }
                    }
                    Event::SenderFeedback(f) => {
                        let _ = events.send(ClientEvent::SenderReport(f));
                    }
                    _ => {}
                },
                Err(e) => {
                    let _ = events.send(ClientEvent::Closed(format!("rtc: {e}")));
                    return;
                }
            }
        };
        // Publish when asked, once nothing else is being negotiated.
        let has = |p: &Option<Publisher>, audio: bool| {
            p.as_ref().is_some_and(|p| {
                if audio {
                    p.audio.is_some()
                } else {
                    p.video.is_some()
                }
            })
        };
        let add_audio = want_audio && !has(&publisher, true);
        let add_video = want_video && !has(&publisher, false);
        if (add_audio || add_video) && offered.is_none() && pending.is_none() {
            let mut change = rtc.sdp_api();
            let audio = add_audio
                .then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            let simulcast = want_simulcast.then(|| {
                let mut s = Simulcast::new();
                for rid in ["q", "h", "f"] {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            let video = add_video.then(|| {
                change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast)
            });
            if let Some((offer, p)) = change.apply() {
                pending = Some(p);
                offered = Some((audio, video));
                let mut tracks = Vec::new();
                let known = publisher.as_ref().map(|p| (p.audio, p.video));
                let (a, v) = known.unwrap_or((None, None));
                if let Some(m) = audio.or(a) {
                    tracks.push(json!({"mid": m.to_string(), "source": "microphone"}));
                }
                if let Some(m) = video.or(v) {
                    tracks.push(json!({"mid": m.to_string(), "source": "camera"}));
                }
                let mut sdp = offer.to_sdp_string();
                if let Some(f) = mangle {
                    sdp = f(&sdp);
                }
                send_ws.push(json!({"type": "offer", "sdp": sdp, "tracks": tracks}));
            }
        }
        for v in send_ws.drain(..) {
            crate::capture_signaling_seed(&v);
            let _ = ws_tx.send(Message::Text(v.to_string().into())).await;
        }
        let mut next_media = timeout;
        if let Some(p) = publisher.as_ref()
            && connected
        {
            if p.audio.is_some() {
                next_media = next_media.min(p.next_audio);
            }
            if p.video.is_some() {
                next_media = next_media.min(p.next_video);
            }
        }
        let wait = next_media
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        tokio::select! {
            Some((from, frame)) = tcp_in_rx.recv() => {
                if !silent && let Ok(recv) = Receive::new(Protocol::Tcp, from, local, &frame) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
                }
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && !silent
                    && let Ok(recv) = Receive::new(Protocol::Udp, from, local, &buf[..n])
                {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
                }
            }
            m = ws_rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(f))) => {
                        let _ = events.send(ClientEvent::Closed(format!("ws closed: {f:?}")));
                        return;
                    }
                    Some(Ok(_)) => continue,
                    other => {
                        let _ = events.send(ClientEvent::Closed(format!("ws ended: {other:?}")));
                        return;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["type"].as_str() {
                    Some("offer") => {
                        // Polite: our own outstanding offer is dropped (str0m
                        // invalidates it) and made again afterwards (what we
                        // want is still not published).
                        pending = None;
                        offered = None;
                        let offer = SdpOffer::from_sdp_string(&rewrite(v["sdp"].as_str().unwrap_or(""), via)).unwrap();
                        let answer = rtc.sdp_api().accept_offer(offer).unwrap();
                        send_ws.push(json!({"type": "answer", "sdp": answer.to_sdp_string()}));
                    }
                    Some("answer") => {
                        if let Some(p) = pending.take() {
                            let answer = SdpAnswer::from_sdp_string(&rewrite(v["sdp"].as_str().unwrap_or(""), via)).unwrap();
                            rtc.sdp_api().accept_answer(p, answer).unwrap();
                        }
                        if let Some((audio, video)) = offered.take() {
                            let now = Instant::now();
                            let p = publisher.get_or_insert(Publisher {
                                audio: None,
                                video: None,
                                simulcast: want_simulcast,
                                audio_seq: 1,
                                video_seq: [1, 1, 1],
                                next_audio: now,
                                next_video: now,
                                frame: 0,
                                started: now,
                                shape,
                            });
                            if audio.is_some() {
                                p.audio = audio;
                                p.next_audio = now;
                            }
                            if video.is_some() {
                                p.video = video;
                                p.simulcast = want_simulcast;
                                p.next_video = now;
                                p.frame = 0;
                            }
                        }
                    }
                    Some("offer_rejected") => {
                        pending = None;
                        if let Some((audio, video)) = offered.take() {
                            want_audio &= audio.is_none();
                            want_video &= video.is_none();
                        }
                    }
                    Some("ping") => send_ws.push(json!({"type": "pong"})),
                    _ => {}
                }
                let _ = events.send(ClientEvent::Signal(v));
            }
            c = cmds.recv() => match c {
                Some(Cmd::Send(v)) => send_ws.push(v),
                Some(Cmd::Mangle(f)) => mangle = Some(f),
                Some(Cmd::IceRestart) => {
                    if pending.is_none() {
                        let mut change = rtc.sdp_api();
                        change.ice_restart(true);
                        if let Some((offer, p)) = change.apply() {
                            pending = Some(p);
                            offered = Some((None, None));
                            let mut tracks = Vec::new();
                            if let Some(p) = publisher.as_ref() {
                                if let Some(m) = p.audio {
                                    tracks.push(json!({"mid": m.to_string(), "source": "microphone"}));
                                }
                                if let Some(m) = p.video {
                                    tracks.push(json!({"mid": m.to_string(), "source": "camera"}));
                                }
                            }
                            send_ws.push(json!({"type": "offer", "sdp": offer.to_sdp_string(), "tracks": tracks}));
                        }
                    }
                }
                Some(Cmd::Silence) => silent = true,
                Some(Cmd::Speak(packets)) => {
                    speech.tail = packets.last().cloned();
                    speech.queue = packets.into();
                }
                Some(Cmd::Shape(sh)) => {
                    shape = sh;
                    if let Some(p) = publisher.as_mut() {
                        p.shape = sh;
                    }
                }
                Some(Cmd::Publish { audio, video, simulcast }) => {
                    want_audio |= audio;
                    want_video |= video;
                    want_simulcast |= simulcast;
                }
                Some(Cmd::Vanish) => {
                    let _ = events.send(ClientEvent::Closed("vanished".into()));
                    return;
                }
                Some(Cmd::Rebind) => {
                    socket = UdpSocket::bind(SocketAddr::new(opts.media_ip, 0)).await.unwrap();
                    local = socket.local_addr().unwrap();
                    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
                    let _ = events.send(ClientEvent::Signal(json!({"type": "rebound", "local": local.to_string()})));
                }
                Some(Cmd::Leave) | None => {
                    let _ = ws_tx.send(Message::Text(json!({"type": "leave"}).to_string().into())).await;
                    let _ = ws_tx.close().await;
                    // The closing handshake, as a browser does it: read until
                    // the server closes. Dropping the socket with its unread
                    // messages would make the kernel reset the connection and
                    // discard what was not yet sent, the `leave` with it, and
                    // the server would keep the place of a lost connection.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(_)) = ws_rx.next().await {}
                    })
                    .await;
                    let _ = events.send(ClientEvent::Closed("left".into()));
                    return;
                }
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
    }
}

/// Real Opus packets a client sends as its microphone ([`Client::speak`]).
#[derive(Default)]
struct Speech {
    queue: std::collections::VecDeque<Vec<u8>>,
    /// Sent once the queue is empty.
    tail: Option<Vec<u8>>,
}

/// A test peer: RTP mode, Opus and VP8 only.
fn new_rtc() -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now())
}

/// Writes the synthetic media that is due: Opus every 20 ms, VP8 at 30 fps
/// with a keyframe every second (on each simulcast layer).
fn write_media(rtc: &mut Rtc, p: &mut Publisher, speech: &mut Speech) {
    let now = Instant::now();
    let audio_pt = tx_pt(rtc, MediaKind::Audio);
    let video_pt = tx_pt(rtc, MediaKind::Video);
    while let Some(audio) = p.audio
        && p.next_audio <= now
    {
        let payload: Vec<u8> = match speech.queue.pop_front().or_else(|| speech.tail.clone()) {
            Some(real) => real,
            None => std::iter::once(0x78u8)
                .chain((0..79).map(|i| i as u8))
                .collect(),
        };
        let ts = ((p.next_audio - p.started).as_millis() as u32) * 48;
        if let Some(tx) = rtc.direct_api().stream_tx_by_mid(audio, None) {
            let ext = str0m::rtp::ExtensionValues {
                audio_level: p.shape.audio_level,
                voice_activity: p.shape.audio_level.map(|l| l < 50),
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(audio_pt, SeqNo::from(p.audio_seq), ts, now, payload).ext_vals(ext),
            );
            p.audio_seq += 1;
        }
        p.next_audio += Duration::from_millis(20);
    }
    while let Some(video) = p.video
        && p.next_video <= now
    {
        let key = p.frame.is_multiple_of(30);
        let ts = ((p.next_video - p.started).as_millis() as u32) * 90;
        let packets = if key { 4 } else { 2 };
        let layers: &[(usize, Option<&str>)] = if p.simulcast {
            &[(0, Some("q")), (1, Some("h")), (2, Some("f"))]
        } else {
            &[(2, None)]
        };
        for &(layer, rid) in layers {
            for i in 0..packets {
                let mut payload = vec![if i == 0 { 0x10 } else { 0x00 }];
                if i == 0 {
                    if key {
                        payload.extend_from_slice(&[
                            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
                        ]);
                    } else {
                        payload.extend_from_slice(&[0x11, 0x02, 0x00]);
                    }
                }
                let len = p.shape.video_len.unwrap_or(SIMULCAST_LEN[layer]);
                payload.resize(len, (p.frame % 251) as u8);
                if let Some(tx) = rtc.direct_api().stream_tx_by_mid(video, rid.map(Rid::from)) {
                    tx.write_rtp(
                        RtpWrite::new(video_pt, SeqNo::from(p.video_seq[layer]), ts, now, payload)
                            .marker(i == packets - 1)
                            .nackable(true),
                    );
                    p.video_seq[layer] += 1;
                }
            }
        }
        p.frame += 1;
        p.next_video += Duration::from_millis(33);
    }
}

fn tx_pt(rtc: &Rtc, kind: MediaKind) -> str0m::media::Pt {
    use str0m::format::Codec;
    let want = match kind {
        MediaKind::Audio => Codec::Opus,
        MediaKind::Video => Codec::Vp8,
    };
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == want)
        .map(|p| p.pt())
        .unwrap()
}

/// Connects to `dest` and runs an RFC 4571 framed connection: frames sent on
/// the returned channel are written; frames read are sent to `incoming`.
fn tcp_connection(
    dest: SocketAddr,
    incoming: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
) -> mpsc::UnboundedSender<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let Ok(stream) = tokio::net::TcpStream::connect(dest).await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (mut r, mut w) = stream.into_split();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let len = (frame.len() as u16).to_be_bytes();
                if w.write_all(&len).await.is_err() || w.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let mut len = [0u8; 2];
        loop {
            if r.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if r.read_exact(&mut frame).await.is_err() {
                return;
            }
            if incoming.send((dest, frame)).is_err() {
                return;
            }
        }
    });
    tx
}

/// Points the server's candidates at the relay, when there is one.
fn rewrite(sdp: &str, via: Option<(SocketAddr, SocketAddr)>) -> String {
    match via {
        None => sdp.to_string(),
        Some((server, relay)) => sdp.replace(
            &format!("{} {} typ", server.ip(), server.port()),
            &format!("{} {} typ", relay.ip(), relay.port()),
        ),
    }
}
