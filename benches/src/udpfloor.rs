//! What the kernel alone costs per forwarded datagram on this machine: the
//! floor under any SFU that sends through UDP sockets.
//!
//! A sender thread (pinned where the SFU runs) sends 1200-byte datagrams
//! round-robin to many receiving sockets (pinned where the generator runs),
//! as fast as it can: with one `sendto(2)` per datagram; with `sendmmsg(2)`
//! batches of 64 (what Convene's worker does); with UDP GSO, one
//! `sendmsg(2)` carrying a delta frame's 9 datagrams to one socket
//! (`UDP_SEGMENT`; the kernel cuts them apart); and with GSO sends of a
//! keyframe's 43, the cheapest a keyframe's copies to one subscriber could
//! leave (what bounds S1's p99, `docs/benchmarks-janus-notes.md`). Its CPU
//! time per datagram is the kernel's send path; on loopback it also carries
//! the receiving side's IP/UDP processing up to the socket queue (softirq
//! on the sending CPU), as the SFU's does in the S1 runs. The last case
//! sends a keyframe's 43 again to receivers that take a GSO send whole
//! (`UDP_GRO`), as the generator's subscribers do: the kernel then does not
//! cut it into datagrams on the sending CPU. Nothing is encrypted and
//! nothing parsed: 1 / (CPU-seconds per datagram) is the most datagrams per
//! second one core could ever send this way.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::stats;

/// What to measure.
#[derive(Debug, Clone)]
pub struct FloorCfg {
    pub local_ip: IpAddr,
    /// Receiving sockets (the subscribers).
    pub destinations: usize,
    /// Datagram size, bytes.
    pub size: usize,
    /// Length of each case, seconds.
    pub secs: f64,
    pub sender_cpu: Option<usize>,
    pub receiver_cpu: Option<usize>,
}

/// One case: datagrams per system call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FloorCase {
    pub batch: usize,
    /// The batch is one GSO send to one destination.
    pub gso: bool,
    /// The receivers take a GSO send whole (`UDP_GRO`).
    #[serde(default)]
    pub gro: bool,
    pub sent: u64,
    pub received: u64,
    pub secs: f64,
    pub sender_cpu_secs: f64,
    pub receiver_cpu_secs: f64,
    /// Sender CPU per datagram, µs.
    pub send_us_per_datagram: f64,
    /// 1e6 / send_us_per_datagram: the most datagrams one core could send.
    pub max_pps_per_core: f64,
}

fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            eprintln!("udp floor: cannot pin to CPU {cpu}: {e}");
        }
    }
}

/// Runs the cases and returns them as JSON (`{"cases": [...], ...}`).
pub fn run(cfg: &FloorCfg) -> Result<Value> {
    let mut cases = Vec::new();
    for (batch, gso, gro) in [
        (1usize, false, false),
        (64, false, false),
        (GSO_SEGMENTS, true, false),
        (KEYFRAME_SEGMENTS, true, false),
        (KEYFRAME_SEGMENTS, true, true),
    ] {
        let c = case(cfg, batch, gso, gro)?;
        eprintln!(
            "udp floor: batch {:>2}{}: {:.0} datagrams/s sent, {:.2} µs sender CPU each \
             (at most {:.0}/s per core), {:.1} % received",
            c.batch,
            match (c.gso, c.gro) {
                (true, true) => " (GSO, receivers GRO)",
                (true, false) => " (GSO)",
                _ => "",
            },
            c.sent as f64 / c.secs,
            c.send_us_per_datagram,
            c.max_pps_per_core,
            100.0 * c.received as f64 / c.sent.max(1) as f64
        );
        cases.push(c);
    }
    Ok(json!({
        "destinations": cfg.destinations,
        "size": cfg.size,
        "secs": cfg.secs,
        "sender_cpu": cfg.sender_cpu,
        "receiver_cpu": cfg.receiver_cpu,
        "cases": cases,
    }))
}

/// Datagrams in one GSO send: a delta frame of a 2.5 Mbit/s camera.
const GSO_SEGMENTS: usize = 9;

/// Datagrams in one GSO send: a keyframe of that camera (51,600 bytes of
/// 1200-byte datagrams, under the kernel's 64 KiB a send).
const KEYFRAME_SEGMENTS: usize = 43;

