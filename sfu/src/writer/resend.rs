//! Answering NACKs: the cache of one outgoing video stream's sent packets,
//! the sequence numbers a generic NACK asks for (RFC 4585 6.2.1), their
//! unwrapping, and the RFC 4588 retransmission packet sent on the stream's
//! RTX SSRC.
//!
//! ## Eviction
//!
//! The cache is a ring of a power-of-two number of slots, allocated at
//! construction; a packet's slot is its extended sequence number masked by
//! the capacity. A packet leaves the cache when a packet `capacity` numbers
//! later is inserted in its slot (the ring wraps), and is no longer
//! returned once older than the cache's maximum age (its payload stays
//! referenced until the slot is reused or [`ResendCache::clear`]). A lookup
//! checks the slot's full extended number, so a number whose slot holds a
//! different packet is a miss, never the wrong packet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::WriteError;
use super::header::{ExtIds, ExtValues, RtpHeader, header_size, write_header};

/// The least time between two resends of one packet, whatever the round
/// trip: repeated NACKs of a packet within a round trip were sent before
/// the first resend could arrive.
pub const RESEND_MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The largest cache (the ring is indexed by numbers unwrapped from 16 bits:
/// more than half their range could not be told apart).
pub const MAX_CAPACITY: usize = 1 << 15;

/// One sent packet, as kept to be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPacket {
    /// The stream's own sequence number, extended to 64 bits.
    pub seq: u64,
    pub ts: u32,
    pub pt: u8,
    pub marker: bool,
    /// The payload, shared with every other subscriber's copy.
    pub payload: Arc<[u8]>,
    /// The audio level extension's value, for streams that carry one.
    pub audio_level: Option<(i8, bool)>,
    pub sent_at: Instant,
}

/// A stored packet and when it was last resent.
#[derive(Debug)]
struct Slot {
    packet: SentPacket,
    last_resent: Option<Instant>,
}

/// The sent packets of one outgoing stream, kept for NACKs.
#[derive(Debug)]
pub struct ResendCache {
    slots: Box<[Option<Slot>]>,
    mask: u64,
    max_age: Duration,
    newest: Option<u64>,
}

impl ResendCache {
    /// A cache of `capacity` packets (rounded up to a power of two, at most
    /// [`MAX_CAPACITY`]; size it with [`crate::nack::nack_cache_packets`])
    /// that returns packets up to `max_age` old (the NACK window,
    /// [`crate::nack::nack_window`]).
    pub fn new(capacity: usize, max_age: Duration) -> ResendCache {
        let capacity = capacity.clamp(1, MAX_CAPACITY).next_power_of_two();
        ResendCache {
            slots: (0..capacity).map(|_| None).collect(),
            mask: capacity as u64 - 1,
            max_age,
            newest: None,
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes this cache holds, inline and on the heap, besides the payloads
    /// it shares with every other subscriber's copy.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<ResendCache>() + std::mem::size_of_val(&*self.slots)
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The extended number of the newest packet inserted: what a NACK's
    /// 16-bit numbers are unwrapped against ([`extend_seq`]).
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Stores a sent packet in its slot, replacing the one there. A packet
    /// older than the one its slot holds is not stored.
    pub fn insert(&mut self, packet: SentPacket) {
        let seq = packet.seq;
        let slot = &mut self.slots[(seq & self.mask) as usize];
        if slot.as_ref().is_some_and(|s| s.packet.seq > seq) {
            return;
        }
        *slot = Some(Slot {
            packet,
            last_resent: None,
        });
        if self.newest.is_none_or(|n| seq > n) {
            self.newest = Some(seq);
        }
    }

    fn slot(&self, seq: u64, now: Instant) -> Option<&Slot> {
        let slot = self.slots[(seq & self.mask) as usize].as_ref()?;
        let fresh = now.saturating_duration_since(slot.packet.sent_at) <= self.max_age;
        (slot.packet.seq == seq && fresh).then_some(slot)
    }

    /// The packet numbered `seq`, if stored and at most `max_age` old.
    pub fn get(&self, seq: u64, now: Instant) -> Option<&SentPacket> {
        self.slot(seq, now).map(|s| &s.packet)
    }

    /// The packet numbered `seq` to send again now, as [`ResendCache::get`],
    /// unless it was resent less than `max(rtt, RESEND_MIN_INTERVAL)` ago;
    /// marks it resent at `now`.
    pub fn take_for_resend(
        &mut self,
        seq: u64,
        now: Instant,
        rtt: Duration,
    ) -> Option<&SentPacket> {
        let last = self.slot(seq, now)?.last_resent;
        let hold = rtt.max(RESEND_MIN_INTERVAL);
        if last.is_some_and(|t| now.saturating_duration_since(t) < hold) {
            return None;
        }
        let slot = self.slots[(seq & self.mask) as usize].as_mut()?;
        slot.last_resent = Some(now);
        Some(&slot.packet)
    }

    /// Gives the cache `capacity` slots (rounded as [`ResendCache::new`]
    /// does) and `max_age`, keeping the newest packets that fit: the NACK
    /// window of a subscriber changes with its round trip while packets it
    /// may still ask for are in the cache. Allocates the new ring (a change
    /// of round trip, not a packet).
    pub fn resize(&mut self, capacity: usize, max_age: Duration) {
        let mut next = ResendCache::new(capacity, max_age);
        let mut kept: Vec<Slot> = self.slots.iter_mut().filter_map(Option::take).collect();
        kept.sort_unstable_by_key(|s| s.packet.seq);
        for slot in kept {
            let seq = slot.packet.seq;
            next.slots[(seq & next.mask) as usize] = Some(slot);
            next.newest = Some(next.newest.map_or(seq, |n: u64| n.max(seq)));
        }
        *self = next;
    }

    /// Drops every packet (and its payload reference).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.newest = None;
    }
}

/// The sequence numbers one generic NACK entry asks for: `pid`, then
/// `pid + i + 1` for each bit `i` (least significant first) set in `blp`,
/// wrapping past 65535.
pub fn nack_seqs(pid: u16, blp: u16) -> impl Iterator<Item = u16> {
    std::iter::once(pid).chain(
        (0..16u16)
            .filter(move |i| blp & (1 << i) != 0)
            .map(move |i| pid.wrapping_add(i + 1)),
    )
}

/// Unwraps a 16-bit sequence number against the newest extended one: the
/// extended number with these low 16 bits nearest to `last_ext` (half a
/// range behind counts as behind). Never below 0: near the start, a number
/// that would unwrap below 0 is taken in the first cycle; never above
/// `u64::MAX` either.
pub fn extend_seq(last_ext: u64, seq16: u16) -> u64 {
    let step = seq16.wrapping_sub(last_ext as u16) as i16;
    let mut ext = i128::from(last_ext) + i128::from(step);
    if ext < 0 {
        ext += 1 << 16;
    } else if ext > i128::from(u64::MAX) {
        ext -= 1 << 16;
    }
    ext as u64
}

/// Length of the original sequence number in front of an RTX payload.
pub const OSN_LEN: usize = 2;

/// The RTX stream (RFC 4588, SSRC-multiplexed) paired with one outgoing
/// video stream: its own SSRC, payload type and sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtxStream {
    ssrc: u32,
    pt: u8,
    next_seq: u16,
}

