//! Internal queues overflowed from outside (issue 18, case 28): the thread
//! that drains a queue is stopped with ptrace (`convene_tests::stall`), the
//! real server keeps running around it, and its producers must drop and
//! count instead of waiting or growing; once the thread runs again the
//! queue drains and the work goes on.
//!
//! - the cross-worker RTP relay queue (8,192 packets): a subscriber on a
//!   stopped media worker, publishers on the others
//!   (`convene_rtp_relay_dropped_total`);
//! - a transcriber's queue (4,096 events): the room's `transcribe-…` thread
//!   stopped while its participants speak
//!   (`convene_transcriber_dropped_packets_total`); forwarding goes on.

use std::time::{Duration, Instant};

use convene_tests::rtc_client::Client;
use convene_tests::stall::{Stall, thread_named, thread_state};
use convene_tests::{Options, Server};
use serde_json::json;
use str0m::media::MediaKind;

use crate::shard::{metric, worker_of};

const WAIT: Duration = Duration::from_secs(90);

async fn speaker(s: &Server, room: &str, name: &str) -> (Client, String) {
    let token = crate::browser::token(s, room, name, "speaker").await;
    let (c, joined) = convene_tests::join(s, room, name, Some(token)).await;
    let id = joined["participant"]["id"].as_str().unwrap().to_string();
    (c, id)
}

