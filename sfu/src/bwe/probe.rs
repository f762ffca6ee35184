//! Bandwidth probing: short bursts of padding at a chosen rate whose
//! arrival spacing tells how much the path can carry right now.
//!
//! An SFU is usually application-limited: it forwards only the layers it
//! chose, so the delay-based estimate (which may not grow beyond
//! 1.5 × what is acked) can never learn that a higher layer would fit.
//! Probes measure instead. [`Prober`] decides when and how fast; the caller
//! gets a [`ProbeRequest`], sends padding at its rate marked with its id, and
//! feedback about those packets fills a [`Cluster`]. Once the cluster's
//! packets are all reported and at least [`MIN_ACKED_SHARE`] of
//! [`MIN_PACKETS`] arrived, its result is the lower of
//! - the send rate: bytes over the send span, without the last packet sent
//!   (its bytes leave after the span ends), and
//! - the receive rate: bytes over the arrival span, without the first packet
//!   to arrive (its bytes arrived before the span starts);
//!
//! if the receive rate is clearly below the send rate the path was
//! saturated and [`SATURATED_SHARE`] of the receive rate is taken. A
//! result is never above the cluster's target (pacing jitter is no
//! capacity). Spans outside 1 ms..1 s, or a receive rate above twice the
//! send rate, give no result.
//!
//! When: two clusters at the start ([`START_FACTORS`] × the initial
//! estimate); one when the caller raises its desired rate above the
//! estimate (at [`HEADROOM`] × desired); one when feedback resumes after a
//! feedback timeout, at the estimate before it (the facade asks); after a result that kept up with
//! its target ([`CONTINUE_SHARE`]) while the desired rate is still above
//! it, another at twice the result; and every [`PERIODIC`] while the sender
//! is application-limited below its desired rate (decided by the facade).
//! Targets never exceed the maximum, nor [`HEADROOM`] × desired once a
//! desired rate is known. Fixed-size: [`SLOTS`] clusters, a queue of
//! [`QUEUE`] requests.

use std::time::{Duration, Instant};

use super::delay::signed_us;

/// A probe the caller should send now: padding packets marked `id`, at
/// `bitrate_bps`, at least `min_packets` of them over at least
/// `min_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest {
    pub id: u32,
    pub bitrate_bps: u64,
    pub min_packets: u32,
    pub min_duration: Duration,
}

pub const MIN_PACKETS: u32 = 5;
pub const MIN_DURATION: Duration = Duration::from_millis(20);
/// Share of `MIN_PACKETS` that must arrive for a result.
pub const MIN_ACKED_SHARE: f64 = 0.8;
/// Start probes at these multiples of the initial estimate.
pub const START_FACTORS: [f64; 2] = [3.0, 6.0];
/// Probe this much above the desired rate (a result never exceeds its
/// target, and it should reach the desired rate).
pub const HEADROOM: f64 = 1.25;
/// A result at least this share of its target continues probing upwards.
pub const CONTINUE_SHARE: f64 = 0.7;
/// Receive rate below this share of the send rate: saturated path.
const SATURATED_BELOW: f64 = 0.9;
/// ... and then this share of the receive rate is the result.
pub const SATURATED_SHARE: f64 = 0.95;
/// Periodic probing interval while application-limited.
pub const PERIODIC: Duration = Duration::from_secs(3);
/// A rise of the desired rate asks for a probe only if it is this much
/// above the desired rate of the last such probe (a desired rate measured
/// every allocation tick moves a little all the time)...
pub const ALLOCATION_STEP: f64 = 1.1;
/// ... and this long after any probe.
pub const ALLOCATION_HOLD: Duration = Duration::from_secs(1);
/// A cluster without a result this long after its request is dropped.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(3);
pub const SLOTS: usize = 4;
pub const QUEUE: usize = 4;

