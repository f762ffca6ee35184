//! The codecs Convene forwards and the one per-packet question the SFU asks of them.

use crate::{PayloadError, av1, h264, opus, vp8, vp9};

/// A codec negotiated with browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus audio (RFC 7587), 48 kHz RTP clock.
    Opus,
    /// VP8 video (RFC 7741), 90 kHz RTP clock.
    Vp8,
    /// VP9 video (RFC 9628), 90 kHz RTP clock.
    Vp9,
    /// H.264 video (RFC 6184), 90 kHz RTP clock.
    H264,
    /// AV1 video (AOM RTP payload format), 90 kHz RTP clock.
    Av1,
}

impl Codec {
    /// All codecs, in the order the server prefers them.
    pub const ALL: [Codec; 5] = [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1];

    /// The RTP timestamp clock rate in Hz.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1 => 90_000,
        }
    }

    /// True for audio codecs.
    pub const fn is_audio(self) -> bool {
        matches!(self, Codec::Opus)
    }

    /// True for video codecs.
    pub const fn is_video(self) -> bool {
        !self.is_audio()
    }

    /// The SDP encoding name (`a=rtpmap` subtype), as browsers spell it.
    pub const fn mime_subtype(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
            Codec::Av1 => "AV1",
        }
    }

    /// Looks a codec up by its SDP encoding name, ignoring case (`"vp8"`, `"H264"`, ...).
    pub fn from_mime_subtype(name: &str) -> Option<Codec> {
        Self::ALL
            .into_iter()
            .find(|c| c.mime_subtype().eq_ignore_ascii_case(name))
    }
}

/// A VP8/VP9 picture id and whether it is carried in the 15-bit (M=1) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PictureId {
    /// The value, 0..=0x7f (short form) or 0..=0x7fff (long form).
    pub value: u16,
    /// True when the descriptor carries the 15-bit form.
    pub long: bool,
}

/// Picture width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dimensions {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// What the SFU needs to know about one RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameInfo {
    /// A decoder can start here: the first packet of an independently decodable frame
    /// (VP8/VP9/AV1 keyframe start, H.264 SPS or first IDR slice). Every Opus packet is one.
    pub keyframe: bool,
    /// This packet starts a new frame (picture) as far as the payload shows.
    pub frame_start: bool,
    /// Temporal layer id (VP8 TID, VP9 TID, AV1 temporal_id) when the payload carries one.
    pub temporal_layer: Option<u8>,
    /// Spatial layer id inside the stream (VP9 SID, AV1 spatial_id) when carried.
    pub spatial_layer: Option<u8>,
    /// A safe point to switch up to this temporal layer (VP8 Y bit, VP9 U bit).
    pub layer_sync: bool,
    /// VP8/VP9 picture id.
    pub picture_id: Option<PictureId>,
    /// VP8/VP9 TL0PICIDX.
    pub tl0_pic_idx: Option<u8>,
    /// Picture size when the packet carries it (VP8 keyframe header, VP9 scalability
    /// structure for spatial layer 0).
    pub dimensions: Option<Dimensions>,
}

/// Parses `payload` (the RTP payload, without the RTP header) of `codec`.
pub fn frame_info(codec: Codec, payload: &[u8]) -> Result<FrameInfo, PayloadError> {
    match codec {
        Codec::Opus => {
            opus::parse(payload)?;
            Ok(FrameInfo {
                keyframe: true,
                frame_start: true,
                ..FrameInfo::default()
            })
        }
        Codec::Vp8 => {
            let p = vp8::parse(payload)?;
            let d = p.descriptor;
            Ok(FrameInfo {
                keyframe: p.keyframe,
                frame_start: p.frame_start,
                temporal_layer: d.temporal_id,
                spatial_layer: None,
                layer_sync: d.layer_sync,
                picture_id: d.picture_id,
                tl0_pic_idx: d.tl0_pic_idx,
                dimensions: p.dimensions,
            })
        }
        Codec::Vp9 => {
            let d = vp9::parse(payload)?;
            Ok(FrameInfo {
                keyframe: d.is_keyframe(),
                frame_start: d.is_frame_start(),
                temporal_layer: d.temporal_id,
                spatial_layer: d.spatial_id,
                layer_sync: d.switching_up,
                picture_id: d.picture_id,
                tl0_pic_idx: d.tl0_pic_idx,
                dimensions: d.scalability.and_then(|ss| ss.dimensions(0)),
            })
        }
        Codec::H264 => {
            let p = h264::parse(payload)?;
            Ok(FrameInfo {
                keyframe: p.keyframe,
                frame_start: p.frame_start,
                ..FrameInfo::default()
            })
        }
        Codec::Av1 => {
            let p = av1::parse(payload)?;
            Ok(FrameInfo {
                keyframe: p.is_keyframe(),
                frame_start: p.is_frame_start(),
                temporal_layer: p.first_obu.and_then(|o| o.temporal_id),
                spatial_layer: p.first_obu.and_then(|o| o.spatial_id),
                ..FrameInfo::default()
            })
        }
    }
}

