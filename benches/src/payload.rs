//! Synthetic media: packet sizes, rates and keyframe structure of real
//! VP8 and Opus, with the sender's clock embedded in every payload.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Largest RTP payload written, so that a packet with its RTP header,
/// extensions and SRTP tag stays at or under 1200 bytes.
pub const MAX_PAYLOAD: usize = 1160;

/// Where the send timestamp sits in every payload (after the VP8 descriptor
/// and keyframe header), preceded by [`MAGIC`].
pub const STAMP_AT: usize = 16;
pub const MAGIC: [u8; 2] = *b"CV";

/// Opus at 32 kbit/s in 20 ms packets: 80 bytes.
pub const OPUS_PAYLOAD: usize = 80;
pub const OPUS_INTERVAL: Duration = Duration::from_millis(20);

/// How much larger a keyframe is than an average delta frame.
pub const KEYFRAME_FACTOR: u64 = 5;

/// The process-wide clock origin: publishers and subscribers live in one
/// process, so their stamps compare directly.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`].
pub fn stamp(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// Reads the send stamp of a payload written by this generator.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let s = payload.get(STAMP_AT..STAMP_AT + 10)?;
    if s[..2] != MAGIC {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[2..]);
    Some(u64::from_be_bytes(b))
}

/// Writes a new send stamp into a payload made by this generator (the
/// clock at the moment it is handed to str0m).
pub fn restamp(payload: &mut [u8], at: Instant) {
    put_stamp(payload, at);
}

fn put_stamp(payload: &mut [u8], at: Instant) {
    if let Some(s) = payload.get_mut(STAMP_AT..STAMP_AT + 10) {
        s[..2].copy_from_slice(&MAGIC);
        s[2..].copy_from_slice(&stamp(at).to_be_bytes());
    }
}

/// A video encoder's output shape: frame sizes at a bitrate, a frame rate
/// and a keyframe interval.
#[derive(Debug, Clone, Copy)]
pub struct VideoShape {
    pub bitrate_bps: u64,
    pub fps: u32,
    pub keyframe_interval: Duration,
    pub width: u16,
    pub height: u16,
}

impl VideoShape {
    /// Bytes of a delta frame and of a keyframe, so that one keyframe and
    /// the delta frames up to the next average out at the bitrate.
    pub fn frame_bytes(&self) -> (usize, usize) {
        let frames =
            (u64::from(self.fps) * self.keyframe_interval.as_millis() as u64 / 1000).max(1);
        let bytes = self.bitrate_bps * self.keyframe_interval.as_millis() as u64 / 8000;
        let delta = bytes / (frames - 1 + KEYFRAME_FACTOR);
        (delta as usize, (delta * KEYFRAME_FACTOR) as usize)
    }

    pub fn frame_interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps.max(1)))
    }

    /// The RTP payloads of one frame (VP8 payload descriptor with a 15-bit
    /// PictureID; the first packet of a keyframe carries a real keyframe
    /// header with the dimensions), each stamped with `now`.
    pub fn frame(&self, keyframe: bool, picture_id: u16, now: Instant) -> Vec<Vec<u8>> {
        let (delta, key) = self.frame_bytes();
        let size = if keyframe { key } else { delta }.max(1);
        let count = size.div_ceil(MAX_PAYLOAD);
        let per = size.div_ceil(count);
        let pid = (picture_id & 0x7fff) | 0x8000;
        (0..count)
            .map(|i| {
                let mut p = Vec::with_capacity(per.max(STAMP_AT + 10));
                // X and S (start of partition on the first packet), I, M+PictureID.
                p.push(if i == 0 { 0x90 } else { 0x80 });
                p.push(0x80);
                p.extend_from_slice(&pid.to_be_bytes());
                if i == 0 {
                    if keyframe {
                        let [w0, w1] = self.width.to_le_bytes();
                        let [h0, h1] = self.height.to_le_bytes();
                        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]);
                    } else {
                        p.extend_from_slice(&[0x11, 0x02, 0x00]);
                    }
                }
                p.resize(per.max(STAMP_AT + 10), (picture_id % 251) as u8);
                put_stamp(&mut p, now);
                p
            })
            .collect()
    }
}

/// One Opus packet (a SILK/CELT TOC byte, then filler), stamped with `now`.
pub fn opus_packet(now: Instant) -> Vec<u8> {
    let mut p = vec![0x78u8; OPUS_PAYLOAD];
    put_stamp(&mut p, now);
    p
}

/// Whether a received video payload starts a keyframe.
pub fn is_keyframe(payload: &[u8]) -> bool {
    convene_media::vp8::is_keyframe(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(bps: u64) -> VideoShape {
        VideoShape {
            bitrate_bps: bps,
            fps: 30,
            keyframe_interval: Duration::from_secs(3),
            width: 1280,
            height: 720,
        }
    }

    #[test]
    fn frames_average_to_the_bitrate_and_fit_the_mtu() {
        let s = shape(2_500_000);
        let now = Instant::now();
        let mut bytes = 0usize;
        for f in 0..90u16 {
            for p in s.frame(f == 0, f, now) {
                assert!(p.len() <= MAX_PAYLOAD);
                bytes += p.len();
            }
        }
        let bps = bytes as f64 * 8.0 / 3.0;
        assert!((bps - 2_500_000.0).abs() / 2_500_000.0 < 0.02, "{bps}");
    }

    #[test]
    fn keyframes_are_recognised_and_stamped() {
        let s = shape(500_000);
        let now = Instant::now();
        let key = s.frame(true, 7, now);
        let delta = s.frame(false, 8, now);
        assert!(is_keyframe(&key[0]));
        assert!(!is_keyframe(&delta[0]));
        assert!(key.len() > delta.len() || key[0].len() > delta[0].len());
        assert_eq!(read_stamp(&key[0]), Some(stamp(now)));
        assert_eq!(read_stamp(&opus_packet(now)), Some(stamp(now)));
        assert_eq!(opus_packet(now).len(), 80);
    }
}
