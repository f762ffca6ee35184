//! Delay-based congestion detection: is the bottleneck queue growing?
//!
//! Received packets arrive here in send order with their send time (our
//! clock) and arrival time (the receiver's clock, microseconds, arbitrary
//! epoch). Three stages, each its own type:
//!
//! 1. [`Grouper`]: packets sent within [`BURST`] of a group's first packet
//!    form one group (a paced frame, a probe burst); so do packets that
//!    arrive back to back faster than they were sent (a queue releasing a
//!    burst). When a group is complete it is compared with the previous one:
//!    the delay variation is `arrival delta - send delta`, positive while
//!    the queue grows.
//! 2. [`Trendline`]: the variations are accumulated (the queueing delay up
//!    to a constant), exponentially smoothed ([`SMOOTHING`]) and the slope of
//!    the last [`WINDOW`] smoothed values against arrival time is fitted by
//!    least squares. The slope is the share of the link's time the queue
//!    grows by: 0.1 means every second of arrivals adds 100 ms of queue.
//! 3. [`Detector`]: the slope, scaled by the number of samples seen (at most
//!    [`SAMPLES_CAP`]) and [`THRESHOLD_GAIN`], is compared with an adaptive
//!    threshold. Above it for longer than [`OVERUSE_TIME`] (and over at
//!    least two groups, with the slope still rising) is over-use; below its
//!    negative is under-use (the queue drains); otherwise normal. The
//!    threshold follows the magnitude of the scaled slope, slowly upwards
//!    ([`K_UP`]) and faster downwards ([`K_DOWN`]), so that a path with much
//!    jitter does not signal over-use all the time while a quiet path stays
//!    sensitive; it is clamped to [`THRESHOLD_MIN`, `THRESHOLD_MAX`].
//!
//! Remote timestamps are untrusted: an arrival time that goes backwards
//! re-anchors the grouping without a sample, and a variation larger than
//! [`MAX_VARIATION`] (a receiver clock that jumped, a long outage) resets
//! the trendline and the detector. Everything is fixed-size.

use std::time::{Duration, Instant};

/// Packets sent within this time of a group's first packet form a group.
pub const BURST: Duration = Duration::from_millis(5);
/// A packet arriving within this of the group's last arrival, and earlier
/// than its send spacing would put it, joins the group (a released burst).
const BURST_ARRIVAL_US: i64 = 5_000;
/// ... unless the group already spans this long at the receiver.
const MAX_BURST_US: i64 = 100_000;
/// Delay variations beyond this (either sign) reset the detector.
pub const MAX_VARIATION: Duration = Duration::from_secs(3);

/// Groups in the trendline's regression window.
pub const WINDOW: usize = 20;
/// Exponential smoothing of the accumulated delay.
pub const SMOOTHING: f64 = 0.9;
/// The slope is multiplied by this and by the sample count.
pub const THRESHOLD_GAIN: f64 = 4.0;
/// The sample count's cap in that product.
pub const SAMPLES_CAP: u32 = 60;
/// Initial adaptive threshold (scaled slope units, i.e. ms-like).
pub const THRESHOLD_INIT: f64 = 12.5;
pub const THRESHOLD_MIN: f64 = 6.0;
pub const THRESHOLD_MAX: f64 = 600.0;
/// Threshold adaptation gains per millisecond of arrival time.
pub const K_UP: f64 = 0.0087;
pub const K_DOWN: f64 = 0.039;
/// Scaled slopes this far above the threshold do not move it (a capacity
/// drop must not teach the detector to ignore the queue it builds).
const MAX_ADAPT_OFFSET: f64 = 15.0;
/// Adaptation never integrates over more than this much time at once.
const MAX_ADAPT_STEP_MS: f64 = 100.0;
/// How long the scaled slope must stay above the threshold.
pub const OVERUSE_TIME: Duration = Duration::from_millis(10);

