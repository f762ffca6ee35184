//! Media sources: a video source yields I420 frames at a steady rate, an audio
//! source yields 20 ms frames of 48 kHz mono PCM. Implementations: V4L2 and
//! ALSA for real devices, a moving test pattern, a sine tone and a WAV file
//! for tests and demos.

pub mod alsa;
pub mod pattern;
pub mod v4l2;
pub mod wav;

use std::time::{Duration, Instant};

/// Audio sample rate of every audio source and of Opus.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame (mono).
pub const FRAME_SAMPLES: usize = 960;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("device {device}: {message}")]
    Device { device: String, message: String },
    #[error("{0}")]
    Format(String),
    #[error("the source ended")]
    Ended,
}

/// One captured picture in I420 (planar Y, U, V; U and V at half size).
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    /// Y plane then U then V, no padding.
    pub data: Vec<u8>,
    /// Counts frames from 0 since the source started.
    pub seq: u64,
    pub captured: Instant,
}

impl VideoFrame {
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
    }
}

/// A source of video frames; `next_frame` blocks until the next one.
pub trait VideoSource: Send {
    fn next_frame(&mut self) -> Result<VideoFrame, SourceError>;
    /// What this source is (for status), e.g. `/dev/video0` or `test-pattern`.
    fn describe(&self) -> SourceInfo;
    /// Sets a camera control (`brightness`, `contrast`, `exposure`, `pan`,
    /// `tilt`, `zoom`, `auto_exposure`) given in percent 0..100 (bool as 0/1).
    fn set_control(&mut self, _name: &str, _percent: i64) -> Result<(), SourceError> {
        Err(SourceError::Format(
            "this video source has no controls".into(),
        ))
    }
}

/// A source of 20 ms mono 48 kHz PCM frames; `read_frame` blocks until one is ready.
pub trait AudioSource: Send {
    fn read_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), SourceError>;
    fn describe(&self) -> String;
}

/// What a video source reports about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub device: String,
    pub name: String,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// A parsed `video.source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSourceSpec {
    TestPattern,
    V4l2(String),
}

impl VideoSourceSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "test-pattern" => Ok(VideoSourceSpec::TestPattern),
            other => match other.strip_prefix("v4l2:") {
                Some(dev) if !dev.is_empty() => Ok(VideoSourceSpec::V4l2(dev.to_string())),
                _ => Err(format!(
                    "video source `{other}`: expected `test-pattern` or `v4l2:/dev/videoN`"
                )),
            },
        }
    }
}

/// A parsed `audio.source` value.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSourceSpec {
    /// A sine tone of this frequency (Hz).
    Sine(f64),
    Wav(String),
    Alsa(String),
}

impl AudioSourceSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "sine" {
            return Ok(AudioSourceSpec::Sine(440.0));
        }
        if let Some(f) = s.strip_prefix("sine:") {
            return f
                .parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && *f < 24_000.0)
                .map(AudioSourceSpec::Sine)
                .ok_or_else(|| format!("audio source `{s}`: bad frequency"));
        }
        if let Some(p) = s.strip_prefix("wav:").filter(|p| !p.is_empty()) {
            return Ok(AudioSourceSpec::Wav(p.to_string()));
        }
        if let Some(d) = s.strip_prefix("alsa:").filter(|d| !d.is_empty()) {
            return Ok(AudioSourceSpec::Alsa(d.to_string()));
        }
        Err(format!(
            "audio source `{s}`: expected `alsa:DEVICE`, `sine`, `sine:HZ` or `wav:PATH`"
        ))
    }
}

/// Opens the configured video source.
pub fn open_video(
    spec: &VideoSourceSpec,
    cfg: &crate::config::VideoConfig,
) -> Result<Box<dyn VideoSource>, SourceError> {
    match spec {
        VideoSourceSpec::TestPattern => Ok(Box::new(pattern::TestPattern::new(
            cfg.width, cfg.height, cfg.fps,
        ))),
        VideoSourceSpec::V4l2(dev) => Ok(Box::new(v4l2::V4l2Source::open(dev, cfg)?)),
    }
}

/// Opens the configured audio source.
pub fn open_audio(spec: &AudioSourceSpec) -> Result<Box<dyn AudioSource>, SourceError> {
    match spec {
        AudioSourceSpec::Sine(f) => Ok(Box::new(Sine::new(*f))),
        AudioSourceSpec::Wav(p) => Ok(Box::new(wav::WavSource::open(std::path::Path::new(p))?)),
        AudioSourceSpec::Alsa(d) => Ok(Box::new(alsa::AlsaSource::open(d)?)),
    }
}

/// Keeps a software source at real time: waits until the next tick.
pub struct Pacer {
    start: Instant,
    period: Duration,
    n: u64,
}

impl Pacer {
    pub fn new(period: Duration) -> Self {
        Pacer {
            start: Instant::now(),
            period,
            n: 0,
        }
    }
    pub fn wait(&mut self) {
        let due = self.start + self.period * (self.n as u32);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > self.period * 10 {
            // Far behind (suspended): start over rather than burst.
            self.start = now;
            self.n = 0;
        }
        self.n += 1;
    }
}

/// A sine tone at -12 dBFS, paced at real time.
pub struct Sine {
    freq: f64,
    phase: f64,
    pacer: Pacer,
}

impl Sine {
    pub fn new(freq: f64) -> Self {
        Sine {
            freq,
            phase: 0.0,
            pacer: Pacer::new(Duration::from_millis(20)),
        }
    }
}

impl AudioSource for Sine {
    fn read_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), SourceError> {
        self.pacer.wait();
        let step = 2.0 * std::f64::consts::PI * self.freq / f64::from(SAMPLE_RATE);
        for s in out.iter_mut() {
            *s = (self.phase.sin() * 8192.0) as i16;
            self.phase = (self.phase + step) % (2.0 * std::f64::consts::PI);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("sine {} Hz", self.freq)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            VideoSourceSpec::parse("v4l2:/dev/video0").unwrap(),
            VideoSourceSpec::V4l2("/dev/video0".into())
        );
        assert_eq!(
            VideoSourceSpec::parse("test-pattern").unwrap(),
            VideoSourceSpec::TestPattern
        );
        assert!(VideoSourceSpec::parse("v4l2:").is_err());
        assert_eq!(
            AudioSourceSpec::parse("alsa:hw:1,0").unwrap(),
            AudioSourceSpec::Alsa("hw:1,0".into())
        );
        assert_eq!(
            AudioSourceSpec::parse("sine").unwrap(),
            AudioSourceSpec::Sine(440.0)
        );
        assert_eq!(
            AudioSourceSpec::parse("sine:1000").unwrap(),
            AudioSourceSpec::Sine(1000.0)
        );
        assert_eq!(
            AudioSourceSpec::parse("wav:/a.wav").unwrap(),
            AudioSourceSpec::Wav("/a.wav".into())
        );
        assert!(AudioSourceSpec::parse("pulse").is_err());
        assert!(AudioSourceSpec::parse("sine:-3").is_err());
    }

    #[test]
    fn sine_has_the_tone() {
        let mut s = Sine::new(1000.0);
        let mut buf = [0i16; FRAME_SAMPLES];
        s.read_frame(&mut buf).unwrap();
        let f = crate::dsp::dominant_frequency(&buf, SAMPLE_RATE);
        assert!((f - 1000.0).abs() < 10.0, "{f}");
    }
}
