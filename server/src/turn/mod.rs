//! The built-in TURN server (RFC 8656) on UDP and TCP, and the ICE servers every join receives (built-in or an external coturn sharing the secret).
//!
//! The protocol is `turn-server-proto` (sans-IO); this module owns its
//! sockets and its one task (`service.rs`), decides what may pass
//! (`policy.rs`: credentials, allocation cap, peers limited to the SFU's own
//! media address) and mints the per-join credentials (`credentials.rs`).

pub mod credentials;
pub mod policy;
mod pool;
mod service;
mod stream;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

pub use credentials::{IceServer, IceServers, Secret};
pub use service::TurnHandle;

use crate::rtc::RelayRooms;

/// The realm of the built-in server's long-term credentials.
pub const REALM: &str = "convene";

/// How the built-in TURN server runs.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Where clients reach it: UDP and TCP on this address (port 0: any free port, for tests).
    pub listen: SocketAddr,
    /// The address relay sockets bind to (and report as relayed address).
    pub relay_ip: IpAddr,
    /// Ports the relay sockets take.
    pub relay_ports: RangeInclusive<u16>,
    pub secret: Secret,
    /// The only addresses an allocation may send to (the SFU's media addresses).
    pub allowed_peers: Vec<SocketAddr>,
    /// The SFU's advertised media address and where this host reaches its
    /// socket, when the two differ (behind a 1:1 NAT, `--public-ip`): what
    /// a client relays to the first goes to the second, and what comes from
    /// the second is the first's, so relayed media never needs the network
    /// to hairpin.
    pub media_inside: Option<MediaInside>,
    pub max_allocations_per_credential: usize,
    pub max_allocations: usize,
    /// Bandwidth per allocation, both directions together, in kbit/s.
    pub max_allocation_kbps: u64,
    /// Open TCP client connections at most.
    pub max_tcp_connections: usize,
}

/// The address the relay sockets bind to: `explicit` (`--turn-relay-ip`);
/// else `rtc_ip` when it names one; else the advertised media address when
/// it is this host's (`is_local`); else, behind a 1:1 NAT where
/// `--public-ip` is on no interface, the host's outward address
/// (`outward`), or loopback when it has no route out. The relays only talk
/// to the SFU, whose socket then listens on every address.
fn relay_ip(
    explicit: Option<IpAddr>,
    rtc_ip: IpAddr,
    candidate: IpAddr,
    is_local: impl Fn(IpAddr) -> bool,
    outward: impl FnOnce() -> Option<IpAddr>,
) -> IpAddr {
    if let Some(ip) = explicit {
        return ip;
    }
    if !rtc_ip.is_unspecified() {
        return rtc_ip;
    }
    if is_local(candidate) {
        return candidate;
    }
    let loopback = if rtc_ip.is_ipv4() {
        IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    };
    outward()
        .filter(|ip| ip.is_ipv4() == rtc_ip.is_ipv4() && is_local(*ip))
        .unwrap_or(loopback)
}

/// The SFU's media socket as clients know it (`public`) and as this host
/// reaches it (`inside`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaInside {
    pub public: SocketAddr,
    pub inside: SocketAddr,
}

impl MediaInside {
    /// The pair for a media socket bound at `local` and advertised as
    /// `candidate`, with relay sockets on `relay_ip`; `None` when clients
    /// and this host reach the socket at one address. A socket bound to
    /// every address is reached on the relays' own address.
    pub fn new(candidate: SocketAddr, local: SocketAddr, relay_ip: IpAddr) -> Option<MediaInside> {
        let ip = if local.ip().is_unspecified() {
            relay_ip
        } else {
            local.ip()
        };
        let inside = SocketAddr::new(ip, local.port());
        (inside != candidate && inside.is_ipv4() == candidate.is_ipv4()).then_some(MediaInside {
            public: candidate,
            inside,
        })
    }

    /// Where a datagram a client relays to `peer` is sent.
    pub fn inward(&self, peer: SocketAddr) -> SocketAddr {
        if peer == self.public {
            self.inside
        } else {
            peer
        }
    }

