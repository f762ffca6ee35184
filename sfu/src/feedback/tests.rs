//! Tests of the RTCP feedback readers: hand-built reports checked field by
//! field, inconsistent and random input, and a report fed to the estimator.

#![allow(clippy::unwrap_used)]

use super::*;

/// An RTCP packet: header (count/FMT, PT, length) and body, padded with
/// RTCP padding to a multiple of 4 when `pad`.
fn packet(count: u8, pt: u8, body: &[u8], pad: bool) -> Vec<u8> {
    let mut body = body.to_vec();
    let mut first = 0x80 | count;
    if pad || !body.len().is_multiple_of(4) {
        let n = 4 - body.len() % 4;
        let n = if n == 0 { 4 } else { n };
        body.extend(std::iter::repeat_n(0, n - 1));
        body.push(n as u8);
        first |= 0x20;
    }
    let mut p = vec![first, pt];
    p.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    p.extend_from_slice(&body);
    p
}

/// A transport-wide feedback body.
fn twcc_body(base: u16, count: u16, reference: u32, chunks: &[u16], deltas: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x1111_1111u32.to_be_bytes());
    b.extend_from_slice(&0x2222_2222u32.to_be_bytes());
    b.extend_from_slice(&base.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&reference.to_be_bytes()[1..]);
    b.push(7);
    for c in chunks {
        b.extend_from_slice(&c.to_be_bytes());
    }
    b.extend_from_slice(deltas);
    b
}

#[test]
fn a_report_reads_as_its_statuses_and_deltas() {
    // From 65534 (the numbers wrap): a run of 2 received (small deltas);
    // a two-bit vector: not received, large negative delta, reserved (no
    // delta), small, not received, small, not received; a one-bit vector
    // whose first two statuses the count takes: received, not received.
    let run = (0b01 << 13) | 2u16;
    let two_bit = 0xc000 | (0b10 << 10) | (0b11 << 8) | (0b01 << 6) | (0b01 << 2);
    let one_bit = 0x8000 | (1 << 13);
    // 1 ms, 2 ms, -0.5 ms, 3 ms, 10 ms, 5 ms.
    let deltas = [4u8, 8, 0xff, 0xfe, 12, 40, 20];
    let body = twcc_body(65534, 11, 100, &[run, two_bit, one_bit], &deltas);
    let r = TwccReport::parse(&body).unwrap();
    assert_eq!(
        (r.sender_ssrc, r.media_ssrc, r.base_seq, r.status_count),
        (0x1111_1111, 0x2222_2222, 65534, 11)
    );
    assert_eq!((r.reference_time, r.feedback_count), (100, 7));
    let base = 100 * 64_000;
    let got: Vec<_> = r.packets(base).collect();
    assert_eq!(
        got,
        vec![
            (65534, Some(base + 1_000)),
            (65535, Some(base + 3_000)),
            (0, None),
            (1, Some(base + 2_500)),
            (2, None),
            (3, Some(base + 5_500)),
            (4, None),
            (5, Some(base + 15_500)),
            (6, None),
            (7, Some(base + 20_500)),
            (8, None),
        ]
    );
}

#[test]
fn inconsistent_reports_end_early_and_never_panic() {
    // Chunks that cover fewer packets than the count, and no bytes after
    // them: nothing.
    let body = twcc_body(10, 20, 0, &[(0b01 << 13) | 5], &[]);
    assert_eq!(TwccReport::parse(&body).unwrap().packets(0).count(), 0);
    // A run of 5 received with 3 deltas: 3 packets, then the end.
    let body = twcc_body(10, 5, 0, &[(0b01 << 13) | 5], &[1, 1, 1]);
    let got: Vec<_> = TwccReport::parse(&body).unwrap().packets(0).collect();
    assert_eq!(got.len(), 3);
    // A large delta cut in half.
    let body = twcc_body(10, 1, 0, &[(0b10 << 13) | 1], &[0x01]);
    assert_eq!(TwccReport::parse(&body).unwrap().packets(0).count(), 0);
    // Too short for the fixed part.
    assert!(TwccReport::parse(&[0u8; 15]).is_none());
    // A huge run of "not received" needs no deltas.
    let body = twcc_body(0, 8191, 0, &[8191], &[]);
    let r = TwccReport::parse(&body).unwrap();
    assert!(r.packets(0).all(|(_, a)| a.is_none()));
    assert_eq!(r.packets(0).count(), 8191);
}

