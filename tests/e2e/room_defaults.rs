//! Rooms with the settings users actually get: created with an empty body,
//! so the Digital Samba defaults apply (`video_on_join_enabled: true`,
//! `audio_on_join_enabled: false`, join screen on). Two headless Chromiums
//! go through the join screen one after the other and must see each other
//! whatever each of them publishes: camera only (the default), microphone
//! only, nothing, and a camera turned on later.

use std::time::Duration;

use convene_tests::Server;
use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Media must arrive within this long.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates a room with `body` and returns its friendly_url.
async fn room(s: &Server, body: Value) -> String {
    let r = s.api().post("/api/v1/rooms", body).await.expect(200);
    r.body["friendly_url"].as_str().unwrap().to_string()
}

/// Opens the room link with a token and presses Join on the join screen,
/// as a user would; waits until joined. Returns the page and its participant id.
async fn join_through_screen(b: &Browser, s: &Server, url: &str, name: &str) -> (Page, String) {
    let t = token(s, url, name, "moderator").await;
    let page = b.open(&s.url(&format!("/{url}?token={t}"))).await;
    page.wait_for(
        "!document.getElementById('screen-join').hidden && \
         !document.getElementById('join-button').disabled",
        JOIN_TIMEOUT,
    )
    .await;
    page.eval("document.getElementById('join-button').click(); true")
        .await;
    wait_state(&page, "joined").await;
    let id = page.eval("window.convene.participantId").await;
    (page, id.as_str().unwrap().to_string())
}

/// Waits until `page` decodes video frames of `other`'s camera (more than
/// `after` frames on that track's receiver).
async fn wait_video_from(page: &Page, other: &str, after: u64, what: &str) -> u64 {
    let js = format!(
        "(async () => {{ const c = window.convene; \
           const t = c.remoteTracks.find(r => r.participant_id === '{other}' && r.source === 'camera'); \
           if (!t) return null; \
           const tr = c.pc.getTransceivers().find(x => x.mid === t.mid); \
           if (!tr) return null; \
           let frames = 0; \
           (await tr.receiver.getStats()).forEach(s => {{ \
             if (s.type === 'inbound-rtp') frames += s.framesDecoded || 0; }}); \
           return frames > {after} ? frames : null; }})()"
    );
    match page.try_wait_for(&js, MEDIA_TIMEOUT).await {
        Ok(v) => v.as_u64().unwrap(),
        Err(e) => panic!(
            "{what}: no video from {other}: {e}\n{}",
            page.report().await
        ),
    }
}

/// Waits until `page` plays audio samples of `other`'s microphone.
async fn wait_audio_from(page: &Page, other: &str, what: &str) {
    let js = format!(
        "(async () => {{ const c = window.convene; \
           const t = c.remoteTracks.find(r => r.participant_id === '{other}' && r.source === 'microphone'); \
           if (!t) return null; \
           const tr = c.pc.getTransceivers().find(x => x.mid === t.mid); \
           if (!tr) return null; \
           let samples = 0; \
           (await tr.receiver.getStats()).forEach(s => {{ \
             if (s.type === 'inbound-rtp') samples += s.totalSamplesReceived || 0; }}); \
           return samples > 0 ? samples : null; }})()"
    );
    if let Err(e) = page.try_wait_for(&js, MEDIA_TIMEOUT).await {
        panic!(
            "{what}: no audio from {other}: {e}\n{}",
            page.report().await
        );
    }
}

/// `page`'s grid has a tile for `other` named `name`.
async fn wait_tile(page: &Page, other: &str, name: &str) {
    page.wait_for(
        &format!(
            "(() => {{ const t = document.querySelector('#grid .tile[data-key=\"{other}\"]'); \
               return t && t.textContent.includes('{name}'); }})()"
        ),
        JOIN_TIMEOUT,
    )
    .await;
}

/// No negotiation step failed in `page`.
async fn assert_clean_negotiation(page: &Page) {
    let n = page.eval("window.convene.negotiation").await;
    assert!(n["lastError"].is_null(), "negotiation failed: {n}");
}