/// What the delay says about the bottleneck queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    /// No significant trend.
    #[default]
    Normal,
    /// The queue grows: send less.
    Overusing,
    /// The queue drains: hold, let it empty.
    Underusing,
}

/// `a - b` in microseconds, negative when `b` is later; saturating.
pub fn signed_us(a: Instant, b: Instant) -> i64 {
    match a.checked_duration_since(b) {
        Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        None => i64::try_from(b.duration_since(a).as_micros()).map_or(i64::MIN, |v| -v),
    }
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: Instant,
    last_send: Instant,
    first_arrival: i64,
    last_arrival: i64,
}

/// A completed group compared with its predecessor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variation {
    /// Send time difference of the groups' last packets, µs.
    pub send_delta_us: i64,
    /// Arrival time difference of the groups' last arrivals, µs.
    pub arrival_delta_us: i64,
    /// Arrival time of the newer group (receiver clock, µs).
    pub arrival_us: i64,
}

impl Variation {
    /// `arrival delta - send delta`, milliseconds.
    pub fn delay_ms(&self) -> f64 {
        self.arrival_delta_us.saturating_sub(self.send_delta_us) as f64 / 1000.0
    }
}

/// What the grouper made of a packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grouped {
    /// The packet joined a group (or was skipped as out of order).
    Nothing,
    /// A group completed: its variation against the previous one.
    Sample(Variation),
    /// The timestamps were implausible; the caller should reset.
    Reset,
}

/// Arrival groups (stage 1).
#[derive(Debug, Default)]
pub struct Grouper {
    previous: Option<Group>,
    current: Option<Group>,
}

impl Grouper {
    pub fn on_packet(&mut self, send: Instant, arrival_us: i64) -> Grouped {
        let Some(cur) = self.current.as_mut() else {
            self.current = Some(Group {
                first_send: send,
                last_send: send,
                first_arrival: arrival_us,
                last_arrival: arrival_us,
            });
            return Grouped::Nothing;
        };
        if send < cur.first_send {
            // Older than the group being built (a reordered report).
            return Grouped::Nothing;
        }
        let send_step = signed_us(send, cur.last_send);
        let arrival_step = arrival_us.saturating_sub(cur.last_arrival);
        let burst = (0..=BURST_ARRIVAL_US).contains(&arrival_step)
            && arrival_step < send_step
            && arrival_us.saturating_sub(cur.first_arrival) < MAX_BURST_US;
        if burst || send.duration_since(cur.first_send) <= BURST {
            cur.last_send = cur.last_send.max(send);
            cur.last_arrival = cur.last_arrival.max(arrival_us);
            return Grouped::Nothing;
        }
        let done = *cur;
        *cur = Group {
            first_send: send,
            last_send: send,
            first_arrival: arrival_us,
            last_arrival: arrival_us,
        };
        let Some(prev) = self.previous.replace(done) else {
            return Grouped::Nothing;
        };
        let v = Variation {
            send_delta_us: signed_us(done.last_send, prev.last_send),
            arrival_delta_us: done.last_arrival.saturating_sub(prev.last_arrival),
            arrival_us: done.last_arrival,
        };
        let max = MAX_VARIATION.as_micros() as i64;
        if v.arrival_delta_us < 0 || v.send_delta_us < 0 {
            // The receiver's clock stepped back (or the report was odd):
            // no sample; the next group compares with this one.
            return Grouped::Nothing;
        }
        if v.arrival_delta_us.saturating_sub(v.send_delta_us).abs() > max {
            return Grouped::Reset;
        }
        Grouped::Sample(v)
    }
}

/// Least-squares slope of the smoothed accumulated delay (stage 2).
#[derive(Debug)]
pub struct Trendline {
    /// (arrival ms since `origin`, smoothed accumulated delay ms).
    points: [(f64, f64); WINDOW],
    len: usize,
    next: usize,
    origin_us: Option<i64>,
    accumulated: f64,
    smoothed: f64,
    /// Variations seen since the last reset.
    pub samples: u32,
}

