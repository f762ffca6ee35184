//! The simulation's optional real bandwidth estimator: per subscriber a
//! `convene_sfu::SendSideBwe` fed by TWCC-like feedback from that
//! subscriber's emulated downlink, answering its probes with padding through
//! the same link; chosen per run with `Config::estimator` (used by
//! `tests/virtual_time_gcc.rs`; the caricature in `mod.rs` stays the default).
//!
//! The model, per subscriber:
//! - **Sender**: every datagram that leaves on the downlink (video, audio,
//!   padding) takes the next transport-wide sequence number (a u16 starting
//!   at a seeded point, so it wraps in long runs) and is reported to
//!   `on_packet_sent` with its payload size (the byte counts the link
//!   already uses; padding is [`PADDING_BYTES`]).
//! - **Probes**: after `new`, every feedback, every `set_desired_bps` and
//!   every `handle_timeout`, `poll_probe` is drained; each request becomes
//!   padding packets of [`PADDING_BYTES`] paced at its rate (at least
//!   `min_packets`, at least `min_duration`), one probe after the other,
//!   through the same queue as media (they take its room and can overflow
//!   it). They carry no media: the decoder model never sees them, and their
//!   losses are counted apart from the link's media losses.
//! - **Receiver**: knows each packet's fate when the link decides it (the
//!   link never reorders), and every 50-100 ms reports every sequence
//!   number since its previous report up to the newest that has arrived,
//!   each with its arrival time in µs on its own clock (an arbitrary
//!   epoch) or lost. The report reaches the SFU after the link's one-way
//!   delay (the uplink is otherwise ideal: no loss, no queue).
//! - **Estimator**: `on_feedback` at the report's arrival, `handle_timeout`
//!   at `poll_timeout` (one pending timer event, re-armed after every call),
//!   `estimate_bps` read at the allocation tick in place of the
//!   caricature. The desired rate ([`Desired`]) is what the subscriber's
//!   preferred layer nominally takes plus the allocator's audio share (set
//!   once at the start), optionally times the allocator's `UP_HEADROOM`, or
//!   the plan's `desired_bps` after every allocation tick (as a worker
//!   would pass it; at the start, the nominal rate).
//!
//! Everything goes through the simulation's event heap; all draws come from
//! a per-subscriber stream of the run's seed.

#![allow(dead_code)] // `tests/virtual_time.rs` shares the harness but not this

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use convene_sfu::allocator::UP_HEADROOM;
use convene_sfu::{AUDIO_BPS, BweConfig, Layer, Plan, SendSideBwe};

use super::{Ev, Events, LAYER_BPS, Link, Rng, Sub};

/// Bytes of one padding packet of a probe.
pub const PADDING_BYTES: usize = 1200;
/// A receiver report every `REPORT_MIN` plus up to `REPORT_SPREAD`.
pub const REPORT_MIN: Duration = Duration::from_millis(50);
pub const REPORT_SPREAD: Duration = Duration::from_millis(50);
/// The receiver's clock reads this (µs) at the simulation's zero.
pub const REMOTE_EPOCH_US: i64 = 7_654_000_000_000;

/// Which estimate drives the subscribers' allocators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EstimatorKind {
    /// `Link::estimate` (see `mod.rs`): starts converged, reacts at the
    /// allocation tick.
    #[default]
    Caricature,
    /// A `SendSideBwe` per subscriber with this configuration.
    Gcc(BweConfig, Desired),
}

impl EstimatorKind {
    /// The estimator as a worker would configure it (`BweConfig::default`:
    /// starts at 300 kbit/s), desired rate from the preference.
    pub fn gcc() -> EstimatorKind {
        EstimatorKind::Gcc(BweConfig::default(), Desired::Preferred)
    }
}

/// Where `set_desired_bps` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// The preferred layer's [`LAYER_BPS`] + [`AUDIO_BPS`], once.
    Preferred,
    /// That times the allocator's `UP_HEADROOM`: what `Allocator::allocate`
    /// needs to step up to the preferred layer.
    PreferredWithHeadroom,
    /// `Plan::desired_bps` after every allocation tick (measured rates).
    Plan,
}

/// What the estimator side of a subscriber did in a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GccSummary {
    /// (when, target bit/s) of every probe request answered.
    pub probes: Vec<(Duration, u64)>,
    pub padding_sent: u64,
    /// Padding lost to queue overflow or random loss (not in the link's
    /// media counters).
    pub padding_lost: u64,
    /// Feedback reports delivered to the estimator.
    pub reports: u64,
    /// Packets reported lost in them.
    pub reported_lost: u64,
    /// (when, estimate) after every feedback report.
    pub trace: Vec<(Duration, u64)>,
    /// The estimator's minimum RTT at the end.
    pub rtt: Option<Duration>,
}

