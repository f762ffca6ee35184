//! Per-IP limits that apply before anyone is authenticated: failed
//! credential attempts (REST developer keys and room tokens on `/rtc`) and
//! WebSockets that have not joined yet. A caller over a limit is answered
//! 429 with `Retry-After` before any credential is looked at.
//!
//! Both tables are bounded: at most [`MAX_TRACKED_IPS`] addresses each;
//! when full, stale entries go first and an address that cannot be tracked
//! is treated as over the limit (an attacker with that many addresses gains
//! nothing from filling the table).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

/// Failed credential attempts one address may make per window.
pub const AUTH_FAILURES_PER_WINDOW: u32 = 20;
/// The failure window, in seconds.
pub const WINDOW_SECS: u64 = 60;
/// WebSockets one address may hold open before joining. A socket normally
/// joins within a round trip; this many at once still lets a whole office
/// behind one NAT address join at the start of a meeting, and stops one
/// address from holding thousands of idle sockets for 15 s each.
pub const PRE_JOIN_SOCKETS_PER_IP: u32 = 256;
/// Addresses each table tracks at most.
pub const MAX_TRACKED_IPS: usize = 100_000;

/// Per-IP failure windows and pre-join socket counts.
#[derive(Debug, Default)]
pub struct IpLimits {
    /// Address -> (window start, failures in it).
    failures: Mutex<HashMap<IpAddr, (u64, u32)>>,
    /// Address -> sockets open and not joined.
    pre_join: Mutex<HashMap<IpAddr, u32>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl IpLimits {
    /// `Some(seconds to wait)` when `ip` has failed too often lately.
    pub fn blocked(&self, ip: IpAddr, now_secs: u64) -> Option<u64> {
        let failures = lock(&self.failures);
        let (start, n) = *failures.get(&ip)?;
        let end = start + WINDOW_SECS;
        (n >= AUTH_FAILURES_PER_WINDOW && now_secs < end).then(|| (end - now_secs).max(1))
    }

    /// Counts one failed credential attempt of `ip`.
    pub fn failed(&self, ip: IpAddr, now_secs: u64) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED_IPS && !failures.contains_key(&ip) {
            failures.retain(|_, (start, _)| now_secs < *start + WINDOW_SECS);
            if failures.len() >= MAX_TRACKED_IPS {
                return;
            }
        }
        let entry = failures.entry(ip).or_insert((now_secs, 0));
        if now_secs >= entry.0 + WINDOW_SECS {
            *entry = (now_secs, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Takes a pre-join socket place for `ip`; `None` when it holds too
    /// many already. The place is given back when the guard is dropped (or
    /// earlier, with [`PreJoin::release`], once the socket has joined).
    pub fn open_socket(self: &Arc<Self>, ip: IpAddr) -> Option<PreJoin> {
        let mut open = lock(&self.pre_join);
        if open.len() >= MAX_TRACKED_IPS && !open.contains_key(&ip) {
            return None;
        }
        let n = open.entry(ip).or_insert(0);
        if *n >= PRE_JOIN_SOCKETS_PER_IP {
            return None;
        }
        *n += 1;
        Some(PreJoin {
            limits: Some(self.clone()),
            ip,
        })
    }

    fn close_socket(&self, ip: IpAddr) {
        let mut open = lock(&self.pre_join);
        if let Some(n) = open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// A pre-join socket's place in [`IpLimits`].
#[derive(Debug)]
pub struct PreJoin {
    limits: Option<Arc<IpLimits>>,
    ip: IpAddr,
}

impl PreJoin {
    /// The socket joined (or left): its place is free again.
    pub fn release(&mut self) {
        if let Some(l) = self.limits.take() {
            l.close_socket(self.ip);
        }
    }
}

impl Drop for PreJoin {
    fn drop(&mut self) {
        self.release();
    }
}

/// The caller's address: the peer of the TCP connection, or with
/// `trust_proxy` (Convene behind one reverse proxy) the last address of
/// `X-Forwarded-For`, which that proxy appended.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_proxy: bool,
) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    peer.map(|p| p.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn failures_block_an_address_for_the_rest_of_its_window() {
        let l = IpLimits::default();
        for _ in 0..AUTH_FAILURES_PER_WINDOW - 1 {
            l.failed(ip(1), 100);
        }
        assert_eq!(l.blocked(ip(1), 100), None);
        l.failed(ip(1), 110);
        assert_eq!(l.blocked(ip(1), 110), Some(50));
        assert_eq!(
            l.blocked(ip(2), 110),
            None,
            "other addresses are not affected"
        );
        assert_eq!(l.blocked(ip(1), 160), None, "the window has passed");
        l.failed(ip(1), 160);
        assert_eq!(l.blocked(ip(1), 161), None, "a new window starts afresh");
    }

    #[test]
    fn pre_join_sockets_are_capped_per_address_and_given_back() {
        let l = Arc::new(IpLimits::default());
        let mut held: Vec<PreJoin> = (0..PRE_JOIN_SOCKETS_PER_IP)
            .map(|_| l.open_socket(ip(1)).unwrap())
            .collect();
        assert!(l.open_socket(ip(1)).is_none());
        assert!(l.open_socket(ip(2)).is_some(), "per address");
        held[0].release();
        let again = l.open_socket(ip(1));
        assert!(again.is_some());
        drop(held);
        drop(again);
        assert!(lock(&l.pre_join).is_empty(), "every place given back");
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9".parse().unwrap(),
        );
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 443)));
        assert_eq!(
            client_ip(&h, peer, true),
            Some(IpAddr::from([203, 0, 113, 9]))
        );
        assert_eq!(
            client_ip(&h, peer, false),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
        assert_eq!(client_ip(&HeaderMap::new(), None, true), None);
    }
}
