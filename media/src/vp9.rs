//! VP9 RTP payload descriptor (RFC 9628): picture ids, layer indices, keyframes and the
//! scalability structure.
//!
//! ```text
//!        0 1 2 3 4 5 6 7
//!       +-+-+-+-+-+-+-+-+
//!       |I|P|L|F|B|E|V|Z| (REQUIRED)
//!       +-+-+-+-+-+-+-+-+
//!  I:   |M| PICTURE ID  | (second byte when M=1)
//!  L:   |  TID  |U| SID |D|
//!       |   TL0PICIDX   | (only in non-flexible mode, F=0)
//!  P,F: | P_DIFF      |N| (up to 3 times)
//!  V:   | SS            | (scalability structure)
//! ```

use crate::reader::Reader;
use crate::{Dimensions, PayloadError, PictureId};

/// Most spatial layers a scalability structure can describe (N_S is 3 bits).
pub const MAX_SPATIAL_LAYERS: usize = 8;

/// The scalability structure (V=1), without the picture group description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalabilityStructure {
    /// Number of spatial layers (N_S + 1), 1..=8.
    pub spatial_layers: u8,
    /// Per spatial layer resolution when Y=1.
    pub resolutions: [Option<Dimensions>; MAX_SPATIAL_LAYERS],
    /// Number of pictures in the picture group description (N_G), when G=1.
    pub picture_group_len: Option<u8>,
}

impl ScalabilityStructure {
    /// The resolution of spatial layer `sid`, when given.
    pub fn dimensions(&self, sid: usize) -> Option<Dimensions> {
        self.resolutions.get(sid).copied().flatten()
    }
}

/// The parsed payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp9Descriptor {
    /// P: the picture is inter-predicted.
    pub inter_picture: bool,
    /// F: flexible mode.
    pub flexible: bool,
    /// B: first packet of a layer frame.
    pub start_of_frame: bool,
    /// E: last packet of a layer frame.
    pub end_of_frame: bool,
    /// Z: not used as a reference by upper spatial layers.
    pub not_upper_reference: bool,
    /// Picture id when I=1.
    pub picture_id: Option<PictureId>,
    /// TID when L=1.
    pub temporal_id: Option<u8>,
    /// U (switching up point) when L=1.
    pub switching_up: bool,
    /// SID when L=1.
    pub spatial_id: Option<u8>,
    /// D (inter-layer dependency) when L=1.
    pub inter_layer_dependency: bool,
    /// TL0PICIDX when L=1 and F=0.
    pub tl0_pic_idx: Option<u8>,
    /// Number of reference indices (P_DIFF) in flexible mode.
    pub reference_count: u8,
    /// The scalability structure when V=1.
    pub scalability: Option<ScalabilityStructure>,
    /// Descriptor length in bytes; the VP9 payload starts here.
    pub len: usize,
}

impl Vp9Descriptor {
    /// Start of a picture: B=1 on the base spatial layer (or without layer indices).
    pub fn is_frame_start(&self) -> bool {
        self.start_of_frame && self.spatial_id.unwrap_or(0) == 0
    }

    /// Start of a keyframe: a frame start that is not inter-predicted.
    pub fn is_keyframe(&self) -> bool {
        self.is_frame_start() && !self.inter_picture
    }
}

