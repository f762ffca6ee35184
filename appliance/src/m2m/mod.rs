//! H.264 through a V4L2 memory-to-memory hardware encoder (the Raspberry
//! Pi's `bcm2835-codec`, usually `/dev/video11`).
//!
//! [`probe`] looks through `/dev/video*` for a device whose capabilities say
//! memory-to-memory (single- or multi-planar) and whose capture queue
//! offers H.264 while its output queue takes planar YUV 4:2:0. The encoder
//! is configured through controls ([`encoder_controls`]: bitrate, CBR, IDR
//! period, constrained-baseline profile, level, SPS/PPS repeated before
//! every IDR), fed I420 pictures through mmap buffers on the output queue,
//! and read back as Annex B from the capture queue; a PLI becomes
//! `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`. When no such device exists the
//! caller falls back to openh264 ([`crate::encode::open_video_encoder`]).
//!
//! Everything that can be decided without a device is a pure function with
//! unit tests: capability parsing, format selection, control mapping, the
//! stride-aware picture copy, Annex B parsing and parameter-set handling.
//! The ioctl layer ([`hw`], `m2m/hw.rs`) is kept thin. It has **not** been run against
//! real hardware (no device exists on the development or CI machines).

use std::path::{Path, PathBuf};

// ---- kernel ABI constants (linux/videodev2.h, linux/v4l2-controls.h) ----------------

pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
pub const BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;

const CID_CODEC_BASE: u32 = 0x0099_0000 | 0x900;
pub const CID_BITRATE_MODE: u32 = CID_CODEC_BASE + 206;
pub const CID_BITRATE: u32 = CID_CODEC_BASE + 207;
pub const CID_REPEAT_SEQ_HEADER: u32 = CID_CODEC_BASE + 226;
pub const CID_FORCE_KEY_FRAME: u32 = CID_CODEC_BASE + 229;
pub const CID_H264_I_PERIOD: u32 = CID_CODEC_BASE + 358;
pub const CID_H264_LEVEL: u32 = CID_CODEC_BASE + 359;
pub const CID_H264_PROFILE: u32 = CID_CODEC_BASE + 363;
pub const BITRATE_MODE_CBR: i32 = 1;
pub const PROFILE_BASELINE: i32 = 0;
pub const PROFILE_CONSTRAINED_BASELINE: i32 = 1;

pub const FOURCC_H264: [u8; 4] = *b"H264";
/// Contiguous I420 (`YU12`): what the agent's pictures already are.
pub const FOURCC_YU12: [u8; 4] = *b"YU12";
/// I420 in three planes (`YM12`), multi-planar devices only.
pub const FOURCC_YM12: [u8; 4] = *b"YM12";

/// Single- or multi-planar buffer API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planes {
    Single,
    Multi,
}

impl Planes {
    /// (output = pictures in, capture = bitstream out) buffer types.
    pub fn buf_types(self) -> (u32, u32) {
        match self {
            Planes::Single => (BUF_TYPE_VIDEO_OUTPUT, BUF_TYPE_VIDEO_CAPTURE),
            Planes::Multi => (BUF_TYPE_VIDEO_OUTPUT_MPLANE, BUF_TYPE_VIDEO_CAPTURE_MPLANE),
        }
    }
}

/// The caps that matter: `device_caps` when the driver fills it, else `capabilities`.
pub fn m2m_planes(capabilities: u32, device_caps: u32) -> Option<Planes> {
    let caps = if capabilities & CAP_DEVICE_CAPS != 0 {
        device_caps
    } else {
        capabilities
    };
    if caps & CAP_STREAMING == 0 {
        return None;
    }
    if caps & CAP_VIDEO_M2M_MPLANE != 0 {
        Some(Planes::Multi)
    } else if caps & CAP_VIDEO_M2M != 0 {
        Some(Planes::Single)
    } else {
        None
    }
}

/// What one `/dev/videoN` offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    pub planes: Option<Planes>,
    /// Formats of the output queue (what the device reads).
    pub output_formats: Vec<[u8; 4]>,
    /// Formats of the capture queue (what the device writes).
    pub capture_formats: Vec<[u8; 4]>,
}

