//! A userspace UDP relay between one test client and the media server, with
//! an adjustable downstream bottleneck and faults (`tc netem` does not exist
//! on these machines). Packets towards the client leave at most at the
//! configured rate; up to 300 ms of them queue (so delay-based bandwidth
//! estimation sees the bottleneck), beyond that they are dropped. Then
//! [`Faults`]: seeded random loss, a fixed delay plus uniform jitter,
//! reordering (a packet held back behind later ones) and duplication.

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

/// What the faults did so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    pub reordered: AtomicU64,
    pub duplicated: AtomicU64,
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
        {
            // Client -> server, unlimited.
            let (front, back, stop, client) =
                (front.clone(), back.clone(), stop.clone(), client.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        let _ = back.send_to(&buf[..n], server);
                    }
                }
            }));
        }
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let counts: Arc<FaultCounts> = Arc::default();
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
            rate,
            stop,
            threads,
        }
    }

    /// Applies `faults` to the packets towards the client from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
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
