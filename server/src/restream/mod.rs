//! RTMP restreaming: a room's live media composed by Debian's `ffmpeg` and
//! pushed to an RTMP(S) target as H.264 + AAC in FLV.
//!
//! The room's media worker feeds a restream exactly like a recorder: a
//! [`RecorderSink`] (bounded queue, `try_send`, a full queue is a counted
//! drop; a `Forwarder` per track in front of it, so the highest simulcast
//! layer with continuous sequence numbers arrives). One thread per restream
//! (`restream-<id>`) takes those packets and re-sends them, as plain RTP
//! over loopback UDP, to an ffmpeg child that reads them through an SDP file
//! (one m-line per track, fixed payload types). ffmpeg decodes, composes the
//! room's layout (with `speaker` or `presentation` a screen share large
//! with the cameras in a column beside it, otherwise a grid:
//! `composite::layout`, the recording's tiles; a layout change restarts
//! the composition), mixes all audio (`amix`) and publishes to `server_url/stream_key`.
//!
//! The thread supervises ffmpeg: the tracks it composes are those that
//! carried media in the last [`SILENT_AFTER`] (a stalled input would stall
//! ffmpeg's whole filter graph), and a change of that set restarts ffmpeg
//! with the new layout (the target sees a new publish). ffmpeg exiting (the
//! target refused or dropped the stream) is retried with exponential backoff
//! ([`RETRY_MIN`] .. [`RETRY_MAX`]); the target's host is checked against
//! the SSRF rules before every attempt (unless private targets are allowed).
//! A stop, or the worker dropping the sink, ends ffmpeg with `q` (a clean FLV
//! end), killed if it has not exited within [`QUIT_GRACE`].
//!
//! The stream key is on ffmpeg's command line (so visible to local users in
//! `/proc`); it is never logged: ffmpeg's stderr is redacted before it is.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_api::Db;
use convene_api::domain::restream::RestreamTarget;
use convene_api::webhooks::Event;
use convene_media::Codec;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::json;

use crate::recording::composite::{FPS, HEIGHT, WIDTH, layout};
use crate::recording::recorder::{RecEvent, RecorderSink};
use crate::rtc::{Source, TrackKey};

mod ffmpeg;
use ffmpeg::*;

/// Events the worker may queue before packets are dropped.
const QUEUE_EVENTS: usize = 4096;
/// A track without packets for this long leaves the composition.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// Wait this long after the start for the room's tracks to be seen.
const SETTLE: Duration = Duration::from_millis(1500);
/// A running ffmpeg is not restarted for a layout change sooner than this.
const MIN_RUN_BEFORE_RELAYOUT: Duration = Duration::from_secs(5);
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Live for this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
pub const QUIT_GRACE: Duration = Duration::from_secs(5);
const BACKGROUND: &str = "0x202124";
/// Lines of ffmpeg's stderr kept for the log of a failure.
const STDERR_TAIL: usize = 12;

/// Status of a restream, as the API shows it.
pub const STARTING: u8 = 0;
pub const LIVE: u8 = 1;
pub const RETRYING: u8 = 2;
pub const STOPPED: u8 = 3;

pub fn status_name(s: u8) -> &'static str {
    match s {
        STARTING => "starting",
        LIVE => "live",
        RETRYING => "retrying",
        _ => "stopped",
    }
}

/// Settings from the server's configuration.
#[derive(Debug, Clone)]
pub struct RestreamConfig {
    pub ffmpeg: PathBuf,
    /// `--restream-allow-private`.
    pub allow_private: bool,
}

impl Default for RestreamConfig {
    fn default() -> Self {
        RestreamConfig {
            ffmpeg: PathBuf::from("ffmpeg"),
            allow_private: false,
        }
    }
}

pub struct RestreamSetup {
    pub id: String,
    pub team_id: String,
    pub room_id: String,
    pub target: RestreamTarget,
    pub config: RestreamConfig,
    pub db: Db,
    pub runtime: tokio::runtime::Handle,
    /// The room's `layout_mode` when the restream starts.
    pub layout: String,
}

/// The room actor's handle on a running restream.
pub struct RestreamHandle {
    pub status: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    /// Whether a screen share gets the large tile (false: the room's `grid`
    /// layout); a change restarts the composition.
    share_large: Arc<AtomicBool>,
    /// Packets the worker could not queue.
    pub dropped: Arc<AtomicU64>,
}

