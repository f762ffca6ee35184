//! Two `Rtc`s connected in memory: the SFU side (ICE lite, RTP mode, as
//! `rtc/worker` builds a participant) and a client. Datagrams between them
//! pass through a hook, so a target can watch, change, drop or add to what
//! the client sends while the pair runs on virtual time.
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use convene_server::rtc::dtls::provider;
use convene_server::rtc::worker::peer_config;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// The SFU's address as the client sees it.
pub const SFU: &str = "10.0.0.1:5000";
/// The client's address as the SFU sees it.
pub const CLIENT: &str = "10.0.0.2:6000";

/// Parses one of the two fixed addresses.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// One DTLS certificate per side for the whole process (the media worker
/// also reuses one per worker), made with the server's DTLS provider.
fn certs() -> &'static (DtlsCert, DtlsCert) {
    static CERTS: OnceLock<(DtlsCert, DtlsCert)> = OnceLock::new();
    CERTS.get_or_init(|| {
        let p = provider();
        let make = || p.dtls_provider.generate_certificate().expect("certificate");
        (make(), make())
    })
}

/// As the media worker builds a participant's `Rtc` (`rtc::worker::peer_config`:
/// the shared DTLS provider, ICE lite, RTP mode, send-side estimator, the
/// worker's codecs, send buffer and stats interval), with one certificate.
pub fn sfu_rtc(now: Instant, raw_packets: bool) -> Rtc {
    let mut b = peer_config(true).set_dtls_cert(certs().0.clone());
    if raw_packets {
        b = b.enable_raw_packets(true);
    }
    b.build(now)
}

fn client_rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .set_crypto_provider(provider())
        .set_dtls_cert(certs().1.clone())
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now)
}

/// Panics in str0m 0.25 that a peer's own authenticated input reaches,
/// found by `rtc_keyed`: the media worker contains them (the peer is closed,
/// `rtc/worker/mod.rs`), so here they end the pair, not the run.
/// `rtcp/twcc.rs` panics when a TWCC report's status says one delta size
/// and its delta list holds the other.
pub const KNOWN_STR0M_PANICS: &[&str] =
    &["Incorrect small delta size", "Incorrect large delta size"];

/// Installs, once, a panic hook that lets the known str0m panics unwind to
/// `to_sfu`'s `catch_unwind` and hands every other panic to the previous
/// hook (libFuzzer's, which reports it as a crash).
fn tolerate_known_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let known = KNOWN_STR0M_PANICS.iter().any(|k| msg.contains(k))
                && info.location().is_some_and(|l| l.file().contains("str0m"));
            if !known && !IN_HARNESS_CODE.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

thread_local! {
    /// Set while [`harness_side`] runs the harness's own helpers.
    static IN_HARNESS_CODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a helper of the harness itself (not the code under test), e.g.
/// the independent SRTP implementation that encrypts a target's input:
/// `None` when it panics on the fuzzer's bytes, which is not a finding
/// (`webrtc-srtp`'s `rtp` crate trusts RFC 8285 element lengths, and its
/// AES-CM cipher the header length that follows from them).
pub fn harness_side<T>(f: impl FnOnce() -> T) -> Option<T> {
    tolerate_known_panics();
    IN_HARNESS_CODE.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    IN_HARNESS_CODE.with(|c| c.set(false));
    r
}

/// Which way a datagram goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Way {
    /// From the client to the SFU.
    ToSfu,
    /// From the SFU to the client.
    ToClient,
}

/// What the hook makes of one datagram: the datagrams actually delivered.
pub type Hook<'a> = dyn FnMut(Way, Vec<u8>) -> Vec<Vec<u8>> + 'a;

/// The SFU side and the client side, on virtual time.
pub struct Pair {
    /// The side under test, built as the media worker builds it.
    pub sfu: Rtc,
    /// The other side.
    pub client: Rtc,
    /// The virtual clock.
    pub now: Instant,
    /// RTP packets and RTCP items the SFU decrypted and reported (with
    /// `raw_packets`).
    pub sfu_raw: usize,
    /// The SSRCs the client announced in its offer (what the SFU expects).
    pub client_ssrcs: Vec<u32>,
}

