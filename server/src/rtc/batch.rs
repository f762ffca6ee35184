//! Outgoing UDP datagrams of one worker, sent in batches.
//!
//! One incoming packet fans out to every subscriber of the room, so a turn
//! of the worker loop produces many datagrams at once. They are queued here
//! and leave in `sendmmsg(2)` calls (Linux), not one `sendto(2)` each: the
//! worker flushes once [`MAX_BATCH`] are queued, at the start of the next
//! run to another destination ([`SendBatch::flush_before`]), and at the end
//! of every turn, so batching adds no waiting, only fewer system calls.
//!
//! Datagrams to one destination that follow each other in the queue (the
//! packets of a frame to one subscriber: the worker writes a turn's copies
//! subscriber by subscriber, `worker/copies.rs`) and have the same size (the
//! last may be shorter) leave as one UDP GSO send (`UDP_SEGMENT`): one
//! `sendmsg(2)` whose buffer the kernel cuts into the datagrams. On this
//! machine that halves the kernel's cost per datagram (`convene-load
//! --udp-floor`: 2.9 µs with `sendmmsg`, 1.3 µs in GSO sends of 9; see
//! docs/benchmarks.md). A kernel or device that refuses GSO (`EIO`) turns
//! it off for the batch's worker; the refused datagrams go one by one.

use std::net::{SocketAddr, UdpSocket};

/// A batch this long is flushed before its next datagram to another
/// destination (a run to one destination is not cut there: it can leave
/// as one GSO send).
pub const MAX_BATCH: usize = 64;

/// The most datagrams queued before a flush, even inside a run to one
/// destination (above the most one GSO send takes).
pub const MAX_QUEUED: usize = 4 * MAX_BATCH;

/// Most spare buffers a batch keeps: what one full batch gives back.
pub const MAX_SPARES: usize = MAX_QUEUED;

/// The capacity of a new buffer: the largest datagram the workers send.
const BUFFER_CAPACITY: usize = 1500;

/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
const MAX_GSO_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (under the 64 KiB of one IP packet).
const MAX_GSO_BYTES: usize = 60_000;

/// What a flush achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub failed: u64,
    /// Of `packets`, those that left in GSO sends.
    pub gso_packets: u64,
    /// The GSO sends (`gso_packets / gso_sends` is their mean length).
    pub gso_sends: u64,
}

/// Datagrams waiting to be sent. The buffers are the ones str0m handed
/// over, or spares of this batch the own write path wrote into
/// (`worker/own/`): moved in, never copied.
pub struct SendBatch {
    items: Vec<(SocketAddr, Vec<u8>)>,
    /// Buffers of sent datagrams, emptied, for the next ones to be written
    /// into (at most [`MAX_SPARES`]).
    spares: Vec<Vec<u8>>,
    /// GSO sends are tried (false after the kernel refused one with EIO).
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> SendBatch {
        SendBatch::new()
    }
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            items: Vec::with_capacity(MAX_BATCH),
            spares: Vec::new(),
            gso: cfg!(target_os = "linux"),
        }
    }

    /// A batch that uses GSO sends where it can (`gso`) or never.
    pub fn with_gso(gso: bool) -> SendBatch {
        SendBatch {
            gso: gso && cfg!(target_os = "linux"),
            ..SendBatch::new()
        }
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= MAX_BATCH
    }

    /// Whether to flush before queueing a datagram to `to`: the batch is
    /// full and `to` starts a new run (or it holds [`MAX_QUEUED`]).
    pub fn flush_before(&self, to: SocketAddr) -> bool {
        self.is_full()
            && (self.items.len() >= MAX_QUEUED || self.items.last().is_some_and(|l| l.0 != to))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.items.push((to, datagram));
    }

    /// An empty buffer to write a datagram into: a sent one's, or a new one
    /// once none is spare (the first turns of a worker).
    pub fn spare(&mut self) -> Vec<u8> {
        self.spares
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_CAPACITY))
    }

    /// Keeps a buffer for [`SendBatch::spare`] (emptied; dropped if
    /// [`MAX_SPARES`] are kept already).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spares.len() < MAX_SPARES {
            buf.clear();
            self.spares.push(buf);
        }
    }

    /// Sends everything queued. A datagram the kernel refuses (unreachable
    /// destination, no buffer space) is counted as failed and dropped; the
    /// rest still go.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        if self.items.is_empty() {
            return done;
        }
        let items = &self.items;
        // Runs of datagrams that cannot share a GSO send go out together
        // in `sendmmsg` calls; the order of the queue is kept throughout.
        let mut singles_from = 0;
        let mut i = 0;
        while i < items.len() {
            let end = if self.gso {
                gso_run_end(items, i)
            } else {
                i + 1
            };
            if end - i >= 2 {
                if singles_from < i {
                    send_all(socket, &items[singles_from..i], &mut done);
                }
                match send_gso(socket, &items[i..end], &mut done) {
                    Gso::Sent => {}
                    Gso::Refused { for_good } => {
                        if for_good {
                            tracing::info!(
                                "the kernel refused a UDP GSO send; sending datagrams one by one from now on"
                            );
                            self.gso = false;
                        }
                        send_all(socket, &items[i..end], &mut done);
                    }
                }
                singles_from = end;
            }
            i = end;
        }
        if singles_from < items.len() {
            send_all(socket, &items[singles_from..], &mut done);
        }
        for (_, buf) in self.items.drain(..) {
            if self.spares.len() >= MAX_SPARES {
                break;
            }
            let mut buf = buf;
            buf.clear();
            self.spares.push(buf);
        }
        self.items.clear();
        done
    }
}

