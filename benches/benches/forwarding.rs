//! Micro-benchmarks of the sans-IO forwarding core: the decision for one
//! packet, the fan-out of one packet to many subscribers, and the RTP
//! header rewrite a forwarded packet needs.
//!
//! `rewrite/own_write_gcm128` (and `_gcm256`) is the floor of a forwarding write path of
//! Convene's own (ARCHITECTURE.md, "Known limits"): what any SFU must do
//! for one copy of a packet to one subscriber besides the kernel's send —
//! the header rewritten with the two extensions a subscriber needs (MID,
//! transport-wide sequence number), header and payload copied into that
//! copy's datagram, and the SRTP seal with the subscriber's key, by the
//! server's own sealer (`convene_server::rtc::seal`) in each profile. Compare it with `sfu_cost` in `peers.rs`, str0m's cost
//! for the same copy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use convene_sfu::{Decision, Forwarder, Kind, Layer, Packet};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// A VP8 stream: 30 fps, 9 packets a frame, a keyframe every 90 frames.
struct Stream {
    seq: u64,
    frame: u64,
    in_frame: u32,
    t0: Instant,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            seq: 1,
            frame: 0,
            in_frame: 0,
            t0: Instant::now(),
        }
    }

    fn next(&mut self) -> Packet {
        let keyframe = self.frame.is_multiple_of(90) && self.in_frame == 0;
        let marker = self.in_frame == 8;
        let p = Packet {
            seq: self.seq,
            ts: (self.frame * 3000) as u32,
            marker,
            layer: Layer::F,
            keyframe,
            clock_rate: 90_000,
            arrival: self.t0
                + Duration::from_micros(self.frame * 33_333 + u64::from(self.in_frame)),
        };
        self.seq += 1;
        self.in_frame += 1;
        if marker {
            self.in_frame = 0;
            self.frame += 1;
        }
        p
    }
}

/// Forwarders that have started (seen a keyframe).
fn started(n: usize, s: &mut Stream) -> Vec<Forwarder> {
    let mut fw: Vec<Forwarder> = (0..n).map(|_| Forwarder::new(Kind::Video)).collect();
    let first = s.next();
    for f in &mut fw {
        assert!(matches!(f.decide(&first), Decision::Forward { .. }));
    }
    fw
}

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    g.bench_function("video", |b| {
        let mut s = Stream::new();
        let mut fw = started(1, &mut s);
        b.iter(|| {
            let p = s.next();
            black_box(fw[0].decide(black_box(&p)))
        });
    });
    g.bench_function("audio", |b| {
        let mut f = Forwarder::new(Kind::Audio);
        let t0 = Instant::now();
        let mut seq = 1u64;
        b.iter(|| {
            let p = Packet {
                seq,
                ts: (seq * 960) as u32,
                marker: false,
                layer: Layer::F,
                keyframe: false,
                clock_rate: 48_000,
                arrival: t0 + Duration::from_millis(seq * 20),
            };
            seq += 1;
            black_box(f.decide(black_box(&p)))
        });
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    for n in [1usize, 10, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut s = Stream::new();
            let mut fw = started(n, &mut s);
            let mut hdr = [0u8; 12];
            b.iter(|| {
                let p = s.next();
                let mut forwarded = 0u32;
                for f in &mut fw {
                    if let Decision::Forward { seq, ts } = f.decide(&p) {
                        rewrite_header(&mut hdr, seq as u16, ts, 0x1234_5678 ^ forwarded, 96);
                        forwarded += 1;
                    }
                    let _ = f.take_keyframe_request();
                }
                black_box((forwarded, hdr))
            });
        });
    }
    g.finish();
}

