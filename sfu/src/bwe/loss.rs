//! Loss-based bound on the estimate: heavy loss lowers it whatever the
//! delay says, because some losses (a policer, a shallow queue, a radio
//! link) come without a growing queue.
//!
//! Feedback reports packets received or lost; packets not yet named in any
//! report do not count. Reports are pooled until at least
//! [`MIN_PACKETS`] packets were reported (one report is often only a few
//! packets at low rates, and two losses in ten packets are no 20 % loss
//! rate); then the loss fraction of the pool decides:
//! - above [`HIGH_LOSS`]: the bound becomes `min(bound, estimate) * (1 -
//!   0.5 * loss)`, at most once per [`DECREASE_INTERVAL`] plus RTT;
//! - below [`LOW_LOSS`]: the bound grows [`INCREASE_PER_SEC`] a second
//!   (plus [`MIN_STEP`]), up to the maximum;
//! - in between: it holds.
//!
//! The bound starts at the maximum, i.e. it binds only after heavy loss.
//! A probe result raises it at once ([`LossBound::raise_to`]).
//! The final estimate is `min(delay-based, loss-based)`.

use std::time::{Duration, Instant};

/// Reported packets pooled before a loss fraction is taken.
pub const MIN_PACKETS: u32 = 30;
/// Loss above this share lowers the bound.
pub const HIGH_LOSS: f64 = 0.10;
/// Loss below this share lets it grow.
pub const LOW_LOSS: f64 = 0.02;
/// Growth per second while loss is low.
pub const INCREASE_PER_SEC: f64 = 1.08;
/// Smallest decrease interval (RTT is added).
pub const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// Added per growth step (bit/s).
const MIN_STEP: f64 = 1_000.0;

#[derive(Debug)]
pub struct LossBound {
    bound: f64,
    min: f64,
    max: f64,
    received: u32,
    lost: u32,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    last_fraction: Option<f64>,
}

impl LossBound {
    pub fn new(min: f64, max: f64) -> LossBound {
        LossBound {
            bound: max,
            min,
            max,
            received: 0,
            lost: 0,
            last_update: None,
            last_decrease: None,
            last_fraction: None,
        }
    }

    pub fn bound(&self) -> f64 {
        self.bound
    }

    /// The loss fraction of the last complete pool.
    pub fn last_fraction(&self) -> Option<f64> {
        self.last_fraction
    }

    /// The time of the last decrease.
    pub fn last_decrease(&self) -> Option<Instant> {
        self.last_decrease
    }

    /// Raises the bound to what a probe just measured the path to carry:
    /// a clean probe result outranks an old loss episode (the bound would
    /// otherwise regrow at 8 % a second from where that episode left it).
    pub fn raise_to(&mut self, bps: f64) {
        self.bound = self.bound.max(bps).clamp(self.min, self.max);
    }

    /// Caps the bound (a feedback timeout).
    pub fn cap(&mut self, bps: f64) {
        self.bound = self.bound.min(bps).clamp(self.min, self.max);
    }

    /// Counts one packet first reported as received or lost.
    pub fn on_report(&mut self, received: bool) {
        if received {
            self.received = self.received.saturating_add(1);
        } else {
            self.lost = self.lost.saturating_add(1);
        }
    }

    /// After a feedback message: if enough packets were pooled, applies
    /// their loss fraction against the current final `estimate`. Returns
    /// whether the bound decreased.
    pub fn update(&mut self, now: Instant, estimate: f64, rtt: Option<Duration>) -> bool {
        let total = self.received.saturating_add(self.lost);
        if total < MIN_PACKETS {
            return false;
        }
        let loss = f64::from(self.lost) / f64::from(total);
        self.received = 0;
        self.lost = 0;
        self.last_fraction = Some(loss);
        let since_update = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_update = Some(now);
        let mut decreased = false;
        if loss > HIGH_LOSS {
            let interval = DECREASE_INTERVAL + rtt.unwrap_or(Duration::ZERO);
            if self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= interval)
            {
                self.bound = self.bound.min(estimate) * (1.0 - 0.5 * loss);
                self.last_decrease = Some(now);
                decreased = true;
            }
        } else if loss < LOW_LOSS {
            let secs = since_update.as_secs_f64().min(1.0);
            self.bound = self.bound * INCREASE_PER_SEC.powf(secs) + MIN_STEP;
        }
        self.bound = self.bound.clamp(self.min, self.max);
        decreased
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports `n` packets of which the first `lost` are lost, then updates.
    fn pool(l: &mut LossBound, n: u32, lost: u32, now: Instant, estimate: f64) -> bool {
        for i in 0..n {
            l.on_report(i >= lost);
        }
        l.update(now, estimate, None)
    }

    #[test]
    fn no_loss_leaves_the_bound_at_the_maximum_and_lets_it_grow() {
        let t0 = Instant::now();
        let mut l = LossBound::new(50_000.0, 10e6);
        assert!(!pool(&mut l, 100, 0, t0, 1e6));
        assert_eq!(l.bound(), 10e6);
        assert_eq!(l.last_fraction(), Some(0.0));
    }

    #[test]
    fn twenty_percent_loss_lowers_five_percent_holds_zero_grows() {
        let t0 = Instant::now();
        let mut l = LossBound::new(50_000.0, 10e6);
        // 20 %: min(bound, estimate) * 0.9.
        assert!(pool(&mut l, 100, 20, t0, 1e6));
        assert!((l.bound() - 900_000.0).abs() < 1e-6, "{}", l.bound());
        // Again at once: too soon (300 ms + RTT).
        assert!(!pool(&mut l, 100, 20, t0 + Duration::from_millis(100), 1e6));
        assert!((l.bound() - 900_000.0).abs() < 1e-6);
        assert!(pool(&mut l, 100, 20, t0 + Duration::from_millis(400), 1e6));
        assert!((l.bound() - 810_000.0).abs() < 1e-6);
        // 5 %: holds.
        pool(&mut l, 100, 5, t0 + Duration::from_millis(1400), 1e6);
        assert!((l.bound() - 810_000.0).abs() < 1e-6);
        // 0 % one second later: +8 % (+1 kbit/s).
        pool(&mut l, 100, 0, t0 + Duration::from_millis(2400), 1e6);
        assert!(
            (l.bound() - (810_000.0 * 1.08 + 1000.0)).abs() < 1.0,
            "{}",
            l.bound()
        );
    }

    #[test]
    fn pools_small_reports() {
        let t0 = Instant::now();
        let mut l = LossBound::new(50_000.0, 10e6);
        // Ten packets, half lost: not enough to judge.
        assert!(!pool(&mut l, 10, 5, t0, 1e6));
        assert_eq!(l.bound(), 10e6);
        assert_eq!(l.last_fraction(), None);
        // Twenty more, none lost: 5/30 = 17 %.
        assert!(pool(&mut l, 20, 0, t0, 1e6));
        assert!(l.bound() < 1e6);
    }

    #[test]
    fn never_leaves_its_range() {
        let t0 = Instant::now();
        let mut l = LossBound::new(50_000.0, 1e6);
        for i in 0..100 {
            pool(&mut l, 40, 40, t0 + Duration::from_secs(i), 1e6);
        }
        assert_eq!(l.bound(), 50_000.0);
        for i in 100..300 {
            pool(&mut l, 40, 0, t0 + Duration::from_secs(i), 1e6);
        }
        assert_eq!(l.bound(), 1e6);
    }
}
