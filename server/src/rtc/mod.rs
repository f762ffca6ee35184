//! The media plane: one UDP port, a receive thread that routes datagrams, and
//! media worker threads that each own the peers and rooms sharded to them.
//!
//! Signaling talks to workers only through bounded channels ([`Command`]);
//! workers talk back through each participant's bounded outbound queue and an
//! bounded channel of rare [`MediaEvent`]s. Each room has a home worker (a
//! hash of the room id). By default every participant of a room lives there
//! and forwarding never crosses threads; with `shard_peers` > 0 a big room
//! spills onto further workers ([`MediaPlane::place`]), which hand each
//! other their publishers' packets and track changes over the relay mesh
//! (`worker::Relay`, one bounded RTP channel and one control channel per
//! worker).

pub mod batch;
pub mod dtls;
pub mod nodes;
pub mod notice;
pub mod relay_rooms;
pub mod sdp_scan;
pub mod seal;
pub mod srtp;
pub mod stun;
pub mod tcp;
pub mod udp;
pub mod worker;

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};
use tokio::sync::mpsc;

pub use notice::{MediaNotice, NoticeSink, PublishedMid, Source, TrackInfo, TrackKey};
pub use relay_rooms::{RelayCheck, RelayRooms};
pub use worker::{Command, NewPeer, View};

/// Counters of the whole media plane, shared by its threads (relaxed atomics).
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub peers: AtomicU64,
    pub tracks: AtomicU64,
    pub packets_out: AtomicU64,
    /// Of `packets_out`, those sent in UDP GSO sends (`batch.rs`).
    pub gso_packets_out: AtomicU64,
    /// The GSO sends that carried `gso_packets_out`.
    pub gso_sends: AtomicU64,
    pub bytes_out: AtomicU64,
    pub rtp_in: AtomicU64,
    pub rtp_bytes_in: AtomicU64,
    pub rtp_forwarded: AtomicU64,
    pub rtp_bytes_forwarded: AtomicU64,
    pub rtp_dropped: AtomicU64,
    /// Of `rtp_forwarded`, the copies the own write path wrote
    /// (`--media-write-path own`).
    pub rtp_own_written: AtomicU64,
    /// NACKed packets the own write path resent (RTX).
    pub rtx_resent: AtomicU64,
    /// Transport-wide feedback reports the own write path's estimators
    /// read.
    pub twcc_reports: AtomicU64,
    /// Packets handed to another worker holding the same room.
    pub rtp_relayed: AtomicU64,
    /// Packets not relayed because the other worker's queue was full.
    pub relay_dropped: AtomicU64,
    pub plis: AtomicU64,
    pub nacks: AtomicU64,
    pub malformed: AtomicU64,
    pub unroutable: AtomicU64,
    /// Notices not queued because a participant's outbound queue was full.
    pub signal_dropped: AtomicU64,
    /// Tracks refused because the publisher's role may not publish them.
    pub publish_refused: AtomicU64,
    /// ICE restarts a client asked for (a network change).
    pub ice_restarts: AtomicU64,
    /// Control messages between workers dropped on a full queue.
    pub ctl_dropped: AtomicU64,
    /// Events to signaling dropped on a full queue.
    pub events_dropped: AtomicU64,
}

/// Media counters of one room, written by the workers holding the room
/// (relaxed atomics; uncontended unless the room spills onto several
/// workers) and read by signaling for session statistics and by metrics.
#[derive(Debug, Default)]
pub struct RoomCounters {
    pub rtp_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub rtp_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub rtp_dropped: AtomicU64,
    pub plis: AtomicU64,
}

/// A point-in-time copy of [`RoomCounters`] (also what a node keeping
/// peers for another node's room reports of them, `rtc::nodes`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomCountersSnapshot {
    pub rtp_in: u64,
    pub bytes_in: u64,
    pub rtp_forwarded: u64,
    pub bytes_forwarded: u64,
    pub rtp_dropped: u64,
    pub plis: u64,
}

