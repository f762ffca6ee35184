//! Encoders: VP8 through libvpx (`vpx-encode`) and Opus (20 ms, in-band FEC).

use crate::sources::{FRAME_SAMPLES, SAMPLE_RATE, VideoFrame};

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("vp8: {0}")]
    Vp8(String),
    #[error("h264: {0}")]
    H264(String),
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}

/// One encoded video frame.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub key: bool,
}

/// A VP8 encoder that follows the frame size and can be asked for a keyframe.
///
/// `vpx-encode` offers no per-frame flags, so a keyframe is made by starting a
/// fresh encoder, whose first frame is always a keyframe.
pub struct Vp8Encoder {
    enc: Option<vpx_encode::Encoder>,
    size: (u32, u32),
    fps: u32,
    bitrate_kbps: u32,
    pts: i64,
}

impl Vp8Encoder {
    pub fn new(fps: u32, bitrate_kbps: u32) -> Self {
        Vp8Encoder {
            enc: None,
            size: (0, 0),
            fps: fps.max(1),
            bitrate_kbps,
            pts: 0,
        }
    }

    /// The next frame will be a keyframe.
    pub fn request_keyframe(&mut self) {
        self.enc = None;
    }

    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, EncodeError> {
        if self.enc.is_none() || self.size != (frame.width, frame.height) {
            let enc = vpx_encode::Encoder::new(vpx_encode::Config {
                width: frame.width,
                height: frame.height,
                timebase: [1, self.fps as i32],
                bitrate: self.bitrate_kbps,
                codec: vpx_encode::VideoCodecId::VP8,
            })
            .map_err(|e| EncodeError::Vp8(format!("{e:?}")))?;
            self.enc = Some(enc);
            self.size = (frame.width, frame.height);
            self.pts = 0;
        }
        let Some(enc) = self.enc.as_mut() else {
            return Ok(Vec::new());
        };
        if frame.data.len() < VideoFrame::i420_len(frame.width, frame.height) {
            return Err(EncodeError::Vp8("short I420 frame".into()));
        }
        let pts = self.pts;
        self.pts += 1;
        let packets = enc
            .encode(pts, &frame.data)
            .map_err(|e| EncodeError::Vp8(format!("{e:?}")))?;
        Ok(packets
            .map(|p| EncodedFrame {
                data: p.data.to_vec(),
                key: p.key,
            })
            .collect())
    }
}

/// Which video codec to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "vp8" => Some(VideoCodec::Vp8),
            "h264" => Some(VideoCodec::H264),
            _ => None,
        }
    }
}

/// A video encoder as the encoder thread drives it.
pub trait FrameEncoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, EncodeError>;
    fn request_keyframe(&mut self);
}

impl FrameEncoder for Vp8Encoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, EncodeError> {
        Vp8Encoder::encode(self, frame)
    }
    fn request_keyframe(&mut self) {
        Vp8Encoder::request_keyframe(self);
    }
}

/// H.264 (constrained baseline) through openh264, built from source. Frames
/// are Annex B byte streams (SPS/PPS before every IDR).
pub struct H264Encoder {
    enc: openh264::encoder::Encoder,
}

impl H264Encoder {
    pub fn new(fps: u32, bitrate_kbps: u32) -> Result<Self, EncodeError> {
        use openh264::encoder::{BitRate, EncoderConfig, FrameRate, Profile, UsageType};
        let cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate_kbps.saturating_mul(1000)))
            .max_frame_rate(FrameRate::from_hz(fps.max(1) as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline);
        let enc =
            openh264::encoder::Encoder::with_api_config(openh264::OpenH264API::from_source(), cfg)
                .map_err(|e| EncodeError::H264(e.to_string()))?;
        Ok(H264Encoder { enc })
    }
}