impl RestreamHandle {
    /// Asks the thread to end ffmpeg and stop (it also stops when the
    /// worker drops the sink).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Follows the room's layout (`layout_mode`): `grid` lays every video
    /// out alike, `speaker` and `presentation` give a screen share the
    /// large tile (the restream does not follow the active speaker: each
    /// change would be a new publish at the target).
    pub fn set_layout(&self, mode: &str) {
        self.share_large.store(mode != "grid", Ordering::Relaxed);
    }
}

/// Creates the sink for the worker and starts the restream thread.
pub fn spawn(setup: RestreamSetup) -> std::io::Result<(RecorderSink, RestreamHandle)> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_EVENTS);
    let (kf_tx, kf_rx) = crossbeam_channel::bounded(64);
    let dropped = Arc::new(AtomicU64::new(0));
    let status = Arc::new(AtomicU8::new(STARTING));
    let stop = Arc::new(AtomicBool::new(false));
    let sink = RecorderSink {
        recording_id: setup.id.clone(),
        tx,
        keyframes: kf_rx,
        dropped: dropped.clone(),
        audio_only: false,
        overflow: None,
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let share_large = Arc::new(AtomicBool::new(setup.layout != "grid"));
    let handle = RestreamHandle {
        status: status.clone(),
        stop: stop.clone(),
        dropped: dropped.clone(),
        share_large: share_large.clone(),
    };
    let name = format!("restream-{}", &setup.id[..8.min(setup.id.len())]);
    std::thread::Builder::new().name(name).spawn(move || {
        let mut s = Supervisor {
            setup,
            socket,
            keyframes: kf_tx,
            status,
            stop,
            dropped,
            tracks: HashMap::new(),
            order: 0,
            running: None,
            next_attempt: Instant::now() + SETTLE,
            backoff: RETRY_MIN,
            failed_reported: false,
            relayout: false,
            share_large: share_large.load(Ordering::Relaxed),
            layout: share_large,
            buf: Vec::with_capacity(1500),
        };
        s.run(rx);
    })?;
    Ok((sink, handle))
}

/// A track of the room as the restream sees it.
struct TrackState {
    source: Source,
    /// Join order, for a stable layout.
    order: u64,
    codec: Option<Codec>,
    last_packet: Option<Instant>,
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    tracks: Vec<SdpTrack>,
    ports: HashMap<TrackKey, u16>,
    started: Instant,
    live: Arc<AtomicBool>,
    /// ffmpeg's latest `speed` in hundredths (below 100: it cannot keep up
    /// with real time on this machine and the stream falls behind).
    speed: Arc<AtomicU32>,
    live_since: Option<Instant>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    sdp: PathBuf,
    /// Keyframe requests still to make once ffmpeg listens.
    keyframe_at: Vec<Instant>,
    /// The start gate (see [`Gate`]).
    gate: Gate,
}

/// How a (re)started ffmpeg gets its first packets, so that its streams
/// start together: ffmpeg's RTP demuxer starts each stream's clock at its
/// first usable packet, and a video stream is usable only from a keyframe.
/// Nothing is sent until ffmpeg has bound every port (packets before that
/// are lost, keyframes included); then each video track is sent from its
/// first keyframe on (keyframes are asked for at that moment), and audio
/// once every video track has started (or after [`AUDIO_WAIT`]), so that
/// audio does not start ahead of the pictures it belongs to.
#[derive(Default)]
struct Gate {
    /// ffmpeg has bound every port, since then.
    listening: Option<Instant>,
    /// Video tracks sent from a keyframe on.
    keyed: Vec<TrackKey>,
    audio_open: bool,
}

/// Audio waits at most this long for the video tracks' first keyframes.
const AUDIO_WAIT: Duration = Duration::from_millis(1500);
/// ffmpeg counts as listening after this long even if a port looks free.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

struct Supervisor {
    setup: RestreamSetup,
    socket: UdpSocket,
    keyframes: Sender<TrackKey>,
    status: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    /// Packets the worker could not queue (shared with the sink).
    dropped: Arc<AtomicU64>,
    tracks: HashMap<TrackKey, TrackState>,
    order: u64,
    running: Option<Running>,
    next_attempt: Instant,
    backoff: Duration,
    /// A `restreaming.failed` was sent and the stream has not been live since.
    failed_reported: bool,
    /// The composition must be restarted (the set of tracks or the layout changed).
    relayout: bool,
    /// The layout the running composition has, and the room's (set by the room actor).
    share_large: bool,
    layout: Arc<AtomicBool>,
    buf: Vec<u8>,
}

