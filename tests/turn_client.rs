//! A TURN client for tests (`turn-client-proto`, a TURN implementation we did not write) and a bridge that carries a str0m test client's media through a TURN allocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use turn_client_proto::api::{TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::prelude::*;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::stun::attribute::ErrorCode;
use turn_client_proto::types::stun::message::Message;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

type TInstant = turn_client_proto::stun::Instant;

/// UDP, TCP or TLS to the TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// TURN over TLS (`turns:`), trusting only this certificate (PEM).
    Tls {
        ca_pem: String,
    },
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

/// A TLS client configuration that trusts only `ca_pem`'s certificates.
pub fn trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut pem = ca_pem.as_bytes();
    for cert in rustls_pemfile_certs(&mut pem) {
        roots.add(cert).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A TLS client to `server` that trusts only `ca_pem`, its handshake done.
fn tls_connect(server: SocketAddr, ca_pem: &str) -> TlsStream {
    let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
    let conn = rustls::ClientConnection::new(trusting(ca_pem), name).unwrap();
    let tcp = TcpStream::connect(server).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.sock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    s
}

/// The certificates of a PEM text.
fn rustls_pemfile_certs(pem: &mut &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

enum Proto {
    Udp(TurnClientUdp),
    Tcp(TurnClientTcp),
}

macro_rules! with {
    ($p:expr, $c:ident => $e:expr) => {
        match $p {
            Proto::Udp($c) => $e,
            Proto::Tcp($c) => $e,
        }
    };
}

/// One TURN allocation driven over a real socket.
pub struct Turn {
    conn: Conn,
    proto: Proto,
    base: Instant,
    /// Added to the client's clock (see `refresh_now`).
    skew: Duration,
    server: SocketAddr,
    local: SocketAddr,
    /// Error codes of every error response the server sent (UDP only).
    pub errors: Vec<u16>,
    pub events: Vec<String>,
    /// Relayed address once allocated.
    pub relayed: Option<SocketAddr>,
    /// Data from peers, in arrival order.
    pub received: Vec<(SocketAddr, Vec<u8>)>,
    /// The server closed the TCP/TLS connection.
    pub closed: bool,
}

impl Turn {
    fn now(&self) -> TInstant {
        TInstant::from_nanos((self.base.elapsed() + self.skew).as_nanos() as i64)
    }

    /// Asks `server` for an allocation with these credentials; returns once
    /// it is created or refused (`Err` with the client's event).
    pub fn allocate(
        server: SocketAddr,
        transport: Transport,
        local_ip: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<Turn, Box<Turn>> {
        let mut config = TurnConfig::new(TurnCredentials::new(username, password));
        // USERNAME, as browsers and coturn's clients send it: the server
        // derives each credential from its username (USERHASH would hide it).
        config.set_anonymous_username(turn_client_proto::stun::auth::Feature::Disabled);
        let (conn, local, proto) = match transport {
            Transport::Udp => {
                let s = UdpSocket::bind((local_ip, 0)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                let local = s.local_addr().unwrap();
                let p = TurnClientUdp::allocate(local, server, config);
                (Conn::Udp(s), local, Proto::Udp(p))
            }
            Transport::Tcp => {
                let s = TcpStream::connect(server).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                s.set_nodelay(true).unwrap();
                let local = s.local_addr().unwrap();
                let p = TurnClientTcp::allocate(local, server, config);
                (Conn::Tcp(s), local, Proto::Tcp(p))
            }
            Transport::Tls { ca_pem } => {
                let s = tls_connect(server, &ca_pem);
                let local = s.sock.local_addr().unwrap();
                let p = TurnClientTcp::allocate(local, server, config);
                (Conn::Tls(Box::new(s)), local, Proto::Tcp(p))
            }
        };
        let mut t = Turn {
            conn,
            proto,
            base: Instant::now(),
            skew: Duration::ZERO,
            server,
            local,
            errors: Vec::new(),
            events: Vec::new(),
            relayed: None,
            received: Vec::new(),
            closed: false,
        };
        let ok = t.run_until(|e| {
            matches!(
                e,
                TurnEvent::AllocationCreated(..) | TurnEvent::AllocationCreateFailed(..)
            )
        });
        match ok {
            Some(TurnEvent::AllocationCreated(_, addr)) => {
                t.relayed = Some(addr);
                Ok(t)
            }
            _ => Err(Box::new(t)),
        }
    }

    /// Asks for a permission to `peer`; true when the server granted it.
    pub fn permit(&mut self, peer: IpAddr) -> bool {
        let now = self.now();
        with!(&mut self.proto, p => p.create_permission(TransportType::Udp, peer, now)).unwrap();
        matches!(
            self.run_until(|e| matches!(
                e,
                TurnEvent::PermissionCreated(..) | TurnEvent::PermissionCreateFailed(..)
            )),
            Some(TurnEvent::PermissionCreated(..))
        )
    }

    /// Asks for a channel to `peer`; true when the server bound it.
    pub fn bind_channel(&mut self, peer: SocketAddr) -> bool {
        let now = self.now();
        with!(&mut self.proto, p => p.bind_channel(TransportType::Udp, peer, now)).unwrap();
        matches!(
            self.run_until(|e| matches!(
                e,
                TurnEvent::ChannelCreated(..) | TurnEvent::ChannelCreateFailed(..)
            )),
            Some(TurnEvent::ChannelCreated(..))
        )
    }

    /// Sends `data` to `peer` through the relay.
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8]) {
        let now = self.now();
        let t = with!(&mut self.proto, p => p.send_to(TransportType::Udp, peer, data, now));
        if let Ok(Some(t)) = t {
            let t = t.build();
            self.write(&t.data);
        }
        self.flush();
    }

    fn write(&mut self, data: &[u8]) {
        match &mut self.conn {
            Conn::Udp(s) => {
                let _ = s.send_to(data, self.server);
            }
            Conn::Tcp(s) => {
                let _ = s.write_all(data);
            }
            Conn::Tls(s) => {
                let _ = s.write_all(data);
                let _ = s.flush();
            }
        }
    }

    fn flush(&mut self) {
        loop {
            let now = self.now();
            let Some(t) = with!(&mut self.proto, p => p.poll_transmit(now)) else {
                break;
            };
            let data = t.data.to_vec();
            self.write(&data);
        }
    }

    /// Reads once (up to the socket timeout) and feeds the client.
    pub fn step(&mut self) {
        self.flush();
        let now = self.now();
        if let TurnPollRet::WaitUntil(_) = with!(&mut self.proto, p => p.poll(now)) {}
        self.flush();
        let mut buf = vec![0u8; 65536];
        let n = match &mut self.conn {
            Conn::Udp(s) => match s.recv_from(&mut buf) {
                Ok((n, from)) if from == self.server => n,
                _ => 0,
            },
            Conn::Tcp(s) => stream_read(s.read(&mut buf), &mut self.closed),
            Conn::Tls(s) => stream_read(s.read(&mut buf), &mut self.closed),
        };
        if n > 0 {
            let data = &buf[..n];
            if matches!(self.conn, Conn::Udp(_))
                && let Ok(m) = Message::from_bytes(data)
                && let Ok(e) = m.attribute::<ErrorCode>()
            {
                self.errors.push(e.code());
            }
            let transport = match self.conn {
                Conn::Udp(_) => TransportType::Udp,
                Conn::Tcp(_) | Conn::Tls(_) => TransportType::Tcp,
            };
            let now = self.now();
            let tr = turn_client_proto::stun::agent::Transmit::new(
                data,
                transport,
                self.server,
                self.local,
            );
            let ret = with!(&mut self.proto, p => p.recv(tr, now));
            if let TurnRecvRet::PeerData(d) = ret {
                self.received.push((d.peer, d.data().to_vec()));
            }
            loop {
                let now = self.now();
                let Some(d) = with!(&mut self.proto, p => p.poll_recv(now)) else {
                    break;
                };
                self.received.push((d.peer, d.data().to_vec()));
            }
        }
        self.flush();
    }

    fn run_until(&mut self, done: impl Fn(&TurnEvent) -> bool) -> Option<TurnEvent> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !self.closed {
            self.step();
            while let Some(e) = with!(&mut self.proto, p => p.poll_event()) {
                self.events.push(format!("{e:?}"));
                if done(&e) {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Makes the client refresh its allocation and permissions now, the way
    /// it would near their expiry: its clock jumps forward to 9 min 5 s
    /// after the start, within the minute before a default 10-minute
    /// allocation ends (and past a 5-minute permission's refresh time).
    /// Returns the error codes of the answers (empty: all refreshed).
    pub fn refresh_now(&mut self) -> Vec<u16> {
        let before = self.errors.len();
        self.skew = Duration::from_secs(545).saturating_sub(self.base.elapsed());
        for _ in 0..50 {
            self.step();
        }
        self.errors[before..].to_vec()
    }

    /// Deletes the allocation (Refresh with lifetime 0).
    pub fn delete(&mut self) {
        let now = self.now();
        let _ = with!(&mut self.proto, p => p.delete(now));
        for _ in 0..10 {
            self.step();
        }
    }
}

/// What a stream read gave: its length, 0 on a timeout; a closed (or
/// failed) connection sets `closed`.
fn stream_read(r: std::io::Result<usize>, closed: &mut bool) -> usize {
    match r {
        Ok(0) => {
            *closed = true;
            0
        }
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            0
        }
        Err(_) => {
            *closed = true;
            0
        }
    }
}

/// Carries a str0m test client's media through a TURN allocation: the
/// client sends to [`TurnBridge::addr`] (give it as `via` to
/// `rtc_client::Client::connect_via`), the bridge sends it through the
/// relay to the media address, and what comes back goes to the client.
pub struct TurnBridge {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Datagrams carried each way (to the SFU, to the client).
    pub carried: Arc<Mutex<(u64, u64)>>,
}

impl Drop for TurnBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl TurnBridge {
    /// `turn` must hold a permission (or channel) to `media`.
    pub fn start(mut turn: Turn, media: SocketAddr) -> TurnBridge {
        let local = UdpSocket::bind((turn.local.ip(), 0)).unwrap();
        local.set_nonblocking(true).unwrap();
        let addr = local.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let carried = Arc::new(Mutex::new((0, 0)));
        let (stop2, carried2) = (stop.clone(), carried.clone());
        std::thread::spawn(move || {
            let mut client: Option<SocketAddr> = None;
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                while let Ok((n, from)) = local.recv_from(&mut buf) {
                    client = Some(from);
                    turn.send_to(media, &buf[..n]);
                    carried2.lock().unwrap().0 += 1;
                }
                turn.step();
                for (peer, data) in turn.received.drain(..) {
                    if peer == media
                        && let Some(c) = client
                    {
                        let _ = local.send_to(&data, c);
                        carried2.lock().unwrap().1 += 1;
                    }
                }
            }
            turn.delete();
        });
        TurnBridge {
            addr,
            stop,
            carried,
        }
    }
}
