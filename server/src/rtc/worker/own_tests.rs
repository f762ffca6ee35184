//! `own.rs` on str0m in memory: a worker peer (str0m's estimator off, as
//! the own path builds it) and a client. The path adopts the worker peer's
//! send stream, writes copies the client takes as that stream's, reports
//! on it (and str0m does not), answers a NACK from its cache, and keeps
//! the SSRC signaled across a renegotiation; its state fits issue 15's
//! budget per peer connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};
use str0m::net::Transmit;
use str0m::{Input, Rtc};

use super::connect_tests::{WorkerPeer, connect_pair, negotiate, pair, to_client};
use super::copies::CopyPlan;
use super::own::{Datagrams, Dest, OwnPath};
use super::seal_tests::{Seen, feed};
use super::state::{OutState, OutTrack, Outgoing};
use crate::rtc::TrackKey;
use crate::rtc::dtls::export_keys_on_this_thread;

/// What the path sent, in order.
#[derive(Default)]
struct Sent(Vec<Vec<u8>>);

impl Datagrams for Sent {
    fn spare(&mut self) -> Vec<u8> {
        Vec::with_capacity(1500)
    }

    fn send(&mut self, dest: Dest, datagram: Vec<u8>) {
        assert_eq!(dest.addr, super::connect_tests::CLIENT.parse().unwrap());
        self.0.push(datagram);
    }

    fn recycle(&mut self, _: Vec<u8>) {}
}

fn out_track(mid: Mid) -> OutTrack {
    OutTrack {
        mid,
        track_key: TrackKey::UNBOUND,
        state: OutState::Active,
        subscribed: true,
        paused: false,
        kind: MediaKind::Video,
        nacks_seen: 0,
        pt: None,
    }
}

fn packet(seq: u64, payload: &[u8]) -> Outgoing {
    Outgoing {
        key: TrackKey::UNBOUND,
        view: convene_sfu::Packet {
            seq,
            ts: seq as u32 * 3000,
            marker: true,
            layer: convene_sfu::Layer::F,
            keyframe: false,
            clock_rate: 90_000,
            arrival: Instant::now(),
        },
        codec: str0m::format::Codec::Vp8,
        payload: Arc::from(payload),
        audio_level: None,
        voice_activity: None,
        capture: None,
    }
}

/// A worker peer and a client negotiated with one video m-line, the
/// worker peer's send stream adopted by a new own path.
struct Adopted {
    server: WorkerPeer,
    client: Rtc,
    mid: Mid,
    pt: str0m::media::Pt,
    outs: Vec<OutTrack>,
    own: OwnPath,
    /// The adopted stream's SSRC.
    ssrc: str0m::rtp::Ssrc,
}

fn adopted(now: Instant) -> Adopted {
    let (mut server, mut client): (WorkerPeer, Rtc) = pair(false, true, now);
    let (mid, pt) = negotiate(&mut server.rtc, &mut client, true);
    let outs = vec![out_track(mid)];
    let mut own = OwnPath::new(now, Duration::from_secs(1));
    let ssrc = server
        .rtc
        .direct_api()
        .stream_tx_by_mid(mid, None)
        .map(|tx| tx.ssrc())
        .expect("str0m declared a send stream");
    own.adopt(&mut server.rtc, &outs);
    Adopted {
        server,
        client,
        mid,
        pt,
        outs,
        own,
        ssrc,
    }
}

