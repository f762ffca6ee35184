//! The cluster benchmark (`benches/cluster.sh`, issue 20): one room with one
//! publisher and N subscribers on two `convene` nodes (PostgreSQL + Redis,
//! media links between the nodes). The publisher's peer is on node 1, where
//! the room runs; each configuration keeps a share of the subscribers' peers
//! on node 2 (`via`), so their packets cross the link once per packet:
//!
//! - `one_node`: every subscriber on node 1 (the same room on one node);
//! - `split`: every second subscriber on node 2;
//! - `all_relayed`: every subscriber on node 2 (every delivered packet
//!   crossed the link: the relay's added latency is this configuration's
//!   latency less `one_node`'s at the same load).
//!
//! CPU is both nodes' (utime + stime), so "CPU per forwarded packet" counts
//! the relay's cost on both sides.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::scenarios::{self, Settings};
use crate::server::SpawnedServer;
use crate::signaling::Convene;
use crate::{Load, stats};

/// What a run needs.
pub struct ClusterRun {
    pub binary: PathBuf,
    pub server_cpu: Option<String>,
    pub generator_cpu: Option<String>,
    pub ip: IpAddr,
    pub db: String,
    pub redis: String,
    pub threads: usize,
    pub settings: Settings,
    pub steps: Vec<usize>,
    pub bitrate: u64,
}

/// The configurations, in the order they run: name, and which subscribers
/// keep their media on node 2 (every n-th; none for `one_node`).
pub const CONFIGS: [(&str, Option<usize>); 3] = [
    ("one_node", None),
    ("split", Some(2)),
    ("all_relayed", Some(1)),
];

