//! The appliance as a room participant: the signaling WebSocket (docs/signaling.md)
//! plus one str0m peer connection (UDP, and ICE-TCP when UDP is blocked:
//! `ice_tcp.rs`) that publishes the camera (VP8) and the microphone (Opus)
//! and receives the others' audio. Reconnects by itself after
//! a network loss, resuming the same identity while the server keeps it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::capture::{AudioFrame, Capture, lock};
use crate::encode::{OpusDecoder, OpusEncoder, VideoEncoderThread};
use crate::sources::FRAME_SAMPLES;

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub ws_url: String,
    pub room: String,
    pub token: String,
    pub name: String,
    pub device_id: String,
    /// IP of the media socket; None: what the system routes to the server from.
    pub media_ip: Option<IpAddr>,
    pub mute_audio: bool,
    pub disable_video: bool,
    pub fps: u32,
    pub video_codec: crate::encode::VideoCodec,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub reconnect: Duration,
    /// Trust for a `wss://` signaling URL (crate::tls).
    pub tls: Arc<rustls::ClientConfig>,
}

/// Commands to a running session.
#[derive(Debug)]
pub enum Cmd {
    MuteAudio(bool),
    EnableVideo(bool),
    Leave,
}

/// What the device API shows about the session.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SessionStatus {
    /// `connecting`, `joined`, `reconnecting`, `left` or `failed`.
    pub state: String,
    pub participant_id: Option<String>,
    pub room_id: Option<String>,
    pub session_id: Option<String>,
    /// Everyone in the room, the appliance included.
    pub participants: usize,
    pub media_connected: bool,
    pub audio_muted: bool,
    pub video_enabled: bool,
    pub reconnects: u32,
    pub last_error: Option<String>,
    pub sent_video_frames: u64,
    pub sent_audio_frames: u64,
    /// Remote Opus frames decoded (played, or dropped when there is no speaker).
    pub remote_audio_frames: u64,
    pub remote_audio_streams: usize,
    /// Remote video tracks the appliance declined (the TV's kiosk view shows video).
    pub declined_video_tracks: usize,
}

pub type SharedStatus = Arc<Mutex<SessionStatus>>;

/// Decoded remote audio goes here every 20 ms (mixed); None when no speaker.
pub type SpeakerTx = Option<std::sync::mpsc::SyncSender<Vec<i16>>>;

/// Runs the session until `Leave` or a fatal refusal; reconnects otherwise.
pub async fn run(
    params: JoinParams,
    capture: Arc<Capture>,
    status: SharedStatus,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    speaker: SpeakerTx,
) {
    {
        let mut s = lock(&status);
        s.state = "connecting".into();
        s.audio_muted = params.mute_audio;
        s.video_enabled = !params.disable_video;
    }
    let mut resume: Option<(String, Instant)> = None;
    let mut muted = params.mute_audio;
    let mut video_on = !params.disable_video;
    loop {
        let outcome = connect_once(
            &params,
            &capture,
            &status,
            &mut cmds,
            &speaker,
            resume.clone().map(|r| r.0),
            &mut muted,
            &mut video_on,
        )
        .await;
        match outcome {
            Outcome::Left => {
                lock(&status).state = "left".into();
                return;
            }
            Outcome::Fatal(msg) => {
                let mut s = lock(&status);
                s.state = "failed".into();
                s.last_error = Some(msg);
                s.media_connected = false;
                return;
            }
            Outcome::Lost(msg, token) => {
                tracing::warn!(reason = %msg, "room connection lost; reconnecting");
                if let Some(t) = token {
                    resume = Some((t, Instant::now()));
                }
                // The server keeps a dropped participant for 20 s.
                if resume
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(18))
                {
                    resume = None;
                }
                {
                    let mut s = lock(&status);
                    s.state = "reconnecting".into();
                    s.last_error = Some(msg);
                    s.media_connected = false;
                    s.reconnects += 1;
                }
                // Wait, but stay responsive to leave.
                let wait = tokio::time::sleep(params.reconnect);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        c = cmds.recv() => match c {
                            Some(Cmd::Leave) | None => {
                                lock(&status).state = "left".into();
                                return;
                            }
                            Some(Cmd::MuteAudio(m)) => { muted = m; lock(&status).audio_muted = m; }
                            Some(Cmd::EnableVideo(v)) => { video_on = v; lock(&status).video_enabled = v; }
                        }
                    }
                }
            }
        }
    }
}