/// The remote sources `page` receives from `other`.
async fn sources_from(page: &Page, other: &str) -> Value {
    page.eval(&format!(
        "window.convene.remoteTracks.filter(r => r.participant_id === '{other}') \
           .map(r => r.source).sort()"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_defaults_camera_only_both_see_each_other() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let url = room(&s, json!({})).await;
    let defaults = s
        .api()
        .get(&format!("/api/v1/rooms/{url}"))
        .await
        .expect(200);
    assert_eq!(defaults.body["audio_on_join_enabled"], false);
    assert_eq!(defaults.body["video_on_join_enabled"], true);
    assert_eq!(defaults.body["join_screen_enabled"], true);
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let (ann, ann_id) = join_through_screen(&b1, &s, &url, "Ann").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ben, ben_id) = join_through_screen(&b2, &s, &url, "Ben").await;

    wait_video_from(&ben, &ann_id, 0, "second joiner").await;
    wait_video_from(&ann, &ben_id, 0, "first joiner").await;
    assert_eq!(sources_from(&ann, &ben_id).await, json!(["camera"]));
    assert_eq!(sources_from(&ben, &ann_id).await, json!(["camera"]));
    wait_tile(&ann, &ben_id, "Ben").await;
    wait_tile(&ben, &ann_id, "Ann").await;
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_microphone_only_both_hear_each_other() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let url = room(
        &s,
        json!({"audio_on_join_enabled": true, "video_on_join_enabled": false}),
    )
    .await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let (ann, ann_id) = join_through_screen(&b1, &s, &url, "Ann").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ben, ben_id) = join_through_screen(&b2, &s, &url, "Ben").await;

    wait_audio_from(&ben, &ann_id, "second joiner").await;
    wait_audio_from(&ann, &ben_id, "first joiner").await;
    assert_eq!(sources_from(&ann, &ben_id).await, json!(["microphone"]));
    assert_eq!(sources_from(&ben, &ann_id).await, json!(["microphone"]));
    wait_tile(&ann, &ben_id, "Ben").await;
    wait_tile(&ben, &ann_id, "Ann").await;
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_nothing_on_join_then_cameras_turned_on_later() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let url = room(&s, json!({"video_on_join_enabled": false})).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let (ann, ann_id) = join_through_screen(&b1, &s, &url, "Ann").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ben, ben_id) = join_through_screen(&b2, &s, &url, "Ben").await;

    // Nobody publishes: each sees the other's tile and name, no media.
    wait_tile(&ann, &ben_id, "Ben").await;
    wait_tile(&ben, &ann_id, "Ann").await;
    assert_eq!(sources_from(&ann, &ben_id).await, json!([]));
    assert_eq!(sources_from(&ben, &ann_id).await, json!([]));

    // The second joiner turns the camera on: the first sees it, and back.
    ben.eval("window.convene.toggleCamera().then(() => true)")
        .await;
    wait_video_from(&ann, &ben_id, 0, "first joiner, camera turned on later").await;
    ann.eval("window.convene.toggleCamera().then(() => true)")
        .await;
    wait_video_from(&ben, &ann_id, 0, "second joiner, camera turned on later").await;
    // Both keep decoding.
    let before = wait_video_from(&ann, &ben_id, 0, "first joiner").await;
    wait_video_from(&ann, &ben_id, before + 10, "first joiner, still").await;
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_recording_of_two_camera_only_participants_has_both() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    // Only recordings turned on; everything else as a room gets it.
    let url = room(&s, json!({"recordings_enabled": true})).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let (ann, ann_id) = join_through_screen(&b1, &s, &url, "Ann").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ben, ben_id) = join_through_screen(&b2, &s, &url, "Ben").await;
    wait_video_from(&ben, &ann_id, 0, "second joiner").await;
    wait_video_from(&ann, &ben_id, 0, "first joiner").await;

    let started = s
        .api()
        .post(&format!("/api/v1/rooms/{url}/recordings/start"), json!({}))
        .await
        .expect(200)
        .body;
    let id = started["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.api()
        .post(&format!("/api/v1/rooms/{url}/recordings/stop"), json!({}))
        .await
        .expect(200);
    // The files are listed as soon as the recording has stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = s
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        if r["status"] != "IN_PROGRESS" || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let files = r["files"].as_array().unwrap();
    let with_video: std::collections::BTreeSet<&str> = files
        .iter()
        .filter(|f| f["video_codec"].is_string())
        .filter_map(|f| f["participant_id"].as_str())
        .collect();
    let mut want = vec![ann_id.as_str(), ben_id.as_str()];
    want.sort();
    assert_eq!(
        with_video.into_iter().collect::<Vec<_>>(),
        want,
        "a video file for each camera-only participant: {r:#}"
    );
}

// ---- the same with in-process str0m peers ------------------------------------

mod peers {
    use std::time::{Duration, Instant};

    use convene_tests::Server;
    use convene_tests::rtc_client::{Client, ClientEvent, ClientOptions};
    use serde_json::json;
    use str0m::media::MediaKind;

