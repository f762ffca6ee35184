//! Keyframe requests towards a publisher: rate limiting, and where a
//! request goes (the local publisher, or the worker that holds it).

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

/// Where a track's publisher is, as the worker names it: a local peer
/// (`L`, e.g. its slot and mid) or another worker (`R`) that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher<L, R> {
    Local(L),
    Remote(R),
}

/// What to do with one keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeRoute<L, R> {
    /// Nothing now: an audio track, or a request the limiter deferred (it
    /// comes back from [`KeyframeLimiter::poll`]).
    Hold,
    /// Ask the local publisher now.
    Ask(L),
    /// Hand the request to the publisher's worker, which limits and
    /// counts it (a replica's limiter is not consulted, so two workers'
    /// subscribers do not double the interval).
    Relay(R),
}

/// Routes a keyframe request for a track: video only; a remote publisher's
/// worker decides; a local one is asked at most once per interval unless
/// `force`d (a new subscriber must not wait for the interval).
pub fn route_keyframe<L, R>(
    publisher: Publisher<L, R>,
    video: bool,
    force: bool,
    limiter: &mut KeyframeLimiter,
    now: Instant,
) -> KeyframeRoute<L, R> {
    if !video {
        return KeyframeRoute::Hold;
    }
    match publisher {
        Publisher::Remote(r) => KeyframeRoute::Relay(r),
        Publisher::Local(l) => {
            let due = limiter.request(now);
            if due || force {
                KeyframeRoute::Ask(l)
            } else {
                KeyframeRoute::Hold
            }
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

    #[test]
    fn routing_asks_local_publishers_relays_remote_ones_and_skips_audio() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut k = KeyframeLimiter::default();
        let local: Publisher<u8, u16> = Publisher::Local(3);
        let remote: Publisher<u8, u16> = Publisher::Remote(7);
        assert_eq!(
            route_keyframe(local, false, true, &mut k, t0),
            KeyframeRoute::Hold
        );
        assert_eq!(
            route_keyframe(local, true, false, &mut k, t0),
            KeyframeRoute::Ask(3)
        );
        assert_eq!(
            route_keyframe(local, true, false, &mut k, ms(100)),
            KeyframeRoute::Hold
        );
        assert_eq!(
            route_keyframe(local, true, true, &mut k, ms(200)),
            KeyframeRoute::Ask(3),
            "a forced request goes out inside the interval"
        );
        assert_eq!(
            route_keyframe(remote, true, false, &mut k, ms(210)),
            KeyframeRoute::Relay(7),
            "the publisher's worker limits, not the replica"
        );
        assert!(k.poll(ms(700)), "the deferred request is still released");
    }
}