impl GccSummary {
    /// The estimate at `t` (the last one reported at or before it).
    pub fn estimate_at(&self, t: Duration) -> u64 {
        self.trace
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, e)| *e)
    }

    pub fn line(&self) -> String {
        let mbps = |t: u64| self.estimate_at(Duration::from_secs(t)) as f64 / 1e6;
        let first: Vec<String> = self
            .probes
            .iter()
            .take(8)
            .map(|(t, b)| format!("{:.2}M@{:.2}s", *b as f64 / 1e6, t.as_secs_f64()))
            .collect();
        format!(
            "gcc: {} probes [{}{}] padding {} sent {} lost | {} reports, {} reported lost | rtt {:?} | estimate at 1/2/5/10/15/20/30 s: {:.2}/{:.2}/{:.2}/{:.2}/{:.2}/{:.2}/{:.2} Mbit/s",
            self.probes.len(),
            first.join(" "),
            if self.probes.len() > 8 { " ..." } else { "" },
            self.padding_sent,
            self.padding_lost,
            self.reports,
            self.reported_lost,
            self.rtt,
            mbps(1),
            mbps(2),
            mbps(5),
            mbps(10),
            mbps(15),
            mbps(20),
            mbps(30),
        )
    }
}

/// The estimator's events, inside `Ev::Gcc(subscriber, ..)`.
#[derive(Debug)]
pub(super) enum GccEv {
    /// The receiver writes a report.
    Report,
    /// A report reaches the SFU.
    Feedback(Vec<(u16, Option<i64>)>),
    /// The next padding packet of the current probe.
    Pad,
    /// `poll_timeout` (the number tells a stale timer from the current one).
    Timer(u64),
}

/// One probe being sent: its id, the spacing of its packets, how many left.
#[derive(Debug)]
struct ProbeSend {
    id: u32,
    interval: Duration,
    left: u32,
}

/// A subscriber's estimator, its transport-wide numbering, its receiver.
#[derive(Debug)]
pub(super) struct Gcc {
    bwe: SendSideBwe,
    desired: Desired,
    rng: Rng,
    next_seq: u16,
    /// Sent, not yet reported: (sequence number, arrival or lost).
    unreported: VecDeque<(u16, Option<Duration>)>,
    probes: VecDeque<ProbeSend>,
    padding_due: bool,
    timer: Option<Duration>,
    timer_gen: u64,
    stats: GccSummary,
}

/// What the estimator's calls need from the simulation.
pub(super) struct Ctx<'a> {
    pub events: &'a mut Events,
    pub base: Instant,
    pub sub: usize,
    pub now: Duration,
}

impl Ctx<'_> {
    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn push(&mut self, at: Duration, ev: GccEv) {
        self.events.push(at, Ev::Gcc(self.sub, ev));
    }
}

impl Gcc {
    /// The estimator of a subscriber preferring `max_layer`, started at the
    /// simulation's zero: queues the first report, polls the start probes.
    pub(super) fn start(
        cfg: BweConfig,
        desired: Desired,
        max_layer: Option<Layer>,
        seed: u64,
        cx: &mut Ctx<'_>,
    ) -> Gcc {
        let mut rng = Rng::new(seed);
        let mut bwe = SendSideBwe::new(cfg, cx.at());
        let top = max_layer.unwrap_or(Layer::F);
        let nominal = LAYER_BPS[top.index()] + AUDIO_BPS;
        let initial = match desired {
            Desired::PreferredWithHeadroom => (nominal as f64 * UP_HEADROOM) as u64,
            Desired::Preferred | Desired::Plan => nominal,
        };
        bwe.set_desired_bps(cx.at(), initial);
        let next_seq = (65_536 - 2_000 + rng.next_u64() % 1_000) as u16;
        let first = REPORT_MIN + REPORT_SPREAD.mul_f64(rng.unit());
        cx.push(cx.now + first, GccEv::Report);
        let mut g = Gcc {
            bwe,
            desired,
            rng,
            next_seq,
            unreported: VecDeque::new(),
            probes: VecDeque::new(),
            padding_due: false,
            timer: None,
            timer_gen: 0,
            stats: GccSummary::default(),
        };
        g.after_call(cx);
        g
    }

    pub(super) fn estimate_bps(&self) -> u64 {
        self.bwe.estimate_bps()
    }

    pub(super) fn summary(&self) -> GccSummary {
        let mut s = self.stats.clone();
        s.rtt = self.bwe.rtt();
        s
    }

