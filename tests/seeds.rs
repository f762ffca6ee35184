//! Fuzz seeds from what real clients send, kept while the tests run with
//! `CONVENE_TEST_SEEDS_DIR` (see [`crate::capture_seed`]): RTP payloads a
//! test client receives from browsers and other real encoders, one by one
//! (`rtp_payload`) and as a packet sequence in the `depacketize` target's
//! format. The synthetic payloads of the str0m test publishers are left
//! out (they are not what encoders make).

use std::collections::HashMap;

use convene_media::Codec;
use str0m::media::{MediaKind, Mid};

/// Payloads kept per stream for `rtp_payload`.
const SINGLE_PER_STREAM: usize = 24;
/// Packets in one `depacketize` sequence (a few frames of video).
const SEQUENCE_PACKETS: usize = 120;
/// The fuzz runs' input size limit (`fuzz/run.sh`: `-max_len=65536`).
const MAX_SEED: usize = 65_536;

/// One client's tap; does nothing unless `CONVENE_TEST_SEEDS_DIR` is set.
pub struct RtpSeedTap {
    on: bool,
    streams: HashMap<Mid, Stream>,
}

struct Stream {
    singles: usize,
    /// The `depacketize` input: codec index, then per packet a header
    /// (length u16 LE, RTP timestamp u32 LE, flags: 1 = marker) and payload.
    sequence: Vec<u8>,
    packets: usize,
    done: bool,
}

impl Default for RtpSeedTap {
    fn default() -> Self {
        RtpSeedTap {
            on: std::env::var_os("CONVENE_TEST_SEEDS_DIR").is_some(),
            streams: HashMap::new(),
        }
    }
}

impl RtpSeedTap {
    /// A received packet of `mid` (`synthetic`: the test publishers' own).
    pub fn packet(
        &mut self,
        mid: Mid,
        kind: MediaKind,
        ts: u32,
        marker: bool,
        payload: &[u8],
        synthetic: bool,
    ) {
        if !self.on || synthetic || payload.is_empty() {
            return;
        }
        // The test clients negotiate Opus and VP8 only.
        let codec = match kind {
            MediaKind::Audio => Codec::Opus,
            MediaKind::Video => Codec::Vp8,
        };
        let index = Codec::ALL.iter().position(|c| *c == codec).unwrap_or(0) as u8;
        let s = self.streams.entry(mid).or_insert_with(|| Stream {
            singles: 0,
            sequence: vec![index],
            packets: 0,
            done: false,
        });
        if s.singles < SINGLE_PER_STREAM {
            s.singles += 1;
            crate::capture_seed("rtp_payload", payload);
        }
        if s.done {
            return;
        }
        let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        if s.sequence.len() + 7 + payload.len() > MAX_SEED {
            s.done = true;
        } else {
            s.sequence.extend_from_slice(&len.to_le_bytes());
            s.sequence.extend_from_slice(&ts.to_le_bytes());
            s.sequence.push(u8::from(marker));
            s.sequence.extend_from_slice(payload);
            s.packets += 1;
            s.done = s.packets >= SEQUENCE_PACKETS;
        }
        if s.done {
            crate::capture_seed("depacketize", &s.sequence);
        }
    }
}
