//! Packets sealed outside str0m (`rtc::seal`, keyed from `rtc::dtls`'s
//! exported material), checked against a real str0m session in memory: a
//! worker peer (the worker's own configuration and crypto provider) and a
//! client. What the worker peer seals must be byte for byte what str0m
//! seals, and the client must take what is sealed here as its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::net::{Protocol, Transmit};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::connect_tests::{CLIENT, SERVER, WorkerPeer, deliver, negotiate};
use super::lifecycle::peer_config;
use super::poll::is_rtp;
use crate::rtc::dtls::{ExportedKeys, export_keys_on_this_thread, take_exported_keys};
use crate::rtc::seal::{Profile, SrtpSealer};

/// What the client saw: RTP packets (SSRC, sequence number, payload) and
/// the SSRCs of sender reports.
#[derive(Default)]
struct Seen {
    rtp: Vec<(Ssrc, u64, Vec<u8>)>,
    sender_reports: Vec<Ssrc>,
}

/// Drives the client until it waits: hands it `datagrams`, sends what it
/// sends to the worker peer, and notes what it received.
fn feed(
    client: &mut Rtc,
    datagrams: Vec<Transmit>,
    server: &mut Rtc,
    now: Instant,
    seen: &mut Seen,
) {
    let mut datagrams = datagrams.into_iter();
    loop {
        match client.poll_output().expect("client poll") {
            Output::Timeout(_) => match datagrams.next() {
                Some(d) => deliver(&d, client, now),
                None => return,
            },
            Output::Transmit(t) => deliver(&t, server, now),
            Output::Event(Event::RtpPacket(p)) => {
                seen.rtp
                    .push((p.header.ssrc, *p.seq_no, p.payload.to_vec()));
            }
            Output::Event(Event::SenderFeedback(f)) => seen.sender_reports.push(f.sender_info.ssrc),
            Output::Event(_) => {}
        }
    }
}

/// A datagram from the worker peer to the client, as if sent on the wire.
fn datagram(contents: Vec<u8>) -> Transmit {
    Transmit {
        proto: Protocol::Udp,
        source: SERVER.parse().unwrap(),
        destination: CLIENT.parse().unwrap(),
        contents: contents.into(),
    }
}

/// The RTP header length of a packet (fixed part, CSRCs, extensions).
fn header_len(p: &[u8]) -> usize {
    let mut n = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        n += 4 + 4 * usize::from(u16::from_be_bytes([p[n + 2], p[n + 3]]));
    }
    n
}

struct Session {
    now: Instant,
    server: WorkerPeer,
    client: Rtc,
    mid: Mid,
    pt: str0m::media::Pt,
    keys: Option<ExportedKeys>,
    seen: Seen,
}

/// A worker peer that offers one video m-line and a client, connected,
/// with the keying material the worker peer's handshake exported if
/// `export` asked for it.
fn connect(export: bool) -> Session {
    export_keys_on_this_thread(export);
    let mut now = Instant::now();
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let mut server = WorkerPeer {
        rtc: peer_config(true).build(now),
        connected: false,
        keys_ready: false,
        kick: true,
    };
    server
        .rtc
        .add_local_candidate(Candidate::host(server_addr, "udp").unwrap());
    let mut client = Rtc::builder().set_rtp_mode(true).build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
    let (mid, pt) = negotiate(&mut server.rtc, &mut client, true);
    let mut seen = Seen::default();
    let mut keys = None;
    for _ in 0..10_000 {
        let mut sent = Vec::new();
        let ts = server.poll(&mut sent, now);
        if server.connected && keys.is_none() {
            keys = take_exported_keys();
        }
        feed(&mut client, sent, &mut server.rtc, now, &mut seen);
        if server.connected {
            break;
        }
        now = ts.max(now + Duration::from_millis(1));
        server.rtc.handle_input(Input::Timeout(now)).unwrap();
        client.handle_input(Input::Timeout(now)).unwrap();
    }
    assert!(server.connected, "the pair did not connect");
    export_keys_on_this_thread(false);
    Session {
        now,
        server,
        client,
        mid,
        pt,
        keys,
        seen,
    }
}

