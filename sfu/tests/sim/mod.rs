//! A seeded, single-threaded discrete-event simulation of one publisher, the
//! `convene_sfu` forwarding core and several subscribers behind emulated
//! downlinks, driven by a virtual clock (issue 15); used by
//! `tests/virtual_time.rs`.
//!
//! Time is a `Duration` offset from one `Instant` base read by the caller;
//! nothing here sleeps or reads the clock. Events (publisher frames, audio
//! packets, the SFU's 100 ms housekeeping and 500 ms allocation ticks, packet
//! arrivals at subscribers, keyframe requests travelling back) sit in a heap
//! ordered by (time, insertion number), so a seed fully determines a run.
//!
//! The model, kept deliberately simple:
//! - **Publisher**: simulcast video on three layers (q/h/f at
//!   [`LAYER_BPS`]), [`FPS`] frames a second, every frame of every layer
//!   split into packets of at most [`MTU_PAYLOAD`] bytes, the marker on the
//!   last one, a keyframe ([`KEY_FACTOR`] times larger) every
//!   `Config::gop` and on the frame after a keyframe request reached it
//!   (all layers at once, as browsers do). Plus an Opus-like audio stream,
//!   [`AUDIO_BYTES`] every 20 ms. Its uplink is ideal (no loss, no delay);
//!   keyframe requests reach it after [`PUBLISHER_DELAY`].
//! - **SFU**: the same `convene_sfu` functions and types the media worker
//!   uses, called as it calls them (`server/src/rtc/worker/forwarding.rs`):
//!   a `Fanout` per track (video and audio) holding each subscriber's
//!   `Forwarder`, whose `decide` gives the sends of a packet; per layer a
//!   `RateMeter` fed with payload bytes; keyframe wishes and subscriber PLIs
//!   through `route_keyframe` and the track's `KeyframeLimiter`, polled
//!   every 100 ms; per subscriber an `Allocator` whose `steer` runs every
//!   500 ms and sets the forwarder's cap and congestion. What the worker
//!   adds (str0m writes, sockets, signaling) is not modelled. The worker's
//!   timers run [`TICK_PHASE`] out of step with the frame clock.
//! - **Downlink** (per subscriber): a serialisation queue at the link rate
//!   (a piecewise-constant schedule), bounded to [`QUEUE_TIME`] of that rate
//!   (a packet that does not fit is lost), then random loss, then a fixed
//!   delay plus uniform jitter (arrivals never reorder). No NACK/RTX: a lost
//!   packet stays lost. Sizes are payload bytes only (no RTP/UDP/SRTP
//!   overhead), as the worker's `RateMeter`s count them.
//! - **Bandwidth estimate** (what str0m's TWCC estimator would report, in
//!   caricature), updated at every allocation tick: if during the last
//!   500 ms the queue overflowed or a packet waited more than
//!   [`BUILDING_DELAY`], the estimate becomes [`BACKOFF`] times the rate the
//!   link actually delivered in that window (the delay-based back-off of
//!   GCC); otherwise, while below the link rate, it grows by [`GROWTH`] per
//!   tick up to the link rate (probing); above it, it stays until the queue
//!   proves it wrong. It starts at the link rate (a converged estimator).
//! - **Subscriber**: a decoder model. Any gap in the outgoing sequence
//!   numbers is loss (the link never reorders); it breaks the reference
//!   chain and sends a PLI to the SFU (arriving after the link delay). A
//!   frame is decodable when all its packets arrived and it is a keyframe,
//!   or a delta frame whose predecessor on the same layer was decoded.
//!
//! With `Config::estimator` set to [`EstimatorKind::Gcc`] the caricature
//! gives way to a real `convene_sfu::SendSideBwe` per subscriber, fed by
//! TWCC-like feedback from its downlink and probing with padding through it
//! (`gcc.rs`; used by `tests/virtual_time_gcc.rs`).
//!
//! Besides what the subscriber sees, the SFU's output is checked as it
//! leaves the forwarder: sequence numbers continuous, timestamps monotonic,
//! every forwarded frame complete, and every frame that does not continue
//! the previously forwarded frame of the same layer (a switch, a start, a
//! resume after congestion) a keyframe.

pub mod gcc;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use convene_sfu::{
    Allocator, Fanout, KeyframeLimiter, KeyframeRoute, Kind, Layer, Packet, RateMeter,
    SteeredTrack, TrackDemand, route_keyframe,
};
use gcc::{EstimatorKind, GccSummary};

