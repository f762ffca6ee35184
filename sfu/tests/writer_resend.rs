//! Tests of `convene_sfu::writer::resend`: the resend cache's wrap-around,
//! maximum age and resend rate limit, generic NACK decoding, sequence
//! number unwrapping near the wrap and near zero, and RTX packets checked
//! byte by byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_sfu::nack::{nack_cache_packets, nack_window};
use convene_sfu::writer::resend::{MAX_CAPACITY, RESEND_MIN_INTERVAL};
use convene_sfu::writer::{
    ExtIds, ExtValues, ResendCache, RtpHeader, RtxStream, SentPacket, WriteError, extend_seq,
    header_len, nack_seqs, parse_extensions,
};

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn packet(seq: u64, at: Instant, payload: &Arc<[u8]>) -> SentPacket {
    SentPacket {
        seq,
        ts: 90 * seq as u32,
        pt: 96,
        marker: seq.is_multiple_of(3),
        payload: Arc::clone(payload),
        audio_level: None,
        sent_at: at,
    }
}

fn seqs(pid: u16, blp: u16) -> Vec<u16> {
    nack_seqs(pid, blp).collect()
}

#[test]
fn nack_bitmask_decoding() {
    assert_eq!(seqs(100, 0), vec![100]);
    assert_eq!(seqs(100, 0x8001), vec![100, 101, 116]);
    assert_eq!(seqs(100, 0x0005), vec![100, 101, 103]);
    assert_eq!(seqs(7, 0xffff), (7..=23).collect::<Vec<_>>());
    // Across the wrap.
    assert_eq!(seqs(65535, 0x0003), vec![65535, 0, 1]);
    assert_eq!(seqs(65530, 0x8000), vec![65530, 10]);
}

#[test]
fn nack_decoding_of_any_entry() {
    let mut x = 0x1234_5678u32;
    for _ in 0..10_000 {
        // xorshift32: every (pid, blp) shape, deterministically.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let (pid, blp) = ((x >> 16) as u16, x as u16);
        let s = seqs(pid, blp);
        assert_eq!(s.len(), 1 + blp.count_ones() as usize);
        assert_eq!(s[0], pid);
        for n in &s[1..] {
            let i = n.wrapping_sub(pid) - 1;
            assert!(i < 16 && blp & (1 << i) != 0);
        }
    }
}

#[test]
fn extend_seq_picks_the_nearest() {
    assert_eq!(extend_seq(1000, 1005), 1005);
    assert_eq!(extend_seq(1000, 990), 990);
    // Forward across the wrap, and behind across it.
    assert_eq!(extend_seq(65535, 2), 65538);
    assert_eq!(extend_seq(65538, 65534), 65534);
    assert_eq!(extend_seq(3 * 65536 + 10, 65000), 2 * 65536 + 65000);
    // Half a range behind counts as behind, one less as ahead.
    assert_eq!(
        extend_seq(100_000, (100_000u64 - 32768) as u16),
        100_000 - 32768
    );
    assert_eq!(
        extend_seq(100_000, (100_000u64 + 32767) as u16),
        100_000 + 32767
    );
    // Never below zero: near the start, behind would be negative.
    assert_eq!(extend_seq(5, 65535), 65535);
    assert_eq!(extend_seq(0, 40_000), 40_000);
    assert_eq!(extend_seq(0, 0), 0);
    // Never above u64::MAX.
    assert_eq!(extend_seq(u64::MAX, 0), u64::MAX - 65535);
    assert_eq!(extend_seq(u64::MAX, u64::MAX as u16), u64::MAX);
}

#[test]
fn extend_seq_inverts_truncation_within_half_a_range() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let last = 32768 + (x >> 24);
        let off = (x % 65535) as i64 - 32767;
        let want = last.wrapping_add_signed(off);
        assert_eq!(extend_seq(last, want as u16), want, "{last} {off}");
    }
}

#[test]
fn capacity_is_a_power_of_two() {
    assert_eq!(ResendCache::new(120, ms(300)).capacity(), 128);
    assert_eq!(ResendCache::new(256, ms(300)).capacity(), 256);
    assert_eq!(ResendCache::new(0, ms(300)).capacity(), 1);
    assert_eq!(
        ResendCache::new(usize::MAX, ms(300)).capacity(),
        MAX_CAPACITY
    );
    // Sized as callers will size it.
    let rtt = ms(50);
    let c = ResendCache::new(nack_cache_packets(nack_window(rtt)), nack_window(rtt));
    assert!(c.capacity().is_power_of_two());
    assert!(c.capacity() >= nack_cache_packets(nack_window(rtt)));
}

