//! The scenarios: S1 (one publisher, subscribers in steps), S2 (N x N
//! meetings), S3 (speakers and listeners), S4 (a storm of joins).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use crate::media::{JoinTimes, PeerState, PublishCfg};
use crate::payload::VideoShape;
use crate::signaling::SignalingAdapter;
use crate::stats::percentile;
use crate::{Load, Window};

/// Settings shared by the scenarios.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Warm-up after a step is ready, before its window.
    pub warmup: Duration,
    /// Length of a measurement window, seconds.
    pub window: f64,
    pub ready_timeout: Duration,
    pub keyframe_interval: Duration,
    /// S1 goes on past a degraded step (to draw the curve) and stops only
    /// when the generator saturates or the SFU collapses (loss > 5 % or
    /// p99 > 1 s).
    pub s1_keep_going: bool,
}

pub fn video_720p(bps: u64, kf: Duration) -> VideoShape {
    VideoShape {
        bitrate_bps: bps,
        fps: 30,
        keyframe_interval: kf,
        width: 1280,
        height: 720,
    }
}

pub fn video_360p(bps: u64, kf: Duration) -> VideoShape {
    VideoShape {
        bitrate_bps: bps,
        fps: 30,
        keyframe_interval: kf,
        width: 640,
        height: 360,
    }
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub publishers: usize,
    pub subscribers: usize,
    /// Streams forwarded to each subscriber (audio + video per remote publisher).
    pub streams_per_subscriber: usize,
    #[serde(flatten)]
    pub window: Window,
    pub degraded: bool,
}

/// S1: one publisher (720p-like video + Opus); subscribers are added in
/// steps until loss or p99 latency degrade, the generator saturates, or
/// the steps run out.
pub async fn s1<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    bitrate: u64,
    steps: &[usize],
) -> Result<Value> {
    let room = load
        .adapter
        .create_room(steps.iter().copied().max().unwrap_or(1) + 1)
        .await?;
    let publish = PublishCfg {
        video: video_720p(bitrate, set.keyframe_interval),
        audio: true,
    };
    let publisher = load.join(&room, Some(publish)).await?;
    let mut subs: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    let mut stop_reason = "all steps done".to_string();
    for &n in steps {
        if n > subs.len() {
            let more = load.join_many(&room, n - subs.len(), 10, None).await?;
            subs.extend(more);
        }
        if let Err(e) = load.wait_ready(&subs, 2, 1, set.ready_timeout).await {
            stop_reason = format!("step {n}: {e}");
            break;
        }
        tokio::time::sleep(set.warmup).await;
        let w = load.measure(set.window).await;
        let degraded = w.degraded();
        let valid = w.valid;
        let (w_loss, w_p99) = (w.loss_ratio, w.latency_p99_us);
        eprintln!(
            "S1 {n:>4} subscribers: rx {:.0} pps, loss {:.4}%, p50 {:?} µs, p99 {:?} µs (to socket p99 {:?}, generator floor p99 {:?} = rx {:?} + tx {:?}), server cpu {:?}, generator cpu {:.2}{}",
            w.rx_pps,
            w.loss_ratio * 100.0,
            w.latency_p50_us,
            w.latency_p99_us,
            w.latency_to_socket_p99_us,
            w.generator_floor_p99_us,
            w.generator_rx_floor_p99_us,
            w.generator_tx_floor_p99_us,
            w.server_cpu.map(|c| (c * 100.0).round() / 100.0),
            w.generator_cpu,
            if valid {
                ""
            } else {
                " (INVALID: generator saturated)"
            }
        );
        out.push(Step {
            publishers: 1,
            subscribers: n,
            streams_per_subscriber: 2,
            window: w,
            degraded,
        });
        if !valid {
            stop_reason = format!(
                "generator above {}% CPU at {n}",
                crate::MAX_GENERATOR_CPU * 100.0
            );
            break;
        }
        let collapsed = w_loss > 0.05 || w_p99.is_some_and(|p| p > 1_000_000);
        if degraded && (!set.s1_keep_going || collapsed) {
            stop_reason = format!("degraded at {n} subscribers");
            break;
        }
    }
    load.remove(&subs);
    load.remove(&[publisher]);
    let best = out
        .iter()
        .filter(|s| s.window.valid && !s.degraded)
        .map(|s| s.subscribers)
        .max();
    // Capacity: the last step of the unbroken run of good steps from the start.
    let capacity = out
        .iter()
        .take_while(|s| s.window.valid && !s.degraded)
        .last()
        .map(|s| (s.subscribers, s.window.rx_pps));
    Ok(json!({
        "publisher_video_bps": bitrate,
        "max_subscribers_without_degradation": best,
        "capacity_subscribers": capacity.map(|c| c.0),
        "capacity_forwarded_pps": capacity.map(|c| c.1),
        "stop_reason": stop_reason,
        "steps": out,
    }))
}