impl FrameEncoder for H264Encoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, EncodeError> {
        let n = VideoFrame::i420_len(frame.width, frame.height);
        if frame.data.len() < n {
            return Err(EncodeError::H264("short I420 frame".into()));
        }
        let yuv = openh264::formats::YUVBuffer::from_vec(
            frame.data[..n].to_vec(),
            frame.width as usize,
            frame.height as usize,
        );
        let bs = self
            .enc
            .encode(&yuv)
            .map_err(|e| EncodeError::H264(e.to_string()))?;
        let key = matches!(bs.frame_type(), openh264::encoder::FrameType::IDR);
        let data = bs.to_vec();
        Ok(if data.is_empty() {
            Vec::new()
        } else {
            vec![EncodedFrame { data, key }]
        })
    }
    fn request_keyframe(&mut self) {
        self.enc.force_intra_frame();
    }
}

/// Opens the encoder for `codec`. H.264 uses the V4L2 memory-to-memory
/// hardware encoder when one is found in `/dev`, else openh264.
pub fn open_video_encoder(
    codec: VideoCodec,
    fps: u32,
    bitrate_kbps: u32,
) -> Result<Box<dyn FrameEncoder>, EncodeError> {
    Ok(match codec {
        VideoCodec::Vp8 => {
            set_active(crate::m2m::EncoderChoice {
                kind: "libvpx",
                device: None,
                driver: None,
                reason: None,
            });
            Box::new(Vp8Encoder::new(fps, bitrate_kbps))
        }
        VideoCodec::H264 => {
            let (devices, errors) = crate::m2m::probe(std::path::Path::new("/dev"));
            let choice = crate::m2m::choose(&devices, &errors);
            let hw = crate::m2m::select_encoder(&devices).map(|(d, _)| d.clone());
            match hw {
                Some(d) => {
                    tracing::info!(device = %d.path.display(), driver = %d.driver, "H.264 encoder: V4L2 memory-to-memory (hardware)");
                    set_active(choice);
                    Box::new(M2mH264Encoder {
                        device: d,
                        hw: None,
                        fallback: None,
                        fps,
                        bitrate_kbps,
                        size: (0, 0),
                        keyframe: false,
                    })
                }
                None => {
                    tracing::info!(reason = ?choice.reason, "H.264 encoder: openh264 (software)");
                    set_active(choice);
                    Box::new(H264Encoder::new(fps, bitrate_kbps)?)
                }
            }
        }
    })
}

static ACTIVE: std::sync::Mutex<Option<crate::m2m::EncoderChoice>> = std::sync::Mutex::new(None);

fn set_active(c: crate::m2m::EncoderChoice) {
    *crate::capture::lock(&ACTIVE) = Some(c);
}

/// The video encoder most recently started (None before the first one).
pub fn active_encoder() -> Option<crate::m2m::EncoderChoice> {
    crate::capture::lock(&ACTIVE).clone()
}

/// H.264 on the hardware encoder, opened at the first picture's size;
/// any failure falls back to openh264 for good (logged, shown in the API).
pub struct M2mH264Encoder {
    device: crate::m2m::DeviceInfo,
    hw: Option<crate::m2m::hw::HwEncoder>,
    fallback: Option<H264Encoder>,
    fps: u32,
    bitrate_kbps: u32,
    size: (u32, u32),
    keyframe: bool,
}

impl M2mH264Encoder {
    fn fall_back(&mut self, why: String) -> Result<(), EncodeError> {
        tracing::warn!(device = %self.device.path.display(), error = %why, "hardware H.264 encoder failed; using openh264");
        self.hw = None;
        self.fallback = Some(H264Encoder::new(self.fps, self.bitrate_kbps)?);
        set_active(crate::m2m::EncoderChoice {
            kind: "openh264",
            device: None,
            driver: None,
            reason: Some(format!("{}: {why}", self.device.path.display())),
        });
        Ok(())
    }
}