#[test]
fn wrap_around_evicts_the_oldest() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[1u8, 2, 3][..]);
    let mut c = ResendCache::new(64, ms(1000));
    assert_eq!(c.newest(), None);
    for seq in 1000..1064 {
        c.insert(packet(seq, t0, &payload));
    }
    assert_eq!(c.newest(), Some(1063));
    for seq in 1000..1064 {
        assert_eq!(c.get(seq, t0).map(|p| p.seq), Some(seq));
    }
    assert!(c.get(999, t0).is_none());
    assert!(c.get(1064, t0).is_none());
    // 16 more: the first 16 are gone; their slots hold the new ones.
    for seq in 1064..1080 {
        c.insert(packet(seq, t0, &payload));
    }
    for seq in 1000..1016 {
        assert!(c.get(seq, t0).is_none(), "{seq} evicted");
        // The same slot, a different number: a miss, not the wrong packet.
        assert!(c.get(seq + 128, t0).is_none());
    }
    for seq in 1016..1080 {
        let p = c.get(seq, t0);
        assert_eq!(
            p.map(|p| (p.seq, p.ts, p.marker)),
            Some((seq, 90 * seq as u32, seq.is_multiple_of(3)))
        );
    }
    // The payload is shared, not copied: one reference per cached packet.
    assert_eq!(Arc::strong_count(&payload), 1 + 64);
    c.clear();
    assert_eq!(Arc::strong_count(&payload), 1);
    assert!(c.get(1079, t0).is_none());
    assert_eq!(c.newest(), None);
}

#[test]
fn an_older_packet_does_not_replace_a_newer_one() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[0u8][..]);
    let mut c = ResendCache::new(16, ms(1000));
    c.insert(packet(17, t0, &payload));
    c.insert(packet(1, t0, &payload));
    assert!(c.get(1, t0).is_none());
    assert!(c.get(17, t0).is_some());
    assert_eq!(c.newest(), Some(17));
}

#[test]
fn packets_older_than_the_max_age_are_not_returned() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[0u8][..]);
    let mut c = ResendCache::new(16, ms(300));
    c.insert(packet(5, t0, &payload));
    assert!(c.get(5, t0 + ms(300)).is_some());
    assert!(c.get(5, t0 + ms(300) + Duration::from_nanos(1)).is_none());
    assert!(c.take_for_resend(5, t0 + ms(301), ms(10)).is_none());
    // A `now` before the send (a caller's clock read early) is age 0.
    assert!(c.get(5, t0).is_some());
}

#[test]
fn a_packet_is_resent_at_most_once_per_round_trip() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[0u8][..]);
    let mut c = ResendCache::new(16, ms(1000));
    c.insert(packet(9, t0, &payload));
    let rtt = ms(50);
    assert_eq!(
        c.take_for_resend(9, t0 + ms(20), rtt).map(|p| p.seq),
        Some(9)
    );
    assert!(c.take_for_resend(9, t0 + ms(21), rtt).is_none());
    assert!(c.take_for_resend(9, t0 + ms(69), rtt).is_none());
    // `get` is not limited.
    assert!(c.get(9, t0 + ms(69)).is_some());
    assert!(c.take_for_resend(9, t0 + ms(70), rtt).is_some());
    // A short round trip: the floor holds.
    assert!(c.take_for_resend(9, t0 + ms(75), ms(1)).is_none());
    let floor = t0 + ms(70) + RESEND_MIN_INTERVAL;
    assert!(c.take_for_resend(9, floor, ms(1)).is_some());
    // Another packet has its own limit.
    c.insert(packet(10, t0, &payload));
    assert!(c.take_for_resend(10, floor, rtt).is_some());
    // Unknown numbers are refused.
    assert!(c.take_for_resend(26, floor, rtt).is_none());
}