fn case(cfg: &FloorCfg, batch: usize, gso: bool, gro: bool) -> Result<FloorCase> {
    let mut receivers = Vec::with_capacity(cfg.destinations);
    for _ in 0..cfg.destinations {
        let s = UdpSocket::bind(SocketAddr::new(cfg.local_ip, 0)).context("binding a receiver")?;
        s.set_nonblocking(true)?;
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&s, 1 << 20);
        if gro {
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::UdpGroSegment, &true)
                .context("UDP_GRO on a receiver")?;
        }
        receivers.push(s);
    }
    let dests: Vec<SocketAddr> = receivers
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<std::io::Result<_>>()?;
    let sender = UdpSocket::bind(SocketAddr::new(cfg.local_ip, 0)).context("binding the sender")?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));

    let size = cfg.size;
    let rx = {
        let stop = stop.clone();
        let received = received.clone();
        let cpu = cfg.receiver_cpu;
        std::thread::spawn(move || -> f64 {
            pin(cpu);
            let c0 = stats::thread_cpu_secs();
            let mut buf = vec![0u8; 65_536];
            let mut n = 0u64;
            // Polls every socket in turn; a datagram the receiver is too
            // slow for is dropped by the kernel at the socket queue (after
            // the sender's CPU has paid for it), which the figures show as
            // "received" below 100 %.
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for s in &receivers {
                    while let Some(got) = recv_counted(s, &mut buf, size) {
                        n += got;
                        idle = false;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            received.store(n, Ordering::Relaxed);
            stats::thread_cpu_secs() - c0
        })
    };

    let secs = cfg.secs;
    let cpu = cfg.sender_cpu;
    let tx = std::thread::spawn(move || -> (u64, f64, f64) {
        pin(cpu);
        let payload = vec![0x5au8; size];
        let c0 = stats::thread_cpu_secs();
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        let mut next = 0usize;
        while Instant::now() < until {
            sent += if gso {
                send_gso(&sender, &dests, &mut next, &payload, batch)
            } else {
                send_round(&sender, &dests, &mut next, &payload, batch)
            };
        }
        (
            sent,
            stats::thread_cpu_secs() - c0,
            t0.elapsed().as_secs_f64(),
        )
    });
    let (sent, sender_cpu_secs, secs) =
        tx.join().map_err(|_| anyhow::anyhow!("sender panicked"))?;
    // Let the receiver take what is still queued, then stop it.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let receiver_cpu_secs = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let send_us = sender_cpu_secs * 1e6 / sent.max(1) as f64;
    Ok(FloorCase {
        batch,
        gso,
        gro,
        sent,
        received: received.load(Ordering::Relaxed),
        secs,
        sender_cpu_secs,
        receiver_cpu_secs,
        send_us_per_datagram: send_us,
        max_pps_per_core: if send_us > 0.0 { 1e6 / send_us } else { 0.0 },
    })
}

/// Reads what one receive brings and says how many datagrams of `size`
/// bytes that was (more than one when a GSO send came whole). None when the
/// socket has nothing more.
fn recv_counted(socket: &UdpSocket, buf: &mut [u8], size: usize) -> Option<u64> {
    let n = socket.recv(buf).ok()?;
    Some(n.div_ceil(size.max(1)).max(1) as u64)
}

/// Sends `batch` datagrams (one system call per datagram or one for all),
/// to the next destinations in turn. Returns how many the kernel took.
fn send_round(
    socket: &UdpSocket,
    dests: &[SocketAddr],
    next: &mut usize,
    payload: &[u8],
    batch: usize,
) -> u64 {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use std::io::IoSlice;
    if batch == 1 {
        let to = dests[*next % dests.len()];
        *next += 1;
        return u64::from(socket.send_to(payload, to).is_ok());
    }
    let addrs: Vec<SocketAddrAny> = (0..batch)
        .map(|i| SocketAddrAny::from(dests[(*next + i) % dests.len()]))
        .collect();
    *next += batch;
    let iov = [IoSlice::new(payload)];
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
        (0..batch).map(|_| SendAncillaryBuffer::default()).collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(controls.iter_mut())
        .map(|(a, c)| MMsgHdr::new_with_addr(a, &iov, c))
        .collect();
    let mut at = 0;
    let mut ok = 0u64;
    while at < msgs.len() {
        match rustix::net::sendmmsg(socket, &mut msgs[at..], SendFlags::empty()) {
            Ok(0) | Err(_) => at += 1,
            Ok(n) => {
                ok += n as u64;
                at += n;
            }
        }
    }
    ok
}

/// Sends `segments` datagrams to the next destination in one `sendmsg(2)`
/// with `UDP_SEGMENT`. Returns how many the kernel took.
fn send_gso(
    socket: &UdpSocket,
    dests: &[SocketAddr],
    next: &mut usize,
    payload: &[u8],
    segments: usize,
) -> u64 {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let to = SockaddrStorage::from(dests[*next % dests.len()]);
    *next += 1;
    let iov: Vec<IoSlice<'_>> = (0..segments).map(|_| IoSlice::new(payload)).collect();
    let size = payload.len() as u16;
    match sendmsg(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::UdpGsoSegments(&size)],
        MsgFlags::empty(),
        Some(&to),
    ) {
        Ok(_) => segments as u64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_floor_sends_and_receives_and_measures_cpu() {
        let v = run(&FloorCfg {
            local_ip: "127.0.0.1".parse().unwrap(),
            destinations: 8,
            size: 1200,
            secs: 0.3,
            sender_cpu: None,
            receiver_cpu: None,
        })
        .unwrap();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        assert_eq!(cases[4]["gro"], true);
        for c in cases {
            assert!(c["sent"].as_u64().unwrap() > 100, "{c}");
            assert!(c["received"].as_u64().unwrap() > 0, "{c}");
            // A GSO send taken whole is counted as its datagrams.
            assert!(c["received"].as_u64() <= c["sent"].as_u64(), "{c}");
            assert!(c["send_us_per_datagram"].as_f64().unwrap() > 0.0, "{c}");
        }
    }
}
