//! Outgoing UDP datagrams of one worker, sent in batches.
//!
//! One incoming packet fans out to every subscriber of the room, so a turn
//! of the worker loop produces many datagrams at once. They are queued here
//! and leave in one `sendmmsg(2)` per [`MAX_BATCH`] (Linux), not one
//! `sendto(2)` each. The worker flushes at the end of every turn, so
//! batching adds no waiting, only fewer system calls.

use std::net::{SocketAddr, UdpSocket};

/// Datagrams per system call (and the most queued before a flush).
pub const MAX_BATCH: usize = 64;

/// What a flush achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub failed: u64,
}

/// Datagrams waiting to be sent. The buffers are the ones str0m handed
/// over: moved in, never copied.
#[derive(Default)]
pub struct SendBatch {
    items: Vec<(SocketAddr, Vec<u8>)>,
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            items: Vec::with_capacity(MAX_BATCH),
        }
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= MAX_BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.items.push((to, datagram));
    }

    /// Sends everything queued. A datagram the kernel refuses (unreachable
    /// destination, no buffer space) is counted as failed and dropped; the
    /// rest still go.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        if self.items.is_empty() {
            return done;
        }
        send_all(socket, &self.items, &mut done);
        self.items.clear();
        done
    }
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, items: &[(SocketAddr, Vec<u8>)], done: &mut Flushed) {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use std::io::IoSlice;

    let addrs: Vec<SocketAddrAny> = items.iter().map(|(a, _)| SocketAddrAny::from(*a)).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = items.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = items
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(iovs.iter())
        .zip(controls.iter_mut())
        .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
        .collect();
    let mut at = 0;
    while at < msgs.len() {
        match rustix::net::sendmmsg(socket, &mut msgs[at..], SendFlags::empty()) {
            Ok(0) => {
                // Nothing went: treat the head as refused so we progress.
                done.failed += 1;
                at += 1;
            }
            Ok(n) => {
                for (_, d) in &items[at..at + n] {
                    done.packets += 1;
                    done.bytes += d.len() as u64;
                }
                at += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                // The error belongs to the first datagram of this call.
                tracing::trace!(dest = %items[at].0, error = %e, "send failed");
                done.failed += 1;
                at += 1;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, items: &[(SocketAddr, Vec<u8>)], done: &mut Flushed) {
    for (to, d) in items {
        if socket.send_to(d, to).is_ok() {
            done.packets += 1;
            done.bytes += d.len() as u64;
        } else {
            done.failed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    #[test]
    fn a_batch_arrives_whole_and_in_order_at_several_destinations() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (receiver(), receiver());
        let mut batch = SendBatch::new();
        for i in 0..MAX_BATCH {
            let to = if i % 2 == 0 { &a } else { &b };
            batch.push(to.local_addr().unwrap(), vec![i as u8; 100 + i]);
        }
        assert!(batch.is_full());
        let f = batch.flush(&tx);
        assert_eq!(f.packets, MAX_BATCH as u64);
        assert_eq!(f.failed, 0);
        assert_eq!(f.bytes, (0..MAX_BATCH).map(|i| 100 + i as u64).sum::<u64>());
        assert!(batch.is_empty());
        let mut buf = [0u8; 2048];
        for i in 0..MAX_BATCH {
            let to = if i % 2 == 0 { &a } else { &b };
            let (n, from) = to.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(n, 100 + i);
            assert!(buf[..n].iter().all(|&x| x == i as u8));
        }
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_go() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = receiver();
        let mut batch = SendBatch::new();
        batch.push(a.local_addr().unwrap(), vec![1; 10]);
        // Too big for UDP: EMSGSIZE for this one only.
        batch.push(a.local_addr().unwrap(), vec![2; 70_000]);
        // An IPv6 destination on an IPv4 socket: refused too.
        batch.push("[::1]:9".parse().unwrap(), vec![3; 10]);
        batch.push(a.local_addr().unwrap(), vec![4; 10]);
        let f = batch.flush(&tx);
        assert_eq!((f.packets, f.failed), (2, 2));
        let mut buf = [0u8; 64];
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[1; 10]);
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[4; 10]);
    }

    #[test]
    fn an_empty_flush_sends_nothing() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(SendBatch::default().flush(&tx), Flushed::default());
    }
}