/// Largest payload of one packet (bytes).
pub const MTU_PAYLOAD: usize = 1200;
/// Video frames a second, on every layer.
pub const FPS: u64 = 30;
/// Nominal bitrate of the q, h and f layers (delta frames; keyframes add).
pub const LAYER_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
/// A keyframe is this many times the size of a delta frame.
pub const KEY_FACTOR: u64 = 3;
/// One audio packet every 20 ms of this many bytes (40 kbit/s).
pub const AUDIO_BYTES: usize = 100;
pub const AUDIO_PTIME: Duration = Duration::from_millis(20);
/// SFU to publisher (keyframe requests).
pub const PUBLISHER_DELAY: Duration = Duration::from_millis(20);
/// The worker's housekeeping period (deferred keyframe requests).
pub const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// The worker's allocation period (`Allocator::plan`).
pub const ALLOCATION: Duration = Duration::from_millis(500);
/// The worker's timers are not aligned with the publisher's frame clock:
/// its ticks run this far after a multiple of their period (without it,
/// every third 100 ms tick would coincide with a frame and the outcome of a
/// tick-vs-frame tie would decide some scenarios).
pub const TICK_PHASE: Duration = Duration::from_millis(7);
/// A downlink queue holds at most this long at its current rate.
pub const QUEUE_TIME: Duration = Duration::from_millis(250);
/// A packet waiting longer than this means the queue is building.
pub const BUILDING_DELAY: Duration = Duration::from_millis(100);
/// On a building queue the estimate falls to this share of the delivered rate.
pub const BACKOFF: f64 = 0.85;
/// Otherwise it grows by this factor per allocation tick, up to the link.
pub const GROWTH: f64 = 1.25;
/// The estimate never falls below this (bits/s).
pub const MIN_ESTIMATE: u64 = 30_000;

#[path = "../rng/mod.rs"]
mod rng;
pub use rng::Rng;

/// One subscriber's downlink.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Link rate (bits/s) from each offset on; the first entry is at zero.
    pub rates: Vec<(Duration, u64)>,
    /// Probability that a packet is lost after the queue.
    pub loss: f64,
    /// One-way delay (also used for the subscriber's PLIs back to the SFU).
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter).
    pub jitter: Duration,
}

impl LinkConfig {
    pub fn steady(bps: u64) -> LinkConfig {
        LinkConfig {
            rates: vec![(Duration::ZERO, bps)],
            loss: 0.0,
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(5),
        }
    }

    /// The rate changes to `bps` at `at_secs`.
    pub fn then(mut self, at_secs: u64, bps: u64) -> LinkConfig {
        self.rates.push((Duration::from_secs(at_secs), bps));
        self
    }

    pub fn lossy(mut self, loss: f64) -> LinkConfig {
        self.loss = loss;
        self
    }

    pub fn rate_at(&self, t: Duration) -> u64 {
        self.rates
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map_or(0, |(_, r)| *r)
    }
}

#[derive(Debug, Clone)]
pub struct SubConfig {
    pub link: LinkConfig,
    /// The subscriber's preferred highest layer (`Forwarder::set_preference`).
    pub max_layer: Option<Layer>,
}

impl SubConfig {
    pub fn new(link: LinkConfig) -> SubConfig {
        SubConfig {
            link,
            max_layer: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub duration: Duration,
    /// Periodic keyframe interval of the publisher.
    pub gop: Duration,
    pub subs: Vec<SubConfig>,
    /// What drives the allocators (default: the caricature).
    pub estimator: EstimatorKind,
}

impl Config {
    pub fn new(seed: u64, secs: u64, subs: Vec<SubConfig>) -> Config {
        Config {
            seed,
            duration: Duration::from_secs(secs),
            gop: Duration::from_secs(10),
            subs,
            estimator: EstimatorKind::Caricature,
        }
    }
}

/// What a packet carries, as far as the simulation is concerned (its
/// "payload"): the publisher's view plus where in which frame it sits.
#[derive(Debug, Clone, Copy)]
struct Media {
    video: bool,
    layer: Layer,
    /// Frame number (video) or packet number (audio) at the publisher.
    src: u64,
    /// Index of the packet in its frame, and the frame's packet count.
    idx: u16,
    count: u16,
    /// The frame is a keyframe.
    key: bool,
    bytes: usize,
    seq: u64,
    ts: u32,
}

impl Media {
    fn marker(&self) -> bool {
        self.video && self.idx + 1 == self.count
    }

    fn starts_keyframe(&self) -> bool {
        self.video && self.key && self.idx == 0
    }
}

/// A forwarded packet: the media plus the forwarder's rewrite.
#[derive(Debug, Clone, Copy)]
struct OutPkt {
    m: Media,
    seq: u64,
    ts: u32,
}

#[derive(Debug)]
enum Ev {
    Frame(u64),
    Audio(u64),
    Housekeeping,
    Allocate,
    Arrive(usize, OutPkt),
    PliAtSfu,
    KeyframeAtPublisher,
    Gcc(usize, gcc::GccEv),
}

#[derive(Debug)]
struct Queued {
    at: Duration,
    n: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.n) == (o.at, o.n)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    /// Reversed: the heap pops the earliest event, ties in insertion order.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.n).cmp(&(self.at, self.n))
    }
}

#[derive(Debug, Default)]
struct Events {
    heap: BinaryHeap<Queued>,
    n: u64,
}

impl Events {
    fn push(&mut self, at: Duration, ev: Ev) {
        self.n += 1;
        self.heap.push(Queued { at, n: self.n, ev });
    }
}

fn frame_time(n: u64) -> Duration {
    Duration::from_nanos(n * 1_000_000_000 / FPS)
}

/// The emulated downlink with its estimate model.
#[derive(Debug)]
struct Link {
    cfg: LinkConfig,
    rng: Rng,
    /// When the queue has sent everything accepted so far.
    busy_until: Duration,
    last_arrival: Duration,
    /// (departure, bytes) of recently accepted packets.
    departures: VecDeque<(Duration, usize)>,
    window_overflow: u64,
    window_max_wait: Duration,
    estimate: u64,
    overflow: u64,
    random_loss: u64,
}

