//! RTP payloads back into codec frames, for recording.
//!
//! A [`Depacketizer`] takes one track's packets in sequence order (a reorder
//! buffer in front of it handles arrival order) and returns whole frames in
//! the form a Matroska track stores them: VP8/VP9 frames, H.264 access units
//! as 4-byte length-prefixed NAL units (AVCC), AV1 temporal units as OBUs with
//! size fields, Opus packets as they are. A frame with a packet missing is
//! dropped, and video then waits for the next keyframe, so a recording never
//! holds a frame a decoder would choke on. Malformed payloads are dropped the
//! same way; nothing here panics on arbitrary bytes.

use crate::{Codec, Dimensions, av1, vp8, vp9};

/// One frame, ready for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// RTP timestamp of the frame.
    pub ts: u32,
}

/// Largest frame assembled; anything bigger is dropped as broken.
const MAX_FRAME: usize = 8 << 20;

/// Reassembles one track's frames (see the module docs).
#[derive(Debug)]
pub struct Depacketizer {
    codec: Codec,
    buf: Vec<u8>,
    ts: Option<u32>,
    broken: bool,
    keyframe: bool,
    started: bool,
    /// Video: frames are dropped until a keyframe.
    need_keyframe: bool,
    dims: Option<Dimensions>,
    dropped: u64,
    // H.264
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    fu_len_pos: Option<usize>,
    // AV1
    obu: Vec<u8>,
    obu_open: bool,
    seq_header: Option<Vec<u8>>,
}

