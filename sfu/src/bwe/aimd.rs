//! The delay-based rate controller: turns the detector's signal into a
//! bitrate by additive/multiplicative increase and multiplicative decrease.
//!
//! Three states. The detector's signal moves them: over-use always leads to
//! `Decrease`; under-use (the queue drains) to `Hold`, so the queue can
//! empty before anything grows; normal turns `Hold` into `Increase` and
//! ends a `Decrease` in `Hold`.
//!
//! - **Increase**: far from the last point of congestion the estimate grows
//!   multiplicatively, [`INCREASE_PER_SEC`] a second; near it (the acked
//!   rate within three standard deviations of the average acked rate at
//!   past decreases) it grows additively, about one packet
//!   ([`PACKET_BITS`]) per response time (100 ms + RTT). Either way never
//!   beyond [`ACKED_CAP_FACTOR`] times the acked rate plus
//!   [`ACKED_CAP_EXTRA`]: a sender that does not use its estimate must not
//!   grow it on air (probes, which measure, are the way up then).
//! - **Decrease**: to [`BETA`] times the acked rate (never upwards), at most
//!   once per RTT (clamped to 10..200 ms) unless the acked rate fell below
//!   half the estimate; then `Hold`. Each decrease feeds the average acked
//!   rate at congestion, the "link capacity" that selects additive increase.
//! - **Hold**: nothing changes.

use std::time::{Duration, Instant};

use super::delay::Usage;

/// Multiplicative increase per second far from congestion.
pub const INCREASE_PER_SEC: f64 = 1.08;
/// Decrease to this share of the acked rate on over-use.
pub const BETA: f64 = 0.85;
/// Increases stop at this many times the acked rate ...
pub const ACKED_CAP_FACTOR: f64 = 1.5;
/// ... plus this (bit/s).
pub const ACKED_CAP_EXTRA: f64 = 10_000.0;
/// The packet of additive increase (1,200 bytes).
pub const PACKET_BITS: f64 = 9_600.0;
/// Response time without RTT.
pub const RESPONSE_BASE: Duration = Duration::from_millis(100);
/// Smallest step of any increase (bit/s).
const MIN_STEP: f64 = 1_000.0;
/// Weight of a new sample in the link capacity average.
const CAPACITY_ALPHA: f64 = 0.05;
/// Bounds of the capacity's relative standard deviation.
const CAPACITY_REL_STD: (f64, f64) = (0.02, 0.05);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Increase,
    Hold,
    Decrease,
}

/// Average acked rate at congestion (bit/s) and its relative variance.
#[derive(Debug, Clone, Copy)]
struct Capacity {
    mean: f64,
    rel_var: f64,
}

impl Capacity {
    fn std(&self) -> f64 {
        self.mean
            * self
                .rel_var
                .sqrt()
                .clamp(CAPACITY_REL_STD.0, CAPACITY_REL_STD.1)
    }
}

#[derive(Debug)]
pub struct RateController {
    estimate: f64,
    min: f64,
    max: f64,
    state: State,
    last_change: Option<Instant>,
    rtt: Option<Duration>,
    capacity: Option<Capacity>,
}

