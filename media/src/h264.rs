//! H.264 RTP payloads (RFC 6184): single NAL units, STAP-A and FU-A, keyframe and frame
//! start detection.

use crate::PayloadError;
use crate::reader::Reader;

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// Payload type of a single-time aggregation packet.
pub const STAP_A: u8 = 24;
/// Payload type of a fragmentation unit.
pub const FU_A: u8 = 28;

/// How the payload packs NAL units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packetization {
    /// One complete NAL unit of the given type (1..=23).
    Single {
        /// The NAL unit type.
        nal_type: u8,
    },
    /// A STAP-A holding `count` NAL units.
    StapA {
        /// Number of aggregated NAL units.
        count: usize,
    },
    /// A fragment of one NAL unit.
    FuA {
        /// The S bit: first fragment.
        start: bool,
        /// The E bit: last fragment.
        end: bool,
        /// The fragmented NAL unit's type.
        nal_type: u8,
    },
    /// STAP-B, MTAP or FU-B: valid but not used by browsers; no frame information.
    Other {
        /// The payload type (25, 26, 27 or 29).
        packet_type: u8,
    },
}

/// A parsed H.264 RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Packet {
    /// How NAL units are packed.
    pub packetization: Packetization,
    /// An SPS (complete, or the first fragment) is present.
    pub has_sps: bool,
    /// The first slice of an IDR picture starts here.
    pub has_idr_start: bool,
    /// A decoder can start here: SPS present or first IDR slice.
    pub keyframe: bool,
    /// An access unit starts here: AUD, SEI, SPS or PPS, or a first slice
    /// (`first_mb_in_slice` = 0).
    pub frame_start: bool,
}

/// Parses an H.264 RTP payload; STAP-A sizes are checked against the payload length.
pub fn parse(payload: &[u8]) -> Result<H264Packet, PayloadError> {
    let mut r = Reader::new(payload);
    let header = r.u8("H264 NAL header").map_err(|_| PayloadError::Empty)?;
    if header & 0x80 != 0 {
        return Err(PayloadError::Invalid {
            field: "H264 forbidden_zero_bit",
        });
    }
    let packet_type = header & 0x1f;
    let mut packet = H264Packet {
        packetization: Packetization::Other { packet_type },
        has_sps: false,
        has_idr_start: false,
        keyframe: false,
        frame_start: false,
    };
    match packet_type {
        1..=23 => {
            packet.packetization = Packetization::Single {
                nal_type: packet_type,
            };
            note_nal(&mut packet, packet_type, r.rest().first().copied());
        }
        STAP_A => {
            let mut count = 0;
            while !r.rest().is_empty() {
                let size = usize::from(r.u16("H264 STAP-A NALU size")?);
                if size == 0 {
                    return Err(PayloadError::Invalid {
                        field: "H264 STAP-A NALU size",
                    });
                }
                let nal = r.rest();
                r.skip(size, "H264 STAP-A NALU")?;
                let nal_header = nal.first().copied().unwrap_or(0);
                let slice_byte = if size > 1 { nal.get(1).copied() } else { None };
                note_nal(&mut packet, nal_header & 0x1f, slice_byte);
                count += 1;
            }
            if count == 0 {
                return Err(PayloadError::Truncated {
                    field: "H264 STAP-A NALU",
                });
            }
            packet.packetization = Packetization::StapA { count };
        }
        FU_A => {
            let fu = r.u8("H264 FU header")?;
            let start = fu & 0x80 != 0;
            let end = fu & 0x40 != 0;
            let nal_type = fu & 0x1f;
            if start && end {
                return Err(PayloadError::Invalid {
                    field: "H264 FU header",
                });
            }
            packet.packetization = Packetization::FuA {
                start,
                end,
                nal_type,
            };
            if start {
                note_nal(&mut packet, nal_type, r.rest().first().copied());
            }
        }
        25..=27 | 29 => {}
        _ => {
            return Err(PayloadError::Invalid {
                field: "H264 NAL unit type",
            });
        }
    }
    packet.keyframe = packet.has_sps || packet.has_idr_start;
    Ok(packet)
}

/// Records what the start of a NAL unit of `nal_type` tells; `slice_byte` is the first
/// byte after its NAL header, whose top bit is set when `first_mb_in_slice` is 0.
fn note_nal(packet: &mut H264Packet, nal_type: u8, slice_byte: Option<u8>) {
    match nal_type {
        NAL_SPS => {
            packet.has_sps = true;
            packet.frame_start = true;
        }
        NAL_SEI | NAL_PPS | NAL_AUD => packet.frame_start = true,
        NAL_SLICE | NAL_IDR => {
            let first_slice = slice_byte.is_some_and(|b| b & 0x80 != 0);
            if first_slice {
                packet.frame_start = true;
                if nal_type == NAL_IDR {
                    packet.has_idr_start = true;
                }
            }
        }
        _ => {}
    }
}

