//! The voice pipeline's signal processing, as plain functions over PCM:
//! 48 kHz → 16 kHz resampling, energy-based voice-activity segmentation
//! into utterances, and the WAV file a recogniser reads. No IO, no threads;
//! the transcriber thread (`super::transcriber`) drives them.
//!
//! Voice activity is decided per 20 ms frame from its energy: the frame's
//! RMS level in dBFS is compared with a threshold that follows the track's
//! noise floor (the floor drops at once to a quieter frame and rises by
//! [`FLOOR_RISE_DB`] per frame, so steady noise raises it slowly and speech
//! barely moves it). A frame is speech when it is [`ABOVE_FLOOR_DB`] over
//! the floor and louder than [`MIN_SPEECH_DBFS`]. [`START_FRAMES`] speech
//! frames in a row open an utterance (with [`PREROLL_FRAMES`] before them,
//! so the first consonant is kept); [`HANGOVER_FRAMES`] non-speech frames
//! close it (pauses between words stay inside); an utterance is cut at
//! [`MAX_UTTERANCE_MS`] and dropped when it holds fewer than
//! [`MIN_SPEECH_FRAMES`] speech frames (a click, a cough).

use std::collections::VecDeque;

/// What the Opus decoder gives (mono).
pub const DECODE_RATE: u32 = 48_000;
/// What the recognisers take (mono, 16-bit).
pub const RECOGNITION_RATE: u32 = 16_000;
/// Samples of one 20 ms frame at [`RECOGNITION_RATE`].
pub const FRAME: usize = (RECOGNITION_RATE / 50) as usize;
pub const FRAME_MS: u64 = 20;

pub const MIN_SPEECH_DBFS: f32 = -50.0;
pub const ABOVE_FLOOR_DB: f32 = 12.0;
pub const FLOOR_RISE_DB: f32 = 0.05;
pub const START_FRAMES: usize = 3;
pub const PREROLL_FRAMES: usize = 10;
pub const HANGOVER_FRAMES: usize = 35;
pub const MIN_SPEECH_FRAMES: usize = 10;
pub const MAX_UTTERANCE_MS: u64 = 15_000;

const TAPS: usize = 48;
const FACTOR: usize = (DECODE_RATE / RECOGNITION_RATE) as usize;

/// 48 kHz → 16 kHz: a windowed-sinc low-pass (cut-off 7 kHz, below the new
/// Nyquist of 8 kHz, Hamming window) and every third sample. Keeps its
/// history between calls, so a stream can be fed packet by packet.
pub struct Downsampler {
    taps: [f32; TAPS],
    buf: Vec<f32>,
    phase: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    pub fn new() -> Downsampler {
        let fc = 7_000.0 / DECODE_RATE as f32;
        let m = (TAPS - 1) as f32;
        let mut taps = [0f32; TAPS];
        for (k, t) in taps.iter_mut().enumerate() {
            let x = k as f32 - m / 2.0;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f32::consts::PI * fc * x).sin() / (std::f32::consts::PI * x)
            };
            let window = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * k as f32 / m).cos();
            *t = sinc * window;
        }
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Downsampler {
            taps,
            buf: vec![0.0; TAPS - 1],
            phase: 0,
        }
    }

    /// Appends the 16 kHz samples of `input` (48 kHz) to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        let mut n = TAPS - 1 + self.phase;
        while n < self.buf.len() {
            let acc: f32 = self
                .taps
                .iter()
                .zip(&self.buf[n + 1 - TAPS..=n])
                .map(|(t, x)| t * x)
                .sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            n += FACTOR;
        }
        self.phase = n - self.buf.len();
        let keep_from = self.buf.len() - (TAPS - 1);
        self.buf.drain(..keep_from);
    }
}

/// A frame's RMS level in dBFS (-100 for digital silence).
pub fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / frame.len() as f64).sqrt();
    if rms < 1e-9 {
        return -100.0;
    }
    ((20.0 * (rms / 32768.0).log10()) as f32).max(-100.0)
}

/// One stretch of speech: 16 kHz samples and when it began and ended, in
/// milliseconds from the segmenter's base (the session's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub start_ms: u64,
    pub end_ms: u64,
    pub samples: Vec<i16>,
}

/// Cuts a 16 kHz stream into utterances (see the module documentation).
pub struct Segmenter {
    base_ms: u64,
    /// Samples seen (whole frames), for the time of the next frame.
    frames_seen: u64,
    pending: Vec<i16>,
    floor: f32,
    preroll: VecDeque<Vec<i16>>,
    run: usize,
    current: Option<Current>,
}