impl Depacketizer {
    pub fn new(codec: Codec) -> Depacketizer {
        Depacketizer {
            codec,
            buf: Vec::new(),
            ts: None,
            broken: false,
            keyframe: false,
            started: false,
            need_keyframe: codec.is_video(),
            dims: None,
            dropped: 0,
            sps: None,
            pps: None,
            fu_len_pos: None,
            obu: Vec::new(),
            obu_open: false,
            seq_header: None,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Picture size, once a keyframe showed it.
    pub fn dimensions(&self) -> Option<Dimensions> {
        self.dims
    }

    /// Frames dropped because a packet was missing or malformed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Video is waiting for a keyframe (ask the sender for one).
    pub fn wants_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// The container's codec configuration: `avcC` for H.264 (once an SPS
    /// and PPS were seen), `av1C` for AV1 (once a sequence header was seen).
    pub fn codec_private(&self) -> Option<Vec<u8>> {
        match self.codec {
            Codec::H264 => {
                let (sps, pps) = (self.sps.as_ref()?, self.pps.as_ref()?);
                if sps.len() < 4 || sps.len() > 0xFFFF || pps.len() > 0xFFFF {
                    return None;
                }
                let mut c = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
                c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
                c.extend_from_slice(sps);
                c.push(1);
                c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
                c.extend_from_slice(pps);
                Some(c)
            }
            Codec::Av1 => {
                let sh = self.seq_header.as_ref()?;
                // The sequence header OBU's payload starts after its header
                // and size field; its first 3 bits are seq_profile.
                let payload_first = sh.get(2).copied().unwrap_or(0);
                let profile = payload_first >> 5;
                let mut c = vec![0x81, profile << 5, 0x0C, 0];
                c.extend_from_slice(sh);
                Some(c)
            }
            _ => None,
        }
    }

    /// Feeds the next packet of the track. `gap`: packets were lost right
    /// before this one. Returns a frame when this packet completes one.
    pub fn push(&mut self, payload: &[u8], ts: u32, marker: bool, gap: bool) -> Option<Frame> {
        if self.codec == Codec::Opus {
            if payload.is_empty() || crate::opus::parse(payload).is_err() {
                self.dropped += 1;
                return None;
            }
            return Some(Frame {
                data: payload.to_vec(),
                keyframe: true,
                ts,
            });
        }
        if self.ts != Some(ts) {
            if self.ts.is_some() && !self.buf.is_empty() {
                // The previous frame never saw its marker.
                self.drop_frame();
            }
            self.buf.clear();
            self.ts = Some(ts);
            self.broken = false;
            self.keyframe = false;
            self.started = false;
            self.fu_len_pos = None;
            self.obu.clear();
            self.obu_open = false;
        }
        if gap {
            self.broken = true;
        }
        if !self.broken && self.append(payload).is_none() {
            self.broken = true;
        }
        if self.buf.len() > MAX_FRAME {
            self.broken = true;
            self.buf.clear();
        }
        if !marker {
            return None;
        }
        self.ts = None;
        let complete = !self.broken
            && self.started
            && !self.buf.is_empty()
            && self.fu_len_pos.is_none()
            && !self.obu_open;
        if !complete {
            self.drop_frame();
            self.buf.clear();
            return None;
        }
        if self.need_keyframe && !self.keyframe {
            self.dropped += 1;
            self.buf.clear();
            return None;
        }
        self.need_keyframe = false;
        Some(Frame {
            data: std::mem::take(&mut self.buf),
            keyframe: self.keyframe,
            ts,
        })
    }

    fn drop_frame(&mut self) {
        self.dropped += 1;
        self.need_keyframe = true;
    }

    fn append(&mut self, payload: &[u8]) -> Option<()> {
        let first = self.buf.is_empty() && !self.started;
        match self.codec {
            Codec::Vp8 => {
                let p = vp8::parse(payload).ok()?;
                if first {
                    self.started = p.frame_start;
                    self.keyframe = p.keyframe;
                    if let Some(d) = p.dimensions {
                        self.dims = Some(d);
                    }
                }
                self.buf.extend_from_slice(payload.get(p.descriptor.len..)?);
            }
            Codec::Vp9 => {
                let d = vp9::parse(payload).ok()?;
                if d.spatial_id.unwrap_or(0) != 0 {
                    // Only the base spatial layer is recorded.
                    return Some(());
                }
                if first {
                    self.started = d.start_of_frame;
                    self.keyframe = d.is_keyframe();
                    if let Some(dim) = d.scalability.and_then(|ss| ss.dimensions(0)) {
                        self.dims = Some(dim);
                    }
                }
                self.buf.extend_from_slice(payload.get(d.len..)?);
            }
            Codec::H264 => {
                self.started = true;
                self.append_h264(payload)?;
            }
            Codec::Av1 => {
                if first {
                    self.started = true;
                    self.keyframe = av1::is_keyframe(payload);
                }
                self.append_av1(payload)?;
            }
            Codec::Opus => {}
        }
        Some(())
    }

    fn push_nal(&mut self, nal: &[u8]) -> Option<()> {
        let t = *nal.first()? & 0x1F;
        match t {
            5 => self.keyframe = true,
            7 => {
                if let Some(d) = sps_dimensions(nal) {
                    self.dims = Some(d);
                }
                self.sps = Some(nal.to_vec());
            }
            8 => self.pps = Some(nal.to_vec()),
            9 => return Some(()), // access unit delimiter: not stored
            _ => {}
        }
        self.buf
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(nal);
        Some(())
    }

    fn append_h264(&mut self, payload: &[u8]) -> Option<()> {
        let header = *payload.first()?;
        match header & 0x1F {
            1..=23 => {
                if self.fu_len_pos.is_some() {
                    return None;
                }
                self.push_nal(payload)
            }
            24 => {
                if self.fu_len_pos.is_some() {
                    return None;
                }
                let mut pos = 1;
                while pos < payload.len() {
                    let len = u16::from_be_bytes([*payload.get(pos)?, *payload.get(pos + 1)?]);
                    pos += 2;
                    let nal = payload.get(pos..pos + usize::from(len))?;
                    pos += usize::from(len);
                    self.push_nal(nal)?;
                }
                Some(())
            }
            28 => {
                let fu = *payload.get(1)?;
                let (start, end, t) = (fu & 0x80 != 0, fu & 0x40 != 0, fu & 0x1F);
                let body = payload.get(2..)?;
                if start {
                    if self.fu_len_pos.is_some() {
                        return None;
                    }
                    let nal_header = (header & 0xE0) | t;
                    if t == 5 {
                        self.keyframe = true;
                    }
                    self.fu_len_pos = Some(self.buf.len());
                    self.buf.extend_from_slice(&[0, 0, 0, 0, nal_header]);
                } else if self.fu_len_pos.is_none() {
                    return None;
                }
                self.buf.extend_from_slice(body);
                if end {
                    let at = self.fu_len_pos.take()?;
                    let len = (self.buf.len() - at - 4) as u32;
                    self.buf
                        .get_mut(at..at + 4)?
                        .copy_from_slice(&len.to_be_bytes());
                    let nal_type = self.buf.get(at + 4).map(|b| b & 0x1F);
                    if matches!(nal_type, Some(7 | 8)) {
                        let nal = self.buf[at + 4..].to_vec();
                        if nal_type == Some(7) {
                            self.dims = sps_dimensions(&nal).or(self.dims);
                            self.sps = Some(nal);
                        } else {
                            self.pps = Some(nal);
                        }
                    }
                }
                Some(())
            }
            _ => None,
        }
    }

    fn append_av1(&mut self, payload: &[u8]) -> Option<()> {
        let agg = *payload.first()?;
        let (z, y, w) = (agg & 0x80 != 0, agg & 0x40 != 0, (agg >> 4) & 0x03);
        let mut pos = 1;
        let mut index = 0u8;
        while pos < payload.len() {
            index += 1;
            let size = if w != 0 && index == w {
                payload.len() - pos
            } else {
                let (v, n) = leb128(payload.get(pos..)?)?;
                pos += n;
                usize::try_from(v).ok()?
            };
            let elem = payload.get(pos..pos.checked_add(size)?)?;
            pos += size;
            if index == 1 && z {
                if !self.obu_open {
                    return None;
                }
                self.obu.extend_from_slice(elem);
            } else {
                if self.obu_open {
                    return None;
                }
                self.obu.clear();
                self.obu.extend_from_slice(elem);
                self.obu_open = true;
            }
            let continues = pos >= payload.len() && y;
            if !continues {
                let obu = std::mem::take(&mut self.obu);
                self.obu_open = false;
                self.finish_obu(&obu)?;
            }
        }
        Some(())
    }

    fn finish_obu(&mut self, obu: &[u8]) -> Option<()> {
        let h = *obu.first()?;
        let obu_type = (h >> 3) & 0x0F;
        let ext = h & 0x04 != 0;
        let has_size = h & 0x02 != 0;
        let header_len = if ext { 2 } else { 1 };
        let mut body = obu.get(header_len..)?;
        if has_size {
            let (v, n) = leb128(body)?;
            body = body.get(n..n.checked_add(usize::try_from(v).ok()?)?)?;
        }
        if obu_type == 2 || obu_type == 8 {
            // Temporal delimiters and padding are not stored.
            return Some(());
        }
        let start = self.buf.len();
        self.buf.push(h | 0x02);
        if ext {
            self.buf.push(*obu.get(1)?);
        }
        push_leb128(&mut self.buf, body.len() as u64);
        self.buf.extend_from_slice(body);
        if obu_type == 1 {
            self.seq_header = Some(self.buf[start..].to_vec());
        }
        Some(())
    }
}

fn leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(8).enumerate() {
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn push_leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Bit reader over an RBSP (emulation prevention bytes removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal_payload: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal_payload.len());
        let mut zeros = 0;
        for &b in nal_payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let v = i64::from(k.div_ceil(2));
        i32::try_from(if k % 2 == 0 { -v } else { v }).ok()
    }
}

/// Picture size from an H.264 SPS NAL unit (with its header byte).
pub fn sps_dimensions(nal: &[u8]) -> Option<Dimensions> {
    let mut b = Bits::new(nal.get(1..)?);
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags, level
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = b.ue()?;
        if chroma_format == 3 {
            b.bit()?;
        }
        b.ue()?;
        b.ue()?;
        b.bit()?;
        if b.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            // delta_scale is -128..=127 (H.264 7.4.2.1.1.1).
                            let delta = b.se()?;
                            if !(-128..=127).contains(&delta) {
                                return None;
                            }
                            next = (last + delta + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?;
    let w_mbs = b.ue()?.checked_add(1)?;
    let h_units = b.ue()?.checked_add(1)?;
    let frame_mbs_only = b.bit()?;
    if frame_mbs_only == 0 {
        b.bit()?;
    }
    b.bit()?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if b.bit()? == 1 {
        cl = b.ue()?;
        cr = b.ue()?;
        ct = b.ue()?;
        cb = b.ue()?;
    }
    let (crop_x, crop_y) = match chroma_format {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    // Every figure here comes from the stream: checked arithmetic only (a
    // hostile SPS's crop of 2^31 overflowed the multiplication; fuzzing).
    let width = w_mbs
        .checked_mul(16)?
        .checked_sub(cl.checked_add(cr)?.checked_mul(crop_x)?)?;
    let height = (2 - frame_mbs_only)
        .checked_mul(h_units)?
        .checked_mul(16)?
        .checked_sub(ct.checked_add(cb)?.checked_mul(crop_y)?)?;
    Some(Dimensions {
        width: u16::try_from(width).ok()?,
        height: u16::try_from(height).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/fuzz_targets/depacketize.rs` (the fuzz target's framing:
    /// codec byte, then length, timestamp and flags before each payload): an
    /// H.264 SPS whose frame crop overflowed the size arithmetic (a panic in
    /// debug builds, a wrapped size in release builds).
    #[test]
    fn a_hostile_sps_crop_is_refused_not_overflowed() {
        let input: [u8; 27] = [
            63, 37, 22, 0, 0, 47, 0, 152, 199, 199, 199, 199, 255, 48, 24, 0, 0, 0, 0, 38, 0, 37,
            81, 35, 80, 152, 53,
        ];
        let codec = Codec::ALL[input[0] as usize % Codec::ALL.len()];
        let mut d = Depacketizer::new(codec);
        let mut rest = &input[1..];
        while rest.len() >= 7 {
            let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            let ts = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]);
            let flags = rest[6];
            rest = &rest[7..];
            let (payload, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            d.push(payload, ts, flags & 1 == 1, flags & 2 == 2);
        }
        assert_eq!(d.dimensions(), None);
    }

    /// Found by `fuzz/fuzz_targets/rtp_payload.rs`: an SPS scaling list whose
    /// delta_scale (a signed Exp-Golomb value) was 2^31 wrapped to i32::MIN
    /// and overflowed the addition.
    #[test]
    fn a_scaling_list_delta_out_of_range_is_refused() {
        let nal = [
            0x72, 0x2c, 0x1c, 0xff, 0x11, 0xff, 0xfd, 0x11, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x2a,
            0x3d,
        ];
        assert_eq!(sps_dimensions(&nal), None);
    }

    /// VP8 payload: descriptor (X=0, S=1 on frame start) + VP8 bytes.
    fn vp8(start: bool, key: bool, body: &[u8]) -> Vec<u8> {
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        if start {
            // Frame tag: P bit 0 for keyframes, then the start code and 640x480.
            p.push(if key { 0x00 } else { 0x01 });
            p.extend_from_slice(&[0x00, 0x00]);
            if key {
                p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
            }
        }
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn vp8_frames_are_reassembled_and_keyframes_found() {
        let mut d = Depacketizer::new(Codec::Vp8);
        assert!(
            d.push(&vp8(true, true, &[1, 2]), 100, false, false)
                .is_none()
        );
        let f = d
            .push(&vp8(false, false, &[3, 4]), 100, true, false)
            .unwrap();
        assert!(f.keyframe);
        assert_eq!(f.ts, 100);
        assert_eq!(&f.data[f.data.len() - 4..], &[1, 2, 3, 4]);
        assert_eq!(
            d.dimensions(),
            Some(Dimensions {
                width: 640,
                height: 480
            })
        );
        let f = d.push(&vp8(true, false, &[9]), 200, true, false).unwrap();
        assert!(!f.keyframe);
    }

    #[test]
    fn a_lost_packet_drops_frames_until_the_next_keyframe() {
        let mut d = Depacketizer::new(Codec::Vp8);
        assert!(d.push(&vp8(true, true, &[1]), 100, true, false).is_some());
        // Second packet of frame 200 lost: the frame is dropped...
        assert!(d.push(&vp8(true, false, &[1]), 200, false, false).is_none());
        assert!(d.push(&vp8(false, false, &[2]), 200, true, true).is_none());
        assert!(d.wants_keyframe());
        // ...and so is the next delta frame, until a keyframe.
        assert!(d.push(&vp8(true, false, &[1]), 300, true, false).is_none());
        assert!(d.push(&vp8(true, true, &[1]), 400, true, false).is_some());
        assert!(!d.wants_keyframe());
        assert_eq!(d.dropped(), 2);
    }

    #[test]
    fn video_waits_for_its_first_keyframe() {
        let mut d = Depacketizer::new(Codec::Vp8);
        assert!(d.push(&vp8(true, false, &[1]), 100, true, false).is_none());
        assert!(d.push(&vp8(true, true, &[1]), 200, true, false).is_some());
    }

    #[test]
    fn opus_packets_pass_through() {
        let mut d = Depacketizer::new(Codec::Opus);
        let f = d.push(&[0xF8, 1, 2], 960, false, true).unwrap();
        assert_eq!(f.data, vec![0xF8, 1, 2]);
        assert!(d.push(&[], 1920, false, false).is_none());
    }

    // A 640x480 baseline SPS (as x264 writes it) and a PPS.
    const SPS: [u8; 10] = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xF6, 0x84, 0x00];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    #[test]
    fn h264_stap_a_and_fu_a_become_avcc() {
        let mut d = Depacketizer::new(Codec::H264);
        let mut stap = vec![24];
        for nal in [&SPS[..], &PPS[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert!(d.push(&stap, 10, false, false).is_none());
        // IDR in two FU-A fragments.
        assert!(d.push(&[0x7C, 0x85, 1, 2], 10, false, false).is_none());
        let f = d.push(&[0x7C, 0x45, 3], 10, true, false).unwrap();
        assert!(f.keyframe);
        let tail = &f.data[f.data.len() - 8..];
        assert_eq!(tail, &[0, 0, 0, 4, 0x65, 1, 2, 3]);
        let avcc = d.codec_private().unwrap();
        assert_eq!(&avcc[..6], &[1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1]);
        assert_eq!(
            d.dimensions(),
            Some(Dimensions {
                width: 640,
                height: 480
            })
        );
    }

    #[test]
    fn av1_obus_get_size_fields() {
        let mut d = Depacketizer::new(Codec::Av1);
        // N=1, W=2: a sequence header (type 1) with a length, then a frame
        // OBU (type 6) split over two packets (Y=1 then Z=1).
        let p1 = [0x68, 0x03, 0x08, 0x00, 0x00, 0x30, 0xAA];
        assert!(d.push(&p1, 5, false, false).is_none());
        let f = d.push(&[0x90, 0xBB], 5, true, false).unwrap();
        assert!(f.keyframe);
        assert_eq!(f.data, vec![0x0A, 2, 0, 0, 0x32, 2, 0xAA, 0xBB]);
        assert_eq!(d.codec_private().unwrap()[..4], [0x81, 0, 0x0C, 0]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for codec in Codec::ALL {
            let mut d = Depacketizer::new(codec);
            let mut n = 0u32;
            crate::fuzz::for_random_inputs(11, &[&SPS, &PPS], |b| {
                n = n.wrapping_add(1);
                let _ = d.push(b, n / 3, n.is_multiple_of(3), n.is_multiple_of(17));
                let _ = d.codec_private();
            });
            let _ = sps_dimensions(&SPS[..5]);
        }
    }
}
