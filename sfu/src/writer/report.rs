//! Sender reports of one outgoing stream (RFC 3550 6.4.1): the packet and
//! octet counts, the RTP timestamp matching a wallclock (NTP) time, and the
//! compound SR + SDES (CNAME) packet that carries them. Receivers use the
//! NTP/RTP pair to synchronise a sender's audio and video and the counts
//! for their statistics.

use std::time::{Duration, Instant};

use super::WriteError;

/// RTCP packet types.
const PT_SR: u8 = 200;
const PT_SDES: u8 = 202;
/// SDES item type of the CNAME.
const SDES_CNAME: u8 = 1;
/// Length of an SR without report blocks: header, SSRC, sender info.
pub const SR_LEN: usize = 28;
/// Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01 (Unix's).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// What the sender reports about one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp: seconds since 1900 in the high 32 bits, the fraction
    /// in the low 32.
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_ts: u32,
    /// Packets sent since the stream began (wrapping).
    pub packets: u32,
    /// Payload octets sent since the stream began (wrapping): without
    /// headers and padding.
    pub octets: u32,
}

/// The send-side bookkeeping of one outgoing stream, fed every packet sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderClock {
    packets: u32,
    octets: u32,
    /// When the newest timestamp was first sent, and that timestamp.
    anchor: Option<(Instant, u32)>,
}

impl SenderClock {
    pub fn new() -> SenderClock {
        SenderClock::default()
    }

    /// A packet of the stream was sent at `now` with RTP timestamp `ts` and
    /// `payload_len` payload bytes. The timestamp is tied to the time of
    /// the first packet sent with it (the packets of one video frame leave
    /// over a few milliseconds; the first is nearest the frame's capture).
    pub fn on_sent(&mut self, now: Instant, ts: u32, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        if self.anchor.is_none_or(|(_, last)| last != ts) {
            self.anchor = Some((now, ts));
        }
    }

    /// Packets counted so far (wrapping).
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Payload octets counted so far (wrapping).
    pub fn octets(&self) -> u32 {
        self.octets
    }

    /// The sender information for a report at `now`, whose wallclock is
    /// `now_ntp`: the newest timestamp extrapolated to `now` at
    /// `clock_rate` Hz (wrapping), rounded to the nearest tick. `None`
    /// before the first packet.
    pub fn report(&self, now: Instant, now_ntp: u64, clock_rate: u32) -> Option<SenderInfo> {
        let (at, ts) = self.anchor?;
        let ticks = |d: Duration| -> u32 {
            let t = (d.as_nanos() * u128::from(clock_rate) + 500_000_000) / 1_000_000_000;
            t as u32 // modulo 2^32, as the timestamp wraps
        };
        let rtp_ts = if now >= at {
            ts.wrapping_add(ticks(now - at))
        } else {
            ts.wrapping_sub(ticks(at - now))
        };
        Some(SenderInfo {
            ntp: now_ntp,
            rtp_ts,
            packets: self.packets,
            octets: self.octets,
        })
    }
}

/// The NTP timestamp of a time given as the duration since the Unix epoch
/// (`SystemTime::duration_since(UNIX_EPOCH)`): seconds since 1900 in the
/// high 32 bits (modulo 2^32: era 1 from 2036 on, as RFC 5905 has it), the
/// fraction of a second in the low 32.
pub fn ntp_from_unix(since_epoch: Duration) -> u64 {
    let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS) as u32;
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (u64::from(secs) << 32) | frac
}

/// The length of the SDES packet carrying a CNAME of `cname_len` bytes:
/// header, SSRC, item type and length, the CNAME, then at least one zero
/// byte (the end of the item list) up to a 32-bit boundary.
fn sdes_len(cname_len: usize) -> usize {
    4 + (4 + 2 + cname_len + 1).next_multiple_of(4)
}

/// The length [`write_sender_report`] writes for a CNAME of `cname_len`
/// bytes.
pub fn sender_report_len(cname_len: usize) -> usize {
    SR_LEN + sdes_len(cname_len)
}

/// Writes a compound RTCP packet into `buf`: a sender report of `ssrc`
/// without report blocks, then an SDES packet whose one chunk holds its
/// CNAME. Returns its length, to be sealed (SRTCP) and sent. On error
/// nothing is written.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    cname: &[u8],
) -> Result<usize, WriteError> {
    if cname.is_empty() {
        return Err(WriteError::EmptyCname);
    }
    if cname.len() > 255 {
        return Err(WriteError::CnameTooLong(cname.len()));
    }
    let sdes = sdes_len(cname.len());
    let needed = SR_LEN + sdes;
    let available = buf.len();
    let Some(out) = buf.get_mut(..needed) else {
        return Err(WriteError::BufferTooSmall { needed, available });
    };
    let (sr, sd) = out.split_at_mut(SR_LEN);

    // SR: V=2, P=0, RC=0; length in 32-bit words minus one.
    sr[0] = 0x80;
    sr[1] = PT_SR;
    sr[2..4].copy_from_slice(&((SR_LEN / 4 - 1) as u16).to_be_bytes());
    sr[4..8].copy_from_slice(&ssrc.to_be_bytes());
    sr[8..16].copy_from_slice(&info.ntp.to_be_bytes());
    sr[16..20].copy_from_slice(&info.rtp_ts.to_be_bytes());
    sr[20..24].copy_from_slice(&info.packets.to_be_bytes());
    sr[24..28].copy_from_slice(&info.octets.to_be_bytes());

    // SDES: V=2, P=0, SC=1; one chunk: SSRC, CNAME item, null items to a
    // 32-bit boundary. At most 4 + 264 bytes: the word count fits 16 bits.
    sd[0] = 0x81;
    sd[1] = PT_SDES;
    sd[2..4].copy_from_slice(&((sdes / 4 - 1) as u16).to_be_bytes());
    sd[4..8].copy_from_slice(&ssrc.to_be_bytes());
    sd[8] = SDES_CNAME;
    sd[9] = cname.len() as u8;
    sd[10..10 + cname.len()].copy_from_slice(cname);
    sd[10 + cname.len()..].fill(0);
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdes_padding_always_ends_the_item_list() {
        for n in 1..=255 {
            let len = sdes_len(n);
            assert_eq!(len % 4, 0);
            let zeros = len - (4 + 4 + 2 + n);
            assert!((1..=4).contains(&zeros), "cname {n}: {zeros} zero bytes");
        }
    }
}
