//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing) on the media
//! port number, for clients whose UDP is blocked.
//!
//! A listener thread accepts connections; each connection gets a reader
//! thread (frames -> the worker named by the first STUN request's ufrag) and
//! a writer thread fed through a bounded queue, so a slow TCP client never
//! blocks a media worker: when its queue is full, its own packets are dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use super::stun;
use super::udp::{DATAGRAM_CAPACITY, Datagram};

/// Most simultaneous ICE-TCP connections.
pub const MAX_CONNECTIONS: usize = 512;
/// Frames queued per connection before its packets are dropped.
const WRITE_QUEUE: usize = 512;

/// Sends framed packets to one TCP connection.
#[derive(Clone, Debug)]
pub struct TcpWriter(Sender<Vec<u8>>);

impl TcpWriter {
    /// Queues `packet` with its 2-byte length prefix. False when the
    /// connection is gone or its queue is full (the packet is dropped).
    pub fn send(&self, packet: &[u8]) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        let mut framed = Vec::with_capacity(packet.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(packet);
        match self.0.try_send(framed) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

pub fn listen_loop(
    listener: TcpListener,
    workers: Vec<Sender<Datagram>>,
    pool: Receiver<Box<[u8; DATAGRAM_CAPACITY]>>,
    ufrags: Arc<stun::UfragRoutes>,
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, remote)) => {
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    tracing::warn!(%remote, "too many ICE-TCP connections; refusing one");
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::Relaxed);
                let workers = workers.clone();
                let pool = pool.clone();
                let ufrags = ufrags.clone();
                let stop = stop.clone();
                let open = open.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("media-tcp".into())
                        .spawn(move || {
                            connection(stream, remote, workers, pool, &ufrags, stop);
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                if spawned.is_err() {
                    tracing::warn!("could not start an ICE-TCP connection thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::debug!(error = %e, "ice-tcp accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    workers: Vec<Sender<Datagram>>,
    pool: Receiver<Box<[u8; DATAGRAM_CAPACITY]>>,
    ufrags: &stun::UfragRoutes,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut write_half) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let (tx, rx) = bounded::<Vec<u8>>(WRITE_QUEUE);
    let writer = TcpWriter(tx);
    let write_thread = std::thread::Builder::new()
        .name("media-tcp-w".into())
        .spawn(move || {
            while let Ok(frame) = rx.recv() {
                if write_half.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = write_half.shutdown(std::net::Shutdown::Both);
        });
    if write_thread.is_err() {
        return;
    }
    let mut worker: Option<super::WorkerId> = None;
    let mut header = [0u8; 2];
    'frames: while !stop.load(Ordering::Relaxed) {
        if !read_full(&mut stream, &mut header, &stop) {
            break;
        }
        let len = usize::from(u16::from_be_bytes(header));
        let mut buf = pool
            .try_recv()
            .unwrap_or_else(|_| Box::new([0u8; DATAGRAM_CAPACITY]));
        if len > DATAGRAM_CAPACITY {
            // Not a media packet of ours: the peer speaks something else.
            break 'frames;
        }
        if !read_full(&mut stream, &mut buf[..len], &stop) {
            break;
        }
        if worker.is_none() {
            worker = stun::binding_request_ufrag(&buf[..len])
                .and_then(|u| ufrags.route(u))
                .filter(|w| w.index() < workers.len());
            if worker.is_none() {
                // The first frame must be our ICE check.
                break;
            }
        }
        let Some(w) = worker else { break };
        let d = Datagram {
            from: remote,
            len,
            buf,
            tcp: Some(writer.clone()),
        };
        if workers[w.index()].try_send(d).is_err() {
            tracing::trace!(%remote, "worker queue full; ice-tcp frame dropped");
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(writer);
}

/// Reads exactly `buf.len()` bytes; false on EOF, error or stop.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut at = 0;
    while at < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match stream.read(&mut buf[at..]) {
            Ok(0) => return false,
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose writer does not keep up costs its own packets
    /// (`send` says false, the worker counts them), never memory: the queue
    /// holds `WRITE_QUEUE` frames. Frames carry RFC 4571's length prefix; a
    /// packet too long for it is refused, as is one for a closed connection.
    #[test]
    fn a_slow_connection_drops_its_own_packets_at_the_queue_bound() {
        let (tx, rx) = bounded::<Vec<u8>>(WRITE_QUEUE);
        let writer = TcpWriter(tx);
        let sent = (0..WRITE_QUEUE + 10)
            .filter(|_| writer.send(&[1, 2, 3]))
            .count();
        assert_eq!(sent, WRITE_QUEUE);
        assert_eq!(rx.len(), WRITE_QUEUE);
        assert_eq!(rx.recv().unwrap(), vec![0, 3, 1, 2, 3]);
        assert!(
            !writer.send(&vec![0; 70_000]),
            "longer than a frame can say"
        );
        drop(rx);
        assert!(!writer.send(&[1]), "the connection is gone");
    }
}
