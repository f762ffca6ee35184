//! Tests of `convene_sfu::writer::report`: RTP timestamp extrapolation
//! (with wrap), packet and octet counts, NTP conversion, and the SR + SDES
//! compound packet checked byte by byte and read back by a small reader.

use std::time::{Duration, Instant};

use convene_sfu::writer::report::{SR_LEN, sender_report_len};
use convene_sfu::writer::{
    SenderClock, SenderInfo, WriteError, ntp_from_unix, write_sender_report,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const NTP_1970: u64 = 2_208_988_800;

#[test]
fn no_report_before_the_first_packet() {
    let c = SenderClock::new();
    assert_eq!(c.report(Instant::now(), 1, 90_000), None);
}

#[test]
fn timestamps_are_extrapolated_at_the_clock_rate() {
    let t0 = Instant::now();
    let mut c = SenderClock::new();
    c.on_sent(t0, 1000, 1200);
    let r = c.report(t0 + ms(100), 77, 90_000);
    assert_eq!(
        r,
        Some(SenderInfo {
            ntp: 77,
            rtp_ts: 1000 + 9000,
            packets: 1,
            octets: 1200
        })
    );
    assert_eq!(c.report(t0, 0, 90_000).map(|r| r.rtp_ts), Some(1000));
    // Audio: 20 ms at 48 kHz is 960 ticks.
    assert_eq!(
        c.report(t0 + ms(20), 0, 48_000).map(|r| r.rtp_ts),
        Some(1960)
    );
    // Rounded to the nearest tick: 1/3 ms at 90 kHz is 30 ticks.
    let third = Duration::from_nanos(333_333);
    assert_eq!(
        c.report(t0 + third, 0, 90_000).map(|r| r.rtp_ts),
        Some(1030)
    );
    // A `now` before the anchor goes back.
    let mut late = SenderClock::new();
    late.on_sent(t0 + ms(50), 1000, 10);
    assert_eq!(
        late.report(t0, 0, 90_000).map(|r| r.rtp_ts),
        Some(1000u32.wrapping_sub(4500))
    );
}

#[test]
fn extrapolation_wraps() {
    let t0 = Instant::now();
    let mut c = SenderClock::new();
    c.on_sent(t0, u32::MAX - 99, 1);
    assert_eq!(
        c.report(t0 + ms(100), 0, 90_000).map(|r| r.rtp_ts),
        Some(8900)
    );
    // A day at 90 kHz is more than 2^32 ticks: modulo 2^32.
    let day = Duration::from_secs(86_400);
    let ticks = (86_400u64 * 90_000) as u32;
    let want = (u32::MAX - 99).wrapping_add(ticks);
    assert_eq!(c.report(t0 + day, 0, 90_000).map(|r| r.rtp_ts), Some(want));
}

#[test]
fn a_timestamp_is_tied_to_its_first_packet() {
    let t0 = Instant::now();
    let mut c = SenderClock::new();
    // One frame paced out over 8 ms, then the next frame.
    c.on_sent(t0, 5000, 1200);
    c.on_sent(t0 + ms(4), 5000, 1200);
    c.on_sent(t0 + ms(8), 5000, 300);
    assert_eq!(
        c.report(t0 + ms(10), 0, 90_000).map(|r| r.rtp_ts),
        Some(5900)
    );
    c.on_sent(t0 + ms(33), 8000, 1000);
    c.on_sent(t0 + ms(36), 8000, 1000);
    assert_eq!(
        c.report(t0 + ms(43), 0, 90_000).map(|r| r.rtp_ts),
        Some(8900)
    );
}

#[test]
fn counts_payload_octets_and_wrap() {
    let t0 = Instant::now();
    let mut c = SenderClock::new();
    for i in 0..10u32 {
        c.on_sent(t0, i, 100 + i as usize);
    }
    assert_eq!((c.packets(), c.octets()), (10, 1045));
    let r = c.report(t0, 0, 90_000);
    assert_eq!(r.map(|r| (r.packets, r.octets)), Some((10, 1045)));
    // Counts wrap modulo 2^32 (RFC 3550 6.4.1).
    c.on_sent(t0, 0, u32::MAX as usize);
    assert_eq!(c.octets(), 1044);
    assert_eq!(c.packets(), 11);
}

#[test]
fn ntp_time_from_unix_time() {
    assert_eq!(ntp_from_unix(Duration::ZERO), NTP_1970 << 32);
    assert_eq!(
        ntp_from_unix(Duration::from_millis(1500)),
        ((NTP_1970 + 1) << 32) | 0x8000_0000
    );
    let quarter = ntp_from_unix(Duration::new(10, 250_000_000));
    assert_eq!(quarter, ((NTP_1970 + 10) << 32) | 0x4000_0000);
    // The largest fraction stays below one second.
    let last = ntp_from_unix(Duration::new(0, 999_999_999));
    assert_eq!(last >> 32, NTP_1970);
    assert!(last & 0xffff_ffff > 0xffff_fff0);
    // 2036-02-07: NTP era 1 begins, seconds wrap to 0.
    let era1 = Duration::from_secs((1u64 << 32) - NTP_1970);
    assert_eq!(ntp_from_unix(era1), 0);
    assert_eq!(ntp_from_unix(era1 + Duration::from_secs(5)) >> 32, 5);
}

/// One RTCP packet of a compound: type, count, body after the header.
struct Rtcp<'a> {
    count: u8,
    pt: u8,
    body: &'a [u8],
}