impl Link {
    fn new(cfg: LinkConfig, rng: Rng) -> Link {
        let estimate = cfg.rate_at(Duration::ZERO);
        Link {
            cfg,
            rng,
            busy_until: Duration::ZERO,
            last_arrival: Duration::ZERO,
            departures: VecDeque::new(),
            window_overflow: 0,
            window_max_wait: Duration::ZERO,
            estimate,
            overflow: 0,
            random_loss: 0,
        }
    }

    /// Sends `bytes` at `now`: the arrival time, or `None` when lost.
    fn send(&mut self, now: Duration, bytes: usize) -> Option<Duration> {
        let rate = self.cfg.rate_at(now).max(1);
        let wait = self.busy_until.saturating_sub(now);
        let backlog = wait.as_secs_f64() * rate as f64 / 8.0;
        let limit = (QUEUE_TIME.as_secs_f64() * rate as f64 / 8.0).max(3000.0);
        if backlog + bytes as f64 > limit {
            self.overflow += 1;
            self.window_overflow += 1;
            return None;
        }
        self.window_max_wait = self.window_max_wait.max(wait);
        let done = self.busy_until.max(now)
            + Duration::from_nanos(bytes as u64 * 8 * 1_000_000_000 / rate);
        self.busy_until = done;
        self.departures.push_back((done, bytes));
        let lost = self.rng.unit() < self.cfg.loss;
        let jitter = self.cfg.jitter.mul_f64(self.rng.unit());
        if lost {
            self.random_loss += 1;
            return None;
        }
        let arrival = (done + self.cfg.delay + jitter).max(self.last_arrival);
        self.last_arrival = arrival;
        Some(arrival)
    }

    /// The estimate model (see the module documentation), once per
    /// allocation tick.
    fn estimate(&mut self, now: Duration) -> u64 {
        let from = now.saturating_sub(ALLOCATION);
        while self.departures.front().is_some_and(|(t, _)| *t <= from) {
            self.departures.pop_front();
        }
        let bytes: usize = self
            .departures
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, b)| *b)
            .sum();
        let delivered = (bytes as f64 * 8.0 / ALLOCATION.as_secs_f64()) as u64;
        let building = self.window_overflow > 0 || self.window_max_wait > BUILDING_DELAY;
        let link = self.cfg.rate_at(now);
        self.estimate = if building {
            ((delivered as f64 * BACKOFF) as u64).max(MIN_ESTIMATE)
        } else if self.estimate < link {
            ((self.estimate as f64 * GROWTH) as u64).min(link)
        } else {
            self.estimate
        };
        self.window_overflow = 0;
        self.window_max_wait = Duration::ZERO;
        self.estimate
    }
}

/// Checks of the SFU's output towards one subscriber, as it leaves the
/// forwarder.
#[derive(Debug, Default)]
struct OutCheck {
    last_seq: Option<u64>,
    last_ts: Option<u32>,
    /// The frame being forwarded: layer, source frame, packets forwarded,
    /// packets in the frame.
    cur: Option<(Layer, u64, u16, u16)>,
    seq_gaps: u64,
    ts_backwards: u64,
    partial_frames: u64,
    switch_without_key: u64,
    frames: u64,
    frames_per_layer: [u64; 3],
    packets: u64,
    layers: Vec<(Duration, Layer)>,
    /// (when, layer) of every frame that does not continue the previous
    /// forwarded frame: the start, switches, resumes.
    starts: Vec<(Duration, Layer)>,
    /// Forwarded video frames per whole second.
    frames_per_sec: Vec<u64>,
    audio_last: Option<u64>,
    audio_seq_gaps: u64,
    audio_packets: u64,
}

impl OutCheck {
    fn on_video(&mut self, now: Duration, m: &Media, seq: u64, ts: u32) {
        self.packets += 1;
        if self.last_seq.is_some_and(|s| seq != s + 1) {
            self.seq_gaps += 1;
        }
        self.last_seq = Some(seq);
        match &mut self.cur {
            Some((l, src, got, _)) if *l == m.layer && *src == m.src => *got += 1,
            prev => {
                let prev = *prev;
                if let Some((_, _, got, count)) = prev
                    && got != count
                {
                    self.partial_frames += 1;
                }
                if m.idx != 0 {
                    self.partial_frames += 1;
                }
                let continues = prev.is_some_and(|(l, src, _, _)| l == m.layer && m.src == src + 1);
                if !continues {
                    self.starts.push((now, m.layer));
                    if !m.starts_keyframe() {
                        self.switch_without_key += 1;
                    }
                }
                let sec = now.as_secs() as usize;
                if self.frames_per_sec.len() <= sec {
                    self.frames_per_sec.resize(sec + 1, 0);
                }
                self.frames_per_sec[sec] += 1;
                if prev.map(|p| p.0) != Some(m.layer) {
                    self.layers.push((now, m.layer));
                }
                if self
                    .last_ts
                    .is_some_and(|t| ts == t || ts.wrapping_sub(t) >= 1 << 31)
                {
                    self.ts_backwards += 1;
                }
                self.frames += 1;
                self.frames_per_layer[m.layer.index()] += 1;
                self.cur = Some((m.layer, m.src, 1, m.count));
            }
        }
        self.last_ts = Some(ts);
    }

