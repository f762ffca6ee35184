//! Micro-benchmarks of forwarding through real str0m peers, in memory: the
//! server side of each subscriber is a str0m `Rtc` configured as Convene's
//! worker configures it (ICE-lite, RTP mode, send-side BWE, unpaced video,
//! a 1024-packet / 2 s NACK cache), connected to a client `Rtc` by handing
//! datagrams across in memory (real ICE, DTLS and SRTP; no sockets).
//!
//! - `sfu_fanout/N`: one incoming VP8 packet to N subscribers the way the
//!   worker does it: the forwarder's decision, `write_rtp`, and draining the
//!   peer until it has nothing left to send (SRTP protect, str0m's session
//!   work). The kernel's send cost is not in it (see `convene-load
//!   --udp-floor`).
//! - `nack/answer`: a NACK from the client (with its receiver report),
//!   handed to the server peer, until the retransmissions are out: SRTCP
//!   unprotect, the NACK cache lookup and the resend's SRTP protect. Each
//!   iteration loses one packet and lets the client's NACK timer run; the
//!   resend is delivered afterwards (untimed), so every NACK names one
//!   packet. Here str0m's cap on resends (15 % of the media rate in the
//!   worker) is lifted: the bench's media rate is far below a camera's and
//!   the cap would refuse most resends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_sfu::{Decision, Forwarder, Kind, Layer, Packet};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Payload bytes of a forwarded video packet.
const PAYLOAD: usize = 1100;
/// Virtual time between two incoming packets (about 330 packets/s: one
/// 2.5 Mbit/s camera with audio).
const STEP: Duration = Duration::from_micros(3030);

/// What the server peer of a pair runs beyond str0m's base (ICE, DTLS,
/// SRTP, RTCP).
#[derive(Clone, Copy)]
struct Setup {
    /// Send-side bandwidth estimation (TWCC on every packet, the pacer).
    bwe: bool,
    /// The NACK cache (a copy of every sent video packet, kept 2 s).
    nack_cache: bool,
}

impl Setup {
    /// As the worker configures a subscriber.
    const WORKER: Setup = Setup {
        bwe: true,
        nack_cache: true,
    };
}

/// A subscriber: Convene's side and the remote client, connected.
struct Pair {
    server: Rtc,
    client: Rtc,
    mid: Mid,
    pt: Pt,
    fwd: Forwarder,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
}

/// Hands everything `from` has to send to `to`; returns `from`'s next
/// timeout and whether it said `Connected`.
fn shuttle(from: &mut Rtc, to: &mut Rtc, now: Instant) -> (Instant, bool) {
    let mut connected = false;
    loop {
        match from.poll_output().expect("poll") {
            Output::Timeout(t) => return (t, connected),
            Output::Transmit(t) => {
                let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                    .expect("a datagram str0m sent");
                to.handle_input(Input::Receive(now, r)).expect("input");
            }
            Output::Event(Event::Connected) => connected = true,
            Output::Event(_) => {}
        }
    }
}

impl Pair {
    /// Negotiates one send-only video m-line from the server (as the worker
    /// offers a remote track) and runs ICE + DTLS to completion on the
    /// virtual clock `now`.
    /// `rtx_cap`: str0m's limit on resends as a share of the media rate.
    fn connect(i: usize, now: &mut Instant, rtx_cap: Option<f32>) -> Pair {
        Pair::connect_with(i, now, rtx_cap, Setup::WORKER)
    }

    /// As [`Pair::connect`], with str0m's send-side estimator and the NACK
    /// cache on or off (to measure what each costs a forwarded packet).
    fn connect_with(i: usize, now: &mut Instant, rtx_cap: Option<f32>, setup: Setup) -> Pair {
        let server_addr: SocketAddr = format!("10.0.0.1:{}", 10_000 + i % 50_000).parse().unwrap();
        let client_addr: SocketAddr = format!("10.0.1.{}:{}", 1 + i / 50_000, 20_000 + i % 40_000)
            .parse()
            .unwrap();
        let mut server = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .enable_bwe(setup.bwe.then(|| Bitrate::kbps(1500)))
            .set_send_buffer_video(1000)
            .build(*now);
        server.add_local_candidate(Candidate::host(server_addr, "udp").unwrap());
        let mut client = Rtc::builder().set_rtp_mode(true).build(*now);
        client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());

        let mut change = server.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let answer = client.sdp_api().accept_offer(offer).unwrap();
        server.sdp_api().accept_answer(pending, answer).unwrap();

