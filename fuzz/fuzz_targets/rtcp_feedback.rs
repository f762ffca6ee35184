//! A subscriber's RTCP as the own write path reads it: SRTCP opened with
//! the subscriber's keys in each profile (`rtc::seal`), then the compound
//! split and the feedback read (`convene_sfu::feedback`): transport-wide
//! reports streamed into the estimator, NACKs, FIRs. Nothing may panic;
//! what is read stays within the bytes and counts it came from.
#![no_main]

use std::time::{Duration, Instant};

use convene_server::rtc::seal::{Profile, SrtpSealer};
use convene_sfu::feedback::{Feedback, ReferenceClock, fir_ssrcs, nacked, rtcp_packets};
use convene_sfu::{BweConfig, SendSideBwe};
use libfuzzer_sys::fuzz_target;

fn read(plain: &[u8], bwe: &mut SendSideBwe, now: Instant) {
    let mut clock = ReferenceClock::default();
    for p in rtcp_packets(plain) {
        assert!(p.body.len() + 4 <= plain.len());
        match Feedback::of(p) {
            Feedback::TransportCc(r) => {
                let base = clock.unwrap(r.reference_time);
                assert!(r.packets(base).count() <= usize::from(r.status_count));
                bwe.on_feedback(now, r.packets(base));
                let e = bwe.estimate_bps();
                assert!((30_000..=20_000_000).contains(&e), "estimate {e}");
            }
            Feedback::Nack { fci, .. } => assert!(nacked(fci).count() <= fci.len() / 4 * 17),
            Feedback::Fir { fci } => assert!(fir_ssrcs(fci).count() <= fci.len() / 8),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut bwe = SendSideBwe::new(BweConfig::default(), now);
    // Some sent packets for the reports to match.
    for seq in 0..64u16 {
        bwe.on_packet_sent(now + Duration::from_millis(u64::from(seq)), seq, 1200, None);
    }
    let later = now + Duration::from_millis(100);
    // The bytes as plain RTCP.
    read(data, &mut bwe, later);
    // And as SRTCP under a fixed key in each profile: the opener must
    // refuse or open within the packet, never panic.
    let (&selector, rest) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    let profile = match selector % 3 {
        0 => Profile::Aes128CmSha1_80,
        1 => Profile::AeadAes128Gcm,
        _ => Profile::AeadAes256Gcm,
    };
    let material = vec![7u8; profile.keying_material_len()];
    let Ok(opener) = SrtpSealer::from_keying_material(&material, profile, false) else {
        return;
    };
    let mut buf = rest.to_vec();
    if let Ok((n, _index)) = opener.open_rtcp(&mut buf, rest.len()) {
        assert!(n <= rest.len());
        read(&buf[..n], &mut bwe, later);
    }
    // A packet sealed with those keys always opens again to itself.
    if rest.len() >= 8 && rest.len() < 1400 {
        let sealer =
            SrtpSealer::from_keying_material(&material, profile, false).expect("the same material");
        let mut sealed = rest.to_vec();
        sealed.resize(rest.len() + profile.rtcp_overhead(), 0);
        let index = u32::from(selector) << 8;
        let n = sealer
            .seal_rtcp(&mut sealed, rest.len(), index)
            .expect("room was made");
        let (m, i) = opener
            .open_rtcp(&mut sealed, n)
            .expect("what was sealed opens");
        assert_eq!((m, i), (rest.len(), index));
        assert_eq!(&sealed[..m], rest);
    }
});
