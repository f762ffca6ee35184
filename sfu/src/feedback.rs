//! Reading a subscriber's RTCP feedback without allocating: the packets of
//! a compound RTCP datagram (RFC 3550 6.1), transport-wide congestion
//! control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01,
//! section 3.1) streamed straight into [`crate::bwe::SendSideBwe`], generic
//! NACKs (RFC 4585 6.2.1), PLI and FIR (RFC 4585 6.3.1, RFC 5104 4.3.1).
//! For a forwarding write path of Convene's own, which reads the feedback
//! str0m would otherwise consume.
//!
//! Written here rather than taken from str0m (whose RTCP reader is
//! crate-private, and whose public TWCC iterator panics on a report whose
//! deltas disagree with its statuses) or the `rtcp` crate (which builds a
//! boxed packet and vectors per report): every reader here borrows the
//! datagram, stops at the first inconsistency, and never panics (fuzzed:
//! `fuzz/fuzz_targets/rtcp_feedback.rs`).

/// RTCP packet types (RFC 3550, RFC 4585).
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
/// Feedback message types.
const FMT_NACK: u8 = 1;
const FMT_TWCC: u8 = 15;
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;

/// One packet of a compound RTCP datagram: its type, the 5-bit count or
/// feedback type, and what follows the 4-byte header (padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    pub pt: u8,
    pub count: u8,
    pub body: &'a [u8],
}

/// The packets of a compound RTCP datagram (decrypted), in order. Ends at
/// the end of the datagram or at the first packet whose header or length
/// is not valid.
pub fn rtcp_packets(datagram: &[u8]) -> RtcpPackets<'_> {
    RtcpPackets { rest: datagram }
}

/// Iterator of [`rtcp_packets`].
#[derive(Debug, Clone)]
pub struct RtcpPackets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpPackets<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<RtcpPacket<'a>> {
        let b = self.rest;
        if b.len() < 4 || b[0] >> 6 != 2 {
            self.rest = &[];
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([b[2], b[3]])) + 1) * 4;
        if len > b.len() {
            self.rest = &[];
            return None;
        }
        let mut end = len;
        if b[0] & 0x20 != 0 {
            // Padding: its count is the last byte, within the packet body.
            let pad = usize::from(b[len - 1]);
            if pad == 0 || pad > len - 4 {
                self.rest = &[];
                return None;
            }
            end = len - pad;
        }
        self.rest = &b[len..];
        Some(RtcpPacket {
            pt: b[1],
            count: b[0] & 0x1f,
            body: &b[4..end],
        })
    }
}