struct Current {
    start_frame: u64,
    samples: Vec<i16>,
    speech_frames: usize,
    silent_run: usize,
}

impl Segmenter {
    /// A segmenter whose first sample is `base_ms` after the session start.
    pub fn new(base_ms: u64) -> Segmenter {
        Segmenter {
            base_ms,
            frames_seen: 0,
            pending: Vec::with_capacity(FRAME),
            floor: MIN_SPEECH_DBFS - ABOVE_FLOOR_DB,
            preroll: VecDeque::with_capacity(PREROLL_FRAMES + 1),
            run: 0,
            current: None,
        }
    }

    /// Milliseconds from the session start to the next sample.
    pub fn now_ms(&self) -> u64 {
        self.base_ms
            + self.frames_seen * FRAME_MS
            + (self.pending.len() as u64 * 1000) / u64::from(RECOGNITION_RATE)
    }

    /// Feeds samples; returns the utterances they completed.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Utterance> {
        let mut done = Vec::new();
        for &s in samples {
            self.pending.push(s);
            if self.pending.len() == FRAME {
                let frame = std::mem::replace(&mut self.pending, Vec::with_capacity(FRAME));
                if let Some(u) = self.frame(frame) {
                    done.push(u);
                }
            }
        }
        done
    }

    /// Ends the stream: the utterance in progress, if it is long enough.
    pub fn finish(&mut self) -> Option<Utterance> {
        let c = self.current.take()?;
        self.close(c)
    }

    fn frame(&mut self, frame: Vec<i16>) -> Option<Utterance> {
        let index = self.frames_seen;
        self.frames_seen += 1;
        let level = level_dbfs(&frame);
        let speech = level > MIN_SPEECH_DBFS && level > self.floor + ABOVE_FLOOR_DB;
        self.floor = if level < self.floor {
            level
        } else {
            self.floor + FLOOR_RISE_DB
        };
        if let Some(c) = self.current.as_mut() {
            c.samples.extend_from_slice(&frame);
            if speech {
                c.speech_frames += 1;
                c.silent_run = 0;
            } else {
                c.silent_run += 1;
            }
            let long = (index + 1 - c.start_frame) * FRAME_MS >= MAX_UTTERANCE_MS;
            if c.silent_run >= HANGOVER_FRAMES || long {
                let c = self.current.take()?;
                return self.close(c);
            }
            return None;
        }
        self.run = if speech { self.run + 1 } else { 0 };
        self.preroll.push_back(frame);
        if self.preroll.len() > PREROLL_FRAMES + START_FRAMES {
            self.preroll.pop_front();
        }
        if self.run >= START_FRAMES {
            let frames = self.preroll.len() as u64;
            let mut samples = Vec::with_capacity(FRAME * 50 * 4);
            for f in self.preroll.drain(..) {
                samples.extend_from_slice(&f);
            }
            self.current = Some(Current {
                start_frame: index + 1 - frames,
                samples,
                speech_frames: self.run,
                silent_run: 0,
            });
            self.run = 0;
        }
        None
    }

    fn close(&mut self, mut c: Current) -> Option<Utterance> {
        if c.speech_frames < MIN_SPEECH_FRAMES {
            return None;
        }
        // Keep a little of the trailing silence, not all of the hangover.
        let trim = c.silent_run.saturating_sub(10) * FRAME;
        c.samples
            .truncate(c.samples.len() - trim.min(c.samples.len()));
        let frames = (c.samples.len() / FRAME) as u64;
        Some(Utterance {
            start_ms: self.base_ms + c.start_frame * FRAME_MS,
            end_ms: self.base_ms + (c.start_frame + frames) * FRAME_MS,
            samples: c.samples,
        })
    }
}