/// Parses the descriptor; fails on truncation and on a fourth P_DIFF.
pub fn parse(payload: &[u8]) -> Result<Vp9Descriptor, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut r = Reader::new(payload);
    let b0 = r.u8("VP9 descriptor")?;
    let has_i = b0 & 0x80 != 0;
    let has_l = b0 & 0x20 != 0;
    let has_v = b0 & 0x02 != 0;
    let mut d = Vp9Descriptor {
        inter_picture: b0 & 0x40 != 0,
        flexible: b0 & 0x10 != 0,
        start_of_frame: b0 & 0x08 != 0,
        end_of_frame: b0 & 0x04 != 0,
        not_upper_reference: b0 & 0x01 != 0,
        ..Vp9Descriptor::default()
    };
    if has_i {
        let p = r.u8("VP9 picture id")?;
        d.picture_id = Some(if p & 0x80 != 0 {
            let lo = r.u8("VP9 picture id")?;
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
        let b = r.u8("VP9 layer indices")?;
        d.temporal_id = Some(b >> 5);
        d.switching_up = b & 0x10 != 0;
        d.spatial_id = Some((b >> 1) & 0x07);
        d.inter_layer_dependency = b & 0x01 != 0;
        if !d.flexible {
            d.tl0_pic_idx = Some(r.u8("VP9 TL0PICIDX")?);
        }
    }
    if d.flexible && d.inter_picture {
        loop {
            let b = r.u8("VP9 P_DIFF")?;
            d.reference_count += 1;
            if b & 0x01 == 0 {
                break;
            }
            if d.reference_count == 3 {
                return Err(PayloadError::Invalid {
                    field: "VP9 P_DIFF",
                });
            }
        }
    }
    if has_v {
        d.scalability = Some(parse_scalability(&mut r)?);
    }
    d.len = r.pos();
    Ok(d)
}

fn parse_scalability(r: &mut Reader<'_>) -> Result<ScalabilityStructure, PayloadError> {
    let b = r.u8("VP9 scalability structure")?;
    let mut ss = ScalabilityStructure {
        spatial_layers: (b >> 5) + 1,
        ..ScalabilityStructure::default()
    };
    if b & 0x10 != 0 {
        for slot in ss
            .resolutions
            .iter_mut()
            .take(usize::from(ss.spatial_layers))
        {
            let width = r.u16("VP9 SS width")?;
            let height = r.u16("VP9 SS height")?;
            *slot = Some(Dimensions { width, height });
        }
    }
    if b & 0x08 != 0 {
        let n_g = r.u8("VP9 SS N_G")?;
        ss.picture_group_len = Some(n_g);
        for _ in 0..n_g {
            let pic = r.u8("VP9 SS picture")?;
            let refs = usize::from((pic >> 2) & 0x03);
            r.skip(refs, "VP9 SS P_DIFF")?;
        }
    }
    Ok(ss)
}

/// True when `payload` starts a VP9 keyframe. Malformed payloads are not keyframes.
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse(payload).is_ok_and(|d| d.is_keyframe())
}

/// Rewrites the picture id (keeping its width) and, when given and present, TL0PICIDX.
pub fn rewrite_picture_id(
    payload: &mut [u8],
    picture_id: u16,
    tl0_pic_idx: Option<u8>,
) -> Result<(), PayloadError> {
    let d = parse(payload)?;
    let mut pos = 1;
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
        // The TL0PICIDX follows the layer byte.
        write(payload, pos + 1, tl0)?;
    }
    Ok(())
}

