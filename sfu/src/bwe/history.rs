//! The ring of sent packets that TWCC feedback is matched against.
//!
//! Every datagram carrying a transport-wide sequence number is recorded here
//! when it is sent: send time, whole-datagram size and probe cluster. A
//! feedback report then names packets by their 16-bit wire sequence number;
//! [`SendHistory::report`] unwraps it against the newest sent number, finds
//! the slot (index = extended number masked by the capacity) and hands the
//! packet back exactly once. The ring is allocated once, at construction: no
//! allocation per packet.

use std::time::{Duration, Instant};

/// What the receiver has told us about one packet so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// A slot never written.
    Empty,
    /// Sent, not yet named in any feedback.
    Unreported,
    /// Reported lost (may still be reported received later).
    Lost,
    /// Reported received; later reports of it are ignored.
    Received,
}

/// One entry of the ring, 24 bytes: a subscriber's ring is most of what
/// its estimator holds (2,048 slots, 48 KiB), so it is kept small.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Microseconds from the ring's base instant.
    send_us: u64,
    /// The low 32 bits of the extended sequence number (the ring holds far
    /// fewer packets than 2^32, so they tell a slot's packet apart).
    ext_lo: u32,
    /// The probe cluster, if `has_probe`.
    probe: u32,
    /// Whole datagram, bytes (larger sizes are kept as 65,535).
    size: u16,
    status: Status,
    has_probe: bool,
}

/// A packet the feedback just told us about for the first time (or, for a
/// packet reported lost before, received after all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// Sequence number extended to 64 bits (monotonic over wraparounds).
    pub ext_seq: u64,
    pub send_time: Instant,
    /// Whole datagram, bytes.
    pub size: u32,
    pub probe: Option<u32>,
    /// It had been reported lost by an earlier feedback and now arrived: the
    /// loss statistics counted it already.
    pub was_reported_lost: bool,
}

/// Fixed-size ring of sent packets indexed by extended sequence number.
#[derive(Debug)]
pub struct SendHistory {
    slots: Box<[Slot]>,
    /// Send times are kept as microseconds from this instant.
    base: Instant,
    mask: u64,
    /// Extended number of the newest packet sent (by sequence order).
    newest: Option<u64>,
}

/// Extended numbers start this far above zero so that a sender whose
/// sequence numbers step backwards a little never goes below zero.
const EXT_BASE: u64 = 1 << 32;