/// The input picture format to use with a device, if it encodes I420 to H.264.
/// Contiguous `YU12` is preferred (one plane, a plain copy); `YM12` works on
/// multi-planar devices.
pub fn input_format(d: &DeviceInfo) -> Option<[u8; 4]> {
    let planes = d.planes?;
    if !d.capture_formats.contains(&FOURCC_H264) {
        return None;
    }
    if d.output_formats.contains(&FOURCC_YU12) {
        Some(FOURCC_YU12)
    } else if planes == Planes::Multi && d.output_formats.contains(&FOURCC_YM12) {
        Some(FOURCC_YM12)
    } else {
        None
    }
}

/// The first usable encoder among `devices` (already in probe order).
pub fn select_encoder(devices: &[DeviceInfo]) -> Option<(&DeviceInfo, [u8; 4])> {
    devices.iter().find_map(|d| input_format(d).map(|f| (d, f)))
}

/// `/dev/video*` paths in numeric order (`video10` after `video9`).
pub fn video_nodes(names: impl IntoIterator<Item = String>, dir: &Path) -> Vec<PathBuf> {
    let mut n: Vec<(u32, String)> = names
        .into_iter()
        .filter_map(|name| {
            let num = name.strip_prefix("video")?.parse().ok()?;
            Some((num, name))
        })
        .collect();
    n.sort();
    n.into_iter().map(|(_, name)| dir.join(name)).collect()
}

/// A NUL-padded C string field.
pub fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// H.264 level (V4L2 enum value) for a size and rate: the lowest of 3.1, 4.0,
/// 4.2 whose macroblock rate fits.
pub fn h264_level(width: u32, height: u32, fps: u32) -> i32 {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let rate = mbs * u64::from(fps.max(1));
    if mbs <= 3600 && rate <= 108_000 {
        9 // 3.1: 720p30
    } else if mbs <= 8192 && rate <= 245_760 {
        11 // 4.0: 1080p30
    } else {
        13 // 4.2: 1080p60
    }
}

/// One control to set, with its name for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub id: u32,
    pub value: i32,
    pub name: &'static str,
    /// Whether the encoder cannot run as wanted without it.
    pub required: bool,
}

/// The encoder's controls: CBR at `bitrate_kbps`, an IDR every 2 seconds,
/// constrained baseline (what browsers decode with packetization-mode 1),
/// a level fitting the size, SPS/PPS before every IDR (so a receiver that
/// joins late or lost packets can start at any keyframe).
pub fn encoder_controls(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Vec<Control> {
    let bps = bitrate_kbps.saturating_mul(1000).min(i32::MAX as u32) as i32;
    vec![
        Control {
            id: CID_BITRATE_MODE,
            value: BITRATE_MODE_CBR,
            name: "bitrate mode",
            required: false,
        },
        Control {
            id: CID_BITRATE,
            value: bps,
            name: "bitrate",
            required: true,
        },
        Control {
            id: CID_H264_I_PERIOD,
            value: (fps.max(1) * 2) as i32,
            name: "IDR period",
            required: false,
        },
        Control {
            id: CID_H264_PROFILE,
            value: PROFILE_CONSTRAINED_BASELINE,
            name: "profile",
            required: false,
        },
        Control {
            id: CID_H264_LEVEL,
            value: h264_level(width, height, fps),
            name: "level",
            required: false,
        },
        Control {
            id: CID_REPEAT_SEQ_HEADER,
            value: 1,
            name: "repeat sequence header",
            required: false,
        },
    ]
}

/// Copies a packed I420 picture into a driver buffer laid out with
/// `stride` bytes per luma row and `plane_rows` rows per luma plane (drivers
/// align both, e.g. to 32 and 16); chroma planes follow with half of each.
/// Returns the bytes used, or None when `dst` is too small.
pub fn pack_i420(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    plane_rows: usize,
    dst: &mut [u8],
) -> Option<usize> {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (cstride, crows) = (stride.div_ceil(2), plane_rows.div_ceil(2));
    let need = stride * plane_rows + 2 * cstride * crows;
    if stride < width
        || plane_rows < height
        || dst.len() < need
        || src.len() < width * height + 2 * cw * ch
    {
        return None;
    }
    let mut s = 0;
    for r in 0..height {
        dst[r * stride..r * stride + width].copy_from_slice(&src[s..s + width]);
        s += width;
    }
    for p in 0..2 {
        let base = stride * plane_rows + p * cstride * crows;
        for r in 0..ch {
            let o = base + r * cstride;
            dst[o..o + cw].copy_from_slice(&src[s..s + cw]);
            s += cw;
        }
    }
    Some(need)
}

/// NAL unit payloads of an Annex B stream (start codes removed).
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map(|e| e - 3).unwrap_or(data.len());
        // A 4-byte start code's leading zero belongs to no NAL.
        while end > s && data[end - 1] == 0 && starts.get(n + 1).is_some() {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}

/// Turns the encoder's capture buffers into frames: buffers carrying only
/// SPS/PPS (some drivers emit the stream header on its own) are remembered
/// and put in front of the next IDR that lacks them; every IDR leaves with
/// SPS and PPS.
#[derive(Debug, Default)]
pub struct AnnexB {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// A frame out of [`AnnexB::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Frame {
    pub data: Vec<u8>,
    pub key: bool,
}

impl AnnexB {
    pub fn push(&mut self, buf: &[u8]) -> Option<H264Frame> {
        let nals = nal_units(buf);
        let mut has_sps = false;
        let mut has_pps = false;
        let mut idr = false;
        let mut vcl = false;
        for n in &nals {
            match nal_type(n) {
                7 => {
                    has_sps = true;
                    self.sps = Some(n.to_vec());
                }
                8 => {
                    has_pps = true;
                    self.pps = Some(n.to_vec());
                }
                5 => {
                    idr = true;
                    vcl = true;
                }
                1..=4 => vcl = true,
                _ => {}
            }
        }
        if !vcl {
            return None;
        }
        let mut data = Vec::with_capacity(buf.len() + 64);
        if idr {
            for (have, ps) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
                if !have && let Some(p) = ps {
                    data.extend_from_slice(&[0, 0, 0, 1]);
                    data.extend_from_slice(p);
                }
            }
        }
        data.extend_from_slice(buf);
        Some(H264Frame { data, key: idr })
    }
}