/// S2: N x N meetings (everyone publishes 360p-like video + Opus).
pub async fn s2<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    bitrate: u64,
    sizes: &[usize],
) -> Result<Value> {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for &n in sizes {
        let room = load.adapter.create_room(n).await?;
        let publish = PublishCfg {
            video: video_360p(bitrate, set.keyframe_interval),
            audio: true,
        };
        let ids = load.join_many(&room, n, 5, Some(publish)).await?;
        let streams = 2 * (n - 1);
        match load
            .wait_ready(&ids, streams, n - 1, set.ready_timeout)
            .await
        {
            Ok(_) => {
                tokio::time::sleep(set.warmup).await;
                let w = load.measure(set.window).await;
                eprintln!(
                    "S2 {n}x{n}: rx {:.0} pps, loss {:.4}%, p99 {:?} µs, server cpu {:?}, generator cpu {:.2}{}",
                    w.rx_pps,
                    w.loss_ratio * 100.0,
                    w.latency_p99_us,
                    w.server_cpu,
                    w.generator_cpu,
                    if w.valid { "" } else { " (INVALID)" }
                );
                let degraded = w.degraded();
                let valid = w.valid;
                out.push(Step {
                    publishers: n,
                    subscribers: n,
                    streams_per_subscriber: streams,
                    window: w,
                    degraded,
                });
                load.remove(&ids);
                tokio::time::sleep(Duration::from_secs(2)).await;
                if !valid {
                    failures.push(format!("{n}: generator saturated; larger sizes skipped"));
                    break;
                }
            }
            Err(e) => {
                eprintln!("S2 {n}x{n}: {e}");
                failures.push(format!("{n}: {e}"));
                load.remove(&ids);
                break;
            }
        }
    }
    Ok(json!({"publisher_video_bps": bitrate, "meetings": out, "failures": failures}))
}

/// S3: `speakers` publishers (360p-like + Opus) and `listeners` who only receive.
pub async fn s3<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    bitrate: u64,
    speakers: usize,
    listeners: usize,
) -> Result<Value> {
    let room = load.adapter.create_room(speakers + listeners).await?;
    let publish = PublishCfg {
        video: video_360p(bitrate, set.keyframe_interval),
        audio: true,
    };
    let spk = load.join_many(&room, speakers, 5, Some(publish)).await?;
    let lis = load.join_many(&room, listeners, 10, None).await?;
    let ready = load
        .wait_ready(&lis, 2 * speakers, speakers, set.ready_timeout)
        .await;
    let result = match ready {
        Ok(_) => {
            tokio::time::sleep(set.warmup).await;
            let w = load.measure(set.window).await;
            eprintln!(
                "S3 {speakers} speakers, {listeners} listeners: rx {:.0} pps, loss {:.4}%, p99 {:?} µs{}",
                w.rx_pps,
                w.loss_ratio * 100.0,
                w.latency_p99_us,
                if w.valid { "" } else { " (INVALID)" }
            );
            json!({"speakers": speakers, "listeners": listeners, "degraded": w.degraded(), "window": w})
        }
        Err(e) => json!({"speakers": speakers, "listeners": listeners, "failure": e.to_string()}),
    };
    load.remove(&lis);
    load.remove(&spk);
    Ok(result)
}

