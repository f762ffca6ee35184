//! Rate limiting of keyframe requests towards a publisher.

use std::time::{Duration, Instant};

/// Default minimum spacing of keyframe requests to one publisher track.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Collapses keyframe requests (from subscribers' PLI/FIR, joins and layer
/// switches) into at most one per interval. A request inside the interval is
/// remembered and released by [`KeyframeLimiter::poll`] once it ends, so no
/// request is lost, only delayed.
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl Default for KeyframeLimiter {
    fn default() -> Self {
        KeyframeLimiter::new(KEYFRAME_INTERVAL)
    }
}

impl KeyframeLimiter {
    pub fn new(interval: Duration) -> KeyframeLimiter {
        KeyframeLimiter {
            interval,
            last: None,
            pending: false,
        }
    }

    /// A keyframe is wanted. Returns true when the request should be sent
    /// now; otherwise it is kept for [`KeyframeLimiter::poll`].
    pub fn request(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            self.pending = true;
            return false;
        }
        self.last = Some(now);
        self.pending = false;
        true
    }

    /// Returns true when a deferred request is due now.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.pending && self.request(now) {
            return true;
        }
        false
    }

    /// When [`KeyframeLimiter::poll`] next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        if self.pending {
            self.last.map(|t| t + self.interval)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_and_none_lost() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut k = KeyframeLimiter::default();
        assert!(k.request(t0));
        assert!(!k.request(ms(10)));
        assert!(!k.request(ms(200)));
        assert_eq!(k.next_due(), Some(ms(500)));
        assert!(!k.poll(ms(499)));
        assert!(k.poll(ms(500)), "the deferred request is released");
        assert!(!k.poll(ms(600)), "only once");
        assert_eq!(k.next_due(), None);
        assert!(k.request(ms(1000)));
    }
}