#[test]
fn a_nack_across_the_wrap_finds_its_packets() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[0u8][..]);
    let mut c = ResendCache::new(128, ms(1000));
    // Extended numbers 65500..65600: the wire numbers wrap at 65536.
    for seq in 65500..65600u64 {
        c.insert(packet(seq, t0, &payload));
    }
    let newest = c.newest().unwrap_or_default();
    let mut found = Vec::new();
    for wire in nack_seqs(65534, 0x0005) {
        let ext = extend_seq(newest, wire);
        if let Some(p) = c.take_for_resend(ext, t0 + ms(10), ms(30)) {
            found.push(p.seq);
        }
    }
    assert_eq!(found, vec![65534, 65535, 65537]);
}

#[test]
fn rtx_packet_bytes() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[0xa0u8, 0xa1, 0xa2, 0xa3, 0xa4][..]);
    let original = SentPacket {
        seq: 3 * 65536 + 0x1234,
        ts: 0xcafe_f00d,
        pt: 96,
        marker: true,
        payload,
        audio_level: None,
        sent_at: t0,
    };
    let ids = ok(ExtIds::new(Some(4), Some(3), None, None));
    let vals = ExtValues {
        mid: Some(b"1"),
        transport_cc: Some(777),
        ..ExtValues::default()
    };
    let mut rtx = RtxStream::new(0x0102_0304, 97, 65535);
    let mut buf = [0u8; 100];
    let len = ok(rtx.write_rtx(&mut buf, &original, &ids, &vals));
    let p = &buf[..len];
    assert_eq!(p[0], 0x90, "V=2, X=1, no padding, no CSRC");
    assert_eq!(p[1], 0x80 | 97, "marker of the original, RTX payload type");
    assert_eq!(&p[2..4], &[0xff, 0xff], "RTX sequence number");
    assert_eq!(&p[4..8], &[0xca, 0xfe, 0xf0, 0x0d], "original timestamp");
    assert_eq!(&p[8..12], &[1, 2, 3, 4], "RTX SSRC");
    let hl = header_len(p).unwrap_or_default();
    assert_eq!(hl, 12 + 4 + 8);
    let ext = ok(parse_extensions(p));
    assert_eq!(ext.values(&ids), vals);
    assert_eq!(&p[hl..hl + 2], &[0x12, 0x34], "original sequence number");
    assert_eq!(&p[hl + 2..], &[0xa0, 0xa1, 0xa2, 0xa3, 0xa4]);
    assert_eq!(len, hl + 2 + 5);

    // The next one is numbered on, across the wrap; no extensions.
    let bare = ExtIds::default();
    let len = ok(rtx.write_rtx(&mut buf, &original, &bare, &vals));
    assert_eq!(len, 12 + 2 + 5);
    let h = RtpHeader::parse(&buf[..len]);
    assert_eq!(
        h,
        Some(RtpHeader {
            pt: 97,
            seq: 0,
            ts: 0xcafe_f00d,
            ssrc: 0x0102_0304,
            marker: true
        })
    );
    assert_eq!(rtx.next_seq(), 1);
    assert_eq!((rtx.ssrc(), rtx.pt()), (0x0102_0304, 97));
}

#[test]
fn rtx_into_a_small_buffer_writes_nothing() {
    let payload: Arc<[u8]> = Arc::from(&[9u8; 50][..]);
    let original = SentPacket {
        seq: 42,
        ts: 1,
        pt: 96,
        marker: false,
        payload,
        audio_level: None,
        sent_at: Instant::now(),
    };
    let ids = ok(ExtIds::new(None, Some(3), None, None));
    let vals = ExtValues {
        transport_cc: Some(1),
        ..ExtValues::default()
    };
    let mut rtx = RtxStream::new(5, 97, 100);
    let needed = 12 + 8 + 2 + 50;
    for size in [0, 12, 20, 22, needed - 1] {
        let mut buf = vec![0x77u8; size];
        assert_eq!(
            rtx.write_rtx(&mut buf, &original, &ids, &vals),
            Err(WriteError::BufferTooSmall {
                needed,
                available: size
            })
        );
        assert!(buf.iter().all(|b| *b == 0x77));
        assert_eq!(rtx.next_seq(), 100, "not advanced");
    }
    let mut buf = vec![0u8; needed];
    assert_eq!(rtx.write_rtx(&mut buf, &original, &ids, &vals), Ok(needed));
    assert_eq!(rtx.next_seq(), 101);
}

