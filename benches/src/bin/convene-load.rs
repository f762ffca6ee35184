//! `convene-load`: drives many WebRTC peers against a Convene server and
//! reports loss, latency, join phases and forwarded packets per CPU-second.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Map, Value, json};

use convene_benches::janus::Janus;
use convene_benches::scenarios::{self, Settings};
use convene_benches::server::{SpawnedJanus, SpawnedServer};
use convene_benches::signaling::{Convene, SignalingAdapter};
use convene_benches::{Load, compare, report, srtp, stats, udpfloor};

#[derive(Parser, Debug)]
#[command(
    name = "convene-load",
    about = "Load generator for Convene (str0m peers, real signaling)"
)]
struct Args {
    /// Base URL of a running server (ignored with --spawn-server).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Developer key of the server's team (ignored with --spawn-server).
    #[arg(long, env = "CONVENE_API_KEY", default_value = "")]
    api_key: String,
    /// PID of the running server, to measure its CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start this `convene` binary for the run (loopback, port 0,
    /// `--server-workers` media workers).
    #[arg(long, num_args = 0..=1, default_missing_value = "target/release/convene")]
    spawn_server: Option<PathBuf>,
    /// Media workers of the spawned server.
    #[arg(long, default_value_t = 1)]
    server_workers: usize,
    /// The spawned server's `--media-shard-peers` (0: the room stays on one
    /// worker; N: it spills onto the next worker after N participants).
    #[arg(long, default_value_t = 0)]
    server_shard_peers: usize,
    /// Pin the spawned server with `taskset -c CPU`.
    #[arg(long)]
    server_cpu: Option<String>,
    /// The CPU the generator was pinned to (recorded in the report only;
    /// pin with `taskset -c CPU convene-load ...`).
    #[arg(long)]
    generator_cpu: Option<String>,
    /// The SFU: `convene` or `janus` (Janus VideoRoom; S1 and S4 only, as
    /// its publishers and subscribers are separate PeerConnections).
    #[arg(long, default_value = "convene")]
    sfu: String,
    /// Janus's WebSocket API (ignored with --spawn-janus).
    #[arg(long, default_value = "ws://127.0.0.2:8188")]
    janus_url: String,
    /// Start Janus for the run from this config dir (`janus -C DIR/janus.jcfg -F DIR`,
    /// as written by benches/compare-janus.sh), pinned with --server-cpu.
    #[arg(long)]
    spawn_janus: Option<PathBuf>,
    /// SRTP profiles the generator's DTLS offers/accepts: `default`
    /// (whatever the DTLS stack prefers), `aes128gcm` or `aes128cm`.
    #[arg(long, default_value = "default")]
    srtp: String,
    /// Whether the subscribers' sockets take a GSO send whole (`UDP_GRO`)
    /// and cut it apart in the generator. With `false` the kernel cuts it
    /// into datagrams as it arrives; on loopback that runs on the sending
    /// CPU, the SFU's (see `docs/benchmarks.md`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    subscriber_gro: bool,
    /// S1: go on past a degraded step (to draw loss and latency against
    /// subscribers); stop only when the generator saturates or the SFU collapses.
    #[arg(long)]
    s1_keep_going: bool,
    /// Also write the whole run (JSON) to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Comparison mode: read `*.json` runs (from --json-out) in this dir and
    /// write the side-by-side report (with --write-report DIR). Runs nothing.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// With --compare: the command line that produced the runs (for "Reproduce").
    #[arg(long)]
    compare_script: Option<String>,
    /// Scenarios, comma separated: s1, s2, s3, s4, s5 (the soak: not in the
    /// default set, it runs for --s5-minutes).
    #[arg(long, default_value = "s1")]
    scenario: String,
    /// Media threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Local address of the peers' media sockets (and of a spawned SFU).
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 5.0)]
    window: f64,
    /// Warm-up before each window, seconds (lets the SFU's bandwidth
    /// estimate ramp up past its 1.5 Mbit/s start).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 3.0)]
    keyframe_interval: f64,
    /// S1: subscriber counts of the steps.
    #[arg(long, default_value = "1,2,5,10,20,40,80", value_delimiter = ',')]
    s1_steps: Vec<usize>,
    /// S1: publisher video bitrate.
    #[arg(long, default_value_t = 2_500_000)]
    s1_bitrate: u64,
    /// S2: meeting sizes.
    #[arg(long, default_value = "5,10,20,40", value_delimiter = ',')]
    s2_sizes: Vec<usize>,
    /// S2, S3, S4: publisher video bitrate.
    #[arg(long, default_value_t = 500_000)]
    bitrate: u64,
    /// S3: speakers and listeners.
    #[arg(long, default_value_t = 10)]
    s3_speakers: usize,
    #[arg(long, default_value_t = 20)]
    s3_listeners: usize,
    /// S4: concurrent joins.
    #[arg(long, default_value_t = 100)]
    s4_joins: usize,
    /// S4: storms, one after another, each in a room of its own; with
    /// more than one, each phase's figures are the storms' median.
    #[arg(long, default_value_t = 1)]
    s4_storms: usize,
    /// S4: also write every join's phases (ms from its start) to this
    /// file as JSON, with `anchor_ms`, the storm's start in Unix time, to
    /// line them up with a server's log.
    #[arg(long)]
    s4_joins_out: Option<std::path::PathBuf>,
    /// S5 (soak): how long, speakers and listeners, seconds between two
    /// listener replacements and between two measurement windows.
    #[arg(long, default_value_t = 30.0)]
    s5_minutes: f64,
    #[arg(long, default_value_t = 4)]
    s5_speakers: usize,
    #[arg(long, default_value_t = 8)]
    s5_listeners: usize,
    #[arg(long, default_value_t = 10.0)]
    s5_churn_secs: f64,
    #[arg(long, default_value_t = 60.0)]
    s5_sample_secs: f64,
    /// Write benchmarks.json and benchmarks.md into this directory.
    #[arg(long)]
    write_report: Option<PathBuf>,
    /// File names (without extension) of --write-report.
    #[arg(long, default_value = "benchmarks")]
    report_name: String,
    /// Write the report (--write-report, --report-name) of an earlier run
    /// from its --json-out file instead of running (e.g. after editing the
    /// hand-written notes); with --criterion, its micro-benchmark figures
    /// are replaced by criterion's current results.
    #[arg(long)]
    report_from: Option<PathBuf>,
    /// Include criterion's results from this directory (e.g. target/criterion).
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// Measure the kernel's UDP send path alone (no WebRTC): a sender on
    /// --server-cpu, receivers on --generator-cpu, 1200-byte datagrams to
    /// `--udp-floor` sockets, one `sendto` each and `sendmmsg` batches of 64.
    /// Writes the figures to --json-out (compare-janus.sh: `udp-floor.json`,
    /// shown in the report as the floor under any UDP SFU). Runs nothing else.
    #[arg(long, value_name = "DESTINATIONS")]
    udp_floor: Option<usize>,
    /// With --udp-floor: seconds per case.
    #[arg(long, default_value_t = 5.0)]
    udp_floor_secs: f64,
    /// Fail (exit 1) unless every scenario ran, no window was invalid and S4 got everyone ready.
    #[arg(long)]
    strict: bool,
    /// The cluster benchmark (`benches/cluster.sh`): two nodes of
    /// --spawn-server on this PostgreSQL database and --cluster-redis, S1
    /// with the subscribers on one node, split over both, and all on the
    /// other; writes benchmarks-cluster.{json,md} with --write-report.
    #[arg(long, requires = "cluster_redis")]
    cluster_db: Option<String>,
    /// Redis of the cluster benchmark.
    #[arg(long, requires = "cluster_db")]
    cluster_redis: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// Criterion's mean estimates under `dir`, as a JSON map and a markdown table.
