//! Micro-benchmarks of the sans-IO forwarding core: the decision for one
//! packet, the fan-out of one packet to many subscribers, and the RTP
//! header rewrite a forwarded packet needs.

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
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decision, fanout, header_rewrite
}
criterion_main!(benches);