/// Writes the fields a forwarded packet's RTP header changes: payload type,
/// marker kept, sequence number, timestamp and SSRC.
#[inline]
fn rewrite_header(h: &mut [u8; 12], seq: u16, ts: u32, ssrc: u32, pt: u8) {
    h[0] = 0x80;
    h[1] = (h[1] & 0x80) | (pt & 0x7f);
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

fn header_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtp_header", |b| {
        let mut h = [0x80u8, 0xe0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            rewrite_header(
                black_box(&mut h),
                seq,
                u32::from(seq) * 3000,
                0xdead_beef,
                96,
            );
            black_box(&h);
        });
    });
    g.bench_function("rtp_header+vp8_picture_id", |b| {
        let mut h = [0x80u8, 0xe0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
        let mut payload = vec![0u8; 1160];
        payload[..4].copy_from_slice(&[0x90, 0x80, 0x80, 0x01]);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            rewrite_header(&mut h, seq, u32::from(seq) * 3000, 0xdead_beef, 96);
            convene_media::vp8::rewrite_picture_id(black_box(&mut payload), seq, None).unwrap();
            black_box((&h, &payload));
        });
    });
    // AEAD_AES_128_GCM is compare-janus.sh's GCM pass and AES_CM_128 its
    // AES-CM pass; AEAD_AES_256_GCM is what str0m's DTLS (dimpl) prefers
    // when the peer offers it: two str0m peers (the `sfu_cost` pairs), or a
    // browser that offers it. The seal is the server's (`rtc::seal`).
    use convene_server::rtc::seal::{Profile, SrtpSealer};
    for (name, profile) in [
        ("own_write_gcm128", Profile::AeadAes128Gcm),
        ("own_write_gcm256", Profile::AeadAes256Gcm),
        ("own_write_cm128", Profile::Aes128CmSha1_80),
    ] {
        g.bench_function(name, |b| {
            const PAYLOAD: usize = 1100;
            // One subscriber's SRTP session keys.
            let sealer = SrtpSealer::from_master(
                profile,
                &[7u8; 32][..profile.key_len()],
                &[9u8; 14][..profile.salt_len()],
            )
            .unwrap();
            let ssrc = 0xdead_beef_u32;
            let payload = vec![0x5au8; PAYLOAD];
            // The copy's datagram: 12 header bytes, 12 of extensions, the
            // payload, the tag; reused, as a send batch's slots are.
            let mut datagram = vec![0u8; 12 + 12 + PAYLOAD + profile.rtp_overhead()];
            let mut seq = 0u16;
            let mut twcc = 0u16;
            b.iter(|| {
                seq = seq.wrapping_add(1);
                twcc = twcc.wrapping_add(1);
                let mut h = [0x90u8, 0xe0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
                rewrite_header(&mut h, seq, u32::from(seq) * 3000, ssrc, 96);
                h[0] |= 0x10; // the extension bit (the rewrite writes 0x80)
                datagram[..12].copy_from_slice(&h);
                // RFC 8285 one-byte extensions: MID "0", transport-wide seq.
                datagram[12..19].copy_from_slice(&[0xbe, 0xde, 0, 2, 0x10, b'0', 0x31]);
                datagram[19..21].copy_from_slice(&twcc.to_be_bytes());
                datagram[21..24].copy_from_slice(&[0, 0, 0]);
                datagram[24..24 + PAYLOAD].copy_from_slice(black_box(&payload));
                let n = sealer.seal_rtp(&mut datagram, 24 + PAYLOAD, 24, 0).unwrap();
                black_box(&datagram[..n]);
            });
        });
    }
    // The same copy through the own write path's pieces as a worker would
    // run them (`convene_sfu::writer`, `bwe`, `rtc::seal`): the header
    // written with the peer's extension ids (MID, transport-wide number),
    // the payload copied, sealed, then kept for NACKs (a shared payload),
    // counted for sender reports, and recorded for the estimator. What it
    // leaves out: the kernel's send, and the feedback and resends, which
    // are per report, not per copy.
    g.bench_function("own_copy_gcm128", |b| {
        use convene_server::rtc::seal::{Profile, SrtpSealer};
        use convene_sfu::writer::header::write_header;
        use convene_sfu::writer::{
            ExtIds, ExtValues, ResendCache, RtpHeader, SenderClock, SentPacket, TransportSeq,
        };
        use convene_sfu::{BweConfig, SendSideBwe, nack_cache_packets};
        use std::sync::Arc;
        const PAYLOAD: usize = 1100;
        let profile = Profile::AeadAes128Gcm;
        let sealer = SrtpSealer::from_master(profile, &[7u8; 16], &[9u8; 12]).unwrap();
        let ids = ExtIds::new(Some(4), Some(3), None, None).unwrap();
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
        let mut cache = ResendCache::new(
            nack_cache_packets(Duration::from_millis(500)),
            Duration::from_millis(500),
        );
        let mut clock = SenderClock::new();
        let mut transport = TransportSeq::new(1);
        let payload: Arc<[u8]> = Arc::from(vec![0x5au8; PAYLOAD]);
        let mut datagram = vec![0u8; 1500];
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            // A copy every 30 µs of virtual time: ~33k packets a second.
            let now = t0 + Duration::from_micros(30 * seq);
            let twcc = transport.next();
            let h = RtpHeader {
                pt: 96,
                seq: seq as u16,
                ts: (seq / 9) as u32 * 3000,
                ssrc: 0xdead_beef,
                marker: seq.is_multiple_of(9),
            };
            let vals = ExtValues {
                mid: Some(b"1"),
                transport_cc: Some(twcc),
                ..Default::default()
            };
            let hl = write_header(&mut datagram, &h, &ids, &vals).unwrap();
            datagram[hl..hl + PAYLOAD].copy_from_slice(black_box(&payload));
            let n = sealer
                .seal_rtp(&mut datagram, hl + PAYLOAD, hl, (seq >> 16) as u32)
                .unwrap();
            black_box(&datagram[..n]);
            cache.insert(SentPacket {
                seq,
                ts: h.ts,
                pt: h.pt,
                marker: h.marker,
                payload: payload.clone(),
                audio_level: None,
                sent_at: now,
            });
            clock.on_sent(now, h.ts, PAYLOAD);
            bwe.on_packet_sent(now, twcc, n as u32, None);
        });
    });
    g.finish();
}

