//! Real system figures for status and health: CPU (sampled from /proc/stat by
//! a background task), memory (/proc/meminfo), temperature (the first
//! /sys/class/thermal zone, when present), disk (statvfs of the media
//! directory), uptime (/proc/uptime), and identity (hostname, kernel, model).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::capture::lock;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub cpu_percent: Option<f64>,
    pub memory_total_mb: u64,
    pub memory_available_mb: u64,
    pub memory_percent: f64,
    /// Degrees Celsius; None when the machine has no thermal zone.
    pub temperature: Option<f64>,
    pub disk_total_mb: u64,
    pub disk_available_mb: u64,
    pub disk_percent: f64,
    pub uptime: u64,
}

/// CPU usage from two /proc/stat samples.
pub struct CpuSampler {
    last: Mutex<Option<(u64, u64)>>,
    percent: Mutex<Option<f64>>,
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuSampler {
    pub fn new() -> Self {
        CpuSampler {
            last: Mutex::new(read_cpu()),
            percent: Mutex::new(None),
        }
    }

    /// Takes a new sample; call every second or so.
    pub fn sample(&self) {
        let Some((busy, total)) = read_cpu() else {
            return;
        };
        let mut last = lock(&self.last);
        if let Some((b0, t0)) = *last
            && total > t0
        {
            *lock(&self.percent) = Some(
                ((busy - b0.min(busy)) as f64 * 100.0 / (total - t0) as f64).clamp(0.0, 100.0),
            );
        }
        *last = Some((busy, total));
    }

    pub fn percent(&self) -> Option<f64> {
        *lock(&self.percent)
    }

    /// Samples forever (run on a tokio task).
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.sample();
        }
    }
}

/// (busy, total) jiffies from the `cpu` line of /proc/stat.
fn read_cpu() -> Option<(u64, u64)> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (total, available) in kB from /proc/meminfo text.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse::<u64>().ok())
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// The first thermal zone's temperature in °C, under `root` (normally /sys/class/thermal).
pub fn read_temperature(root: &Path) -> Option<f64> {
    let mut zones: Vec<_> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .map(|e| e.path())
        .collect();
    zones.sort();
    zones.iter().find_map(|z| {
        let milli: f64 = std::fs::read_to_string(z.join("temp"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some((milli / 100.0).round() / 10.0)
    })
}

/// (total, available) bytes of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let mut p = path.to_path_buf();
    // The directory may not exist yet: measure its nearest existing parent.
    while !p.exists() {
        if !p.pop() {
            return None;
        }
    }
    let s = nix::sys::statvfs::statvfs(&p).ok()?;
    let frag = s.fragment_size() as u64;
    Some((s.blocks() as u64 * frag, s.blocks_available() as u64 * frag))
}

pub fn uptime() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map(|f| f as u64)
        .unwrap_or(0)
}

pub fn figures(cpu: &CpuSampler, media_dir: &Path) -> Figures {
    let (mt, ma) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or((0, 0));
    let (dt, da) = disk_space(media_dir).unwrap_or((0, 0));
    let pct = |used: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            (used as f64 * 1000.0 / total as f64).round() / 10.0
        }
    };
    Figures {
        cpu_percent: cpu.percent().map(|p| (p * 10.0).round() / 10.0),
        memory_total_mb: mt / 1024,
        memory_available_mb: ma / 1024,
        memory_percent: pct(mt.saturating_sub(ma), mt),
        temperature: read_temperature(Path::new("/sys/class/thermal")),
        disk_total_mb: dt / (1024 * 1024),
        disk_available_mb: da / (1024 * 1024),
        disk_percent: pct(dt.saturating_sub(da), dt),
        uptime: uptime(),
    }
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| {
            s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string()
        })
        .filter(|s| !s.is_empty())
}

/// Identity of the machine for `GET /api/v1/device`.
pub fn hardware() -> serde_json::Value {
    let model = read_trim("/proc/device-tree/model")
        .or_else(|| read_trim("/sys/devices/virtual/dmi/id/product_name"))
        .unwrap_or_else(|| "unknown".into());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let hostname = read_trim("/proc/sys/kernel/hostname").unwrap_or_default();
    let kernel = read_trim("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .map(|m| m.0 / 1024)
        .unwrap_or(0);
    let (ip, mac) = network();
    serde_json::json!({
        "hardware": {"model": model, "memory": format!("{}MB", mem_mb)},
        "software": {"version": env!("CARGO_PKG_VERSION"), "os": os, "kernel": kernel},
        "network": {"hostname": hostname, "ip_address": ip, "mac_address": mac},
    })
}

/// The primary IP (the one routed to a documentation address; nothing is sent)
/// and the MAC of the first non-loopback interface.
pub fn network() -> (Option<String>, Option<String>) {
    let ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .ok()
        .map(|a| a.ip().to_string());
    let mac = std::fs::read_dir("/sys/class/net").ok().and_then(|d| {
        let mut names: Vec<_> = d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.into_iter().filter(|n| n != "lo").find_map(|n| {
            read_trim(&format!("/sys/class/net/{n}/address")).filter(|m| m != "00:00:00:00:00:00")
        })
    });
    (ip, mac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_proc_fixtures() {
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_proc_stat(stat), Some((200, 1000)));
        let mem = "MemTotal:        8000000 kB\nMemFree: 1 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(parse_meminfo(mem), Some((8_000_000, 2_000_000)));
        assert_eq!(parse_meminfo("nothing"), None);
    }

    #[test]
    fn thermal_zone_fixture() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_temperature(d.path()), None);
        std::fs::create_dir(d.path().join("thermal_zone0")).unwrap();
        std::fs::write(d.path().join("thermal_zone0/temp"), "54321\n").unwrap();
        assert_eq!(read_temperature(d.path()), Some(54.3));
    }

    #[test]
    fn real_figures_are_plausible() {
        let cpu = CpuSampler::new();
        std::thread::sleep(Duration::from_millis(50));
        cpu.sample();
        let f = figures(&cpu, Path::new("/tmp/does-not-exist/x"));
        assert!(f.memory_total_mb > 0);
        assert!(f.memory_percent > 0.0 && f.memory_percent < 100.0);
        assert!(
            f.disk_total_mb > 0,
            "measured on the nearest existing parent"
        );
        assert!(f.uptime > 0);
    }
}
