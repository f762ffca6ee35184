//! Codec knowledge for Convene: RTP payload descriptors, keyframe detection and audio levels.
//!
//! This crate is a leaf: it depends only on `std` and knows nothing of rooms, sockets or
//! async runtimes. Every parser takes a borrowed byte slice, never allocates, never panics
//! and returns a typed [`PayloadError`] on malformed input, so it can be fed arbitrary bytes
//! straight from the network.
//!
//! The SFU needs only one question answered per packet: "does a decodable frame start here,
//! and which layer does it belong to?". [`frame_info`] (and its infallible twin
//! [`keyframe_info`]) answers it for every codec the server negotiates; the per-codec modules
//! expose the full descriptors for callers that need more (picture ids, dimensions, ...).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

pub mod audio_level;
pub mod av1;
mod codec;
pub mod depacketize;
mod error;
pub mod h264;
pub mod mkv;
pub mod opus;
mod reader;
pub mod vp8;
pub mod vp9;

pub use audio_level::AudioLevel;
pub use codec::{
    Codec, Dimensions, FrameInfo, PictureId, frame_info, keyframe_info, rewrite_picture_id,
};
pub use error::PayloadError;

#[cfg(test)]
pub(crate) mod fuzz {
    //! Deterministic pseudo-random inputs for the parsers' robustness tests.

    /// A xorshift64* generator: tiny, seeded, good enough to shake parsers.
    pub struct XorShift(u64);

    impl XorShift {
        pub fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next_u64() as u8;
            }
        }
    }

    /// Calls `check` with every prefix of a few thousand random buffers and of `fixtures`.
    pub fn for_random_inputs(seed: u64, fixtures: &[&[u8]], mut check: impl FnMut(&[u8])) {
        let mut rng = XorShift::new(seed);
        let mut buf = [0u8; 64];
        for _ in 0..4000 {
            let len = (rng.next_u64() % 65) as usize;
            rng.fill(&mut buf[..len]);
            for end in 0..=len {
                check(&buf[..end]);
            }
        }
        for fixture in fixtures {
            for end in 0..=fixture.len() {
                check(&fixture[..end]);
            }
            // Flip every bit of the fixture once.
            let mut copy = [0u8; 256];
            let n = fixture.len().min(copy.len());
            for bit in 0..n * 8 {
                copy[..n].copy_from_slice(&fixture[..n]);
                copy[bit / 8] ^= 1 << (bit % 8);
                check(&copy[..n]);
            }
        }
    }
}