fn write(payload: &mut [u8], pos: usize, value: u8) -> Result<(), PayloadError> {
    let slot = payload.get_mut(pos).ok_or(PayloadError::Truncated {
        field: "VP9 descriptor",
    })?;
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// I,L,B,V: long pid 0x0102, TID 0 SID 0, TL0 9, SS with 2 layers 640x360 and 1280x720
    /// plus a picture group of one picture with one P_DIFF.
    const KEYFRAME_WITH_SS: [u8; 16] = [
        0xaa, 0x81, 0x02, 0x00, 0x09, 0x38, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0, 0x01,
        0x04,
    ];

    #[test]
    fn keyframe_with_scalability_structure() {
        // KEYFRAME_WITH_SS lacks the P_DIFF byte of its one picture-group entry: truncated.
        assert!(parse(&KEYFRAME_WITH_SS).is_err());
        let mut full = [0u8; 17];
        full[..16].copy_from_slice(&KEYFRAME_WITH_SS);
        full[16] = 0x01;
        let d = parse(&full).unwrap();
        assert!(d.is_keyframe());
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x0102,
                long: true
            })
        );
        assert_eq!(d.temporal_id, Some(0));
        assert_eq!(d.spatial_id, Some(0));
        assert_eq!(d.tl0_pic_idx, Some(9));
        let ss = d.scalability.unwrap();
        assert_eq!(ss.spatial_layers, 2);
        assert_eq!(
            ss.dimensions(0),
            Some(Dimensions {
                width: 640,
                height: 360
            })
        );
        assert_eq!(
            ss.dimensions(1),
            Some(Dimensions {
                width: 1280,
                height: 720
            })
        );
        assert_eq!(ss.dimensions(2), None);
        assert_eq!(ss.picture_group_len, Some(1));
        assert_eq!(d.len, 17);
    }

    #[test]
    fn inter_frame_and_upper_layer_are_not_keyframes() {
        // P=1, B=1, L: TID 1, U=1, SID 0, TL0 4.
        let inter = [0x68, 0x30, 0x04, 0xff];
        let d = parse(&inter).unwrap();
        assert!(d.is_frame_start());
        assert!(!d.is_keyframe());
        assert_eq!(d.temporal_id, Some(1));
        assert!(d.switching_up);
        // B=1, P=0 but SID 1 with inter-layer dependency: part of a keyframe, not its start.
        let upper = [0x28, 0x03, 0x04, 0xff];
        let d = parse(&upper).unwrap();
        assert_eq!(d.spatial_id, Some(1));
        assert!(d.inter_layer_dependency);
        assert!(!d.is_keyframe());
        // No B bit.
        assert!(!is_keyframe(&[0x00, 0xff]));
        // B bit without layer indices: keyframe on the only layer.
        assert!(is_keyframe(&[0x08, 0xff]));
    }

    #[test]
    fn flexible_mode_reference_indices() {
        // I (short pid 3), P, L, F, B: layer byte, then two P_DIFFs (N=1 then N=0).
        let d = parse(&[0xf8, 0x03, 0x00, 0x03, 0x04, 0xff]).unwrap();
        assert!(d.flexible);
        assert_eq!(d.tl0_pic_idx, None);
        assert_eq!(d.reference_count, 2);
        assert_eq!(d.len, 5);
        // Four P_DIFFs is invalid.
        assert_eq!(
            parse(&[0x50, 0x01, 0x01, 0x01, 0x01]),
            Err(PayloadError::Invalid {
                field: "VP9 P_DIFF"
            })
        );
    }

    #[test]
    fn truncation() {
        assert_eq!(parse(&[]), Err(PayloadError::Empty));
        assert!(parse(&[0x80]).is_err());
        assert!(parse(&[0x80, 0x81]).is_err());
        assert!(parse(&[0x20, 0x00]).is_err(), "missing TL0PICIDX");
        assert!(parse(&[0x02, 0x10, 0x01]).is_err(), "missing SS size");
    }

    #[test]
    fn rewrite_picture_id_and_tl0() {
        let mut p = [0xa8, 0x81, 0x02, 0x00, 0x09, 0xff];
        rewrite_picture_id(&mut p, 0x7abc, Some(200)).unwrap();
        let d = parse(&p).unwrap();
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x7abc,
                long: true
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(200));
        assert_eq!(d.temporal_id, Some(0));
        assert_eq!(p[5], 0xff);
    }

    #[test]
    fn survives_random_bytes() {
        crate::fuzz::for_random_inputs(9, &[&KEYFRAME_WITH_SS], |bytes| {
            if let Ok(d) = parse(bytes) {
                assert!(d.len <= bytes.len() && d.len >= 1);
                if let Some(ss) = d.scalability {
                    assert!((1..=8).contains(&ss.spatial_layers));
                }
            }
            let mut copy = [0u8; 256];
            let n = bytes.len().min(256);
            copy[..n].copy_from_slice(&bytes[..n]);
            let _ = rewrite_picture_id(&mut copy[..n], 0xffff, Some(7));
        });
    }
}