impl SendHistory {
    /// A ring of `capacity` packets (rounded up to a power of two, at least 16).
    pub fn new(capacity: usize, now: Instant) -> SendHistory {
        let capacity = capacity.clamp(16, 1 << 20).next_power_of_two();
        let empty = Slot {
            send_us: 0,
            ext_lo: 0,
            probe: 0,
            size: 0,
            status: Status::Empty,
            has_probe: false,
        };
        SendHistory {
            slots: vec![empty; capacity].into_boxed_slice(),
            base: now,
            mask: capacity as u64 - 1,
            newest: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the ring holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// The extended number of the newest packet sent.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Records a sent packet and returns its extended sequence number. A
    /// number that steps backwards (a resend of an old number) is unwrapped
    /// to the nearest value and overwrites its slot.
    pub fn on_sent(&mut self, now: Instant, seq: u16, size: u32, probe: Option<u32>) -> u64 {
        let ext = match self.newest {
            None => EXT_BASE + u64::from(seq),
            Some(newest) => {
                let step = seq.wrapping_sub(newest as u16) as i16;
                newest.wrapping_add_signed(i64::from(step))
            }
        };
        if self.newest.is_none_or(|n| ext > n) {
            self.newest = Some(ext);
        }
        let send_us =
            u64::try_from(now.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX);
        let slot = &mut self.slots[(ext & self.mask) as usize];
        *slot = Slot {
            send_us,
            ext_lo: ext as u32,
            probe: probe.unwrap_or(0),
            size: u16::try_from(size).unwrap_or(u16::MAX),
            status: Status::Unreported,
            has_probe: probe.is_some(),
        };
        ext
    }

    /// Unwraps a wire number from feedback: the packet at or before the
    /// newest sent one with these low 16 bits.
    fn unwrap_reported(&self, seq: u16) -> Option<u64> {
        let newest = self.newest?;
        let back = u64::from((newest as u16).wrapping_sub(seq));
        newest.checked_sub(back)
    }

    /// Feedback names `seq` as received (`true`) or lost. Returns the packet
    /// if this report is news: the first report of it, or "received" after
    /// "lost". Unknown numbers (never sent, overwritten, outside the ring),
    /// repeated reports and "lost" after "received" give `None`.
    pub fn report(&mut self, seq: u16, received: bool) -> Option<SentPacket> {
        let ext = self.unwrap_reported(seq)?;
        let slot = &mut self.slots[(ext & self.mask) as usize];
        if slot.status == Status::Empty || slot.ext_lo != ext as u32 {
            return None;
        }
        let was_reported_lost = match (slot.status, received) {
            (Status::Empty | Status::Received, _) | (Status::Lost, false) => return None,
            (Status::Unreported, _) => false,
            (Status::Lost, true) => true,
        };
        slot.status = if received {
            Status::Received
        } else {
            Status::Lost
        };
        Some(SentPacket {
            ext_seq: ext,
            send_time: self.base + Duration::from_micros(slot.send_us),
            size: u32::from(slot.size),
            probe: slot.has_probe.then_some(slot.probe),
            was_reported_lost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait OrFail {
        fn or_fail(self) -> SentPacket;
    }
    impl OrFail for Option<SentPacket> {
        fn or_fail(self) -> SentPacket {
            match self {
                Some(p) => p,
                None => panic!("expected a packet"),
            }
        }
    }

    fn ms(t0: Instant, m: u64) -> Instant {
        t0 + Duration::from_millis(m)
    }

    #[test]
    fn a_slot_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn sizes_beyond_the_field_are_kept_as_its_largest() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(16, t0);
        h.on_sent(t0 + Duration::from_micros(1234), 1, 70_000, None);
        let p = h.report(1, true).or_fail();
        assert_eq!(p.size, 65_535);
        assert_eq!(p.send_time, t0 + Duration::from_micros(1234));
        // A send time before the ring's base is kept as its base.
        h.on_sent(t0 - Duration::from_millis(5), 2, 100, None);
        assert_eq!(h.report(2, true).or_fail().send_time, t0);
    }

    #[test]
    fn capacity_is_a_power_of_two() {
        let t0 = Instant::now();
        assert_eq!(SendHistory::new(4096, t0).capacity(), 4096);
        assert_eq!(SendHistory::new(5000, t0).capacity(), 8192);
        assert_eq!(SendHistory::new(0, t0).capacity(), 16);
    }

    #[test]
    fn matches_reports_across_the_u16_wrap() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(64, t0);
        let mut exts = Vec::new();
        for i in 0..20u16 {
            let seq = 65_530u16.wrapping_add(i);
            exts.push(h.on_sent(ms(t0, u64::from(i)), seq, 1000 + u32::from(i), None));
        }
        // Extended numbers keep increasing through the wrap.
        assert!(exts.windows(2).all(|w| w[1] == w[0] + 1));
        // Seq 3 was sent 9th after 65_530 (i = 9).
        let p = h.report(3, true).or_fail();
        assert_eq!(p.size, 1009);
        assert_eq!(p.send_time, ms(t0, 9));
        assert_eq!(p.ext_seq, exts[9]);
        let p = h.report(65_531, false).or_fail();
        assert_eq!(p.size, 1001);
    }

    #[test]
    fn a_packet_counts_once() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(64, t0);
        h.on_sent(t0, 10, 500, Some(7));
        let p = h.report(10, true).or_fail();
        assert_eq!(p.probe, Some(7));
        assert!(!p.was_reported_lost);
        assert_eq!(h.report(10, true), None);
        assert_eq!(h.report(10, false), None);

        h.on_sent(t0, 11, 500, None);
        assert!(h.report(11, false).is_some());
        assert_eq!(h.report(11, false), None);
        // Lost, then received after all: news once more, flagged.
        let p = h.report(11, true).or_fail();
        assert!(p.was_reported_lost);
        assert_eq!(h.report(11, true), None);
    }

    #[test]
    fn ignores_numbers_never_sent_or_overwritten() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(16, t0);
        assert_eq!(h.report(0, true), None, "nothing sent yet");
        for seq in 100..140u16 {
            h.on_sent(t0, seq, 100, None);
        }
        // Ahead of the newest sent: unwraps to 65k back, never written.
        assert_eq!(h.report(140, true), None);
        assert_eq!(h.report(5000, true), None);
        // Overwritten by a later packet (ring of 16 holds 124..=139).
        assert_eq!(h.report(110, true), None);
        assert!(h.report(124, true).is_some());
        assert!(h.report(139, true).is_some());
    }

    #[test]
    fn survives_a_long_run_of_wraps() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(4096, t0);
        let mut seq = 0u16;
        for _ in 0..200_000u32 {
            h.on_sent(t0, seq, 1200, None);
            seq = seq.wrapping_add(1);
        }
        let newest = seq.wrapping_sub(1);
        assert!(h.report(newest, true).is_some());
        assert!(h.report(newest.wrapping_sub(4095), true).is_some());
        assert_eq!(h.report(newest.wrapping_sub(4096), true), None);
    }
}
