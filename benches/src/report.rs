//! docs/benchmarks.json and docs/benchmarks.md, written from a run's
//! results (no figure is typed in by hand).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value, json};

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "–".to_string(),
    }
}

fn us_as_ms(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{:.2}", x / 1000.0),
        None => "–".to_string(),
    }
}

/// The headline keys, taken from the scenario results.
pub fn headline(scenarios: &Value) -> Map<String, Value> {
    let mut h = Map::new();
    // The highest load that was valid and not degraded carries the
    // per-core and latency figures.
    let mut windows: Vec<&Value> = Vec::new();
    if let Some(steps) = scenarios["s1"]["steps"].as_array() {
        windows.extend(steps.iter());
    }
    if let Some(m) = scenarios["s2"]["meetings"].as_array() {
        windows.extend(m.iter());
    }
    let mut s3 = scenarios["s3"]["window"].clone();
    if s3.is_object() {
        s3["degraded"] = scenarios["s3"]["degraded"].clone();
        windows.push(&s3);
    }
    let best = windows
        .iter()
        .filter(|w| {
            w["valid"] == true && w["degraded"] == false && w["forwarded_pps_per_core"].is_number()
        })
        .max_by(|a, b| {
            a["rx_pps"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rx_pps"].as_f64().unwrap_or(0.0))
        });
    if let Some(w) = best {
        h.insert(
            "convene.forwarded_pps_per_core".into(),
            w["forwarded_pps_per_core"].clone(),
        );
        h.insert("convene.forwarded_pps".into(), w["rx_pps"].clone());
        h.insert(
            "convene.server_cpu_at_that_load".into(),
            w["server_cpu"].clone(),
        );
        h.insert("convene.latency_p50_us".into(), w["latency_p50_us"].clone());
        h.insert("convene.latency_p99_us".into(), w["latency_p99_us"].clone());
        h.insert(
            "convene.generator_floor_p99_us".into(),
            w["generator_floor_p99_us"].clone(),
        );
        h.insert("convene.loss_ratio".into(), w["loss_ratio"].clone());
    }
    // The saturation point: the most traffic seen in a valid window.
    if let Some(w) = windows
        .iter()
        .filter(|w| w["valid"] == true && w["forwarded_pps_per_core"].is_number())
        .max_by(|a, b| {
            a["rx_pps"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rx_pps"].as_f64().unwrap_or(0.0))
        })
    {
        h.insert("convene.peak_forwarded_pps".into(), w["rx_pps"].clone());
        h.insert(
            "convene.peak_forwarded_pps_per_core".into(),
            w["forwarded_pps_per_core"].clone(),
        );
        h.insert(
            "convene.peak_latency_p99_us".into(),
            w["latency_p99_us"].clone(),
        );
    }
    if let Some(steps) = scenarios["s1"]["steps"].as_array()
        && let Some(s) = steps.last()
    {
        h.insert(
            "convene.s1_last_step_subscribers".into(),
            s["subscribers"].clone(),
        );
        h.insert(
            "convene.s1_last_step_latency_p99_us".into(),
            s["latency_p99_us"].clone(),
        );
    }
    if !scenarios["s1"].is_null() {
        h.insert(
            "convene.s1_max_subscribers".into(),
            scenarios["s1"]["max_subscribers_without_degradation"].clone(),
        );
    }
    let ph = &scenarios["s4"]["phases"];
    if !ph.is_null() {
        h.insert(
            "convene.join_p50_ms".into(),
            ph["first_keyframe"]["p50_ms"].clone(),
        );
        h.insert(
            "convene.join_p99_ms".into(),
            ph["first_keyframe"]["p99_ms"].clone(),
        );
        h.insert(
            "convene.join_dtls_p50_ms".into(),
            ph["dtls_done"]["p50_ms"].clone(),
        );
        h.insert(
            "convene.join_first_rtp_p50_ms".into(),
            ph["first_rtp"]["p50_ms"].clone(),
        );
    }
    h
}

fn window_row(out: &mut String, label: &str, w: &Value) {
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {} | {} | {} |",
        f(&w["rx_pps"], 0),
        f(&w["rx_mbps"], 1),
        f(&w["tx_pps"], 0),
        w["loss_ratio"].as_f64().unwrap_or(0.0) * 100.0,
        us_as_ms(&w["latency_p50_us"]),
        us_as_ms(&w["latency_p99_us"]),
        f(&w["server_cpu"], 2),
        f(&w["forwarded_pps_per_core"], 0),
        f(&w["generator_cpu"], 2),
        if w["valid"] == true { "yes" } else { "**no**" },
        if w["degraded"] == true { "yes" } else { "no" },
    );
}

const WINDOW_HEAD: &str = "| load | forwarded pps | Mbit/s | published pps | loss % | p50 ms | p99 ms | server CPU (cores) | forwarded pps per server CPU-s | generator CPU | valid | degraded |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";

/// Writes `{name}.json` and `{name}.md` into `dir` (`name` is
/// `benchmarks` by default; `benches/run.sh` uses `benchmarks-convene`, as
/// `benchmarks.md` holds the side-by-side run with Janus). The markdown
/// ends with `{name}-notes.md` from `dir` when there is one.
pub fn write(dir: &Path, run: &Value, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(run)? + "\n",
    )?;
    let mut md = markdown(run);
    // Hand-written observations (no figures of their own) are kept across runs.
    if let Ok(notes) = std::fs::read_to_string(dir.join(format!("{name}-notes.md"))) {
        md.push('\n');
        md.push_str(&notes);
    }
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    Ok(())
}

