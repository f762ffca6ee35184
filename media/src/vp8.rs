//! VP8 RTP payload descriptor (RFC 7741): layer indices, picture ids and keyframe detection.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |X|R|N|S|R| PID | (REQUIRED)
//!      +-+-+-+-+-+-+-+-+
//! X:   |I|L|T|K| RSV   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! I:   |M| PictureID   | (OPTIONAL, second byte when M=1)
//!      +-+-+-+-+-+-+-+-+
//! L:   |   TL0PICIDX   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! ```
//! At the start of partition 0 the VP8 payload header follows; its lowest bit (P) is 0 for
//! a keyframe, and a keyframe header carries the start code `9d 01 2a` and the size.

use crate::reader::Reader;
use crate::{Dimensions, PayloadError, PictureId};

/// The parsed payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// N: the frame can be discarded without affecting others.
    pub non_reference: bool,
    /// S: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_index: u8,
    /// PictureID when I=1.
    pub picture_id: Option<PictureId>,
    /// TL0PICIDX when L=1.
    pub tl0_pic_idx: Option<u8>,
    /// TID when T=1.
    pub temporal_id: Option<u8>,
    /// Y (layer sync), meaningful when T=1.
    pub layer_sync: bool,
    /// KEYIDX when K=1.
    pub key_idx: Option<u8>,
    /// Descriptor length in bytes; the VP8 payload starts here.
    pub len: usize,
}

impl Vp8Descriptor {
    /// True when this packet carries the first bytes of a frame (S=1, PID=0).
    pub fn is_frame_start(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

/// A parsed VP8 RTP payload: descriptor plus what the first payload bytes reveal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Packet {
    /// The payload descriptor.
    pub descriptor: Vp8Descriptor,
    /// The packet starts a frame.
    pub frame_start: bool,
    /// The packet starts a keyframe (frame start and P bit 0).
    pub keyframe: bool,
    /// Picture size from the keyframe header, when this packet holds it.
    pub dimensions: Option<Dimensions>,
}

const KEYFRAME_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// Parses the payload descriptor alone.
pub fn parse_descriptor(payload: &[u8]) -> Result<Vp8Descriptor, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut r = Reader::new(payload);
    let b0 = r.u8("VP8 descriptor")?;
    let mut d = Vp8Descriptor {
        non_reference: b0 & 0x20 != 0,
        start_of_partition: b0 & 0x10 != 0,
        partition_index: b0 & 0x07,
        ..Vp8Descriptor::default()
    };
    if b0 & 0x80 != 0 {
        let x = r.u8("VP8 extension byte")?;
        let (has_i, has_l, has_t, has_k) =
            (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
        if has_i {
            let p = r.u8("VP8 PictureID")?;
            d.picture_id = Some(if p & 0x80 != 0 {
                let lo = r.u8("VP8 PictureID")?;
                PictureId {
                    value: u16::from(p & 0x7f) << 8 | u16::from(lo),
                    long: true,
                }
            } else {
                PictureId {
                    value: u16::from(p),
                    long: false,
                }
            });
        }
        if has_l {
            d.tl0_pic_idx = Some(r.u8("VP8 TL0PICIDX")?);
        }
        if has_t || has_k {
            let b = r.u8("VP8 TID/KEYIDX")?;
            if has_t {
                d.temporal_id = Some(b >> 6);
                d.layer_sync = b & 0x20 != 0;
            }
            if has_k {
                d.key_idx = Some(b & 0x1f);
            }
        }
    }
    d.len = r.pos();
    Ok(d)
}

/// Parses the descriptor and, at a frame start, the VP8 payload header.
pub fn parse(payload: &[u8]) -> Result<Vp8Packet, PayloadError> {
    let descriptor = parse_descriptor(payload)?;
    let body = payload.get(descriptor.len..).unwrap_or(&[]);
    if body.is_empty() {
        return Err(PayloadError::Truncated {
            field: "VP8 payload",
        });
    }
    let frame_start = descriptor.is_frame_start();
    let mut packet = Vp8Packet {
        descriptor,
        frame_start,
        ..Vp8Packet::default()
    };
    if frame_start {
        let header = body.get(..3).ok_or(PayloadError::Truncated {
            field: "VP8 payload header",
        })?;
        packet.keyframe = header.first().is_some_and(|b| b & 0x01 == 0);
        if packet.keyframe {
            packet.dimensions = keyframe_dimensions(body);
        }
    }
    Ok(packet)
}

/// True when `payload` starts a VP8 keyframe. Malformed payloads are not keyframes.
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse(payload).is_ok_and(|p| p.keyframe)
}

/// Width and height from a keyframe's uncompressed header (`body` starts at the VP8 payload
/// header, i.e. after the descriptor).
fn keyframe_dimensions(body: &[u8]) -> Option<Dimensions> {
    if body.get(3..6)? != KEYFRAME_START_CODE {
        return None;
    }
    let size = body.get(6..10)?;
    let width = u16::from_le_bytes([*size.first()?, *size.get(1)?]) & 0x3fff;
    let height = u16::from_le_bytes([*size.get(2)?, *size.get(3)?]) & 0x3fff;
    Some(Dimensions { width, height })
}