/// A splitmix64 step, for the random input.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn random_bytes_are_read_without_panic_and_within_their_counts() {
    let mut s = 42u64;
    for _ in 0..20_000 {
        let len = (next(&mut s) % 96) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next(&mut s) as u8).collect();
        if next(&mut s).is_multiple_of(2) && bytes.len() >= 4 {
            // Make the header plausible more often than chance would.
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            bytes[1] = [PT_RTPFB, PT_PSFB, PT_SR, PT_RR][(next(&mut s) % 4) as usize];
            let words = ((bytes.len() / 4) as u16).saturating_sub(1);
            bytes[2..4].copy_from_slice(&words.to_be_bytes());
        }
        let mut clock = ReferenceClock::default();
        for p in rtcp_packets(&bytes) {
            assert!(p.body.len() + 4 <= bytes.len());
            match Feedback::of(p) {
                Feedback::TransportCc(r) => {
                    let base = clock.unwrap(r.reference_time);
                    assert!(r.packets(base).count() <= usize::from(r.status_count));
                }
                Feedback::Nack { fci, .. } => assert!(nacked(fci).count() <= fci.len() / 4 * 17),
                Feedback::Fir { fci } => assert!(fir_ssrcs(fci).count() <= fci.len() / 8),
                _ => {}
            }
        }
        // The body alone, as a transport-wide report.
        if let Some(r) = TwccReport::parse(&bytes) {
            assert!(r.packets(0).count() <= usize::from(r.status_count));
        }
    }
}

#[test]
fn a_compound_datagram_splits_into_its_packets() {
    let mut d = packet(0, PT_RR, &0xabcd_0001u32.to_be_bytes(), false);
    let twcc = twcc_body(1, 1, 0, &[(0b01 << 13) | 1], &[4]);
    d.extend(packet(FMT_TWCC, PT_RTPFB, &twcc, true));
    let mut nack = 0x1111_1111u32.to_be_bytes().to_vec();
    nack.extend_from_slice(&0x3333_3333u32.to_be_bytes());
    nack.extend_from_slice(&[0xff, 0xfe, 0x80, 0x01]);
    d.extend(packet(FMT_NACK, PT_RTPFB, &nack, false));
    let mut pli = 0x1111_1111u32.to_be_bytes().to_vec();
    pli.extend_from_slice(&0x4444_4444u32.to_be_bytes());
    d.extend(packet(FMT_PLI, PT_PSFB, &pli, false));
    let mut fir = 0x1111_1111u32.to_be_bytes().to_vec();
    fir.extend_from_slice(&[0; 4]);
    fir.extend_from_slice(&0x5555_5555u32.to_be_bytes());
    fir.extend_from_slice(&[9, 0, 0, 0]);
    d.extend(packet(FMT_FIR, PT_PSFB, &fir, false));

    let got: Vec<_> = rtcp_packets(&d).map(Feedback::of).collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], Feedback::Report);
    let Feedback::TransportCc(r) = got[1] else {
        panic!("{:?}", got[1])
    };
    assert_eq!(r.packets(0).collect::<Vec<_>>(), vec![(1, Some(1_000))]);
    let Feedback::Nack { media_ssrc, fci } = got[2] else {
        panic!("{:?}", got[2])
    };
    assert_eq!(media_ssrc, 0x3333_3333);
    // PID 65534 and bits 0 and 15: 65535 and 65534 + 16 (wrapped).
    assert_eq!(nacked(fci).collect::<Vec<_>>(), vec![65534, 65535, 14]);
    assert_eq!(
        got[3],
        Feedback::Pli {
            media_ssrc: 0x4444_4444
        }
    );
    let Feedback::Fir { fci } = got[4] else {
        panic!("{:?}", got[4])
    };
    assert_eq!(fir_ssrcs(fci).collect::<Vec<_>>(), vec![0x5555_5555]);

    // A wrong version, or a length past the end, ends the datagram there.
    let mut bad = d.clone();
    bad[8] = 0x40 | (bad[8] & 0x3f);
    assert_eq!(rtcp_packets(&bad).count(), 1);
    let mut long = d.clone();
    long[2..4].copy_from_slice(&1000u16.to_be_bytes());
    assert_eq!(rtcp_packets(&long).count(), 0);
    // Padding longer than the body is refused.
    let mut pad = packet(0, PT_RR, &[0, 0, 0, 1], false);
    pad[0] |= 0x20;
    pad[7] = 200;
    assert_eq!(rtcp_packets(&pad).count(), 0);
}

#[test]
fn reference_times_unwrap_across_the_24_bit_boundary() {
    let mut c = ReferenceClock::default();
    assert_eq!(c.unwrap(0xff_fffe), 0xff_fffe * 64_000);
    assert_eq!(c.unwrap(0x00_0001), (0x100_0001) * 64_000);
    // And back, a little (reordered reports).
    assert_eq!(c.unwrap(0xff_ffff), 0xff_ffff * 64_000);
    // Far jumps are taken as they come, not as wraps.
    assert_eq!(c.unwrap(0x80_0000), 0x80_0000 * 64_000);
}

#[test]
fn a_report_feeds_the_estimator() {
    use crate::bwe::{BweConfig, SendSideBwe};
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
    for seq in 0..10u16 {
        bwe.on_packet_sent(t0 + Duration::from_millis(u64::from(seq)), seq, 1200, None);
    }
    assert!(bwe.rtt().is_none());
    // All ten received, 1 ms apart.
    let body = twcc_body(0, 10, 5, &[(0b01 << 13) | 10], &[4; 10]);
    let r = TwccReport::parse(&body).unwrap();
    let mut clock = ReferenceClock::default();
    bwe.on_feedback(
        t0 + Duration::from_millis(60),
        r.packets(clock.unwrap(r.reference_time)),
    );
    assert_eq!(bwe.rtt(), Some(Duration::from_millis(51)));
}
