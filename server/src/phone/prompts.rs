//! The voice prompts a caller hears before joining: asked for the PIN, told
//! a PIN was wrong, told it is joining, and told goodbye when no valid PIN
//! came. Spoken by espeak-ng and stored as 8 kHz G.711 µ-law in
//! `prompts/` (rendered by `scripts/make-phone-prompts.sh`, embedded here:
//! nothing is made or read at run time), played 20 ms at a time on the
//! caller's stream ([`super::outgoing::ToCaller`]) in the call's codec.

use super::media::g711_decode;
use super::outgoing::{FRAME, G711_FRAME, upsample6};
use super::sdp::Law;

/// One of the bridge's prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// "Welcome. Please enter the meeting PIN, followed by the hash key."
    EnterPin,
    /// "That PIN is not right. Please try again."
    WrongPin,
    /// "Thank you. You are joining the meeting now."
    Joining,
    /// "Sorry, no valid PIN was entered. Goodbye."
    Goodbye,
}

impl Prompt {
    fn audio(self) -> &'static [u8] {
        match self {
            Prompt::EnterPin => include_bytes!("prompts/enter_pin.ul"),
            Prompt::WrongPin => include_bytes!("prompts/wrong_pin.ul"),
            Prompt::Joining => include_bytes!("prompts/joining.ul"),
            Prompt::Goodbye => include_bytes!("prompts/goodbye.ul"),
        }
    }
}

/// A prompt being played.
#[derive(Debug)]
pub struct Playing {
    pub prompt: Prompt,
    audio: &'static [u8],
    at: usize,
    last: i16,
}

impl Playing {
    pub fn new(prompt: Prompt) -> Playing {
        Playing {
            prompt,
            audio: prompt.audio(),
            at: 0,
            last: 0,
        }
    }

    /// The next 20 ms at 48 kHz; `None` once the prompt is over (its last
    /// packet is padded with silence).
    pub fn next_frame(&mut self) -> Option<[i32; FRAME]> {
        if self.at >= self.audio.len() {
            return None;
        }
        let end = (self.at + G711_FRAME).min(self.audio.len());
        let mut out = [0i32; FRAME];
        for (i, &b) in self.audio[self.at..end].iter().enumerate() {
            let up = upsample6(&mut self.last, g711_decode(Law::Pcmu, b));
            for (k, s) in up.into_iter().enumerate() {
                out[i * 6 + k] = i32::from(s);
            }
        }
        self.at = end;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_is_speech_of_a_few_seconds_and_ends() {
        for p in [
            Prompt::EnterPin,
            Prompt::WrongPin,
            Prompt::Joining,
            Prompt::Goodbye,
        ] {
            let mut play = Playing::new(p);
            let mut frames = 0;
            let mut loudest = 0f64;
            while let Some(f) = play.next_frame() {
                frames += 1;
                let rms =
                    (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / FRAME as f64).sqrt();
                loudest = loudest.max(rms);
            }
            // 2 to 6 seconds of 20 ms frames, and not silence.
            assert!((100..=300).contains(&frames), "{p:?}: {frames} frames");
            assert!(loudest > 1000.0, "{p:?}: loudest frame RMS {loudest}");
            assert!(play.next_frame().is_none());
        }
    }
}
