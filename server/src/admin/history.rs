//! The server's last five minutes for the admin console: one sample a
//! second (forwarded packets/s, bitrate in and out, process CPU from
//! `/proc/self/stat`, RSS from `/proc/self/status`) in a fixed-size ring.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::rtc::MediaCounters;

/// Samples kept: five minutes at one a second.
pub const HISTORY_SAMPLES: usize = 300;
/// How often a sample is taken.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on
/// every Linux architecture Convene targets).
const USER_HZ: f64 = 100.0;

/// One second of the server.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ServerSample {
    /// Unix milliseconds.
    pub t: u64,
    /// RTP packets sent to subscribers per second.
    pub pps_out: u64,
    /// RTP payload received from publishers, bit/s.
    pub bps_in: u64,
    /// Bytes sent to subscribers, bit/s.
    pub bps_out: u64,
    /// Process CPU, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// The ring of samples.
#[derive(Debug, Default)]
pub struct ServerHistory {
    samples: Mutex<VecDeque<ServerSample>>,
}

impl ServerHistory {
    fn push(&self, s: ServerSample) {
        let mut g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= HISTORY_SAMPLES {
            g.pop_front();
        }
        g.push_back(s);
    }

    /// Every kept sample, oldest first.
    pub fn all(&self) -> Vec<ServerSample> {
        let g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().copied().collect()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<ServerSample> {
        let g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        g.back().copied()
    }
}

/// utime + stime of this process in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / USER_HZ)
}

/// Fields 14 and 15 (utime, stime) of a `stat` line; the command name
/// (field 2) may hold spaces and parentheses, so fields count from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of `/proc/self/status`, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Samples the media counters and the process every [`SAMPLE_INTERVAL`].
pub fn spawn(counters: Arc<MediaCounters>) -> Arc<ServerHistory> {
    let history = Arc::new(ServerHistory::default());
    let h = history.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let read = |c: &MediaCounters| {
            (
                c.packets_out.load(Relaxed),
                c.rtp_bytes_in.load(Relaxed),
                c.bytes_out.load(Relaxed),
            )
        };
        let mut last = (Instant::now(), read(&counters), cpu_seconds());
        loop {
            tick.tick().await;
            let now = Instant::now();
            let cur = read(&counters);
            let cpu = cpu_seconds();
            let secs = now.saturating_duration_since(last.0).as_secs_f64();
            if secs <= 0.0 {
                continue;
            }
            let per_sec = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs) as u64;
            let cpu_percent = match (last.2, cpu) {
                (Some(a), Some(b)) => ((b - a).max(0.0) / secs) * 100.0,
                _ => 0.0,
            };
            h.push(ServerSample {
                t: unix_ms(),
                pps_out: per_sec(last.1.0, cur.0),
                bps_in: per_sec(last.1.1, cur.1) * 8,
                bps_out: per_sec(last.1.2, cur.2) * 8,
                cpu_percent,
                rss_bytes: rss_bytes().unwrap_or(0),
            });
            last = (now, cur, cpu);
        }
    });
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (con ve) ne) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let status = "Name:\tconvene\nVmRSS:\t   2048 kB\nThreads:\t8\n";
        assert_eq!(parse_rss(status), Some(2048 * 1024));
        assert!(cpu_seconds().is_some());
        assert!(rss_bytes().unwrap() > 0);
    }

    #[test]
    fn ring_is_bounded() {
        let h = ServerHistory::default();
        for i in 0..(HISTORY_SAMPLES as u64 + 10) {
            h.push(ServerSample {
                t: i,
                pps_out: 0,
                bps_in: 0,
                bps_out: 0,
                cpu_percent: 0.0,
                rss_bytes: 0,
            });
        }
        assert_eq!(h.all().len(), HISTORY_SAMPLES);
        assert_eq!(h.all()[0].t, 10);
        assert_eq!(h.latest().unwrap().t, HISTORY_SAMPLES as u64 + 9);
    }
}