/// Like [`frame_info`], but a malformed payload is reported as "no keyframe, no frame
/// start, no layers" instead of an error: the SFU then simply never switches on it.
pub fn keyframe_info(codec: Codec, payload: &[u8]) -> FrameInfo {
    frame_info(codec, payload).unwrap_or_default()
}

/// Rewrites the picture id (and TL0PICIDX when given and present) of a VP8/VP9 payload in
/// place, keeping the field widths. A no-op for the other codecs, and for payloads that do
/// not carry the field.
pub fn rewrite_picture_id(
    codec: Codec,
    payload: &mut [u8],
    picture_id: u16,
    tl0_pic_idx: Option<u8>,
) -> Result<(), PayloadError> {
    match codec {
        Codec::Vp8 => vp8::rewrite_picture_id(payload, picture_id, tl0_pic_idx),
        Codec::Vp9 => vp9::rewrite_picture_id(payload, picture_id, tl0_pic_idx),
        Codec::Opus | Codec::H264 | Codec::Av1 => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rates_and_kinds() {
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::Vp8.clock_rate(), 90_000);
        assert!(Codec::Opus.is_audio());
        assert!(Codec::Av1.is_video());
        assert!(!Codec::H264.is_audio());
    }

    #[test]
    fn mime_lookup_ignores_case() {
        assert_eq!(Codec::from_mime_subtype("vp8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_mime_subtype("OPUS"), Some(Codec::Opus));
        assert_eq!(Codec::from_mime_subtype("h264"), Some(Codec::H264));
        assert_eq!(Codec::from_mime_subtype("av1"), Some(Codec::Av1));
        assert_eq!(Codec::from_mime_subtype("g722"), None);
    }

    #[test]
    fn vp8_keyframe_info() {
        // X=1,S=1,PID=0 | I=1,L=1,T=1 | M=1 pid 0x1234 | tl0 7 | tid 1, Y=1 | keyframe header
        let payload = [
            0x90, 0xe0, 0x92, 0x34, 0x07, 0x60, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02,
            0x68, 0x01,
        ];
        let info = keyframe_info(Codec::Vp8, &payload);
        assert!(info.keyframe);
        assert!(info.frame_start);
        assert_eq!(info.temporal_layer, Some(1));
        assert!(info.layer_sync);
        assert_eq!(
            info.picture_id,
            Some(PictureId {
                value: 0x1234,
                long: true
            })
        );
        assert_eq!(info.tl0_pic_idx, Some(7));
        assert_eq!(
            info.dimensions,
            Some(Dimensions {
                width: 640,
                height: 360
            })
        );
    }

    #[test]
    fn malformed_payload_is_not_a_keyframe() {
        assert_eq!(keyframe_info(Codec::Vp8, &[]), FrameInfo::default());
        assert_eq!(keyframe_info(Codec::H264, &[0x7c]), FrameInfo::default());
        assert!(frame_info(Codec::Opus, &[]).is_err());
    }

    #[test]
    fn opus_packets_are_always_decodable_starts() {
        let info = keyframe_info(Codec::Opus, &[0x78, 0x01, 0x02]);
        assert!(info.keyframe && info.frame_start);
    }

    #[test]
    fn h264_and_av1_and_vp9_route_to_their_parsers() {
        // STAP-A with SPS.
        let h264 = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(keyframe_info(Codec::H264, &h264).keyframe);
        // AV1: N=1, W=1, OBU sequence header.
        let av1 = [0x18, 0x08, 0x00];
        assert!(keyframe_info(Codec::Av1, &av1).keyframe);
        // VP9: I=1, B=1, pid short 5, keyframe (P=0), L=1 TID 0 SID 0, TL0 3.
        let vp9 = [0xa8, 0x05, 0x00, 0x03];
        let info = keyframe_info(Codec::Vp9, &vp9);
        assert!(info.keyframe);
        assert_eq!(info.spatial_layer, Some(0));
        assert_eq!(info.tl0_pic_idx, Some(3));
    }

    #[test]
    fn rewrite_is_noop_for_codecs_without_picture_ids() {
        let mut p = [0x78, 0x00];
        rewrite_picture_id(Codec::H264, &mut p, 5, Some(1)).unwrap();
        assert_eq!(p, [0x78, 0x00]);
    }

    #[test]
    fn every_codec_survives_random_bytes() {
        for codec in Codec::ALL {
            crate::fuzz::for_random_inputs(0xc0dec + codec as u64, &[], |bytes| {
                let info = keyframe_info(codec, bytes);
                if info.keyframe && codec.is_video() {
                    assert!(info.frame_start, "{codec:?} keyframe without frame start");
                }
                let mut copy = [0u8; 64];
                let n = bytes.len().min(64);
                copy[..n].copy_from_slice(&bytes[..n]);
                let _ = rewrite_picture_id(codec, &mut copy[..n], 0x7fff, Some(255));
            });
        }
    }
}
