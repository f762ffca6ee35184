//! A peer's first media after DTLS completes, on str0m in memory: a worker
//! peer (the worker's own configuration) and a client, connected on a
//! frozen clock, so what leaves at `Connected` is told apart from what
//! waits for a timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::lifecycle::peer_config;
use super::poll::{is_rtp, serve_at_once};

pub(super) const SERVER: &str = "10.0.0.1:10000";
pub(super) const CLIENT: &str = "10.0.1.1:20000";
/// The payload of the packet written before DTLS completes.
const EARLY: &[u8] = b"written before the keys existed";

/// The worker's side, polled as `Worker::poll_peer` polls it.
pub(super) struct WorkerPeer {
    pub(super) rtc: Rtc,
    pub(super) connected: bool,
    pub(super) keys_ready: bool,
    /// Whether `Connected` sets `keys_ready` (the worker's rule) or not.
    pub(super) kick: bool,
}

impl WorkerPeer {
    /// Polls until str0m gives a timeout the worker would keep for its
    /// timer heap; what it sends is queued in `sent`. Returns that timeout.
    pub(super) fn poll(&mut self, sent: &mut Vec<Transmit>, now: Instant) -> Instant {
        loop {
            match self.rtc.poll_output().expect("worker peer poll") {
                Output::Timeout(t) => {
                    if serve_at_once(t, now, &mut self.keys_ready) {
                        self.rtc.handle_input(Input::Timeout(now)).unwrap();
                        continue;
                    }
                    return t;
                }
                Output::Transmit(t) => {
                    let paced = is_rtp(&t.contents);
                    sent.push(t);
                    if paced {
                        self.rtc.handle_input(Input::Timeout(now)).unwrap();
                    }
                }
                Output::Event(Event::Connected) => {
                    self.connected = true;
                    self.keys_ready = self.kick;
                }
                Output::Event(_) => {}
            }
        }
    }
}

pub(super) fn deliver(t: &Transmit, to: &mut Rtc, now: Instant) {
    let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
        .expect("a datagram str0m sent");
    to.handle_input(Input::Receive(now, r)).expect("input");
}

/// A worker peer (the worker's configuration, its estimator on or off, the
/// keys-ready rule on or off) and a client in RTP mode, each with its host
/// candidate, not yet negotiated.
pub(super) fn pair(bwe: bool, kick: bool, now: Instant) -> (WorkerPeer, Rtc) {
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let mut server = WorkerPeer {
        rtc: peer_config(bwe).build(now),
        connected: false,
        keys_ready: false,
        kick,
    };
    server
        .rtc
        .add_local_candidate(Candidate::host(server_addr, "udp").unwrap());
    let mut client = Rtc::builder().set_rtp_mode(true).build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
    (server, client)
}

/// Runs a negotiated pair until the worker peer reports `Connected`, the
/// clock moving on by the peers' timeouts; `feed` hands the client what
/// the worker peer sent. Returns the keying material the worker peer's
/// handshake exported, if this thread asked for it
/// (`rtc::dtls::export_keys_on_this_thread`).
pub(super) fn connect_pair(
    server: &mut WorkerPeer,
    client: &mut Rtc,
    now: &mut Instant,
    mut feed: impl FnMut(&mut Rtc, Vec<Transmit>, &mut Rtc, Instant),
) -> Option<crate::rtc::dtls::ExportedKeys> {
    let mut keys = None;
    for _ in 0..10_000 {
        let mut sent = Vec::new();
        let ts = server.poll(&mut sent, *now);
        if server.connected && keys.is_none() {
            keys = crate::rtc::dtls::take_exported_keys();
        }
        feed(client, sent, &mut server.rtc, *now);
        if server.connected {
            return keys;
        }
        *now = ts.max(*now + Duration::from_millis(1));
        server.rtc.handle_input(Input::Timeout(*now)).unwrap();
        client.handle_input(Input::Timeout(*now)).unwrap();
    }
    panic!("the pair did not connect");
}

/// A datagram from the worker peer to the client, as if sent on the wire.
pub(super) fn to_client(contents: Vec<u8>) -> Transmit {
    Transmit {
        proto: Protocol::Udp,
        source: SERVER.parse().unwrap(),
        destination: CLIENT.parse().unwrap(),
        contents: contents.into(),
    }
}