/// Rewrites PictureID (keeping its 7- or 15-bit width) and, when `tl0_pic_idx` is given and
/// the descriptor carries one, TL0PICIDX, in place.
pub fn rewrite_picture_id(
    payload: &mut [u8],
    picture_id: u16,
    tl0_pic_idx: Option<u8>,
) -> Result<(), PayloadError> {
    let d = parse_descriptor(payload)?;
    // Offsets: byte 0, X byte 1, PictureID at 2.
    let mut pos = 2;
    if let Some(pid) = d.picture_id {
        if pid.long {
            let [hi, lo] = (picture_id & 0x7fff).to_be_bytes();
            write(payload, pos, 0x80 | hi)?;
            write(payload, pos + 1, lo)?;
            pos += 2;
        } else {
            write(payload, pos, (picture_id & 0x7f) as u8)?;
            pos += 1;
        }
    }
    if let (Some(_), Some(tl0)) = (d.tl0_pic_idx, tl0_pic_idx) {
        write(payload, pos, tl0)?;
    }
    Ok(())
}

fn write(payload: &mut [u8], pos: usize, value: u8) -> Result<(), PayloadError> {
    let slot = payload.get_mut(pos).ok_or(PayloadError::Truncated {
        field: "VP8 descriptor",
    })?;
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X=1 S=1 PID=0; I,L,T,K; long pid 0x1234; tl0 7; TID 2 Y=1 KEYIDX 5; keyframe 320x180.
    const KEYFRAME: [u8; 16] = [
        0x90, 0xf0, 0x92, 0x34, 0x07, 0xa5, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4,
        0x00,
    ];

    #[test]
    fn full_descriptor() {
        let d = parse_descriptor(&KEYFRAME).unwrap();
        assert!(d.start_of_partition);
        assert!(!d.non_reference);
        assert_eq!(d.partition_index, 0);
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x1234,
                long: true
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(7));
        assert_eq!(d.temporal_id, Some(2));
        assert!(d.layer_sync);
        assert_eq!(d.key_idx, Some(5));
        assert_eq!(d.len, 6);
    }

    #[test]
    fn keyframe_with_dimensions() {
        let p = parse(&KEYFRAME).unwrap();
        assert!(p.keyframe);
        assert!(p.frame_start);
        assert_eq!(
            p.dimensions,
            Some(Dimensions {
                width: 320,
                height: 180
            })
        );
        assert!(is_keyframe(&KEYFRAME));
    }

    #[test]
    fn minimal_descriptor_short_picture_id() {
        // X=1, S=1; I only; short pid 0x55; interframe (P=1).
        let payload = [0x90, 0x80, 0x55, 0x01, 0x00, 0x00];
        let p = parse(&payload).unwrap();
        assert_eq!(p.descriptor.len, 3);
        assert_eq!(
            p.descriptor.picture_id,
            Some(PictureId {
                value: 0x55,
                long: false
            })
        );
        assert!(p.frame_start);
        assert!(!p.keyframe);
        assert_eq!(p.dimensions, None);
    }

    #[test]
    fn no_extension_one_byte_descriptor() {
        let payload = [0x10, 0x00, 0x00, 0x00];
        let p = parse(&payload).unwrap();
        assert_eq!(p.descriptor.len, 1);
        assert!(p.keyframe);
        // Keyframe bit set but start code missing: no dimensions.
        assert_eq!(p.dimensions, None);
    }

    #[test]
    fn continuation_packets_are_not_keyframes() {
        // S=0: middle of a partition, even though the first body byte has P=0.
        assert!(!is_keyframe(&[0x80, 0x80, 0x05, 0x00, 0x00, 0x00]));
        // S=1 but PID=1: start of a later partition.
        assert!(!is_keyframe(&[0x11, 0x00, 0x00, 0x00]));
        // Non-reference flag parsed.
        assert!(parse_descriptor(&[0x20, 0x00]).unwrap().non_reference);
    }

    #[test]
    fn truncated_inputs_are_errors() {
        assert_eq!(parse(&[]), Err(PayloadError::Empty));
        assert!(parse(&[0x90]).is_err());
        assert!(parse(&[0x90, 0x80, 0x92]).is_err());
        // Descriptor complete but no payload.
        assert!(matches!(
            parse(&[0x90, 0x80, 0x05]),
            Err(PayloadError::Truncated { .. })
        ));
        // Frame start with a payload header shorter than 3 bytes.
        assert!(parse(&[0x10, 0x00]).is_err());
    }

    #[test]
    fn rewrite_keeps_widths() {
        let mut long = KEYFRAME;
        rewrite_picture_id(&mut long, 0x0abc, Some(42)).unwrap();
        let d = parse_descriptor(&long).unwrap();
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x0abc,
                long: true
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(42));
        assert_eq!(d.temporal_id, Some(2), "TID byte untouched");
        assert_eq!(&long[6..], &KEYFRAME[6..], "payload untouched");

        let mut short = [0x90, 0xc0, 0x55, 0x09, 0x01, 0x00, 0x00];
        rewrite_picture_id(&mut short, 0x1ff, None).unwrap();
        let d = parse_descriptor(&short).unwrap();
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x7f,
                long: false
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(9), "tl0 unchanged when None");
    }

    #[test]
    fn survives_random_bytes() {
        crate::fuzz::for_random_inputs(8, &[&KEYFRAME], |bytes| {
            if let Ok(d) = parse_descriptor(bytes) {
                assert!(d.len <= bytes.len());
                assert!(d.len >= 1);
            }
            if let Ok(p) = parse(bytes) {
                assert!(!p.keyframe || p.frame_start);
            }
            let mut copy = [0u8; 256];
            let n = bytes.len().min(256);
            copy[..n].copy_from_slice(&bytes[..n]);
            let _ = rewrite_picture_id(&mut copy[..n], 0xffff, Some(1));
        });
    }
}
