//! ICE over TCP for the appliance's peer connection: an active TCP
//! candidate (RFC 6544) beside the UDP one, so that an appliance on a
//! network that blocks UDP (hotel, corporate guest Wi-Fi) still reaches the
//! server's passive ICE-TCP candidate on the media port. Each remote
//! address gets one connection, opened when str0m first sends to it, with
//! RFC 4571 framing (a 16-bit length before every packet). Queues are
//! bounded both ways: media is dropped, never buffered without limit, when
//! a connection cannot keep up.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Frames waiting to be written to one connection, at most.
const OUT_QUEUE: usize = 256;
/// Frames read from all connections, waiting for the peer loop, at most.
const IN_QUEUE: usize = 512;
/// Remote addresses connected to at most (the server offers one or two).
const MAX_CONNECTIONS: usize = 8;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The TCP side of one peer connection.
pub struct TcpLinks {
    incoming_tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    incoming: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    out: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Frames dropped because a queue was full (or too many connections).
    pub dropped: u64,
}

impl Default for TcpLinks {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpLinks {
    pub fn new() -> TcpLinks {
        let (incoming_tx, incoming) = mpsc::channel(IN_QUEUE);
        TcpLinks {
            incoming_tx,
            incoming,
            out: HashMap::new(),
            dropped: 0,
        }
    }

    /// Sends one packet to `dest`, connecting first if needed. Never waits:
    /// a full queue drops the packet.
    pub fn send(&mut self, dest: SocketAddr, packet: &[u8]) {
        if packet.len() > usize::from(u16::MAX) {
            self.dropped += 1;
            return;
        }
        self.out.retain(|_, tx| !tx.is_closed());
        if !self.out.contains_key(&dest) && self.out.len() >= MAX_CONNECTIONS {
            self.dropped += 1;
            return;
        }
        let tx = self
            .out
            .entry(dest)
            .or_insert_with(|| connect(dest, self.incoming_tx.clone()));
        if tx.try_send(packet.to_vec()).is_err() {
            self.dropped += 1;
        }
    }

    /// The next packet read from any connection, with its sender.
    pub async fn recv(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.incoming.recv().await
    }
}

/// Opens the connection to `dest` in the background: frames sent on the
/// returned channel are written, frames read go to `incoming`. The channel
/// closes when the connection fails or ends.
fn connect(
    dest: SocketAddr,
    incoming: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    tokio::spawn(async move {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(dest)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%dest, error = %e, "ICE-TCP connect");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%dest, "ICE-TCP connect timed out");
                    return;
                }
            };
        let _ = stream.set_nodelay(true);
        let (mut r, mut w) = stream.into_split();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let len = (frame.len() as u16).to_be_bytes();
                if w.write_all(&len).await.is_err() || w.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let mut len = [0u8; 2];
        loop {
            if r.read_exact(&mut len).await.is_err() {
                break;
            }
            let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if r.read_exact(&mut frame).await.is_err() {
                break;
            }
            // A full queue drops the frame; a closed one ends the connection.
            match incoming.try_send((dest, frame)) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        writer.abort();
    });
    tx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn packets_are_framed_both_ways_and_a_dead_address_only_drops() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // Reads two framed packets, answers one.
            let mut got = Vec::new();
            for _ in 0..2 {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.unwrap();
                let mut f = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut f).await.unwrap();
                got.push(f);
            }
            s.write_all(&[0, 3, b'a', b'c', b'k']).await.unwrap();
            got
        });
        let mut links = TcpLinks::new();
        links.send(addr, b"hello");
        links.send(addr, b"");
        let (from, frame) = links.recv().await.unwrap();
        assert_eq!((from, frame.as_slice()), (addr, &b"ack"[..]));
        assert_eq!(server.await.unwrap(), vec![b"hello".to_vec(), Vec::new()]);
        // Nobody listens here: sending does not block or fail the caller.
        let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..1000 {
            links.send(dead, b"x");
        }
        assert!(links.dropped <= 1000);
    }
}
