//! A userspace UDP relay between one test client and the media server, with
//! an adjustable downstream bottleneck (`tc netem` does not exist on these
//! machines). Packets towards the client leave at most at the configured
//! rate; up to 300 ms of them queue (so delay-based bandwidth estimation
//! sees the bottleneck), beyond that they are dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest queue of the bottleneck.
const MAX_QUEUE_DELAY: Duration = Duration::from_millis(300);

pub struct Relay {
    /// Where the client should send (the relay's client-facing socket).
    pub addr: SocketAddr,
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
        {
            // Server -> client through the bottleneck.
            let (front, back, stop, client, rate) =
                (front, back, stop.clone(), client, rate.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
                let mut next_free = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = back.recv_from(&mut buf) {
                        let now = Instant::now();
                        let bps = rate.load(Ordering::Relaxed);
                        if bps == 0 {
                            queue.push_back((now, buf[..n].to_vec()));
                        } else {
                            let start = next_free.max(now);
                            if start.duration_since(now) <= MAX_QUEUE_DELAY {
                                let tx = Duration::from_secs_f64(n as f64 * 8.0 / bps as f64);
                                next_free = start + tx;
                                queue.push_back((start + tx, buf[..n].to_vec()));
                            }
                        }
                    }
                    let now = Instant::now();
                    let to = *client.lock().unwrap();
                    while let Some((at, _)) = queue.front() {
                        if *at > now {
                            break;
                        }
                        let (_, p) = queue.pop_front().unwrap();
                        if let Some(to) = to {
                            let _ = front.send_to(&p, to);
                        }
                    }
                }
            }));
        }
        Relay {
            addr,
            rate,
            stop,
            threads,
        }
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