impl RoomCounters {
    pub fn snapshot(&self) -> RoomCountersSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        RoomCountersSnapshot {
            rtp_in: self.rtp_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            rtp_forwarded: self.rtp_forwarded.load(Relaxed),
            bytes_forwarded: self.bytes_forwarded.load(Relaxed),
            rtp_dropped: self.rtp_dropped.load(Relaxed),
            plis: self.plis.load(Relaxed),
        }
    }

    /// Adds what another node counted for this room's peers it keeps.
    pub fn add(&self, d: &RoomCountersSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        self.rtp_in.fetch_add(d.rtp_in, Relaxed);
        self.bytes_in.fetch_add(d.bytes_in, Relaxed);
        self.rtp_forwarded.fetch_add(d.rtp_forwarded, Relaxed);
        self.bytes_forwarded.fetch_add(d.bytes_forwarded, Relaxed);
        self.rtp_dropped.fetch_add(d.rtp_dropped, Relaxed);
        self.plis.fetch_add(d.plis, Relaxed);
    }
}

impl RoomCountersSnapshot {
    /// Whether any counter is below `earlier`'s (the counting began again).
    pub fn restarted_since(&self, earlier: &RoomCountersSnapshot) -> bool {
        self.rtp_in < earlier.rtp_in
            || self.bytes_in < earlier.bytes_in
            || self.rtp_forwarded < earlier.rtp_forwarded
            || self.bytes_forwarded < earlier.bytes_forwarded
            || self.rtp_dropped < earlier.rtp_dropped
            || self.plis < earlier.plis
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &RoomCountersSnapshot) -> RoomCountersSnapshot {
        RoomCountersSnapshot {
            rtp_in: self.rtp_in.saturating_sub(earlier.rtp_in),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            rtp_forwarded: self.rtp_forwarded.saturating_sub(earlier.rtp_forwarded),
            bytes_forwarded: self.bytes_forwarded.saturating_sub(earlier.bytes_forwarded),
            rtp_dropped: self.rtp_dropped.saturating_sub(earlier.rtp_dropped),
            plis: self.plis.saturating_sub(earlier.plis),
        }
    }
}

/// Rare events from workers to signaling.
#[derive(Debug)]
pub enum MediaEvent {
    /// The peer connection of a participant failed or closed.
    PeerFailed { participant_id: String },
}

/// Where the media plane listens and what it advertises.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Local address of the UDP socket.
    pub bind: SocketAddr,
    /// Address put in the ICE candidate (public IP for 1:1 NAT).
    pub advertise: Option<IpAddr>,
    pub workers: usize,
    /// Send-side bandwidth estimation for subscribers (`--media-bwe`).
    pub bwe: bool,
    /// UDP GSO sends (`--media-gso`).
    pub gso: bool,
    /// Subscribers' RTP written by Convene's own write path, not str0m's
    /// (`--media-write-path own`; `worker/own/`).
    pub own_write: bool,
    /// Participants of one room per worker before the room spills onto the
    /// next worker (`--media-shard-peers`; 0: a room never spills).
    pub shard_peers: usize,
    /// Media links to the other nodes of a cluster (`--node-link-addr`).
    pub node_link: Option<nodes::NodeLinkConfig>,
}

/// Handle on the running media plane.
pub struct MediaPlane {
    commands: Vec<Sender<Command>>,
    /// Gateways to other nodes: mesh members `commands.len()..`.
    gateways: Vec<Sender<nodes::gateway::GwIn>>,
    node_links: Option<Arc<nodes::NodeLinks>>,
    shard_peers: usize,
    pub local_addr: SocketAddr,
    pub candidate: SocketAddr,
    pub counters: Arc<MediaCounters>,
    pub recv_counters: Arc<udp::RecvCounters>,
    /// Built-in TURN relay addresses and their rooms (checked by the
    /// workers when a relay address first passes ICE).
    pub relay_rooms: Arc<RelayRooms>,
    /// Every worker's per-peer figures, once a second (admin console).
    pub peer_stats: Arc<worker::stats::PeerStatsBoard>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the media worker is overloaded; try again")]
    Busy,
    #[error("the media plane has stopped")]
    Stopped,
}

/// The IP to advertise when bound to an unspecified address: the address the
/// OS would route outwards from (found without sending anything).
pub(crate) fn default_route_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// A media worker's number (0-based; at most 255 workers). Also encoded in
/// the ICE ufrags a worker hands out (`w<2 hex digits>`), so a STUN
/// binding request finds its worker before any route is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WorkerId(u8);

