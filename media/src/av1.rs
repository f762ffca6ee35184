//! AV1 RTP aggregation header (AOM "RTP Payload Format for AV1"): Z/Y/W/N bits and the
//! first OBU's header, for keyframe and layer detection.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+
//! |Z|Y| W |N|-|-|-|
//! +-+-+-+-+-+-+-+-+
//! ```
//! N=1 marks the first packet of a coded video sequence, which begins with a keyframe.

use crate::PayloadError;
use crate::reader::Reader;

/// OBU type of a sequence header.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of a temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// OBU type of a frame header.
pub const OBU_FRAME_HEADER: u8 = 3;
/// OBU type of a tile group.
pub const OBU_TILE_GROUP: u8 = 4;
/// OBU type of metadata.
pub const OBU_METADATA: u8 = 5;
/// OBU type of a frame (header plus tile group).
pub const OBU_FRAME: u8 = 6;

/// The header of the first OBU element that starts in this packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObuHeader {
    /// obu_type (0..=15).
    pub obu_type: u8,
    /// temporal_id from the extension header.
    pub temporal_id: Option<u8>,
    /// spatial_id from the extension header.
    pub spatial_id: Option<u8>,
}

/// A parsed AV1 aggregation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Packet {
    /// Z: the first OBU element continues one from the previous packet.
    pub continuation: bool,
    /// Y: the last OBU element continues in the next packet.
    pub continues: bool,
    /// W: number of OBU elements (0 = every element has a length field).
    pub obu_count: u8,
    /// N: first packet of a coded video sequence.
    pub new_sequence: bool,
    /// The first OBU starting in this packet, when Z=0 and it is readable.
    pub first_obu: Option<ObuHeader>,
}

impl Av1Packet {
    /// A decoder can start here: the first packet of a coded video sequence.
    pub fn is_keyframe(&self) -> bool {
        self.new_sequence && !self.continuation
    }

    /// A new temporal unit or frame starts here: a new coded video sequence, or a first OBU
    /// that is a sequence header, temporal delimiter, frame header, frame or metadata (or
    /// unreadable), as long as it is not a continuation.
    pub fn is_frame_start(&self) -> bool {
        if self.continuation {
            return false;
        }
        if self.new_sequence {
            return true;
        }
        match self.first_obu {
            Some(obu) => matches!(
                obu.obu_type,
                OBU_SEQUENCE_HEADER
                    | OBU_TEMPORAL_DELIMITER
                    | OBU_FRAME_HEADER
                    | OBU_METADATA
                    | OBU_FRAME
            ),
            None => true,
        }
    }
}

/// Parses the aggregation header and the first OBU header.
pub fn parse(payload: &[u8]) -> Result<Av1Packet, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut r = Reader::new(payload);
    let b = r.u8("AV1 aggregation header")?;
    let mut packet = Av1Packet {
        continuation: b & 0x80 != 0,
        continues: b & 0x40 != 0,
        obu_count: (b >> 4) & 0x03,
        new_sequence: b & 0x08 != 0,
        first_obu: None,
    };
    if packet.new_sequence && packet.continuation {
        return Err(PayloadError::Invalid {
            field: "AV1 aggregation header (N with Z)",
        });
    }
    if r.rest().is_empty() {
        return Err(PayloadError::Truncated {
            field: "AV1 OBU element",
        });
    }
    // The first element carries a length unless it is the only one (W=1).
    let element_len = if packet.obu_count == 1 {
        r.rest().len()
    } else {
        let len = r.leb128("AV1 OBU element length")?;
        let len = usize::try_from(len).map_err(|_| PayloadError::Invalid {
            field: "AV1 OBU element length",
        })?;
        if len > r.rest().len() {
            return Err(PayloadError::Truncated {
                field: "AV1 OBU element",
            });
        }
        len
    };
    if !packet.continuation && element_len > 0 {
        let element = r.rest().get(..element_len).unwrap_or(&[]);
        packet.first_obu = Some(parse_obu_header(element)?);
    }
    Ok(packet)
}

fn parse_obu_header(element: &[u8]) -> Result<ObuHeader, PayloadError> {
    let mut r = Reader::new(element);
    let h = r.u8("AV1 OBU header")?;
    if h & 0x80 != 0 {
        return Err(PayloadError::Invalid {
            field: "AV1 obu_forbidden_bit",
        });
    }
    let mut obu = ObuHeader {
        obu_type: (h >> 3) & 0x0f,
        temporal_id: None,
        spatial_id: None,
    };
    if h & 0x04 != 0 {
        let e = r.u8("AV1 OBU extension header")?;
        obu.temporal_id = Some(e >> 5);
        obu.spatial_id = Some((e >> 3) & 0x03);
    }
    Ok(obu)
}

/// True when `payload` starts a new coded video sequence. Malformed payloads are not.
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse(payload).is_ok_and(|p| p.is_keyframe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sequence_with_single_element() {
        // N=1, W=1; OBU sequence header without extension.
        let p = parse(&[0x18, 0x08, 0x00, 0x00]).unwrap();
        assert!(p.new_sequence);
        assert_eq!(p.obu_count, 1);
        assert!(p.is_keyframe());
        assert!(p.is_frame_start());
        assert_eq!(
            p.first_obu,
            Some(ObuHeader {
                obu_type: OBU_SEQUENCE_HEADER,
                temporal_id: None,
                spatial_id: None
            })
        );
    }

    #[test]
    fn length_prefixed_element_with_extension() {
        // W=0: element length 3, OBU frame with extension TID 2 SID 1.
        let p = parse(&[0x00, 0x03, 0x34, 0x48, 0xaa]).unwrap();
        assert!(!p.is_keyframe());
        assert!(p.is_frame_start());
        let obu = p.first_obu.unwrap();
        assert_eq!(obu.obu_type, OBU_FRAME);
        assert_eq!(obu.temporal_id, Some(2));
        assert_eq!(obu.spatial_id, Some(1));
    }

    #[test]
    fn continuation_and_tile_groups_are_not_starts() {
        // Z=1, Y=1: middle fragment.
        let p = parse(&[0xd0, 0x01, 0x02]).unwrap();
        assert!(p.continuation && p.continues);
        assert!(!p.is_frame_start());
        assert_eq!(p.first_obu, None);
        // Tile group OBU (type 4).
        let p = parse(&[0x10, 0x20, 0x00]).unwrap();
        assert!(!p.is_frame_start());
        assert!(!is_keyframe(&[0x10, 0x20, 0x00]));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(&[]), Err(PayloadError::Empty));
        assert!(parse(&[0x18]).is_err(), "no OBU element");
        assert!(parse(&[0x88, 0x00]).is_err(), "N together with Z");
        assert!(parse(&[0x00, 0x05, 0x08]).is_err(), "length beyond payload");
        assert!(parse(&[0x10, 0x88]).is_err(), "forbidden bit");
        assert!(parse(&[0x10, 0x0c]).is_err(), "extension header missing");
        assert!(parse(&[0x00, 0xff, 0xff]).is_err(), "unterminated LEB128");
    }

    #[test]
    fn survives_random_bytes() {
        crate::fuzz::for_random_inputs(1, &[&[0x18, 0x08, 0x00, 0x00]], |bytes| {
            if let Ok(p) = parse(bytes) {
                assert!(!p.is_keyframe() || p.is_frame_start());
                assert!(p.obu_count <= 3);
            }
        });
    }
}