pub(super) use super::poll::is_rtcp;

/// Hands the client what the worker peer sent, one datagram at a time,
/// polling it after each (as a browser reads each datagram before the
/// next); its sends go to the worker peer. Returns the client's timeout
/// and whether the early packet came out of it.
fn feed_client(
    client: &mut Rtc,
    sent: &mut Vec<Transmit>,
    server: &mut Rtc,
    now: Instant,
) -> (Instant, bool) {
    let mut early = false;
    let mut datagrams = std::mem::take(sent).into_iter();
    loop {
        match client.poll_output().expect("client poll") {
            Output::Timeout(t) => match datagrams.next() {
                Some(d) => deliver(&d, client, now),
                None => return (t, early),
            },
            Output::Transmit(t) => deliver(&t, server, now),
            Output::Event(Event::RtpPacket(p)) => early |= &p.payload[..] == EARLY,
            Output::Event(_) => {}
        }
    }
}

/// Negotiates one send-only video m-line on the worker's side: the worker
/// offers (as it offers a room's tracks) or answers a client's offer to
/// receive (as a browser's first offer). Returns its mid and VP8's pt.
pub(super) fn negotiate(server: &mut Rtc, client: &mut Rtc, server_offers: bool) -> (Mid, Pt) {
    let mid = if server_offers {
        exchange(server, client, Direction::SendOnly)
    } else {
        exchange(client, server, Direction::RecvOnly)
    };
    let pt = server
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
        .expect("VP8 negotiated");
    (mid, pt)
}

/// One offer/answer round: `offerer` adds a video m-line with `dir` and
/// `answerer` accepts it. Returns the new m-line's mid.
fn exchange(offerer: &mut Rtc, answerer: &mut Rtc, dir: Direction) -> Mid {
    let mut change = offerer.sdp_api();
    let mid = change.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let answer = answerer.sdp_api().accept_offer(offer).unwrap();
    offerer.sdp_api().accept_answer(pending, answer).unwrap();
    mid
}

/// Connects a worker peer and a client with one packet written before
/// DTLS completes; returns whether the client had that packet when the
/// worker's poll that saw `Connected` ended, with the clock not moved on.
fn early_packet_out_at_connected(server_offers: bool, kick: bool) -> bool {
    let mut now = Instant::now();
    let (mut server, mut client) = pair(true, kick, now);
    let (mid, pt) = negotiate(&mut server.rtc, &mut client, server_offers);
    let mut api = server.rtc.direct_api();
    let tx = api
        .stream_tx_by_mid(mid, None)
        .expect("a send stream once negotiated");
    let payload: Arc<[u8]> = Arc::from(EARLY);
    tx.write_rtp(RtpWrite::new(pt, SeqNo::from(1), 90_000, now, payload).marker(true));
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        let ts = server.poll(&mut sent, now);
        let (tc, early) = feed_client(&mut client, &mut sent, &mut server.rtc, now);
        if server.connected {
            return early;
        }
        now = ts.min(tc).max(now + Duration::from_micros(100));
        server.rtc.handle_input(Input::Timeout(now)).unwrap();
        client.handle_input(Input::Timeout(now)).unwrap();
    }
    panic!("the pair did not connect");
}

/// Media written to a peer before its DTLS completed (a joiner's first
/// keyframe, asked for when its answer was applied) leaves in the poll
/// that sees `Connected`, whichever side offered (and so whichever is the
/// DTLS client). The control shows why the worker needs `keys_ready`:
/// without it, str0m holds the packet until a later timeout.
#[test]
fn media_written_before_dtls_completes_leaves_at_connected() {
    for server_offers in [true, false] {
        assert!(
            early_packet_out_at_connected(server_offers, true),
            "server offers: {server_offers}: the early packet waited past Connected"
        );
        assert!(
            !early_packet_out_at_connected(server_offers, false),
            "server offers: {server_offers}: str0m now sends queued media at Connected \
             by itself; `keys_ready` is no longer needed"
        );
    }
}