        let (mut up_s, mut up_c) = (false, false);
        for _ in 0..100_000 {
            let (ts, cs) = shuttle(&mut server, &mut client, *now);
            let (tc, cc) = shuttle(&mut client, &mut server, *now);
            up_s |= cs;
            up_c |= cc;
            if up_s && up_c {
                break;
            }
            *now = ts.min(tc).max(*now + Duration::from_micros(100));
            server.handle_input(Input::Timeout(*now)).unwrap();
            client.handle_input(Input::Timeout(*now)).unwrap();
        }
        assert!(up_s && up_c, "pair {i} did not connect");
        let pt = server
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
            .expect("VP8 negotiated");
        let mut api = server.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, None)
            .expect("a send stream for the m-line");
        if setup.nack_cache {
            tx.set_rtx_cache(1024, Duration::from_secs(2), rtx_cap);
        } else {
            tx.set_rtx_cache(0, Duration::ZERO, None);
        }
        tx.set_unpaced(true);
        Pair {
            server,
            client,
            mid,
            pt,
            fwd: Forwarder::new(Kind::Video),
            server_addr,
            client_addr,
        }
    }

    /// The forwarder's decision and, when it forwards, the write into the
    /// server peer (as the worker's `deliver`).
    fn write(&mut self, p: &Packet, payload: &Arc<[u8]>, now: Instant) {
        if let Decision::Forward { seq, ts } = self.fwd.decide(p) {
            let mut api = self.server.direct_api();
            let tx = api.stream_tx_by_mid(self.mid, None).unwrap();
            tx.write_rtp(
                RtpWrite::new(self.pt, SeqNo::from(seq), ts, now, payload.clone())
                    .marker(p.marker)
                    .nackable(true),
            );
        }
    }

    /// Forwards one packet to this subscriber and drains the server peer
    /// (as the worker's `poll_peer` did before it served a timeout after
    /// each RTP datagram: see [`drain_paced`]); returns the datagrams
    /// it sent.
    fn forward(&mut self, p: &Packet, payload: &Arc<[u8]>, now: Instant) -> usize {
        self.write(p, payload, now);
        drain(&mut self.server, now, |_| {})
    }

    /// What the client has to say (STUN consent checks, receiver reports)
    /// goes to the server, so the pair stays up however long the run.
    fn keep_alive(&mut self, now: Instant) {
        self.client.handle_input(Input::Timeout(now)).unwrap();
        self.server.handle_input(Input::Timeout(now)).unwrap();
        shuttle(&mut self.client, &mut self.server, now);
        drain(&mut self.server, now, |_| {});
    }
}

/// Polls `rtc` until it waits for a future time, serving timeouts that are
/// due at once; each datagram goes to `out`. Returns the datagram count.
fn drain(rtc: &mut Rtc, now: Instant, mut out: impl FnMut(&[u8])) -> usize {
    let mut sent = 0;
    loop {
        match rtc.poll_output().expect("poll") {
            Output::Transmit(t) => {
                out(&t.contents);
                sent += 1;
            }
            Output::Timeout(t) if t <= now => {
                rtc.handle_input(Input::Timeout(now)).unwrap();
            }
            Output::Timeout(_) => return sent,
            Output::Event(_) => {}
        }
    }
}

/// As [`drain`], but while fewer than `want` datagrams are out it also
/// serves the timeouts str0m asks for later (the estimator's pacer spreads
/// a burst to one peer over time): the clock jumps to each, so the figure
/// is the work, not the pacing delay. With `early`, a timeout is also
/// served right after each RTP datagram, as the media worker does with the
/// estimator on: its pacer lets one packet out per timeout, and the poll
/// in between would only say so.
fn drain_paced(rtc: &mut Rtc, now: Instant, want: usize, early: bool) -> usize {
    let mut sent = 0;
    let mut at = now;
    for _ in 0..10_000 {
        match rtc.poll_output().expect("poll") {
            Output::Transmit(t) => {
                sent += 1;
                // RTP, not RTCP (RFC 5761's payload types).
                if early && t.contents.len() >= 12 && !(192..=223).contains(&t.contents[1]) {
                    rtc.handle_input(Input::Timeout(at)).unwrap();
                }
            }
            Output::Timeout(t) if t <= at || sent < want => {
                at = at.max(t);
                rtc.handle_input(Input::Timeout(at)).unwrap();
            }
            Output::Timeout(_) => return sent,
            Output::Event(_) => {}
        }
    }
    sent
}