/// What the write path acts on, read from one RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback<'a> {
    /// Transport-wide congestion control feedback.
    TransportCc(TwccReport<'a>),
    /// Generic NACKs for `media_ssrc`: iterate with [`nacked`].
    Nack { media_ssrc: u32, fci: &'a [u8] },
    /// Picture loss: the subscriber wants a keyframe.
    Pli { media_ssrc: u32 },
    /// Full intra request: the SSRCs asked for are in `fci` (8 bytes an
    /// entry: SSRC, sequence number, 3 reserved).
    Fir { fci: &'a [u8] },
    /// A sender or receiver report (round trip and loss), not decoded here.
    Report,
    /// Anything else (SDES, BYE, REMB, application feedback...).
    Other,
}

impl<'a> Feedback<'a> {
    /// What `p` is; a feedback packet too short for its fixed part is
    /// `Other`.
    pub fn of(p: RtcpPacket<'a>) -> Feedback<'a> {
        let media_ssrc = || {
            p.body
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match (p.pt, p.count) {
            (PT_RTPFB, FMT_TWCC) => TwccReport::parse(p.body)
                .map(Feedback::TransportCc)
                .unwrap_or(Feedback::Other),
            (PT_RTPFB, FMT_NACK) => match media_ssrc() {
                Some(media_ssrc) => Feedback::Nack {
                    media_ssrc,
                    fci: &p.body[8..],
                },
                None => Feedback::Other,
            },
            (PT_PSFB, FMT_PLI) => match media_ssrc() {
                Some(media_ssrc) => Feedback::Pli { media_ssrc },
                None => Feedback::Other,
            },
            (PT_PSFB, FMT_FIR) if p.body.len() >= 8 => Feedback::Fir { fci: &p.body[8..] },
            (PT_SR | PT_RR, _) => Feedback::Report,
            _ => Feedback::Other,
        }
    }
}

/// The sequence numbers a generic NACK's FCI asks for: each 4-byte entry
/// is a packet id and a bitmask of the 16 after it
/// ([`crate::writer::nack_seqs`]).
pub fn nacked(fci: &[u8]) -> impl Iterator<Item = u16> + '_ {
    fci.chunks_exact(4).flat_map(|e| {
        crate::writer::nack_seqs(
            u16::from_be_bytes([e[0], e[1]]),
            u16::from_be_bytes([e[2], e[3]]),
        )
    })
}

/// The SSRCs a FIR's entries ask keyframes of.
pub fn fir_ssrcs(fci: &[u8]) -> impl Iterator<Item = u32> + '_ {
    fci.chunks_exact(8)
        .map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
}

/// Microseconds of one reference-time unit and of one receive-delta unit.
const REFERENCE_UNIT_US: i64 = 64_000;
const DELTA_UNIT_US: i64 = 250;

/// One transport-wide feedback report, borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccReport<'a> {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    pub base_seq: u16,
    pub status_count: u16,
    /// 24 bits, in units of 64 ms, on the receiver's clock (wraps).
    pub reference_time: u32,
    pub feedback_count: u8,
    /// Packet status chunks, then receive deltas.
    rest: &'a [u8],
}

impl<'a> TwccReport<'a> {
    /// Reads a transport-wide feedback packet's body (after the 4-byte
    /// RTCP header); `None` if it is shorter than its fixed part.
    pub fn parse(body: &'a [u8]) -> Option<TwccReport<'a>> {
        if body.len() < 16 {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        Some(TwccReport {
            sender_ssrc: u32_at(0),
            media_ssrc: u32_at(4),
            base_seq: u16::from_be_bytes([body[8], body[9]]),
            status_count: u16::from_be_bytes([body[10], body[11]]),
            reference_time: u32::from_be_bytes([0, body[12], body[13], body[14]]),
            feedback_count: body[15],
            rest: &body[16..],
        })
    }

    /// Every reported packet in sequence order: its transport-wide
    /// sequence number and, if received, its arrival in microseconds on
    /// the receiver's clock, counted from `reference_us` (the report's
    /// reference time as [`ReferenceClock::unwrap`] gives it). Ends early,
    /// without error, where the report is inconsistent (chunks that do not
    /// cover the count, missing deltas).
    pub fn packets(&self, reference_us: i64) -> TwccPackets<'a> {
        // The deltas start after the chunks that cover the status count.
        let mut covered = 0u32;
        let mut chunks_len = 0;
        let want = u32::from(self.status_count);
        while covered < want {
            let Some(c) = self.rest.get(chunks_len..chunks_len + 2) else {
                // Not enough chunks: report nothing.
                return TwccPackets::empty(self.base_seq);
            };
            covered += Chunk::of(u16::from_be_bytes([c[0], c[1]])).len();
            chunks_len += 2;
        }
        TwccPackets {
            chunks: &self.rest[..chunks_len],
            deltas: &self.rest[chunks_len..],
            chunk: None,
            seq: self.base_seq,
            left: self.status_count,
            at: reference_us,
        }
    }
}

/// The status of one reported packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    NotReceived,
    SmallDelta,
    LargeDelta,
}

impl Status {
    fn of(symbol: u16) -> Status {
        match symbol {
            1 => Status::SmallDelta,
            2 => Status::LargeDelta,
            // 0 is "not received"; 3 is reserved and carries no delta.
            _ => Status::NotReceived,
        }
    }
}

/// A packet status chunk being read: how many statuses are left in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Run { status: Status, left: u16 },
    OneBit { bits: u16, left: u16 },
    TwoBit { bits: u16, left: u16 },
}

