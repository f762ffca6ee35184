//! The receive thread's pre-parser, which sees every datagram on the media
//! port before any peer exists: classification (STUN / DTLS / RTP / RTCP),
//! the USERNAME of a binding request, and the worker encoded in our ufrag.
#![no_main]

use convene_server::rtc::stun;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = stun::classify(data);
    if let Some(ufrag) = stun::binding_request_ufrag(data) {
        assert!(data.len() >= 20, "a ufrag from less than a STUN header");
        let _ = stun::worker_of_ufrag(ufrag);
    }
});
