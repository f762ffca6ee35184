//! Opus TOC byte parsing (RFC 6716 section 3.1): configuration, channels and frame count.

use crate::PayloadError;

/// The Opus coding mode of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusMode {
    /// SILK-only (configs 0..=11), speech.
    Silk,
    /// SILK + CELT hybrid (configs 12..=15).
    Hybrid,
    /// CELT-only (configs 16..=31), music and low delay.
    Celt,
}

/// The audio bandwidth of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpusBandwidth {
    /// 4 kHz.
    Narrowband,
    /// 6 kHz.
    Mediumband,
    /// 8 kHz.
    Wideband,
    /// 12 kHz.
    SuperWideband,
    /// 20 kHz.
    Fullband,
}

/// What the TOC byte (plus the frame count byte for code 3) says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusToc {
    /// Configuration number 0..=31.
    pub config: u8,
    /// The `s` bit: stereo.
    pub stereo: bool,
    /// Frame count code 0..=3.
    pub code: u8,
    /// Number of frames in the packet (1..=48).
    pub frame_count: u8,
    /// Coding mode.
    pub mode: OpusMode,
    /// Audio bandwidth.
    pub bandwidth: OpusBandwidth,
    /// Duration of one frame in 48 kHz samples (120..=2880).
    pub frame_samples: u16,
}

impl OpusToc {
    /// Duration of the whole packet in 48 kHz samples.
    pub fn packet_samples(&self) -> u32 {
        u32::from(self.frame_samples) * u32::from(self.frame_count)
    }
}

/// Longest packet Opus allows: 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: u32 = 5760;

/// Parses the TOC; rejects empty payloads, code 3 without a count byte, a zero frame
/// count, and packets longer than 120 ms.
pub fn parse(payload: &[u8]) -> Result<OpusToc, PayloadError> {
    let toc = *payload.first().ok_or(PayloadError::Empty)?;
    let config = toc >> 3;
    let (mode, bandwidth, frame_samples) = describe_config(config);
    let code = toc & 0x03;
    let frame_count = match code {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = payload.get(1).ok_or(PayloadError::Truncated {
                field: "Opus frame count",
            })? & 0x3f;
            if count == 0 {
                return Err(PayloadError::Invalid {
                    field: "Opus frame count",
                });
            }
            count
        }
    };
    let parsed = OpusToc {
        config,
        stereo: toc & 0x04 != 0,
        code,
        frame_count,
        mode,
        bandwidth,
        frame_samples,
    };
    if parsed.packet_samples() > MAX_PACKET_SAMPLES {
        return Err(PayloadError::Invalid {
            field: "Opus frame count",
        });
    }
    Ok(parsed)
}

fn describe_config(config: u8) -> (OpusMode, OpusBandwidth, u16) {
    use OpusBandwidth::*;
    const SILK: [u16; 4] = [480, 960, 1920, 2880];
    const HYBRID: [u16; 2] = [480, 960];
    const CELT: [u16; 4] = [120, 240, 480, 960];
    let c = usize::from(config & 0x1f);
    match c {
        0..=11 => {
            let bw = [Narrowband, Mediumband, Wideband][c / 4];
            (OpusMode::Silk, bw, SILK[c % 4])
        }
        12..=15 => {
            let bw = [SuperWideband, Fullband][(c - 12) / 2];
            (OpusMode::Hybrid, bw, HYBRID[c % 2])
        }
        _ => {
            let bw = [Narrowband, Wideband, SuperWideband, Fullband][(c - 16) / 4];
            (OpusMode::Celt, bw, CELT[c % 4])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_default_toc() {
        // Config 15 (hybrid FB 20 ms), mono, one frame: what Chrome sends for speech.
        let toc = parse(&[0x78, 0x00]).unwrap();
        assert_eq!(toc.config, 15);
        assert_eq!(toc.mode, OpusMode::Hybrid);
        assert_eq!(toc.bandwidth, OpusBandwidth::Fullband);
        assert_eq!(toc.frame_samples, 960);
        assert_eq!(toc.frame_count, 1);
        assert!(!toc.stereo);
        assert_eq!(toc.packet_samples(), 960);
    }

    #[test]
    fn modes_and_durations() {
        let silk = parse(&[0x0b << 3]).unwrap();
        assert_eq!(
            (silk.mode, silk.bandwidth, silk.frame_samples),
            (OpusMode::Silk, OpusBandwidth::Wideband, 2880)
        );
        let celt = parse(&[(16 << 3) | 0x04]).unwrap();
        assert_eq!(
            (celt.mode, celt.bandwidth, celt.frame_samples),
            (OpusMode::Celt, OpusBandwidth::Narrowband, 120)
        );
        assert!(celt.stereo);
        let celt_fb = parse(&[31 << 3]).unwrap();
        assert_eq!(celt_fb.bandwidth, OpusBandwidth::Fullband);
        assert_eq!(celt_fb.frame_samples, 960);
    }

    #[test]
    fn frame_counts() {
        assert_eq!(parse(&[0x79]).unwrap().frame_count, 2);
        assert_eq!(parse(&[0x7a]).unwrap().frame_count, 2);
        // Code 3, 10 ms frames (config 12), 6 frames = 60 ms.
        let toc = parse(&[(12 << 3) | 3, 0x06]).unwrap();
        assert_eq!(toc.frame_count, 6);
        assert_eq!(toc.packet_samples(), 2880);
    }

    #[test]
    fn invalid_packets() {
        assert_eq!(parse(&[]), Err(PayloadError::Empty));
        assert!(matches!(
            parse(&[0x7b]),
            Err(PayloadError::Truncated { .. })
        ));
        assert!(parse(&[0x7b, 0x00]).is_err(), "zero frames");
        // 20 ms frames x 7 = 140 ms > 120 ms.
        assert!(parse(&[0x7b, 0x07]).is_err());
    }

    #[test]
    fn survives_random_bytes() {
        crate::fuzz::for_random_inputs(6716, &[&[0x7b, 0x03, 0x00]], |bytes| {
            if let Ok(toc) = parse(bytes) {
                assert!(toc.packet_samples() <= MAX_PACKET_SAMPLES);
                assert!(toc.frame_count >= 1);
            }
        });
    }
}