/// Where the GSO run starting at `start` ends (exclusive): the following
/// datagrams to the same destination of the same size, of which the last
/// may be shorter, within the kernel's limits.
fn gso_run_end(items: &[(SocketAddr, Vec<u8>)], start: usize) -> usize {
    let (dest, size) = (items[start].0, items[start].1.len());
    let mut end = start + 1;
    if size == 0 || size > u16::MAX as usize {
        return end;
    }
    while end < items.len()
        && end - start < MAX_GSO_SEGMENTS
        && (end - start + 1) * size <= MAX_GSO_BYTES
    {
        let (to, d) = &items[end];
        if *to != dest || d.is_empty() || d.len() > size {
            break;
        }
        end += 1;
        if d.len() < size {
            // A shorter datagram can only be the last of a GSO send.
            break;
        }
    }
    end
}

/// How a GSO send went.
enum Gso {
    /// Sent, or failed for a reason the datagrams would meet one by one
    /// too (counted as failed).
    Sent,
    /// Refused as a GSO send: the caller sends them one by one, and stops
    /// trying GSO when `for_good`.
    Refused { for_good: bool },
}

/// Sends datagrams to one destination, all of the first one's size but
/// the last, as one `sendmsg(2)` with `UDP_SEGMENT`.
#[cfg(target_os = "linux")]
fn send_gso(socket: &UdpSocket, items: &[(SocketAddr, Vec<u8>)], done: &mut Flushed) -> Gso {
    use nix::errno::Errno;
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let mut iov = [IoSlice::new(&[]); MAX_GSO_SEGMENTS];
    for (slot, (_, d)) in iov.iter_mut().zip(items) {
        *slot = IoSlice::new(d);
    }
    let iov = &iov[..items.len().min(MAX_GSO_SEGMENTS)];
    let segment = items[0].1.len() as u16;
    let to = SockaddrStorage::from(items[0].0);
    loop {
        match sendmsg(
            socket.as_raw_fd(),
            iov,
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::empty(),
            Some(&to),
        ) {
            Ok(_) => {
                let n = iov.len() as u64;
                done.packets += n;
                done.gso_packets += n;
                done.gso_sends += 1;
                done.bytes += iov.iter().map(|s| s.len() as u64).sum::<u64>();
                return Gso::Sent;
            }
            Err(Errno::EINTR) => {}
            // EIO: the device cannot checksum GSO sends; EINVAL: this
            // send cannot be cut (e.g. a segment over the route's MTU).
            Err(Errno::EIO) => return Gso::Refused { for_good: true },
            Err(Errno::EINVAL) => return Gso::Refused { for_good: false },
            Err(e) => {
                tracing::trace!(dest = %items[0].0, error = %e, datagrams = iov.len(), "send failed");
                done.failed += iov.len() as u64;
                return Gso::Sent;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn send_gso(_: &UdpSocket, _: &[(SocketAddr, Vec<u8>)], _: &mut Flushed) -> Gso {
    Gso::Refused { for_good: true }
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

    /// Datagrams of one frame to one subscriber, then another subscriber's,
    /// then odd sizes: the GSO runs and the single sends both arrive whole,
    /// as separate datagrams, in order.
    #[test]
    fn runs_to_one_destination_leave_in_gso_sends_and_arrive_as_datagrams() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (receiver(), receiver());
        let (at, bt) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // (destination, size, fill)
        let plan: Vec<(SocketAddr, usize, u8)> = vec![
            (at, 1000, 1),
            (at, 1000, 2),
            (at, 1000, 3),
            (at, 700, 4), // shorter: ends the run
            (at, 1000, 5),
            (bt, 1000, 6),
            (bt, 1000, 7),
            (at, 1200, 8), // larger than the run's size: its own
            (at, 300, 9),
            (bt, 50, 10),
        ];
        let mut batch = SendBatch::new();
        for &(to, n, fill) in &plan {
            batch.push(to, vec![fill; n]);
        }
        let f = batch.flush(&tx);
        assert_eq!(f.packets, plan.len() as u64);
        assert_eq!(f.failed, 0);
        assert_eq!(f.bytes, plan.iter().map(|p| p.1 as u64).sum::<u64>());
        // a: 1000x3 + 700; b: 1000x2; a: 1200 + 300 (the 1200 starts a run
        // the 300 may end).
        assert_eq!(f.gso_packets, 8, "{f:?}");
        let mut buf = [0u8; 2048];
        for (sock, dest) in [(&a, at), (&b, bt)] {
            for &(_, n, fill) in plan.iter().filter(|p| p.0 == dest) {
                let (got, from) = sock.recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(got, n, "datagram {fill}");
                assert!(buf[..got].iter().all(|&x| x == fill), "datagram {fill}");
            }
        }
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_message() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = receiver();
        let mut batch = SendBatch::with_gso(false);
        for i in 0..5u8 {
            batch.push(a.local_addr().unwrap(), vec![i; 500]);
        }
        let f = batch.flush(&tx);
        assert_eq!((f.packets, f.gso_packets, f.failed), (5, 0, 0));
        let mut buf = [0u8; 2048];
        for i in 0..5u8 {
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(n, 500);
            assert_eq!(buf[0], i);
        }
    }

    #[test]
    fn a_run_is_cut_at_the_kernels_limits() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let items: Vec<(SocketAddr, Vec<u8>)> = (0..100).map(|_| (to, vec![0; 100])).collect();
        assert_eq!(gso_run_end(&items, 0), MAX_GSO_SEGMENTS);
        let big: Vec<(SocketAddr, Vec<u8>)> = (0..100).map(|_| (to, vec![0; 1200])).collect();
        assert_eq!(gso_run_end(&big, 0), MAX_GSO_BYTES / 1200);
        let empty = vec![(to, Vec::new()), (to, Vec::new())];
        assert_eq!(gso_run_end(&empty, 0), 1);
    }

    #[test]
    fn a_full_batch_is_flushed_between_runs_not_inside_one() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let mut batch = SendBatch::new();
        for _ in 0..MAX_BATCH - 1 {
            batch.push(a, vec![0; 10]);
        }
        assert!(!batch.flush_before(b), "not full yet");
        batch.push(a, vec![0; 10]);
        assert!(batch.flush_before(b), "full, and b starts a new run");
        assert!(!batch.flush_before(a), "full, but a continues the run");
        while batch.items.len() < MAX_QUEUED {
            batch.push(a, vec![0; 10]);
        }
        assert!(batch.flush_before(a), "the hard limit cuts even a run");
    }

    #[test]
    fn an_empty_flush_sends_nothing() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(SendBatch::default().flush(&tx), Flushed::default());
    }
}
