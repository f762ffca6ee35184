//! A userspace UDP relay between one test client and the media server, with
//! an adjustable downstream bottleneck and faults (`tc netem` does not exist
//! on these machines). Packets towards the client leave at most at the
//! configured rate; up to 300 ms of them queue (so delay-based bandwidth
//! estimation sees the bottleneck), beyond that they are dropped. Then
//! [`Faults`]: seeded random loss, a fixed delay plus uniform jitter,
//! reordering (a packet held back behind later ones) and duplication.
//! Upstream (client -> server) it can [`Tamper`] with the client's SRTP:
//! replay old packets and send corrupted copies, as an attacker on the path
//! would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest queue of the bottleneck.
const MAX_QUEUE_DELAY: Duration = Duration::from_millis(300);

/// What the relay does to packets towards the client, after the bottleneck.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of packets dropped.
    pub loss: f64,
    /// Every packet's extra delay.
    pub delay: Duration,
    /// Plus a uniformly random delay up to this.
    pub jitter: Duration,
    /// Share of packets held back behind later ones (by one jitter span plus
    /// 10 ms more).
    pub reorder: f64,
    /// Share of packets sent twice.
    pub duplicate: f64,
    /// Seed of the random draws (runs with the same traffic repeat).
    pub seed: u64,
}

/// What the relay does to the client's RTP packets towards the server (an
/// attacker on the path: it cannot produce valid SRTP, only replay and
/// damage it). The originals always pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tamper {
    /// Share of RTP packets that are sent again later (after
    /// [`REPLAY_DISTANCE`] more packets): a replay.
    pub replay: f64,
    /// Share of RTP packets preceded by a copy with one bit flipped in the
    /// middle (the encrypted payload): a forgery the authentication tag must
    /// catch.
    pub corrupt: f64,
    pub seed: u64,
}

/// How many packets later a replayed packet is sent again.
pub const REPLAY_DISTANCE: usize = 20;

/// What the faults did so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    pub reordered: AtomicU64,
    pub duplicated: AtomicU64,
    /// Upstream packets replayed / sent corrupted ([`Tamper`]).
    pub replayed: AtomicU64,
    pub corrupted: AtomicU64,
}

/// Whether a datagram is RTP (not RTCP, STUN or DTLS; RFC 7983 / 5761).
fn is_rtp(p: &[u8]) -> bool {
    p.len() > 12 && (128..192).contains(&p[0]) && !(192..224).contains(&p[1])
}

/// xorshift64*: deterministic, good enough to pick packets.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Relay {
    /// Where the client should send (the relay's client-facing socket).
    pub addr: SocketAddr,
    /// What the faults did.
    pub counts: Arc<FaultCounts>,
    faults: Arc<Mutex<Faults>>,
    tamper: Arc<Mutex<Tamper>>,
    /// Downstream (server -> client) rate in bits/s; 0 = unlimited.
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying between a client (whoever sends to [`Relay::addr`]
    /// first) and `server`, binding on `ip`.
    pub fn start(server: SocketAddr, ip: IpAddr) -> Relay {
        let front = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap());
        let back = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let addr = front.local_addr().unwrap();
        let rate = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let mut threads = Vec::new();
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let tamper: Arc<Mutex<Tamper>> = Arc::default();
        let counts: Arc<FaultCounts> = Arc::default();
        {
            // Client -> server, unlimited, then the tampering.
            let (front, back, stop, client, tamper, counts) = (
                front.clone(),
                back.clone(),
                stop.clone(),
                client.clone(),
                tamper.clone(),
                counts.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut rng: Option<(u64, Rng)> = None;
                // Packets to replay, each with how many packets to wait.
                let mut replays: Vec<(usize, Vec<u8>)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    let t = *tamper.lock().unwrap();
                    let p = &buf[..n];
                    if is_rtp(p) && (t.replay > 0.0 || t.corrupt > 0.0) {
                        if rng.as_ref().is_none_or(|(seed, _)| *seed != t.seed) {
                            rng = Some((t.seed, Rng(t.seed | 1)));
                        }
                        let r = &mut rng.as_mut().unwrap().1;
                        if r.unit() < t.corrupt {
                            let mut bad = p.to_vec();
                            bad[n / 2] ^= 0x10;
                            let _ = back.send_to(&bad, server);
                            counts.corrupted.fetch_add(1, Ordering::Relaxed);
                        }
                        if r.unit() < t.replay {
                            replays.push((REPLAY_DISTANCE, p.to_vec()));
                        }
                    }
                    let _ = back.send_to(p, server);
                    for (wait, old) in &mut replays {
                        *wait -= 1;
                        if *wait == 0 {
                            let _ = back.send_to(old, server);
                            counts.replayed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    replays.retain(|(wait, _)| *wait > 0);
                }
            }));
        }
        {
            // Server -> client through the bottleneck, then the faults.
            let (front, back, stop, client, rate, faults, counts) = (
                front,
                back,
                stop.clone(),
                client,
                rate.clone(),
                faults.clone(),
                counts.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                // (release time, arrival order, packet), earliest first.
                let mut queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
                let mut order = 0u64;
                let mut next_free = Instant::now();
                let mut rng: Option<(u64, Rng)> = None;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = back.recv_from(&mut buf) {
                        let now = Instant::now();
                        let bps = rate.load(Ordering::Relaxed);
                        let out = if bps == 0 {
                            Some(now)
                        } else {
                            let start = next_free.max(now);
                            (start.duration_since(now) <= MAX_QUEUE_DELAY).then(|| {
                                let tx = Duration::from_secs_f64(n as f64 * 8.0 / bps as f64);
                                next_free = start + tx;
                                start + tx
                            })
                        };
                        let f = *faults.lock().unwrap();
                        if rng.as_ref().is_none_or(|(seed, _)| *seed != f.seed) {
                            rng = Some((f.seed, Rng(f.seed | 1)));
                        }
                        let r = &mut rng.as_mut().unwrap().1;
                        if let Some(at) = out {
                            if r.unit() < f.loss {
                                counts.dropped.fetch_add(1, Ordering::Relaxed);
                            } else {
                                let mut at = at + f.delay + f.jitter.mul_f64(r.unit());
                                if r.unit() < f.reorder {
                                    at += f.jitter + Duration::from_millis(10);
                                    counts.reordered.fetch_add(1, Ordering::Relaxed);
                                }
                                let copies = if r.unit() < f.duplicate {
                                    counts.duplicated.fetch_add(1, Ordering::Relaxed);
                                    2
                                } else {
                                    1
                                };
                                for _ in 0..copies {
                                    order += 1;
                                    queue.push(Reverse((at, order, buf[..n].to_vec())));
                                }
                                counts.passed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let now = Instant::now();
                    let to = *client.lock().unwrap();
                    while let Some(Reverse((at, _, _))) = queue.peek() {
                        if *at > now {
                            break;
                        }
                        let Reverse((_, _, p)) = queue.pop().unwrap();
                        if let Some(to) = to {
                            let _ = front.send_to(&p, to);
                        }
                    }
                }
            }));
        }
        Relay {
            addr,
            counts,
            faults,
            tamper,
            rate,
            stop,
            threads,
        }
    }

    /// Applies `faults` to the packets towards the client from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    /// Tampers with the client's RTP towards the server from now on.
    pub fn set_tamper(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
    }

    /// Limits the downstream rate (bits/s); 0 lifts the limit.
    pub fn set_rate(&self, bps: u64) {
        self.rate.store(bps, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