impl RateController {
    pub fn new(initial: f64, min: f64, max: f64) -> RateController {
        RateController {
            estimate: initial.clamp(min, max),
            min,
            max,
            state: State::Increase,
            last_change: None,
            rtt: None,
            capacity: None,
        }
    }

    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }

    /// Sets the estimate outright (a probe result, a feedback timeout).
    pub fn set_estimate(&mut self, bps: f64, now: Instant) {
        self.estimate = bps.clamp(self.min, self.max);
        self.last_change = Some(now);
    }

    /// Whether the acked rate is within three standard deviations of the
    /// average acked rate at past decreases.
    pub fn near_capacity(&self, acked: Option<f64>) -> bool {
        match (self.capacity, acked) {
            (Some(c), Some(a)) => (a - c.mean).abs() <= 3.0 * c.std(),
            _ => false,
        }
    }

    /// One feedback's worth of input: the detector's signal and the acked
    /// rate (bit/s) if known.
    pub fn update(&mut self, usage: Usage, acked: Option<f64>, now: Instant) {
        let acked = acked.filter(|a| a.is_finite() && *a >= 0.0);
        let next = match (self.state, usage) {
            (_, Usage::Overusing) => State::Decrease,
            (_, Usage::Underusing) => State::Hold,
            (State::Decrease, Usage::Normal) => State::Hold,
            (State::Hold | State::Increase, Usage::Normal) => State::Increase,
        };
        if next == State::Increase && self.state != State::Increase {
            // Growth counts from here, not from the last change before Hold.
            self.last_change = Some(now);
        }
        self.state = next;
        match self.state {
            State::Increase => self.increase(acked, now),
            State::Decrease => {
                if self.may_decrease(acked, now) {
                    self.decrease(acked, now);
                }
            }
            State::Hold => {}
        }
    }

    fn may_decrease(&self, acked: Option<f64>, now: Instant) -> bool {
        let Some(last) = self.last_change else {
            return true;
        };
        let interval = self
            .rtt
            .unwrap_or(RESPONSE_BASE)
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        now.saturating_duration_since(last) >= interval
            || acked.is_some_and(|a| a < 0.5 * self.estimate)
    }

    fn increase(&mut self, acked: Option<f64>, now: Instant) {
        let dt = self
            .last_change
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if let (Some(c), Some(a)) = (self.capacity, acked)
            && a > c.mean + 3.0 * c.std()
        {
            // Well beyond where congestion used to be: forget it.
            self.capacity = None;
        }
        let cap = acked.map(|a| ACKED_CAP_FACTOR * a + ACKED_CAP_EXTRA);
        if cap.is_some_and(|c| self.estimate >= c) {
            self.last_change = Some(now);
            return;
        }
        let step = if self.near_capacity(acked) {
            let response = RESPONSE_BASE + self.rtt.unwrap_or(Duration::ZERO);
            let share = (dt.as_secs_f64() / response.as_secs_f64()).min(1.0);
            PACKET_BITS * share
        } else {
            let secs = dt.as_secs_f64().min(1.0);
            (INCREASE_PER_SEC.powf(secs) - 1.0) * self.estimate
        };
        let mut next = self.estimate + step.max(MIN_STEP);
        if let Some(c) = cap {
            next = next.min(c);
        }
        self.set_estimate(next.max(self.estimate), now);
    }

    fn decrease(&mut self, acked: Option<f64>, now: Instant) {
        let base = acked.unwrap_or(self.estimate);
        let next = (BETA * base).min(self.estimate);
        if let Some(a) = acked {
            self.learn_capacity(a);
        }
        self.state = State::Hold;
        self.set_estimate(next, now);
    }

    fn learn_capacity(&mut self, acked: f64) {
        let c = match self.capacity {
            Some(c) if acked >= c.mean - 3.0 * c.std() => c,
            // First congestion, or far below the old point: start afresh.
            _ => {
                self.capacity = Some(Capacity {
                    mean: acked,
                    rel_var: CAPACITY_REL_STD.1 * CAPACITY_REL_STD.1,
                });
                return;
            }
        };
        let mean = (1.0 - CAPACITY_ALPHA) * c.mean + CAPACITY_ALPHA * acked;
        let rel = if mean > 0.0 {
            (acked - mean) / mean
        } else {
            0.0
        };
        let rel_var = (1.0 - CAPACITY_ALPHA) * c.rel_var + CAPACITY_ALPHA * rel * rel;
        self.capacity = Some(Capacity { mean, rel_var });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, m: u64) -> Instant {
        t0 + Duration::from_millis(m)
    }

    #[test]
    fn multiplicative_increase_is_eight_percent_a_second() {
        let t0 = Instant::now();
        let mut c = RateController::new(1_000_000.0, 10_000.0, 100e6);
        c.update(Usage::Normal, None, t0);
        // 10 updates 100 ms apart: one second of growth.
        for i in 1..=10 {
            c.update(Usage::Normal, None, ms(t0, 100 * i));
        }
        let e = c.estimate();
        assert!((1_075_000.0..1_085_000.0).contains(&e), "{e}");
    }

    #[test]
    fn increase_stops_at_one_and_a_half_times_acked() {
        let t0 = Instant::now();
        let mut c = RateController::new(1_000_000.0, 10_000.0, 100e6);
        for i in 0..100 {
            c.update(Usage::Normal, Some(300_000.0), ms(t0, 100 * i));
        }
        // Above the cap already: it does not grow (nor fall).
        assert_eq!(c.estimate(), 1_000_000.0);
        let mut c = RateController::new(400_000.0, 10_000.0, 100e6);
        for i in 0..100 {
            c.update(Usage::Normal, Some(300_000.0), ms(t0, 100 * i));
        }
        assert_eq!(c.estimate(), 1.5 * 300_000.0 + 10_000.0);
    }

    #[test]
    fn overuse_decreases_to_beta_times_acked_once_per_rtt() {
        let t0 = Instant::now();
        let mut c = RateController::new(2_000_000.0, 10_000.0, 100e6);
        c.set_rtt(Duration::from_millis(50));
        c.update(Usage::Normal, Some(1_900_000.0), t0);
        c.update(Usage::Overusing, Some(1_800_000.0), ms(t0, 100));
        assert_eq!(c.estimate(), BETA * 1_800_000.0);
        assert_eq!(c.state(), State::Hold);
        // Again 20 ms later: too soon (RTT 50 ms).
        c.update(Usage::Overusing, Some(1_500_000.0), ms(t0, 120));
        assert_eq!(c.estimate(), BETA * 1_800_000.0);
        // Acked rate under half the estimate: at once.
        c.update(Usage::Overusing, Some(600_000.0), ms(t0, 130));
        assert_eq!(c.estimate(), BETA * 600_000.0);
        // Never upwards: acked above the estimate.
        c.update(Usage::Overusing, Some(5_000_000.0), ms(t0, 400));
        assert_eq!(c.estimate(), BETA * 600_000.0);
    }

    #[test]
    fn additive_increase_near_the_last_congestion() {
        let t0 = Instant::now();
        let mut c = RateController::new(1_000_000.0, 10_000.0, 100e6);
        c.set_rtt(Duration::from_millis(100));
        c.update(Usage::Overusing, Some(1_000_000.0), t0);
        assert_eq!(c.estimate(), 850_000.0);
        c.update(Usage::Normal, Some(1_000_000.0), ms(t0, 100)); // Hold -> Increase
        let before = c.estimate();
        for i in 2..=11 {
            c.update(Usage::Normal, Some(1_000_000.0), ms(t0, 100 * i));
        }
        // 1 s at one packet (9,600 bit) per 200 ms: +48 kbit/s.
        let grown = c.estimate() - before;
        assert!((40_000.0..=56_000.0).contains(&grown), "{grown}");
        assert!(c.near_capacity(Some(1_000_000.0)));
        // Far above: multiplicative again.
        assert!(!c.near_capacity(Some(1_300_000.0)));
    }

    #[test]
    fn underuse_holds_and_normal_resumes() {
        let t0 = Instant::now();
        let mut c = RateController::new(1_000_000.0, 10_000.0, 100e6);
        c.update(Usage::Underusing, None, t0);
        c.update(Usage::Underusing, None, ms(t0, 1000));
        assert_eq!(c.state(), State::Hold);
        assert_eq!(c.estimate(), 1_000_000.0);
        // Back to increase; growth counts from the transition, not from t0.
        c.update(Usage::Normal, None, ms(t0, 5000));
        assert_eq!(c.state(), State::Increase);
        assert!(c.estimate() <= 1_001_000.0);
    }

    #[test]
    fn stays_within_bounds() {
        let t0 = Instant::now();
        let mut c = RateController::new(50_000.0, 100_000.0, 200_000.0);
        assert_eq!(c.estimate(), 100_000.0);
        for i in 0..100 {
            c.update(Usage::Normal, None, ms(t0, 1000 * i));
        }
        assert_eq!(c.estimate(), 200_000.0);
        c.update(Usage::Overusing, Some(1.0), ms(t0, 200_000));
        assert_eq!(c.estimate(), 100_000.0);
        c.update(Usage::Overusing, Some(f64::NAN), ms(t0, 300_000));
        assert_eq!(c.estimate(), 100_000.0);
    }
}
