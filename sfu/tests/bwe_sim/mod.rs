//! A seeded virtual-time emulation of a sender, a bottleneck link and a
//! TWCC receiver around `convene_sfu::SendSideBwe`; used by
//! `tests/bwe.rs`.
//!
//! The model:
//! - **Sender**: paces media at `min(estimate, demand)` in 1,200-byte
//!   packets (re-reading the estimate at every packet) and answers every
//!   probe request with padding of the same size at the probe's rate, at
//!   least `min_packets` over at least `min_duration`, one probe after the
//!   other. Every packet carries the next transport-wide sequence number
//!   (starting near the u16 wrap).
//! - **Link**: a FIFO serialising at a piecewise-constant capacity,
//!   drop-tail when a packet would wait more than [`QUEUE_LIMIT_US`], then
//!   random loss, then a fixed one-way delay plus uniform jitter that never
//!   reorders.
//! - **Receiver**: every 50-100 ms a report of every sequence number since
//!   the previous report up to the newest that has arrived, each with its
//!   arrival time on the receiver's clock (an arbitrary epoch) or `None`;
//!   it travels back in the one-way delay (and is lost during an outage).
//!
//! Time is a `u64` of microseconds from one `Instant` read at the start;
//! nothing sleeps. Events are taken in time order; a seed fixes a run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use convene_sfu::{BweConfig, SendSideBwe};

pub const PACKET: u32 = 1200;
pub const PACKET_BITS: f64 = PACKET as f64 * 8.0;
/// Drop-tail: a packet that would wait longer than this is lost.
pub const QUEUE_LIMIT_US: u64 = 300_000;
/// The receiver's clock reads this at our time zero.
pub const REMOTE_EPOCH_US: i64 = 4_321_000_000_000;
pub const MIN_BPS: u64 = 50_000;
pub const MAX_BPS: u64 = 20_000_000;
pub const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

#[path = "../rng/mod.rs"]
mod rng;
pub use rng::Rng;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub secs: f64,
    /// Link capacity (bit/s) from each time (s) on; the first at zero.
    pub capacity: Vec<(f64, u64)>,
    pub loss: f64,
    pub delay_ms: u64,
    pub jitter_ms: f64,
    /// Media the sender would send (bit/s).
    pub demand: u64,
    /// Passed to `set_desired_bps` at the start.
    pub desired: u64,
    pub initial: u64,
    /// Reports generated in [from, to) s are lost.
    pub outage: Option<(f64, f64)>,
    /// The sender never sends the probes it is asked for.
    pub ignore_probes: bool,
    /// Reports take up to this much longer on the way back, so that they
    /// overtake each other.
    pub feedback_jitter_ms: u64,
    /// From each time (s) on, the receiver's clock is off by this (µs).
    pub clock_steps: Vec<(f64, i64)>,
}

impl Scenario {
    pub fn new(seed: u64) -> Scenario {
        Scenario {
            seed,
            secs: 30.0,
            capacity: vec![(0.0, 2_000_000)],
            loss: 0.0,
            delay_ms: 40,
            jitter_ms: 2.0,
            demand: 5_000_000,
            desired: 5_000_000,
            initial: 300_000,
            outage: None,
            ignore_probes: false,
            feedback_jitter_ms: 0,
            clock_steps: Vec::new(),
        }
    }

    /// The receiver's clock at our `t_us`.
    fn remote_us(&self, t_us: u64) -> i64 {
        let t = t_us as f64 / 1e6;
        let step = self
            .clock_steps
            .iter()
            .rfind(|s| t >= s.0)
            .map_or(0, |s| s.1);
        REMOTE_EPOCH_US + t_us as i64 + step
    }

    fn capacity_at(&self, t_us: u64) -> u64 {
        let t = t_us as f64 / 1e6;
        let mut c = self.capacity.first().map_or(1_000_000, |c| c.1);
        for &(from, bps) in &self.capacity {
            if t >= from {
                c = bps;
            }
        }
        c
    }
}

