//! The Matroska reader that checks and summarises recordings, on arbitrary
//! bytes: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convene_media::mkv::inspect(data);
});