#[test]
fn the_own_path_writes_reports_resends_and_keeps_its_ssrc() {
    export_keys_on_this_thread(true);
    let mut now = Instant::now();
    let Adopted {
        mut server,
        mut client,
        mid,
        pt,
        outs,
        mut own,
        ssrc,
    } = adopted(now);
    assert!(
        server
            .rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .is_none(),
        "adopted: str0m's stream is gone"
    );
    let mut seen = Seen::default();
    let keys = connect_pair(&mut server, &mut client, &mut now, |c, sent, s, at| {
        feed(c, sent, s, at, &mut seen)
    })
    .expect("keying material");
    export_keys_on_this_thread(false);
    own.set_keys(&keys, now).expect("keys");
    own.dest = Some(Dest {
        addr: super::connect_tests::CLIENT.parse().unwrap(),
        tcp: false,
    });
    // VP8's RTX payload type, as the worker looks it up (the closure must
    // not hold the worker peer: it is driven meanwhile).
    let vp8_rtx = super::own::rtx_pt_of(&server.rtc, *pt);
    assert!(vp8_rtx.is_some(), "VP8 has an RTX payload type");
    let rtx_pt = move |p: u8| if p == *pt { vp8_rtx } else { None };

    // Thirty copies; the tenth is lost on the way.
    let mut io = Sent::default();
    for seq in 1..=30u64 {
        let plan = CopyPlan {
            mid,
            out: 0,
            pt,
            seq,
            ts: seq as u32 * 3000,
            nackable: true,
        };
        let mut buf = io.spare();
        own.write_copy(
            &plan,
            &packet(seq, &[seq as u8; 300]),
            &rtx_pt,
            now,
            &mut buf,
        )
        .expect("written");
        assert!(buf.len() > 300, "sealed with its header and tag");
        if seq != 10 {
            io.send(own.dest.unwrap(), buf);
        }
    }
    let datagrams = std::mem::take(&mut io.0)
        .into_iter()
        .map(to_client)
        .collect();
    feed(&mut client, datagrams, &mut server.rtc, now, &mut seen);
    let on_ssrc: Vec<u64> = seen
        .rtp
        .iter()
        .filter(|(s, _, _)| *s == ssrc)
        .map(|(_, q, _)| *q)
        .collect();
    assert_eq!(
        on_ssrc.len(),
        29,
        "the client took the copies as the adopted stream's"
    );
    assert!(!on_ssrc.contains(&10));

    // A second and a half: the client NACKs the lost packet; the path
    // answers from its cache and reports on its stream (that str0m no
    // longer does is `own_streams_tests`).
    for _ in 0..15 {
        now += Duration::from_millis(100);
        client.handle_input(Input::Timeout(now)).unwrap();
        server.rtc.handle_input(Input::Timeout(now)).unwrap();
        let mut str0m_sent = Vec::new();
        server.poll(&mut str0m_sent, now);
        let from_client = std::mem::take(&mut seen.to_server);
        for d in from_client.iter().filter(|d| super::poll::is_rtcp(d)) {
            let mut copy = d.clone();
            let fb = own.on_rtcp(&mut copy, d.len(), now, &rtx_pt, &mut io);
            assert!(fb.keyframes.is_empty());
        }
        own.on_timeout(now, true, &|_| true, &rtx_pt, &mut io);
        let mut datagrams: Vec<Transmit> = std::mem::take(&mut io.0)
            .into_iter()
            .map(to_client)
            .collect();
        datagrams.extend(str0m_sent);
        feed(&mut client, datagrams, &mut server.rtc, now, &mut seen);
    }
    assert!(
        seen.rtp
            .iter()
            .any(|(s, q, p)| *s == ssrc && *q == 10 && p[..] == [10u8; 300][..]),
        "the lost packet came back as RTX"
    );
    assert!(
        seen.sender_reports.contains(&ssrc),
        "the own path reported on its stream"
    );

    // A renegotiation (a second m-line): declared around the offer and
    // answer, the SSRC stays signaled and str0m makes no stream for it.
    own.declare(&mut server.rtc);
    let mut change = server.rtc.sdp_api();
    let second = change.add_media(
        MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, pending) = change.apply().expect("an offer");
    let mut outs = outs;
    own.adopt(&mut server.rtc, &outs);
    let text = offer.to_sdp_string();
    assert!(text.contains(&format!("a=ssrc:{ssrc} ")), "still signaled");
    let answer = client.sdp_api().accept_offer(offer).expect("an answer");
    own.declare(&mut server.rtc);
    server
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    outs.push(out_track(second));
    own.adopt(&mut server.rtc, &outs);
    let mut api = server.rtc.direct_api();
    assert!(api.stream_tx_by_mid(mid, None).is_none());
    assert!(
        api.stream_tx_by_mid(second, None).is_none(),
        "the new one adopted too"
    );

    // The path's state for a peer of two video streams, besides the
    // payloads its caches share: within issue 15's 256 KiB a peer, with
    // room for str0m's part of the peer.
    let bytes = own.memory_bytes();
    println!("the own path's state for two video streams: {bytes} bytes");
    assert!(bytes < 100 * 1024, "{bytes} bytes");
}