    /// A datagram of `bytes` left on the downlink; `arrival` is what the
    /// link made of it.
    fn sent(
        &mut self,
        cx: &mut Ctx<'_>,
        bytes: usize,
        arrival: Option<Duration>,
        probe: Option<u32>,
    ) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.bwe.on_packet_sent(cx.at(), seq, bytes as u32, probe);
        self.unreported.push_back((seq, arrival));
        self.arm(cx, false);
    }

    /// After an allocation tick (the plan's desired rate, if used).
    pub(super) fn on_plan(&mut self, cx: &mut Ctx<'_>, plan: &Plan) {
        if self.desired == Desired::Plan {
            self.bwe.set_desired_bps(cx.at(), plan.desired_bps);
            self.after_call(cx);
        }
    }

    pub(super) fn on_event(&mut self, cx: &mut Ctx<'_>, link: &mut Link, ev: GccEv) {
        match ev {
            GccEv::Report => {
                self.report(cx, link.cfg.delay);
                let next = REPORT_MIN + REPORT_SPREAD.mul_f64(self.rng.unit());
                cx.push(cx.now + next, GccEv::Report);
            }
            GccEv::Feedback(report) => {
                self.stats.reports += 1;
                self.stats.reported_lost += report.iter().filter(|p| p.1.is_none()).count() as u64;
                self.bwe.on_feedback(cx.at(), report);
                self.stats.trace.push((cx.now, self.bwe.estimate_bps()));
                self.after_call(cx);
            }
            GccEv::Pad => self.pad(cx, link),
            GccEv::Timer(n) => {
                if n != self.timer_gen {
                    return;
                }
                self.timer = None;
                self.bwe.handle_timeout(cx.at());
                self.poll_probes(cx);
                self.arm(cx, true);
            }
        }
    }

    /// The receiver's report: every number up to the newest arrival so far
    /// (a packet before it that has not arrived is lost: no reordering).
    fn report(&mut self, cx: &mut Ctx<'_>, delay: Duration) {
        let now = cx.now;
        let newest = self
            .unreported
            .iter()
            .take_while(|p| p.1.is_none_or(|a| a <= now))
            .enumerate()
            .filter(|(_, p)| p.1.is_some())
            .map(|(i, _)| i)
            .last();
        let Some(last) = newest else { return };
        let report: Vec<(u16, Option<i64>)> = self
            .unreported
            .drain(..=last)
            .map(|(q, a)| (q, a.map(|a| REMOTE_EPOCH_US + a.as_micros() as i64)))
            .collect();
        cx.push(now + delay, GccEv::Feedback(report));
    }

    /// One padding packet of the current probe through the link.
    fn pad(&mut self, cx: &mut Ctx<'_>, link: &mut Link) {
        self.padding_due = false;
        let Some(p) = self.probes.front_mut() else {
            return;
        };
        let (id, interval) = (p.id, p.interval);
        p.left = p.left.saturating_sub(1);
        if p.left == 0 {
            self.probes.pop_front();
        }
        // Padding losses are kept out of the link's media counters.
        let (overflow, random) = (link.overflow, link.random_loss);
        let arrival = link.send(cx.now, PADDING_BYTES);
        self.stats.padding_lost += link.overflow - overflow + link.random_loss - random;
        link.overflow = overflow;
        link.random_loss = random;
        self.stats.padding_sent += 1;
        self.sent(cx, PADDING_BYTES, arrival, Some(id));
        if !self.probes.is_empty() {
            self.padding_due = true;
            cx.push(cx.now + interval, GccEv::Pad);
        }
    }

    /// Drains `poll_probe` into the padding queue.
    fn poll_probes(&mut self, cx: &mut Ctx<'_>) {
        while let Some(req) = self.bwe.poll_probe(cx.at()) {
            let rate = req.bitrate_bps.max(1);
            let bits = PADDING_BYTES as u64 * 8;
            let by_time =
                (rate as f64 * req.min_duration.as_secs_f64() / bits as f64).ceil() as u32;
            self.probes.push_back(ProbeSend {
                id: req.id,
                interval: Duration::from_nanos(bits * 1_000_000_000 / rate),
                left: req.min_packets.max(by_time).max(1),
            });
            self.stats.probes.push((cx.now, rate));
            if !self.padding_due {
                self.padding_due = true;
                cx.push(cx.now, GccEv::Pad);
            }
        }
    }

    /// After `new`, `on_feedback`, `set_desired_bps`: probes, then the timer.
    fn after_call(&mut self, cx: &mut Ctx<'_>) {
        self.poll_probes(cx);
        self.arm(cx, false);
    }

    /// Keeps one timer event pending at `poll_timeout` (an earlier pending
    /// one is kept: it fires, finds nothing due and re-arms). Right after
    /// `handle_timeout` the deadline is strictly later than now.
    fn arm(&mut self, cx: &mut Ctx<'_>, after_timeout: bool) {
        let Some(at) = self.bwe.poll_timeout() else {
            return;
        };
        let mut at = at.saturating_duration_since(cx.base).max(cx.now);
        if after_timeout && at <= cx.now {
            at = cx.now + Duration::from_millis(1);
        }
        if self.timer.is_some_and(|t| t <= at) {
            return;
        }
        self.timer_gen += 1;
        self.timer = Some(at);
        cx.push(at, GccEv::Timer(self.timer_gen));
    }
}

impl Sub {
    /// Sends `bytes` of media on this subscriber's downlink at `now`: the
    /// arrival time, or `None` when lost (`Link::send`), reported to the
    /// estimator when it has one.
    pub(super) fn send(
        &mut self,
        now: Duration,
        bytes: usize,
        events: &mut Events,
        base: Instant,
        sub: usize,
    ) -> Option<Duration> {
        let arrival = self.link.send(now, bytes);
        if let Some(g) = self.gcc.as_mut() {
            let mut cx = Ctx {
                events,
                base,
                sub,
                now,
            };
            g.sent(&mut cx, bytes, arrival, None);
        }
        arrival
    }
}
