//! ALSA capture (`alsa:DEVICE`) and playback: 48 kHz, S16, 20 ms periods.
//! Devices that refuse mono are opened in stereo and mixed down (capture) or
//! duplicated (playback).

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::{AudioSource, FRAME_SAMPLES, SAMPLE_RATE, SourceError};

fn err(device: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Device {
        device: format!("alsa:{device}"),
        message: e.to_string(),
    }
}

/// Opens `device` in `dir` and sets 48 kHz S16 interleaved, 20 ms periods;
/// returns the PCM and its channel count.
fn open_pcm(device: &str, dir: Direction) -> Result<(PCM, u32), SourceError> {
    let pcm = PCM::new(device, dir, false).map_err(|e| err(device, e))?;
    let mut channels = 0;
    for ch in [1u32, 2] {
        let hwp = HwParams::any(&pcm).map_err(|e| err(device, e))?;
        let ok = hwp.set_access(Access::RWInterleaved).is_ok()
            && hwp.set_format(Format::s16()).is_ok()
            && hwp.set_channels(ch).is_ok()
            && hwp.set_rate(SAMPLE_RATE, ValueOr::Nearest).is_ok();
        if !ok {
            continue;
        }
        let _ = hwp.set_period_size_near(FRAME_SAMPLES as i64, ValueOr::Nearest);
        let _ = hwp.set_buffer_size_near(FRAME_SAMPLES as i64 * 4);
        if pcm.hw_params(&hwp).is_ok() {
            channels = ch;
            break;
        }
    }
    if channels == 0 {
        return Err(err(device, "no 48 kHz S16 mono or stereo configuration"));
    }
    let rate = pcm
        .hw_params_current()
        .and_then(|h| h.get_rate())
        .map_err(|e| err(device, e))?;
    if rate != SAMPLE_RATE {
        return Err(err(device, format!("runs at {rate} Hz, 48000 Hz needed")));
    }
    pcm.prepare().map_err(|e| err(device, e))?;
    Ok((pcm, channels))
}

/// Microphone capture from an ALSA device.
pub struct AlsaSource {
    device: String,
    pcm: PCM,
    channels: u32,
    buf: Vec<i16>,
}

impl AlsaSource {
    pub fn open(device: &str) -> Result<Self, SourceError> {
        let (pcm, channels) = open_pcm(device, Direction::Capture)?;
        pcm.start().map_err(|e| err(device, e))?;
        Ok(AlsaSource {
            device: device.to_string(),
            pcm,
            channels,
            buf: vec![0; FRAME_SAMPLES * channels as usize],
        })
    }
}

impl AudioSource for AlsaSource {
    fn read_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), SourceError> {
        let ch = self.channels as usize;
        let mut got = 0usize;
        let mut failures = 0;
        while got < FRAME_SAMPLES {
            let io = self.pcm.io_i16().map_err(|e| err(&self.device, e))?;
            match io.readi(&mut self.buf[got * ch..]) {
                Ok(0) => return Err(SourceError::Ended),
                Ok(n) => got += n,
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(err(&self.device, e));
                    }
                    // Overrun or suspend: recover and go on.
                    self.pcm
                        .try_recover(e, true)
                        .map_err(|e| err(&self.device, e))?;
                }
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            let frame = &self.buf[i * ch..(i + 1) * ch];
            *o = (frame.iter().map(|s| i32::from(*s)).sum::<i32>() / ch as i32) as i16;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("alsa:{}", self.device)
    }
}

/// Speaker playback to an ALSA device.
pub struct AlsaSink {
    device: String,
    pcm: PCM,
    channels: u32,
    buf: Vec<i16>,
}

impl AlsaSink {
    pub fn open(device: &str) -> Result<Self, SourceError> {
        let (pcm, channels) = open_pcm(device, Direction::Playback)?;
        Ok(AlsaSink {
            device: device.to_string(),
            pcm,
            channels,
            buf: vec![0; FRAME_SAMPLES * channels as usize],
        })
    }

    /// Writes one 20 ms mono frame, recovering from underruns.
    pub fn write_frame(&mut self, frame: &[i16]) -> Result<(), SourceError> {
        let ch = self.channels as usize;
        for (i, s) in frame.iter().enumerate().take(FRAME_SAMPLES) {
            for c in 0..ch {
                self.buf[i * ch + c] = *s;
            }
        }
        let io = self.pcm.io_i16().map_err(|e| err(&self.device, e))?;
        if let Err(e) = io.writei(&self.buf) {
            self.pcm
                .try_recover(e, true)
                .map_err(|e| err(&self.device, e))?;
            let io = self.pcm.io_i16().map_err(|e| err(&self.device, e))?;
            io.writei(&self.buf).map_err(|e| err(&self.device, e))?;
        }
        Ok(())
    }
}