/// What a run observed.
#[derive(Debug, Default)]
pub struct Trace {
    /// (s, estimate) every 100 ms.
    pub estimates: Vec<(f64, u64)>,
    /// (send time s, queueing delay ms) of every packet the queue took.
    pub waits: Vec<(f64, f64)>,
    pub probes: u32,
    pub dropped_tail: u32,
}

impl Trace {
    pub fn first_at_least(&self, bps: u64, from: f64) -> Option<f64> {
        self.estimates
            .iter()
            .find(|&&(t, e)| t >= from && e >= bps)
            .map(|&(t, _)| t)
    }

    pub fn first_at_most(&self, bps: u64, from: f64) -> Option<f64> {
        self.estimates
            .iter()
            .find(|&&(t, e)| t >= from && e <= bps)
            .map(|&(t, _)| t)
    }

    fn in_range(&self, from: f64, to: f64) -> impl Iterator<Item = u64> + '_ {
        self.estimates
            .iter()
            .filter(move |&&(t, _)| t >= from && t < to)
            .map(|&(_, e)| e)
    }

    pub fn max_in(&self, from: f64, to: f64) -> u64 {
        self.in_range(from, to).max().unwrap_or(0)
    }

    pub fn min_in(&self, from: f64, to: f64) -> u64 {
        self.in_range(from, to).min().unwrap_or(0)
    }

    pub fn at(&self, t: f64) -> u64 {
        self.estimates
            .iter()
            .take_while(|&&(s, _)| s <= t)
            .last()
            .map_or(0, |&(_, e)| e)
    }

    pub fn wait_p95(&self, from: f64, to: f64) -> f64 {
        let mut w: Vec<f64> = self
            .waits
            .iter()
            .filter(|&&(t, _)| t >= from && t < to)
            .map(|&(_, w)| w)
            .collect();
        if w.is_empty() {
            return 0.0;
        }
        w.sort_by(f64::total_cmp);
        w[(w.len() * 95 / 100).min(w.len() - 1)]
    }
}

pub fn mbps(bps: u64) -> f64 {
    bps as f64 / 1e6
}

/// A TWCC-like report: sequence numbers with arrival times (µs, receiver
/// clock) or `None` for lost.
pub type Report = Vec<(u16, Option<i64>)>;

/// One probe being sent: its id, the spacing of its packets, how many are left.
struct ProbeSend {
    id: u32,
    interval_us: u64,
    left: u32,
}

