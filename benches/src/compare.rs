//! The side-by-side report, Convene vs Janus, from the runs that
//! `benches/compare-janus.sh` wrote with `--json-out` (files
//! `{sfu}-{srtp}[-{n}].json` in one directory). Every figure is computed
//! here from those runs; none is typed in.
//!
//! Writes `benchmarks.json`, `benchmarks.md` and `benchmarks.png` into the
//! report directory.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::stats::linear_fit;

/// Fixed loads (forwarded packets per second) of the CPU comparison.
pub const FIXED_PPS: [f64; 3] = [25_000.0, 50_000.0, 100_000.0];
/// Shares of each SFU's own capacity of the CPU comparison.
pub const CAPACITY_SHARES: [f64; 3] = [0.25, 0.50, 0.75];
/// The passes: the SRTP profile the generator negotiated.
pub const PASSES: [(&str, &str); 2] = [("aes128gcm", ""), ("aes128cm", "cm.")];
const PHASES: [&str; 11] = [
    "ws_open",
    "joined",
    "sdp_in",
    "sdp_done",
    "first_check",
    "first_reply",
    "ice_connected",
    "dtls_done",
    "first_rtp",
    "first_keyframe",
    "first_keyframe_read",
];

/// One S1 step as the comparison uses it.
#[derive(Debug, Clone)]
pub struct Point {
    pub subscribers: f64,
    pub rx_pps: f64,
    pub server_cpu: f64,
    pub loss: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    /// The generator's own share of p99 (absent from runs before it was
    /// measured).
    pub floor_p99: Option<f64>,
    pub pss_kib: Option<f64>,
    pub valid: bool,
    pub degraded: bool,
}

