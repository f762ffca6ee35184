//! The SDP scan that reads what a participant's offer sends (media lines,
//! mids, simulcast rids) before str0m sees it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let _ = convene_server::rtc::sdp_scan::sending_lines(&sdp);
});