/// Which H.264 encoder runs, for the status APIs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncoderChoice {
    /// `v4l2-m2m`, `openh264` or `libvpx`.
    pub kind: &'static str,
    pub device: Option<String>,
    pub driver: Option<String>,
    /// Why the hardware encoder is not used, when it is not.
    pub reason: Option<String>,
}

/// The decision between the hardware encoder and openh264.
pub fn choose(devices: &[DeviceInfo], probe_errors: &[String]) -> EncoderChoice {
    match select_encoder(devices) {
        Some((d, _)) => EncoderChoice {
            kind: "v4l2-m2m",
            device: Some(d.path.display().to_string()),
            driver: Some(d.driver.clone()),
            reason: None,
        },
        None => EncoderChoice {
            kind: "openh264",
            device: None,
            driver: None,
            reason: Some(if devices.is_empty() {
                let mut r = "no V4L2 memory-to-memory device found".to_string();
                if !probe_errors.is_empty() {
                    r.push_str(&format!(" ({})", probe_errors.join("; ")));
                }
                r
            } else {
                format!(
                    "no device encodes YUV 4:2:0 to H.264 among {}",
                    devices
                        .iter()
                        .map(|d| format!("{} ({})", d.path.display(), d.driver))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        },
    }
}

/// Probes `/dev/video*` and returns every memory-to-memory device found,
/// with the errors of nodes that could not be read.
pub fn probe(dir: &Path) -> (Vec<DeviceInfo>, Vec<String>) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in video_nodes(names, dir) {
        match hw::describe(&path) {
            Ok(Some(d)) => found.push(d),
            Ok(None) => {}
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (found, errors)
}

#[allow(unsafe_code)]
pub mod hw;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dev(
        path: &str,
        driver: &str,
        planes: Option<Planes>,
        out: &[&[u8; 4]],
        cap: &[&[u8; 4]],
    ) -> DeviceInfo {
        DeviceInfo {
            path: PathBuf::from(path),
            driver: driver.into(),
            card: String::new(),
            planes,
            output_formats: out.iter().map(|f| **f).collect(),
            capture_formats: cap.iter().map(|f| **f).collect(),
        }
    }

    #[test]
    fn capabilities_say_m2m_and_which_api() {
        // bcm2835-codec: device_caps = M2M_MPLANE | STREAMING.
        let caps = CAP_DEVICE_CAPS | CAP_VIDEO_M2M_MPLANE | CAP_STREAMING | 0x0020_0000;
        assert_eq!(
            m2m_planes(caps, CAP_VIDEO_M2M_MPLANE | CAP_STREAMING),
            Some(Planes::Multi)
        );
        assert_eq!(
            m2m_planes(caps, CAP_VIDEO_M2M | CAP_STREAMING),
            Some(Planes::Single)
        );
        // Without DEVICE_CAPS, `capabilities` is what counts.
        assert_eq!(
            m2m_planes(CAP_VIDEO_M2M | CAP_STREAMING, 0),
            Some(Planes::Single)
        );
        // A camera (VIDEO_CAPTURE), or m2m without streaming, is not an encoder.
        assert_eq!(m2m_planes(CAP_DEVICE_CAPS | 1, 1 | CAP_STREAMING), None);
        assert_eq!(m2m_planes(CAP_VIDEO_M2M, 0), None);
        assert_eq!(Planes::Multi.buf_types(), (10, 9));
        assert_eq!(Planes::Single.buf_types(), (2, 1));
        assert_eq!(c_string(b"bcm2835-codec\0\0\0"), "bcm2835-codec");
    }

    #[test]
    fn the_encoder_is_the_first_device_from_i420_to_h264() {
        let decoder = dev(
            "/dev/video10",
            "bcm2835-codec",
            Some(Planes::Multi),
            &[b"H264", b"MJPG"],
            &[b"YU12", b"NV12"],
        );
        let isp = dev(
            "/dev/video12",
            "bcm2835-codec",
            Some(Planes::Multi),
            &[b"YU12"],
            &[b"NV12"],
        );
        let encoder = dev(
            "/dev/video11",
            "bcm2835-codec",
            Some(Planes::Multi),
            &[b"YU12", b"NV12", b"RGB3"],
            &[b"H264"],
        );
        let camera = dev("/dev/video0", "uvcvideo", None, &[], &[b"H264", b"MJPG"]);
        let all = vec![
            camera.clone(),
            decoder.clone(),
            encoder.clone(),
            isp.clone(),
        ];
        let (d, f) = select_encoder(&all).unwrap();
        assert_eq!((d.path.to_str().unwrap(), f), ("/dev/video11", FOURCC_YU12));
        // Three-plane I420 only on a multi-planar device.
        let ym = dev(
            "/dev/video20",
            "x",
            Some(Planes::Multi),
            &[b"YM12"],
            &[b"H264"],
        );
        assert_eq!(input_format(&ym), Some(FOURCC_YM12));
        let ym_single = dev(
            "/dev/video21",
            "x",
            Some(Planes::Single),
            &[b"YM12"],
            &[b"H264"],
        );
        assert_eq!(input_format(&ym_single), None);
        assert!(select_encoder(&[camera, decoder, isp]).is_none());
    }

    #[test]
    fn fallback_choice_says_why() {
        let c = choose(&[], &[]);
        assert_eq!(c.kind, "openh264");
        assert!(
            c.reason
                .unwrap()
                .contains("no V4L2 memory-to-memory device")
        );
        let c = choose(&[], &["/dev/video3: Permission denied".into()]);
        assert!(c.reason.unwrap().contains("Permission denied"));
        let isp = dev(
            "/dev/video12",
            "bcm2835-codec",
            Some(Planes::Multi),
            &[b"YU12"],
            &[b"NV12"],
        );
        let c = choose(&[isp], &[]);
        assert_eq!(c.kind, "openh264");
        assert!(c.reason.unwrap().contains("/dev/video12 (bcm2835-codec)"));
        let enc = dev(
            "/dev/video11",
            "bcm2835-codec",
            Some(Planes::Multi),
            &[b"YU12"],
            &[b"H264"],
        );
        let c = choose(&[enc], &[]);
        assert_eq!(
            (c.kind, c.device.as_deref()),
            ("v4l2-m2m", Some("/dev/video11"))
        );
        // This machine has no encoder: probing finds nothing usable.
        let (found, _) = probe(Path::new("/nonexistent-dev"));
        assert!(found.is_empty());
    }

    #[test]
    fn video_nodes_in_numeric_order() {
        let names =
            ["video11", "video2", "media0", "video10", "videoX", "video0"].map(String::from);
        let got = video_nodes(names, Path::new("/dev"));
        let got: Vec<_> = got.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            ["/dev/video0", "/dev/video2", "/dev/video10", "/dev/video11"]
        );
    }

    #[test]
    fn controls_map_the_configuration() {
        let c = encoder_controls(1280, 720, 30, 1500);
        let get = |id| c.iter().find(|x| x.id == id).unwrap().value;
        assert_eq!(get(CID_BITRATE), 1_500_000);
        assert_eq!(get(CID_BITRATE_MODE), BITRATE_MODE_CBR);
        assert_eq!(get(CID_H264_I_PERIOD), 60);
        assert_eq!(get(CID_H264_PROFILE), PROFILE_CONSTRAINED_BASELINE);
        assert_eq!(get(CID_REPEAT_SEQ_HEADER), 1);
        assert_eq!(get(CID_H264_LEVEL), 9, "720p30 is level 3.1");
        assert_eq!(h264_level(1920, 1080, 30), 11);
        assert_eq!(h264_level(1920, 1080, 60), 13);
        assert_eq!(h264_level(320, 240, 15), 9);
        // The kernel's control ids (v4l2-controls.h).
        assert_eq!(CID_BITRATE, 0x0099_09cf);
        assert_eq!(CID_FORCE_KEY_FRAME, 0x0099_09e5);
        assert_eq!(CID_REPEAT_SEQ_HEADER, 0x0099_09e2);
        assert_eq!(CID_H264_I_PERIOD, 0x0099_0a66);
        assert!(c.iter().filter(|x| x.required).all(|x| x.id == CID_BITRATE));
    }

    #[test]
    fn pictures_are_copied_with_the_drivers_stride() {
        // 6x4 picture into a buffer with stride 8 and 6 rows (aligned).
        let (w, h) = (6usize, 4usize);
        let y: Vec<u8> = (0..24).collect();
        let u: Vec<u8> = (100..106).collect();
        let v: Vec<u8> = (200..206).collect();
        let src = [y.clone(), u.clone(), v.clone()].concat();
        let mut dst = vec![0xeeu8; 8 * 6 + 2 * 4 * 3];
        let used = pack_i420(&src, w, h, 8, 6, &mut dst).unwrap();
        assert_eq!(used, 48 + 24);
        assert_eq!(&dst[8..14], &y[6..12], "second luma row at the stride");
        assert_eq!(
            &dst[48..51],
            &u[0..3],
            "U plane after the padded luma plane"
        );
        assert_eq!(&dst[52..55], &u[3..6], "U rows at half the stride");
        assert_eq!(&dst[60..63], &v[0..3], "V plane after the padded U plane");
        // Packed (no padding) is a plain copy.
        let mut flat = vec![0u8; 36];
        assert_eq!(pack_i420(&src, w, h, 6, 4, &mut flat), Some(36));
        assert_eq!(flat, src);
        assert_eq!(
            pack_i420(&src, w, h, 8, 6, &mut [0u8; 10]),
            None,
            "buffer too small"
        );
        assert_eq!(
            pack_i420(&src, w, h, 4, 6, &mut dst),
            None,
            "stride below width"
        );
    }

    #[test]
    fn annex_b_parsing_and_parameter_sets_before_every_idr() {
        let sps = [0x67, 0x42, 0xe0, 0x1f, 0xaa];
        let pps = [0x68, 0xce, 0x38, 0x80];
        let idr = [0x65, 0x88, 0x84, 0x00, 0x21];
        let p = [0x41, 0x9a, 0x02];
        let sc = |n: &[u8]| [&[0u8, 0, 0, 1][..], n].concat();
        let stream = [sc(&sps), vec![0, 0, 1], pps.to_vec(), sc(&idr)].concat();
        let nals = nal_units(&stream);
        assert_eq!(nals, [&sps[..], &pps[..], &idr[..]]);

        let mut a = AnnexB::default();
        // A header-only buffer (what some drivers send first) is no frame...
        assert_eq!(a.push(&[sc(&sps), sc(&pps)].concat()), None);
        // ...and its SPS/PPS go in front of the IDR that lacks them.
        let f = a.push(&sc(&idr)).unwrap();
        assert!(f.key);
        assert_eq!(f.data, [sc(&sps), sc(&pps), sc(&idr)].concat());
        let f = a.push(&sc(&p)).unwrap();
        assert!(!f.key);
        assert_eq!(f.data, sc(&p));
        // An IDR that carries its own parameter sets is passed as is.
        let full = [sc(&sps), sc(&pps), sc(&idr)].concat();
        assert_eq!(a.push(&full).unwrap().data, full);
        assert_eq!(a.push(&[]), None);
    }
}