pub fn points(run: &Value) -> Vec<Point> {
    run["scenarios"]["s1"]["steps"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| Point {
                    subscribers: s["subscribers"].as_f64().unwrap_or(0.0),
                    rx_pps: s["rx_pps"].as_f64().unwrap_or(0.0),
                    server_cpu: s["server_cpu"].as_f64().unwrap_or(f64::NAN),
                    loss: s["loss_ratio"].as_f64().unwrap_or(0.0),
                    p50: s["latency_p50_us"].as_f64(),
                    p99: s["latency_p99_us"].as_f64(),
                    p999: s["latency_p999_us"].as_f64(),
                    floor_p99: s["generator_floor_p99_us"].as_f64(),
                    pss_kib: s["server_pss_kib"].as_f64(),
                    valid: s["valid"] == true,
                    degraded: s["degraded"] == true,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// CPU-seconds per million forwarded packets of a step.
fn cpu_per_mpkt(p: &Point) -> Option<f64> {
    (p.rx_pps > 0.0 && p.server_cpu.is_finite()).then(|| p.server_cpu / p.rx_pps * 1e6)
}

/// CPU-seconds per million packets at `pps`, interpolated linearly between
/// the valid steps around it; `None` outside the measured range.
pub fn cpu_at(points: &[Point], pps: f64) -> Option<f64> {
    let mut v: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.valid)
        .filter_map(|p| Some((p.rx_pps, cpu_per_mpkt(p)?)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in v.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if pps >= x0 && pps <= x1 && x1 > x0 {
            return Some(y0 + (y1 - y0) * (pps - x0) / (x1 - x0));
        }
    }
    // Within 5 % of a single measured point counts as that point.
    v.iter()
        .find(|(x, _)| (x - pps).abs() <= 0.05 * pps)
        .map(|p| p.1)
}

fn num(x: Option<f64>) -> Value {
    x.filter(|v| v.is_finite())
        .map_or(Value::Null, |v| json!(v))
}

/// The figures of one run, keys without the `{sfu}.` prefix.
pub fn figures(run: &Value, reference_subs: Option<f64>) -> Map<String, Value> {
    let pts = points(run);
    let s1 = &run["scenarios"]["s1"];
    let mut m = Map::new();
    let cap_subs = s1["capacity_subscribers"].as_f64();
    let cap_pps = s1["capacity_forwarded_pps"].as_f64();
    m.insert("capacity_subscribers".into(), num(cap_subs));
    // Subscriber streams: each subscriber receives audio + video.
    m.insert("capacity_streams".into(), num(cap_subs.map(|s| 2.0 * s)));
    m.insert("capacity_forwarded_pps".into(), num(cap_pps));
    // The same search on loss alone (latency ignored): what the SFU can
    // carry at all, when the latency limit already fails at low load.
    let by_loss = pts
        .iter()
        .take_while(|p| p.valid && p.loss <= crate::MAX_LOSS)
        .last();
    m.insert(
        "capacity_loss_only_subscribers".into(),
        num(by_loss.map(|p| p.subscribers)),
    );
    m.insert(
        "capacity_loss_only_forwarded_pps".into(),
        num(by_loss.map(|p| p.rx_pps)),
    );
    // Whether the search ended on the generator (its core) rather than the SFU.
    m.insert(
        "s1_ended_on_generator".into(),
        json!(pts.iter().any(|p| !p.valid)),
    );
    // Packets per CPU-second at the busiest step without loss (valid, loss
    // <= 0.1 %; latency not considered): the SFU's efficiency near its
    // throughput limit. Falls back to the busiest valid step.
    let lossless = pts
        .iter()
        .filter(|p| p.valid && p.loss <= crate::MAX_LOSS)
        .max_by(|a, b| a.rx_pps.total_cmp(&b.rx_pps))
        .or_else(|| {
            pts.iter()
                .filter(|p| p.valid)
                .max_by(|a, b| a.rx_pps.total_cmp(&b.rx_pps))
        });
    if let Some(p) = lossless {
        m.insert(
            "forwarded_pps_per_core".into(),
            num(cpu_per_mpkt(p).map(|c| 1e6 / c)),
        );
        m.insert(
            "forwarded_pps_per_core_at_subscribers".into(),
            json!(p.subscribers),
        );
    }
    let peak = pts
        .iter()
        .filter(|p| p.valid)
        .max_by(|a, b| a.rx_pps.total_cmp(&b.rx_pps));
    m.insert("peak_forwarded_pps".into(), num(peak.map(|p| p.rx_pps)));
    m.insert("peak_server_cpu".into(), num(peak.map(|p| p.server_cpu)));
    for pps in FIXED_PPS {
        m.insert(
            format!("cpu_s_per_mpkt_at_{}k_pps", pps as u64 / 1000),
            num(cpu_at(&pts, pps)),
        );
    }
    let loss_cap_pps = by_loss.map(|p| p.rx_pps);
    for share in CAPACITY_SHARES {
        let pct = (share * 100.0) as u64;
        m.insert(
            format!("cpu_s_per_mpkt_at_{pct}pct_capacity"),
            num(cap_pps.and_then(|c| cpu_at(&pts, c * share))),
        );
        m.insert(
            format!("cpu_s_per_mpkt_at_{pct}pct_loss_only_capacity"),
            num(loss_cap_pps.and_then(|c| cpu_at(&pts, c * share))),
        );
    }
    // Latency at the reference load (the same subscriber count for both SFUs).
    if let Some(r) = reference_subs
        && let Some(p) = pts.iter().find(|p| p.subscribers == r)
    {
        m.insert("latency_at_subscribers".into(), json!(r));
        m.insert("latency_p50_us".into(), num(p.p50));
        m.insert("latency_p99_us".into(), num(p.p99));
        m.insert("latency_p999_us".into(), num(p.p999));
        m.insert("generator_floor_p99_us".into(), num(p.floor_p99));
        m.insert("loss_ratio".into(), json!(p.loss));
    }
    let pss: Vec<(f64, f64)> = pts
        .iter()
        .filter_map(|p| Some((p.subscribers + 1.0, p.pss_kib?)))
        .collect();
    m.insert(
        "pss_per_peer_kib".into(),
        num(linear_fit(&pss).map(|(slope, _)| slope)),
    );
    m.insert("pss_points".into(), json!(pss.len()));
    let ph = &run["scenarios"]["s4"]["phases"];
    if ph.is_object() {
        m.insert("join_p50_ms".into(), ph["first_keyframe"]["p50_ms"].clone());
        m.insert("join_p99_ms".into(), ph["first_keyframe"]["p99_ms"].clone());
        for phase in PHASES {
            m.insert(format!("join_{phase}_p50_ms"), ph[phase]["p50_ms"].clone());
            m.insert(format!("join_{phase}_p99_ms"), ph[phase]["p99_ms"].clone());
        }
        m.insert(
            "join_all_ready".into(),
            run["scenarios"]["s4"]["all_ready"].clone(),
        );
    }
    m.insert("srtp_negotiated".into(), run["srtp"]["negotiated"].clone());
    m
}

/// The keys whose Convene/Janus ratio is reported.
fn ratio_keys(c: &Map<String, Value>) -> Vec<String> {
    c.iter()
        .filter(|(k, v)| {
            v.is_number()
                && !k.ends_with("_at_subscribers")
                && *k != "pss_points"
                && *k != "loss_ratio"
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn load_runs(dir: &Path) -> Result<Vec<(String, Value)>> {
    let mut runs = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
                .with_context(|| format!("parsing {}", p.display()))?;
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            // `udp-floor.json` (convene-load --udp-floor) is not an SFU run.
            if v.get("sfu").is_some() {
                runs.push((name, v));
            }
        }
    }
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(runs)
}

/// The run of `sfu` in `pass`: the first (`{sfu}-{pass}.json`); repeats
/// (`-2`, ...) are listed in the report as such.
fn pick<'a>(runs: &'a [(String, Value)], sfu: &str, pass: &str) -> Option<&'a Value> {
    runs.iter()
        .find(|(n, v)| v["sfu"] == sfu && v["srtp"]["requested"] == pass && !n.contains("-r"))
        .or_else(|| {
            runs.iter()
                .find(|(_, v)| v["sfu"] == sfu && v["srtp"]["requested"] == pass)
        })
        .map(|(_, v)| v)
}

/// The largest subscriber count where both runs have a valid window
/// without loss (<= 0.1 %): the same load, and both SFUs still carrying it.
fn reference(c: &[Point], j: &[Point]) -> Option<f64> {
    let ok = |p: &Point| p.valid && p.loss <= crate::MAX_LOSS;
    c.iter()
        .filter(|p| ok(p))
        .map(|p| p.subscribers)
        .filter(|s| j.iter().any(|q| ok(q) && q.subscribers == *s))
        .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))))
}

