//! WHEP playback against the real server: an in-process str0m viewer posts
//! a receive-only offer over HTTP and is shown the room's active speaker
//! (one continuous stream while the speaker changes) or one chosen
//! participant; refusals leave no trace in the room.

use std::time::{Duration, Instant};

use convene_tests::rtc_client::{Client, ClientEvent, Shape};
use convene_tests::{Server, join, media_ip};
use serde_json::{Value, json};
use str0m::media::MediaKind;

use crate::browser::token;
use crate::whip::live_count;

/// Video packet lengths that tell the publishers apart.
const ALICE_LEN: usize = 700;
const BOB_LEN: usize = 800;
/// Silence and speech in -dBov.
const QUIET: i8 = 127;
const LOUD: i8 = 10;

/// Collects until the viewer got `n` video packets of `len` bytes.
async fn wait_video_of(c: &mut Client, len: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c
            .received(MediaKind::Video)
            .iter()
            .filter(|r| r.len == len)
            .count();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer got {got} of {n} video packets of {len} bytes; lengths seen: {:?}",
            lengths(c)
        );
        c.collect_for(Duration::from_millis(200)).await;
    }
}

fn lengths(c: &Client) -> Vec<usize> {
    let mut l: Vec<usize> = c.received(MediaKind::Video).iter().map(|r| r.len).collect();
    l.dedup();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_follows_the_speaker_in_one_continuous_stream_or_watches_one_participant() {
    let s = Server::start();
    // The room defaults a user gets.
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "stage"}))
        .await
        .expect(200);
    let t = token(&s, "stage", "Alice", "moderator").await;
    let (alice, _) = join(&s, "stage", "Alice", Some(t)).await;
    alice.shape(Shape {
        video_len: Some(ALICE_LEN),
        audio_level: Some(QUIET),
    });
    alice.publish();
    let t = token(&s, "stage", "Bob", "moderator").await;
    let (bob, _) = join(&s, "stage", "Bob", Some(t)).await;
    bob.shape(Shape {
        video_len: Some(BOB_LEN),
        audio_level: Some(QUIET),
    });
    bob.publish();

    let t = token(&s, "stage", "Player", "attendee").await;
    let mut player = Client::whep(s.url("/whep/stage"), Some(t), media_ip(), 1, 1);
    let created = player.wait_type("whep").await;
    assert_eq!(created["status"], 201, "{created}");
    let location = created["location"].as_str().unwrap();
    assert!(location.starts_with("/whep/stage/"), "{location}");

    // Alice speaks: the player is shown Alice, and hears her.
    alice.shape(Shape {
        video_len: Some(ALICE_LEN),
        audio_level: Some(LOUD),
    });
    wait_video_of(&mut player, ALICE_LEN, 60).await;
    player
        .wait_rtp(MediaKind::Audio, 50, Duration::from_secs(20))
        .await;
    // Bob speaks, Alice is quiet: the same m-line now shows Bob.
    alice.shape(Shape {
        video_len: Some(ALICE_LEN),
        audio_level: Some(QUIET),
    });
    bob.shape(Shape {
        video_len: Some(BOB_LEN),
        audio_level: Some(LOUD),
    });
    wait_video_of(&mut player, BOB_LEN, 60).await;

    // One stream: a single mid, every sequence number once and in order
    // (loopback loses nothing), timestamps never going back.
    let video: Vec<_> = player
        .received(MediaKind::Video)
        .into_iter()
        .cloned()
        .collect();
    let mids: std::collections::BTreeSet<_> = video.iter().map(|r| r.mid).collect();
    assert_eq!(mids.len(), 1, "one video m-line");
    let switches = video.windows(2).filter(|w| w[0].len != w[1].len).count();
    assert!(switches >= 1, "the picture changed: {:?}", lengths(&player));
    for w in video.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "the outgoing sequence is continuous across the handover"
        );
        assert!(
            w[1].ts.wrapping_sub(w[0].ts) < 1 << 31,
            "timestamps go forward: {} then {}",
            w[0].ts,
            w[1].ts
        );
    }
    assert_eq!(
        live_count(&s, "stage").await,
        3,
        "the viewer is a participant"
    );

    // A viewer that asks for one participant: Carol, who joins with her
    // camera only (the room's default has the microphone off).
    let t = token(&s, "stage", "Carol", "moderator").await;
    let (carol, joined) = join(&s, "stage", "Carol", Some(t)).await;
    let carol_id = joined["participant"]["id"].as_str().unwrap().to_string();
    carol.publish_kinds(false, true);
    let t = token(&s, "stage", "Watcher", "attendee").await;
    let mut watcher = Client::whep(
        s.url(&format!("/whep/stage?participant={carol_id}")),
        Some(t),
        media_ip(),
        1,
        1,
    );
    assert_eq!(watcher.wait_type("whep").await["status"], 201);
    wait_video_of(
        &mut watcher,
        convene_tests::rtc_client::SIMULCAST_LEN[2],
        60,
    )
    .await;
    assert!(
        watcher
            .received(MediaKind::Video)
            .iter()
            .all(|r| r.len == convene_tests::rtc_client::SIMULCAST_LEN[2]),
        "only Carol: {:?}",
        lengths(&watcher)
    );
    assert!(
        watcher.received(MediaKind::Audio).is_empty(),
        "Carol has no microphone, and nobody else is shown"
    );

    // DELETE ends the session: the viewer leaves the room.
    player.leave();
    let mut closed = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed.is_empty() && Instant::now() < deadline {
        // Media still queued comes first.
        if let Ok(Some(ClientEvent::Closed(r))) =
            tokio::time::timeout(Duration::from_millis(100), player.events.recv()).await
        {
            closed = r;
        }
    }
    assert!(closed.contains("DELETE 200"), "{closed}");
    let mut count = 0;
    for _ in 0..50 {
        count = live_count(&s, "stage").await;
        if count == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 4, "Alice, Bob, Carol and the watcher remain");
}

