//! Microphone processing before Opus: WebRTC's AudioProcessing module (APM:
//! the acoustic echo canceller with delay-agnostic mode and extended filter,
//! noise suppression and the high-pass filter), from Debian's
//! `libwebrtc-audio-processing` through the `webrtc-audio-processing`
//! bindings. 48 kHz mono; the capture path's 20 ms frames go through as two
//! 10 ms APM frames (no added latency), and what the speaker plays is fed to
//! the APM's render side as it is played.
//!
//! The hand-written canceller and suppressor this replaced were measured
//! against it on the same simulated echo before they were removed
//! (docs/appliance.md, "Audio processing"; `examples/erle.rs`).

use webrtc_audio_processing as apm;

use crate::sources::FRAME_SAMPLES;

/// Samples of one APM frame (10 ms at 48 kHz).
pub const APM_FRAME: usize = apm::NUM_SAMPLES_PER_FRAME as usize;

/// Far-end samples kept waiting for a whole APM frame, at most.
const MAX_FAR_PENDING: usize = APM_FRAME;

const _: () = assert!(FRAME_SAMPLES.is_multiple_of(APM_FRAME));

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switches {
    /// High-pass + noise suppression.
    pub noise_reduction: bool,
    pub echo_cancellation: bool,
}

impl Switches {
    fn any(self) -> bool {
        self.noise_reduction || self.echo_cancellation
    }

    fn config(self) -> apm::Config {
        apm::Config {
            echo_cancellation: self.echo_cancellation.then_some(apm::EchoCancellation {
                suppression_level: apm::EchoCancellationSuppressionLevel::Moderate,
                // Robust to the unknown, changing delay of ALSA buffering on
                // both sides: the APM estimates the delay itself.
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            noise_suppression: self.noise_reduction.then_some(apm::NoiseSuppression {
                suppression_level: apm::NoiseSuppressionLevel::High,
            }),
            enable_high_pass_filter: self.noise_reduction,
            ..apm::Config::default()
        }
    }
}

/// The microphone processor of the capture path: 20 ms frames in and out,
/// far-end (played) audio fed by the speaker thread. Without the APM (it
/// could not be created) frames pass unchanged and [`AudioProcessor::error`]
/// says why.
pub struct AudioProcessor {
    apm: Option<apm::Processor>,
    error: Option<String>,
    applied: Option<Switches>,
    /// Played samples not yet a whole APM frame.
    far: [f32; APM_FRAME],
    far_len: usize,
    frame: [f32; APM_FRAME],
}

impl Default for AudioProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioProcessor {
    pub fn new() -> AudioProcessor {
        let init = apm::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..apm::InitializationConfig::default()
        };
        let (apm, error) = match apm::Processor::new(&init) {
            Ok(p) => (Some(p), None),
            Err(e) => {
                tracing::error!(error = %e, "the audio processing module could not start; the microphone is sent unprocessed");
                (None, Some(e.to_string()))
            }
        };
        AudioProcessor {
            apm,
            error,
            applied: None,
            far: [0.0; APM_FRAME],
            far_len: 0,
            frame: [0.0; APM_FRAME],
        }
    }

    /// Why the processing does not run, if it cannot.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Audio just handed to the speaker: the echo canceller's reference,
    /// given to the APM one 10 ms frame at a time as it arrives.
    pub fn far_end(&mut self, played: &[i16]) {
        let Some(p) = self.apm.as_mut() else { return };
        let mut rest = played;
        while !rest.is_empty() {
            let n = (APM_FRAME - self.far_len).min(rest.len());
            for (d, s) in self.far[self.far_len..self.far_len + n]
                .iter_mut()
                .zip(&rest[..n])
            {
                *d = f32::from(*s) / 32768.0;
            }
            self.far_len += n;
            rest = &rest[n..];
            if self.far_len == MAX_FAR_PENDING {
                if let Err(e) = p.process_render_frame(&mut self.far) {
                    tracing::debug!(error = %e, "audio processing: render frame");
                }
                self.far_len = 0;
            }
        }
    }

    /// Processes one microphone frame in place.
    pub fn process(&mut self, frame: &mut [i16; FRAME_SAMPLES], sw: Switches) {
        let Some(p) = self.apm.as_mut() else { return };
        if self.applied != Some(sw) {
            p.set_config(sw.config());
            self.applied = Some(sw);
        }
        if !sw.any() {
            return;
        }
        for chunk in frame.chunks_exact_mut(APM_FRAME) {
            for (d, s) in self.frame.iter_mut().zip(chunk.iter()) {
                *d = f32::from(*s) / 32768.0;
            }
            if let Err(e) = p.process_capture_frame(&mut self.frame) {
                tracing::debug!(error = %e, "audio processing: capture frame");
                continue;
            }
            for (d, s) in chunk.iter_mut().zip(self.frame.iter()) {
                *d = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests;