    use super::room;

    const RTP_TIMEOUT: Duration = Duration::from_secs(20);

    /// These tests are about who is offered what; the send-side estimator is
    /// off so that a CPU-starved test machine (a delay-based estimate that
    /// collapses, then congestion drops) cannot stand in for a negotiation
    /// failure. The browser tests above run with the defaults.
    fn server() -> Server {
        Server::start_with(convene_tests::Options {
            env: vec![("CONVENE_MEDIA_BWE".into(), "false".into())],
            ..Default::default()
        })
    }

    async fn join(s: &Server, url: &str, name: &str) -> (Client, String) {
        let t = crate::browser::token(s, url, name, "speaker").await;
        let mut c = Client::connect(ClientOptions::with_token(s.ws_url(), t)).await;
        let joined = c.wait_type("joined").await;
        let id = joined["participant"]["id"].as_str().unwrap().to_string();
        (c, id)
    }

    /// RTP packets of `kind` that `c` received on mids the server offered
    /// as `from`'s tracks.
    fn rtp_from(c: &Client, from: &str, kind: MediaKind) -> usize {
        let mids: Vec<String> = c
            .seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Signal(v) if v["type"] == "offer" => v["tracks"].as_array().cloned(),
                _ => None,
            })
            .flatten()
            .filter(|t| t["participant_id"] == from)
            .filter_map(|t| t["mid"].as_str().map(str::to_string))
            .collect();
        c.received(kind)
            .iter()
            .filter(|r| mids.contains(&r.mid.to_string()))
            .count()
    }

    /// Waits until `c` has more than `n` packets of `kind` from `from`.
    async fn wait_from(c: &mut Client, from: &str, kind: MediaKind, n: usize, what: &str) {
        let deadline = Instant::now() + RTP_TIMEOUT;
        while rtp_from(c, from, kind) <= n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} {kind:?} packets from {from} within {RTP_TIMEOUT:?}; signals {:?}",
                rtp_from(c, from, kind),
                c.signals()
            );
            c.collect_for(Duration::from_millis(100)).await;
        }
    }

    /// Two participants publishing only `kind` (the first before the
    /// second joins): each receives the other's `kind` and nothing else.
    async fn second_joiner_and_first_exchange_only(kind: MediaKind) {
        let (audio, video, other) = match kind {
            MediaKind::Audio => (true, false, MediaKind::Video),
            MediaKind::Video => (false, true, MediaKind::Audio),
        };
        let s = server();
        let url = room(&s, json!({})).await;
        let (mut ann, ann_id) = join(&s, &url, "Ann").await;
        ann.publish_kinds(audio, video);
        ann.wait_type("answer").await;
        let (mut ben, ben_id) = join(&s, &url, "Ben").await;
        ben.publish_kinds(audio, video);
        wait_from(&mut ben, &ann_id, kind, 30, "second joiner").await;
        wait_from(&mut ann, &ben_id, kind, 30, "first joiner").await;
        assert_eq!(rtp_from(&ann, &ben_id, other), 0);
        assert_eq!(rtp_from(&ben, &ann_id, other), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn camera_only_publisher_joining_second_is_seen_by_the_first() {
        second_joiner_and_first_exchange_only(MediaKind::Video).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn microphone_only_publisher_joining_second_is_heard_by_the_first() {
        second_joiner_and_first_exchange_only(MediaKind::Audio).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn camera_added_later_reaches_the_other() {
        let s = server();
        let url = room(&s, json!({})).await;
        let (mut ann, ann_id) = join(&s, &url, "Ann").await;
        ann.publish_kinds(true, false);
        ann.wait_type("answer").await;
        let (mut ben, ben_id) = join(&s, &url, "Ben").await;
        ben.publish_kinds(true, false);
        wait_from(&mut ann, &ben_id, MediaKind::Audio, 10, "first joiner").await;
        // The second joiner turns the camera on in a second offer.
        ben.publish_kinds(false, true);
        wait_from(
            &mut ann,
            &ben_id,
            MediaKind::Video,
            30,
            "first joiner, camera later",
        )
        .await;
        // And the first one too.
        ann.publish_kinds(false, true);
        wait_from(
            &mut ben,
            &ann_id,
            MediaKind::Video,
            30,
            "second joiner, camera later",
        )
        .await;
        let audio = rtp_from(&ann, &ben_id, MediaKind::Audio);
        wait_from(
            &mut ann,
            &ben_id,
            MediaKind::Audio,
            audio + 20,
            "audio goes on",
        )
        .await;
    }
}
