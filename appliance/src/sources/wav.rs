//! The `wav:PATH` audio source: 16-bit PCM WAV at 48 kHz (any channel count,
//! mixed down to mono), looped, paced at real time.

use std::path::Path;
use std::time::Duration;

use super::{AudioSource, FRAME_SAMPLES, Pacer, SAMPLE_RATE, SourceError};

pub struct WavSource {
    path: String,
    samples: Vec<i16>,
    pos: usize,
    pacer: Pacer,
}

impl WavSource {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let bytes = std::fs::read(path).map_err(|e| SourceError::Device {
            device: path.display().to_string(),
            message: e.to_string(),
        })?;
        let samples = parse_wav(&bytes)
            .map_err(|m| SourceError::Format(format!("{}: {m}", path.display())))?;
        Ok(WavSource {
            path: path.display().to_string(),
            samples,
            pos: 0,
            pacer: Pacer::new(Duration::from_millis(20)),
        })
    }
}

/// Parses a RIFF/WAVE file of 16-bit PCM at 48 kHz into mono samples.
pub fn parse_wav(b: &[u8]) -> Result<Vec<i16>, String> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut i = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = &b[i + 8..(i + 8 + len).min(b.len())];
        if id == b"fmt " && body.len() >= 16 {
            fmt = Some((
                u16::from_le_bytes([body[0], body[1]]),
                u16::from_le_bytes([body[2], body[3]]),
                u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
                u16::from_le_bytes([body[14], body[15]]),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or("data before fmt chunk")?;
            if format != 1 || bits != 16 {
                return Err(format!(
                    "only 16-bit PCM is supported (format {format}, {bits} bits)"
                ));
            }
            if rate != SAMPLE_RATE {
                return Err(format!("sample rate {rate} Hz: 48000 Hz is required"));
            }
            let ch = usize::from(channels.max(1));
            let frames: Vec<i16> = body
                .chunks_exact(2 * ch)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum();
                    (sum / ch as i32) as i16
                })
                .collect();
            if frames.is_empty() {
                return Err("no samples".into());
            }
            return Ok(frames);
        }
        i += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// Writes mono 16-bit 48 kHz samples as a WAV file (for tests and recordings).
pub fn write_wav(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut v = Vec::with_capacity(44 + samples.len() * 2);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    v.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

impl AudioSource for WavSource {
    fn read_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), SourceError> {
        self.pacer.wait();
        for s in out.iter_mut() {
            *s = self.samples[self.pos];
            self.pos = (self.pos + 1) % self.samples.len();
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("wav {}", self.path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_loop() {
        let samples: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        std::fs::write(&p, write_wav(&samples)).unwrap();
        let mut src = WavSource::open(&p).unwrap();
        let mut buf = [0i16; FRAME_SAMPLES];
        src.read_frame(&mut buf).unwrap();
        assert_eq!(buf[0], 0);
        assert_eq!(buf[959], 959);
        src.read_frame(&mut buf).unwrap();
        assert_eq!(buf[39], 999);
        assert_eq!(buf[40], 0, "loops at the end");
    }

    #[test]
    fn refuses_other_rates() {
        let mut w = write_wav(&[1, 2, 3]);
        w[24..28].copy_from_slice(&44100u32.to_le_bytes());
        assert!(parse_wav(&w).unwrap_err().contains("44100"));
        assert!(parse_wav(b"nope").is_err());
    }
}