    /// The address a datagram that reached a relay from `from` is the
    /// client's from.
    pub fn outward(&self, from: SocketAddr) -> SocketAddr {
        if from == self.inside {
            self.public
        } else {
            from
        }
    }
}

/// Parses `low-high` (inclusive) port ranges, e.g. `49152-65535`.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("expected LOW-HIGH, e.g. 49152-65535, got {s:?}"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{lo:?} is not a port number"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{hi:?} is not a port number"))?;
    if lo == 0 || hi < lo {
        return Err(format!("the range {lo}-{hi} is empty or starts at 0"));
    }
    Ok(lo..=hi)
}

/// What `convene serve` runs: the built-in server (unless disabled or
/// external), and the ICE servers each join receives (`None`: no TURN).
pub async fn from_args(
    args: &crate::config::ServeArgs,
    media: &crate::rtc::MediaPlane,
    tls: Option<(axum_server::tls_rustls::RustlsConfig, String)>,
) -> anyhow::Result<(Option<TurnHandle>, Option<IceServers>)> {
    use anyhow::Context as _;
    let secret = match &args.turn_secret {
        Some(s) => Secret::new(s).context("--turn-secret")?,
        None => Secret::random(),
    };
    let ttl_secs = args.turn_credential_ttl_secs;
    if !args.turn_external_urls.is_empty() {
        anyhow::ensure!(
            args.turn_secret.is_some(),
            "--turn-external-urls needs --turn-secret (the external server's static-auth-secret)"
        );
        for u in &args.turn_external_urls {
            anyhow::ensure!(
                (u.starts_with("turn:") || u.starts_with("turns:"))
                    && u.len() <= 512
                    && !u.contains(char::is_whitespace),
                "--turn-external-urls: {u:?} is not a turn: or turns: URL"
            );
        }
        let ice = IceServers {
            urls: args.turn_external_urls.clone(),
            secret,
            ttl_secs,
        };
        return Ok((None, Some(ice)));
    }
    if args.turn_disable {
        return Ok((None, None));
    }
    let relay_ip = relay_ip(
        args.turn_relay_ip,
        args.rtc_ip,
        media.candidate.ip(),
        |ip| std::net::UdpSocket::bind((ip, 0)).is_ok(),
        crate::rtc::default_route_ip,
    );
    if args.turn_relay_ip.is_none() && relay_ip != media.candidate.ip() && args.rtc_ip != relay_ip {
        tracing::info!(%relay_ip, advertised = %media.candidate.ip(),
            "TURN relays bind to this host's address (the advertised one is not on an interface; --turn-relay-ip sets it)");
    }
    std::net::UdpSocket::bind((relay_ip, 0)).with_context(|| {
        format!(
            "TURN relay address {relay_ip} is not local: set --turn-relay-ip (or --turn-disable)"
        )
    })?;
    let media_inside = MediaInside::new(media.candidate, media.local_addr, relay_ip);
    // The socket as clients know it, and as this host reaches it when that
    // differs (its own address, or the relays' when it listens on every one).
    let mut allowed_peers = vec![media.candidate];
    allowed_peers.extend(media_inside.map(|m| m.inside));
    allowed_peers.extend(args.turn_allow_peer.iter().copied());
    if let Some(m) = media_inside {
        tracing::info!(public = %m.public, inside = %m.inside,
            "TURN relays media for the advertised address to the media socket directly");
    }
    let config = TurnConfig {
        listen: SocketAddr::new(args.rtc_ip, args.turn_port),
        relay_ip,
        relay_ports: args.turn_relay_ports.clone(),
        secret: secret.clone(),
        allowed_peers,
        media_inside,
        max_allocations_per_credential: usize::try_from(args.turn_max_allocations_per_credential)
            .unwrap_or(usize::MAX),
        max_allocations: usize::try_from(args.turn_max_allocations).unwrap_or(usize::MAX),
        max_allocation_kbps: args.turn_max_allocation_kbps,
        max_tcp_connections: 4096,
    };
    let (tls_certs, tls_host) = match tls {
        Some((certs, host)) => (Some((args.turn_tls_port, certs)), Some(host)),
        None => (None, None),
    };
    let handle = start(config, media.relay_rooms.clone(), tls_certs)
        .await
        .with_context(|| {
            format!(
                "starting the TURN server on port {} and TLS port {} (--turn-port, \
                 --turn-tls-port; --turn-disable turns it off)",
                args.turn_port, args.turn_tls_port
            )
        })?;
    let host = match media.candidate.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let port = handle.udp_addr.port();
    let mut urls = vec![
        format!("turn:{host}:{port}?transport=udp"),
        format!("turn:{host}:{port}?transport=tcp"),
    ];
    // `turns:` names the certificate's host (the public URL's), which a
    // client checks the certificate against.
    if let (Some(addr), Some(name)) = (handle.tls_addr, tls_host) {
        urls.push(format!("turns:{name}:{}?transport=tcp", addr.port()));
    }
    let ice = IceServers {
        urls,
        secret,
        ttl_secs,
    };
    Ok((Some(handle), Some(ice)))
}

