//! S5, the soak (reliability case 36): a meeting that runs for a long time
//! while listeners keep leaving and joining, sampled at intervals: the SFU's
//! memory (PSS), CPU, loss and latency. What it shows is whether anything
//! grows with time or churn rather than with the number of peers: the PSS
//! slope over the run (KiB per hour) and the first and last samples side by
//! side.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::media::PublishCfg;
use crate::scenarios::{Settings, video_360p};
use crate::signaling::SignalingAdapter;
use crate::stats::linear_fit;
use crate::{Load, Window};

/// What the soak runs.
#[derive(Debug, Clone, Copy)]
pub struct SoakCfg {
    pub duration: Duration,
    /// Publishers (360p-like video + Opus) and listeners in the room.
    pub speakers: usize,
    pub listeners: usize,
    /// One listener leaves and a new one joins this often.
    pub churn_every: Duration,
    /// A measurement window is taken this often.
    pub sample_every: Duration,
    pub bitrate: u64,
}

/// Runs the soak and returns its samples and summary.
pub async fn s5<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    cfg: SoakCfg,
) -> Result<Value> {
    let room = load
        .adapter
        .create_room(cfg.speakers + cfg.listeners + 1)
        .await?;
    let publish = PublishCfg {
        video: video_360p(cfg.bitrate, set.keyframe_interval),
        audio: true,
    };
    let speakers = load
        .join_many(&room, cfg.speakers, 5, Some(publish))
        .await?;
    let mut listeners = load.join_many(&room, cfg.listeners, 5, None).await?;
    let streams = 2 * cfg.speakers;
    load.wait_ready(&listeners, streams, cfg.speakers, set.ready_timeout)
        .await?;
    tokio::time::sleep(set.warmup).await;

    let start = Instant::now();
    let mut samples = Vec::new();
    let mut churned = 0u64;
    let mut churn_failures = 0u64;
    let mut next_churn = start + cfg.churn_every;
    let mut next_sample = start;
    while start.elapsed() < cfg.duration {
        let now = Instant::now();
        if now >= next_churn && !listeners.is_empty() {
            next_churn += cfg.churn_every;
            let gone = listeners.remove(0);
            load.remove(&[gone]);
            match load.join_many(&room, 1, 1, None).await {
                Ok(ids) => {
                    listeners.extend(ids);
                    churned += 1;
                }
                Err(e) => {
                    eprintln!("S5: a rejoin failed: {e:#}");
                    churn_failures += 1;
                }
            }
        }
        if now >= next_sample {
            next_sample += cfg.sample_every;
            let w: Window = load.measure(set.window).await;
            let at_min = start.elapsed().as_secs_f64() / 60.0;
            eprintln!(
                "S5 {at_min:.1} min: pss {:?} KiB, cpu {:?}, loss {:.4}%, p99 {:?} µs, churned {churned}",
                w.server_pss_kib,
                w.server_cpu,
                w.loss_ratio * 100.0,
                w.latency_p99_us
            );
            samples.push(json!({"minute": at_min, "churned": churned, "window": w}));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.remove(&listeners);
    load.remove(&speakers);

    let pss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| {
            Some((
                s["minute"].as_f64()? / 60.0,
                s["window"]["server_pss_kib"].as_f64()?,
            ))
        })
        .collect();
    let slope = linear_fit(&pss).map(|(slope, _)| slope);
    Ok(json!({
        "minutes": cfg.duration.as_secs_f64() / 60.0,
        "speakers": cfg.speakers,
        "listeners": cfg.listeners,
        "churn_every_s": cfg.churn_every.as_secs_f64(),
        "sample_every_s": cfg.sample_every.as_secs_f64(),
        "publisher_video_bps": cfg.bitrate,
        "churned": churned,
        "churn_failures": churn_failures,
        "pss_slope_kib_per_hour": slope,
        "samples": samples,
    }))
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The soak's section of a report.
pub fn markdown(s5: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## S5: soak, {} min: {} speakers, {} listeners, one listener replaced every {} s\n",
        num(&s5["minutes"], 0),
        s5["speakers"],
        s5["listeners"],
        num(&s5["churn_every_s"], 0)
    );
    if let Some(e) = s5["error"].as_str() {
        let _ = writeln!(o, "Failed: {e}\n");
        return o;
    }
    let _ = writeln!(
        o,
        "{} listeners replaced ({} rejoins failed). SFU memory (PSS) trend over the run: \
         **{} KiB per hour**.\n",
        s5["churned"],
        s5["churn_failures"],
        num(&s5["pss_slope_kib_per_hour"], 0)
    );
    o.push_str(
        "| minute | replaced so far | PSS MiB | SFU CPU | loss % | p99 ms | rx pps |\n|---|---|---|---|---|---|---|\n",
    );
    for s in s5["samples"].as_array().into_iter().flatten() {
        let w = &s["window"];
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            num(&s["minute"], 1),
            s["churned"],
            w["server_pss_kib"]
                .as_f64()
                .map(|k| format!("{:.1}", k / 1024.0))
                .unwrap_or_else(|| "–".into()),
            num(&w["server_cpu"], 2),
            w["loss_ratio"]
                .as_f64()
                .map(|l| format!("{:.3}", l * 100.0))
                .unwrap_or_else(|| "–".into()),
            w["latency_p99_us"]
                .as_f64()
                .map(|us| format!("{:.1}", us / 1000.0))
                .unwrap_or_else(|| "–".into()),
            num(&w["rx_pps"], 0)
        );
    }
    o.push('\n');
    o
}
