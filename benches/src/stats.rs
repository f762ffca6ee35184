//! Percentiles, CPU time from /proc, and the machine description.

use std::sync::OnceLock;

/// The value at percentile `p` (0..=100) of `v` (sorted in place);
/// `None` for an empty sample.
pub fn percentile<T: Copy + Ord>(v: &mut [T], p: f64) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v.get(rank.min(v.len() - 1)).copied()
}

/// Clock ticks per second of /proc's CPU times.
pub fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime, in seconds, of a /proc `stat` file (a process or a thread).
pub fn cpu_secs_of(stat_path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    // The command name may hold spaces; fields restart after its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat are at 11 and 12 after the name and state.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// CPU seconds of the calling thread.
pub fn thread_cpu_secs() -> f64 {
    cpu_secs_of("/proc/thread-self/stat").unwrap_or(0.0)
}

/// CPU seconds of this whole process.
pub fn process_cpu_secs() -> f64 {
    cpu_secs_of("/proc/self/stat").unwrap_or(0.0)
}

/// CPU seconds of another process.
pub fn pid_cpu_secs(pid: u32) -> Option<f64> {
    cpu_secs_of(&format!("/proc/{pid}/stat"))
}

/// Proportional set size of a process, KiB (`Pss:` of /proc/PID/smaps_rollup).
pub fn pid_pss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Least-squares slope and intercept of `y` over `x`; `None` with fewer
/// than two distinct `x`.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// CPU model and logical CPU count from /proc/cpuinfo, and the kernel.
pub fn machine() -> serde_json::Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let mhz = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .unwrap_or(0);
    serde_json::json!({
        "cpu_model": model, "logical_cpus": cpus, "cpu_mhz": mhz,
        "kernel": kernel, "mem_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v = vec![5u32, 1, 4, 2, 3];
        assert_eq!(percentile(&mut v, 50.0), Some(3));
        assert_eq!(percentile(&mut v, 100.0), Some(5));
        assert_eq!(percentile(&mut v, 0.0), Some(1));
        assert_eq!(percentile::<u32>(&mut [], 50.0), None);
    }

    #[test]
    fn fits_a_line() {
        let fit = linear_fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!(fit.is_some_and(|(a, b)| (a - 2.0).abs() < 1e-9 && (b - 1.0).abs() < 1e-9));
        assert!(linear_fit(&[(1.0, 1.0)]).is_none());
        assert!(pid_pss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn reads_own_cpu() {
        assert!(process_cpu_secs() >= 0.0);
        assert!(pid_cpu_secs(std::process::id()).is_some());
        assert!(clk_tck() > 0.0);
    }
}
