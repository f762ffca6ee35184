//! What goes to the caller: one RTP stream (one SSRC, sequence and clock)
//! whatever plays on it — a voice prompt while the PIN is asked, the room's
//! mix once the caller joined. Each 20 ms arrive as 48 kHz samples and leave
//! in the call's codec: averaged down to 8 kHz as G.711, or one mono Opus
//! frame.

use super::media::g711_encode;
use super::sdp::Codec;

/// Samples of 20 ms at 48 kHz (one Opus frame, one mix).
pub const FRAME: usize = 960;
/// Samples of 20 ms at 8 kHz (one G.711 packet).
pub const G711_FRAME: usize = 160;

/// The 48 kHz samples between the last 8 kHz sample and `s` (linear
/// interpolation, `s` itself last); `last` becomes `s`.
pub fn upsample6(last: &mut i16, s: i16) -> [i16; 6] {
    let (a, d) = (i32::from(*last), i32::from(s) - i32::from(*last));
    *last = s;
    std::array::from_fn(|k| (a + d * (k as i32 + 1) / 6) as i16)
}

/// The caller's RTP stream.
pub struct ToCaller {
    codec: Codec,
    seq: u16,
    ts: u32,
    ssrc: u32,
    /// Made on the first Opus packet.
    opus: Option<opus::Encoder>,
    out: Vec<u8>,
}

impl ToCaller {
    pub fn new(codec: Codec) -> ToCaller {
        ToCaller {
            codec,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            opus: None,
            out: vec![0; 1500],
        }
    }

    /// One RTP packet of 20 ms (`pcm`: 48 kHz samples, clipped here);
    /// `None` when the Opus encoder cannot be made or fails (nothing goes
    /// this time, and the stream's clock still moves on).
    pub fn packet(&mut self, pcm: &[i32; FRAME]) -> Option<Vec<u8>> {
        let clip = |v: i32| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        let mut p = Vec::with_capacity(12 + G711_FRAME);
        p.extend_from_slice(&[0x80, self.codec.payload_type() & 0x7f]);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        let step = match self.codec {
            Codec::G711(_) => G711_FRAME,
            Codec::Opus(_) => FRAME,
        };
        self.ts = self.ts.wrapping_add(step as u32);
        match self.codec {
            Codec::G711(law) => {
                for six in pcm.chunks_exact(FRAME / G711_FRAME) {
                    let avg = six.iter().sum::<i32>() / six.len() as i32;
                    p.push(g711_encode(law, clip(avg)));
                }
            }
            Codec::Opus(_) => {
                if self.opus.is_none() {
                    let e =
                        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip);
                    self.opus = Some(e.ok()?);
                }
                let frame: [i16; FRAME] = std::array::from_fn(|i| clip(pcm[i]));
                let n = self.opus.as_mut()?.encode(&frame, &mut self.out).ok()?;
                p.extend_from_slice(&self.out[..n]);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::media::g711_decode;
    use crate::phone::sdp::Law;

    #[test]
    fn upsampling_reaches_each_sample_in_six_steps() {
        let mut last = 0;
        assert_eq!(upsample6(&mut last, 600), [100, 200, 300, 400, 500, 600]);
        assert_eq!(upsample6(&mut last, 0), [500, 400, 300, 200, 100, 0]);
        assert_eq!(last, 0);
    }

    #[test]
    fn one_stream_whatever_plays_on_it() {
        let mut g = ToCaller::new(Codec::G711(Law::Pcmu));
        let loud = [8000i32; FRAME];
        let a = g.packet(&loud).unwrap();
        let b = g.packet(&[0; FRAME]).unwrap();
        assert_eq!(a.len(), 12 + G711_FRAME);
        assert_eq!(a[1], 0);
        // Same SSRC; sequence +1; time +160 at 8 kHz.
        assert_eq!(a[8..12], b[8..12]);
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(seq(&b), seq(&a).wrapping_add(1));
        assert_eq!(ts(&b), ts(&a).wrapping_add(160));
        let level = i32::from(g711_decode(Law::Pcmu, a[12]));
        assert!((level - 8000).abs() < 300, "{level}");
        // Loud sums are clipped, not wrapped.
        let over = g.packet(&[100_000; FRAME]).unwrap();
        assert!(g711_decode(Law::Pcmu, over[12]) > 30_000);

        let mut o = ToCaller::new(Codec::Opus(111));
        let a = o.packet(&loud).unwrap();
        let b = o.packet(&loud).unwrap();
        assert_eq!(a[1], 111);
        assert_eq!(ts(&b), ts(&a).wrapping_add(960));
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut pcm = vec![0i16; 5760];
        assert_eq!(dec.decode(&b[12..], &mut pcm, false).unwrap(), FRAME);
    }
}