#[test]
fn padding_packet_bytes() {
    let ids = ok(ExtIds::new(Some(3), Some(5), None, None));
    let vals = ExtValues {
        mid: Some(b"v1"),
        transport_cc: Some(0x0102),
        ..Default::default()
    };
    let mut rtx = RtxStream::new(0xabcd_0001, 97, 65535);
    let mut buf = [0xeeu8; 400];
    let n = ok(rtx.write_padding(&mut buf, 0x1122_3344, 200, &ids, &vals));
    let Some(h) = RtpHeader::parse(&buf[..n]) else {
        panic!("no header")
    };
    assert_eq!(
        (h.pt, h.seq, h.ts, h.ssrc, h.marker),
        (97, 65535, 0x1122_3344, 0xabcd_0001, false)
    );
    assert_eq!(buf[0] & 0x20, 0x20, "the padding bit");
    let Some(hl) = header_len(&buf[..n]) else {
        panic!("no header length")
    };
    assert_eq!(n, hl + 200, "no payload, 200 bytes of padding");
    assert!(buf[hl..n - 1].iter().all(|b| *b == 0));
    assert_eq!(buf[n - 1], 200, "the count last");
    let exts = ok(parse_extensions(&buf[..n]));
    assert_eq!(exts.values(&ids).transport_cc, Some(0x0102));
    assert_eq!(rtx.next_seq(), 0, "the RTX numbers wrap");

    // No padding, or no room: nothing written, the number kept.
    let mut small = [0u8; 30];
    assert!(rtx.write_padding(&mut small, 0, 0, &ids, &vals).is_err());
    assert!(rtx.write_padding(&mut small, 0, 255, &ids, &vals).is_err());
    assert_eq!(small, [0u8; 30]);
    assert_eq!(rtx.next_seq(), 0);
    assert_eq!(
        rtx.write_padding(&mut buf, 0, 0, &ids, &vals),
        Err(WriteError::EmptyPadding)
    );
    assert_eq!(
        WriteError::EmptyPadding.to_string(),
        "a padding-only packet needs 1 to 255 bytes of padding"
    );
}

/// A video stream's cache at the largest size the NACK window gives
/// (256 packets) holds under 24 KiB besides the shared payloads.
#[test]
fn a_full_sized_cache_holds_under_24_kib() {
    let cache = ResendCache::new(nack_cache_packets(nack_window(ms(1000))), ms(1000));
    assert_eq!(cache.capacity(), 256);
    let bytes = cache.memory_bytes();
    assert!(bytes <= 24 * 1024, "{bytes} bytes");
}

/// A cache resized for a longer NACK window keeps what it held (and
/// answers NACKs for it up to the new age); resized smaller, it keeps the
/// newest packets that fit.
#[test]
fn a_resized_cache_keeps_its_newest_packets() {
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[7u8; 100][..]);
    let mut cache = ResendCache::new(64, ms(300));
    for seq in 100..164u64 {
        cache.insert(packet(seq, t0, &payload));
    }
    // Grown: every packet still there, and still there at 500 ms old.
    cache.resize(256, ms(1000));
    assert_eq!(cache.capacity(), 256);
    assert_eq!(cache.max_age(), ms(1000));
    assert_eq!(cache.newest(), Some(163));
    for seq in 100..164u64 {
        assert!(cache.get(seq, t0 + ms(500)).is_some(), "{seq}");
    }
    // Room for more now: 256 packets are kept.
    for seq in 164..356u64 {
        cache.insert(packet(seq, t0, &payload));
    }
    assert!(cache.get(100, t0).is_some());
    // Shrunk: the newest 16 are kept, the rest gone.
    cache.resize(16, ms(300));
    assert_eq!(cache.newest(), Some(355));
    for seq in 100..340u64 {
        assert!(cache.get(seq, t0).is_none(), "{seq}");
    }
    for seq in 340..356u64 {
        assert!(cache.get(seq, t0).is_some(), "{seq}");
    }
    // An empty cache resizes to an empty one.
    let mut empty = ResendCache::new(8, ms(300));
    empty.resize(32, ms(600));
    assert_eq!(empty.newest(), None);
}