#[test]
fn sealed_here_is_sealed_as_str0m_seals_and_the_client_takes_it() {
    let mut s = connect(true);
    let keys = s
        .keys
        .take()
        .expect("the worker peer's handshake exported its keying material");
    let profile = Profile::from_dtls(keys.profile).expect("a profile dimpl negotiates");
    assert_eq!(
        keys.material.len(),
        profile.keying_material_len(),
        "{profile:?}"
    );
    let sealer =
        SrtpSealer::from_keying_material(&keys.material, profile, keys.dtls_client).unwrap();
    // The other side's half does not seal the same.
    let other =
        SrtpSealer::from_keying_material(&keys.material, profile, !keys.dtls_client).unwrap();

    // 1. str0m writes a packet; sealing its plaintext here gives its bytes.
    let first: &[u8] = b"written through str0m";
    let mut api = s.server.rtc.direct_api();
    let tx = api.stream_tx_by_mid(s.mid, None).expect("a send stream");
    let ssrc = tx.ssrc();
    tx.write_rtp(
        RtpWrite::new(
            s.pt,
            SeqNo::from(1),
            90_000,
            s.now,
            Arc::<[u8]>::from(first),
        )
        .marker(true),
    );
    let mut sent = Vec::new();
    s.server.poll(&mut sent, s.now);
    let wire = sent
        .iter()
        .map(|t| t.contents.to_vec())
        .find(|d| {
            is_rtp(d) && d[8..12] == (*ssrc).to_be_bytes() && u16::from_be_bytes([d[2], d[3]]) == 1
        })
        .expect("str0m sent the packet");
    let hl = header_len(&wire);
    assert_eq!(wire.len(), hl + first.len() + profile.rtp_overhead());
    let mut ours = wire[..hl].to_vec();
    ours.extend_from_slice(first);
    ours.resize(wire.len(), 0);
    let n = sealer.seal_rtp(&mut ours, hl + first.len(), hl, 0).unwrap();
    assert_eq!(
        ours[..n],
        wire[..],
        "{profile:?}: sealed here as str0m seals"
    );
    let mut theirs = wire[..hl].to_vec();
    theirs.extend_from_slice(first);
    theirs.resize(wire.len(), 0);
    other
        .seal_rtp(&mut theirs, hl + first.len(), hl, 0)
        .unwrap();
    assert_ne!(theirs, wire, "the other direction's keys differ");
    feed(&mut s.client, sent, &mut s.server.rtc, s.now, &mut s.seen);
    assert!(
        s.seen.rtp.iter().any(|(_, _, p)| p == first),
        "the client took str0m's packet"
    );

    // 2. A packet written and sealed here only: the next of that stream,
    //    its header str0m's with a new sequence number and timestamp.
    let second: &[u8] = b"sealed by Convene, never seen by str0m";
    let mut own = wire[..hl].to_vec();
    own[2..4].copy_from_slice(&2u16.to_be_bytes());
    own[4..8].copy_from_slice(&93_000u32.to_be_bytes());
    own.extend_from_slice(second);
    let len = own.len();
    own.resize(len + profile.rtp_overhead(), 0);
    let n = sealer.seal_rtp(&mut own, len, hl, 0).unwrap();
    own.truncate(n);
    // And one sealed with the other direction's keys: dropped.
    let mut forged = own[..hl].to_vec();
    forged[2..4].copy_from_slice(&3u16.to_be_bytes());
    forged.extend_from_slice(b"forged");
    let len = forged.len();
    forged.resize(len + profile.rtp_overhead(), 0);
    other.seal_rtp(&mut forged, len, hl, 0).unwrap();
    feed(
        &mut s.client,
        vec![datagram(own), datagram(forged)],
        &mut s.server.rtc,
        s.now,
        &mut s.seen,
    );
    assert!(
        s.seen
            .rtp
            .iter()
            .any(|(x, seq, p)| *x == ssrc && *seq == 2 && p == second),
        "the client took the packet sealed here: {:?}",
        s.seen
            .rtp
            .iter()
            .map(|(x, q, _)| (*x, *q))
            .collect::<Vec<_>>()
    );
    assert!(
        !s.seen.rtp.iter().any(|(_, _, p)| p == b"forged"),
        "a packet under the wrong keys was taken"
    );

    // 3. A sender report for that stream, sealed here as SRTCP (an index
    //    far above str0m's own count for this session).
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&(*ssrc).to_be_bytes());
    sr.extend_from_slice(&[0xe0, 0, 0, 0, 0, 0, 0, 0]); // NTP time
    sr.extend_from_slice(&93_000u32.to_be_bytes());
    sr.extend_from_slice(&2u32.to_be_bytes());
    sr.extend_from_slice(&((first.len() + second.len()) as u32).to_be_bytes());
    let len = sr.len();
    sr.resize(len + profile.rtcp_overhead(), 0);
    let n = sealer.seal_rtcp(&mut sr, len, 1 << 20).unwrap();
    sr.truncate(n);
    s.now += Duration::from_millis(5);
    feed(
        &mut s.client,
        vec![datagram(sr)],
        &mut s.server.rtc,
        s.now,
        &mut s.seen,
    );
    assert!(
        s.seen.sender_reports.contains(&ssrc),
        "the client took the sender report sealed here"
    );
}

#[test]
fn nothing_is_exported_unless_asked() {
    // On a thread of its own, so no other test's handshake can interleave.
    let exported = std::thread::spawn(|| {
        let s = connect(false);
        assert!(s.server.connected);
        (s.keys.is_some(), take_exported_keys().is_some())
    })
    .join()
    .unwrap();
    assert_eq!(exported, (false, false), "material exported without asking");
}