impl Supervisor {
    fn run(&mut self, rx: Receiver<RecEvent>) {
        let mut last_tick = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(ev) => self.on_event(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.stop.load(Ordering::Relaxed) {
                self.shutdown(&rx);
                break;
            }
            let now = Instant::now();
            if now.duration_since(last_tick) >= Duration::from_millis(100) {
                last_tick = now;
                self.tick(now);
            }
            let wanted = self.layout.load(Ordering::Relaxed);
            if wanted != self.share_large {
                self.share_large = wanted;
                self.relayout = self.running.is_some();
            }
            if std::mem::take(&mut self.relayout) {
                // Ended while still fed (this thread keeps taking packets,
                // so its view of which tracks carry media stays current),
                // and started again at the next tick.
                self.shutdown(&rx);
                self.next_attempt = Instant::now();
            }
        }
        if let Some(r) = self.running.take() {
            quit(r);
        }
        self.status.store(STOPPED, Ordering::Relaxed);
        tracing::info!(restream = %self.setup.id,
            dropped_packets = self.dropped.load(Ordering::Relaxed), "restream ended");
    }

    /// Ends ffmpeg with `q` while the worker still feeds it (an input
    /// without packets would hold ffmpeg until its read timeout), killing
    /// it after [`QUIT_GRACE`].
    fn shutdown(&mut self, rx: &Receiver<RecEvent>) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if let Some(mut stdin) = r.stdin.take() {
            let _ = stdin.write_all(b"q");
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + QUIT_GRACE;
        while Instant::now() < deadline {
            if self
                .running
                .as_mut()
                .is_none_or(|r| !matches!(r.child.try_wait(), Ok(None)))
            {
                break;
            }
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(ev) => self.on_event(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
        }
        if let Some(r) = self.running.take() {
            quit(r);
        }
    }

    fn on_event(&mut self, ev: RecEvent) {
        match ev {
            RecEvent::Track { key, source, .. } => {
                self.order += 1;
                self.tracks.entry(key).or_insert(TrackState {
                    source,
                    order: self.order,
                    codec: None,
                    last_packet: None,
                });
            }
            RecEvent::TrackEnded { key } => {
                self.tracks.remove(&key);
            }
            RecEvent::Packet(p) => {
                let Some(t) = self.tracks.get_mut(&p.key) else {
                    return;
                };
                t.codec = Some(p.codec);
                t.last_packet = Some(p.arrival);
                let Some(r) = self.running.as_mut() else {
                    return;
                };
                let Some(&port) = r.ports.get(&p.key) else {
                    return;
                };
                let gate = &mut r.gate;
                if gate.listening.is_none() {
                    return;
                }
                if p.codec == Codec::Opus {
                    if !gate.audio_open {
                        return;
                    }
                } else if !gate.keyed.contains(&p.key) {
                    if !starts_keyframe(p.codec, &p.payload) {
                        return;
                    }
                    gate.keyed.push(p.key);
                }
                rtp_packet(
                    &mut self.buf,
                    payload_type(p.codec),
                    p.marker,
                    p.seq as u16,
                    p.ts,
                    ssrc_of(p.key),
                    &p.payload,
                );
                // Loopback UDP to ffmpeg; an error (ffmpeg not listening
                // yet) loses the packet, as the network would.
                let _ = self
                    .socket
                    .send_to(&self.buf, SocketAddr::from(([127, 0, 0, 1], port)));
            }
            RecEvent::Speaker { .. } => {}
        }
    }

    /// The tracks ffmpeg should compose now: those with recent media, in
    /// layout order (screen shares first, then by join order).
    fn wanted(&self, now: Instant) -> Vec<(TrackKey, Codec, bool)> {
        let mut v: Vec<(&TrackKey, &TrackState)> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                t.last_packet
                    .is_some_and(|at| now.saturating_duration_since(at) < SILENT_AFTER)
                    && t.codec.is_some_and(supported)
            })
            .collect();
        v.sort_by_key(|(_, t)| (t.source != Source::Screen, t.order));
        v.into_iter()
            .filter_map(|(k, t)| Some((*k, t.codec?, t.source == Source::Screen)))
            .collect()
    }

    fn tick(&mut self, now: Instant) {
        if let Some(r) = self.running.as_mut() {
            // The start gate: ffmpeg listening, then keyframes, then audio.
            if r.gate.listening.is_none()
                && (now.duration_since(r.started) >= LISTEN_WAIT
                    || match bound_udp_ports() {
                        Some(bound) => r.tracks.iter().all(|t| bound.contains(&t.port)),
                        None => now.duration_since(r.started) >= Duration::from_millis(500),
                    })
            {
                r.gate.listening = Some(now);
                tracing::debug!(restream = %self.setup.id,
                    after_ms = now.duration_since(r.started).as_millis() as u64,
                    "restream: ffmpeg listens");
                r.keyframe_at = [0u64, 700, 2000, 4000]
                    .iter()
                    .map(|ms| now + Duration::from_millis(*ms))
                    .collect();
            }
            if let Some(since) = r.gate.listening
                && !r.gate.audio_open
            {
                let videos = r.tracks.iter().filter(|t| t.video());
                let keyed = videos.clone().all(|t| r.gate.keyed.contains(&t.key));
                if keyed || now.duration_since(since) >= AUDIO_WAIT {
                    r.gate.audio_open = true;
                }
            }
            // Keyframes for ffmpeg to start decoding from.
            let due = r.keyframe_at.first().is_some_and(|t| *t <= now);
            if due {
                r.keyframe_at.remove(0);
                for t in r.tracks.iter().filter(|t| t.video()) {
                    let _ = self.keyframes.try_send(t.key);
                }
            }
        }
        let wanted = self.wanted(now);
        if let Some(r) = self.running.as_mut() {
            if r.live.load(Ordering::Relaxed) && r.live_since.is_none() {
                r.live_since = Some(now);
                self.status.store(LIVE, Ordering::Relaxed);
                self.failed_reported = false;
                tracing::info!(restream = %self.setup.id, tracks = r.tracks.len(), "restream is live");
            }
            if r.live_since
                .is_some_and(|t| now.duration_since(t) >= STABLE_AFTER)
            {
                self.backoff = RETRY_MIN;
            }
            match r.child.try_wait() {
                Ok(None) => {
                    let current: Vec<(TrackKey, Codec)> =
                        r.tracks.iter().map(|t| (t.key, t.codec)).collect();
                    let want: Vec<(TrackKey, Codec)> = wanted.iter().map(|w| (w.0, w.1)).collect();
                    if current != want && now.duration_since(r.started) >= MIN_RUN_BEFORE_RELAYOUT {
                        tracing::info!(restream = %self.setup.id, tracks = want.len(), "the room's media changed; restarting the composition");
                        self.relayout = true;
                    }
                }
                Ok(Some(status)) => {
                    let r = self.running.take();
                    let tail = r
                        .as_ref()
                        .map(|r| stderr_tail(&r.stderr))
                        .unwrap_or_default();
                    if let Some(r) = &r {
                        let _ = std::fs::remove_file(&r.sdp);
                    }
                    let reason = format!("ffmpeg exited ({status}): {}", last_line(&tail));
                    self.failed(&reason, &tail, now);
                }
                Err(e) => {
                    let reason = format!("ffmpeg could not be waited for: {e}");
                    if let Some(r) = self.running.take() {
                        quit(r);
                    }
                    self.failed(&reason, "", now);
                }
            }
        }
        if self.running.is_none()
            && now >= self.next_attempt
            && let Err(reason) = self.start(&wanted, now)
        {
            self.failed(&reason, "", now);
        }
    }

    /// An attempt failed or a live stream ended: log, tell webhooks once,
    /// and schedule the next attempt.
    fn failed(&mut self, reason: &str, stderr: &str, now: Instant) {
        let reason = redact(reason, &self.setup.target.stream_key);
        let stderr = redact(stderr, &self.setup.target.stream_key);
        tracing::warn!(restream = %self.setup.id, server = %self.setup.target.server_url,
            retry_in_ms = self.backoff.as_millis() as u64, %reason, ffmpeg = %stderr,
            "restream attempt failed");
        self.status.store(RETRYING, Ordering::Relaxed);
        if !self.failed_reported {
            self.failed_reported = true;
            self.emit(
                Event::RestreamingFailed,
                json!({"reason": reason, "retrying": true}),
            );
        }
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    fn emit(&self, event: Event, extra: serde_json::Value) {
        let mut data = json!({
            "room_id": self.setup.room_id,
            "restreamer_id": self.setup.id,
            "type": self.setup.target.provider.map(|p| p.name()),
            "server_url": self.setup.target.server_url,
        });
        if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        let db = self.setup.db.clone();
        let team = self.setup.team_id.clone();
        self.setup.runtime.spawn(async move {
            if let Err(e) = db.emit_event(&team, event, data).await {
                tracing::error!(error = %e, "could not queue a restreaming webhook");
            }
        });
    }

    fn start(&mut self, wanted: &[(TrackKey, Codec, bool)], now: Instant) -> Result<(), String> {
        let target = &self.setup.target;
        if !self.setup.config.allow_private {
            check_public(target)?;
        }
        let mut tracks = Vec::new();
        for &(key, codec, screen) in wanted {
            let port = free_port_pair().map_err(|e| format!("no local UDP port: {e}"))?;
            tracks.push(SdpTrack {
                key,
                codec,
                screen,
                port,
            });
        }
        static ATTEMPT: AtomicU64 = AtomicU64::new(0);
        let sdp_path = std::env::temp_dir().join(format!(
            "convene-restream-{}-{}.sdp",
            self.setup.id,
            ATTEMPT.fetch_add(1, Ordering::Relaxed)
        ));
        if !tracks.is_empty() {
            std::fs::write(&sdp_path, sdp(&tracks))
                .map_err(|e| format!("cannot write {}: {e}", sdp_path.display()))?;
        }
        let sdp_arg = (!tracks.is_empty()).then_some(sdp_path.as_path());
        let args = ffmpeg_args(&tracks, sdp_arg, &target.publish_url(), self.share_large);
        let mut child = Command::new(&self.setup.config.ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.setup.config.ffmpeg.display()))?;
        let live = Arc::new(AtomicBool::new(false));
        let speed = Arc::new(AtomicU32::new(0));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            let live = live.clone();
            let speed = speed.clone();
            // `-progress` lines: output time moving means frames reach the target.
            let _ = std::thread::Builder::new()
                .name("restream-progress".into())
                .spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if let Some(v) = line.strip_prefix("out_time_us=")
                            && v.trim().parse::<i64>().is_ok_and(|us| us > 0)
                        {
                            live.store(true, Ordering::Relaxed);
                        }
                        if let Some(v) = line.strip_prefix("speed=")
                            && let Ok(x) = v.trim().trim_end_matches('x').parse::<f32>()
                        {
                            speed.store((x * 100.0) as u32, Ordering::Relaxed);
                        }
                    }
                });
        }
        if let Some(err) = child.stderr.take() {
            let tail = stderr.clone();
            let _ = std::thread::Builder::new()
                .name("restream-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines() {
                        let Ok(line) = line else { break };
                        let mut t = match tail.lock() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        if t.len() >= STDERR_TAIL {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                });
        }
        tracing::info!(restream = %self.setup.id, server = %target.server_url,
            tracks = tracks.len(), "restream: ffmpeg started");
        let ports = tracks.iter().map(|t| (t.key, t.port)).collect();
        self.running = Some(Running {
            stdin: child.stdin.take(),
            child,
            tracks,
            ports,
            started: now,
            live,
            speed,
            live_since: None,
            stderr,
            sdp: sdp_path,
            keyframe_at: Vec::new(),
            gate: Gate::default(),
        });
        Ok(())
    }
}

