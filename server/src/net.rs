//! Socket helpers shared by the listeners that serve one port over both UDP
//! and TCP (media with ICE-TCP, TURN, the SIP bridge).

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// How many ports to try, with port 0, before giving up on one that both UDP
/// and TCP take.
const PAIR_TRIES: usize = 16;

/// Binds UDP on `listen` and TCP on the port UDP got.
///
/// With port 0 the kernel picks the UDP port, and that number may already be
/// in use for TCP (another listener, or a connection's ephemeral port): then
/// the next free UDP port is tried, up to [`PAIR_TRIES`] times. With a given
/// port there is no choice: the TCP result is what binding that port gave.
/// The UDP socket is returned either way, so a caller to whom TCP is optional
/// can go on without it. Both sockets are blocking, as `std` makes them.
pub fn bind_udp_and_tcp(listen: SocketAddr) -> io::Result<(UdpSocket, io::Result<TcpListener>)> {
    pair_with(listen, UdpSocket::bind, TcpListener::bind)
}

/// [`bind_udp_and_tcp`] with both binds given (tokio's listener; tests
/// hand it a UDP port taken for TCP).
fn pair_with<T>(
    listen: SocketAddr,
    mut bind_udp: impl FnMut(SocketAddr) -> io::Result<UdpSocket>,
    bind_tcp: impl Fn(SocketAddr) -> io::Result<T>,
) -> io::Result<(UdpSocket, io::Result<T>)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let udp = bind_udp(listen)?;
        let tcp = bind_tcp(udp.local_addr()?);
        match tcp {
            Err(e) if listen.port() == 0 && tries < PAIR_TRIES => {
                tracing::debug!(error = %e, port = udp.local_addr()?.port(), "port taken for TCP; trying another");
            }
            tcp => return Ok((udp, tcp)),
        }
    }
}

/// [`bind_udp_and_tcp`] where both are required, as tokio sockets (the
/// listener as `tokio::net::TcpListener::bind` makes it: address reuse, a
/// backlog of 1,024). Needs a tokio runtime.
pub fn bind_udp_and_tcp_tokio(
    listen: SocketAddr,
) -> io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let (udp, tcp) = pair_with(listen, UdpSocket::bind, |addr| {
        let s = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.bind(addr)?;
        s.listen(1024)
    })?;
    let tcp = tcp?;
    udp.set_nonblocking(true)?;
    Ok((tokio::net::UdpSocket::from_std(udp)?, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP listener and a UDP socket on the same port of 127.0.0.1.
    fn tcp_taken_udp_free() -> (TcpListener, UdpSocket) {
        loop {
            let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
            if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()) {
                return (tcp, udp);
            }
        }
    }

    #[test]
    fn port_zero_moves_on_when_the_port_udp_got_is_taken_for_tcp() {
        let (held, udp) = tcp_taken_udp_free();
        let mut clash = Some(udp);
        let taken = held.local_addr().unwrap();
        let mut calls = 0;
        let (udp, tcp) = pair_with(
            "127.0.0.1:0".parse().unwrap(),
            |a| {
                calls += 1;
                // The kernel's first pick: a port some TCP socket already has.
                match clash.take() {
                    Some(udp) => Ok(udp),
                    None => UdpSocket::bind(a),
                }
            },
            TcpListener::bind,
        )
        .unwrap();
        let tcp = tcp.unwrap();
        assert_eq!(calls, 2);
        assert_ne!(udp.local_addr().unwrap(), taken);
        assert_eq!(udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        drop(held);
    }

    #[tokio::test]
    async fn the_tokio_pair_shares_one_port() {
        let (udp, tcp) = bind_udp_and_tcp_tokio("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    }

    #[test]
    fn a_given_port_taken_for_tcp_is_reported_not_replaced() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        match bind_udp_and_tcp(listen) {
            // UDP on that port may itself be taken by someone else.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse),
            Ok((udp, tcp)) => {
                assert_eq!(udp.local_addr().unwrap(), listen);
                assert_eq!(tcp.unwrap_err().kind(), io::ErrorKind::AddrInUse);
            }
        }
    }
}