enum Outcome {
    Left,
    Fatal(String),
    /// Lost, with the resume token to come back with.
    Lost(String, Option<String>),
}

/// Join errors after which retrying cannot help.
const FATAL: &[&str] = &[
    "TOKEN_REQUIRED",
    "TOKEN_INVALID",
    "TOKEN_EXPIRED",
    "ROOM_NOT_FOUND",
    "ROOM_FULL",
    "REJECTED",
    "REMOVED",
    "PROTOCOL_VERSION",
    "SESSION_ENDED",
    "TOKEN_NOT_YET_VALID",
    // An end-to-end encrypted room: the appliance cannot encrypt.
    "E2EE_UNSUPPORTED",
];

/// The local IP the system would use to reach `ws_url`'s host.
pub fn route_ip(ws_url: &str) -> Option<IpAddr> {
    let rest = ws_url.split("://").nth(1)?;
    let hostport = rest.split('/').next()?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    })
    .ok()?
    .next()?;
    let s = std::net::UdpSocket::bind(SocketAddr::new(
        if addr.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        },
        0,
    ))
    .ok()?;
    s.connect(addr).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

struct Published {
    audio: Mid,
    video: Mid,
}

#[allow(clippy::too_many_arguments)]
async fn connect_once(
    p: &JoinParams,
    capture: &Capture,
    status: &SharedStatus,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    speaker: &SpeakerTx,
    resume: Option<String>,
    muted: &mut bool,
    video_on: &mut bool,
) -> Outcome {
    let ws = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            &p.ws_url,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(p.tls.clone())),
        ),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        // A certificate this appliance does not trust will not become
        // trusted by retrying: the join fails with the reason.
        Ok(Err(e)) if crate::tls::is_certificate_error(&e) => {
            return Outcome::Fatal(format!("signaling connect: {}", crate::tls::describe(&e)));
        }
        Ok(Err(e)) => {
            return Outcome::Lost(
                format!("signaling connect: {}", crate::tls::describe(&e)),
                resume,
            );
        }
        Err(_) => return Outcome::Lost("signaling connect timed out".into(), resume),
    };
    let (mut ws_tx, mut ws_rx) = ws.split();
    let join = json!({
        "type": "join", "v": 1, "room": p.room, "token": p.token,
        "name": p.name, "resume": resume,
        "client": {"kind": "appliance", "device_id": p.device_id,
                   "user_agent": concat!("convene-appliance/", env!("CARGO_PKG_VERSION"))}
    });
    if let Err(e) = ws_tx.send(Message::Text(join.to_string().into())).await {
        return Outcome::Lost(format!("signaling send: {e}"), resume);
    }

    let ip = p
        .media_ip
        .or_else(|| route_ip(&p.ws_url))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Lost(format!("media socket on {ip}: {e}"), resume),
    };
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return Outcome::Lost(format!("media socket: {e}"), resume),
    };
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(Instant::now());
    match Candidate::host(local, "udp") {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        Err(e) => return Outcome::Fatal(format!("candidate: {e}")),
    }
    // ICE-TCP beside UDP (the UDP pair wins when both work): an appliance
    // whose network blocks UDP reaches the server's passive TCP candidate.
    match Candidate::builder()
        .tcp()
        .host(local)
        .tcptype(str0m::net::TcpType::Active)
        .build()
    {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        Err(e) => return Outcome::Fatal(format!("TCP candidate: {e}")),
    }
    let mut tcp = crate::ice_tcp::TcpLinks::new();

    let mut resume_token = resume.clone();
    let mut joined = false;
    let mut others: HashSet<String> = HashSet::new();
    let mut declined: HashSet<String> = HashSet::new();
    let mut pending: Option<SdpPendingOffer> = None;
    let mut published: Option<Published> = None;
    let mut want_publish = false;
    let mut connected = false;
    let (vp8, mut video_rx) = VideoEncoderThread::start(
        capture.video_tx.subscribe(),
        p.video_codec,
        p.fps,
        p.video_kbps,
        *video_on,
    );
    let mut opus = match OpusEncoder::new(p.audio_kbps) {
        Ok(o) => o,
        Err(e) => return Outcome::Fatal(e.to_string()),
    };
    let mut decoders: HashMap<Mid, (OpusDecoder, VecDeque<Vec<i16>>)> = HashMap::new();
    let mut decode_buf = vec![0i16; 5760];
    let mut audio_rx = capture.audio_tx.subscribe();
    let started = Instant::now();
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    let mut mix_tick = tokio::time::interval(Duration::from_millis(20));
    mix_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 2048];
    let mut out_ws: Vec<Value> = Vec::new();
    let mut audio_ts: u64 = 0;
    let mut announced_mute = false;

    let update_count = |others: &HashSet<String>| {
        lock(status).participants = others.len() + 1;
    };

    loop {
        // Drain str0m.
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Tcp {
                        tcp.send(t.destination, &t.contents);
                    } else {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        connected = true;
                        lock(status).media_connected = true;
                        vp8.request_keyframe();
                        tracing::info!("media connected");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Outcome::Lost("ICE disconnected".into(), resume_token);
                    }
                    Event::KeyframeRequest(_) => vp8.request_keyframe(),
                    Event::MediaData(d) => {
                        let is_audio = rtc.media(d.mid).map(|m| m.kind()) == Some(MediaKind::Audio);
                        if is_audio {
                            let entry = match decoders.entry(d.mid) {
                                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                                std::collections::hash_map::Entry::Vacant(v) => {
                                    match OpusDecoder::new() {
                                        Ok(dec) => v.insert((dec, VecDeque::new())),
                                        Err(_) => continue,
                                    }
                                }
                            };
                            if let Ok(n) = entry.0.decode(&d.data, &mut decode_buf) {
                                for chunk in decode_buf[..n].chunks(FRAME_SAMPLES) {
                                    if entry.1.len() >= 5 {
                                        entry.1.pop_front();
                                    }
                                    entry.1.push_back(chunk.to_vec());
                                }
                                let mut s = lock(status);
                                s.remote_audio_frames += 1;
                                s.remote_audio_streams = decoders.len();
                            }
                        }
                    }
                    _ => {}
                },
                Err(e) => return Outcome::Lost(format!("rtc: {e}"), resume_token),
            }
        };

        // Publish once joined and nothing else is being negotiated.
        if want_publish && published.is_none() && pending.is_none() {
            let mut change = rtc.sdp_api();
            let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            if let Some((offer, pend)) = change.apply() {
                pending = Some(pend);
                published = Some(Published { audio, video });
                out_ws.push(
                    json!({"type": "offer", "sdp": offer.to_sdp_string(), "tracks": [
                        {"mid": audio.to_string(), "source": "microphone"},
                        {"mid": video.to_string(), "source": "camera"}
                    ]}),
                );
            }
        }
        // Tell the room what is muted, once the tracks exist.
        if joined && published.is_some() && pending.is_none() && !announced_mute {
            announced_mute = true;
            if *muted {
                out_ws.push(json!({"type": "mute", "source": "microphone", "muted": true}));
            }
            if !*video_on {
                out_ws.push(json!({"type": "mute", "source": "camera", "muted": true}));
            }
        }
        if joined && last_ping.elapsed() > Duration::from_secs(10) {
            last_ping = Instant::now();
            out_ws.push(json!({"type": "ping"}));
        }
        for v in out_ws.drain(..) {
            if let Err(e) = ws_tx.send(Message::Text(v.to_string().into())).await {
                return Outcome::Lost(format!("signaling send: {e}"), resume_token);
            }
        }
        if last_heard.elapsed() > Duration::from_secs(30) {
            return Outcome::Lost("no message from the server for 30 s".into(), resume_token);
        }
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(500));

        let sending = connected && pending.is_none();
        tokio::select! {
            Some((from, frame)) = tcp.recv() => {
                if let Ok(recv) = Receive::new(Protocol::Tcp, from, local, &frame) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
                }
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && let Ok(recv) = Receive::new(Protocol::Udp, from, local, &buf[..n])
                {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
                }
            }
            f = video_rx.recv() => {
                if f.is_none() {
                    return Outcome::Lost("the video encoder stopped".into(), resume_token);
                }
                if let Some((ef, captured)) = f
                    && sending && *video_on
                    && let Some(pb) = published.as_ref()
                {
                    let ts = (captured.saturating_duration_since(started).as_micros() as u64) * 9 / 100;
                    if let Some(w) = rtc.writer(pb.video) {
                        let pt = video_pt(w.payload_params(), p.video_codec);
                        if let Some(pt) = pt
                            && w.write(pt, Instant::now(), MediaTime::new(ts, Frequency::NINETY_KHZ), ef.data).is_ok()
                        {
                            lock(status).sent_video_frames += 1;
                        }
                    }
                } else if !(sending && *video_on) {
                    // Nothing goes out yet: the first frame sent must be a keyframe.
                    vp8.request_keyframe();
                }
            }
            a = audio_rx.recv() => match a {
                Ok(frame) => {
                    audio_ts += FRAME_SAMPLES as u64;
                    if sending && !*muted
                        && let Some(pb) = published.as_ref()
                    {
                        send_audio(&mut rtc, pb.audio, &mut opus, &frame, audio_ts, status);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => audio_ts += n * FRAME_SAMPLES as u64,
                Err(broadcast::error::RecvError::Closed) => return Outcome::Fatal("capture stopped".into()),
            },
            _ = mix_tick.tick() => {
                // Mix one frame of every remote stream and hand it to the speaker.
                let mut acc = vec![0i32; FRAME_SAMPLES];
                let mut any = false;
                for (_, q) in decoders.values_mut() {
                    if let Some(f) = q.pop_front() {
                        crate::dsp::mix_into(&mut acc, &f);
                        any = true;
                    }
                }
                if any && let Some(tx) = speaker {
                    let mut out = vec![0i16; FRAME_SAMPLES];
                    crate::dsp::to_i16(&acc, &mut out);
                    let _ = tx.try_send(out);
                }
            }
            m = ws_rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(f))) => return Outcome::Lost(format!("signaling closed: {f:?}"), resume_token),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Outcome::Lost(format!("signaling: {e}"), resume_token),
                    None => return Outcome::Lost("signaling ended".into(), resume_token),
                };
                last_heard = Instant::now();
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["type"].as_str() {
                    Some("joined") => {
                        joined = true;
                        want_publish = true;
                        resume_token = v["resume_token"].as_str().map(str::to_string);
                        others = v["participants"].as_array().into_iter().flatten()
                            .filter_map(|x| x["id"].as_str().map(str::to_string)).collect();
                        let mut s = lock(status);
                        s.state = "joined".into();
                        s.participant_id = v["participant"]["id"].as_str().map(str::to_string);
                        s.room_id = v["room"]["id"].as_str().map(str::to_string);
                        s.session_id = v["session_id"].as_str().map(str::to_string);
                        s.participants = others.len() + 1;
                        s.last_error = None;
                        tracing::info!(room = %p.room, resumed = %v["resumed"], "joined the room");
                    }
                    Some("participant_joined") => {
                        if let Some(id) = v["participant"]["id"].as_str() {
                            others.insert(id.to_string());
                            update_count(&others);
                        }
                    }
                    Some("participant_left") => {
                        if let Some(id) = v["participant_id"].as_str() {
                            others.remove(id);
                            update_count(&others);
                        }
                    }
                    Some("offer") => {
                        // Only the room's audio is wanted here: decline remote video
                        // (the display view in the kiosk browser shows it).
                        for t in v["tracks"].as_array().into_iter().flatten() {
                            if t["kind"] == "video"
                                && let Some(id) = t["track_id"].as_str()
                                && declined.insert(id.to_string())
                            {
                                out_ws.push(json!({"type": "subscribe", "track_id": id, "subscribe": false}));
                                lock(status).declined_video_tracks = declined.len();
                            }
                        }
                        // Polite peer: drop our outstanding offer, answer, offer again later.
                        if pending.take().is_some() {
                            published = None;
                        }
                        let offer = match SdpOffer::from_sdp_string(v["sdp"].as_str().unwrap_or("")) {
                            Ok(o) => o,
                            Err(e) => { tracing::warn!(error = %e, "bad server offer"); continue; }
                        };
                        match rtc.sdp_api().accept_offer(offer) {
                            Ok(answer) => out_ws.push(json!({"type": "answer", "sdp": answer.to_sdp_string()})),
                            Err(e) => tracing::warn!(error = %e, "cannot accept the server's offer"),
                        }
                    }
                    Some("answer") => {
                        if let Some(pend) = pending.take() {
                            match SdpAnswer::from_sdp_string(v["sdp"].as_str().unwrap_or("")) {
                                Ok(a) => if let Err(e) = rtc.sdp_api().accept_answer(pend, a) {
                                    return Outcome::Lost(format!("answer: {e}"), resume_token);
                                },
                                Err(e) => return Outcome::Lost(format!("answer: {e}"), resume_token),
                            }
                        }
                    }
                    Some("offer_rejected") => {
                        pending = None;
                        want_publish = false;
                        published = None;
                        lock(status).last_error = Some(format!("publishing refused: {}", v["message"].as_str().unwrap_or("")));
                    }
                    Some("muted_by_moderator") => {
                        let src = v["source"].as_str();
                        if src.is_none() || src == Some("microphone") {
                            *muted = true;
                            lock(status).audio_muted = true;
                        }
                        if src.is_none() || src == Some("camera") {
                            *video_on = false;
                            vp8.set_enabled(false);
                            lock(status).video_enabled = false;
                        }
                    }
                    Some("ping") => out_ws.push(json!({"type": "pong"})),
                    Some("error") => {
                        let code = v["code"].as_str().unwrap_or("").to_string();
                        let msg = format!("{code}: {}", v["message"].as_str().unwrap_or(""));
                        if v["fatal"].as_bool() == Some(true) {
                            if FATAL.contains(&code.as_str()) {
                                return Outcome::Fatal(msg);
                            }
                            return Outcome::Lost(msg, resume_token);
                        }
                        tracing::warn!(error = %msg, "signaling error");
                    }
                    _ => {}
                }
            }
            c = cmds.recv() => match c {
                Some(Cmd::MuteAudio(m)) => {
                    *muted = m;
                    lock(status).audio_muted = m;
                    if joined { out_ws.push(json!({"type": "mute", "source": "microphone", "muted": m})); }
                }
                Some(Cmd::EnableVideo(on)) => {
                    *video_on = on;
                    vp8.set_enabled(on);
                    lock(status).video_enabled = on;
                    if on { vp8.request_keyframe(); }
                    if joined { out_ws.push(json!({"type": "mute", "source": "camera", "muted": !on})); }
                }
                Some(Cmd::Leave) | None => {
                    let _ = ws_tx.send(Message::Text(json!({"type": "leave"}).to_string().into())).await;
                    let _ = ws_tx.close().await;
                    rtc.disconnect();
                    return Outcome::Left;
                }
            },
            _ = tokio::time::sleep(wait) => {}
        }
        if rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
            return Outcome::Lost("rtc timeout handling failed".into(), resume_token);
        }
    }
}