impl WorkerId {
    /// Most workers a media plane runs.
    pub const MAX: usize = 255;

    /// The worker numbered `index`; `None` past [`WorkerId::MAX`].
    pub fn from_index(index: usize) -> Option<WorkerId> {
        u8::try_from(index)
            .ok()
            .filter(|&i| usize::from(i) < Self::MAX)
            .map(WorkerId)
    }

    /// Its position in per-worker tables.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    pub(crate) fn from_u8(n: u8) -> WorkerId {
        WorkerId(n)
    }

    pub(crate) fn as_u8(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The workers `0..count`.
pub(crate) fn all_workers(count: usize) -> impl Iterator<Item = WorkerId> + Clone {
    (0..count.min(WorkerId::MAX)).filter_map(WorkerId::from_index)
}

/// The home worker of a room among `workers`: a hash of its id.
pub(crate) fn home_worker(room_id: &str, workers: usize) -> WorkerId {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    room_id.hash(&mut h);
    let index = (h.finish() % workers.max(1) as u64) as usize;
    WorkerId::from_index(index).unwrap_or_default()
}

/// Without sharding, the home worker. With it, the home worker until it
/// holds `shard_peers` of the room, then the next worker in turn that holds
/// fewer; when every worker is full, the one holding the fewest (the home
/// worker first among equals).
fn place(home: WorkerId, shard_peers: usize, load: &[usize], workers: usize) -> WorkerId {
    let workers = workers.clamp(1, WorkerId::MAX);
    let home = WorkerId::from_index(home.index() % workers).unwrap_or_default();
    if shard_peers == 0 || workers == 1 {
        return home;
    }
    let held = |w: WorkerId| load.get(w.index()).copied().unwrap_or(0);
    let order = (0..workers).filter_map(|i| WorkerId::from_index((home.index() + i) % workers));
    if let Some(w) = order.clone().find(|&w| held(w) < shard_peers) {
        return w;
    }
    order.min_by_key(|&w| held(w)).unwrap_or(home)
}

impl MediaPlane {
    pub fn start(
        config: &MediaConfig,
        events: mpsc::Sender<MediaEvent>,
    ) -> std::io::Result<MediaPlane> {
        // ICE-TCP on the same port number, when it is free for TCP too (with
        // port 0, one free for both).
        let (socket, tcp_listener) = crate::net::bind_udp_and_tcp(config.bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let local_addr = socket.local_addr()?;
        let ip = match config.advertise {
            Some(ip) => ip,
            None if !local_addr.ip().is_unspecified() => local_addr.ip(),
            None => default_route_ip().ok_or_else(|| {
                std::io::Error::other(
                    "cannot tell which IP to advertise for media; set --rtc-ip or --public-ip",
                )
            })?,
        };
        let candidate = SocketAddr::new(ip, local_addr.port());
        let tcp_listener = match tcp_listener {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, port = local_addr.port(), "ICE-TCP not available on the media port");
                None
            }
        };
        let socket = Arc::new(socket);
        let counters = Arc::new(MediaCounters::default());
        let recv_counters = Arc::new(udp::RecvCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let relay_rooms = Arc::new(RelayRooms::default());
        let peer_stats = Arc::new(worker::stats::PeerStatsBoard::default());
        let workers = config.workers.clamp(1, WorkerId::MAX);
        let (pool_tx, pool_rx) = bounded(4096);
        let mut datagram_txs = Vec::new();
        let mut commands = Vec::new();
        let mut threads = Vec::new();
        let gateway_count = if config.node_link.is_some() {
            nodes::MAX_LINKED_NODES.min(WorkerId::MAX - workers)
        } else {
            0
        };
        let mesh = worker::Mesh::with_gateways(workers, gateway_count);
        let ufrags = Arc::new(stun::UfragRoutes::default());
        for index in all_workers(workers) {
            let (dtx, drx) = bounded(2048);
            let (ctx, crx) = bounded(1024);
            datagram_txs.push(dtx);
            commands.push(ctx);
            let setup = worker::WorkerSetup {
                index,
                bwe: config.bwe,
                gso: config.gso,
                own_write: config.own_write,
                links: mesh.links(index),
                socket: socket.clone(),
                candidate,
                tcp: tcp_listener.is_some(),
                datagrams: drx,
                commands: crx,
                pool: pool_tx.clone(),
                counters: counters.clone(),
                events: events.clone(),
                ufrags: ufrags.clone(),
                relay_rooms: relay_rooms.clone(),
                stop: stop.clone(),
                peer_stats: peer_stats.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("media-{index}"))
                    .spawn(move || worker::run(setup))?,
            );
        }
        let mut gateways = Vec::new();
        let mut node_links = None;
        if let Some(link) = &config.node_link {
            let (rtp, ctl) = mesh.worker_senders(workers);
            let plane = nodes::gateway::LocalPlane {
                commands: commands.clone(),
                rtp,
                ctl,
                counters: counters.clone(),
            };
            let mut infos = Vec::new();
            for i in 0..gateway_count {
                let Some(id) = WorkerId::from_index(workers + i) else {
                    break;
                };
                let (tx, gw_rx) = nodes::gateway::channels();
                let info = Arc::new(nodes::gateway::GatewayInfo::new(id, tx.clone()));
                let (rtp_rx, ctl_rx) = mesh.receivers(workers + i);
                let egress = nodes::gateway::Egress {
                    info: info.clone(),
                    rtp_rx,
                    ctl_rx,
                    gw_rx,
                    plane: plane.clone(),
                    stop: stop.clone(),
                };
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("node-gw-{i}"))
                        .spawn(move || nodes::gateway::run(egress))?,
                );
                gateways.push(tx);
                infos.push(info);
            }
            let (links, t) = nodes::NodeLinks::start(link, infos, stop.clone())?;
            threads.push(t);
            node_links = Some(links);
        }
        if let Some(listener) = tcp_listener {
            let workers = datagram_txs.clone();
            let pool = pool_rx.clone();
            let ufrags = ufrags.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("media-tcp-accept".into())
                    .spawn(move || tcp::listen_loop(listener, workers, pool, ufrags, stop))?,
            );
        }
        {
            let socket = socket.clone();
            let recv_counters = recv_counters.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("media-recv".into())
                    .spawn(move || {
                        udp::receive_loop(
                            socket,
                            datagram_txs,
                            pool_rx,
                            recv_counters,
                            ufrags,
                            stop,
                        )
                    })?,
            );
        }
        tracing::info!(%local_addr, %candidate, workers, "media plane listening (UDP, and TCP when available)");
        Ok(MediaPlane {
            commands,
            gateways,
            node_links,
            shard_peers: config.shard_peers,
            local_addr,
            candidate,
            counters,
            recv_counters,
            relay_rooms,
            peer_stats,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// The home worker of a room: where its first participants go.
    pub fn worker_of(&self, room_id: &str) -> WorkerId {
        home_worker(room_id, self.commands.len())
    }

    /// The media links to other nodes, when `--node-link-addr` is set.
    pub fn node_links(&self) -> Option<&Arc<nodes::NodeLinks>> {
        self.node_links.as_ref()
    }

    /// How many workers run.
    pub fn worker_count(&self) -> usize {
        self.commands.len()
    }

    /// Every worker.
    pub fn workers(&self) -> impl Iterator<Item = WorkerId> + use<> {
        all_workers(self.commands.len())
    }

    /// The worker for a room's next participant, given how many of its
    /// participants each worker holds (`load[w]`).
    pub fn place(&self, home: WorkerId, load: &[usize]) -> WorkerId {
        place(home, self.shard_peers, load, self.commands.len())
    }

    /// Sends a command to a worker, or to the gateway of another node that
    /// keeps the participant's peer (`rtc::nodes`).
    pub fn send(&self, worker: WorkerId, cmd: Command) -> Result<(), MediaError> {
        let i = worker.index();
        let sent = match i.checked_sub(self.commands.len()) {
            Some(g) if g < self.gateways.len() => self.gateways[g]
                .try_send(nodes::gateway::GwIn::Command(cmd))
                .map_err(|e| match e {
                    TrySendError::Full(_) => TrySendError::Full(()),
                    TrySendError::Disconnected(_) => TrySendError::Disconnected(()),
                }),
            _ => self.commands[i % self.commands.len()]
                .try_send(cmd)
                .map_err(|e| match e {
                    TrySendError::Full(_) => TrySendError::Full(()),
                    TrySendError::Disconnected(_) => TrySendError::Disconnected(()),
                }),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(())) => Err(MediaError::Busy),
            Err(TrySendError::Disconnected(())) => Err(MediaError::Stopped),
        }
    }

    /// Whether every worker answers within `within` and no media thread has
    /// ended: `Err` says which part is not.
    pub async fn ready(&self, within: std::time::Duration) -> Result<(), String> {
        if let Ok(threads) = self.threads.lock()
            && let Some(t) = threads.iter().find(|t| t.is_finished())
        {
            return Err(format!(
                "the media thread {} has stopped",
                t.thread().name().unwrap_or("?")
            ));
        }
        for (i, tx) in self.commands.iter().enumerate() {
            let (reply, rx) = tokio::sync::oneshot::channel();
            if tx.try_send(Command::Ping { reply }).is_err() {
                return Err(format!("media worker {i} is not taking commands"));
            }
            if !matches!(tokio::time::timeout(within, rx).await, Ok(Ok(()))) {
                return Err(format!("media worker {i} did not answer within {within:?}"));
            }
        }
        Ok(())
    }

    /// Stops every thread (each notices within 200 ms) and waits for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{WorkerId, place};

    /// `place` in worker numbers.
    fn at(home: usize, shard_peers: usize, load: &[usize], workers: usize) -> usize {
        place(
            WorkerId::from_index(home).unwrap(),
            shard_peers,
            load,
            workers,
        )
        .index()
    }

    #[test]
    fn rooms_stay_home_without_sharding() {
        assert_eq!(at(2, 0, &[0, 0, 40, 0], 4), 2);
        assert_eq!(at(1, 5, &[0, 9], 1), 0, "one worker: nowhere to spill");
    }

    #[test]
    fn a_full_home_spills_to_the_next_worker_in_turn() {
        assert_eq!(at(2, 3, &[0, 0, 2, 0], 4), 2);
        assert_eq!(at(2, 3, &[0, 0, 3, 0], 4), 3);
        assert_eq!(at(2, 3, &[0, 0, 3, 3], 4), 0);
        // A place freed at home is taken again first.
        assert_eq!(at(2, 3, &[3, 0, 2, 3], 4), 2);
    }

    /// A worker's command queue is bounded: once full, a command is refused
    /// at once with `Busy` (the join is told to retry) instead of queueing
    /// without end, and a stopped worker is `Stopped`.
    #[test]
    fn a_full_command_queue_refuses_with_busy_and_a_stopped_worker_says_so() {
        use super::{Command, MediaError, MediaPlane};
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let (tx, rx) = crossbeam_channel::bounded(3);
        let plane = MediaPlane {
            commands: vec![tx],
            gateways: Vec::new(),
            node_links: None,
            shard_peers: 0,
            local_addr: "127.0.0.1:1".parse().unwrap(),
            candidate: "127.0.0.1:1".parse().unwrap(),
            counters: Arc::default(),
            recv_counters: Arc::default(),
            relay_rooms: Arc::default(),
            peer_stats: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        };
        let ping = || Command::Ping {
            reply: tokio::sync::oneshot::channel().0,
        };
        let w = WorkerId::default();
        let sent: Vec<_> = (0..5).map(|_| plane.send(w, ping())).collect();
        assert!(sent[..3].iter().all(Result::is_ok), "{sent:?}");
        assert!(
            sent[3..].iter().all(|r| matches!(r, Err(MediaError::Busy))),
            "{sent:?}"
        );
        assert_eq!(rx.len(), 3, "the queue holds its bound, no more");
        drop(rx);
        assert!(matches!(plane.send(w, ping()), Err(MediaError::Stopped)));
    }

    #[test]
    fn when_every_worker_is_full_the_least_loaded_takes_the_peer() {
        assert_eq!(at(1, 2, &[3, 2, 4], 3), 1);
        assert_eq!(at(1, 2, &[2, 3, 4], 3), 0);
        assert_eq!(at(0, 1, &[5, 5, 5], 3), 0);
    }
}
