//! What WHIP and WHEP read from a request body: the offer's m-lines (what a
//! WHIP publisher publishes, what a WHEP viewer receives) and a `PATCH`
//! fragment's ICE credentials, and the restart offer made from them.
#![no_main]

use convene_server::rtc::sdp_scan::media_lines;
use convene_server::signaling::http_media::{ice_credentials, with_credentials};
use convene_server::signaling::whip::published;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = media_lines(&text);
    if let Ok(tracks) = published(&text) {
        assert!(!tracks.is_empty() && tracks.len() <= lines.len());
    }
    if let Ok(Some((ufrag, pwd))) = ice_credentials(&text) {
        assert!((4..=256).contains(&ufrag.len()) && (22..=256).contains(&pwd.len()));
        let offer = with_credentials(&text, ufrag, pwd);
        assert!(!offer.lines().any(|l| l.starts_with("a=candidate:")));
        assert!(
            offer
                .lines()
                .all(|l| !l.starts_with("a=ice-ufrag:") || l == format!("a=ice-ufrag:{ufrag}"))
        );
    }
});