fn criterion_results(dir: &std::path::Path) -> (Map<String, Value>, String) {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let read = |f: &str| -> Option<Value> {
                        serde_json::from_str(&std::fs::read_to_string(p.join(f)).ok()?).ok()
                    };
                    if let (Some(b), Some(est)) = (read("benchmark.json"), read("estimates.json")) {
                        let id = b["full_id"].as_str().unwrap_or("?").to_string();
                        found.push((id, est["mean"]["point_estimate"].as_f64().unwrap_or(0.0)));
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = Map::new();
    let mut md = String::from(
        "`cargo bench -p convene-benches` (criterion, mean of its samples; `forwarding`: the \
         sans-IO forwarder alone; `peers`: through str0m peers configured as the worker's, \
         SRTP included, in memory):\n\n\
         | benchmark | mean |\n|---|---|\n",
    );
    for (id, ns) in &found {
        map.insert(format!("micro.{id}_ns"), json!((ns * 10.0).round() / 10.0));
        let shown = if *ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.1} ns")
        };
        md.push_str(&format!("| `{id}` | {shown} |\n"));
    }
    (map, md)
}

async fn run(args: Args) -> Result<()> {
    if let Some(file) = &args.report_from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut run: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        if let Some(dir) = &args.criterion {
            let (m, md) = criterion_results(dir);
            if m.is_empty() {
                bail!("no criterion results under {}", dir.display());
            }
            if let Some(obj) = run.as_object_mut() {
                if let Some(h) = obj.get_mut("headline").and_then(Value::as_object_mut) {
                    h.extend(m.clone());
                }
                obj.extend(m);
                obj.insert("micro".into(), Value::String(md));
            }
        }
        let dir = args
            .write_report
            .clone()
            .unwrap_or_else(|| PathBuf::from("docs"));
        return report::write(&dir, &run, &args.report_name);
    }
    if let Some(dir) = &args.compare {
        let out = args
            .write_report
            .clone()
            .unwrap_or_else(|| PathBuf::from("docs"));
        let command: Vec<String> = std::env::args().collect();
        return compare::write(
            dir,
            &out,
            &command.join(" "),
            args.compare_script.as_deref(),
        );
    }
    if let Some(destinations) = args.udp_floor {
        let cpu = |s: &Option<String>| s.as_deref().and_then(|c| c.parse::<usize>().ok());
        let mut v = udpfloor::run(&udpfloor::FloorCfg {
            local_ip: args.local_ip,
            destinations: destinations.max(1),
            size: 1200,
            secs: args.udp_floor_secs,
            sender_cpu: cpu(&args.server_cpu),
            receiver_cpu: cpu(&args.generator_cpu),
        })?;
        if let Some(o) = v.as_object_mut() {
            o.insert("kind".into(), json!("udp_floor"));
            o.insert("machine".into(), stats::machine());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        if let Some(p) = &args.json_out {
            std::fs::write(p, serde_json::to_string_pretty(&v)? + "\n")
                .with_context(|| format!("writing {}", p.display()))?;
        }
        return Ok(());
    }
    if let (Some(db), Some(redis)) = (&args.cluster_db, &args.cluster_redis) {
        let Some(binary) = args.spawn_server.clone() else {
            bail!("--cluster-db needs --spawn-server (the convene binary of both nodes)");
        };
        srtp::configure(&args.srtp)?;
        let run = convene_benches::cluster::run(&convene_benches::cluster::ClusterRun {
            binary,
            server_cpu: args.server_cpu.clone(),
            generator_cpu: args.generator_cpu.clone(),
            ip: args.local_ip,
            db: db.clone(),
            redis: redis.clone(),
            threads: args.threads,
            settings: Settings {
                warmup: Duration::from_secs_f64(args.warmup),
                window: args.window,
                ready_timeout: Duration::from_secs(30),
                keyframe_interval: Duration::from_secs_f64(args.keyframe_interval),
                s1_keep_going: true,
            },
            steps: args.s1_steps.clone(),
            bitrate: args.s1_bitrate,
        })
        .await?;
        if let Some(p) = &args.json_out {
            std::fs::write(p, serde_json::to_string_pretty(&run)? + "\n")
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(dir) = &args.write_report {
            convene_benches::cluster::write(dir, &run)?;
            eprintln!("wrote {0}/benchmarks-cluster.json and .md", dir.display());
        }
        println!("{}", convene_benches::cluster::report(&run).1);
        return Ok(());
    }
    let loadavg_before = stats::loadavg();
    match args.sfu.as_str() {
        "convene" => {
            let spawned = match &args.spawn_server {
                Some(bin) => {
                    let s = SpawnedServer::start(
                        bin,
                        args.server_cpu.as_deref(),
                        args.local_ip,
                        (args.server_workers, args.server_shard_peers),
                    )?;
                    eprintln!("started convene (pid {}) at {}", s.pid(), s.base);
                    Some(s)
                }
                None => None,
            };
            let (base, key, pid) = match &spawned {
                Some(s) => (s.base.clone(), s.api_key.clone(), Some(s.pid())),
                None => (args.server.clone(), args.api_key.clone(), args.server_pid),
            };
            if key.is_empty() {
                bail!("--api-key is required without --spawn-server");
            }
            let adapter = Convene::new(&base, &key)?;
            let r = run_with(&args, adapter, pid, spawned.is_some(), loadavg_before).await;
            drop(spawned);
            r
        }
        "janus" => {
            let spawned = match &args.spawn_janus {
                Some(dir) => {
                    let j = SpawnedJanus::start(dir, args.server_cpu.as_deref(), args.local_ip)?;
                    eprintln!("started janus (pid {}) at {}", j.pid(), j.url);
                    Some(j)
                }
                None => None,
            };
            let (url, pid) = match &spawned {
                Some(j) => (j.url.clone(), Some(j.pid())),
                None => (args.janus_url.clone(), args.server_pid),
            };
            let adapter = Janus::new(&url);
            let r = run_with(&args, adapter, pid, spawned.is_some(), loadavg_before).await;
            drop(spawned);
            r
        }
        other => bail!("unknown --sfu {other} (convene or janus)"),
    }
}

async fn run_with<A: SignalingAdapter>(
    args: &Args,
    adapter: A,
    pid: Option<u32>,
    spawned: bool,
    loadavg_before: [f64; 3],
) -> Result<()> {
    let sfu = adapter.name();
    srtp::configure(&args.srtp)?;
    convene_benches::media::set_subscriber_gro(args.subscriber_gro);
    let load = Load::new(adapter, args.threads, args.local_ip, pid)?;
    let set = Settings {
        warmup: Duration::from_secs_f64(args.warmup),
        window: args.window,
        ready_timeout: Duration::from_secs(30),
        keyframe_interval: Duration::from_secs_f64(args.keyframe_interval),
        s1_keep_going: args.s1_keep_going,
    };
    let mut results = Map::new();
    let mut ok = true;
    for sc in args.scenario.split(',').map(str::trim) {
        let r = match sc {
            "s1" => scenarios::s1(&load, &set, args.s1_bitrate, &args.s1_steps).await,
            "s2" => scenarios::s2(&load, &set, args.bitrate, &args.s2_sizes).await,
            "s3" => {
                scenarios::s3(
                    &load,
                    &set,
                    args.bitrate,
                    args.s3_speakers,
                    args.s3_listeners,
                )
                .await
            }
            "s4" => {
                let out = args.s4_joins_out.as_deref();
                scenarios::s4(
                    &load,
                    &set,
                    args.bitrate,
                    args.s4_joins,
                    args.s4_storms,
                    out,
                )
                .await
            }
            "s5" => {
                let cfg = convene_benches::soak::SoakCfg {
                    duration: Duration::from_secs_f64(args.s5_minutes * 60.0),
                    speakers: args.s5_speakers,
                    listeners: args.s5_listeners,
                    churn_every: Duration::from_secs_f64(args.s5_churn_secs),
                    sample_every: Duration::from_secs_f64(args.s5_sample_secs),
                    bitrate: args.bitrate,
                };
                convene_benches::soak::s5(&load, &set, cfg).await
            }
            other => bail!("unknown scenario {other}"),
        };
        match r {
            Ok(v) => {
                results.insert(sc.to_string(), v);
            }
            Err(e) => {
                eprintln!("{sc} failed: {e:#}");
                ok = false;
                results.insert(sc.to_string(), json!({"error": format!("{e:#}")}));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let scenarios = Value::Object(results);
    let mut headline: Map<String, Value> = report::headline(&scenarios)
        .into_iter()
        .map(|(k, v)| match k.strip_prefix("convene.") {
            Some(rest) => (format!("{sfu}.{rest}"), v),
            None => (k, v),
        })
        .collect();
    let mut micro = None;
    if let Some(dir) = &args.criterion {
        let (m, md) = criterion_results(dir);
        if !m.is_empty() {
            headline.extend(m);
            micro = Some(md);
        }
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let command: Vec<String> = std::env::args().collect();
    let mut run = json!({
        "date": date.trim(),
        "command": command.join(" "),
        "machine": stats::machine(),
        "loadavg_before": loadavg_before,
        "loadavg_after": stats::loadavg(),
        "sfu": sfu,
        "srtp": {"requested": args.srtp, "negotiated": srtp::negotiated()},
        "server": {"spawned": spawned, "pinned_cpu": args.server_cpu,
                   "media_workers": args.server_workers,
                   "media_shard_peers": args.server_shard_peers},
        "generator": {"pinned_cpu": args.generator_cpu, "media_threads": args.threads,
                      "subscriber_gro": args.subscriber_gro},
        "scenarios": scenarios,
    });
    // Headline keys at the top level, as `convene.*` / `micro.*`.
    if let Some(obj) = run.as_object_mut() {
        obj.insert("headline".into(), Value::Object(headline.clone()));
        for (k, v) in headline {
            obj.insert(k, v);
        }
        if let Some(md) = micro {
            obj.insert("micro".into(), Value::String(md));
        }
    }
    println!("{}", serde_json::to_string_pretty(&run["headline"])?);
    if let Some(dir) = &args.write_report {
        report::write(dir, &run, &args.report_name)
            .with_context(|| format!("writing {}", dir.display()))?;
        eprintln!(
            "wrote {0}/{1}.json and {0}/{1}.md",
            dir.display(),
            args.report_name
        );
    }
    if let Some(p) = &args.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&run)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    drop(load);
    if args.strict {
        // A degraded step is an outcome of S1, not a failure; an invalid one is.
        let bad = |w: &Value| w["valid"] == false;
        let any_bad = ["s1", "s2"].iter().any(|s| {
            run["scenarios"][*s]["steps"]
                .as_array()
                .or(run["scenarios"][*s]["meetings"].as_array())
                .is_some_and(|v| v.iter().any(bad))
        }) || run["scenarios"]["s4"]["all_ready"] == false;
        if !ok || any_bad {
            bail!("strict: a scenario failed, degraded or was invalid");
        }
    }
    if !ok {
        bail!("a scenario failed");
    }
    Ok(())
}