/// Starts the built-in TURN server.
pub async fn start(
    config: TurnConfig,
    relay_rooms: Arc<RelayRooms>,
    tls: Option<(u16, axum_server::tls_rustls::RustlsConfig)>,
) -> std::io::Result<TurnHandle> {
    service::start(config, relay_rooms, tls).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("49152-65535").unwrap(), 49152..=65535);
        assert_eq!(parse_port_range("5000-5000").unwrap(), 5000..=5000);
        for bad in ["", "5000", "0-10", "10-5", "a-b", "1-70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relays_bind_to_an_address_of_this_host() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (public, private, any) = (ip("203.0.113.7"), ip("10.0.0.5"), ip("0.0.0.0"));
        let local = |a: IpAddr| a == private || a.is_loopback();
        let route = || Some(private);
        // Named: --turn-relay-ip, then --rtc-ip.
        assert_eq!(
            relay_ip(Some(ip("10.0.0.9")), private, public, local, route),
            ip("10.0.0.9")
        );
        assert_eq!(relay_ip(None, private, public, local, route), private);
        // Every address, advertised one of this host's: that one.
        assert_eq!(relay_ip(None, any, private, local, route), private);
        // Every address, behind a 1:1 NAT: the outward address, or
        // loopback without a route out (or with one that is not local).
        assert_eq!(relay_ip(None, any, public, local, route), private);
        assert_eq!(relay_ip(None, any, public, local, || None), ip("127.0.0.1"));
        assert_eq!(
            relay_ip(None, any, public, local, || Some(public)),
            ip("127.0.0.1")
        );
        assert_eq!(
            relay_ip(None, ip("::"), ip("2001:db8::7"), local, || None),
            ip("::1")
        );
    }

    #[test]
    fn relayed_media_for_the_public_address_goes_to_the_socket_inside() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let relay_ip: IpAddr = "10.0.0.5".parse().unwrap();
        // Behind a 1:1 NAT, bound to the private address.
        let m = MediaInside::new(a("203.0.113.7:50000"), a("10.0.0.5:50000"), relay_ip);
        assert_eq!(
            m,
            Some(MediaInside {
                public: a("203.0.113.7:50000"),
                inside: a("10.0.0.5:50000")
            })
        );
        let m = m.unwrap();
        assert_eq!(m.inward(a("203.0.113.7:50000")), a("10.0.0.5:50000"));
        assert_eq!(m.outward(a("10.0.0.5:50000")), a("203.0.113.7:50000"));
        // Other peers and sources pass unchanged.
        assert_eq!(m.inward(a("203.0.113.7:50001")), a("203.0.113.7:50001"));
        assert_eq!(m.outward(a("10.0.0.9:50000")), a("10.0.0.9:50000"));
        // Bound to every address: reached on the relays' address.
        let any = MediaInside::new(a("203.0.113.7:50000"), a("0.0.0.0:50000"), relay_ip);
        assert_eq!(any.map(|m| m.inside), Some(a("10.0.0.5:50000")));
        // No NAT: one address, nothing to map.
        assert_eq!(
            MediaInside::new(a("10.0.0.5:50000"), a("10.0.0.5:50000"), relay_ip),
            None
        );
        assert_eq!(
            MediaInside::new(a("10.0.0.5:50000"), a("0.0.0.0:50000"), relay_ip),
            None
        );
    }
}