/// A VP8 stream: 30 fps, 9 packets a frame, a keyframe every 90 frames.
struct Stream {
    seq: u64,
    n: u64,
    t0: Instant,
}

impl Stream {
    fn next(&mut self) -> Packet {
        let in_frame = self.n % 9;
        let frame = self.n / 9;
        let p = Packet {
            seq: self.seq,
            ts: (frame * 3000) as u32,
            marker: in_frame == 8,
            layer: Layer::F,
            keyframe: frame.is_multiple_of(90) && in_frame == 0,
            clock_rate: 90_000,
            arrival: self.t0 + STEP * self.n as u32,
        };
        self.seq += 1;
        self.n += 1;
        p
    }
}

fn sfu_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("sfu_fanout");
    let payload: Arc<[u8]> = vec![0x5a; PAYLOAD].into();
    for n in [1usize, 10, 100, 1000] {
        let t0 = Instant::now();
        let mut now = t0;
        let mut pairs: Vec<Pair> = (0..n)
            .map(|i| Pair::connect(i, &mut now, Some(0.15)))
            .collect();
        let mut stream = Stream { seq: 1, n: 0, t0 };
        // The first packet is a keyframe: every forwarder starts, and every
        // peer must put a datagram out (else the pair is not really up).
        now += STEP;
        let first = stream.next();
        for (i, p) in pairs.iter_mut().enumerate() {
            assert!(
                p.forward(&first, &payload, now) > 0,
                "pair {i} sent nothing"
            );
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    now += STEP;
                    if i % 256 == 0 {
                        for p in &mut pairs {
                            p.keep_alive(now);
                        }
                    }
                    let pkt = stream.next();
                    let start = Instant::now();
                    let mut sent = 0;
                    for p in &mut pairs {
                        sent += p.forward(&pkt, &payload, now);
                    }
                    spent += start.elapsed();
                    black_box(sent);
                }
                spent
            });
        });
    }
    g.finish();
}

fn nack(c: &mut Criterion) {
    let mut g = c.benchmark_group("nack");
    let payload: Arc<[u8]> = vec![0x5a; PAYLOAD].into();
    let t0 = Instant::now();
    let mut now = t0;
    let mut pair = Pair::connect(0, &mut now, None);
    let mut stream = Stream { seq: 1, n: 0, t0 };
    let (server_addr, client_addr) = (pair.server_addr, pair.client_addr);
    // Sends two packets, delivers only the second: the client sees a gap
    // and NACKs the first; returns the client's RTCP datagrams.
    let mut lose_one = |pair: &mut Pair, now: &mut Instant| -> Vec<Vec<u8>> {
        let mut to_client = Vec::new();
        for _ in 0..2 {
            *now += STEP;
            let p = stream.next();
            pair.write(&p, &payload, *now);
            to_client.clear();
            drain(&mut pair.server, *now, |d| to_client.push(d.to_vec()));
        }
        // The client sends its NACK as soon as it sees the gap (when its
        // NACK timer is due), or at the timer.
        let mut from_client = Vec::new();
        for d in &to_client {
            let r = Receive::new(Protocol::Udp, server_addr, client_addr, d).unwrap();
            pair.client.handle_input(Input::Receive(*now, r)).unwrap();
            drain(&mut pair.client, *now, |d| from_client.push(d.to_vec()));
        }
        // Past str0m's NACK interval and retry time (~105 ms).
        *now += Duration::from_millis(120);
        pair.client.handle_input(Input::Timeout(*now)).unwrap();
        drain(&mut pair.client, *now, |d| from_client.push(d.to_vec()));
        from_client
    };
    // Warm up the receive side (the client NACKs only after some packets).
    for _ in 0..50 {
        let rtcp = lose_one(&mut pair, &mut now);
        for d in rtcp {
            let r = Receive::new(Protocol::Udp, client_addr, server_addr, &d).unwrap();
            pair.server.handle_input(Input::Receive(now, r)).unwrap();
            drain(&mut pair.server, now, |_| {});
        }
    }
    // Each iteration must see a retransmission, or it measures nothing.
    let rtcp = lose_one(&mut pair, &mut now);
    let mut resent = 0;
    for d in rtcp {
        let r = Receive::new(Protocol::Udp, client_addr, server_addr, &d).unwrap();
        pair.server.handle_input(Input::Receive(now, r)).unwrap();
        resent += drain(&mut pair.server, now, |_| {});
    }
    assert!(resent > 0, "the server answered no NACK");
    g.throughput(Throughput::Elements(1));
    let (mut asked, mut answered) = (0u64, 0u64);
    // The server's answers, kept (in reused buffers) for the client.
    let (mut sent, mut lens) = (Vec::<u8>::with_capacity(1 << 16), Vec::<usize>::new());
    g.bench_function("answer", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            asked += iters;
            for _ in 0..iters {
                let rtcp = lose_one(&mut pair, &mut now);
                sent.clear();
                lens.clear();
                let start = Instant::now();
                let mut out = 0;
                for d in &rtcp {
                    let r = Receive::new(Protocol::Udp, client_addr, server_addr, d).unwrap();
                    pair.server.handle_input(Input::Receive(now, r)).unwrap();
                    out += drain(&mut pair.server, now, |d| {
                        sent.extend_from_slice(d);
                        lens.push(d.len());
                    });
                }
                spent += start.elapsed();
                // The resend reaches the client: it stops asking for it.
                let mut at = 0;
                for &len in &lens {
                    let d = &sent[at..at + len];
                    at += len;
                    let r = Receive::new(Protocol::Udp, server_addr, client_addr, d).unwrap();
                    pair.client.handle_input(Input::Receive(now, r)).unwrap();
                    drain(&mut pair.client, now, |_| {});
                }
                answered += u64::from(out > 0);
                black_box(out);
            }
            spent
        });
    });
    g.finish();
    assert!(
        answered * 10 >= asked * 9,
        "only {answered} of {asked} NACKs were answered: the figure would not be a NACK's"
    );
}

