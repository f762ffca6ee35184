//! How a forwarding write path of Convene's own can keep its streams'
//! SSRCs signaled without str0m reporting on them, checked on str0m in
//! memory (a worker peer and a client).
//!
//! str0m sends a sender report for every send stream it declared, on its
//! own clock, even one never written to (packet count 0, RTP time 0); its
//! SDP's `a=ssrc` lines come from those same declared streams. So an own
//! path adopts the SSRCs str0m chose for an m-line once negotiated, then
//! removes str0m's stream (`DirectApi::remove_stream_tx`); before each
//! later SDP str0m writes it declares them again, and removes them again
//! right after. The browser keeps seeing one signaled SSRC per m-line, and
//! only the own path's reports for it.

use std::time::{Duration, Instant};

use convene_sfu::feedback::{PT_SR, rtcp_packets};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::Transmit;
use str0m::rtp::Ssrc;
use str0m::{Event, Input, Output, Rtc};

use super::connect_tests::{WorkerPeer, connect_pair, deliver, is_rtcp, pair, to_client};
use crate::rtc::dtls::export_keys_on_this_thread;
use crate::rtc::seal::{Profile, SrtpSealer};

/// The client side, driven until it waits; returns the SSRCs of the RTP
/// packets it took.
fn feed(client: &mut Rtc, datagrams: Vec<Transmit>, server: &mut Rtc, now: Instant) -> Vec<Ssrc> {
    let mut got = Vec::new();
    let mut datagrams = datagrams.into_iter();
    loop {
        match client.poll_output().expect("client poll") {
            Output::Timeout(_) => match datagrams.next() {
                Some(d) => deliver(&d, client, now),
                None => return got,
            },
            Output::Transmit(t) => deliver(&t, server, now),
            Output::Event(Event::RtpPacket(p)) => got.push(p.header.ssrc),
            Output::Event(_) => {}
        }
    }
}

/// One m-line the worker peer offers (send only) and the client accepts.
fn offer_video(server: &mut Rtc, client: &mut Rtc) -> (Mid, String) {
    let mut change = server.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    let text = offer.to_sdp_string();
    let answer = client.sdp_api().accept_offer(offer).expect("an answer");
    server
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    (mid, text)
}

/// The send stream str0m declared for `mid`.
fn declared(rtc: &mut Rtc, mid: Mid) -> Option<(Ssrc, Option<Ssrc>)> {
    rtc.direct_api()
        .stream_tx_by_mid(mid, None)
        .map(|tx| (tx.ssrc(), tx.rtx()))
}

/// Polls the worker peer until it waits; its datagrams are returned.
fn poll_server(server: &mut WorkerPeer, now: Instant) -> Vec<Transmit> {
    let mut sent = Vec::new();
    server.poll(&mut sent, now);
    sent
}

/// The SSRCs the worker peer's sender reports in `datagrams` are for,
/// opened with the worker peer's own keys.
fn reported(datagrams: &[Transmit], keys: &SrtpSealer) -> Vec<u32> {
    let mut out = Vec::new();
    for d in datagrams {
        let d = &d.contents;
        if !is_rtcp(d) {
            continue;
        }
        let mut buf = d.to_vec();
        let (n, _) = keys
            .open_rtcp(&mut buf, d.len())
            .expect("str0m's SRTCP opens");
        for p in rtcp_packets(&buf[..n]) {
            if p.pt == PT_SR && p.body.len() >= 4 {
                out.push(u32::from_be_bytes([
                    p.body[0], p.body[1], p.body[2], p.body[3],
                ]));
            }
        }
    }
    out
}

/// A packet on `ssrc` for `mid`, sealed here.
fn own_packet(sealer: &SrtpSealer, ssrc: Ssrc, pt: u8, mid_id: u8, mid: Mid, seq: u16) -> Transmit {
    use convene_sfu::writer::header::write_header;
    use convene_sfu::writer::{ExtIds, ExtValues, RtpHeader};
    let ids = ExtIds::new(Some(mid_id), None, None, None).unwrap();
    let mid = mid.to_string();
    let mut p = vec![0u8; 1500];
    let hl = write_header(
        &mut p,
        &RtpHeader {
            pt,
            seq,
            ts: u32::from(seq) * 3000,
            ssrc: *ssrc,
            marker: true,
        },
        &ids,
        &ExtValues {
            mid: Some(mid.as_bytes()),
            ..Default::default()
        },
    )
    .unwrap();
    p.truncate(hl);
    p.extend_from_slice(&[1u8; 200]);
    let len = p.len();
    p.resize(len + sealer.profile().rtp_overhead(), 0);
    let n = sealer.seal_rtp(&mut p, len, hl, 0).unwrap();
    p.truncate(n);
    to_client(p)
}

