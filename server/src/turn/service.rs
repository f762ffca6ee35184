//! The TURN server's sockets and its one task: the UDP and TCP listeners, the relay sockets, and the loop that feeds `turn-server-proto` and sends what it returns (TCP and TLS connections: `stream.rs`).
//!
//! One task owns both protocol instances (UDP and TCP listeners), the
//! policy and every relay socket's send side; each relay socket and each
//! TCP connection has a reader task that hands complete datagrams or
//! frames to it over one bounded channel (full: the datagram is dropped
//! and counted). Answers leave through `try_send_to`/bounded writer
//! queues, so a slow client loses its own packets and never stalls the
//! loop. Sends are written into one reused buffer; datagrams and frames
//! travel between the tasks in buffers of a bounded pool (`pool.rs`), so
//! the steady relay path allocates nothing.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use turn_server_proto::api::{
    DelayedMessageOrChannelSend, SocketAllocateError, TcpConnectError, Transmit, TurnServerApi,
    TurnServerPollRet,
};
use turn_server_proto::server::TurnServer;
use turn_server_proto::types::prelude::DelayedTransmitBuild;
use turn_server_proto::types::transmit::TransmitBuild;
use turn_server_proto::types::{AddressFamily, Instant as TurnInstant, TransportType};

use super::TurnConfig;
use super::credentials::unix_now;
use super::policy::{Client, Policy, Refusal, Verdict};
use super::pool::BufPool;
use crate::rtc::RelayRooms;

/// Datagrams and frames waiting for the TURN task.
const INBOUND_QUEUE: usize = 4096;
/// Largest STUN message or ChannelData frame (the length fields are 16 bits).
pub(super) const MAX_FRAME: usize = 4 + 65535 + 3;
/// The protocol state is rebuilt when idle and it knows this many credentials
/// (`turn-server-proto` cannot forget a user).
const MAX_KNOWN_CREDENTIALS: usize = 10_000;