pub fn write(runs_dir: &Path, out: &Path, command: &str, script: Option<&str>) -> Result<()> {
    let runs = load_runs(runs_dir)?;
    if runs.is_empty() {
        bail!("no runs (*.json) in {}", runs_dir.display());
    }
    let mut top = Map::new();
    let mut passes = Vec::new();
    for (pass, prefix) in PASSES {
        let (Some(c), Some(j)) = (pick(&runs, "convene", pass), pick(&runs, "janus", pass)) else {
            continue;
        };
        let (pc, pj) = (points(c), points(j));
        let r = reference(&pc, &pj);
        let fc = figures(c, r);
        let fj = figures(j, r);
        for (k, v) in &fc {
            top.insert(format!("{prefix}convene.{k}"), v.clone());
        }
        for (k, v) in &fj {
            top.insert(format!("{prefix}janus.{k}"), v.clone());
        }
        let mut ratios = Map::new();
        for k in ratio_keys(&fc) {
            let (a, b) = (fc[&k].as_f64(), fj.get(&k).and_then(Value::as_f64));
            let v = match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => json!(a / b),
                _ => Value::Null,
            };
            ratios.insert(k.clone(), v.clone());
        }
        // `ratio.capacity`: subscriber streams within one core.
        let cap = ratios
            .get("capacity_subscribers")
            .cloned()
            .unwrap_or(Value::Null);
        top.insert(format!("{prefix}ratio.capacity"), cap);
        for (k, v) in ratios {
            top.insert(format!("{prefix}ratio.{k}"), v);
        }
        passes.push((pass, prefix, c, j, fc, fj));
    }
    if passes.is_empty() {
        bail!(
            "no pass with both a convene and a janus run in {}",
            runs_dir.display()
        );
    }
    let first = passes[0].2;
    let mut doc = json!({
        "date": first["date"],
        "command": command,
        "script": script,
        "machine": first["machine"],
        "runs": runs.iter().map(|(n, v)| json!({
            "name": n, "sfu": v["sfu"], "srtp": v["srtp"], "command": v["command"],
            "date": v["date"], "loadavg_before": v["loadavg_before"],
            "loadavg_after": v["loadavg_after"], "scenarios": v["scenarios"],
        })).collect::<Vec<_>>(),
    });
    let floor = read_floor(runs_dir)?;
    if let Some(f) = &floor {
        top.extend(floor_figures(f));
    }
    if let Some(o) = doc.as_object_mut() {
        if let Some(f) = &floor {
            o.insert("udp_floor".into(), f.clone());
        }
        for (k, v) in &top {
            o.insert(k.clone(), v.clone());
        }
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("benchmarks.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    let plot = out.join("benchmarks.png");
    let plotted = match crate::plot::draw(&plot, &passes[0].2.clone(), &passes[0].3.clone()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("plot: {e:#}");
            false
        }
    };
    let mut md = markdown(&doc, &passes_view(&passes), plotted, &runs);
    if let Some(f) = &floor {
        floor_markdown(&mut md, f, &passes_view(&passes));
    }
    if let Ok(notes) = std::fs::read_to_string(out.join("benchmarks-janus-notes.md")) {
        md.push('\n');
        md.push_str(&notes);
    }
    std::fs::write(out.join("benchmarks.md"), md)?;
    eprintln!(
        "wrote {0}/benchmarks.json, {0}/benchmarks.md{1}",
        out.display(),
        if plotted { ", benchmarks.png" } else { "" }
    );
    Ok(())
}