/// Feedback about one probe cluster, aggregated as it streams in.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    pub id: u32,
    pub target: f64,
    created: Instant,
    sent: u32,
    acked: u32,
    lost: u32,
    bytes: u64,
    /// Send side over the acked packets: first, last and the last's size.
    first_send: Option<Instant>,
    last_send: Option<(Instant, u32)>,
    /// Receive side: first arrival with its size, last arrival.
    first_arrival: Option<(i64, u32)>,
    last_arrival: i64,
}

impl Cluster {
    pub fn new(id: u32, target: f64, now: Instant) -> Cluster {
        Cluster {
            id,
            target,
            created: now,
            sent: 0,
            acked: 0,
            lost: 0,
            bytes: 0,
            first_send: None,
            last_send: None,
            first_arrival: None,
            last_arrival: i64::MIN,
        }
    }

    pub fn on_sent(&mut self) {
        self.sent = self.sent.saturating_add(1);
    }

    pub fn on_lost(&mut self) {
        self.lost = self.lost.saturating_add(1);
    }

    pub fn on_acked(&mut self, send: Instant, arrival_us: i64, size: u32) {
        self.acked = self.acked.saturating_add(1);
        self.bytes = self.bytes.saturating_add(u64::from(size));
        if self.first_send.is_none_or(|f| send < f) {
            self.first_send = Some(send);
        }
        if self.last_send.is_none_or(|(l, _)| send >= l) {
            self.last_send = Some((send, size));
        }
        if self.first_arrival.is_none_or(|(f, _)| arrival_us < f) {
            self.first_arrival = Some((arrival_us, size));
        }
        self.last_arrival = self.last_arrival.max(arrival_us);
    }

    /// Everything sent was reported and enough of it arrived.
    pub fn complete(&self) -> bool {
        let needed = (f64::from(MIN_PACKETS) * MIN_ACKED_SHARE).ceil() as u32;
        self.acked >= needed && self.acked.saturating_add(self.lost) >= self.sent
    }

    /// The measured rate (bit/s), if the cluster gives a valid one.
    pub fn result(&self) -> Option<f64> {
        let needed = (f64::from(MIN_PACKETS) * MIN_ACKED_SHARE).ceil() as u32;
        if self.acked < needed {
            return None;
        }
        let (first_send, (last_send, last_size)) = (self.first_send?, self.last_send?);
        let (first_arrival, first_size) = self.first_arrival?;
        let send_us = signed_us(last_send, first_send);
        let recv_us = self.last_arrival.saturating_sub(first_arrival);
        let valid = 1_000..=1_000_000;
        if !valid.contains(&send_us) || !valid.contains(&recv_us) {
            return None;
        }
        let send = self.bytes.saturating_sub(u64::from(last_size)) as f64 * 8e6 / send_us as f64;
        let recv = self.bytes.saturating_sub(u64::from(first_size)) as f64 * 8e6 / recv_us as f64;
        if recv > 2.0 * send {
            return None;
        }
        let rate = if recv < SATURATED_BELOW * send {
            SATURATED_SHARE * recv
        } else {
            send.min(recv)
        };
        Some(rate.min(self.target))
    }
}

/// A completed cluster's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeResult {
    pub bps: f64,
    pub target: f64,
}

/// What the facade knows when a periodic probe might be due.
#[derive(Debug, Clone, Copy)]
pub struct ProbeContext {
    pub estimate: f64,
    /// Sending well below the estimate.
    pub app_limited: bool,
    /// No over-use now and no backoff lately.
    pub calm: bool,
}

/// Decides when to probe and collects the clusters' feedback.
#[derive(Debug)]
pub struct Prober {
    clusters: [Option<Cluster>; SLOTS],
    queue: [f64; QUEUE],
    queued: usize,
    queued_at: Option<Instant>,
    next_id: u32,
    desired: f64,
    /// The desired rate the last allocation probe was for.
    allocation_probed: f64,
    max: f64,
    created: Instant,
    last_probe: Option<Instant>,
}

