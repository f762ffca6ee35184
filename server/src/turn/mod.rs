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
    pub max_allocations_per_credential: usize,
    pub max_allocations: usize,
    /// Bandwidth per allocation, both directions together, in kbit/s.
    pub max_allocation_kbps: u64,
    /// Open TCP client connections at most.
    pub max_tcp_connections: usize,
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
    let relay_ip = match args.turn_relay_ip {
        Some(ip) => ip,
        None if !args.rtc_ip.is_unspecified() => args.rtc_ip,
        None => media.candidate.ip(),
    };
    std::net::UdpSocket::bind((relay_ip, 0)).with_context(|| {
        format!(
            "TURN relay address {relay_ip} is not local: set --turn-relay-ip (or --turn-disable)"
        )
    })?;
    let mut allowed_peers = vec![media.candidate];
    if !media.local_addr.ip().is_unspecified() && media.local_addr != media.candidate {
        allowed_peers.push(media.local_addr);
    }
    allowed_peers.extend(args.turn_allow_peer.iter().copied());
    let config = TurnConfig {
        listen: SocketAddr::new(args.rtc_ip, args.turn_port),
        relay_ip,
        relay_ports: args.turn_relay_ports.clone(),
        secret: secret.clone(),
        allowed_peers,
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
}