impl FrameEncoder for M2mH264Encoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, EncodeError> {
        if let Some(f) = self.fallback.as_mut() {
            return f.encode(frame);
        }
        if self.hw.is_none() || self.size != (frame.width, frame.height) {
            self.hw = None;
            let controls = crate::m2m::encoder_controls(
                frame.width,
                frame.height,
                self.fps,
                self.bitrate_kbps,
            );
            match crate::m2m::hw::HwEncoder::open(
                &self.device,
                frame.width,
                frame.height,
                self.fps,
                &controls,
            ) {
                Ok(h) => {
                    self.hw = Some(h);
                    self.size = (frame.width, frame.height);
                }
                Err(e) => {
                    self.fall_back(e.to_string())?;
                    return self.encode(frame);
                }
            }
        }
        let Some(hw) = self.hw.as_mut() else {
            return Ok(Vec::new());
        };
        if std::mem::take(&mut self.keyframe) {
            hw.force_keyframe();
        }
        match hw.encode(&frame.data) {
            Ok(Some(f)) => Ok(vec![EncodedFrame {
                data: f.data,
                key: f.key,
            }]),
            Ok(None) => Ok(Vec::new()),
            Err(e) => {
                self.fall_back(e.to_string())?;
                self.encode(frame)
            }
        }
    }
    fn request_keyframe(&mut self) {
        match self.fallback.as_mut() {
            Some(f) => f.request_keyframe(),
            None => self.keyframe = true,
        }
    }
}

/// Opus encoder for 20 ms mono frames, FEC on.
pub struct OpusEncoder {
    enc: opus::Encoder,
    out: Vec<u8>,
}

impl OpusEncoder {
    pub fn new(bitrate_kbps: u32) -> Result<Self, EncodeError> {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_inband_fec(true)?;
        enc.set_packet_loss_perc(10)?;
        enc.set_bitrate(opus::Bitrate::Bits(bitrate_kbps as i32 * 1000))?;
        Ok(OpusEncoder {
            enc,
            out: vec![0; 1500],
        })
    }

    pub fn inband_fec(&mut self) -> bool {
        self.enc.get_inband_fec().unwrap_or(false)
    }