fn phase(joins: &[JoinTimes], f: fn(&JoinTimes) -> Option<f64>) -> Value {
    let mut v: Vec<u64> = joins
        .iter()
        .filter_map(f)
        .map(|ms| (ms * 1000.0) as u64)
        .collect();
    let n = v.len();
    let mut p = |q| percentile(&mut v, q).map(|us| us as f64 / 1000.0);
    json!({"n": n, "p50_ms": p(50.0), "p95_ms": p(95.0), "p99_ms": p(99.0), "max_ms": p(100.0)})
}

/// Join-phase percentiles of a set of peers.
pub fn join_phases(states: &[PeerState]) -> Value {
    let joins: Vec<JoinTimes> = states.iter().map(|s| s.join.clone()).collect();
    json!({
        "ws_open": phase(&joins, |j| Some(j.ws_open_ms)),
        "joined": phase(&joins, |j| Some(j.joined_ms)),
        "sdp_in": phase(&joins, |j| j.sdp_in_ms),
        "sdp_done": phase(&joins, |j| j.sdp_done_ms),
        "first_check": phase(&joins, |j| j.first_check_ms),
        "first_reply": phase(&joins, |j| j.first_reply_ms),
        "ice_connected": phase(&joins, |j| j.ice_connected_ms),
        "dtls_done": phase(&joins, |j| j.dtls_done_ms),
        "first_rtp": phase(&joins, |j| j.first_rtp_ms),
        "first_keyframe": phase(&joins, |j| j.first_keyframe_ms),
        "first_keyframe_read": phase(&joins, |j| j.first_keyframe_read_ms),
    })
}

/// S4: `joins` subscribers join at once a room with one publisher, in
/// `storms` rooms one after another; `joins_out`, when given, gets every
/// join's phases (storms after the first in `<path>-r<k>`). With more than
/// one storm, each phase's figures are the median of the storms' (one
/// storm's figures spread by ~100 ms between runs on a 2-core VM, more
/// than the difference between two SFUs they are to tell apart), and every
/// storm's phases are kept under `storm_phases`.
pub async fn s4<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    bitrate: u64,
    joins: usize,
    storms: usize,
    joins_out: Option<&std::path::Path>,
) -> Result<Value> {
    let storms = storms.max(1);
    let mut each = Vec::with_capacity(storms);
    for k in 1..=storms {
        let out = joins_out.map(|p| {
            if k == 1 {
                p.to_path_buf()
            } else {
                let mut name = p.as_os_str().to_owned();
                name.push(format!("-r{k}"));
                std::path::PathBuf::from(name)
            }
        });
        each.push(s4_storm(load, set, bitrate, joins, out.as_deref()).await?);
    }
    if storms == 1 {
        return Ok(each.remove(0));
    }
    Ok(median_of_storms(joins, &each))
}

