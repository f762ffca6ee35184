//! How long a subscriber's outgoing video keeps its sent packets to answer
//! NACKs: long enough for the subscriber's requests (and a few repeats of
//! them) to come back over its round trip, and no longer, since the cache is
//! the largest part of a subscriber's memory (about 430 bytes of str0m's
//! per packet, beside the shared payload).
//!
//! A receiver asks for a lost packet as soon as the next one shows the gap,
//! and asks again about once per round trip while the frame waits. A window
//! of `NACK_RETRIES` round trips plus `NACK_SLACK` answers those; the
//! floor covers near links (Janus keeps 500 ms for every peer, whatever its
//! round trip), the ceiling far ones, beyond which a resend arrives after
//! the receiver's jitter buffer has asked for a keyframe instead.
//!
//! Changing the window empties the cache (str0m's `set_rtx_cache` starts a
//! new one), so [`NackWindow`] changes it only when the round trip moved the
//! window by half or more, and not more often than every
//! `NACK_WINDOW_HOLD`.

use std::time::{Duration, Instant};

/// The shortest window, and the one a peer starts with (no round trip yet).
pub const NACK_WINDOW_MIN: Duration = Duration::from_millis(300);
/// The longest window.
pub const NACK_WINDOW_MAX: Duration = Duration::from_secs(1);
/// Round trips a resend may take (the first request and its repeats).
pub const NACK_RETRIES: u32 = 4;
/// Beside the round trips: the gap's detection and the receiver's pacing.
pub const NACK_SLACK: Duration = Duration::from_millis(100);
/// The least time between two changes of one peer's window.
pub const NACK_WINDOW_HOLD: Duration = Duration::from_secs(10);
/// The packet rate a window's cache is sized for: a 4 Mbit/s camera of
/// 1,200-byte packets. Slower streams keep all of the window, faster ones
/// the window's share of this many packets.
pub const NACK_PACKETS_PER_SEC: u32 = 400;
/// The most packets one stream's cache holds, whatever its window.
pub const NACK_CACHE_MAX_PACKETS: usize = 256;

/// The window for a round trip of `rtt`.
pub fn nack_window(rtt: Duration) -> Duration {
    rtt.saturating_mul(NACK_RETRIES)
        .saturating_add(NACK_SLACK)
        .clamp(NACK_WINDOW_MIN, NACK_WINDOW_MAX)
}

/// The most packets a stream keeps for a `window`: str0m evicts by age and
/// by this count, whichever comes first, and grows the cache only up to it
/// (without it the cache grew towards the cap even for a short window).
pub fn nack_cache_packets(window: Duration) -> usize {
    let packets = (window.as_secs_f64() * f64::from(NACK_PACKETS_PER_SEC)).ceil() as usize;
    packets.clamp(64, NACK_CACHE_MAX_PACKETS)
}

/// One peer's window, changed as its round trip is measured.
#[derive(Debug, Clone)]
pub struct NackWindow {
    current: Duration,
    changed_at: Option<Instant>,
}

impl Default for NackWindow {
    fn default() -> Self {
        NackWindow::new()
    }
}

impl NackWindow {
    pub fn new() -> NackWindow {
        NackWindow {
            current: NACK_WINDOW_MIN,
            changed_at: None,
        }
    }

    /// The window new outgoing streams get.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// A new round-trip measurement: `Some(window)` when the peer's caches
    /// should be set to it now.
    pub fn on_rtt(&mut self, rtt: Duration, now: Instant) -> Option<Duration> {
        let target = nack_window(rtt);
        let moved = target.as_secs_f64() >= self.current.as_secs_f64() * 1.5
            || target.as_secs_f64() <= self.current.as_secs_f64() / 1.5;
        let held = self
            .changed_at
            .is_some_and(|at| now.saturating_duration_since(at) < NACK_WINDOW_HOLD);
        if !moved || held {
            return None;
        }
        self.current = target;
        self.changed_at = Some(now);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_window_covers_retries_over_the_round_trip_within_its_bounds() {
        assert_eq!(nack_window(ms(1)), NACK_WINDOW_MIN);
        assert_eq!(nack_window(ms(50)), NACK_WINDOW_MIN);
        assert_eq!(nack_window(ms(100)), ms(500));
        assert_eq!(nack_window(ms(150)), ms(700));
        assert_eq!(nack_window(ms(400)), NACK_WINDOW_MAX);
        assert_eq!(nack_window(Duration::MAX), NACK_WINDOW_MAX);
    }

    #[test]
    fn the_cache_holds_the_window_of_a_4_mbit_camera_within_its_bounds() {
        assert_eq!(nack_cache_packets(NACK_WINDOW_MIN), 120);
        assert_eq!(nack_cache_packets(ms(500)), 200);
        assert_eq!(nack_cache_packets(NACK_WINDOW_MAX), NACK_CACHE_MAX_PACKETS);
        assert_eq!(nack_cache_packets(ms(10)), 64);
    }

    #[test]
    fn a_near_peer_keeps_the_starting_window() {
        let t0 = Instant::now();
        let mut w = NackWindow::new();
        for (i, rtt) in [1, 5, 20, 60, 3].into_iter().enumerate() {
            assert_eq!(w.on_rtt(ms(rtt), t0 + ms(1000 * i as u64)), None);
        }
        assert_eq!(w.current(), NACK_WINDOW_MIN);
    }

    #[test]
    fn a_far_peer_gets_a_longer_window_at_once_then_changes_are_held() {
        let t0 = Instant::now();
        let mut w = NackWindow::new();
        // The first round trip of a far peer: changed at once.
        assert_eq!(w.on_rtt(ms(200), t0), Some(ms(900)));
        assert_eq!(w.current(), ms(900));
        // It comes closer within the hold: kept until the hold is over.
        assert_eq!(w.on_rtt(ms(10), t0 + ms(5000)), None);
        assert_eq!(w.current(), ms(900));
        assert_eq!(
            w.on_rtt(ms(10), t0 + NACK_WINDOW_HOLD),
            Some(NACK_WINDOW_MIN)
        );
        assert_eq!(w.current(), NACK_WINDOW_MIN);
    }

    #[test]
    fn small_moves_do_not_empty_the_cache() {
        let t0 = Instant::now();
        let mut w = NackWindow::new();
        assert_eq!(w.on_rtt(ms(100), t0), Some(ms(500)));
        // 500 -> 620 and 500 -> 380: less than half either way.
        assert_eq!(w.on_rtt(ms(130), t0 + ms(20_000)), None);
        assert_eq!(w.on_rtt(ms(70), t0 + ms(40_000)), None);
        // 500 -> 1000: half again.
        assert_eq!(w.on_rtt(ms(300), t0 + ms(60_000)), Some(NACK_WINDOW_MAX));
    }
}