/// Ends ffmpeg cleanly (`q` on stdin: the FLV is closed and the RTMP
/// connection shut down), killing it after [`QUIT_GRACE`].
fn quit(mut r: Running) {
    tracing::info!(
        speed = f64::from(r.speed.load(Ordering::Relaxed)) / 100.0,
        ran_ms = r.started.elapsed().as_millis() as u64,
        "restream: ending ffmpeg"
    );
    if let Some(mut stdin) = r.stdin.take() {
        let _ = stdin.write_all(b"q");
        let _ = stdin.flush();
    }
    let deadline = Instant::now() + QUIT_GRACE;
    loop {
        match r.child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = r.child.kill();
                let _ = r.child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = std::fs::remove_file(&r.sdp);
}

/// The SSRF check before a connection attempt (blocking DNS, on this
/// thread).
fn check_public(t: &RestreamTarget) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let (host, port) = t
        .host_port()
        .ok_or_else(|| "the target names no host".to_string())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::IpAddr> = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return Err(format!("{host} is a loopback address"));
    }
    for ip in addrs {
        if let Some(why) = convene_api::webhooks::guard::forbidden_reason(ip) {
            return Err(format!(
                "{host} ({ip}) is {why}; restreams may only target public addresses"
            ));
        }
    }
    Ok(())
}