    /// Encodes one 20 ms frame; the packet borrows an internal buffer.
    pub fn encode(&mut self, pcm: &[i16; FRAME_SAMPLES]) -> Result<&[u8], EncodeError> {
        let n = self.enc.encode(pcm, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// Opus decoder to 48 kHz mono.
pub struct OpusDecoder {
    dec: opus::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, EncodeError> {
        Ok(OpusDecoder {
            dec: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet into `out` (at least 5760 samples long); returns the sample count.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, EncodeError> {
        Ok(self.dec.decode(packet, out, false)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sources::AudioSource;

    #[test]
    fn vp8_first_frame_and_requested_frames_are_keyframes() {
        let mut enc = Vp8Encoder::new(30, 300);
        let mut keys = Vec::new();
        for seq in 0..5 {
            if seq == 3 {
                enc.request_keyframe();
            }
            let frame = VideoFrame {
                width: 160,
                height: 120,
                data: crate::sources::pattern::TestPattern::render(160, 120, seq),
                seq,
                captured: std::time::Instant::now(),
            };
            for p in enc.encode(&frame).unwrap() {
                assert!(!p.data.is_empty());
                // VP8 payload header: bit 0 of the first byte is 0 on keyframes.
                assert_eq!(p.key, p.data[0] & 1 == 0);
                keys.push(p.key);
            }
        }
        assert_eq!(keys, [true, false, false, true, false]);
    }

    #[test]
    fn h264_frames_are_annex_b_with_idr_on_request() {
        let mut enc = H264Encoder::new(30, 300).unwrap();
        let mut keys = Vec::new();
        for seq in 0..5 {
            if seq == 3 {
                FrameEncoder::request_keyframe(&mut enc);
            }
            let frame = VideoFrame {
                width: 160,
                height: 120,
                data: crate::sources::pattern::TestPattern::render(160, 120, seq),
                seq,
                captured: std::time::Instant::now(),
            };
            for p in FrameEncoder::encode(&mut enc, &frame).unwrap() {
                assert!(p.data.starts_with(&[0, 0, 0, 1]) || p.data.starts_with(&[0, 0, 1]));
                // NAL types present: an IDR (5) frame carries SPS (7) and PPS (8).
                let types: Vec<u8> = p
                    .data
                    .windows(4)
                    .filter(|w| w[..3] == [0, 0, 1])
                    .map(|w| w[3] & 0x1f)
                    .collect();
                assert_eq!(p.key, types.contains(&5), "{types:?}");
                if p.key {
                    assert!(types.contains(&7) && types.contains(&8), "{types:?}");
                }
                keys.push(p.key);
            }
        }
        assert_eq!(keys, [true, false, false, true, false]);
    }

    #[test]
    fn opus_round_trip_keeps_the_tone() {
        let mut enc = OpusEncoder::new(32).unwrap();
        assert!(enc.inband_fec());
        let mut dec = OpusDecoder::new().unwrap();
        let mut src = crate::sources::Sine::new(1000.0);
        let mut pcm = [0i16; FRAME_SAMPLES];
        let mut decoded = Vec::new();
        let mut out = vec![0i16; 5760];
        for _ in 0..10 {
            src.read_frame(&mut pcm).unwrap();
            let packet = enc.encode(&pcm).unwrap().to_vec();
            let n = dec.decode(&packet, &mut out).unwrap();
            assert_eq!(n, FRAME_SAMPLES);
            decoded.extend_from_slice(&out[..n]);
        }
        let tail = &decoded[decoded.len() - 4800..];
        let f = crate::dsp::dominant_frequency(tail, SAMPLE_RATE);
        assert!((f - 1000.0).abs() <= 10.0, "{f}");
    }
}

/// Shared switches of a [`VideoEncoderThread`].
#[derive(Default)]
pub struct EncoderSwitches {
    pub keyframe: std::sync::atomic::AtomicBool,
    pub enabled: std::sync::atomic::AtomicBool,
    pub stop: std::sync::atomic::AtomicBool,
}

/// An encoded frame with the capture time of its picture.
pub type TimedFrame = (EncodedFrame, std::time::Instant);

/// VP8 encoding on its own thread (libvpx's context is not `Send`, and
/// encoding must not hold up the async runtime): pictures from the capture
/// broadcast in, encoded frames out through a small bounded channel.
pub struct VideoEncoderThread {
    pub switches: std::sync::Arc<EncoderSwitches>,
}

impl VideoEncoderThread {
    pub fn start(
        mut frames: tokio::sync::broadcast::Receiver<std::sync::Arc<VideoFrame>>,
        codec: VideoCodec,
        fps: u32,
        bitrate_kbps: u32,
        enabled: bool,
    ) -> (Self, tokio::sync::mpsc::Receiver<TimedFrame>) {
        use std::sync::atomic::Ordering;
        let switches = std::sync::Arc::new(EncoderSwitches::default());
        switches.enabled.store(enabled, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sw = switches.clone();
        let _ = std::thread::Builder::new()
            .name("vp8-encoder".into())
            .spawn(move || {
                let mut enc = match open_video_encoder(codec, fps, bitrate_kbps) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the video encoder");
                        return;
                    }
                };
                loop {
                    let frame = match frames.blocking_recv() {
                        Ok(f) => f,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    };
                    if sw.stop.load(Ordering::Relaxed) || tx.is_closed() {
                        return;
                    }
                    if !sw.enabled.load(Ordering::Relaxed) {
                        // Start again on a keyframe.
                        enc.request_keyframe();
                        continue;
                    }
                    if sw.keyframe.swap(false, Ordering::Relaxed) {
                        enc.request_keyframe();
                    }
                    match enc.encode(&frame) {
                        Ok(out) => {
                            for f in out {
                                // Full: the consumer is slow; it loses this frame, and
                                // asks for a keyframe when it notices.
                                if tx.try_send((f, frame.captured)).is_err() {
                                    enc.request_keyframe();
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "video encoding failed"),
                    }
                }
            });
        (VideoEncoderThread { switches }, rx)
    }

    pub fn request_keyframe(&self) {
        self.switches
            .keyframe
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn set_enabled(&self, on: bool) {
        self.switches
            .enabled
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for VideoEncoderThread {
    fn drop(&mut self) {
        self.switches
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