#[test]
fn adopted_ssrcs_stay_signaled_and_only_the_own_path_reports_on_them() {
    export_keys_on_this_thread(true);
    let mut now = Instant::now();
    let (mut server, mut client) = pair(false, true, now);

    // Two m-lines: `own` is written outside str0m, `kept` stays str0m's
    // (the control: str0m reports on it).
    let (own, offer) = offer_video(&mut server.rtc, &mut client);
    let (kept, _) = offer_video(&mut server.rtc, &mut client);
    let (ssrc, rtx) = declared(&mut server.rtc, own).expect("str0m declared a stream");
    let (kept_ssrc, _) = declared(&mut server.rtc, kept).expect("str0m declared a stream");
    assert!(offer.contains(&format!("a=ssrc:{ssrc} ")), "signaled");
    // Adopted: str0m's stream goes.
    assert!(server.rtc.direct_api().remove_stream_tx(ssrc));
    assert!(declared(&mut server.rtc, own).is_none());

    let keys = connect_pair(&mut server, &mut client, &mut now, |c, sent, s, at| {
        feed(c, sent, s, at);
    });
    export_keys_on_this_thread(false);
    let keys = keys.expect("keys");
    let profile = Profile::from_dtls(keys.profile).unwrap();
    let sealer =
        SrtpSealer::from_keying_material(&keys.material, profile, keys.dtls_client).unwrap();
    let pt = *server
        .rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
        .unwrap()
        .pt();
    let mid_id = server
        .rtc
        .media(own)
        .unwrap()
        .remote_extmap()
        .id_of(str0m::rtp::Extension::RtpMid)
        .unwrap();

    // Three seconds of the worker peer's clock, our packets on the
    // adopted SSRC every 100 ms.
    let mut sr = Vec::new();
    let mut taken = Vec::new();
    let mut seq = 0u16;
    let run = |server: &mut WorkerPeer,
               client: &mut Rtc,
               now: &mut Instant,
               seq: &mut u16,
               sr: &mut Vec<u32>,
               taken: &mut Vec<Ssrc>| {
        for _ in 0..30 {
            *now += Duration::from_millis(100);
            server.rtc.handle_input(Input::Timeout(*now)).unwrap();
            client.handle_input(Input::Timeout(*now)).unwrap();
            let mut sent = poll_server(server, *now);
            sr.extend(reported(&sent, &sealer));
            *seq += 1;
            sent.push(own_packet(&sealer, ssrc, pt, mid_id, own, *seq));
            taken.extend(feed(client, sent, &mut server.rtc, *now));
        }
    };
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut seq,
        &mut sr,
        &mut taken,
    );
    assert!(
        sr.contains(&kept_ssrc),
        "str0m reports on its own streams: {sr:?}"
    );
    assert!(!sr.contains(&ssrc), "str0m reported on the adopted SSRC");
    assert_eq!(taken.iter().filter(|s| **s == ssrc).count(), 30);

    // A renegotiation: the adopted stream declared again before str0m
    // writes its offer, removed again once it is accepted. The offer
    // still signals the same SSRCs and str0m made no new stream for them.
    server
        .rtc
        .direct_api()
        .declare_stream_tx(ssrc, rtx, own, None);
    let (third, offer) = offer_video(&mut server.rtc, &mut client);
    assert!(offer.contains(&format!("a=ssrc:{ssrc} ")), "still signaled");
    assert_eq!(declared(&mut server.rtc, own), Some((ssrc, rtx)));
    assert!(server.rtc.direct_api().remove_stream_tx(ssrc));
    assert!(declared(&mut server.rtc, third).is_some());

    sr.clear();
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut seq,
        &mut sr,
        &mut taken,
    );
    assert!(sr.contains(&kept_ssrc));
    assert!(!sr.contains(&ssrc), "{sr:?}");
    assert_eq!(taken.iter().filter(|s| **s == ssrc).count(), 60);

    // Without the declaration, str0m's next offer would drop the SSRC and
    // make a stream of its own for the m-line once accepted.
    let mut change = server.rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let text = offer.to_sdp_string();
    let answer = client.sdp_api().accept_offer(offer).unwrap();
    server.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    assert!(!text.contains(&format!("a=ssrc:{ssrc} ")), "{text}");
    let remade = declared(&mut server.rtc, own).expect("str0m made a new stream");
    assert_ne!(remade.0, ssrc);
}