/// A 16-bit mono PCM WAV file of `samples` at `rate`.
pub fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, ms: u64, amp: f32) -> Vec<i16> {
        let n = (u64::from(rate) * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f32 {
        (s.iter().map(|&x| f32::from(x) * f32::from(x)).sum::<f32>() / s.len() as f32).sqrt()
    }

    #[test]
    fn downsampling_keeps_speech_band_and_removes_what_would_alias() {
        let mut d = Downsampler::new();
        let input = sine(1_000.0, DECODE_RATE, 200, 10_000.0);
        let mut out = Vec::new();
        // Packet by packet, as the transcriber feeds it.
        for chunk in input.chunks(960) {
            d.process(chunk, &mut out);
        }
        assert_eq!(out.len(), input.len() / 3);
        let ratio = rms(&out[100..]) / rms(&input);
        assert!((0.95..1.05).contains(&ratio), "1 kHz kept: {ratio}");

        let mut d = Downsampler::new();
        let mut out = Vec::new();
        d.process(&sine(12_000.0, DECODE_RATE, 200, 10_000.0), &mut out);
        let ratio = rms(&out[100..]) / 10_000.0;
        assert!(ratio < 0.03, "12 kHz removed: {ratio}");
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[0; FRAME]), -100.0);
        let full = level_dbfs(&sine(440.0, RECOGNITION_RATE, 20, 32767.0));
        assert!((full + 3.0).abs() < 0.2, "{full}");
    }

    #[test]
    fn segments_speech_between_silences_with_times() {
        let mut s = Segmenter::new(5_000);
        let mut all = Vec::new();
        all.extend(s.push(&vec![0; FRAME * 50])); // 1 s silence
        all.extend(s.push(&sine(300.0, RECOGNITION_RATE, 1_000, 8_000.0))); // 1 s "speech"
        all.extend(s.push(&vec![0; FRAME * 50])); // 1 s silence
        assert_eq!(all.len(), 1);
        let u = &all[0];
        // Starts within the pre-roll before the speech, ends shortly after it.
        assert!(u.start_ms <= 6_000 && u.start_ms >= 6_000 - PREROLL_FRAMES as u64 * 20);
        assert!(u.end_ms >= 7_000 && u.end_ms <= 7_000 + 220, "{}", u.end_ms);
        assert_eq!(u.samples.len() as u64, (u.end_ms - u.start_ms) * 16);
        assert!(s.finish().is_none());
    }

    #[test]
    fn short_pauses_stay_inside_and_clicks_are_dropped() {
        let mut s = Segmenter::new(0);
        let mut all = Vec::new();
        all.extend(s.push(&sine(300.0, RECOGNITION_RATE, 400, 8_000.0)));
        all.extend(s.push(&vec![0; FRAME * 10])); // 200 ms pause
        all.extend(s.push(&sine(300.0, RECOGNITION_RATE, 400, 8_000.0)));
        all.extend(s.push(&vec![0; FRAME * 50]));
        assert_eq!(all.len(), 1, "one utterance across a short pause");
        // A 100 ms click is not speech.
        all.extend(s.push(&sine(300.0, RECOGNITION_RATE, 100, 8_000.0)));
        all.extend(s.push(&vec![0; FRAME * 50]));
        assert_eq!(all.len(), 1);
    }

    /// Speech-like: 300 ms of tone, 100 ms of silence, repeated (the pauses
    /// keep the noise floor down, as the gaps between syllables do).
    fn syllables(ms: u64) -> Vec<i16> {
        let mut out = Vec::new();
        while (out.len() as u64) < ms * 16 {
            out.extend(sine(300.0, RECOGNITION_RATE, 300, 8_000.0));
            out.extend(std::iter::repeat_n(0, FRAME * 5));
        }
        out.truncate((ms * 16) as usize);
        out
    }

    #[test]
    fn long_speech_is_cut_and_finish_flushes() {
        let mut s = Segmenter::new(0);
        let cut = s.push(&syllables(16_000));
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].end_ms - cut[0].start_ms, MAX_UTTERANCE_MS);
        // Speech goes on; the rest comes out at the end.
        s.push(&syllables(800));
        let last = s.finish().expect("the rest");
        assert!(last.end_ms > MAX_UTTERANCE_MS);
    }

    #[test]
    fn steady_noise_is_not_speech() {
        let mut s = Segmenter::new(0);
        // A constant hum: the floor rises to it within its first seconds.
        let hum = sine(100.0, RECOGNITION_RATE, 20_000, 3_000.0);
        let found = s.push(&hum);
        assert!(
            found.len() <= 1,
            "at most the start of the hum: {}",
            found.len()
        );
        let later = s.push(&sine(100.0, RECOGNITION_RATE, 5_000, 3_000.0));
        assert!(later.is_empty());
    }

    #[test]
    fn wav_header() {
        let w = wav(&[1, -1], 16_000);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(w.len(), 48);
        assert_eq!(u32::from_le_bytes(w[24..28].try_into().unwrap()), 16_000);
        assert_eq!(&w[44..], &[1, 0, 0xff, 0xff]);
    }
}