/// What one forwarded copy costs in str0m, by how it is driven and what
/// the peer runs: 100 subscribers, a 9-packet frame; `per_packet` writes a
/// packet to a peer and drains it (a quiet worker), `per_frame` writes the
/// whole frame to a peer and drains once (a busy worker, whose rounds take
/// many incoming packets before polling), `per_frame_early` does too and
/// serves a timeout after each RTP datagram, as the worker does with the
/// estimator on. Throughput: copies.
fn sfu_cost(c: &mut Criterion) {
    const SUBS: usize = 100;
    const FRAME: usize = 9;
    let mut g = c.benchmark_group("sfu_cost");
    let payload: Arc<[u8]> = vec![0x5a; PAYLOAD].into();
    let setups = [
        ("bwe+nack", Setup::WORKER),
        (
            "nack",
            Setup {
                bwe: false,
                nack_cache: true,
            },
        ),
        (
            "bare",
            Setup {
                bwe: false,
                nack_cache: false,
            },
        ),
    ];
    for (name, setup) in setups {
        let t0 = Instant::now();
        let mut now = t0;
        let mut pairs: Vec<Pair> = (0..SUBS)
            .map(|i| Pair::connect_with(i, &mut now, Some(0.15), setup))
            .collect();
        let mut stream = Stream { seq: 1, n: 0, t0 };
        now += STEP;
        let first = stream.next();
        for (i, p) in pairs.iter_mut().enumerate() {
            assert!(
                p.forward(&first, &payload, now) > 0,
                "pair {i} sent nothing"
            );
        }
        // Align to a frame's start.
        while !stream.n.is_multiple_of(FRAME as u64) {
            let p = stream.next();
            for pair in &mut pairs {
                pair.forward(&p, &payload, now);
            }
        }
        g.throughput(Throughput::Elements((SUBS * FRAME) as u64));
        for mode in ["per_packet", "per_frame", "per_frame_early"] {
            if mode == "per_frame_early" && !setup.bwe {
                continue; // without the estimator there is no pacer's gate
            }
            let per_frame = mode != "per_packet";
            let id = format!("{mode}/{name}");
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for i in 0..iters {
                        now += STEP * FRAME as u32;
                        if i % 32 == 0 {
                            for p in &mut pairs {
                                p.keep_alive(now);
                            }
                        }
                        let frame: Vec<Packet> = (0..FRAME).map(|_| stream.next()).collect();
                        let start = Instant::now();
                        let mut sent = 0;
                        for p in &mut pairs {
                            if per_frame {
                                for pkt in &frame {
                                    p.write(pkt, &payload, now);
                                }
                                let early = mode == "per_frame_early";
                                sent += drain_paced(&mut p.server, now, FRAME, early);
                            } else {
                                for pkt in &frame {
                                    sent += p.forward(pkt, &payload, now);
                                }
                            }
                        }
                        spent += start.elapsed();
                        assert!(sent >= SUBS * FRAME, "only {sent} copies went out");
                        black_box(sent);
                    }
                    spent
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = sfu_fanout, sfu_cost, nack
}
criterion_main!(benches);
