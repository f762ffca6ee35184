//! The media port's receive side: one thread reads every datagram from the
//! shared UDP socket and hands it to the media worker that owns its peer.
//!
//! Routing: a known remote address goes to the worker it was last routed to;
//! a STUN binding request is routed by the worker index encoded in our ICE
//! ufrag (and teaches the address); anything else from an unknown address is
//! dropped and counted. Buffers come from a fixed pool that workers return
//! them to, so the receive path does not allocate in steady state.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::stun;

/// Size of one receive buffer (larger than any datagram we accept).
pub const DATAGRAM_CAPACITY: usize = 2048;

/// A received datagram (or RFC 4571 frame) in a pooled buffer.
pub struct Datagram {
    pub from: SocketAddr,
    pub len: usize,
    pub buf: Box<[u8; DATAGRAM_CAPACITY]>,
    /// Set for ICE-TCP frames: where to write frames back to `from`.
    pub tcp: Option<super::tcp::TcpWriter>,
}

impl Datagram {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Counters of the receive thread.
#[derive(Debug, Default)]
pub struct RecvCounters {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub unroutable: AtomicU64,
    pub worker_full: AtomicU64,
}

/// How long an address stays routed without traffic.
const ROUTE_IDLE: Duration = Duration::from_secs(60);

/// Runs until `stop` is set. `workers[i]` receives datagrams for worker `i`;
/// `pool` hands back used buffers.
pub fn receive_loop(
    socket: Arc<UdpSocket>,
    workers: Vec<Sender<Datagram>>,
    pool: Receiver<Box<[u8; DATAGRAM_CAPACITY]>>,
    counters: Arc<RecvCounters>,
    stop: Arc<AtomicBool>,
) {
    let mut routes: HashMap<SocketAddr, (usize, Instant)> = HashMap::new();
    let mut last_prune = Instant::now();
    let mut unroutable_logged = Instant::now() - Duration::from_secs(60);
    let mut spare: Option<Box<[u8; DATAGRAM_CAPACITY]>> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut buf = spare
            .take()
            .or_else(|| pool.try_recv().ok())
            .unwrap_or_else(|| Box::new([0u8; DATAGRAM_CAPACITY]));
        let (len, from) = match socket.recv_from(&mut buf[..]) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                spare = Some(buf);
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                spare = Some(buf);
                continue;
            }
        };
        counters.datagrams.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let now = Instant::now();
        let data = &buf[..len];
        let mut target = None;
        if stun::classify(data) == stun::PacketClass::Stun
            && let Some(worker) = stun::binding_request_ufrag(data).and_then(stun::worker_of_ufrag)
            && worker < workers.len()
        {
            target = Some(worker);
        }
        match target {
            Some(w) => {
                routes.insert(from, (w, now));
            }
            None => {
                if let Some(route) = routes.get_mut(&from) {
                    route.1 = now;
                    target = Some(route.0);
                }
            }
        }
        let Some(worker) = target else {
            counters.unroutable.fetch_add(1, Ordering::Relaxed);
            if now.duration_since(unroutable_logged) > Duration::from_secs(10) {
                unroutable_logged = now;
                tracing::debug!(%from, len, "dropping datagram from an unknown address (logged at most every 10 s)");
            }
            spare = Some(buf);
            continue;
        };
        match workers[worker].try_send(Datagram {
            from,
            len,
            buf,
            tcp: None,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(d)) | Err(TrySendError::Disconnected(d)) => {
                counters.worker_full.fetch_add(1, Ordering::Relaxed);
                spare = Some(d.buf);
            }
        }
        if now.duration_since(last_prune) > Duration::from_secs(10) {
            last_prune = now;
            routes.retain(|_, (_, seen)| now.duration_since(*seen) < ROUTE_IDLE);
        }
    }
}