pub fn run(s: &Scenario) -> Trace {
    let base = Instant::now();
    let at = |us: u64| base + Duration::from_micros(us);
    let us_of = |i: Instant| i.saturating_duration_since(base).as_micros() as u64;
    let mut rng = Rng::new(s.seed);
    let cfg = BweConfig {
        initial_bps: s.initial,
        min_bps: MIN_BPS,
        max_bps: MAX_BPS,
    };
    let mut bwe = SendSideBwe::new(cfg, at(0));
    bwe.set_desired_bps(at(0), s.desired);
    let end = (s.secs * 1e6) as u64;
    let delay_us = s.delay_ms * 1000;

    let mut trace = Trace::default();
    let mut seq: u16 = 65_000 + (rng.next_u64() % 500) as u16;
    let mut next_media = 0u64;
    let mut probes: VecDeque<ProbeSend> = VecDeque::new();
    let mut next_probe = u64::MAX;
    let mut busy_until = 0u64;
    let mut last_arrival = 0u64;
    // (seq, arrival µs) of packets the receiver has not reported yet.
    let mut unreported: VecDeque<(u16, Option<u64>)> = VecDeque::new();
    let mut next_report = 50_000 + (rng.unit() * 50_000.0) as u64;
    // (delivery µs, report) of reports on their way back, by delivery.
    let mut feedback: VecDeque<(u64, Report)> = VecDeque::new();
    let mut next_sample = 0u64;

    loop {
        let timeout = bwe.poll_timeout().map_or(u64::MAX, us_of);
        let delivery = feedback.front().map_or(u64::MAX, |f| f.0);
        let t = [
            next_media,
            next_probe,
            next_report,
            delivery,
            timeout,
            next_sample,
        ]
        .into_iter()
        .min()
        .unwrap_or(u64::MAX);
        if t >= end {
            break;
        }
        let now = at(t);
        if timeout <= t {
            bwe.handle_timeout(now);
        }
        while feedback.front().is_some_and(|f| f.0 <= t) {
            if let Some((_, report)) = feedback.pop_front() {
                bwe.on_feedback(now, report);
            }
        }
        if next_report <= t {
            // Everything up to the newest arrival so far (no reordering:
            // a packet before it that has not arrived is lost).
            let newest = unreported
                .iter()
                .take_while(|p| p.1.is_none_or(|a| a <= t))
                .enumerate()
                .filter(|(_, p)| p.1.is_some())
                .map(|(i, _)| i)
                .last();
            if let Some(last) = newest {
                let report: Report = unreported
                    .drain(..=last)
                    .map(|(q, a)| (q, a.map(|a| s.remote_us(a))))
                    .collect();
                let secs = t as f64 / 1e6;
                let lost = s.outage.is_some_and(|(a, b)| secs >= a && secs < b);
                if !lost {
                    let extra = rng.next_u64() % (s.feedback_jitter_ms * 1000 + 1);
                    let due = t + delay_us + extra;
                    let i = feedback.partition_point(|f| f.0 <= due);
                    feedback.insert(i, (due, report));
                }
            }
            next_report = t + 50_000 + (rng.unit() * 50_000.0) as u64;
        }
        let mut sends: [Option<Option<u32>>; 2] = [None, None];
        if next_media <= t {
            sends[0] = Some(None);
            let rate = bwe.estimate_bps().min(s.demand).max(1) as f64;
            next_media = t + (PACKET_BITS * 1e6 / rate) as u64;
        }
        if next_probe <= t {
            if let Some(p) = probes.front_mut() {
                sends[1] = Some(Some(p.id));
                p.left -= 1;
                next_probe = t + p.interval_us;
                if p.left == 0 {
                    probes.pop_front();
                }
            }
            if probes.is_empty() {
                next_probe = u64::MAX;
            }
        }
        for probe in sends.into_iter().flatten() {
            bwe.on_packet_sent(now, seq, PACKET, probe);
            // The bottleneck.
            let start = t.max(busy_until);
            let arrival = if start - t > QUEUE_LIMIT_US {
                trace.dropped_tail += 1;
                None
            } else {
                trace
                    .waits
                    .push((t as f64 / 1e6, (start - t) as f64 / 1000.0));
                let cap = s.capacity_at(start).max(1) as f64;
                busy_until = start + (PACKET_BITS * 1e6 / cap) as u64;
                if rng.unit() < s.loss {
                    None
                } else {
                    let jitter = (rng.unit() * s.jitter_ms * 1000.0) as u64;
                    last_arrival = last_arrival.max(busy_until + delay_us + jitter);
                    Some(last_arrival)
                }
            };
            unreported.push_back((seq, arrival));
            seq = seq.wrapping_add(1);
        }
        if next_sample <= t {
            trace.estimates.push((t as f64 / 1e6, bwe.estimate_bps()));
            next_sample += 100_000;
        }
        while let Some(req) = bwe.poll_probe(now) {
            if s.ignore_probes {
                continue;
            }
            trace.probes += 1;
            let rate = req.bitrate_bps.max(1) as f64;
            let by_time = (rate * req.min_duration.as_secs_f64() / PACKET_BITS).ceil() as u32;
            probes.push_back(ProbeSend {
                id: req.id,
                interval_us: (PACKET_BITS * 1e6 / rate) as u64,
                left: req.min_packets.max(by_time).max(1),
            });
            if next_probe == u64::MAX {
                next_probe = t;
            }
        }
    }
    trace
}

pub fn print(name: &str, s: &Scenario, tr: &Trace, extra: &str) {
    println!(
        "{name} seed {}: probes {}, tail drops {}, estimate at 5/10/20/30 s: {:.2}/{:.2}/{:.2}/{:.2} Mbit/s; {extra}",
        s.seed,
        tr.probes,
        tr.dropped_tail,
        mbps(tr.at(5.0)),
        mbps(tr.at(10.0)),
        mbps(tr.at(20.0)),
        mbps(tr.at(30.0)),
    );
}