/// A joiner's copies decided before its DTLS completed (its first
/// keyframe, asked for when its answer was applied) are held, also after
/// the keys are in until the worker releases them (str0m's last flight of
/// the handshake may still be queued), and then leave in the order
/// decided; the client takes them as the adopted stream's, and the stream
/// counts as started (so the worker asks no keyframe at `Connected`).
#[test]
fn copies_decided_before_the_keys_leave_in_order_when_released() {
    export_keys_on_this_thread(true);
    let mut now = Instant::now();
    let Adopted {
        mut server,
        mut client,
        mid,
        pt,
        mut own,
        ssrc,
        ..
    } = adopted(now);
    let plan = |seq: u64| CopyPlan {
        mid,
        out: 0,
        pt,
        seq,
        ts: seq as u32 * 3000,
        nackable: true,
    };
    assert!(own.holding());
    assert!(!own.has_started(0));
    for seq in 1..=20u64 {
        assert!(own.hold_early(&plan(seq), &packet(seq, &[seq as u8; 200])));
    }
    assert!(own.has_started(0), "held copies count as started");
    assert!(!own.has_started(1), "no other stream");
    let mut io = Sent::default();
    assert_eq!(
        own.release_early(&|_| None, now, &mut io),
        (0, 0),
        "nothing leaves before the keys"
    );
    assert!(own.holding() && own.has_early(), "and nothing is lost");

    let mut seen = Seen::default();
    let keys = connect_pair(&mut server, &mut client, &mut now, |c, sent, s, at| {
        feed(c, sent, s, at, &mut seen)
    })
    .expect("keying material");
    export_keys_on_this_thread(false);
    own.set_keys(&keys, now).expect("keys");
    assert_eq!(
        own.release_early(&|_| None, now, &mut io),
        (0, 0),
        "nor before the destination"
    );
    own.dest = Some(Dest {
        addr: super::connect_tests::CLIENT.parse().unwrap(),
        tcp: false,
    });
    assert!(
        own.hold_early(&plan(21), &packet(21, &[21; 200])),
        "held until released, keys or not"
    );
    assert_eq!(own.release_early(&|_| None, now, &mut io), (21, 21 * 200));
    assert!(!own.holding() && !own.has_early());
    assert!(own.has_started(0));
    assert!(
        !own.hold_early(&plan(22), &packet(22, &[22; 200])),
        "nothing is held once released"
    );
    assert_eq!(own.release_early(&|_| None, now, &mut io), (0, 0), "once");

    let datagrams = std::mem::take(&mut io.0)
        .into_iter()
        .map(to_client)
        .collect();
    feed(&mut client, datagrams, &mut server.rtc, now, &mut seen);
    let on_ssrc: Vec<(u64, u8)> = seen
        .rtp
        .iter()
        .filter(|(s, _, _)| *s == ssrc)
        .map(|(_, q, p)| (*q, p[0]))
        .collect();
    let want: Vec<(u64, u8)> = (1..=21u64).map(|q| (q, q as u8)).collect();
    assert_eq!(on_ssrc, want, "every held copy, in order, intact");
}

/// The hold keeps at most `EARLY_COPIES`; the copy after that empties it
/// and nothing more is held (the peer's video then starts at the keyframe
/// asked for at `Connected`, not at a delta frame).
#[test]
fn the_hold_is_bounded_and_given_up_when_full() {
    let now = Instant::now();
    let mut own = OwnPath::new(now, Duration::from_secs(1));
    let plan = |seq: u64| CopyPlan {
        mid: Mid::from("0"),
        out: 0,
        pt: str0m::media::Pt::from(96),
        seq,
        ts: 0,
        nackable: true,
    };
    let out = packet(1, &[0; 100]);
    let empty = own.memory_bytes();
    for seq in 0..super::own::EARLY_COPIES as u64 {
        assert!(own.hold_early(&plan(seq), &out));
    }
    assert!(own.memory_bytes() > empty, "the hold is counted");
    assert!(!own.hold_early(&plan(9999), &out), "full");
    assert!(!own.has_early(), "given up: emptied");
    assert_eq!(own.memory_bytes(), empty, "and its memory returned");
    assert!(
        !own.hold_early(&plan(10_000), &out),
        "and not started again"
    );
}
