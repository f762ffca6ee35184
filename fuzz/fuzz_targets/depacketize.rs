//! The frame assembler on an arbitrary packet sequence: the first byte picks
//! the codec; then each packet is a header (2 bytes length, 4 bytes RTP
//! timestamp, 1 byte flags: marker, gap) and its payload. Lost, reordered,
//! truncated and hostile packets must never panic nor grow a frame past the
//! assembler's limit.
#![no_main]

use convene_media::Codec;
use convene_media::depacketize::Depacketizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let codec = Codec::ALL[first as usize % Codec::ALL.len()];
    let mut d = Depacketizer::new(codec);
    while rest.len() >= 7 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let ts = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let flags = rest[6];
        rest = &rest[7..];
        let take = len.min(rest.len());
        let (payload, tail) = rest.split_at(take);
        rest = tail;
        if let Some(frame) = d.push(payload, ts, flags & 1 == 1, flags & 2 == 2) {
            assert!(
                frame.data.len() <= 8 << 20,
                "frame over the assembler's limit"
            );
        }
        let _ = d.dimensions();
        let _ = d.codec_private();
        let _ = d.wants_keyframe();
    }
});