    fn on_audio(&mut self, seq: u64) {
        self.audio_packets += 1;
        if self.audio_last.is_some_and(|s| seq != s + 1) {
            self.audio_seq_gaps += 1;
        }
        self.audio_last = Some(seq);
    }

    fn finish(&mut self) {
        if let Some((_, _, got, count)) = self.cur.take()
            && got != count
        {
            self.partial_frames += 1;
        }
    }
}

/// A frame being reassembled by the subscriber.
#[derive(Debug, Clone, Copy)]
struct Asm {
    ts: u32,
    layer: Layer,
    src: u64,
    key: bool,
    got: u16,
    count: u16,
    intact: bool,
}

/// The subscriber's decoder model.
#[derive(Debug, Default)]
struct Receiver {
    next_seq: Option<u64>,
    asm: Option<Asm>,
    /// The reference chain is intact (the last frame was decoded).
    ok: bool,
    /// The last decoded frame: layer, source frame.
    last: Option<(Layer, u64)>,
    decoded: u64,
    decoded_per_layer: [u64; 3],
    keyframes_decoded: u64,
    undecodable: u64,
    broken_refs: u64,
    lost: u64,
    reordered: u64,
    plis: u64,
    pli_times: Vec<Duration>,
    audio_next: Option<u64>,
    audio_received: u64,
    audio_lost: u64,
    /// Decoded frames per whole second of arrival.
    decoded_per_sec: Vec<u64>,
    /// When the last frame was decoded, and the longest time between two
    /// decoded frames (the longest freeze of the picture).
    last_decoded_at: Option<Duration>,
    longest_freeze: Duration,
}

impl Receiver {
    /// A video packet arrives; true when it asks for a keyframe (PLI).
    fn on_video(&mut self, now: Duration, p: &OutPkt) -> bool {
        let mut pli = false;
        if let Some(n) = self.next_seq {
            if p.seq < n {
                self.reordered += 1;
                return false;
            }
            if p.seq > n {
                self.lost += p.seq - n;
                self.ok = false;
                if let Some(a) = self.asm.as_mut() {
                    a.intact = false;
                }
                pli = true;
            }
        }
        self.next_seq = Some(p.seq + 1);
        if self.asm.is_none_or(|a| a.ts != p.ts) {
            if self.asm.is_some() {
                // The previous frame never saw its marker.
                self.undecodable += 1;
                self.ok = false;
            }
            self.asm = Some(Asm {
                ts: p.ts,
                layer: p.m.layer,
                src: p.m.src,
                key: p.m.starts_keyframe(),
                got: 0,
                count: p.m.count,
                intact: p.m.idx == 0,
            });
        }
        if let Some(a) = self.asm.as_mut() {
            a.got += 1;
        }
        if p.m.marker()
            && let Some(a) = self.asm.take()
        {
            if a.intact && a.got == a.count {
                self.decode(now, a);
            } else {
                self.undecodable += 1;
                self.ok = false;
            }
        }
        if pli {
            self.plis += 1;
            self.pli_times.push(now);
        }
        pli
    }

    fn decode(&mut self, now: Duration, a: Asm) {
        if !a.key {
            if !self.ok {
                self.undecodable += 1;
                return;
            }
            if self.last != Some((a.layer, a.src.wrapping_sub(1))) {
                // The SFU skipped a frame without telling (no gap): the
                // picture would be corrupt.
                self.broken_refs += 1;
                self.ok = false;
                return;
            }
        } else {
            self.keyframes_decoded += 1;
        }
        self.ok = true;
        if self.last.map(|l| l.1) != Some(a.src) {
            self.decoded += 1;
            if let Some(t) = self.last_decoded_at {
                self.longest_freeze = self.longest_freeze.max(now - t);
            }
            self.last_decoded_at = Some(now);
            let sec = now.as_secs() as usize;
            if self.decoded_per_sec.len() <= sec {
                self.decoded_per_sec.resize(sec + 1, 0);
            }
            self.decoded_per_sec[sec] += 1;
        }
        self.decoded_per_layer[a.layer.index()] += 1;
        self.last = Some((a.layer, a.src));
    }

    fn on_audio(&mut self, p: &OutPkt) {
        if let Some(n) = self.audio_next
            && p.seq > n
        {
            self.audio_lost += p.seq - n;
        }
        self.audio_next = Some(p.seq + 1);
        self.audio_received += 1;
    }
}

#[derive(Debug)]
struct Sub {
    alloc: Allocator,
    link: Link,
    check: OutCheck,
    rx: Receiver,
    caps: Vec<(Duration, Layer)>,
    congested: Vec<(Duration, bool)>,
    congested_ticks: u64,
    estimates: Vec<(Duration, u64)>,
    /// `Allocator::steer`'s scratch space.
    demands: Vec<TrackDemand>,
    /// The real estimator, when the run uses one.
    gcc: Option<gcc::Gcc>,
}

#[derive(Debug)]
struct Publisher {
    rng: Rng,
    seq: [u64; 3],
    ts0: [u32; 3],
    audio_seq: u64,
    audio_ts0: u32,
    key_pending: bool,
    next_gop: Duration,
    frames: u64,
    keyframes: u64,
    keyframe_requests: Vec<Duration>,
}