/// True when `payload` starts an H.264 keyframe. Malformed payloads are not keyframes.
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse(payload).is_ok_and(|p| p.keyframe)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// STAP-A: SPS (3 bytes), PPS (2 bytes), IDR first slice (2 bytes).
    const STAP_KEYFRAME: [u8; 14] = [
        0x78, 0x00, 0x03, 0x67, 0x42, 0xc0, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88,
    ];

    #[test]
    fn stap_a_with_sps_pps_idr() {
        let p = parse(&STAP_KEYFRAME).unwrap();
        assert_eq!(p.packetization, Packetization::StapA { count: 3 });
        assert!(p.has_sps);
        assert!(p.has_idr_start);
        assert!(p.keyframe);
        assert!(p.frame_start);
    }

    #[test]
    fn stap_a_size_overrun_is_truncation() {
        let bad = [0x78, 0x00, 0x09, 0x67, 0x42];
        assert!(matches!(parse(&bad), Err(PayloadError::Truncated { .. })));
        let zero = [0x78, 0x00, 0x00];
        assert!(matches!(parse(&zero), Err(PayloadError::Invalid { .. })));
        assert!(parse(&[0x78]).is_err(), "STAP-A with no NAL unit");
        assert!(parse(&[0x78, 0x00]).is_err(), "half a size field");
    }

    #[test]
    fn single_nal_units() {
        // IDR, first_mb_in_slice = 0.
        let idr = parse(&[0x65, 0x88, 0x84]).unwrap();
        assert_eq!(idr.packetization, Packetization::Single { nal_type: 5 });
        assert!(idr.keyframe && idr.frame_start);
        // IDR, second slice (first_mb_in_slice != 0): not a start.
        let idr2 = parse(&[0x65, 0x40, 0x84]).unwrap();
        assert!(!idr2.keyframe && !idr2.frame_start);
        // Non-IDR first slice: frame start, no keyframe.
        let p = parse(&[0x41, 0x9a, 0x00]).unwrap();
        assert!(p.frame_start && !p.keyframe);
        // SPS alone is a keyframe start.
        assert!(is_keyframe(&[0x67, 0x42, 0xc0, 0x1f]));
        // AUD: frame start only.
        let aud = parse(&[0x09, 0xf0]).unwrap();
        assert!(aud.frame_start && !aud.keyframe);
    }

    #[test]
    fn fu_a_fragments() {
        // FU indicator (NRI 3, type 28), FU header S=1 type 5, slice byte.
        let start = parse(&[0x7c, 0x85, 0x88, 0x00]).unwrap();
        assert_eq!(
            start.packetization,
            Packetization::FuA {
                start: true,
                end: false,
                nal_type: 5
            }
        );
        assert!(start.keyframe);
        // Middle and end fragments of the same IDR are not keyframe starts.
        assert!(!is_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe(&[0x7c, 0x45, 0x00]));
        // Start of a non-IDR slice.
        let p = parse(&[0x7c, 0x81, 0x9a]).unwrap();
        assert!(p.frame_start && !p.keyframe);
        // S and E together are invalid; missing FU header is truncation.
        assert!(parse(&[0x7c, 0xc5, 0x00]).is_err());
        assert!(matches!(
            parse(&[0x7c]),
            Err(PayloadError::Truncated { .. })
        ));
    }

    #[test]
    fn other_and_invalid_types() {
        assert_eq!(
            parse(&[0x19, 0x00]).unwrap().packetization,
            Packetization::Other { packet_type: 25 }
        );
        assert!(parse(&[0x00]).is_err(), "type 0 is reserved");
        assert!(parse(&[0x1e]).is_err(), "type 30 is reserved");
        assert!(parse(&[0x85, 0x88]).is_err(), "forbidden bit");
        assert_eq!(parse(&[]), Err(PayloadError::Empty));
    }

    #[test]
    fn survives_random_bytes() {
        crate::fuzz::for_random_inputs(264, &[&STAP_KEYFRAME], |bytes| {
            if let Ok(p) = parse(bytes) {
                assert!(!p.keyframe || p.frame_start);
                if let Packetization::StapA { count } = p.packetization {
                    assert!(count >= 1 && count * 3 <= bytes.len());
                }
            }
        });
    }
}
