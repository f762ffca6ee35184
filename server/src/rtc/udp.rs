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

use super::{WorkerId, stun};

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
    /// Binding requests from a new address not routed because the route
    /// table was full.
    pub routes_full: AtomicU64,
}

/// Remote addresses routed to workers. STUN binding requests teach it, so
/// anyone who can send UDP could grow it: it holds at most `max` routes;
/// idle ones (60 s) are pruned every 10 s, and at once when it is full.
struct Routes {
    map: HashMap<SocketAddr, (WorkerId, Instant)>,
    max: usize,
    last_prune: Instant,
}

impl Routes {
    fn new(max: usize, now: Instant) -> Routes {
        Routes {
            map: HashMap::new(),
            max,
            last_prune: now,
        }
    }

    /// Routes `from` to `worker`; false when the table is full of live routes.
    fn learn(&mut self, from: SocketAddr, worker: WorkerId, now: Instant) -> bool {
        if let Some(r) = self.map.get_mut(&from) {
            *r = (worker, now);
            return true;
        }
        if self.map.len() >= self.max {
            self.prune(now);
            if self.map.len() >= self.max {
                return false;
            }
        }
        self.map.insert(from, (worker, now));
        true
    }

    fn lookup(&mut self, from: &SocketAddr, now: Instant) -> Option<WorkerId> {
        let r = self.map.get_mut(from)?;
        r.1 = now;
        Some(r.0)
    }

    fn prune(&mut self, now: Instant) {
        self.last_prune = now;
        self.map
            .retain(|_, (_, seen)| now.duration_since(*seen) < ROUTE_IDLE);
    }

    fn maybe_prune(&mut self, now: Instant) {
        if now.duration_since(self.last_prune) > Duration::from_secs(10) {
            self.prune(now);
        }
    }
}

/// Most remote addresses routed at once (a peer uses one or two).
const MAX_ROUTES: usize = 65_536;

/// How long an address stays routed without traffic.
const ROUTE_IDLE: Duration = Duration::from_secs(60);

/// Runs until `stop` is set. `workers[i]` receives datagrams for worker `i`;
/// `pool` hands back used buffers.
pub fn receive_loop(
    socket: Arc<UdpSocket>,
    workers: Vec<Sender<Datagram>>,
    pool: Receiver<Box<[u8; DATAGRAM_CAPACITY]>>,
    counters: Arc<RecvCounters>,
    ufrags: Arc<stun::UfragRoutes>,
    stop: Arc<AtomicBool>,
) {
    let mut routes = Routes::new(MAX_ROUTES, Instant::now());
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
            && let Some(worker) = stun::binding_request_ufrag(data).and_then(|u| ufrags.route(u))
            && worker.index() < workers.len()
        {
            target = Some(worker);
        }
        match target {
            Some(w) => {
                if !routes.learn(from, w, now) {
                    counters.routes_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => target = routes.lookup(&from, now),
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
        match workers[worker.index()].try_send(Datagram {
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
        routes.maybe_prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn w(i: usize) -> WorkerId {
        WorkerId::from_index(i).unwrap()
    }

    #[test]
    fn the_route_table_is_bounded_and_makes_room_from_idle_routes() {
        let t0 = Instant::now();
        let mut r = Routes::new(2, t0);
        assert!(r.learn(addr(1), w(0), t0));
        assert!(r.learn(addr(2), w(1), t0));
        // Full of live routes: a third address is refused, the known ones stay.
        assert!(!r.learn(addr(3), w(0), t0 + Duration::from_secs(1)));
        assert_eq!(r.map.len(), 2);
        assert_eq!(r.lookup(&addr(2), t0 + Duration::from_secs(1)), Some(w(1)));
        // A known address may move to another worker even when full.
        assert!(r.learn(addr(1), w(1), t0 + Duration::from_secs(2)));
        // Once routes idle out, a new address gets a place.
        let later = t0 + ROUTE_IDLE + Duration::from_secs(3);
        assert!(r.learn(addr(3), w(0), later));
        assert_eq!(r.lookup(&addr(3), later), Some(w(0)));
        assert_eq!(r.lookup(&addr(1), later), None, "idle route pruned");
    }

    /// The receive thread's queue to a worker is bounded: a worker that
    /// does not keep up costs datagrams (counted in `worker_full`, exported
    /// as `convene_udp_worker_queue_full_total`), never memory, and the
    /// thread goes on receiving.
    #[test]
    fn a_worker_that_does_not_keep_up_costs_counted_datagrams_not_memory() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let to = socket.local_addr().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (_pool_tx, pool) = crossbeam_channel::bounded(4);
        let counters = Arc::new(RecvCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (socket, counters, stop) = (socket.clone(), counters.clone(), stop.clone());
            std::thread::spawn(move || {
                receive_loop(socket, vec![tx], pool, counters, Arc::default(), stop)
            })
        };
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let request = crate::rtc::stun::binding("w00abcdef:remote");
        for _ in 0..10 {
            client.send_to(&request, to).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.datagrams.load(Ordering::Relaxed) < 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        assert_eq!(counters.datagrams.load(Ordering::Relaxed), 10);
        assert_eq!(rx.len(), 2, "the queue holds its bound");
        assert_eq!(counters.worker_full.load(Ordering::Relaxed), 8);
    }
}