/// `udp-floor.json` of the runs directory, when the script measured it.
fn read_floor(dir: &Path) -> Result<Option<Value>> {
    let p = dir.join("udp-floor.json");
    if !p.exists() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
        .with_context(|| format!("parsing {}", p.display()))?;
    Ok(Some(v))
}

/// `floor.*` keys: the kernel's send path alone, per system-call style.
pub fn floor_figures(floor: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for c in floor["cases"].as_array().into_iter().flatten() {
        let name = if c["gso"] == true && c["gro"] == true {
            format!("gso{}_gro", c["batch"])
        } else if c["gso"] == true {
            format!("gso{}", c["batch"])
        } else if c["batch"].as_u64() == Some(1) {
            "sendto".to_string()
        } else {
            format!("sendmmsg{}", c["batch"])
        };
        m.insert(
            format!("floor.{name}.send_us_per_datagram"),
            c["send_us_per_datagram"].clone(),
        );
        m.insert(
            format!("floor.{name}.max_pps_per_core"),
            c["max_pps_per_core"].clone(),
        );
    }
    m
}

/// The floor section of the report: what one core could send at most, and
/// how much of each SFU's per-packet CPU that is.
fn floor_markdown(o: &mut String, floor: &Value, passes: &[&PassRow<'_>]) {
    o.push_str(
        "## The floor: the kernel's UDP send path alone

",
    );
    let _ = writeln!(
        o,
        "`convene-load --udp-floor {}` (run by the script before the SFUs, same namespace and \
         CPUs): a sender thread on CPU {} sends {}-byte datagrams round-robin to {} sockets \
         read on CPU {}, as fast as it can for {} s per case, with no WebRTC at all. Its CPU \
         per datagram is what any SFU forwarding over UDP sockets pays in the kernel on this \
         machine (on loopback the receiving side's IP/UDP work up to the socket queue runs on \
         the sending CPU too, per datagram unless the receiver takes a GSO send whole). In the \
         last row the receiving \
         sockets take a GSO send whole (`UDP_GRO`), as the generator's subscribers do in S1: \
         the kernel then does not cut it into datagrams on the sending CPU.\n",
        floor["destinations"],
        floor["sender_cpu"],
        floor["size"],
        floor["destinations"],
        floor["receiver_cpu"],
        floor["secs"]
    );
    o.push_str(
        "| system call | datagrams/s sent | received | sender CPU µs per datagram | most datagrams/s per core |\n|---|---|---|---|---|\n",
    );
    let mut mmsg_us = None;
    for c in floor["cases"].as_array().into_iter().flatten() {
        let batch = c["batch"].as_u64().unwrap_or(0);
        let name = if c["gso"] == true && c["gro"] == true {
            format!(
                "`sendmsg` with UDP GSO, {batch} datagrams to one socket per call, taken whole \
                 (`UDP_GRO`)"
            )
        } else if c["gso"] == true {
            format!("`sendmsg` with UDP GSO, {batch} datagrams to one socket per call")
        } else if batch == 1 {
            "`sendto`, one per datagram".to_string()
        } else {
            mmsg_us = c["send_us_per_datagram"].as_f64();
            format!("`sendmmsg`, {batch} per call")
        };
        let sent = c["sent"].as_f64().unwrap_or(0.0);
        let secs = c["secs"].as_f64().unwrap_or(1.0).max(1e-9);
        let _ = writeln!(
            o,
            "| {name} | {:.0} | {:.1} % | {} | {} |",
            sent / secs,
            100.0 * c["received"].as_f64().unwrap_or(0.0) / sent.max(1.0),
            fmt(c.get("send_us_per_datagram"), 2),
            fmt(c.get("max_pps_per_core"), 0),
        );
    }
    if let Some(floor_us) = mmsg_us {
        o.push_str(
            "\nAgainst each SFU's CPU per forwarded packet at its busiest valid step without \
             loss (`forwarded_pps_per_core`):\n\n| pass | SFU | µs per forwarded packet | of which the floor |\n|---|---|---|---|\n",
        );
        for p in passes {
            for (name, f) in [("Convene", &p.4), ("Janus", &p.5)] {
                if let Some(pps) = f.get("forwarded_pps_per_core").and_then(Value::as_f64)
                    && pps > 0.0
                {
                    let us = 1e6 / pps;
                    let _ = writeln!(
                        o,
                        "| {} | {name} | {us:.2} | {:.0} % |",
                        p.0,
                        100.0 * floor_us / us
                    );
                }
            }
        }
    }
    o.push('\n');
}

type PassRow<'a> = (
    &'a str,
    &'a str,
    &'a Value,
    &'a Value,
    Map<String, Value>,
    Map<String, Value>,
);

