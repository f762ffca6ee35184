//! The per-room, per-address limit on wrong room passwords: after
//! `MAX_FAILURES` wrong passwords within `WINDOW`, every password join of
//! that room from that address (even with the right password) is refused
//! with `PASSWORD_RATE_LIMITED` until the window passes. The map holds at
//! most `MAX_ENTRIES` windows (expired ones are dropped first, then the
//! oldest), so guessing cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords allowed per room and address within `WINDOW`.
pub const MAX_FAILURES: u32 = 5;
/// How long a window of wrong passwords lasts from its first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most (room, address) windows tracked at once.
pub const MAX_ENTRIES: usize = 10_000;

type Key = (String, Option<IpAddr>);

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Wrong-password windows by room id and client address.
#[derive(Default)]
pub struct PasswordLimiter {
    windows: Mutex<HashMap<Key, Window>>,
}

impl PasswordLimiter {
    /// `Err(seconds)` while the room and address are limited.
    pub fn check(&self, room_id: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let key = (room_id.to_string(), ip);
        match windows.get(&key).copied() {
            Some(w) if now.duration_since(w.started) >= WINDOW => {
                windows.remove(&key);
                Ok(())
            }
            Some(w) if w.failures >= MAX_FAILURES => {
                let left = WINDOW.saturating_sub(now.duration_since(w.started));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts one wrong password.
    pub fn failed(&self, room_id: &str, ip: Option<IpAddr>, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let key = (room_id.to_string(), ip);
        if !windows.contains_key(&key) && windows.len() >= MAX_ENTRIES {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if windows.len() >= MAX_ENTRIES
                && let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone())
            {
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= WINDOW {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures += 1;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_limit_until_the_window_passes() {
        let l = PasswordLimiter::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.check("r", ip, t0).is_ok());
            l.failed("r", ip, t0);
        }
        assert_eq!(l.check("r", ip, t0), Err(60));
        // Another room, another address: not limited.
        assert!(l.check("other", ip, t0).is_ok());
        assert!(l.check("r", Some(IpAddr::from([10, 0, 0, 2])), t0).is_ok());
        assert!(l.check("r", ip, t0 + WINDOW).is_ok());
    }

    #[test]
    fn bounded() {
        let l = PasswordLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            l.failed(
                &format!("room{i}"),
                None,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(l.len(), MAX_ENTRIES);
    }
}
