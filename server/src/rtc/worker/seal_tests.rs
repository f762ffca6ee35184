//! Packets sealed outside str0m (`rtc::seal`, keyed from `rtc::dtls`'s
//! exported material), checked against a real str0m session in memory: a
//! worker peer (the worker's own configuration and crypto provider) and a
//! client. What the worker peer seals must be byte for byte what str0m
//! seals, and the client must take what is sealed here as its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::net::Transmit;
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Event, Input, Output, Rtc};

use super::connect_tests::{
    WorkerPeer, connect_pair, deliver, is_rtcp, negotiate, pair, to_client,
};
use super::poll::is_rtp;
use crate::rtc::dtls::{ExportedKeys, export_keys_on_this_thread, take_exported_keys};
use crate::rtc::seal::{Profile, ReplayWindow, SrtpSealer};
use convene_sfu::feedback::{Feedback, ReferenceClock, nacked, rtcp_packets};
use convene_sfu::writer::header::write_header;
use convene_sfu::writer::{
    ExtIds, ExtValues, ResendCache, RtpHeader, RtxStream, SentPacket, header_len, nack_seqs,
};
use convene_sfu::{BweConfig, SendSideBwe};
use str0m::rtp::Extension;

/// What the client saw: RTP packets (SSRC, sequence number, payload) and
/// the SSRCs of sender reports.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) rtp: Vec<(Ssrc, u64, Vec<u8>)>,
    pub(super) sender_reports: Vec<Ssrc>,
    /// Every datagram the client sent to the worker peer.
    pub(super) to_server: Vec<Vec<u8>>,
}

/// Drives the client until it waits: hands it `datagrams`, sends what it
/// sends to the worker peer, and notes what it received.
pub(super) fn feed(
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
            Output::Transmit(t) => {
                seen.to_server.push(t.contents.to_vec());
                deliver(&t, server, now);
            }
            Output::Event(Event::RtpPacket(p)) => {
                seen.rtp
                    .push((p.header.ssrc, *p.seq_no, p.payload.to_vec()));
            }
            Output::Event(Event::SenderFeedback(f)) => seen.sender_reports.push(f.sender_info.ssrc),
            Output::Event(_) => {}
        }
    }
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

impl Session {
    /// This side's sealer and the opener of the client's SRTCP, from the
    /// exported keys.
    fn sealers(&mut self) -> (SrtpSealer, SrtpSealer) {
        let keys = self.keys.take().expect("keying material");
        let profile = Profile::from_dtls(keys.profile).expect("a profile dimpl negotiates");
        let ours =
            SrtpSealer::from_keying_material(&keys.material, profile, keys.dtls_client).unwrap();
        let theirs =
            SrtpSealer::from_keying_material(&keys.material, profile, !keys.dtls_client).unwrap();
        (ours, theirs)
    }

    /// The id the client negotiated for extension `e` on the m-line.
    fn ext_id(&self, e: Extension) -> u8 {
        self.server
            .rtc
            .media(self.mid)
            .and_then(|m| m.remote_extmap().id_of(e))
            .expect("a negotiated extension")
    }

    /// The send stream's SSRC, its RTX SSRC, and VP8's RTX payload type.
    fn rtx(&mut self) -> (u32, u32, u8) {
        let pt = self.pt;
        let rtx_pt = self
            .server
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .and_then(|p| p.resend())
            .expect("VP8 has an RTX payload type");
        let mut api = self.server.rtc.direct_api();
        let tx = api.stream_tx_by_mid(self.mid, None).expect("a send stream");
        (*tx.ssrc(), *tx.rtx().expect("an RTX SSRC"), *rtx_pt)
    }
}

/// Seals the RTP packet `p` (header `hl` bytes) with `sealer` and hands it
/// to the client; returns its sealed length.
fn send_sealed(s: &mut Session, sealer: &SrtpSealer, mut p: Vec<u8>, hl: usize) -> usize {
    let len = p.len();
    p.resize(len + sealer.profile().rtp_overhead(), 0);
    let n = sealer.seal_rtp(&mut p, len, hl, 0).unwrap();
    p.truncate(n);
    let now = s.now;
    feed(
        &mut s.client,
        vec![to_client(p)],
        &mut s.server.rtc,
        now,
        &mut s.seen,
    );
    n
}

