//! A cheap sliding-window bitrate meter.

use std::time::{Duration, Instant};

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);

/// Bytes over the last second in ten 100 ms buckets: fixed size, no
/// allocation, O(1) per packet.
#[derive(Debug, Clone)]
pub struct RateMeter {
    start: Option<Instant>,
    /// Index (in buckets since `start`) of the newest bucket.
    head: u64,
    bytes: [u64; BUCKETS],
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter::new()
    }
}

impl RateMeter {
    pub fn new() -> RateMeter {
        RateMeter {
            start: None,
            head: 0,
            bytes: [0; BUCKETS],
        }
    }

    fn bucket_of(&mut self, now: Instant) -> u64 {
        let start = *self.start.get_or_insert(now);
        (now.saturating_duration_since(start).as_millis() / BUCKET.as_millis()) as u64
    }

    fn advance(&mut self, to: u64) {
        if to <= self.head {
            return;
        }
        let steps = (to - self.head).min(BUCKETS as u64);
        for k in 1..=steps {
            self.bytes[((self.head + k) % BUCKETS as u64) as usize] = 0;
        }
        self.head = to;
    }

    /// Counts `bytes` arriving at `now`.
    pub fn record(&mut self, bytes: usize, now: Instant) {
        let b = self.bucket_of(now);
        self.advance(b);
        // Late timestamps land in the newest bucket.
        self.bytes[(self.head % BUCKETS as u64) as usize] += bytes as u64;
    }

    /// Bits per second over the last second (0 when nothing arrived).
    pub fn bps(&mut self, now: Instant) -> u64 {
        if self.start.is_none() {
            return 0;
        }
        let b = self.bucket_of(now);
        self.advance(b);
        let total: u64 = self.bytes.iter().sum();
        total * 8 * 1000 / (BUCKETS as u64 * BUCKET.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_rate_and_forgets_it() {
        let t0 = Instant::now();
        let mut m = RateMeter::new();
        assert_eq!(m.bps(t0), 0);
        // 1250 bytes every 10 ms = 1 Mbit/s.
        for i in 0..300u64 {
            m.record(1250, t0 + Duration::from_millis(10 * i));
        }
        let r = m.bps(t0 + Duration::from_millis(2999));
        assert!((900_000..=1_100_000).contains(&r), "{r}");
        assert_eq!(m.bps(t0 + Duration::from_secs(10)), 0);
    }
}