pub fn markdown(run: &Value) -> String {
    let mut o = String::new();
    let m = &run["machine"];
    let sc = &run["scenarios"];
    o.push_str("# Benchmarks: Convene's own scenarios\n\n");
    o.push_str(
        "This file and its `.json` twin are written by `convene-load --write-report docs/` \
         (`benches/run.sh`); the side-by-side run with Janus is in \
         [benchmarks.md](benchmarks.md); \
         every figure below comes from the run it describes. Re-run to refresh them.\n\n",
    );
    o.push_str("## Method\n\n");
    let workers = run["server"]["media_workers"].as_u64().unwrap_or(1);
    let shard = run["server"]["media_shard_peers"].as_u64().unwrap_or(0);
    let _ = write!(
        o,
        "`convene-load` (crate `benches/`) drives many WebRTC peers from one process: each \
         media thread owns many str0m peers (RTP mode, one UDP socket per peer, one mio poll \
         per thread; no async on the media path). Every peer joins through the real REST API \
         (room, token) and the real `/rtc` WebSocket, and connects with real ICE, DTLS and \
         SRTP to a `convene serve` started for the run with {workers} media worker{}{}.\n\n",
        if workers == 1 { "" } else { "s" },
        if shard > 0 {
            format!(
                " (`--media-shard-peers {shard}`: a room's participants fill one worker up to \
                 {shard}, then the next; the workers relay each publisher's packets to each \
                 other)"
            )
        } else {
            String::new()
        },
    );
    o.push_str(
        "Publishers send VP8-shaped video (VP8 payload descriptor with PictureID, a real \
         keyframe header, frames sized so that a keyframe every 3 s at 5x a delta frame \
         averages to the bitrate, packets of at most 1160 B payload, 30 fps) and Opus-shaped \
         audio (80 B every 20 ms = 32 kbit/s), and answer PLIs with a keyframe. Each payload \
         carries the send time (same process, same monotonic clock), so a subscriber \
         measures the added latency of every packet: publisher write to str0m -> SFU -> \
         subscriber's str0m output, over loopback.\n\n\
         A window: the counters are reset, traffic runs for the window, then loss is counted \
         after a further 1 s NACK window (sequence numbers missing between the first and last \
         packet each subscriber stream saw in the window). The SFU's CPU is utime+stime of \
         its process from /proc/PID/stat over the window; *forwarded pps per server CPU-s* \
         is the packets subscribers received divided by those CPU seconds. The generator \
         reads its own CPU the same way; a window where it used more than 70% of its core is \
         marked invalid (not a measurement of the SFU). A step is *degraded* at loss > 0.1% \
         or p99 latency > 20 ms.\n\n\
         Scenarios: S1 one 720p-like publisher (2.5 Mbit/s + Opus), subscribers added in \
         steps until degraded or invalid; S2 N x N meetings at 360p-like 500 kbit/s; S3 \
         speakers and listeners; S4 a storm of concurrent joins (phases measured from the \
         start of each join: WebSocket open, joined, SDP in (the offer reached the \
         joiner's media thread) and done, first ICE check sent, first reply received, ICE \
         connected, DTLS done, first RTP and first keyframe (when their datagram reached the \
         joiner's socket), and when the generator's thread read that keyframe). Not simulated: network loss, jitter or bandwidth limits \
         (loopback only), real encoders, simulcast (the generator publishes one layer).\n\n",
    );
    o.push_str("## Machine and conditions\n\n");
    let _ = writeln!(
        o,
        "- CPU: {} ({} logical CPUs{}), {} GiB RAM, Linux {}",
        m["cpu_model"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["cpu_mhz"]
            .as_str()
            .map(|s| format!(", {s} MHz"))
            .unwrap_or_default(),
        m["mem_gib"],
        m["kernel"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        o,
        "- Date: {}; server pinned to CPU {}, generator to CPU {}",
        run["date"].as_str().unwrap_or("?"),
        run["server"]["pinned_cpu"].as_str().unwrap_or("none"),
        run["generator"]["pinned_cpu"].as_str().unwrap_or("none"),
    );
    let _ = writeln!(
        o,
        "- Load average (1/5/15 min) before the run: {}; after: {}",
        run["loadavg_before"], run["loadavg_after"]
    );
    o.push_str(
        "- **Noisy figures**: this is a shared 2-CPU build machine; other jobs (compilers) \
         ran at the same time, as the load average shows. Treat the figures as a smoke-level \
         baseline of the method, not as capacity numbers.\n\n",
    );
    o.push_str("## Reproduce\n\n```sh\n");
    let _ = writeln!(o, "{}", run["command"].as_str().unwrap_or(""));
    o.push_str(
        "```\n\n(or `benches/run.sh`, which builds both binaries in release mode first).\n\n",
    );
    o.push_str(
        "## Headline\n\n`convene.forwarded_pps_per_core`, `convene.latency_*` and \
         `convene.loss_ratio` are from the valid, non-degraded window with the most \
         forwarded packets (S1, S2 or S3); `convene.peak_*` from the valid window with the \
         most forwarded packets, degraded or not (the saturation point); `convene.join_*` \
         from S4 (join = time to the first keyframe).\n\n| key | value |\n|---|---|\n",
    );
    if let Some(h) = run["headline"].as_object() {
        for (k, v) in h {
            let _ = writeln!(
                o,
                "| `{k}` | {} |",
                if v.is_f64() { f(v, 2) } else { v.to_string() }
            );
        }
    }
    o.push('\n');
    if let Some(steps) = sc["s1"]["steps"].as_array() {
        let _ = writeln!(
            o,
            "## S1: one publisher ({} bit/s video + Opus), subscribers in steps\n\nStopped: {}.\n",
            sc["s1"]["publisher_video_bps"],
            sc["s1"]["stop_reason"].as_str().unwrap_or("?")
        );
        o.push_str(WINDOW_HEAD);
        for s in steps {
            window_row(&mut o, &format!("{} subscribers", s["subscribers"]), s);
        }
        o.push('\n');
    }
    if let Some(ms) = sc["s2"]["meetings"].as_array() {
        let _ = writeln!(
            o,
            "## S2: N x N meetings ({} bit/s video + Opus each)\n",
            sc["s2"]["publisher_video_bps"]
        );
        o.push_str(WINDOW_HEAD);
        for s in ms {
            window_row(&mut o, &format!("{0} x {0}", s["publishers"]), s);
        }
        if let Some(f) = sc["s2"]["failures"].as_array().filter(|f| !f.is_empty()) {
            let _ = writeln!(o, "\nNot measured: {}", json!(f));
        }
        o.push('\n');
    }
    if !sc["s3"].is_null() {
        let _ = writeln!(
            o,
            "## S3: {} speakers, {} listeners\n",
            sc["s3"]["speakers"], sc["s3"]["listeners"]
        );
        if sc["s3"]["window"].is_object() {
            o.push_str(WINDOW_HEAD);
            let mut w = sc["s3"]["window"].clone();
            w["degraded"] = sc["s3"]["degraded"].clone();
            window_row(&mut o, "listeners", &w);
        } else {
            let _ = writeln!(o, "Failed: {}", sc["s3"]["failure"]);
        }
        o.push('\n');
    }
    if !sc["s4"].is_null() {
        let s4 = &sc["s4"];
        let _ = writeln!(
            o,
            "## S4: {} concurrent joins (one publisher in the room){}\n\n{} joined, all ready: {} (after {} ms).\n",
            s4["joins"],
            s4["storms"]
                .as_u64()
                .filter(|&n| n > 1)
                .map(|n| format!(", median of {n} storms"))
                .unwrap_or_default(),
            s4["joined"],
            s4["all_ready"],
            f(&s4["all_ready_ms"], 0)
        );
        o.push_str("| phase (from join start) | n | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n");
        for ph in [
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
        ] {
            let p = &s4["phases"][ph];
            let _ = writeln!(
                o,
                "| {ph} | {} | {} | {} | {} | {} |",
                p["n"],
                f(&p["p50_ms"], 1),
                f(&p["p95_ms"], 1),
                f(&p["p99_ms"], 1),
                f(&p["max_ms"], 1)
            );
        }
        o.push('\n');
    }
    if !sc["s5"].is_null() {
        o.push_str(&crate::soak::markdown(&sc["s5"]));
    }
    if let Some(mb) = run["micro"].as_str() {
        o.push_str("## Micro-benchmarks\n\n");
        o.push_str(mb);
        o.push('\n');
    } else {
        o.push_str(
            "## Micro-benchmarks\n\n`cargo bench -p convene-benches` (criterion): the \
             forwarding decision per packet, fan-out of one packet to 1, 10, 100 and 1000 \
             subscribers through the forwarder alone and through str0m peers (SRTP included), \
             a NACK answered from the cache, and the RTP header rewrite. \
             Their figures are in criterion's own report (target/criterion); they are not \
             part of this file.\n",
        );
    }
    o
}