/// One subscriber's figures at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SubSummary {
    /// (when, layer) each time the forwarded layer changed.
    pub layers: Vec<(Duration, Layer)>,
    /// (when, cap) each time the allocator changed the cap.
    pub caps: Vec<(Duration, Layer)>,
    /// (when, congested) each time congestion changed.
    pub congested: Vec<(Duration, bool)>,
    pub congested_ticks: u64,
    /// The estimate at every allocation tick.
    pub estimates: Vec<(Duration, u64)>,
    /// (when, layer) of every forwarded frame that starts a new run (the
    /// first, after a switch, after a congestion drop): all keyframes.
    pub starts: Vec<(Duration, Layer)>,
    pub forwarded_packets: u64,
    pub forwarded_frames: u64,
    /// Forwarded video frames per whole second.
    pub frames_per_sec: Vec<u64>,
    pub frames_per_layer: [u64; 3],
    /// SFU output: sequence gaps, non-monotonic timestamps, incomplete
    /// frames, frames that start a new run without being a keyframe.
    pub seq_gaps: u64,
    pub ts_backwards: u64,
    pub partial_frames: u64,
    pub switch_without_key: u64,
    pub audio_forwarded: u64,
    pub audio_seq_gaps: u64,
    /// Link: packets lost to queue overflow and to random loss.
    pub link_overflow: u64,
    pub link_random_loss: u64,
    /// Subscriber: packets missing from the sequence, out of order, PLIs.
    pub lost: u64,
    pub reordered: u64,
    pub plis: u64,
    /// When the subscriber sent its PLIs.
    pub pli_times: Vec<Duration>,
    pub decoded: u64,
    pub decoded_per_layer: [u64; 3],
    pub keyframes_decoded: u64,
    pub undecodable: u64,
    pub broken_refs: u64,
    pub decoded_per_sec: Vec<u64>,
    /// The longest time between two decoded frames.
    pub longest_freeze: Duration,
    pub audio_received: u64,
    pub audio_lost: u64,
    /// The real estimator's figures, when the run used one.
    pub gcc: Option<GccSummary>,
}

impl SubSummary {
    /// The layer being forwarded at `t` (the last change at or before it).
    pub fn layer_at(&self, t: Duration) -> Option<Layer> {
        self.layers
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, l)| *l)
    }

    /// Video frames forwarded in the whole seconds `[from, to)`.
    pub fn frames_forwarded(&self, from: usize, to: usize) -> u64 {
        self.frames_per_sec.iter().take(to).skip(from).sum()
    }

    /// Frames decoded by the subscriber in the whole seconds `[from, to)`.
    pub fn frames_decoded(&self, from: usize, to: usize) -> u64 {
        self.decoded_per_sec.iter().take(to).skip(from).sum()
    }

    /// Frames decoded per publisher frame.
    pub fn decoded_share(&self, frames_sent: u64) -> f64 {
        self.decoded as f64 / frames_sent.max(1) as f64
    }

    /// Panics unless every check of the SFU's output towards this
    /// subscriber passed (outgoing sequence numbers continuous, video and
    /// audio; timestamps monotonic; every forwarded frame complete; every
    /// start, switch or resume at a keyframe; no delta frame decoded against
    /// a frame the SFU skipped silently) and every hole the decoder saw was
    /// made by the link, not the SFU (a loss after the last arrival is not
    /// seen, hence <=).
    pub fn assert_clean(&self, name: &str, i: usize) {
        assert!(
            self.output_clean(),
            "{name}: sub {i}: seq gaps {}, ts backwards {}, partial frames {}, switches without keyframe {}, audio seq gaps {}, broken refs {}, reordered {}",
            self.seq_gaps,
            self.ts_backwards,
            self.partial_frames,
            self.switch_without_key,
            self.audio_seq_gaps,
            self.broken_refs,
            self.reordered
        );
        assert!(
            self.lost + self.audio_lost <= self.link_overflow + self.link_random_loss,
            "{name}: sub {i}: holes the link did not make"
        );
    }

    /// All SFU output checks passed.
    pub fn output_clean(&self) -> bool {
        self.seq_gaps == 0
            && self.ts_backwards == 0
            && self.partial_frames == 0
            && self.switch_without_key == 0
            && self.audio_seq_gaps == 0
            && self.broken_refs == 0
            && self.reordered == 0
    }

    pub fn line(&self, frames_sent: u64) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|(t, l)| format!("{}@{:.1}s", l.rid(), t.as_secs_f64()))
            .collect();
        let caps: Vec<String> = self
            .caps
            .iter()
            .map(|(t, l)| format!("{}@{:.1}s", l.rid(), t.as_secs_f64()))
            .collect();
        let congested: Vec<String> = self
            .congested
            .iter()
            .map(|(t, c)| format!("{c}@{:.1}s", t.as_secs_f64()))
            .collect();
        let starts: Vec<String> = self
            .starts
            .iter()
            .map(|(t, l)| format!("{}@{:.2}s", l.rid(), t.as_secs_f64()))
            .collect();
        format!(
            "layers [{}] caps [{}] congested [{}] ({} ticks) keyframe starts [{}] | fwd {} pkts {} frames (q/h/f {:?}) | \
             link overflow {} random {} | rx lost {} plis {} decoded {} ({:.1}% of {}, longest freeze {:.2}s) keyframes {} undecodable {} | \
             audio fwd {} rx {} lost {} | checks: seq gaps {} ts {} partial {} switch w/o key {} broken refs {}",
            layers.join(" "),
            caps.join(" "),
            congested.join(" "),
            self.congested_ticks,
            starts.join(" "),
            self.forwarded_packets,
            self.forwarded_frames,
            self.frames_per_layer,
            self.link_overflow,
            self.link_random_loss,
            self.lost,
            self.plis,
            self.decoded,
            100.0 * self.decoded_share(frames_sent),
            frames_sent,
            self.longest_freeze.as_secs_f64(),
            self.keyframes_decoded,
            self.undecodable,
            self.audio_forwarded,
            self.audio_received,
            self.audio_lost,
            self.seq_gaps,
            self.ts_backwards,
            self.partial_frames,
            self.switch_without_key,
            self.broken_refs,
        )
    }
}

