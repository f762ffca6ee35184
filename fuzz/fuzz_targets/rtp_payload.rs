//! Every RTP payload parser of `convene-media` on arbitrary bytes: the
//! descriptor parsers, keyframe detection, the audio-level extension, the
//! SPS reader, and the picture-id rewrite (which writes into the payload).
//! None may panic; a rewrite that succeeds must leave a payload that still
//! parses.
#![no_main]

use convene_media::{Codec, frame_info, keyframe_info, rewrite_picture_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convene_media::vp8::parse(data);
    let _ = convene_media::vp8::is_keyframe(data);
    let _ = convene_media::vp9::parse(data);
    let _ = convene_media::vp9::is_keyframe(data);
    let _ = convene_media::h264::parse(data);
    let _ = convene_media::h264::is_keyframe(data);
    let _ = convene_media::av1::parse(data);
    let _ = convene_media::av1::is_keyframe(data);
    let _ = convene_media::opus::parse(data);
    let _ = convene_media::AudioLevel::parse(data);
    let _ = convene_media::depacketize::sps_dimensions(data);
    for codec in Codec::ALL {
        let _ = frame_info(codec, data);
        let _ = keyframe_info(codec, data);
        if data.len() >= 3 {
            let picture_id = u16::from_le_bytes([data[0], data[1]]);
            let tl0 = (data[2] & 1 == 1).then_some(data[2]);
            let mut payload = data[3..].to_vec();
            if rewrite_picture_id(codec, &mut payload, picture_id, tl0).is_ok() {
                assert!(
                    frame_info(codec, &payload).is_ok() == frame_info(codec, &data[3..]).is_ok(),
                    "a rewritten {codec:?} payload parses differently"
                );
            }
        }
    }
});