/// Waits until the counter `name` is above zero; returns it.
async fn counted(s: &Server, name: &str, what: &str) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = metric(s, name).await.unwrap_or(0.0);
        if n > 0.0 {
            return n;
        }
        assert!(Instant::now() < deadline, "{what}: {name} stayed 0");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether packets are still handed toward a stopped worker (relayed or
/// dropped) within 5 s.
async fn relaying_goes_on(s: &Server) -> bool {
    let moved = || async {
        metric(s, "convene_rtp_packets_relayed_total")
            .await
            .unwrap_or(0.0)
            + metric(s, "convene_rtp_relay_dropped_total")
                .await
                .unwrap_or(0.0)
    };
    let check = async {
        let before = moved().await;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if moved().await > before {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .is_ok()
}

/// Waits until the counter `name` stops growing (two reads 2 s apart agree).
async fn settled(s: &Server, name: &str) -> f64 {
    let deadline = Instant::now() + WAIT;
    let mut last = metric(s, name).await.unwrap_or(0.0);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = metric(s, name).await.unwrap_or(0.0);
        if now == last {
            return now;
        }
        assert!(Instant::now() < deadline, "{name} keeps growing: {now}");
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_overflows_its_relay_queue_drops_are_counted_and_it_recovers() {
    // Three workers; a room spills to the next worker after one participant.
    let s = Server::start_with(Options {
        args: vec!["--media-workers".into(), "3".into()],
        env: vec![("CONVENE_MEDIA_SHARD_PEERS".into(), "1".into())],
        ..Default::default()
    });
    let pid = s.pid().unwrap();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "flood"}))
        .await
        .expect(200);
    let (mut sub, _) = speaker(&s, "flood", "Sub").await;
    let mut publishers = Vec::new();
    for i in 0..6 {
        let (mut p, id) = speaker(&s, "flood", &format!("P{i}")).await;
        p.publish_simulcast();
        p.wait_type("answer").await;
        let w = worker_of(&mut p).await;
        publishers.push((p, id, w));
    }
    // The subscriber gets offers for the publishers' tracks, then media.
    sub.wait_rtp(MediaKind::Video, 100, WAIT).await;
    let w = worker_of(&mut sub).await;
    let remote = publishers.iter().filter(|(_, _, pw)| *pw != w).count();
    assert!(remote >= 2, "only {remote} publishers off worker {w}");
    // Every publisher's video reaches the subscriber, the remote ones'
    // through the relay into its worker: the queue the stop must fill.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut mids: Vec<_> = sub
            .received(MediaKind::Video)
            .iter()
            .map(|r| r.mid)
            .collect();
        mids.sort();
        mids.dedup();
        if mids.len() >= publishers.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "video from {} of {} publishers reached the subscriber",
            mids.len(),
            publishers.len()
        );
        sub.wait_rtp(
            MediaKind::Video,
            sub.received(MediaKind::Video).len() + 10,
            WAIT,
        )
        .await;
    }
    assert_eq!(
        metric(&s, "convene_rtp_relay_dropped_total")
            .await
            .unwrap_or(0.0),
        0.0
    );

    let tid = thread_named(pid, &format!("media-{w}"), Duration::from_secs(5));
    // The stop lands wherever the thread is: now and then inside a lock it
    // shares with the other threads (the allocator's arena, the statistics
    // board's), and then they stop with it, which a real worker's slowness
    // never does. So the other workers must be seen moving packets toward
    // the stopped one (relayed, or dropped once its queue is full) within
    // 5 s; if they are not, the stop is released and made again. (Seen
    // once in a full run: the drops stayed 0 for 90 s.)
    let mut attempt = 0;
    let stall = loop {
        attempt += 1;
        let stall = Stall::thread(pid, tid);
        assert_eq!(thread_state(pid, tid), Some('t'), "the worker is stopped");
        if relaying_goes_on(&s).await {
            break stall;
        }
        assert!(
            attempt < 5,
            "after {attempt} stops of worker {w}, the other workers moved no packet toward it"
        );
        stall.release();
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The other workers fill the stopped one's queue, then drop and count.
    let relayed = metric(&s, "convene_rtp_packets_relayed_total").await;
    let dropped = counted(
        &s,
        "convene_rtp_relay_dropped_total",
        &format!("stopped worker {w} (packets relayed before the stop: {relayed:?})"),
    )
    .await;
    // Everything else still answers: REST and a new room on another worker.
    s.api().get("/api/v1/rooms/flood").await.expect(200);
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "elsewhere"}))
        .await
        .expect(200);
    let received_before = sub.received(MediaKind::Video).len();
    stall.release();

    // The worker drains its queue and forwards again; drops stop growing.
    let total = settled(&s, "convene_rtp_relay_dropped_total").await;
    assert!(total >= dropped, "{total} < {dropped}");
    sub.wait_rtp(MediaKind::Video, received_before + 200, WAIT)
        .await;
    eprintln!(
        "relay queue: {remote} remote simulcast publishers, {total} packets dropped while the worker was stopped"
    );
    for (p, _, _) in &publishers {
        p.leave();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_transcriber_drops_and_counts_while_forwarding_goes_on() {
    let s = Server::start();
    let pid = s.pid().unwrap();
    let room = s
        .api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "chatter", "transcription_enabled": true}),
        )
        .await
        .expect(200)
        .body;
    let room_id = room["id"].as_str().unwrap().to_string();
    let (mut listener, _) = speaker(&s, "chatter", "Lis").await;
    let mut talkers = Vec::new();
    for i in 0..6 {
        let (mut t, _) = speaker(&s, "chatter", &format!("T{i}")).await;
        t.publish_kinds(true, false);
        t.wait_type("answer").await;
        talkers.push(t);
    }
    listener.wait_rtp(MediaKind::Audio, 100, WAIT).await;
    let name = format!("transcribe-{}", &room_id[..8]);
    let tid = thread_named(pid, &name, Duration::from_secs(20));
    let stall = Stall::thread(pid, tid);
    let dropped = counted(
        &s,
        "convene_transcriber_dropped_packets_total",
        "stopped transcriber",
    )
    .await;
    // Forwarding never waited for it: the listener still hears the room.
    let heard = listener.received(MediaKind::Audio).len();
    listener.wait_rtp(MediaKind::Audio, heard + 250, WAIT).await;
    stall.release();
    let total = settled(&s, "convene_transcriber_dropped_packets_total").await;
    assert!(total >= dropped, "{total} < {dropped}");
    // The transcriber thread is still there and running (not stopped).
    assert_eq!(thread_named(pid, &name, Duration::from_secs(5)), tid);
    assert_ne!(thread_state(pid, tid), Some('t'));
    eprintln!("transcriber queue: {total} packets dropped while its thread was stopped");
    for t in &talkers {
        t.leave();
    }
}