impl Default for Trendline {
    fn default() -> Self {
        Trendline {
            points: [(0.0, 0.0); WINDOW],
            len: 0,
            next: 0,
            origin_us: None,
            accumulated: 0.0,
            smoothed: 0.0,
            samples: 0,
        }
    }
}

impl Trendline {
    /// Adds one delay variation (ms) observed at `arrival_us`; the slope
    /// once the window is full.
    pub fn add(&mut self, delay_ms: f64, arrival_us: i64) -> Option<f64> {
        let origin = *self.origin_us.get_or_insert(arrival_us);
        let x = arrival_us.saturating_sub(origin) as f64 / 1000.0;
        self.samples = self.samples.saturating_add(1);
        self.accumulated += delay_ms;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        self.points[self.next] = (x, self.smoothed);
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
        if self.len < WINDOW {
            return None;
        }
        self.slope()
    }

    fn slope(&self) -> Option<f64> {
        let n = self.len as f64;
        let pts = &self.points[..self.len];
        let mean_x = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for &(x, y) in pts {
            num += (x - mean_x) * (y - mean_y);
            den += (x - mean_x) * (x - mean_x);
        }
        let slope = num / den;
        (den > 0.0 && slope.is_finite()).then_some(slope)
    }
}

/// Over-use detector with an adaptive threshold (stage 3).
#[derive(Debug)]
pub struct Detector {
    threshold: f64,
    last_adapt_us: Option<i64>,
    /// Time spent above the threshold (ms) and groups counted there.
    over_ms: Option<f64>,
    over_count: u32,
    previous_trend: f64,
    usage: Usage,
}

impl Default for Detector {
    fn default() -> Self {
        Detector {
            threshold: THRESHOLD_INIT,
            last_adapt_us: None,
            over_ms: None,
            over_count: 0,
            previous_trend: 0.0,
            usage: Usage::Normal,
        }
    }
}

impl Detector {
    pub fn usage(&self) -> Usage {
        self.usage
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// One slope `trend` after `samples` variations, from a group sent
    /// `send_delta_ms` after its predecessor and arriving at `arrival_us`.
    pub fn detect(&mut self, trend: f64, samples: u32, send_delta_ms: f64, arrival_us: i64) {
        let scaled = f64::from(samples.min(SAMPLES_CAP)) * trend * THRESHOLD_GAIN;
        if scaled > self.threshold {
            let t = match self.over_ms {
                None => send_delta_ms / 2.0,
                Some(t) => t + send_delta_ms,
            };
            self.over_ms = Some(t);
            self.over_count += 1;
            if t > OVERUSE_TIME.as_secs_f64() * 1000.0
                && self.over_count > 1
                && trend > self.previous_trend
            {
                self.over_ms = None;
                self.over_count = 0;
                self.usage = Usage::Overusing;
            }
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = if scaled < -self.threshold {
                Usage::Underusing
            } else {
                Usage::Normal
            };
        }
        self.previous_trend = trend;
        self.adapt(scaled, arrival_us);
    }

    fn adapt(&mut self, scaled: f64, arrival_us: i64) {
        let last = *self.last_adapt_us.get_or_insert(arrival_us);
        self.last_adapt_us = Some(arrival_us);
        let magnitude = scaled.abs();
        if magnitude > self.threshold + MAX_ADAPT_OFFSET {
            return;
        }
        let dt_ms = (arrival_us.saturating_sub(last) as f64 / 1000.0).clamp(0.0, MAX_ADAPT_STEP_MS);
        let k = if magnitude < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        self.threshold += k * (magnitude - self.threshold) * dt_ms;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
    }
}

/// The three stages together.
#[derive(Debug, Default)]
pub struct DelayDetector {
    grouper: Grouper,
    trend: Trendline,
    detector: Detector,
}

impl DelayDetector {
    /// A received packet, in send order.
    pub fn on_packet(&mut self, send: Instant, arrival_us: i64) {
        match self.grouper.on_packet(send, arrival_us) {
            Grouped::Nothing => {}
            Grouped::Reset => self.reset_trend(),
            Grouped::Sample(v) => {
                if let Some(slope) = self.trend.add(v.delay_ms(), v.arrival_us) {
                    let send_ms = v.send_delta_us as f64 / 1000.0;
                    self.detector
                        .detect(slope, self.trend.samples, send_ms, v.arrival_us);
                }
            }
        }
    }