/// The payload type to send `codec` with among what the server accepted:
/// for H.264 the constrained-baseline, packetization-mode 1 entry if there is one.
fn video_pt<'a>(
    params: impl Iterator<Item = &'a str0m::format::PayloadParams>,
    codec: crate::encode::VideoCodec,
) -> Option<str0m::media::Pt> {
    let want = match codec {
        crate::encode::VideoCodec::Vp8 => Codec::Vp8,
        crate::encode::VideoCodec::H264 => Codec::H264,
    };
    let mut best: Option<(u8, str0m::media::Pt)> = None;
    for x in params.filter(|x| x.spec().codec == want) {
        let f = &x.spec().format;
        let score = u8::from(f.packetization_mode == Some(1))
            + 2 * u8::from(f.profile_level_id == Some(0x42e01f));
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, x.pt()));
        }
    }
    best.map(|b| b.1)
}

fn send_audio(
    rtc: &mut Rtc,
    mid: Mid,
    opus: &mut OpusEncoder,
    frame: &AudioFrame,
    ts: u64,
    status: &SharedStatus,
) {
    let Ok(packet) = opus.encode(frame) else {
        return;
    };
    let packet = packet.to_vec();
    if let Some(w) = rtc.writer(mid) {
        let pt = w
            .payload_params()
            .find(|x| x.spec().codec == Codec::Opus)
            .map(|x| x.pt());
        if let Some(pt) = pt
            && w.write(
                pt,
                Instant::now(),
                MediaTime::new(ts, Frequency::FORTY_EIGHT_KHZ),
                packet,
            )
            .is_ok()
        {
            lock(status).sent_audio_frames += 1;
        }
    }
}
