//! Acked bitrate: the throughput of the packets the receiver reported as
//! received, measured on the receiver's clock.
//!
//! Received bytes go into [`BUCKETS`] buckets of [`BUCKET_US`] by arrival
//! time; the rate is the bytes of the window ending at the newest arrival
//! divided by the time the window covers (less than its length right after
//! a start or reset). No rate until [`MIN_SPAN_US`] of arrivals are seen, so
//! a handful of packets never reads as a huge rate. Arrival times are
//! untrusted: a packet older than the window is ignored, a clock that jumps
//! far back or forward restarts the window. Fixed size, O(1) per packet.

/// Width of one bucket, µs of receiver time.
pub const BUCKET_US: i64 = 25_000;
/// Buckets in the window (16 × 25 ms = 400 ms).
pub const BUCKETS: usize = 16;
/// No rate before the window covers this much arrival time.
pub const MIN_SPAN_US: i64 = 150_000;
const WINDOW_US: i64 = BUCKET_US * BUCKETS as i64;
/// An arrival this many windows behind the newest is a clock jump.
const JUMP_BACK_WINDOWS: i64 = 4;

#[derive(Debug)]
pub struct AckedRate {
    bytes: [u64; BUCKETS],
    /// Bucket index (arrival µs / BUCKET_US) of the newest bucket.
    head: Option<i64>,
    /// Newest arrival seen, and the first since the last reset.
    newest_us: i64,
    first_us: i64,
}

impl Default for AckedRate {
    fn default() -> Self {
        AckedRate {
            bytes: [0; BUCKETS],
            head: None,
            newest_us: 0,
            first_us: 0,
        }
    }
}

impl AckedRate {
    fn slot(index: i64) -> usize {
        index.rem_euclid(BUCKETS as i64) as usize
    }

    fn restart(&mut self, index: i64, arrival_us: i64) {
        self.bytes = [0; BUCKETS];
        self.head = Some(index);
        self.newest_us = arrival_us;
        self.first_us = arrival_us;
    }

    /// A packet of `bytes` received at `arrival_us` (receiver clock).
    pub fn on_packet(&mut self, arrival_us: i64, bytes: u32) {
        let index = arrival_us.div_euclid(BUCKET_US);
        let head = match self.head {
            None => {
                self.restart(index, arrival_us);
                index
            }
            Some(h) => h,
        };
        let ahead = index.saturating_sub(head);
        if ahead >= BUCKETS as i64 {
            // Nothing of the window survives: start afresh from here.
            self.restart(index, arrival_us);
        } else if ahead > 0 {
            for k in 1..=ahead {
                self.bytes[Self::slot(head + k)] = 0;
            }
            self.head = Some(index);
        } else if ahead <= -(BUCKETS as i64) {
            if ahead < -(BUCKETS as i64) * JUMP_BACK_WINDOWS {
                self.restart(index, arrival_us);
            } else {
                // A late report of an old packet: outside the window.
                return;
            }
        }
        let b = &mut self.bytes[Self::slot(index)];
        *b = b.saturating_add(u64::from(bytes));
        self.newest_us = self.newest_us.max(arrival_us);
        self.first_us = self.first_us.min(arrival_us);
    }

    /// Bits per second over the window, once it spans enough time.
    pub fn bps(&self) -> Option<f64> {
        let head = self.head?;
        let window_start = (head - BUCKETS as i64 + 1).saturating_mul(BUCKET_US);
        let span = self
            .newest_us
            .saturating_sub(window_start.max(self.first_us))
            .min(WINDOW_US);
        if span < MIN_SPAN_US {
            return None;
        }
        let total = self.bytes.iter().fold(0u64, |a, b| a.saturating_add(*b));
        Some(total as f64 * 8.0 * 1e6 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_rate() {
        let mut r = AckedRate::default();
        assert_eq!(r.bps(), None);
        // 1,250 bytes every 10 ms = 1 Mbit/s, from an arbitrary epoch.
        let epoch = 987_654_321_000;
        for i in 0..10 {
            r.on_packet(epoch + i * 10_000, 1250);
        }
        assert_eq!(r.bps(), None, "90 ms is too little");
        for i in 10..300 {
            r.on_packet(epoch + i * 10_000, 1250);
        }
        let bps = r.bps().unwrap_or(0.0);
        assert!((950_000.0..=1_050_000.0).contains(&bps), "{bps}");
    }

    #[test]
    fn follows_a_rate_change_within_a_window() {
        let mut r = AckedRate::default();
        let mut t = 0;
        for _ in 0..200 {
            r.on_packet(t, 1250);
            t += 10_000; // 1 Mbit/s
        }
        for _ in 0..100 {
            r.on_packet(t, 1250);
            t += 5_000; // 2 Mbit/s for 500 ms
        }
        let bps = r.bps().unwrap_or(0.0);
        assert!((1_900_000.0..=2_100_000.0).contains(&bps), "{bps}");
    }

    #[test]
    fn survives_clock_jumps() {
        let mut r = AckedRate::default();
        for i in 0..100 {
            r.on_packet(i * 10_000, 1250);
        }
        // An hour ahead: restarts, no rate until enough is seen again.
        r.on_packet(3_600_000_000, 1250);
        assert_eq!(r.bps(), None);
        for i in 1..100 {
            r.on_packet(3_600_000_000 + i * 10_000, 1250);
        }
        let bps = r.bps().unwrap_or(0.0);
        assert!((900_000.0..=1_100_000.0).contains(&bps), "{bps}");
        // A late old packet is ignored; far back restarts.
        r.on_packet(3_599_000_000, 1_000_000);
        assert!(r.bps().unwrap_or(0.0) < 1_100_000.0);
        r.on_packet(5, 1250);
        assert_eq!(r.bps(), None);
        // Extremes do not overflow.
        r.on_packet(i64::MAX, u32::MAX);
        r.on_packet(i64::MIN, u32::MAX);
        r.on_packet(0, u32::MAX);
        let _ = r.bps();
    }
}