    pub fn usage(&self) -> Usage {
        self.detector.usage()
    }

    /// Forgets the trend (after implausible timestamps or a long silence);
    /// the grouping continues from the group being built.
    pub fn reset_trend(&mut self) {
        self.trend = Trendline::default();
        self.detector = Detector::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds groups every `spacing_ms` of send time whose arrival spacing
    /// is `spacing_ms * (1 + growth)`: a queue growing by `growth`.
    fn feed(d: &mut DelayDetector, t0: Instant, groups: u32, spacing_ms: u64, growth: f64) {
        for g in 0..groups {
            let send = t0 + Duration::from_millis(spacing_ms * u64::from(g));
            let arrival =
                1_000_000 + (spacing_ms as f64 * 1000.0 * (1.0 + growth) * f64::from(g)) as i64;
            d.on_packet(send, arrival);
            d.on_packet(send + Duration::from_millis(1), arrival + 1000);
        }
    }

    #[test]
    fn groups_by_send_time_burst() {
        let t0 = Instant::now();
        let mut g = Grouper::default();
        // Three packets in 4 ms: one group; the 4th starts a new one.
        assert_eq!(g.on_packet(t0, 0), Grouped::Nothing);
        assert_eq!(
            g.on_packet(t0 + Duration::from_millis(2), 2_000),
            Grouped::Nothing
        );
        assert_eq!(
            g.on_packet(t0 + Duration::from_millis(4), 4_000),
            Grouped::Nothing
        );
        // First completed group: nothing to compare with yet.
        assert_eq!(
            g.on_packet(t0 + Duration::from_millis(20), 20_000),
            Grouped::Nothing
        );
        // Second group completes when the third starts: sent 16 ms after,
        // arrived 20 ms after (+4 ms of queue).
        match g.on_packet(t0 + Duration::from_millis(40), 50_000) {
            Grouped::Sample(v) => {
                assert_eq!(v.send_delta_us, 16_000);
                assert_eq!(v.arrival_delta_us, 16_000);
                assert!(v.delay_ms().abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn implausible_arrivals_reset_or_skip() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut g = Grouper::default();
        // A group completes when the next one starts; a variation needs
        // two completed groups.
        assert_eq!(g.on_packet(ms(0), 0), Grouped::Nothing);
        assert_eq!(g.on_packet(ms(10), 10_000), Grouped::Nothing);
        assert!(matches!(g.on_packet(ms(20), 20_000), Grouped::Sample(_)));
        // The receiver's clock jumps an hour ahead: the group at 20 ms
        // still compares normally, the one after the jump resets.
        let hour = 3_600_000_000;
        assert!(matches!(
            g.on_packet(ms(30), hour + 30_000),
            Grouped::Sample(_)
        ));
        assert_eq!(g.on_packet(ms(40), hour + 40_000), Grouped::Reset);
        assert!(matches!(
            g.on_packet(ms(50), hour + 50_000),
            Grouped::Sample(_)
        ));
        assert!(matches!(g.on_packet(ms(60), 60_000), Grouped::Sample(_)));
        // ... and back: no sample (re-anchored), then normal again.
        assert_eq!(g.on_packet(ms(70), 70_000), Grouped::Nothing);
        assert!(matches!(g.on_packet(ms(80), 80_000), Grouped::Sample(_)));
        // Out of order send times are skipped.
        assert_eq!(g.on_packet(ms(5), 90_000), Grouped::Nothing);
        // Extremes of i64 do not overflow.
        for (i, a) in [i64::MAX, i64::MIN, 0, i64::MAX, -1]
            .into_iter()
            .enumerate()
        {
            let _ = g.on_packet(ms(100 + 10 * i as u64), a);
        }
    }

    #[test]
    fn trendline_slope_follows_the_delay() {
        let mut rising = Trendline::default();
        let mut flat = Trendline::default();
        let mut slope_r = None;
        let mut slope_f = None;
        for i in 0..40i64 {
            // Every group 10 ms apart arrives 1 ms later than the last.
            slope_r = rising.add(1.0, i * 10_000);
            slope_f = flat.add(0.0, i * 10_000);
        }
        let (Some(r), Some(f)) = (slope_r, slope_f) else {
            panic!("no slope")
        };
        assert!(r > 0.05, "{r}");
        assert!(f.abs() < 1e-9, "{f}");
        let mut falling = Trendline::default();
        let mut s = None;
        for i in 0..40i64 {
            s = falling.add(-1.0, i * 10_000);
        }
        assert!(s.is_some_and(|s| s < -0.05), "{s:?}");
    }

    #[test]
    fn trendline_needs_a_full_window() {
        let mut t = Trendline::default();
        for i in 0..(WINDOW as i64 - 1) {
            assert_eq!(t.add(1.0, i * 5_000), None);
        }
        assert!(t.add(1.0, WINDOW as i64 * 5_000).is_some());
    }

    #[test]
    fn overuse_needs_persistence() {
        let mut d = Detector::default();
        // One large rising sample: not yet over-use.
        d.detect(0.2, 60, 5.0, 0);
        assert_eq!(d.usage(), Usage::Normal);
        // The second sample, rising, after > 10 ms above: over-use.
        d.detect(0.25, 60, 10.0, 10_000);
        assert_eq!(d.usage(), Usage::Overusing);

        // A slope that stops rising is not (yet) over-use.
        let mut d = Detector::default();
        d.detect(0.2, 60, 20.0, 0);
        d.detect(0.2, 60, 20.0, 20_000);
        d.detect(0.19, 60, 20.0, 40_000);
        assert_eq!(d.usage(), Usage::Normal);

        // Under the threshold it returns to normal, below its negative is
        // under-use.
        d.detect(0.0, 60, 20.0, 60_000);
        assert_eq!(d.usage(), Usage::Normal);
        d.detect(-0.2, 60, 20.0, 80_000);
        assert_eq!(d.usage(), Usage::Underusing);
    }

    #[test]
    fn threshold_adapts_and_stays_clamped() {
        let mut d = Detector::default();
        // Long quiet: the threshold sinks to its floor.
        for i in 0..200 {
            d.detect(0.0, 60, 20.0, i * 20_000);
        }
        assert!((d.threshold() - THRESHOLD_MIN).abs() < 1e-9);
        // Persistent moderate noise just above it raises it slowly.
        for i in 200..2000 {
            d.detect(if i % 2 == 0 { 0.08 } else { -0.08 }, 60, 20.0, i * 20_000);
        }
        assert!(d.threshold() > 15.0 && d.threshold() <= THRESHOLD_MAX);
    }

    #[test]
    fn detects_a_growing_queue_and_not_a_steady_one() {
        let t0 = Instant::now();
        let mut steady = DelayDetector::default();
        feed(&mut steady, t0, 200, 10, 0.0);
        assert_eq!(steady.usage(), Usage::Normal);

        let mut growing = DelayDetector::default();
        feed(&mut growing, t0, 200, 10, 0.2);
        assert_eq!(growing.usage(), Usage::Overusing);

        let mut draining = DelayDetector::default();
        feed(&mut draining, t0, 200, 10, -0.2);
        assert_eq!(draining.usage(), Usage::Underusing);
    }
}