impl Pair {
    /// A fresh pair with offer and answer exchanged, not yet connected.
    /// `raw_packets` makes the SFU report what it decrypted (for targets
    /// that check their input got past the keys).
    pub fn new(raw_packets: bool) -> Option<Pair> {
        let now = Instant::now();
        let mut sfu = sfu_rtc(now, raw_packets);
        let mut client = client_rtc(now);
        sfu.add_local_candidate(Candidate::host(addr(SFU), "udp").ok()?);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").ok()?);
        let mut change = client.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply()?;
        let sdp = offer.to_sdp_string();
        let client_ssrcs = announced_ssrcs(&sdp);
        let offer = SdpOffer::from_sdp_string(&sdp).ok()?;
        let answer = sfu.sdp_api().accept_offer(offer).ok()?;
        client.sdp_api().accept_answer(pending, answer).ok()?;
        Some(Pair {
            sfu,
            client,
            now,
            sfu_raw: 0,
            client_ssrcs,
        })
    }

    /// A fresh pair, connected (ICE + DTLS + SRTP keys) on virtual time.
    pub fn connect(raw_packets: bool) -> Option<Pair> {
        let mut pair = Pair::new(raw_packets)?;
        for _ in 0..400 {
            if pair.sfu.is_connected() && pair.client.is_connected() {
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

    /// Hands one datagram from the client's address to the SFU; `None`
    /// when the SFU refused it with an error (it is then done).
    ///
    /// As the media worker does, a panic inside str0m on this input closes
    /// the peer (`None`) instead of the process, but only for the panics
    /// listed in [`KNOWN_STR0M_PANICS`]: any other panic is still a finding.
    pub fn to_sfu(&mut self, datagram: &[u8]) -> Option<()> {
        if let Ok(r) = Receive::new(Protocol::Udp, addr(CLIENT), addr(SFU), datagram) {
            tolerate_known_panics();
            let sfu = &mut self.sfu;
            let now = self.now;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sfu.handle_input(Input::Receive(now, r))
            }))
            .ok()?
            .ok()?;
        }
        Some(())
    }

    /// One round with every datagram delivered as sent.
    pub fn step(&mut self) -> Option<()> {
        self.step_with(&mut |_, d| vec![d])
    }

    /// One round: both sides' output goes through `hook` to the other
    /// side, then time moves to the earliest timeout (at most 50 ms on).
    /// `None` once either side has failed or disconnected.
    pub fn step_with(&mut self, hook: &mut Hook<'_>) -> Option<()> {
        let mut raw = 0;
        let a = drain(
            &mut self.sfu,
            &mut self.client,
            Way::ToClient,
            self.now,
            hook,
            &mut raw,
        )?;
        let b = drain(
            &mut self.client,
            &mut self.sfu,
            Way::ToSfu,
            self.now,
            hook,
            &mut 0,
        )?;
        self.sfu_raw += raw;
        let next = a.min(b).max(self.now + Duration::from_millis(1));
        self.now = next.min(self.now + Duration::from_millis(50));
        self.sfu.handle_input(Input::Timeout(self.now)).ok()?;
        self.client.handle_input(Input::Timeout(self.now)).ok()?;
        Some(())
    }
}

/// Drains `from`'s output, delivering what it sends (through `hook`) to
/// `to`; returns its next timeout, `None` when it failed or disconnected.
fn drain(
    from: &mut Rtc,
    to: &mut Rtc,
    way: Way,
    now: Instant,
    hook: &mut Hook<'_>,
    raw: &mut usize,
) -> Option<Instant> {
    let (src, dst) = match way {
        Way::ToSfu => (addr(CLIENT), addr(SFU)),
        Way::ToClient => (addr(SFU), addr(CLIENT)),
    };
    for _ in 0..10_000 {
        match from.poll_output() {
            Ok(Output::Timeout(t)) => return Some(t),
            Ok(Output::Transmit(t)) => {
                for d in hook(way, t.contents.to_vec()) {
                    if let Ok(r) = Receive::new(Protocol::Udp, src, dst, &d) {
                        let _ = to.handle_input(Input::Receive(now, r));
                    }
                }
            }
            Ok(Output::Event(Event::IceConnectionStateChange(s)))
                if s == str0m::IceConnectionState::Disconnected =>
            {
                return None;
            }
            Ok(Output::Event(Event::RawPacket(p))) => {
                if matches!(*p, RawPacket::RtcpRx(_) | RawPacket::RtpRx(..)) {
                    *raw += 1;
                }
            }
            Ok(Output::Event(_)) => {}
            Err(_) => return None,
        }
    }
    Some(now)
}

/// The SSRCs of an SDP's `a=ssrc:` lines, each once.
fn announced_ssrcs(sdp: &str) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for line in sdp.lines() {
        let Some(rest) = line.strip_prefix("a=ssrc:") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(ssrc) = digits.parse() {
            if !out.contains(&ssrc) {
                out.push(ssrc);
            }
        }
    }
    out
}