async fn metric(base: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{base}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Starts the two nodes, runs S1 in each configuration, returns the run.
pub async fn run(c: &ClusterRun) -> Result<Value> {
    let key = format!("cluster-load-{:08x}", std::process::id());
    let loadavg_before = stats::loadavg();
    let n1 = SpawnedServer::start_node(
        &c.binary,
        c.server_cpu.as_deref(),
        c.ip,
        "n1",
        (&c.db, &c.redis),
        &key,
    )?;
    let n2 = SpawnedServer::start_node(
        &c.binary,
        c.server_cpu.as_deref(),
        c.ip,
        "n2",
        (&c.db, &c.redis),
        &key,
    )?;
    eprintln!(
        "started n1 (pid {}) at {}, n2 (pid {}) at {}",
        n1.pid(),
        n1.base,
        n2.pid(),
        n2.base
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&n1.base, "convene_node_links_up").await < 1.0 {
        if Instant::now() > deadline {
            bail!("the two nodes did not link within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut configs = Map::new();
    for (name, every) in CONFIGS {
        let mut adapter = Convene::new(&n1.base, &key)?;
        if let Some(e) = every {
            adapter = adapter.with_via("n2", e);
        }
        let mut load = Load::new(adapter, c.threads, c.ip, Some(n1.pid()))?;
        load.extra_pids = vec![n2.pid()];
        eprintln!("== {name}");
        let r = scenarios::s1(&load, &c.settings, c.bitrate, &c.steps)
            .await
            .with_context(|| format!("configuration {name}"))?;
        configs.insert(name.to_string(), r);
        drop(load);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    Ok(json!({
        "date": date.trim(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": stats::machine(),
        "loadavg_before": loadavg_before,
        "loadavg_after": stats::loadavg(),
        "nodes": {"count": 2, "pinned_cpu": c.server_cpu, "media_workers_each": 1},
        "generator": {"pinned_cpu": c.generator_cpu, "media_threads": c.threads},
        "publisher_video_bps": c.bitrate,
        "configs": Value::Object(configs),
    }))
}

/// A step's figures (the window's fields are flattened into the step).
fn step(run: &Value, config: &str, subscribers: u64) -> Option<Value> {
    run["configs"][config]["steps"]
        .as_array()?
        .iter()
        .find(|s| s["subscribers"].as_u64() == Some(subscribers))
        .cloned()
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// CPU microseconds of both nodes per packet delivered to a subscriber.
fn cpu_us_per_packet(w: &Value) -> Option<f64> {
    let cpu = num(&w["server_cpu"])?;
    let pps = num(&w["rx_pps"]).filter(|p| *p > 0.0)?;
    Some(cpu / pps * 1e6)
}

/// The headline figures (`cluster.*` keys) and the markdown report.
pub fn report(run: &Value) -> (Map<String, Value>, String) {
    let mut keys = Map::new();
    let mut steps: Vec<u64> = run["configs"]["one_node"]["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["subscribers"].as_u64()).collect())
        .unwrap_or_default();
    steps.sort_unstable();
    let mut md = String::new();
    md.push_str(
        "# Benchmarks: one room over two nodes\n\n\
         This file and `benchmarks-cluster.json` are written by `benches/cluster.sh` \
         (through `convene-load --cluster-db ... --cluster-redis ...`); every figure comes \
         from the run described here.\n\n## Method\n\n\
         Two `convene serve` nodes on one PostgreSQL database and one Redis server, each \
         with one media worker and `--node-link-addr` (the encrypted media link between \
         them), both pinned to the same CPU; the generator (`convene-load`, str0m peers over \
         real UDP, ICE, DTLS and SRTP) on the other CPU. One room runs on node 1 with one \
         publisher there (720p-like VP8 + Opus, scenario S1 of [benchmarks](benchmarks.md)) \
         and N subscribers, whose signaling goes to node 1 and whose peers are kept:\n\n\
         - `one_node`: all on node 1 (the same room on one node);\n\
         - `split`: every second subscriber on node 2 (`via`), the room split over both;\n\
         - `all_relayed`: all on node 2, so every delivered packet crossed the link.\n\n\
         **Latency** is the publisher's write into its str0m to a subscriber's str0m \
         delivering the packet (p50/p99 over the window); the **relay's added latency** is \
         `all_relayed` less `one_node` at the same number of subscribers. **CPU** is both \
         nodes' (utime + stime over the window, in shares of one core); **CPU per packet** \
         divides it by the packets delivered to subscribers. The **generator floor** is the \
         generator's own share of the latency ([benchmarks](benchmarks.md)).\n\n",
    );
    md.push_str("## Machine and conditions\n\n");
    md.push_str(&format!(
        "- Date: {}\n- Machine: {}\n- Load average before {} / after {}\n- Shared 2-CPU machine: \
         other jobs may have run at the same time; treat differences of a few tens of percent \
         as noise.\n\n",
        run["date"].as_str().unwrap_or("?"),
        run["machine"],
        run["loadavg_before"],
        run["loadavg_after"]
    ));
    md.push_str(&format!(
        "## Reproduce\n\n```sh\nbenches/cluster.sh\n```\n\nThe generator's command line: \
         `{}`\n\n",
        run["command"].as_str().unwrap_or("?")
    ));
    md.push_str("## Every step\n\n| subscribers | configuration | delivered pps | loss % | p50 µs | p99 µs | generator floor p99 µs | CPU (both nodes) | CPU µs per packet | valid |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for &n in &steps {
        for (name, _) in CONFIGS {
            let Some(w) = step(run, name, n) else {
                continue;
            };
            md.push_str(&format!(
                "| {n} | `{name}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(num(&w["rx_pps"]), 0),
                cell(num(&w["loss_ratio"]).map(|l| l * 100.0), 3),
                cell(num(&w["latency_p50_us"]), 0),
                cell(num(&w["latency_p99_us"]), 0),
                cell(num(&w["generator_floor_p99_us"]), 0),
                cell(num(&w["server_cpu"]), 3),
                cell(cpu_us_per_packet(&w), 2),
                w["valid"]
            ));
        }
    }
    md.push_str("\n## The relay against one node\n\n| subscribers | relay's added latency p50 µs | p99 µs | CPU µs per packet: one node | split | all relayed | split / one node | all relayed / one node |\n|---|---|---|---|---|---|---|---|\n");
    for &n in &steps {
        let (Some(one), split, all) = (
            step(run, "one_node", n),
            step(run, "split", n),
            step(run, "all_relayed", n),
        ) else {
            continue;
        };
        let diff = |k: &str| {
            let a = all.as_ref().and_then(|w| num(&w[k]))?;
            Some(a - num(&one[k])?)
        };
        let c1 = cpu_us_per_packet(&one);
        let cs = split.as_ref().and_then(cpu_us_per_packet);
        let ca = all.as_ref().and_then(cpu_us_per_packet);
        let ratio = |x: Option<f64>| match (x, c1) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        md.push_str(&format!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(diff("latency_p50_us"), 0),
            cell(diff("latency_p99_us"), 0),
            cell(c1, 2),
            cell(cs, 2),
            cell(ca, 2),
            cell(ratio(cs), 2),
            cell(ratio(ca), 2)
        ));
        let mut put = |k: String, v: Option<f64>| {
            if let Some(v) = v {
                keys.insert(k, json!((v * 100.0).round() / 100.0));
            }
        };
        put(
            format!("cluster.relay_added_p50_us_at_{n}"),
            diff("latency_p50_us"),
        );
        put(
            format!("cluster.relay_added_p99_us_at_{n}"),
            diff("latency_p99_us"),
        );
        put(format!("cluster.cpu_us_per_packet_one_node_at_{n}"), c1);
        put(format!("cluster.cpu_us_per_packet_split_at_{n}"), cs);
        put(format!("cluster.cpu_us_per_packet_all_relayed_at_{n}"), ca);
    }
    md.push_str(
        "\nWhat a crossing costs: the room's node encodes each publisher packet once per \
         other node holding the room (postcard, then ChaCha20-Poly1305 in the gateway's \
         thread) and writes it to the link's TCP connection; the other node decrypts and \
         decodes it in the link's reading thread and hands it to its workers, which fan it \
         out as they do their own publishers' packets. With both nodes on one core here, the \
         thread hand-offs and the loopback TCP are part of the added latency; on two \
         machines the network's own delay adds to it.\n",
    );
    (keys, md)
}

/// Writes `benchmarks-cluster.json` and `.md` into `dir`.
pub fn write(dir: &Path, run: &Value) -> Result<()> {
    let (keys, md) = report(run);
    let mut out = run.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert("headline".into(), Value::Object(keys));
    }
    std::fs::write(
        dir.join("benchmarks-cluster.json"),
        serde_json::to_string_pretty(&out)? + "\n",
    )?;
    std::fs::write(dir.join("benchmarks-cluster.md"), md)?;
    Ok(())
}