impl Prober {
    /// Queues the start probes.
    pub fn new(initial: f64, max: f64, now: Instant) -> Prober {
        let mut p = Prober {
            clusters: [None; SLOTS],
            queue: [0.0; QUEUE],
            queued: 0,
            queued_at: None,
            next_id: 1,
            desired: 0.0,
            allocation_probed: 0.0,
            max,
            created: now,
            last_probe: None,
        };
        for f in START_FACTORS {
            p.enqueue(f * initial, now);
        }
        p
    }

    /// The highest rate worth probing for.
    fn ceiling(&self) -> f64 {
        if self.desired > 0.0 {
            (HEADROOM * self.desired).min(self.max)
        } else {
            self.max
        }
    }

    fn enqueue(&mut self, target: f64, now: Instant) {
        let target = target.min(self.ceiling());
        if self.queued < QUEUE && target.is_finite() && target > 0.0 {
            self.queue[self.queued] = target;
            self.queued += 1;
            self.queued_at.get_or_insert(now);
        }
    }

    /// Queues a probe at `target` (e.g. to check that a path is back after
    /// a feedback outage).
    pub fn request(&mut self, target: f64, now: Instant) {
        self.enqueue(target, now);
    }

    /// Something to hand out (time it became due), for `poll_timeout`.
    pub fn queued_at(&self) -> Option<Instant> {
        self.queued_at
    }

    pub fn in_flight(&self) -> bool {
        self.clusters.iter().any(Option::is_some)
    }

    /// When a periodic probe may be due (the facade checks the rest).
    pub fn next_periodic(&self) -> Option<Instant> {
        (self.desired > 0.0).then(|| self.last_probe.unwrap_or(self.created) + PERIODIC)
    }

    /// The caller's desired rate changed; a rise above `estimate` probes.
    pub fn set_desired(&mut self, desired: f64, estimate: f64, now: Instant) {
        let desired = desired.max(0.0);
        let rose = desired > self.desired;
        self.desired = desired;
        // A fall lets the next real rise probe again.
        self.allocation_probed = self.allocation_probed.min(desired);
        let news = desired > self.allocation_probed * ALLOCATION_STEP;
        let recent = self
            .last_probe
            .is_some_and(|t| now.saturating_duration_since(t) < ALLOCATION_HOLD);
        if rose && news && !recent && desired > estimate && self.queued == 0 {
            self.allocation_probed = desired;
            self.enqueue(HEADROOM * desired, now);
        }
    }