impl Chunk {
    fn of(word: u16) -> Chunk {
        if word & 0x8000 == 0 {
            Chunk::Run {
                status: Status::of((word >> 13) & 0b11),
                left: word & 0x1fff,
            }
        } else if word & 0x4000 == 0 {
            Chunk::OneBit {
                bits: word & 0x3fff,
                left: 14,
            }
        } else {
            Chunk::TwoBit {
                bits: word & 0x3fff,
                left: 7,
            }
        }
    }

    fn len(&self) -> u32 {
        match *self {
            Chunk::Run { left, .. } | Chunk::OneBit { left, .. } | Chunk::TwoBit { left, .. } => {
                u32::from(left)
            }
        }
    }

    /// The next status of the chunk, if any is left.
    fn take(&mut self) -> Option<Status> {
        match self {
            Chunk::Run { status, left } => {
                *left = left.checked_sub(1)?;
                Some(*status)
            }
            Chunk::OneBit { bits, left } => {
                *left = left.checked_sub(1)?;
                Some(if (*bits >> *left) & 1 == 1 {
                    Status::SmallDelta
                } else {
                    Status::NotReceived
                })
            }
            Chunk::TwoBit { bits, left } => {
                *left = left.checked_sub(1)?;
                Some(Status::of((*bits >> (2 * *left)) & 0b11))
            }
        }
    }
}

/// Iterator of [`TwccReport::packets`].
#[derive(Debug, Clone)]
pub struct TwccPackets<'a> {
    chunks: &'a [u8],
    deltas: &'a [u8],
    chunk: Option<Chunk>,
    seq: u16,
    left: u16,
    at: i64,
}

impl<'a> TwccPackets<'a> {
    fn empty(seq: u16) -> TwccPackets<'a> {
        TwccPackets {
            chunks: &[],
            deltas: &[],
            chunk: None,
            seq,
            left: 0,
            at: 0,
        }
    }

    fn next_status(&mut self) -> Option<Status> {
        loop {
            if let Some(s) = self.chunk.as_mut().and_then(Chunk::take) {
                return Some(s);
            }
            let (c, rest) = self.chunks.split_first_chunk::<2>()?;
            self.chunks = rest;
            self.chunk = Some(Chunk::of(u16::from_be_bytes(*c)));
        }
    }
}

impl Iterator for TwccPackets<'_> {
    type Item = (u16, Option<i64>);

    fn next(&mut self) -> Option<(u16, Option<i64>)> {
        if self.left == 0 {
            return None;
        }
        let status = self.next_status();
        let arrival = match status {
            Some(Status::NotReceived) => None,
            Some(Status::SmallDelta) => {
                let Some((d, rest)) = self.deltas.split_first() else {
                    self.left = 0;
                    return None;
                };
                self.deltas = rest;
                self.at += i64::from(*d) * DELTA_UNIT_US;
                Some(self.at)
            }
            Some(Status::LargeDelta) => {
                let Some((d, rest)) = self.deltas.split_first_chunk::<2>() else {
                    self.left = 0;
                    return None;
                };
                self.deltas = rest;
                self.at += i64::from(i16::from_be_bytes(*d)) * DELTA_UNIT_US;
                Some(self.at)
            }
            None => {
                self.left = 0;
                return None;
            }
        };
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.left -= 1;
        Some((seq, arrival))
    }
}

/// Unwraps the 24-bit reference times of one receiver's reports into one
/// timeline (microseconds): each report's is taken as the one nearest the
/// previous report's.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceClock {
    last: Option<i64>,
}

impl ReferenceClock {
    /// The reference time of a report in microseconds.
    pub fn unwrap(&mut self, reference_time: u32) -> i64 {
        const SPAN: i64 = 1 << 24;
        let raw = i64::from(reference_time & 0x00ff_ffff);
        let units = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(SPAN);
                [base - SPAN + raw, base + raw, base + SPAN + raw]
                    .into_iter()
                    .min_by_key(|c| (c - last).abs())
                    .unwrap_or(raw)
            }
        };
        self.last = Some(units);
        units * REFERENCE_UNIT_US
    }
}

#[cfg(test)]
mod tests;