/// A running TURN server.
#[derive(Debug)]
pub struct TurnHandle {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// TURN over TLS, when a certificate is configured.
    pub tls_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TurnHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) enum Inbound {
    /// A datagram from a peer to one of our relay sockets (keyed by its address).
    Peer {
        relay: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    TcpOpen {
        client: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
        reader: AbortHandle,
    },
    /// One complete STUN message or ChannelData frame from a TCP client.
    TcpFrame {
        client: SocketAddr,
        data: Vec<u8>,
    },
    TcpClosed {
        client: SocketAddr,
    },
}

struct Relay {
    socket: Arc<UdpSocket>,
    reader: AbortHandle,
    bucket: Bucket,
}

/// A token bucket over bytes (both directions of one allocation).
struct Bucket {
    rate: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(kbps: u64, now: std::time::Instant) -> Bucket {
        let rate = kbps as f64 * 125.0;
        Bucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, bytes: usize, now: std::time::Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        // At most one second of burst.
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

struct State {
    config: TurnConfig,
    base: std::time::Instant,
    udp: Arc<UdpSocket>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    udp_server: TurnServer,
    tcp_server: TurnServer,
    policy: Policy,
    relays: HashMap<SocketAddr, Relay>,
    tcp_clients: HashMap<SocketAddr, (mpsc::Sender<Vec<u8>>, AbortHandle)>,
    relay_rooms: Arc<RelayRooms>,
    inbound: mpsc::Sender<Inbound>,
    /// Buffers of the datagrams and frames passed between tasks.
    pool: Arc<BufPool>,
    /// The reused buffer every send is written into.
    scratch: Vec<u8>,
    next_port: u16,
    /// Relays closed because their credential expired while the protocol
    /// still counts the allocation (it has no call to delete one): their
    /// ports are not reused until it reports the allocation gone.
    expired: HashSet<SocketAddr>,
    /// When the credentials of open relays were last checked for expiry.
    last_expiry_check: std::time::Instant,
}

/// How often open relays are checked against their credential's expiry.
const EXPIRY_CHECK: Duration = Duration::from_secs(1);

pub(super) fn refused(r: Refusal) {
    metrics::counter!("convene_turn_refusals_total", "reason" => r.label()).increment(1);
}

pub async fn start(
    config: TurnConfig,
    relay_rooms: Arc<RelayRooms>,
    tls: Option<(u16, RustlsConfig)>,
) -> std::io::Result<TurnHandle> {
    let (udp, tcp) = crate::net::bind_udp_and_tcp_tokio(config.listen)?;
    let tls = match tls {
        Some((port, certs)) => {
            let l = TcpListener::bind(SocketAddr::new(config.listen.ip(), port)).await?;
            Some((l, certs))
        }
        None => None,
    };
    let udp_addr = udp.local_addr()?;
    let tcp_addr = tcp.local_addr()?;
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    // Enough idle buffers for a full inbound queue and a few writer queues.
    let pool = Arc::new(BufPool::new(
        INBOUND_QUEUE + 4 * super::stream::TCP_WRITE_QUEUE,
    ));
    let policy = Policy::new(
        config.secret.clone(),
        super::REALM.to_string(),
        config.allowed_peers.clone(),
        config.max_allocations_per_credential,
        config.max_allocations,
    );
    let span = config.relay_ports.end() - config.relay_ports.start();
    let next_port =
        config.relay_ports.start() + (rand::random::<u16>() % span.saturating_add(1).max(1));
    let udp = Arc::new(udp);
    let state = State {
        udp_server: new_server(TransportType::Udp, udp_addr),
        tcp_server: new_server(TransportType::Tcp, tcp_addr),
        config,
        base: std::time::Instant::now(),
        udp: udp.clone(),
        udp_addr,
        tcp_addr,
        policy,
        relays: HashMap::new(),
        tcp_clients: HashMap::new(),
        relay_rooms,
        inbound: tx.clone(),
        pool: pool.clone(),
        scratch: vec![0; MAX_FRAME + 64],
        next_port,
        expired: HashSet::new(),
        last_expiry_check: std::time::Instant::now(),
    };
    let max_tcp = state.config.max_tcp_connections.max(1);
    // One budget of open connections for TCP and TLS together.
    let open = Arc::new(tokio::sync::Semaphore::new(max_tcp));
    tokio::spawn(super::stream::accept_loop(
        tcp,
        tx.clone(),
        open.clone(),
        None,
        pool.clone(),
    ));
    let tls_addr = match tls {
        Some((listener, certs)) => {
            let addr = listener.local_addr()?;
            tokio::spawn(super::stream::accept_loop(
                listener,
                tx,
                open,
                Some(certs),
                pool,
            ));
            Some(addr)
        }
        None => None,
    };
    let task = tokio::spawn(state.run(rx));
    tracing::info!(%udp_addr, %tcp_addr, ?tls_addr, "TURN server listening (UDP, TCP, TLS when configured)");
    Ok(TurnHandle {
        udp_addr,
        tcp_addr,
        tls_addr,
        task,
    })
}

fn new_server(transport: TransportType, addr: SocketAddr) -> TurnServer {
    TurnServer::new(transport, addr, super::REALM.to_string())
}

async fn relay_read_loop(
    socket: Arc<UdpSocket>,
    relay: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    pool: Arc<BufPool>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => {
                // e.g. an ICMP error reported on the socket: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let sent = inbound.try_send(Inbound::Peer {
            relay,
            from,
            data: pool.copy_of(&buf[..n]),
        });
        if let Err(e) = sent {
            if let Inbound::Peer { data, .. } = e.into_inner() {
                pool.give(data);
            }
            metrics::counter!("convene_turn_dropped_total").increment(1);
        }
    }
}

enum Wake {
    Udp(std::io::Result<(usize, SocketAddr)>),
    Inbound(Option<Inbound>),
    Timer,
}

impl State {
    fn now(&self) -> TurnInstant {
        TurnInstant::from_nanos(i64::try_from(self.base.elapsed().as_nanos()).unwrap_or(i64::MAX))
    }

    fn to_tokio(&self, t: TurnInstant) -> tokio::time::Instant {
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(0);
        tokio::time::Instant::from_std(self.base + Duration::from_nanos(nanos))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Inbound>) {
        let mut buf = vec![0u8; 65536];
        let mut wake = tokio::time::Instant::now();
        loop {
            let udp = self.udp.clone();
            let ev = tokio::select! {
                r = udp.recv_from(&mut buf) => Wake::Udp(r),
                m = rx.recv() => Wake::Inbound(m),
                _ = tokio::time::sleep_until(wake) => Wake::Timer,
            };
            match ev {
                Wake::Udp(Ok((n, from))) => {
                    let client = (TransportType::Udp, self.udp_addr, from);
                    self.client_input(client, &buf[..n]);
                }
                Wake::Udp(Err(_)) | Wake::Timer => {}
                Wake::Inbound(None) => return,
                Wake::Inbound(Some(m)) => self.inbound(m),
            }
            wake = self.drive();
        }
    }

    fn inbound(&mut self, m: Inbound) {
        match m {
            Inbound::Peer { relay, from, data } => {
                self.peer_input(relay, from, &data);
                self.pool.give(data);
            }
            Inbound::TcpOpen {
                client,
                writer,
                reader,
            } => {
                self.tcp_clients.insert(client, (writer, reader));
            }
            Inbound::TcpFrame { client, data } => {
                let c = (TransportType::Tcp, self.tcp_addr, client);
                self.client_input(c, &data);
                self.pool.give(data);
            }
            Inbound::TcpClosed { client } => {
                self.tcp_clients.remove(&client);
            }
        }
    }

    fn client_input(&mut self, client: Client, data: &[u8]) {
        match self.policy.inspect(data, client, unix_now()) {
            Verdict::Reply(bytes, why) => {
                refused(why);
                if !bytes.is_empty() {
                    self.send_to_client(client, &bytes);
                }
            }
            Verdict::Pass {
                add_user,
                refused: why,
            } => {
                if let Some(why) = why {
                    refused(why);
                }
                if let Some((user, pass)) = add_user {
                    self.udp_server.add_user(user.clone(), pass.clone());
                    self.tcp_server.add_user(user, pass);
                }
                let now = self.now();
                let (transport, listen, from) = client;
                let server = match transport {
                    TransportType::Udp => &mut self.udp_server,
                    TransportType::Tcp => &mut self.tcp_server,
                };
                let out = server.recv(Transmit::new(data, transport, from, listen), now);
                if let Some(t) = out {
                    self.send_built(t);
                }
            }
        }
    }

    fn peer_input(&mut self, relay: SocketAddr, from: SocketAddr, data: &[u8]) {
        // The SFU's socket reached inside this host is, to the client, the
        // address it was advertised at (its permission is for that one).
        let from = self.config.media_inside.map_or(from, |m| m.outward(from));
        // Only the SFU may answer through a relay (the permission check of
        // the protocol would drop others too; this also keeps them out of
        // the bandwidth count).
        if !self.policy.peer_allowed(from) {
            return;
        }
        let Some(r) = self.relays.get_mut(&relay) else {
            return;
        };
        if !r.bucket.take(data.len(), std::time::Instant::now()) {
            refused(Refusal::Bandwidth);
            return;
        }
        metrics::counter!("convene_turn_relayed_bytes_total", "direction" => "to_client")
            .increment(data.len() as u64);
        let now = self.now();
        let t = Transmit::new(data, TransportType::Udp, from, relay);
        // The allocation belongs to one of the two listeners.
        let out = match self.udp_server.recv(t, now) {
            Some(o) => Some(o),
            None => self
                .tcp_server
                .recv(Transmit::new(data, TransportType::Udp, from, relay), now),
        };
        if let Some(t) = out {
            self.send_built(t);
        }
    }

    fn send_built<T: AsRef<[u8]> + std::fmt::Debug>(
        &mut self,
        t: TransmitBuild<DelayedMessageOrChannelSend<T>>,
    ) {
        // turn-types 0.7.3 writes a DATA indication as a SEND indication
        // in `write_into` (its `build` is right), so indications are built
        // into a fresh buffer; ChannelData, the path clients use once a
        // channel is bound, is written into the reused one.
        if matches!(t.data, DelayedMessageOrChannelSend::Message(_)) {
            let b = t.build();
            self.send(b.transport, b.from, b.to, &b.data);
            return;
        }
        let len = t.data.len();
        if len > self.scratch.len() {
            self.scratch.resize(len, 0);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let w = t.write_into(&mut scratch[..len]);
        let (transport, from, to, n) = (w.transport, w.from, w.to, w.data.len());
        self.send(transport, from, to, &scratch[..n]);
        self.scratch = scratch;
    }

    fn send(&mut self, transport: TransportType, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        if from == self.udp_addr && transport == TransportType::Udp {
            let _ = self.udp.try_send_to(data, to);
        } else if from == self.tcp_addr && transport == TransportType::Tcp {
            self.send_to_client((TransportType::Tcp, self.tcp_addr, to), data);
        } else if let Some(r) = self.relays.get_mut(&from) {
            // To the SFU's socket directly, not through its public address
            // (which behind a 1:1 NAT only works where the network hairpins).
            let to = self.config.media_inside.map_or(to, |m| m.inward(to));
            if !self.policy.peer_allowed(to) {
                refused(Refusal::ForbiddenPeer);
                return;
            }
            if !r.bucket.take(data.len(), std::time::Instant::now()) {
                refused(Refusal::Bandwidth);
                return;
            }
            metrics::counter!("convene_turn_relayed_bytes_total", "direction" => "to_peer")
                .increment(data.len() as u64);
            let _ = r.socket.try_send_to(data, to);
        }
    }

    fn send_to_client(&mut self, client: Client, data: &[u8]) {
        let (transport, _, to) = client;
        match transport {
            TransportType::Udp => {
                let _ = self.udp.try_send_to(data, to);
            }
            TransportType::Tcp => {
                let mut frame = self.pool.copy_of(data);
                // RFC 8656 §12.5: over TCP a ChannelData message is padded to
                // a multiple of four bytes (turn-types does not pad it).
                if data.first().is_some_and(|b| b & 0xC0 == 0x40) {
                    frame.resize(data.len().div_ceil(4) * 4, 0);
                }
                match self.tcp_clients.get(&to) {
                    Some((w, _)) => {
                        if let Err(e) = w.try_send(frame) {
                            self.pool.give(e.into_inner());
                            metrics::counter!("convene_turn_dropped_total").increment(1);
                        }
                    }
                    None => self.pool.give(frame),
                }
            }
        }
    }

    /// Runs both protocol instances until they wait; returns when to wake.
    fn drive(&mut self) -> tokio::time::Instant {
        let mut wake = tokio::time::Instant::now() + Duration::from_secs(1);
        for transport in [TransportType::Udp, TransportType::Tcp] {
            loop {
                let now = self.now();
                let server = match transport {
                    TransportType::Udp => &mut self.udp_server,
                    TransportType::Tcp => &mut self.tcp_server,
                };
                match server.poll(now) {
                    TurnServerPollRet::WaitUntil(t) => {
                        wake = wake.min(self.to_tokio(t));
                        break;
                    }
                    TurnServerPollRet::AllocateSocket {
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                    } => {
                        let client = (transport, listen_addr, client_addr);
                        let result = self.open_relay(client, allocation_transport, family);
                        let now = self.now();
                        let server = match transport {
                            TransportType::Udp => &mut self.udp_server,
                            TransportType::Tcp => &mut self.tcp_server,
                        };
                        server.allocated_socket(
                            transport,
                            listen_addr,
                            client_addr,
                            allocation_transport,
                            family,
                            result,
                            now,
                        );
                    }
                    TurnServerPollRet::TcpConnect {
                        relayed_addr,
                        peer_addr,
                        listen_addr,
                        client_addr,
                    } => {
                        // TCP allocations (RFC 6062) are not offered.
                        refused(Refusal::ForbiddenPeer);
                        server.tcp_connected(
                            relayed_addr,
                            peer_addr,
                            listen_addr,
                            client_addr,
                            Err(TcpConnectError::Forbidden),
                            now,
                        );
                    }
                    TurnServerPollRet::TcpClose { remote_addr, .. } => {
                        if let Some((_, reader)) = self.tcp_clients.remove(&remote_addr) {
                            reader.abort();
                        }
                    }
                    TurnServerPollRet::SocketClose { listen_addr, .. } => {
                        self.expired.remove(&listen_addr);
                        self.close_relay(listen_addr);
                    }
                }
            }
            loop {
                let now = self.now();
                let server = match transport {
                    TransportType::Udp => &mut self.udp_server,
                    TransportType::Tcp => &mut self.tcp_server,
                };
                let Some(t) = server.poll_transmit(now) else {
                    break;
                };
                self.send(t.transport, t.from, t.to, &t.data);
            }
        }
        self.close_expired_relays();
        if self.relays.is_empty() && self.policy.known_credentials() > MAX_KNOWN_CREDENTIALS {
            // No allocation to lose: start over with no users.
            self.udp_server = new_server(TransportType::Udp, self.udp_addr);
            self.tcp_server = new_server(TransportType::Tcp, self.tcp_addr);
            self.policy.forget_credentials();
            self.expired.clear();
        }
        metrics::gauge!("convene_turn_allocations").set(self.relays.len() as f64);
        wake
    }

    /// Closes the relays whose credential has expired (checked once a
    /// second): an allocation never outlives its credential, whatever
    /// lifetime its last Refresh was granted.
    fn close_expired_relays(&mut self) {
        let now = std::time::Instant::now();
        if now.saturating_duration_since(self.last_expiry_check) < EXPIRY_CHECK {
            return;
        }
        self.last_expiry_check = now;
        let unix = unix_now();
        if self.policy.next_relay_expiry().is_none_or(|e| e > unix) {
            return;
        }
        for relay in self.policy.expired_relays(unix) {
            refused(Refusal::Expired);
            self.expired.insert(relay);
            self.close_relay(relay);
            tracing::debug!(%relay, "TURN allocation closed: its credential expired");
        }
    }

    fn open_relay(
        &mut self,
        client: Client,
        allocation_transport: TransportType,
        family: AddressFamily,
    ) -> Result<SocketAddr, SocketAllocateError> {
        let refuse = |policy: &mut Policy, e| {
            policy.relay_failed(client);
            refused(Refusal::Capacity);
            Err(e)
        };
        if allocation_transport != TransportType::Udp {
            return refuse(&mut self.policy, SocketAllocateError::InsufficientCapacity);
        }
        let ip = self.config.relay_ip;
        if (family == AddressFamily::IPV4) != ip.is_ipv4() {
            return refuse(
                &mut self.policy,
                SocketAllocateError::AddressFamilyNotSupported,
            );
        }
        let Some(room) = self.policy.relay_wanted(client) else {
            return refuse(&mut self.policy, SocketAllocateError::InsufficientCapacity);
        };
        let Some(socket) = self.bind_relay() else {
            return refuse(&mut self.policy, SocketAllocateError::InsufficientCapacity);
        };
        let Ok(addr) = socket.local_addr() else {
            return refuse(&mut self.policy, SocketAllocateError::InsufficientCapacity);
        };
        let socket = Arc::new(socket);
        let reader = tokio::spawn(relay_read_loop(
            socket.clone(),
            addr,
            self.inbound.clone(),
            self.pool.clone(),
        ));
        self.relays.insert(
            addr,
            Relay {
                socket,
                reader: reader.abort_handle(),
                bucket: Bucket::new(self.config.max_allocation_kbps, std::time::Instant::now()),
            },
        );
        self.relay_rooms.insert(addr, room);
        self.policy.relay_opened(client, addr);
        tracing::debug!(relay = %addr, client = %client.2, "TURN allocation opened");
        Ok(addr)
    }

    /// A UDP socket on the next free port of the relay range.
    fn bind_relay(&mut self) -> Option<UdpSocket> {
        let (lo, hi) = (
            *self.config.relay_ports.start(),
            *self.config.relay_ports.end(),
        );
        let tries = usize::from(hi - lo) + 1;
        for _ in 0..tries.min(512) {
            let port = self.next_port;
            self.next_port = if port >= hi { lo } else { port + 1 };
            let addr = SocketAddr::new(self.config.relay_ip, port);
            if self.expired.contains(&addr) {
                continue;
            }
            if let Ok(s) = std::net::UdpSocket::bind(addr)
                && s.set_nonblocking(true).is_ok()
                && let Ok(s) = UdpSocket::from_std(s)
            {
                return Some(s);
            }
        }
        None
    }

    fn close_relay(&mut self, addr: SocketAddr) {
        if let Some(r) = self.relays.remove(&addr) {
            r.reader.abort();
            self.relay_rooms.remove(addr);
            self.policy.relay_closed(addr);
            tracing::debug!(relay = %addr, "TURN allocation closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_a_second_of_bytes() {
        let t0 = std::time::Instant::now();
        let mut b = Bucket::new(8, t0); // 1000 bytes/s
        assert!(b.take(600, t0));
        assert!(!b.take(600, t0));
        assert!(b.take(600, t0 + Duration::from_millis(300)));
    }
}