    /// The next probe to send, if any is due.
    pub fn poll(&mut self, now: Instant, ctx: ProbeContext) -> Option<ProbeRequest> {
        let target = if self.queued > 0 {
            let t = self.queue[0];
            self.queue.copy_within(1..self.queued, 0);
            self.queued -= 1;
            if self.queued == 0 {
                self.queued_at = None;
            }
            t
        } else {
            let due = self
                .last_probe
                .is_none_or(|t| now.saturating_duration_since(t) >= PERIODIC);
            let wanted = self.desired > ctx.estimate * 1.05;
            if !(due && wanted && ctx.app_limited && ctx.calm && !self.in_flight()) {
                return None;
            }
            2.0 * ctx.estimate
        };
        // Queued before the desired rate was known, or it fell since.
        let target = target.min(self.ceiling());
        if target <= 0.0 {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let slot = match self.clusters.iter().position(Option::is_none) {
            Some(i) => i,
            // All busy: replace the oldest.
            None => (0..SLOTS)
                .min_by_key(|&i| self.clusters[i].map(|c| c.created))
                .unwrap_or(0),
        };
        self.clusters[slot] = Some(Cluster::new(id, target, now));
        self.last_probe = Some(now);
        Some(ProbeRequest {
            id,
            bitrate_bps: target as u64,
            min_packets: MIN_PACKETS,
            min_duration: MIN_DURATION,
        })
    }

    fn cluster(&mut self, id: u32) -> Option<&mut Cluster> {
        self.clusters.iter_mut().flatten().find(|c| c.id == id)
    }

    pub fn on_sent(&mut self, id: u32) {
        if let Some(c) = self.cluster(id) {
            c.on_sent();
        }
    }

    pub fn on_acked(&mut self, id: u32, send: Instant, arrival_us: i64, size: u32) {
        if let Some(c) = self.cluster(id) {
            c.on_acked(send, arrival_us, size);
        }
    }

    pub fn on_lost(&mut self, id: u32) {
        if let Some(c) = self.cluster(id) {
            c.on_lost();
        }
    }

    /// After a feedback message: completes clusters, drops stale ones and
    /// returns the best valid result. A result that kept up with its target
    /// while the desired rate lies above it queues the next probe at twice
    /// the result.
    pub fn collect(&mut self, now: Instant) -> Option<ProbeResult> {
        let mut best: Option<ProbeResult> = None;
        for slot in &mut self.clusters {
            let Some(c) = slot else { continue };
            if c.complete() {
                if let Some(bps) = c.result() {
                    let r = ProbeResult {
                        bps,
                        target: c.target,
                    };
                    if best.is_none_or(|b| r.bps > b.bps) {
                        best = Some(r);
                    }
                }
                *slot = None;
            } else if now.saturating_duration_since(c.created) > CLUSTER_TIMEOUT {
                *slot = None;
            }
        }
        if let Some(r) = best
            && r.bps >= CONTINUE_SHARE * r.target
            && self.desired > r.bps
            && self.queued == 0
            && !self.in_flight()
        {
            let next = (2.0 * r.bps).min(self.ceiling());
            if next > 1.1 * r.target {
                self.enqueue(next, now);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster of `n` 1,200-byte packets sent every `send_gap_us` and
    /// arriving every `recv_gap_us`, all acked except the first `lost`.
    fn cluster(n: u32, lost: u32, send_gap_us: u64, recv_gap_us: i64) -> Cluster {
        let t0 = Instant::now();
        let mut c = Cluster::new(1, 10e6, t0);
        for i in 0..n {
            c.on_sent();
            if i < lost {
                c.on_lost();
                continue;
            }
            let send = t0 + Duration::from_micros(send_gap_us * u64::from(i));
            c.on_acked(send, 5_000_000 + recv_gap_us * i64::from(i), 1200);
        }
        c
    }

    #[test]
    fn result_is_the_lower_of_send_and_receive_rate() {
        // 1,200 bytes every 4.8 ms = 2 Mbit/s, arriving at the same pace.
        let c = cluster(10, 0, 4_800, 4_800);
        assert!(c.complete());
        let r = c.result().unwrap_or(0.0);
        assert!((r - 2e6).abs() < 1.0, "{r}");
        // Sent at 2 Mbit/s, arriving at 1.6 Mbit/s: saturated, 95 %.
        let c = cluster(10, 0, 4_800, 6_000);
        let r = c.result().unwrap_or(0.0);
        assert!((r - 0.95 * 1.6e6).abs() < 1.0, "{r}");
        // Arriving slightly slower (within 10 %): the receive rate.
        let c = cluster(10, 0, 4_800, 5_000);
        let r = c.result().unwrap_or(0.0);
        assert!((r - 1_920_000.0).abs() < 1.0, "{r}");
        // Capped at the target.
        let mut c = cluster(10, 0, 4_800, 4_800);
        c.target = 1e6;
        assert_eq!(c.result(), Some(1e6));
    }

    #[test]
    fn too_few_acks_or_odd_spans_give_no_result() {
        // 5 sent, 2 lost: 3 < 80 % of 5.
        let c = cluster(5, 2, 4_800, 4_800);
        assert!(!c.complete());
        assert_eq!(c.result(), None);
        // 1 lost of 5: 4 acked is enough.
        assert!(cluster(5, 1, 4_800, 4_800).result().is_some());
        // All in the same microsecond: no span.
        assert_eq!(cluster(5, 0, 0, 0).result(), None);
        // Arrivals far faster than sends: implausible.
        assert_eq!(cluster(10, 0, 4_800, 1_000).result(), None);
        // An arrival span over a second.
        assert_eq!(cluster(10, 0, 4_800, 200_000).result(), None);
    }

    #[test]
    fn incomplete_until_everything_sent_is_reported() {
        let t0 = Instant::now();
        let mut c = Cluster::new(1, 1e6, t0);
        for _ in 0..8 {
            c.on_sent();
        }
        for i in 0..5 {
            c.on_acked(t0 + Duration::from_millis(i), 1000 * i as i64, 1200);
        }
        assert!(!c.complete());
        c.on_lost();
        c.on_acked(t0 + Duration::from_millis(6), 6000, 1200);
        c.on_acked(t0 + Duration::from_millis(7), 7000, 1200);
        assert!(c.complete());
    }

    fn ctx(estimate: f64, app_limited: bool) -> ProbeContext {
        ProbeContext {
            estimate,
            app_limited,
            calm: true,
        }
    }

    #[test]
    fn starts_with_two_probes_then_continues_upwards() {
        let t0 = Instant::now();
        let mut p = Prober::new(300_000.0, 10e6, t0);
        p.set_desired(2e6, 300_000.0, t0);
        let a = p.poll(t0, ctx(300e3, true));
        let b = p.poll(t0, ctx(300e3, true));
        assert_eq!(a.map(|r| r.bitrate_bps), Some(900_000));
        assert_eq!(b.map(|r| r.bitrate_bps), Some(1_800_000));
        // The desired probe was not queued on top of the start probes.
        assert_eq!(p.poll(t0, ctx(300e3, true)), None);
        let (Some(a), Some(b)) = (a, b) else { return };
        // Feed both clusters at their rates.
        for (req, gap) in [(a, 10_667u64), (b, 5_333)] {
            for i in 0..5u64 {
                p.on_sent(req.id);
                let send = t0 + Duration::from_micros(gap * i);
                p.on_acked(req.id, send, (gap * i) as i64, 1200);
            }
        }
        let r = p.collect(t0 + Duration::from_millis(200));
        let r = r.map(|r| r.bps).unwrap_or(0.0);
        assert!((r - 1.8e6).abs() < 1_000.0, "{r}");
        // Kept up, desired above: next at min(2 × 1.8 M, 1.25 × 2 M).
        let next = p.poll(t0 + Duration::from_millis(200), ctx(r, true));
        assert_eq!(next.map(|n| n.bitrate_bps), Some(2_500_000));
    }

    #[test]
    fn periodic_probes_only_when_application_limited_and_calm() {
        let t0 = Instant::now();
        let mut p = Prober::new(1e6, 1e6, t0);
        // Start probes are capped at the maximum.
        assert_eq!(
            p.poll(t0, ctx(1e6, true)).map(|r| r.bitrate_bps),
            Some(1_000_000)
        );
        let mut p = Prober::new(300e3, 10e6, t0);
        while p.poll(t0, ctx(300e3, true)).is_some() {}
        p.set_desired(1e6, 2e6, t0); // below the estimate: no probe
        let later = t0 + Duration::from_secs(10);
        // Clusters never answered are dropped after the timeout.
        assert_eq!(p.collect(later), None);
        assert!(!p.in_flight());
        assert_eq!(
            p.poll(later, ctx(2e6, true)),
            None,
            "desired below estimate"
        );
        assert_eq!(p.poll(later, ctx(500e3, false)), None, "not app-limited");
        let calm_not = ProbeContext {
            calm: false,
            ..ctx(500e3, true)
        };
        assert_eq!(p.poll(later, calm_not), None);
        let r = p.poll(later, ctx(500e3, true));
        assert_eq!(r.map(|r| r.bitrate_bps), Some(1_000_000));
        // Not again before the period passed.
        p.collect(later + Duration::from_secs(5));
        assert_eq!(
            p.poll(later + Duration::from_secs(1), ctx(500e3, true)),
            None
        );
        assert!(p.poll(later + PERIODIC, ctx(500e3, true)).is_some());
    }
}
