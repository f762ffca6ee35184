//! The SDP scan that reads what a participant's offer sends (media lines,
//! mids, simulcast rids) before str0m sees it, and str0m's own SDP parser
//! that then reads the offer (it runs on every client offer).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let _ = convene_server::rtc::sdp_scan::sending_lines(&sdp);
    let _ = str0m::change::SdpOffer::from_sdp_string(&sdp);
    let _ = str0m::change::SdpAnswer::from_sdp_string(&sdp);
});