/// A run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    /// When keyframe requests left the SFU for the publisher.
    pub keyframe_requests: Vec<Duration>,
    /// When subscribers' PLIs reached the SFU.
    pub plis_at_sfu: Vec<Duration>,
    pub subs: Vec<SubSummary>,
    /// FNV-1a over every arrival (subscriber, seq, time): two runs with the
    /// same digest delivered the same packets at the same virtual times.
    pub digest: u64,
}

impl Summary {
    /// The shortest spacing of two keyframe requests to the publisher.
    pub fn min_request_spacing(&self) -> Option<Duration> {
        self.keyframe_requests.windows(2).map(|w| w[1] - w[0]).min()
    }

    pub fn print(&self, name: &str) {
        eprintln!(
            "[{name}] publisher: {} frames/layer, {} keyframes, {} keyframe requests (min spacing {:?}), {} PLIs at the SFU, digest {:016x}",
            self.frames_sent,
            self.keyframes_sent,
            self.keyframe_requests.len(),
            self.min_request_spacing(),
            self.plis_at_sfu.len(),
            self.digest
        );
        for (i, s) in self.subs.iter().enumerate() {
            eprintln!("[{name}]   sub {i}: {}", s.line(self.frames_sent));
            if let Some(g) = &s.gcc {
                eprintln!("[{name}]   sub {i}: {}", g.line());
            }
        }
    }
}

/// The simulation.
pub struct Sim {
    base: Instant,
    cfg: Config,
    events: Events,
    publisher: Publisher,
    rates: [RateMeter; 3],
    limiter: KeyframeLimiter,
    /// The video and audio tracks' subscribers, as the worker keeps them
    /// (by subscriber index here).
    video: Fanout<usize>,
    audio: Fanout<usize>,
    /// One packet's sends (the worker's scratch).
    sends: Vec<(usize, u64, u32)>,
    subs: Vec<Sub>,
    plis_at_sfu: Vec<Duration>,
    digest: u64,
}

