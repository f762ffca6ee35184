//! The SIP endpoint's input: a datagram goes through `phone::sip::parse`
//! (rsip); a request is answered with `phone::sip::response`, which must
//! itself parse back as a response; an SDP body goes through the offer
//! reader, and an accepted offer's answer must read back with the same
//! codec, events and SRTP key; an INFO body gives a DTMF key or a refusal;
//! SRTP's unprotect and protect take any datagram; the in-band DTMF
//! detector takes any audio.
//! The TCP framing (`phone::sip::framing`) must find a header end inside
//! the input and never panic. Every input must end in a message or an
//! error, never a panic.
#![no_main]

use convene_server::phone::{sdp, sip, srtp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rsip::SipMessage::Request(req)) = sip::parse(data) {
        let out = sip::response(&req, 200, Some("fuzz"), Vec::new(), None);
        if let Err(e) = sip::parse(&out) {
            panic!(
                "our response does not parse: {e}\n{}",
                String::from_utf8_lossy(&out)
            );
        }
        if let Ok(offer) = sdp::read_offer(&req.body) {
            let ours = offer
                .crypto
                .as_ref()
                .map(|c| srtp::Crypto::fresh(c.tag, c.suite));
            let answer = sdp::answer(&offer, "192.0.2.1:5004".parse().unwrap(), 1, ours.as_ref());
            let back = sdp::read_offer(answer.as_bytes()).expect("our answer reads back");
            assert_eq!((back.codec, back.events), (offer.codec, offer.events));
            assert_eq!(back.crypto, ours);
        }
        // An INFO's key (SIP INFO DTMF): a key or a refusal, whatever the
        // content type says.
        if let Ok(k) = sip::info_key(sip::content_type(&req).as_deref(), &req.body) {
            assert!(k.is_ascii_digit() || "*#ABCD".contains(k), "{k:?}");
        }
    }
    let _ = sdp::read_offer(data);
    // A caller's audio as G.711: the in-band DTMF detector hears keys or
    // nothing, never panics.
    let mut tones = convene_server::phone::dtmf::InBand::default();
    for k in tones.push(
        data.iter()
            .map(|&b| convene_server::phone::media::g711_decode(sdp::Law::Pcmu, b)),
    ) {
        assert!(k.is_ascii_digit() || "*#ABCD".contains(k), "{k:?}");
    }
    // A call's SRTP takes arbitrary datagrams from the network: they are
    // dropped or opened, never a panic.
    let key = srtp::Crypto::fresh(1, srtp::Suite::Aes128Sha1_80);
    if let Ok(mut s) = srtp::Srtp::new(&key, &key) {
        let _ = s.unprotect(data);
        let _ = s.protect(data);
    }
    if let Some((head, _body)) = sip::framing(data) {
        assert!(head >= 4 && head <= data.len() && &data[head - 4..head] == b"\r\n\r\n");
    }
});