/// Posts to `/whep/{path}` with the given token and body.
async fn post(s: &Server, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(s.url(&format!("/whep/{path}")))
        .header("content-type", "application/sdp")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A real receive-only offer, as a player would post it.
fn offer(direction: str0m::media::Direction) -> String {
    let mut rtc = str0m::Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host("127.0.0.2:40000".parse().unwrap(), "udp").unwrap(),
    );
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, direction, None, None, None);
    change.add_media(MediaKind::Video, direction, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_refusals_are_clear_and_leave_nothing_behind() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "screening"}))
        .await
        .expect(200);
    let good = token(&s, "screening", "Player", "attendee").await;
    let sdp = offer(str0m::media::Direction::RecvOnly);

    let (status, body) = post(&s, "screening", None, &sdp).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "TOKEN_REQUIRED");
    let (status, body) = post(&s, "screening", Some("not.a.token"), &sdp).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(&s, "screening", Some(&good), "v=0\r\nnonsense").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("SDP"));
    // An offer that sends belongs to WHIP.
    let sends = offer(str0m::media::Direction::SendRecv);
    let (status, body) = post(&s, "screening", Some(&good), &sends).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("WHIP"));
    // A participant id that cannot be one, and an unknown parameter.
    let (status, body) = post(&s, "screening?participant=../etc", Some(&good), &sdp).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&s, "screening?layer=f", Some(&good), &sdp).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        live_count(&s, "screening").await,
        0,
        "no participant left behind"
    );

    // The resource URL needs the session's token and its own protocol.
    let mut player = Client::whep(
        s.url("/whep/screening"),
        Some(good.clone()),
        media_ip(),
        1,
        1,
    );
    let created = player.wait_type("whep").await;
    assert_eq!(created["status"], 201, "{created}");
    let location = created["location"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let other = token(&s, "screening", "Mallory", "attendee").await;
    let res = http
        .delete(s.url(&location))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401, "another token cannot end it");
    let as_whip = location.replacen("/whep/", "/whip/", 1);
    let res = http
        .delete(s.url(&as_whip))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        404,
        "a WHEP session is not a WHIP one"
    );
    let res = http
        .delete(s.url(&location))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut left = 1;
    for _ in 0..50 {
        left = live_count(&s, "screening").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the viewer left with its session");
}