/// A worker peer that offers one video m-line and a client, connected,
/// with the keying material the worker peer's handshake exported if
/// `export` asked for it.
fn connect(export: bool) -> Session {
    export_keys_on_this_thread(export);
    let mut now = Instant::now();
    let (mut server, mut client) = pair(true, true, now);
    let (mid, pt) = negotiate(&mut server.rtc, &mut client, true);
    let mut seen = Seen::default();
    let keys = connect_pair(&mut server, &mut client, &mut now, |c, sent, s, at| {
        feed(c, sent, s, at, &mut seen)
    });
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
    let hl = header_len(&wire).expect("an RTP header");
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
        vec![to_client(own), to_client(forged)],
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
        vec![to_client(sr)],
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

/// The feedback half: media written and sealed here only (with the MID and
/// transport-wide sequence extensions str0m negotiated), one packet left
/// out, then a probe (padding-only packets on the RTX stream); the str0m
/// client's own RTCP, opened here with the client's half of the keys and
/// read by `convene_sfu::feedback`, reports every packet sent (the probe's
/// too) by its transport-wide number, NACKs the one left out, and feeds
/// the estimator.
#[test]
fn the_clients_feedback_on_packets_sealed_here_opens_and_reads_here() {
    let mut s = connect(true);
    let (sealer, opener) = s.sealers();
    let (mid_id, twcc_id) = (
        s.ext_id(Extension::RtpMid),
        s.ext_id(Extension::TransportSequenceNumber),
    );
    let ssrc = *s
        .server
        .rtc
        .direct_api()
        .stream_tx_by_mid(s.mid, None)
        .expect("a send stream")
        .ssrc();
    let mid = s.mid.to_string();
    let ids = ExtIds::new(Some(mid_id), Some(twcc_id), None, None).unwrap();

    let start = s.now;
    let mut bwe = SendSideBwe::new(BweConfig::default(), start);
    let mut twcc = 0u16;
    let mut sent_twcc = Vec::new();
    for seq in 1..=30u16 {
        s.now += Duration::from_millis(3);
        if seq == 11 {
            continue; // lost on the way
        }
        twcc += 1;
        // Header with the MID and transport-wide number extensions.
        let mut p = vec![0u8; 1500];
        let hl = write_header(
            &mut p,
            &RtpHeader {
                pt: *s.pt,
                seq,
                ts: u32::from(seq) * 3000,
                ssrc,
                marker: true,
            },
            &ids,
            &ExtValues {
                mid: Some(mid.as_bytes()),
                transport_cc: Some(twcc),
                ..Default::default()
            },
        )
        .unwrap();
        p.truncate(hl);
        p.extend_from_slice(&[seq as u8; 300]);
        let n = send_sealed(&mut s, &sealer, p, hl);
        bwe.on_packet_sent(s.now, twcc, n as u32, None);
        sent_twcc.push(twcc);
    }
    assert_eq!(
        s.seen.rtp.iter().filter(|(x, _, _)| **x == ssrc).count(),
        29,
        "the client took every packet sealed here"
    );
    // A probe: padding-only packets on the RTX stream str0m negotiated,
    // each with its transport-wide number.
    let (_, rtx_ssrc, rtx_pt) = s.rtx();
    let mut probe = RtxStream::new(rtx_ssrc, rtx_pt, 1);
    for _ in 0..5 {
        s.now += Duration::from_millis(1);
        twcc += 1;
        let mut p = vec![0u8; 1500];
        let vals = ExtValues {
            mid: Some(mid.as_bytes()),
            transport_cc: Some(twcc),
            ..Default::default()
        };
        let n = probe
            .write_padding(&mut p, 30 * 3000, 255, &ids, &vals)
            .unwrap();
        let hl = header_len(&p[..n]).unwrap();
        p.truncate(n);
        let n = send_sealed(&mut s, &sealer, p, hl);
        bwe.on_packet_sent(s.now, twcc, n as u32, Some(1));
        sent_twcc.push(twcc);
    }
    assert_eq!(
        s.seen.rtp.iter().filter(|(x, _, _)| **x == ssrc).count(),
        29,
        "padding is not media"
    );
    // Let the client's timers run: its feedback and NACKs go out.
    for _ in 0..50 {
        s.now += Duration::from_millis(10);
        s.client.handle_input(Input::Timeout(s.now)).unwrap();
        feed(
            &mut s.client,
            Vec::new(),
            &mut s.server.rtc,
            s.now,
            &mut s.seen,
        );
    }

    let mut reported = Vec::new();
    let mut nacks = Vec::new();
    let mut replay = ReplayWindow::default();
    let mut clock = ReferenceClock::default();
    let mut opened = 0;
    for d in &s.seen.to_server {
        if !is_rtcp(d) {
            continue;
        }
        let mut buf = d.clone();
        let (n, index) = opener
            .open_rtcp(&mut buf, d.len())
            .expect("the client's SRTCP opens");
        replay.accept(index).expect("each index once");
        opened += 1;
        for p in rtcp_packets(&buf[..n]) {
            match Feedback::of(p) {
                Feedback::TransportCc(r) => {
                    let base = clock.unwrap(r.reference_time);
                    reported.extend(r.packets(base));
                    bwe.on_feedback(s.now, r.packets(base));
                }
                Feedback::Nack { media_ssrc, fci } => {
                    assert_eq!(media_ssrc, ssrc);
                    nacks.extend(nacked(fci));
                }
                _ => {}
            }
        }
    }
    assert!(opened > 0, "the client sent RTCP");
    let received: Vec<u16> = reported
        .iter()
        .filter(|(_, at)| at.is_some())
        .map(|(q, _)| *q)
        .collect();
    for t in &sent_twcc {
        assert!(
            received.contains(t),
            "transport-wide {t} reported: {reported:?}"
        );
    }
    // Arrival times step as the packets were fed: 3 ms apart (6 across
    // the gap), to the report's 250 µs unit.
    let at = |q: u16| reported.iter().find(|(x, _)| *x == q).and_then(|(_, a)| *a);
    assert_eq!(at(2).unwrap() - at(1).unwrap(), 3_000);
    assert_eq!(at(11).unwrap() - at(10).unwrap(), 6_000);
    assert!(
        nacks.contains(&11),
        "the client NACKed the lost packet: {nacks:?}"
    );
    assert!(bwe.rtt().is_some(), "the estimator took the feedback");
}

/// NACKs answered outside str0m: video written and sealed here with one
/// packet lost on the way; the client's NACK, opened and read here, is
/// answered from `sfu::writer`'s cache as an RFC 4588 retransmission on the
/// RTX SSRC and payload type str0m negotiated, sealed here; the client
/// takes it as the lost packet. A NACK for a packet no longer kept is not
/// answered.
#[test]
fn a_nack_is_answered_here_with_rtx_the_client_recovers() {
    let mut s = connect(true);
    let (sealer, opener) = s.sealers();
    let ids = ExtIds::new(Some(s.ext_id(Extension::RtpMid)), None, None, None).unwrap();
    let (ssrc, rtx_ssrc, rtx_pt) = s.rtx();
    let mid = s.mid.to_string();
    let vals = ExtValues {
        mid: Some(mid.as_bytes()),
        ..Default::default()
    };

    let mut cache = ResendCache::new(64, Duration::from_secs(1));
    for seq in 1..=20u16 {
        s.now += Duration::from_millis(5);
        let payload: Arc<[u8]> = Arc::from(vec![seq as u8; 400]);
        let h = RtpHeader {
            pt: *s.pt,
            seq,
            ts: u32::from(seq / 4) * 3000,
            ssrc,
            marker: seq % 4 == 3,
        };
        cache.insert(SentPacket {
            seq: u64::from(seq),
            ts: h.ts,
            pt: h.pt,
            marker: h.marker,
            payload: payload.clone(),
            audio_level: None,
            sent_at: s.now,
        });
        if seq == 7 {
            continue; // lost on the way
        }
        let mut p = vec![0u8; 1500];
        let hl = write_header(&mut p, &h, &ids, &vals).unwrap();
        p.truncate(hl);
        p.extend_from_slice(&payload);
        send_sealed(&mut s, &sealer, p, hl);
    }
    assert!(!s.seen.rtp.iter().any(|(_, q, _)| *q == 7));

    // The client NACKs 7; answer it (and a NACK for a packet the cache
    // never had) from here.
    let mut rtx = RtxStream::new(rtx_ssrc, rtx_pt, 1);
    let mut answered = 0;
    let mut checked = 0;
    for _ in 0..30 {
        s.now += Duration::from_millis(10);
        s.client.handle_input(Input::Timeout(s.now)).unwrap();
        let from = s.seen.to_server.len();
        feed(
            &mut s.client,
            Vec::new(),
            &mut s.server.rtc,
            s.now,
            &mut s.seen,
        );
        let datagrams: Vec<Vec<u8>> = s.seen.to_server[from..].to_vec();
        for d in datagrams {
            if !is_rtcp(&d) {
                continue;
            }
            let mut buf = d.clone();
            let (n, _) = opener.open_rtcp(&mut buf, d.len()).unwrap();
            let mut wanted = Vec::new();
            for p in rtcp_packets(&buf[..n]) {
                if let Feedback::Nack { fci, .. } = Feedback::of(p) {
                    wanted.extend(nacked(fci));
                }
            }
            checked += wanted.len();
            for q in wanted.into_iter().chain(nack_seqs(500, 0)) {
                let Some(orig) =
                    cache.take_for_resend(u64::from(q), s.now, Duration::from_millis(20))
                else {
                    assert_ne!(q, 7, "the lost packet is in the cache");
                    continue;
                };
                let mut p = vec![0u8; 1500];
                let n = rtx.write_rtx(&mut p, orig, &ids, &vals).unwrap();
                p.truncate(n);
                let hl = header_len(&p).unwrap();
                send_sealed(&mut s, &sealer, p, hl);
                answered += 1;
            }
        }
        if s.seen.rtp.iter().any(|(_, q, _)| *q == 7) {
            break;
        }
    }
    assert!(checked > 0, "the client sent NACKs");
    assert!(answered >= 1);
    let (x, _, payload) = s
        .seen
        .rtp
        .iter()
        .find(|(_, q, _)| *q == 7)
        .expect("the client recovered packet 7 from the retransmission");
    assert_eq!(**x, ssrc, "as the original stream's packet");
    assert_eq!(payload, &vec![7u8; 400]);
}