impl Sim {
    pub fn new(cfg: Config, base: Instant) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let publisher = Publisher {
            seq: [
                rng.next_u64() % 65_536,
                rng.next_u64() % 65_536,
                rng.next_u64() % 65_536,
            ],
            ts0: [
                rng.next_u64() as u32,
                rng.next_u64() as u32,
                rng.next_u64() as u32,
            ],
            audio_seq: rng.next_u64() % 65_536,
            audio_ts0: rng.next_u64() as u32,
            rng: Rng::new(rng.next_u64()),
            key_pending: false,
            next_gop: Duration::ZERO,
            frames: 0,
            keyframes: 0,
            keyframe_requests: Vec::new(),
        };
        let mut video = Fanout::new(Kind::Video);
        let mut audio = Fanout::new(Kind::Audio);
        let mut subs: Vec<Sub> = cfg
            .subs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                video.subscribe(i).set_preference(s.max_layer, None);
                video.set_active(i, true);
                audio.subscribe(i);
                audio.set_active(i, true);
                Sub {
                    alloc: Allocator::default(),
                    // Each link draws from its own stream, so adding or
                    // changing one subscriber leaves the others' draws alone.
                    link: Link::new(
                        s.link.clone(),
                        Rng::new(cfg.seed ^ (0x5EED_0000 + i as u64)),
                    ),
                    check: OutCheck::default(),
                    rx: Receiver::default(),
                    caps: Vec::new(),
                    congested: Vec::new(),
                    congested_ticks: 0,
                    demands: Vec::new(),
                    estimates: Vec::new(),
                    gcc: None,
                }
            })
            .collect();
        let mut events = Events::default();
        events.push(Duration::ZERO, Ev::Frame(0));
        events.push(Duration::ZERO, Ev::Audio(0));
        events.push(HOUSEKEEPING + TICK_PHASE, Ev::Housekeeping);
        events.push(ALLOCATION + TICK_PHASE, Ev::Allocate);
        if let EstimatorKind::Gcc(bwe, desired) = cfg.estimator {
            for (i, s) in subs.iter_mut().enumerate() {
                let mut cx = gcc::Ctx {
                    events: &mut events,
                    base,
                    sub: i,
                    now: Duration::ZERO,
                };
                let seed = cfg.seed ^ (0x6CC0_0000 + i as u64);
                let max_layer = cfg.subs[i].max_layer;
                s.gcc = Some(gcc::Gcc::start(bwe, desired, max_layer, seed, &mut cx));
            }
        }
        Sim {
            base,
            cfg,
            events,
            publisher,
            rates: [RateMeter::new(), RateMeter::new(), RateMeter::new()],
            limiter: KeyframeLimiter::default(),
            video,
            audio,
            sends: Vec::new(),
            subs,
            plis_at_sfu: Vec::new(),
            digest: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// Runs to the configured end and returns the figures.
    pub fn run(mut self) -> Summary {
        while let Some(q) = self.events.heap.pop() {
            if q.at >= self.cfg.duration {
                break;
            }
            self.step(q.at, q.ev);
        }
        for s in &mut self.subs {
            s.check.finish();
        }
        Summary {
            frames_sent: self.publisher.frames,
            keyframes_sent: self.publisher.keyframes,
            keyframe_requests: self.publisher.keyframe_requests,
            plis_at_sfu: self.plis_at_sfu,
            digest: self.digest,
            subs: self
                .subs
                .into_iter()
                .map(|s| SubSummary {
                    layers: s.check.layers,
                    caps: s.caps,
                    congested: s.congested,
                    congested_ticks: s.congested_ticks,
                    estimates: s.estimates,
                    starts: s.check.starts,
                    frames_per_sec: s.check.frames_per_sec,
                    forwarded_packets: s.check.packets,
                    forwarded_frames: s.check.frames,
                    frames_per_layer: s.check.frames_per_layer,
                    seq_gaps: s.check.seq_gaps,
                    ts_backwards: s.check.ts_backwards,
                    partial_frames: s.check.partial_frames,
                    switch_without_key: s.check.switch_without_key,
                    audio_forwarded: s.check.audio_packets,
                    audio_seq_gaps: s.check.audio_seq_gaps,
                    link_overflow: s.link.overflow,
                    link_random_loss: s.link.random_loss,
                    lost: s.rx.lost,
                    reordered: s.rx.reordered,
                    plis: s.rx.plis,
                    pli_times: s.rx.pli_times,
                    decoded: s.rx.decoded,
                    decoded_per_layer: s.rx.decoded_per_layer,
                    keyframes_decoded: s.rx.keyframes_decoded,
                    undecodable: s.rx.undecodable,
                    broken_refs: s.rx.broken_refs,
                    decoded_per_sec: s.rx.decoded_per_sec,
                    longest_freeze: s.rx.longest_freeze,
                    audio_received: s.rx.audio_received,
                    audio_lost: s.rx.audio_lost,
                    gcc: s.gcc.as_ref().map(gcc::Gcc::summary),
                })
                .collect(),
        }
    }

    fn step(&mut self, now: Duration, ev: Ev) {
        match ev {
            Ev::Frame(n) => {
                self.publish_frame(n, now);
                self.events.push(frame_time(n + 1), Ev::Frame(n + 1));
            }
            Ev::Audio(k) => {
                self.publish_audio(k, now);
                self.events.push(now + AUDIO_PTIME, Ev::Audio(k + 1));
            }
            Ev::Housekeeping => {
                if self.limiter.poll(self.base + now) {
                    self.send_keyframe_request(now);
                }
                self.events.push(now + HOUSEKEEPING, Ev::Housekeeping);
            }
            Ev::Allocate => {
                self.allocate(now);
                self.events.push(now + ALLOCATION, Ev::Allocate);
            }
            Ev::Arrive(i, p) => {
                self.digest = fnv(self.digest, &[i as u64, p.seq, now.as_nanos() as u64]);
                let s = &mut self.subs[i];
                if p.m.video {
                    if s.rx.on_video(now, &p) {
                        let back = now + s.link.cfg.delay;
                        self.events.push(back, Ev::PliAtSfu);
                    }
                } else {
                    s.rx.on_audio(&p);
                }
            }
            Ev::PliAtSfu => {
                self.plis_at_sfu.push(now);
                self.request_keyframe(now);
            }
            Ev::KeyframeAtPublisher => {
                self.publisher.key_pending = true;
            }
            Ev::Gcc(i, ev) => {
                let s = &mut self.subs[i];
                if let Some(g) = s.gcc.as_mut() {
                    let mut cx = gcc::Ctx {
                        events: &mut self.events,
                        base: self.base,
                        sub: i,
                        now,
                    };
                    g.on_event(&mut cx, &mut s.link, ev);
                }
            }
        }
    }

    fn publish_frame(&mut self, n: u64, now: Duration) {
        let p = &mut self.publisher;
        let key = p.key_pending || now >= p.next_gop;
        if key {
            p.key_pending = false;
            p.keyframes += 1;
            p.next_gop = now + self.cfg.gop;
        }
        p.frames += 1;
        let mut packets = Vec::new();
        for layer in Layer::ALL {
            let li = layer.index();
            let nominal = LAYER_BPS[li] / 8 / FPS * if key { KEY_FACTOR } else { 1 };
            let bytes = (nominal as f64 * (0.9 + 0.2 * p.rng.unit())) as usize;
            let count = bytes.div_ceil(MTU_PAYLOAD).max(1);
            let ts = p.ts0[li].wrapping_add((n * 90_000 / FPS) as u32);
            for idx in 0..count {
                let size = if idx + 1 == count {
                    bytes - MTU_PAYLOAD * (count - 1)
                } else {
                    MTU_PAYLOAD
                };
                packets.push(Media {
                    video: true,
                    layer,
                    src: n,
                    idx: idx as u16,
                    count: count as u16,
                    key,
                    bytes: size,
                    seq: p.seq[li],
                    ts,
                });
                p.seq[li] += 1;
            }
        }
        for m in packets {
            self.sfu_video(m, now);
        }
    }

    fn publish_audio(&mut self, k: u64, now: Duration) {
        let m = Media {
            video: false,
            layer: Layer::F,
            src: k,
            idx: 0,
            count: 1,
            key: false,
            bytes: AUDIO_BYTES,
            seq: self.publisher.audio_seq + k,
            ts: self.publisher.audio_ts0.wrapping_add((k * 960) as u32),
        };
        let at = self.base + now;
        let p = Packet {
            seq: m.seq,
            ts: m.ts,
            marker: false,
            layer: Layer::F,
            keyframe: false,
            clock_rate: 48_000,
            arrival: at,
        };
        self.audio.decide(&p, &mut self.sends);
        for &(i, seq, ts) in &self.sends {
            let s = &mut self.subs[i];
            s.check.on_audio(seq);
            if let Some(t) = s.send(now, m.bytes, &mut self.events, self.base, i) {
                self.events.push(t, Ev::Arrive(i, OutPkt { m, seq, ts }));
            }
        }
    }

    /// What the worker's `forward_rtp` + `deliver` do with a video packet.
    fn sfu_video(&mut self, m: Media, now: Duration) {
        let at = self.base + now;
        self.rates[m.layer.index()].record(m.bytes, at);
        let p = Packet {
            seq: m.seq,
            ts: m.ts,
            marker: m.marker(),
            layer: m.layer,
            keyframe: m.starts_keyframe(),
            clock_rate: 90_000,
            arrival: at,
        };
        // The worker's `fan_out`: the track's fan-out decides, the sends
        // are applied in its order.
        let count = self.video.decide(&p, &mut self.sends);
        for &(i, seq, ts) in &self.sends {
            let s = &mut self.subs[i];
            s.check.on_video(now, &m, seq, ts);
            if let Some(t) = s.send(now, m.bytes, &mut self.events, self.base, i) {
                self.events.push(t, Ev::Arrive(i, OutPkt { m, seq, ts }));
            }
        }
        if count.keyframe_needed {
            self.request_keyframe(now);
        }
    }

    /// The worker's `request_keyframe`: routed by `route_keyframe` (the
    /// publisher is local to the simulated worker).
    fn request_keyframe(&mut self, now: Duration) {
        let publisher: convene_sfu::Publisher<(), ()> = convene_sfu::Publisher::Local(());
        if let KeyframeRoute::Ask(()) =
            route_keyframe(publisher, true, false, &mut self.limiter, self.base + now)
        {
            self.send_keyframe_request(now);
        }
    }

    fn send_keyframe_request(&mut self, now: Duration) {
        self.publisher.keyframe_requests.push(now);
        self.events
            .push(now + PUBLISHER_DELAY, Ev::KeyframeAtPublisher);
    }

    /// The worker's `allocate_layers`, through `Allocator::steer`.
    fn allocate(&mut self, now: Duration) {
        let at = self.base + now;
        let layer_bps = [
            self.rates[0].bps(at),
            self.rates[1].bps(at),
            self.rates[2].bps(at),
        ];
        for (i, s) in self.subs.iter_mut().enumerate() {
            let mut estimate = s.link.estimate(now);
            if let Some(g) = &s.gcc {
                estimate = g.estimate_bps();
            }
            s.estimates.push((now, estimate));
            if layer_bps == [0; 3] {
                continue;
            }
            let Some(forward) = self.video.forwarder_mut(i) else {
                continue;
            };
            let before = forward.cap();
            let mut tracks = [SteeredTrack { forward, layer_bps }];
            let plan = s
                .alloc
                .steer(Some(estimate), 1, at, &mut tracks, &mut s.demands);
            let after = tracks[0].forward.cap();
            if after != before {
                s.caps.push((now, after));
            }
            if s.congested.last().map(|c| c.1).unwrap_or(false) != plan.congested {
                s.congested.push((now, plan.congested));
            }
            if plan.congested {
                s.congested_ticks += 1;
            }
            if let Some(g) = s.gcc.as_mut() {
                let mut cx = gcc::Ctx {
                    events: &mut self.events,
                    base: self.base,
                    sub: i,
                    now,
                };
                g.on_plan(&mut cx, &plan);
            }
        }
    }
}

fn fnv(mut h: u64, words: &[u64]) -> u64 {
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    h
}

/// Runs a simulation from `cfg` and prints its figures under `name`.
pub fn run(name: &str, cfg: Config) -> Summary {
    let s = Sim::new(cfg, Instant::now()).run();
    s.print(name);
    s
}

/// Seconds of virtual time.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Stand-in for `expect` on options (the workspace warns on
/// `expect_used`/`unwrap_used`, in tests too).
pub trait OrPanic<T> {
    fn or_fail(self, what: &str) -> T;
}

impl<T> OrPanic<T> for Option<T> {
    fn or_fail(self, what: &str) -> T {
        match self {
            Some(v) => v,
            None => panic!("{what}"),
        }
    }
}