fn passes_view<'a>(p: &'a [PassRow<'a>]) -> Vec<&'a PassRow<'a>> {
    p.iter().collect()
}

fn fmt(v: Option<&Value>, digits: usize) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

fn us_ms(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) => format!("{:.2}", x / 1000.0),
        None => "–".into(),
    }
}

fn markdown(
    doc: &Value,
    passes: &[&PassRow<'_>],
    plotted: bool,
    runs: &[(String, Value)],
) -> String {
    let mut o = String::new();
    let m = &doc["machine"];
    o.push_str("# Benchmarks: Convene and Janus side by side\n\n");
    o.push_str(
        "This file, `benchmarks.json` and `benchmarks.png` are written by \
         `benches/compare-janus.sh` (through `convene-load --compare`); every figure comes \
         from the runs it describes. Convene's own scenarios (S2 meetings, S3, the criterion \
         micro-benchmarks) are in [benchmarks-convene.md](benchmarks-convene.md).\n\n",
    );
    o.push_str("## Method\n\n");
    o.push_str(
        "One load generator, `convene-load` (crate `benches/`), drives both SFUs through their \
         own signaling: Convene's REST API + `/rtc` WebSocket, and Janus's WebSocket API \
         (`create` -> `attach janus.plugin.videoroom` -> `join` as publisher + `publish` with \
         the generator's offer, or `join` as subscriber to the room's feeds -> Janus's offer \
         -> `start` with the generator's answer; `keepalive` every 20 s). The peers are str0m \
         0.25 in RTP mode with VP8 + Opus only, real ICE (both SFUs ICE-lite), DTLS and SRTP. \
         The generator's DTLS offers exactly one SRTP profile per pass (an OpenSSL DTLS \
         backend, `--srtp`): AEAD_AES_128_GCM for the main pass, AES_CM_128_HMAC_SHA1_80 for \
         the second; the profile each handshake actually negotiated is counted and listed \
         below.\n\n\
         Each run starts its SFU fresh, pinned with `taskset` to CPU 0, the generator pinned \
         to CPU 1, everything inside a private network namespace on 127.0.0.2 (libnice, hence \
         Janus, gathers no plain-loopback candidate). Janus 1.1.2 (Debian) runs with ICE-lite, \
         `ice_enforce_list` = 127.0.0.2, no IPv6, one event loop, only the VideoRoom plugin \
         and the WebSockets/HTTP transports, logging at warning; rooms are created per \
         scenario with opus + vp8 and no bitrate cap. Convene runs `convene serve` with one \
         media worker. The runs alternate Janus, Convene per pass.\n\n\
         Scenario S1: one 720p-like publisher (VP8 2.5 Mbit/s, keyframe every 3 s, packets up \
         to 1200 B, + Opus 32 kbit/s), subscribers added in steps; at each step a warm-up, \
         then a measurement window, then a 1 s NACK window before loss is counted. The SFU's \
         CPU is utime+stime from /proc/PID/stat over the window; its memory the `Pss:` of \
         /proc/PID/smaps_rollup at the end of each window. S4: 100 subscribers join at once \
         a room with one publisher; phases from the start of each join (with `--s4-storms` \
         above 1, each figure is the median of that many storms, one after another).\n\n\
         Figures: **capacity** = the most subscribers (x2 streams: audio + video) of the \
         unbroken run of steps from the first with unrecovered loss < 0.1 % and p99 added \
         latency < 20 ms (a step where the generator used > 70 % of its core is invalid and \
         ends the search); **capacity, loss only** = the same search ignoring latency; \
         **forwarded pps per core** = packets delivered to subscribers per CPU-second of \
         the SFU at the busiest valid step without loss (latency not considered); **CPU-s per million packets** at fixed loads and at 25/50/75 % of each \
         SFU's own capacity (and of its loss-only capacity), interpolated linearly between measured steps (– when that load \
         was not measured: outside the steps, or beyond what the generator's one core can \
         drive); **latency** p50/p99/p99.9 at the largest subscriber count that both SFUs ran \
         validly and without loss (same load for both), from the publisher's write into its \
         str0m to the subscriber's str0m delivering the packet; **generator floor p99** = the \
         generator's own share of that (kernel receive stamps, `SO_TIMESTAMPNS`, at each \
         subscriber socket: the p99 of the time from a datagram's arrival to its delivery, \
         plus the p99 of the publisher's write-to-sent time), what the latency would keep \
         with an SFU that took no time; **PSS per peer connection** = least-squares slope of \
         PSS against PeerConnections (subscribers + 1) over the S1 steps; **join** = S4 phase \
         percentiles, each storm begun once the SFU had settled after the peers before it. \
         Subscriber sockets take a GSO send whole (`UDP_GRO`, see the runs below). Ratios are \
         Convene / Janus (> 1 is more for Convene: better for \
         capacity and packets per core, worse for CPU, latency, memory and join time).\n\n",
    );
    o.push_str("## Machine and conditions\n\n");
    let _ = writeln!(
        o,
        "- CPU: {} ({} logical CPUs, {} MHz), {} GiB RAM, Linux {}",
        m["cpu_model"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["cpu_mhz"].as_str().unwrap_or("?"),
        m["mem_gib"],
        m["kernel"].as_str().unwrap_or("?")
    );
    // A run's date is when it was written, at its end.
    let dates = || runs.iter().filter_map(|(_, v)| v["date"].as_str());
    let _ = writeln!(
        o,
        "- The runs ended between {} and {}",
        dates().min().unwrap_or("?"),
        dates().max().unwrap_or("?")
    );
    for (n, v) in runs {
        let _ = writeln!(
            o,
            "- run `{n}` (ended {}): load average before {} / after {}; subscribers take a GSO \
             send whole (`UDP_GRO`): {}",
            v["date"].as_str().unwrap_or("?"),
            v["loadavg_before"],
            v["loadavg_after"],
            match v["generator"]["subscriber_gro"].as_bool() {
                Some(true) => "yes",
                Some(false) => "no",
                // Runs from before the option: the kernel cut them.
                None => "no (before the option)",
            }
        );
    }
    o.push_str(
        "- Shared 2-CPU machine: other jobs may have run at the same time (see the load \
         averages); treat differences of a few tens of percent as noise.\n\n",
    );
    o.push_str("## Reproduce\n\n```sh\n");
    if let Some(c) = doc["script"].as_str() {
        let _ = writeln!(o, "{c}");
    } else {
        o.push_str("benches/compare-janus.sh\n");
    }
    o.push_str("```\n\n### Every run\n\nThe tables below use the first run of each SFU and pass; repeats (`-rN`) show the spread.\n\n| run | capacity (subscribers) | capacity, loss only | peak forwarded pps | forwarded pps per core | SFU PSS per peer KiB | join p50 ms |\n|---|---|---|---|---|---|---|\n");
    for (n, v) in runs {
        let f = figures(v, None);
        let _ = writeln!(
            o,
            "| `{n}` | {} | {} | {} | {} | {} | {} |",
            fmt(f.get("capacity_subscribers"), 0),
            fmt(f.get("capacity_loss_only_subscribers"), 0),
            fmt(f.get("peak_forwarded_pps"), 0),
            fmt(f.get("forwarded_pps_per_core"), 0),
            fmt(f.get("pss_per_peer_kib"), 0),
            fmt(f.get("join_p50_ms"), 0),
        );
    }
    o.push_str("\nPer-run commands (inside the script's namespace):\n\n");
    for (n, v) in runs {
        let _ = writeln!(o, "- `{n}`: `{}`", v["command"].as_str().unwrap_or("?"));
    }
    o.push('\n');
    for (pass, prefix, c, j, fc, fj) in passes.iter().map(|p| (p.0, p.1, p.2, p.3, &p.4, &p.5)) {
        let _ = writeln!(
            o,
            "## Pass {pass}: figures (keys `{prefix}convene.*`, `{prefix}janus.*`, `{prefix}ratio.*`)\n"
        );
        let _ = writeln!(
            o,
            "SRTP negotiated (handshakes per profile): Convene {}, Janus {}.\n",
            fc["srtp_negotiated"], fj["srtp_negotiated"]
        );
        o.push_str("| figure | Convene | Janus | Convene / Janus |\n|---|---|---|---|\n");
        let mut keys: Vec<&String> = fc.keys().collect();
        keys.sort();
        for k in keys {
            if k == "srtp_negotiated" || fc[k].is_boolean() {
                continue;
            }
            let ratio = match (fc[k].as_f64(), fj.get(k).and_then(Value::as_f64)) {
                (Some(a), Some(b)) if b != 0.0 && !k.ends_with("_at_subscribers") => {
                    format!("{:.2}", a / b)
                }
                _ => "–".into(),
            };
            let d = if *k == "loss_ratio" { 5 } else { 1 };
            let _ = writeln!(
                o,
                "| `{k}` | {} | {} | {ratio} |",
                fmt(Some(&fc[k]), d),
                fmt(fj.get(k), d)
            );
        }
        let _ = writeln!(
            o,
            "\nS1 ended on the generator's core (a window above 70 % of it): Convene {}, Janus {}.\n",
            fc["s1_ended_on_generator"], fj["s1_ended_on_generator"]
        );
        for (name, run) in [("Convene", c), ("Janus", j)] {
            let s1 = &run["scenarios"]["s1"];
            let _ = writeln!(
                o,
                "### {name}, S1 steps ({pass})\n\nStopped: {}.\n",
                s1["stop_reason"]
                    .as_str()
                    .unwrap_or(s1["error"].as_str().unwrap_or("?"))
            );
            o.push_str(
                "| subscribers | forwarded pps | loss % | p50 ms | p99 ms | p99.9 ms | generator floor p99 ms | SFU CPU (cores) | CPU-s per Mpkt | SFU PSS MiB | generator CPU | valid | degraded |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            );
            if let Some(steps) = s1["steps"].as_array() {
                for s in steps {
                    let cpu = s["server_cpu"].as_f64();
                    let pps = s["rx_pps"].as_f64().unwrap_or(0.0);
                    let _ = writeln!(
                        o,
                        "| {} | {:.0} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        s["subscribers"],
                        pps,
                        s["loss_ratio"].as_f64().unwrap_or(0.0) * 100.0,
                        us_ms(s.get("latency_p50_us")),
                        us_ms(s.get("latency_p99_us")),
                        us_ms(s.get("latency_p999_us")),
                        us_ms(s.get("generator_floor_p99_us")),
                        fmt(s.get("server_cpu"), 2),
                        cpu.filter(|_| pps > 0.0)
                            .map_or("–".into(), |c| format!("{:.1}", c / pps * 1e6)),
                        s["server_pss_kib"]
                            .as_f64()
                            .map_or("–".into(), |k| format!("{:.1}", k / 1024.0)),
                        fmt(s.get("generator_cpu"), 2),
                        if s["valid"] == true { "yes" } else { "**no**" },
                        if s["degraded"] == true { "yes" } else { "no" },
                    );
                }
            }
            o.push('\n');
        }
        o.push_str(
            "### S4: join phases, p50 / p99 ms\n\n| phase | Convene | Janus |\n|---|---|---|\n",
        );
        for ph in PHASES {
            let cell = |f: &Map<String, Value>| {
                format!(
                    "{} / {}",
                    fmt(f.get(&format!("join_{ph}_p50_ms")), 1),
                    fmt(f.get(&format!("join_{ph}_p99_ms")), 1)
                )
            };
            let _ = writeln!(o, "| {ph} | {} | {} |", cell(fc), cell(fj));
        }
        let _ = writeln!(
            o,
            "\nAll joins ready: Convene {}, Janus {}. Storms: Convene {}, Janus {}.\n",
            c["scenarios"]["s4"]["all_ready"],
            j["scenarios"]["s4"]["all_ready"],
            c["scenarios"]["s4"]["storms"].as_u64().unwrap_or(1),
            j["scenarios"]["s4"]["storms"].as_u64().unwrap_or(1)
        );
        if plotted && prefix.is_empty() {
            o.push_str(
                "### Loss and latency against subscribers (S1, this pass)\n\n\
                 ![loss and p99 latency against subscriber count, Convene and Janus](benchmarks.png)\n\n",
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(f64, f64, f64, bool)]) -> Value {
        let steps: Vec<Value> = steps
            .iter()
            .map(|&(subs, pps, cpu, degraded)| {
                json!({"subscribers": subs, "rx_pps": pps, "server_cpu": cpu,
                    "loss_ratio": 0.0, "latency_p50_us": 500, "latency_p99_us": 900,
                    "latency_p999_us": 1500, "server_pss_kib": 10_000.0 + 100.0 * (subs + 1.0),
                    "valid": true, "degraded": degraded})
            })
            .collect();
        json!({"scenarios": {"s1": {"steps": steps, "capacity_subscribers": 20.0,
            "capacity_forwarded_pps": 20_000.0}}})
    }

    #[test]
    fn interpolates_cpu_between_steps() {
        let r = run(&[(10.0, 10_000.0, 0.2, false), (20.0, 20_000.0, 0.6, false)]);
        let p = points(&r);
        // 20 and 30 CPU-s per million packets at the two steps.
        let mid = cpu_at(&p, 15_000.0);
        assert!(mid.is_some_and(|c| (c - 25.0).abs() < 1e-9), "{mid:?}");
        assert!(cpu_at(&p, 50_000.0).is_none());
        let f = figures(&r, reference(&p, &p));
        assert_eq!(f["latency_at_subscribers"], json!(20.0));
        assert!(
            f["pss_per_peer_kib"]
                .as_f64()
                .is_some_and(|k| (k - 100.0).abs() < 1e-6)
        );
        assert!(
            f["forwarded_pps_per_core"]
                .as_f64()
                .is_some_and(|x| (x - 20_000.0 / 0.6).abs() < 1e-6)
        );
    }
}
