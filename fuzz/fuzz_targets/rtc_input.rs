//! `Rtc::handle_input` on an established peer: what the media worker does
//! with every datagram that reaches a participant's connection after ICE
//! and DTLS are up. The bytes arrive from the peer's own remote address
//! (so they pass the routing that stops strangers) and are steered into each
//! demultiplexing range of RFC 7983 by the first input byte: DTLS records
//! (handshake, alert, application data mid-session), SRTP/SRTCP (header,
//! extension and auth-tag parsing before the keys reject them), STUN (ICE
//! checks with wrong credentials) and anything else.
//!
//! The pair (`convene_fuzz::pair`) is built in memory once per process (a real ICE + DTLS
//! handshake between two `Rtc`s, on virtual time) and rebuilt whenever the
//! fuzzed side has closed; a panic anywhere is the finding.
#![no_main]

use std::cell::RefCell;

use convene_fuzz::pair::Pair;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static PAIR: RefCell<Option<Pair>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // Steer the first byte into one of RFC 7983's ranges.
    let mut datagram = rest.to_vec();
    if let Some(first) = datagram.first_mut() {
        *first = match sel % 4 {
            0 => 20 + *first % 44,  // DTLS
            1 => 128 + *first % 64, // RTP / RTCP
            2 => *first % 4,        // STUN
            _ => *first,            // anything
        };
    }
    PAIR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|p| !p.sfu.is_alive()) {
            *slot = Pair::connect(false);
        }
        let Some(pair) = slot.as_mut() else {
            return;
        };
        if pair.to_sfu(&datagram).is_none() || pair.step().is_none() {
            *slot = None;
        }
    });
});