/// Test-only reader: splits a compound packet by its length words,
/// checking version, no padding and that the lengths add up.
fn read_compound(mut d: &[u8]) -> Vec<Rtcp<'_>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        assert!(d.len() >= 4);
        assert_eq!(d[0] >> 6, 2, "version");
        assert_eq!(d[0] & 0x20, 0, "no padding");
        let len = 4 * (usize::from(u16::from_be_bytes([d[2], d[3]])) + 1);
        assert!(len <= d.len(), "length within the datagram");
        out.push(Rtcp {
            count: d[0] & 0x1f,
            pt: d[1],
            body: &d[4..len],
        });
        d = &d[len..];
    }
    out
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[test]
fn sender_report_bytes() {
    let info = SenderInfo {
        ntp: 0x0102_0304_0506_0708,
        rtp_ts: 0x1112_1314,
        packets: 0x2122_2324,
        octets: 0x3132_3334,
    };
    let mut buf = [0xeeu8; 100];
    let len = write_sender_report(&mut buf, 0xa1b2_c3d4, &info, b"abcde");
    #[rustfmt::skip]
    let want: [u8; 44] = [
        0x80, 200, 0, 6,                         // SR, RC=0, 7 words
        0xa1, 0xb2, 0xc3, 0xd4,                  // sender SSRC
        1, 2, 3, 4, 5, 6, 7, 8,                  // NTP
        0x11, 0x12, 0x13, 0x14,                  // RTP timestamp
        0x21, 0x22, 0x23, 0x24,                  // packets
        0x31, 0x32, 0x33, 0x34,                  // octets
        0x81, 202, 0, 3,                         // SDES, SC=1, 4 words
        0xa1, 0xb2, 0xc3, 0xd4,                  // chunk SSRC
        1, 5, b'a', b'b', b'c', b'd', b'e',      // CNAME item
        0,                                       // end of items
    ];
    assert_eq!(len, Ok(44));
    assert_eq!(&buf[..44], &want);
    assert!(buf[44..].iter().all(|b| *b == 0xee), "nothing past the end");
}

#[test]
fn sender_reports_read_back_for_every_cname_length() {
    let info = SenderInfo {
        ntp: 42 << 32,
        rtp_ts: 9,
        packets: 3,
        octets: 4,
    };
    let cname = [b'c'; 255];
    for n in 1..=255 {
        let mut buf = [0u8; 400];
        let len = write_sender_report(&mut buf, 7, &info, &cname[..n]);
        assert_eq!(len, Ok(sender_report_len(n)));
        let len = len.unwrap_or_default();
        assert_eq!(len % 4, 0);
        let packets = read_compound(&buf[..len]);
        assert_eq!(packets.len(), 2);
        let (sr, sdes) = (&packets[0], &packets[1]);
        assert_eq!((sr.pt, sr.count, sr.body.len()), (200, 0, SR_LEN - 4));
        assert_eq!(be32(&sr.body[0..]), 7);
        assert_eq!(u64::from(be32(&sr.body[4..])), 42);
        assert_eq!(be32(&sr.body[12..]), 9);
        assert_eq!(be32(&sr.body[16..]), 3);
        assert_eq!(be32(&sr.body[20..]), 4);
        assert_eq!((sdes.pt, sdes.count), (202, 1));
        let chunk = sdes.body;
        assert_eq!(be32(chunk), 7);
        assert_eq!((chunk[4], usize::from(chunk[5])), (1, n));
        assert_eq!(&chunk[6..6 + n], &cname[..n]);
        // The item list ends with a null item, padded with zeros.
        let rest = &chunk[6 + n..];
        assert!((1..=4).contains(&rest.len()), "{n}: {}", rest.len());
        assert!(rest.iter().all(|b| *b == 0));
    }
}

#[test]
fn sender_report_errors() {
    let info = SenderInfo {
        ntp: 1,
        rtp_ts: 2,
        packets: 3,
        octets: 4,
    };
    let mut buf = [0x3cu8; 600];
    assert_eq!(
        write_sender_report(&mut buf, 1, &info, b""),
        Err(WriteError::EmptyCname)
    );
    assert_eq!(
        write_sender_report(&mut buf, 1, &info, &[b'x'; 256]),
        Err(WriteError::CnameTooLong(256))
    );
    assert!(buf.iter().all(|b| *b == 0x3c));
    let needed = sender_report_len(10);
    assert_eq!(needed, 28 + 24);
    for size in 0..needed {
        let mut small = vec![0x3cu8; size];
        assert_eq!(
            write_sender_report(&mut small, 1, &info, b"0123456789"),
            Err(WriteError::BufferTooSmall {
                needed,
                available: size
            })
        );
        assert!(small.iter().all(|b| *b == 0x3c), "size {size}");
    }
    assert!(WriteError::CnameTooLong(256).to_string().contains("256"));
}