impl RtxStream {
    /// The RTX stream of SSRC `ssrc` and payload type `pt` (the one
    /// negotiated with `apt=` the original's), first numbered `first_seq`.
    pub fn new(ssrc: u32, pt: u8, first_seq: u16) -> RtxStream {
        RtxStream {
            ssrc,
            pt,
            next_seq: first_seq,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn pt(&self) -> u8 {
        self.pt
    }

    /// The sequence number the next retransmission gets.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Writes the retransmission of `original` into `buf`: a header with the
    /// RTX SSRC, payload type and next RTX sequence number, the original's
    /// timestamp and marker, the extensions of `vals` (a fresh
    /// transport-wide number, usually), then the original sequence number's
    /// low 16 bits (big-endian) and the original payload. Returns the
    /// packet's length, to be sealed and sent. On error nothing is written
    /// and the RTX sequence number does not advance.
    pub fn write_rtx(
        &mut self,
        buf: &mut [u8],
        original: &SentPacket,
        ids: &ExtIds,
        vals: &ExtValues,
    ) -> Result<usize, WriteError> {
        let h = RtpHeader {
            pt: self.pt,
            seq: self.next_seq,
            ts: original.ts,
            ssrc: self.ssrc,
            marker: original.marker,
        };
        let header = header_size(&h, ids, vals)?;
        let needed = header + OSN_LEN + original.payload.len();
        if buf.len() < needed {
            return Err(WriteError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let written = write_header(buf, &h, ids, vals)?;
        buf[written..written + OSN_LEN].copy_from_slice(&(original.seq as u16).to_be_bytes());
        buf[written + OSN_LEN..needed].copy_from_slice(&original.payload);
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(needed)
    }

    /// Writes a padding-only packet on the RTX stream, as probes of the
    /// send-side estimator are sent (`crate::bwe::ProbeRequest`): a header
    /// with the padding bit, the RTX SSRC and payload type, the next RTX
    /// sequence number and timestamp `ts` (the stream's latest), the
    /// extensions of `vals` (its transport-wide number), then `padding`
    /// bytes (1..=255, RFC 3550 5.1: zeros, the count last) and no payload.
    /// Returns the packet's length. On error nothing is written and the
    /// sequence number does not advance.
    pub fn write_padding(
        &mut self,
        buf: &mut [u8],
        ts: u32,
        padding: u8,
        ids: &ExtIds,
        vals: &ExtValues,
    ) -> Result<usize, WriteError> {
        if padding == 0 {
            return Err(WriteError::EmptyPadding);
        }
        let h = RtpHeader {
            pt: self.pt,
            seq: self.next_seq,
            ts,
            ssrc: self.ssrc,
            marker: false,
        };
        let header = header_size(&h, ids, vals)?;
        let needed = header + usize::from(padding);
        if buf.len() < needed {
            return Err(WriteError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let written = write_header(buf, &h, ids, vals)?;
        buf[0] |= 0x20;
        buf[written..needed - 1].fill(0);
        buf[needed - 1] = padding;
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(needed)
    }
}
