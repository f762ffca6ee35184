//! RFC 6464 client-to-mixer audio level: the one-byte header extension value.

use crate::PayloadError;

/// Level of silence in -dBov: the quietest value the extension carries.
pub const SILENCE: u8 = 127;

/// An audio level as carried in the RFC 6464 header extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioLevel {
    /// The V flag: the sender's voice activity detector thinks this packet holds speech.
    pub voice_activity: bool,
    /// Level in -dBov, 0 (loudest) ..= 127 (silence).
    pub level: u8,
}

impl AudioLevel {
    /// Decodes the extension byte: `V` in the top bit, the level in the low 7 bits.
    pub const fn from_byte(byte: u8) -> Self {
        Self {
            voice_activity: byte & 0x80 != 0,
            level: byte & 0x7f,
        }
    }

    /// Decodes the extension's data (one byte; a two-byte header form may pad it).
    pub fn parse(data: &[u8]) -> Result<Self, PayloadError> {
        data.first()
            .map(|b| Self::from_byte(*b))
            .ok_or(PayloadError::Empty)
    }

    /// Builds a level from a dBov value (`0` loudest, `-127` silence), as some RTP stacks
    /// report it; out-of-range values are clamped.
    pub fn from_dbov(dbov: i8, voice_activity: bool) -> Self {
        let level = dbov.unsigned_abs().min(SILENCE);
        Self {
            voice_activity,
            level,
        }
    }

    /// Encodes back to the extension byte.
    pub const fn to_byte(self) -> u8 {
        (if self.voice_activity { 0x80 } else { 0 }) | (self.level & 0x7f)
    }

    /// The level in dBov (0 ..= -127).
    pub fn dbov(self) -> i8 {
        -(self.level.min(SILENCE) as i8)
    }

    /// Loudness on a 0 (silence) ..= 127 (full scale) scale, handy for averaging.
    pub fn loudness(self) -> u8 {
        SILENCE - self.level.min(SILENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_v_flag_and_level() {
        let l = AudioLevel::from_byte(0x80 | 30);
        assert!(l.voice_activity);
        assert_eq!(l.level, 30);
        assert_eq!(l.dbov(), -30);
        assert_eq!(l.loudness(), 97);
        assert_eq!(l.to_byte(), 0x9e);
        let silent = AudioLevel::from_byte(0x7f);
        assert!(!silent.voice_activity);
        assert_eq!(silent.loudness(), 0);
    }

    #[test]
    fn parse_and_dbov_conversion() {
        assert_eq!(AudioLevel::parse(&[]), Err(PayloadError::Empty));
        assert_eq!(AudioLevel::parse(&[0x05, 0x00]).unwrap().level, 5);
        assert_eq!(AudioLevel::from_dbov(-40, true).level, 40);
        assert_eq!(AudioLevel::from_dbov(-128, false).level, 127);
        assert_eq!(AudioLevel::from_dbov(20, false).level, 20);
    }

    #[test]
    fn every_byte_round_trips() {
        for b in 0..=u8::MAX {
            let l = AudioLevel::from_byte(b);
            assert_eq!(l.to_byte(), b);
            assert!(l.level <= SILENCE);
        }
    }
}