/// One AES_CM_128_HMAC_SHA1_80 RTP packet (1,200 bytes) opened the way
/// str0m's SRTP context opens it, through a crypto provider: the tag over
/// the packet and its rollover counter, then the payload deciphered with the
/// context's cipher (made once, when the context was). `str0m_provider` is
/// str0m's aws-lc-rs provider, which makes a new AES key schedule inside
/// every call of the cipher and a new HMAC key inside every tag;
/// `keyed_provider` is the server's (`convene_server::rtc::srtp`), which
/// the load generator uses too.
fn srtp_aes_cm(c: &mut Criterion) {
    use convene_server::rtc::srtp::{CachedHmac, KeyedSrtp};
    use str0m::crypto::{Sha1HmacProvider, SrtpProvider};
    const PACKET: usize = 1200;
    const HEADER: usize = 12;
    const TAG: usize = 10;
    let mut g = c.benchmark_group("srtp_aes_cm");
    g.throughput(Throughput::Elements(1));
    let base = str0m::crypto::from_feature_flags();
    let cases: [(&str, &dyn SrtpProvider, &dyn Sha1HmacProvider); 2] = [
        (
            "str0m_provider",
            base.srtp_provider,
            base.sha1_hmac_provider,
        ),
        ("keyed_provider", &KeyedSrtp, &CachedHmac),
    ];
    for (name, srtp, hmac) in cases {
        let mut cipher = srtp.aes_128_cm_sha1_80().create_cipher([7u8; 16], false);
        let auth_key = [9u8; 20];
        let packet = vec![0x5au8; PACKET];
        let mut plain = vec![0u8; PACKET];
        let roc = 0u32.to_be_bytes();
        let iv = [3u8; 16];
        g.bench_function(name, |b| {
            b.iter(|| {
                let signed = &packet[..PACKET - TAG];
                let tag = hmac.sha1_hmac(&auth_key, &[black_box(signed), &roc]);
                black_box(&tag[..TAG]);
                cipher.decrypt(&iv, &signed[HEADER..], &mut plain).unwrap();
                black_box(&plain);
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decision, fanout, header_rewrite, srtp_aes_cm
}
criterion_main!(benches);