/// One S4 result from several storms' (`s4_storm`): each phase's
/// percentiles and the time to all ready are the medians of the storms',
/// the counts are the worst storm's and the sums.
fn median_of_storms(joins: usize, each: &[Value]) -> Value {
    let median = |mut v: Vec<f64>| -> Value {
        if v.is_empty() {
            return Value::Null;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let m = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        json!(m)
    };
    let mut phases = serde_json::Map::new();
    if let Some(first) = each[0]["phases"].as_object() {
        for (name, stats) in first {
            let mut out = serde_json::Map::new();
            for key in stats.as_object().into_iter().flatten().map(|(k, _)| k) {
                let vals = each.iter().filter_map(|r| r["phases"][name][key].as_f64());
                if key == "n" {
                    out.insert(key.clone(), json!(vals.sum::<f64>() as u64));
                } else {
                    out.insert(key.clone(), median(vals.collect()));
                }
            }
            phases.insert(name.clone(), Value::Object(out));
        }
    }
    let errors: Vec<Value> = each
        .iter()
        .flat_map(|r| r["join_errors"].as_array().cloned().unwrap_or_default())
        .collect();
    json!({
        "joins": joins,
        "storms": each.len(),
        "joined": each.iter().filter_map(|r| r["joined"].as_u64()).min(),
        "join_errors": errors,
        "all_ready": each.iter().all(|r| r["all_ready"] == true),
        "all_ready_ms": median(each.iter().filter_map(|r| r["all_ready_ms"].as_f64()).collect()),
        "phases": phases,
        "storm_phases": each.iter().map(|r| r["phases"].clone()).collect::<Vec<_>>(),
        "storm_settled_secs": each.iter().map(|r| r["settled_secs"].clone()).collect::<Vec<_>>(),
    })
}

/// One S4 storm: `joins` subscribers join at once a new room with one
/// publisher.
async fn s4_storm<A: SignalingAdapter>(
    load: &Load<A>,
    set: &Settings,
    bitrate: u64,
    joins: usize,
    joins_out: Option<&std::path::Path>,
) -> Result<Value> {
    let (waited, cpu) = load.settle().await;
    eprintln!(
        "S4: the SFU settled in {:.1} s (CPU {})",
        waited.as_secs_f64(),
        cpu.map_or("not known".into(), |c| format!("{c:.3}"))
    );
    let room = load.adapter.create_room(joins + 1).await?;
    let publish = PublishCfg {
        video: video_360p(bitrate, set.keyframe_interval),
        audio: true,
    };
    let publisher = load.join(&room, Some(publish)).await?;
    load.wait_ready(&[publisher], 0, 0, set.ready_timeout)
        .await?;
    let mut prepared = Vec::with_capacity(joins);
    for _ in 0..joins {
        prepared.push(load.prepare(&room).await?);
    }
    let started = std::time::Instant::now();
    let all = prepared
        .into_iter()
        .map(|p| load.join_prepared(&room, p, None));
    let mut ids = Vec::new();
    let mut failed = Vec::new();
    for r in futures::future::join_all(all).await {
        match r {
            Ok(id) => ids.push(id),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let ready = load.wait_ready(&ids, 2, 1, set.ready_timeout).await;
    let all_ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let states: Vec<PeerState> = load
        .peer_states()
        .await
        .into_iter()
        .filter(|p| ids.contains(&p.id))
        .collect();
    let phases = join_phases(&states);
    let dumped = joins_out.map_or(Ok(()), |path| {
        let per: Vec<&JoinTimes> = states.iter().map(|s| &s.join).collect();
        let anchor = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(started.elapsed());
        let doc = json!({"anchor_ms": anchor.as_secs_f64() * 1000.0, "joins": per});
        std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))
    });
    eprintln!(
        "S4 {joins} joins: first keyframe p50 {} ms, p99 {} ms{}",
        phases["first_keyframe"]["p50_ms"],
        phases["first_keyframe"]["p99_ms"],
        ready
            .as_ref()
            .err()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    load.remove(&ids);
    load.remove(&[publisher]);
    dumped?;
    Ok(json!({
        "joins": joins,
        "settled_secs": waited.as_secs_f64(),
        "settled_server_cpu": cpu,
        "joined": ids.len(),
        "join_errors": failed,
        "all_ready": ready.is_ok(),
        "all_ready_ms": all_ready_ms,
        "phases": phases,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn storm(p50: f64, p99: f64, joined: u64, ready: bool) -> Value {
        json!({
            "joins": 10,
            "joined": joined,
            "join_errors": if joined < 10 { json!(["refused"]) } else { json!([]) },
            "all_ready": ready,
            "all_ready_ms": p99 + 50.0,
            "phases": {"first_keyframe": {"n": joined, "p50_ms": p50, "p99_ms": p99}},
        })
    }

    /// Three storms: each percentile is the middle storm's, whichever
    /// storm that is; counts are summed, the worst storm's joins and
    /// readiness stand, and every storm is kept.
    #[test]
    fn several_storms_give_their_median() {
        let each = [
            storm(300.0, 320.0, 10, true),
            storm(170.0, 400.0, 9, false),
            storm(200.0, 210.0, 10, true),
        ];
        let m = median_of_storms(10, &each);
        assert_eq!(m["storms"], 3);
        assert_eq!(m["phases"]["first_keyframe"]["p50_ms"], 200.0);
        assert_eq!(m["phases"]["first_keyframe"]["p99_ms"], 320.0);
        assert_eq!(m["phases"]["first_keyframe"]["n"], 29);
        assert_eq!(m["all_ready_ms"], 370.0);
        assert_eq!(m["joined"], 9);
        assert_eq!(m["all_ready"], false);
        assert_eq!(m["join_errors"], json!(["refused"]));
        assert_eq!(m["storm_phases"].as_array().unwrap().len(), 3);
    }
}
