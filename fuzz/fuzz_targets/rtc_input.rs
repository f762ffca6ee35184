//! `Rtc::handle_input` on an established peer: what the media worker does
//! with every datagram that reaches a participant's connection after ICE
//! and DTLS are up. The bytes arrive from the peer's own remote address
//! (so they pass the routing that stops strangers) and are steered into each
//! demultiplexing range of RFC 7983 by the first input byte: DTLS records
//! (handshake, alert, application data mid-session), SRTP/SRTCP (header,
//! extension and auth-tag parsing before the keys reject them), STUN (ICE
//! checks with wrong credentials) and anything else.
//!
//! The pair is built in memory once per process (a real ICE + DTLS
//! handshake between two `Rtc`s, on virtual time) and rebuilt whenever the
//! fuzzed side has closed; a panic anywhere is the finding.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// The SFU side (the one fuzzed) and the client side, on virtual time.
struct Pair {
    sfu: Rtc,
    client: Rtc,
    now: Instant,
}

const SFU: &str = "10.0.0.1:5000";
const CLIENT: &str = "10.0.0.2:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// As the media worker builds a participant's `Rtc`: ICE lite, RTP mode.
fn sfu_rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now)
}

fn client_rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now)
}

/// Drains `from`'s output, delivering what it sends to `to`; returns its
/// next timeout and whether it is still alive.
fn drain(
    from: &mut Rtc,
    to: &mut Rtc,
    src: SocketAddr,
    dst: SocketAddr,
    now: Instant,
) -> Option<Instant> {
    for _ in 0..10_000 {
        match from.poll_output() {
            Ok(Output::Timeout(t)) => return Some(t),
            Ok(Output::Transmit(t)) => {
                if let Ok(r) = Receive::new(Protocol::Udp, src, dst, &t.contents) {
                    let _ = to.handle_input(Input::Receive(now, r));
                }
            }
            Ok(Output::Event(Event::IceConnectionStateChange(s)))
                if s == str0m::IceConnectionState::Disconnected =>
            {
                return None;
            }
            Ok(Output::Event(_)) => {}
            Err(_) => return None,
        }
    }
    Some(now)
}

impl Pair {
    /// A fresh pair, connected (ICE + DTLS + SRTP keys) on virtual time.
    fn connect() -> Option<Pair> {
        let now = Instant::now();
        let mut sfu = sfu_rtc(now);
        let mut client = client_rtc(now);
        sfu.add_local_candidate(Candidate::host(addr(SFU), "udp").ok()?);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").ok()?);
        let mut change = client.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply()?;
        let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).ok()?;
        let answer = sfu.sdp_api().accept_offer(offer).ok()?;
        client.sdp_api().accept_answer(pending, answer).ok()?;
        let mut pair = Pair { sfu, client, now };
        for _ in 0..400 {
            if pair.sfu.is_connected() && pair.client.is_connected() && pair.step().is_some() {
                // A few more rounds so SRTP contexts exist on both sides.
                for _ in 0..5 {
                    pair.step()?;
                }
                return Some(pair);
            }
            pair.step()?;
        }
        None
    }

    /// One round: both sides' output delivered, time moved to the earliest
    /// timeout (at most 50 ms on).
    fn step(&mut self) -> Option<()> {
        let a = drain(
            &mut self.sfu,
            &mut self.client,
            addr(SFU),
            addr(CLIENT),
            self.now,
        )?;
        let b = drain(
            &mut self.client,
            &mut self.sfu,
            addr(CLIENT),
            addr(SFU),
            self.now,
        )?;
        let next = a.min(b).max(self.now + Duration::from_millis(1));
        self.now = next.min(self.now + Duration::from_millis(50));
        self.sfu.handle_input(Input::Timeout(self.now)).ok()?;
        self.client.handle_input(Input::Timeout(self.now)).ok()?;
        Some(())
    }
}

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
            *slot = Pair::connect();
        }
        let Some(pair) = slot.as_mut() else {
            return;
        };
        if let Ok(r) = Receive::new(Protocol::Udp, addr(CLIENT), addr(SFU), &datagram) {
            if pair.sfu.handle_input(Input::Receive(pair.now, r)).is_err() {
                *slot = None;
                return;
            }
        }
        if pair.step().is_none() {
            *slot = None;
        }
    });
});
