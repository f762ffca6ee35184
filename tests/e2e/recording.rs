//! Recording end to end: real Chromium participants, the real server, the
//! files it writes checked with Debian's ffprobe/ffmpeg, kill -9 in the
//! middle of a recording, the signed download link, and the disk floor (on a
//! small tmpfs the server gets in its own mount namespace).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page};
use convene_tests::{KEY, Options, Server};
use serde_json::{Value, json};

use crate::browser::{
    JOIN_TIMEOUT, LogOnFailure, ONE_AT_A_TIME, server, token, wait_media_both, wait_state,
};

/// Composite processing of ~10 s on a 2-core machine takes well under this.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

async fn room(s: &Server, name: &str, recordings: bool) {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": name, "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true,
                   "recordings_enabled": recordings}),
        )
        .await
        .expect(200);
}

/// Polls a recording until `done(rec)`; panics with the last state on timeout.
async fn wait_recording(
    s: &Server,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = s
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "recording did not get there in time: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_ready(s: &Server, id: &str) -> Value {
    let r = wait_recording(s, id, READY_TIMEOUT, |r| {
        r["status"] == "READY" || r["status"] == "FAILED"
    })
    .await;
    assert_eq!(r["status"], "READY", "processing failed: {r:#}");
    r
}

/// Streams of a media file as ffprobe sees them: (codec_type, codec_name)
/// pairs and the format duration in seconds.
fn probe(path: &Path) -> (Vec<(String, String)>, f64, Value) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap().to_string(),
                s["codec_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (streams, duration, v)
}

/// Decodes the whole file; returns (decoded video frames, audio frames).
fn decode(path: &Path) -> (u64, u64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |kind: &str| {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                kind,
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    (count("v:0"), count("a:0"))
}

/// A link the server made with its public URL (http://localhost:8080 by
/// default), pointed at the test server's real address.
fn local(s: &Server, link: &Value) -> String {
    let link = link.as_str().unwrap();
    assert!(
        link.starts_with("http://localhost:8080/api/v1/recordings/"),
        "{link}"
    );
    s.url(&link["http://localhost:8080".len()..])
}

fn recording_dir(s: &Server, id: &str) -> PathBuf {
    s.data_dir.join("recordings").join(id)
}

async fn open_joined(b: &Browser, s: &Server, room: &str, token: &str) -> Page {
    let p = b.open(&s.url(&format!("/{room}?token={token}"))).await;
    wait_state(&p, "joined").await;
    p
}

const INDICATOR_ON: &str = "window.convene.recording !== null && \
    !document.getElementById('recording-indicator').hidden";
const INDICATOR_OFF: &str = "window.convene.recording === null && \
    document.getElementById('recording-indicator').hidden";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_two_browsers_track_files_composite_and_download() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "rec", true).await;
    let t_ann = token(&s, "rec", "Ann", "moderator").await;
    let t_ben = token(&s, "rec", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = open_joined(&b1, &s, "rec", &t_ann).await;
    let ben = open_joined(&b2, &s, "rec", &t_ben).await;
    wait_media_both(&ann, &ben).await;

    // A speaker has no record button, and the server refuses them anyway.
    assert_eq!(
        ben.eval("document.getElementById('ctl-record').hidden")
            .await,
        json!(true)
    );
    assert_eq!(
        ann.eval("document.getElementById('ctl-record').hidden")
            .await,
        json!(false)
    );
    ben.eval("window.convene.startRecording(), true").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let list = s.api().get("/api/v1/recordings").await.expect(200).body;
    assert_eq!(
        list["total_count"], 0,
        "a speaker started a recording: {list}"
    );

    // The moderator's button starts it; everyone sees the indicator.
    // Times below are from the click, on the test's clock: the checks of
    // the files' lengths and the bookmark's place hold however slowly the
    // machine runs (a fixed range holds only on a machine as fast as the
    // one it was written on).
    let clicked = Instant::now();
    ann.eval("document.getElementById('ctl-record').click(), true")
        .await;
    ann.wait_for(INDICATOR_ON, JOIN_TIMEOUT).await;
    // The recording started between the click and now.
    let started_by = clicked.elapsed();
    ben.wait_for(INDICATOR_ON, JOIN_TIMEOUT).await;
    let id = ann
        .eval("window.convene.recording.id")
        .await
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .api()
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(r["status"], "IN_PROGRESS");
    // A second start is a conflict.
    s.api()
        .post("/api/v1/rooms/rec/recordings/start", json!({}))
        .await
        .expect(409);

    // Somebody joining later sees the recording in the room state.
    let t_cy = token(&s, "rec", "Cy", "attendee").await;
    let (mut cy, _) = convene_tests::join(&s, "rec", "Cy", Some(t_cy)).await;
    let state = cy.wait_type("collab_state").await;
    assert_eq!(state["recording"]["id"], json!(id), "{state}");
    cy.leave();

    tokio::time::sleep(Duration::from_secs(5)).await;
    let marking = clicked.elapsed();
    ann.eval("window.convene.bookmark('the interesting part'), true")
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stopping = clicked.elapsed();
    let stopped = s
        .api()
        .post("/api/v1/rooms/rec/recordings/stop", json!({}))
        .await
        .expect(200)
        .body;
    let stopped_by = clicked.elapsed();
    assert_eq!(stopped["id"], json!(id));
    assert_eq!(stopped["status"], "PROCESSING");
    // What a file of the whole recording lasts: the time it ran, less up
    // to 3 s before the first keyframe (as the fixed 7-14 s range allowed
    // around its 10.5 s), plus a frame's length at the end.
    let length = (stopping.saturating_sub(started_by).as_secs_f64() - 3.0)
        ..=(stopped_by.as_secs_f64() + 0.5);
    ann.wait_for(INDICATOR_OFF, JOIN_TIMEOUT).await;
    ben.wait_for(INDICATOR_OFF, JOIN_TIMEOUT).await;
    s.api()
        .post("/api/v1/rooms/rec/recordings/stop", json!({}))
        .await
        .expect(409);

    let r = wait_ready(&s, &id).await;
    eprintln!("recording: {r:#}");
    assert_eq!(r["stop_reason"], "stopped_by_api");
    assert_eq!(r["interrupted"], false);
    assert_eq!(r["participants"].as_array().unwrap().len(), 2, "{r:#}");
    let dir = recording_dir(&s, &id);
    // One WebM per participant with VP8 (or VP9/AV1) video and Opus audio of about 10 s.
    let files = r["files"].as_array().unwrap();
    let mut people = std::collections::HashSet::new();
    for f in files {
        assert_eq!(f["complete"], true, "{f}");
    }
    let mut webms: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "webm"))
        .collect();
    webms.sort();
    assert!(
        webms.len() >= 2,
        "expected a WebM per participant: {webms:?}"
    );
    for w in &webms {
        // Fuzz seeds (with CONVENE_TEST_SEEDS_DIR): the start of a real
        // recording, as the Matroska reader and crash repair meet it.
        let head: Vec<u8> = std::fs::read(w).unwrap().into_iter().take(65_536).collect();
        convene_tests::capture_seed("mkv_inspect", &head);
        convene_tests::capture_seed("mkv_repair", &head);
        let (streams, duration, raw) = probe(w);
        let kinds: Vec<&str> = streams.iter().map(|(t, _)| t.as_str()).collect();
        let is_full = kinds.contains(&"video") && kinds.contains(&"audio");
        if !is_full {
            continue;
        }
        assert!(
            streams
                .iter()
                .any(|(t, c)| t == "video" && ["vp8", "vp9", "av1"].contains(&c.as_str())),
            "{raw}"
        );
        assert!(
            streams.iter().any(|(t, c)| t == "audio" && c == "opus"),
            "{raw}"
        );
        assert!(
            length.contains(&duration),
            "{}: {duration} s, not in {length:?}",
            w.display()
        );
        let (v, a) = decode(w);
        assert!(
            v > 100 && a > 300,
            "{}: decoded {v} video / {a} audio frames",
            w.display()
        );
        people.insert(
            w.file_name()
                .unwrap()
                .to_string_lossy()
                .split("-camera-")
                .next()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        people.len(),
        2,
        "a full WebM for each participant: {webms:?}"
    );
    for f in files {
        assert!(f["video_codec"].is_string() || f["audio_codec"].is_string());
    }

    // The composite: H.264 + AAC of about the same length, decodable.
    let mp4 = dir.join("composite.mp4");
    let (streams, duration, raw) = probe(&mp4);
    assert!(streams.contains(&("video".into(), "h264".into())), "{raw}");
    assert!(streams.contains(&("audio".into(), "aac".into())), "{raw}");
    assert!(
        length.contains(&duration),
        "composite {duration} s, not in {length:?}"
    );
    let (v, a) = decode(&mp4);
    assert!(
        v > 150 && a > 300,
        "composite decoded {v} video / {a} audio frames"
    );
    assert_eq!(
        r["composite"]["size"].as_u64().unwrap(),
        std::fs::metadata(&mp4).unwrap().len()
    );

    // The bookmark.
    let b = s
        .api()
        .get(&format!("/api/v1/recordings/{id}/bookmarks"))
        .await
        .expect(200)
        .body;
    assert_eq!(b["total_count"], 1);
    assert_eq!(b["data"][0]["name"], "the interesting part");
    // In the recording's time: made after the recording started (by
    // `started_by`) and once `marking` had passed, stored before the stop.
    let at = b["data"][0]["at_ms"].as_i64().unwrap();
    let place =
        (marking.saturating_sub(started_by).as_millis() as i64)..=(stopping.as_millis() as i64);
    assert!(place.contains(&at), "bookmark at {at} ms, not in {place:?}");

    // The signed link: no auth needed, Range works, tampering and expiry are refused.
    let link = s
        .api()
        .get(&format!(
            "/api/v1/recordings/{id}/download?valid_for_minutes=5"
        ))
        .await
        .expect(200)
        .body;
    let url = local(&s, &link["link"]);
    assert!(link["valid_until"].is_string());
    let anon = reqwest::Client::new();
    let full = anon.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "video/mp4");
    assert!(
        full.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".mp4")
    );
    let body = full.bytes().await.unwrap();
    let on_disk = std::fs::read(&mp4).unwrap();
    assert_eq!(body.len(), on_disk.len());
    let part = anon
        .get(&url)
        .header("Range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1123/{}", on_disk.len())
    );
    assert_eq!(&part.bytes().await.unwrap()[..], &on_disk[100..1124]);
    let tampered = url.replace("signature=", "signature=0");
    assert_eq!(anon.get(&tampered).send().await.unwrap().status(), 403);
    // A link signed correctly but expired (what the server would have
    // issued a while ago) is refused.
    let expired_at = chrono::Utc::now().timestamp() - 10;
    let sig = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("recording-link\n{id}\n\n{expired_at}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let expired = s.url(&format!(
        "/api/v1/recordings/{id}/media?expires={expired_at}&signature={sig}"
    ));
    assert_eq!(anon.get(&expired).send().await.unwrap().status(), 403);
    // The same signature scheme with a future expiry works: the check above
    // failed on expiry, not on the signature.
    let later = chrono::Utc::now().timestamp() + 60;
    let sig_later = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("recording-link\n{id}\n\n{later}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let ok = s.url(&format!(
        "/api/v1/recordings/{id}/media?expires={later}&signature={sig_later}"
    ));
    assert_eq!(anon.get(&ok).send().await.unwrap().status(), 200);
    // A track file by id.
    let fid = files[0]["id"].as_str().unwrap();
    let flink = s
        .api()
        .get(&format!("/api/v1/recordings/{id}/download?file={fid}"))
        .await
        .expect(200)
        .body;
    let resp = anon.get(local(&s, &flink["link"])).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("webm")
    );
    assert_eq!(
        resp.bytes().await.unwrap().len() as u64,
        files[0]["size"].as_u64().unwrap()
    );

    // Archive, list filters, delete.
    s.api()
        .post(&format!("/api/v1/recordings/{id}/archive"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        s.api().get("/api/v1/recordings").await.expect(200).body["total_count"],
        0
    );
    assert_eq!(
        s.api()
            .get("/api/v1/recordings/archived")
            .await
            .expect(200)
            .body["total_count"],
        1
    );
    s.api()
        .post(&format!("/api/v1/recordings/{id}/unarchive"), json!({}))
        .await
        .expect(200);
    let by_status = s
        .api()
        .get("/api/v1/recordings?status=ready&room_id=rec")
        .await
        .expect(200)
        .body;
    assert_eq!(by_status["total_count"], 1);
    // A list shows each recording as a GET of it does, files and all (the
    // list reads its page's files in one query).
    let one = s
        .api()
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(200)
        .body;
    assert!(!one["files"].as_array().unwrap().is_empty(), "{one}");
    assert_eq!(by_status["data"][0], one);
    s.api()
        .get("/api/v1/recordings?status=nope")
        .await
        .expect(422);
    let stats = s
        .api()
        .get("/api/v1/statistics/recordings")
        .await
        .expect(200)
        .body;
    assert_eq!(stats["recordings"], 1, "{stats}");
    s.api()
        .delete(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(204);
    s.api()
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(404);
    assert!(
        !dir.exists(),
        "the files of a deleted recording are removed"
    );
    assert_eq!(anon.get(&url).send().await.unwrap().status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_cut_by_kill_9_is_repaired_after_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (mut s, _log) = server();
    room(&s, "crash", true).await;
    let t = token(&s, "crash", "Ann", "moderator").await;
    let b = Browser::launch().await;
    let ann = open_joined(&b, &s, "crash", &t).await;
    // Her camera and microphone are published before the recording starts.
    ann.wait_for(
        "window.convene.pc && window.convene.pc.getSenders().filter(x => x.track).length >= 2",
        JOIN_TIMEOUT,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = s
        .api()
        .post("/api/v1/rooms/crash/recordings/start", json!({}))
        .await
        .expect(200)
        .body;
    let id = r["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.kill9();
    drop(ann);
    drop(b);

    let dir = recording_dir(&s, &id);
    let torn: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "webm"))
        .collect();
    assert!(!torn.is_empty(), "files were written during the recording");
    for w in &torn {
        // Fuzz seeds: files cut by kill -9, as repair meets them.
        let head: Vec<u8> = std::fs::read(w).unwrap().into_iter().take(65_536).collect();
        convene_tests::capture_seed("mkv_repair", &head);
    }

    s.restart();
    // The composite job starts at once; cut it too: after the next start it
    // runs again (resuming with the segments already rendered).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    s.restart();
    let r = wait_ready(&s, &id).await;
    eprintln!("after restart: {r:#}");
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["stop_reason"], "server_restart");
    let f = &r["files"][0];
    assert_eq!(f["complete"], true);
    // The file plays up to the cut: about the 5 s recorded, minus at most a
    // cluster lost with the kill.
    for w in &torn {
        let (streams, duration, raw) = probe(w);
        assert!(streams.iter().any(|(t, _)| t == "video"), "{raw}");
        assert!(
            (3.0..=7.0).contains(&duration),
            "{}: {duration} s",
            w.display()
        );
        let (v, _) = decode(w);
        assert!(v > 50, "decoded {v} frames");
    }
    let (_, duration, _) = probe(&dir.join("composite.mp4"));
    assert!((3.0..=7.0).contains(&duration), "composite {duration} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_control_permissions_and_conflicts() {
    let s = Server::start();
    room(&s, "ctl", true).await;
    room(&s, "off", false).await;
    // No live session: nothing to record.
    s.api()
        .post("/api/v1/rooms/ctl/recordings/start", json!({}))
        .await
        .expect(409);
    s.api()
        .post("/api/v1/rooms/ctl/recording", json!({}))
        .await
        .expect(409);
    s.api()
        .post("/api/v1/rooms/nosuch/recordings/start", json!({}))
        .await
        .expect(404);

    let t_mod = token(&s, "ctl", "Mo", "moderator").await;
    let t_att = token(&s, "ctl", "At", "attendee").await;
    let (mut mo, _) = convene_tests::join(&s, "ctl", "Mo", Some(t_mod)).await;
    let (mut at, _) = convene_tests::join(&s, "ctl", "At", Some(t_att)).await;

    // An attendee's role lacks the `recording` permission.
    at.send(json!({"type": "recording_start"}));
    let err = at.wait_type("error").await;
    assert_eq!(err["code"], "FORBIDDEN", "{err}");
    assert_eq!(
        s.api().get("/api/v1/recordings").await.expect(200).body["total_count"],
        0
    );

    // The moderator starts it in the room; everyone is told.
    mo.send(json!({"type": "recording_start"}));
    let started = at.wait_type("recording_started").await;
    let id = started["recording"]["id"].as_str().unwrap().to_string();
    mo.wait_type("recording_started").await;
    // eyeson's form conflicts with the running one.
    s.api()
        .post("/api/v1/rooms/ctl/recording", json!({}))
        .await
        .expect(409);
    // A bookmark by the moderator; an attendee may not.
    mo.send(json!({"type": "recording_bookmark", "name": "here"}));
    mo.wait_type("recording_bookmarked").await;
    at.send(json!({"type": "recording_bookmark"}));
    assert_eq!(at.wait_type("error").await["code"], "FORBIDDEN");
    // It cannot be deleted while recording.
    s.api()
        .delete(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(409);
    // Deleting the session's resources keeps a recording that is running.
    let live = s
        .api()
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(200)
        .body;
    let live_sid = live["session_id"].as_str().unwrap().to_string();
    s.api()
        .delete_with(&format!("/api/v1/sessions/{live_sid}/resources"), json!({}))
        .await
        .expect(204);
    assert_eq!(
        s.api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body["status"],
        "IN_PROGRESS"
    );
    // eyeson stop.
    let r = s
        .api()
        .delete("/api/v1/rooms/ctl/recording")
        .await
        .expect(200)
        .body;
    assert_eq!(r["id"], json!(id));
    let stopped = at.wait_type("recording_stopped").await;
    assert_eq!(stopped["recording_id"], json!(id));
    // Nobody published media, so processing fails, visibly.
    let r = wait_recording(&s, &id, Duration::from_secs(30), |r| {
        r["status"] != "PROCESSING"
    })
    .await;
    assert_eq!(r["status"], "FAILED", "{r:#}");
    assert!(
        r["failure_reason"]
            .as_str()
            .unwrap()
            .contains("nothing was recorded"),
        "{r:#}"
    );

    // eyeson start answers 201; the session ending stops the recording.
    let r = s
        .api()
        .post("/api/v1/rooms/ctl/recording", json!({}))
        .await
        .expect(201)
        .body;
    let id2 = r["id"].as_str().unwrap().to_string();
    let sid = r["session_id"].as_str().unwrap().to_string();
    s.api()
        .post(&format!("/api/v1/sessions/{sid}/end"), json!({}))
        .await
        .expect(204);
    let r = wait_recording(&s, &id2, Duration::from_secs(30), |r| {
        r["status"] != "IN_PROGRESS"
    })
    .await;
    assert_eq!(r["stop_reason"], "session_ended", "{r:#}");

    // A room without recordings_enabled refuses.
    let t_off = token(&s, "off", "Mo", "moderator").await;
    let (mut off, _) = convene_tests::join(&s, "off", "Mo", Some(t_off)).await;
    s.api()
        .post("/api/v1/rooms/off/recordings/start", json!({}))
        .await
        .expect(403);
    off.send(json!({"type": "recording_start"}));
    assert_eq!(off.wait_type("error").await["code"], "FORBIDDEN");

    // Room-level and session-level deletes.
    s.api()
        .delete(&format!("/api/v1/sessions/{sid}/recordings"))
        .await
        .expect(204);
    s.api()
        .get(&format!("/api/v1/recordings/{id2}"))
        .await
        .expect(404);
    s.api()
        .delete("/api/v1/rooms/ctl/recordings")
        .await
        .expect(204);
    s.api()
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .expect(404);
    assert_eq!(
        s.api().get("/api/v1/recordings").await.expect(200).body["total_count"],
        0
    );
    mo.leave();
    at.leave();
    off.leave();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_stops_cleanly_at_the_disk_floor() {
    let _turn = ONE_AT_A_TIME.lock().await;
    convene_tests::browser::assert_isolated_network();
    // The server gets a 12 MiB tmpfs for its recordings (in its own mount
    // namespace) and a 10 MiB floor: about 2 MiB of media fit.
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("rec");
    let s = Server::start_with(Options {
        capture_log: true,
        env: vec![
            ("CONVENE_LOG".into(), "info".into()),
            (
                "CONVENE_RECORDINGS_DIR".into(),
                rec_dir.to_string_lossy().into_owned(),
            ),
            ("CONVENE_RECORDINGS_MIN_FREE_MB".into(), "10".into()),
        ],
        wrap: vec![
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            "-c".into(),
            "mkdir -p \"$0\" && mount -t tmpfs -o size=12m tmpfs \"$0\" && exec \"$@\"".into(),
            rec_dir.to_string_lossy().into_owned(),
        ],
        ..Options::default()
    });
    let _log = LogOnFailure(s.log_path.clone());
    room(&s, "full", true).await;
    let t = token(&s, "full", "Ann", "moderator").await;
    let b = Browser::launch().await;
    let ann = open_joined(&b, &s, "full", &t).await;
    ann.wait_for(
        "window.convene.pc && window.convene.pc.getSenders().filter(x => x.track).length >= 2",
        JOIN_TIMEOUT,
    )
    .await;
    let r = s
        .api()
        .post("/api/v1/rooms/full/recordings/start", json!({}))
        .await
        .expect(200)
        .body;
    let id = r["id"].as_str().unwrap().to_string();
    ann.wait_for(INDICATOR_ON, JOIN_TIMEOUT).await;
    let r = wait_recording(&s, &id, Duration::from_secs(120), |r| {
        r["status"] != "IN_PROGRESS"
    })
    .await;
    eprintln!("stopped at the floor: {r:#}");
    assert_eq!(r["stop_reason"], "insufficient_storage");
    // The room was told, and the indicator went away.
    ann.wait_for(INDICATOR_OFF, JOIN_TIMEOUT).await;
    // What was written is complete and plays (fetched through a signed
    // link: the files live in the server's own mount namespace).
    let f = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["video_codec"].is_string())
        .cloned()
        .unwrap_or_else(|| panic!("no video file: {r:#}"));
    assert_eq!(f["complete"], true);
    let fid = f["id"].as_str().unwrap();
    let link = s
        .api()
        .get(&format!("/api/v1/recordings/{id}/download?file={fid}"))
        .await
        .expect(200)
        .body;
    let bytes = reqwest::get(local(&s, &link["link"]))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let local = tmp.path().join("copy.webm");
    std::fs::write(&local, &bytes).unwrap();
    let (_, duration, raw) = probe(&local);
    assert!(duration > 1.0, "{raw}");
    let (v, _) = decode(&local);
    assert!(v > 10);
    // Below the floor, a new recording is refused with a clear error.
    let refused = s
        .api()
        .post("/api/v1/rooms/full/recordings/start", json!({}))
        .await
        .expect(507)
        .body;
    assert_eq!(refused["code"], "INSUFFICIENT_STORAGE", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("floor"),
        "{refused}"
    );
}

/// Real RTP from Debian's ffmpeg (libx264 in packetization mode 1, libvpx,
/// libopus) through the recorder's depacketizer and Matroska writer: the
/// files must probe and decode. This is the H.264 path browsers use when
/// they negotiate H.264, which the Chromium tests above (VP8) do not cover.
#[test]
fn recording_writer_takes_real_h264_vp8_and_opus_rtp() {
    use convene_media::Codec;
    use convene_media::depacketize::Depacketizer;
    use convene_media::mkv::{FileInfo, MkvWriter, TrackCodec, TrackSpec};

    fn capture(args: &[&str]) -> Vec<Vec<u8>> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-nostdin", "-re"])
            .args(args)
            .args([
                "-f",
                "rtp",
                &format!("rtp://127.0.0.1:{port}?pkt_size=1200"),
            ]);
        let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        let mut packets = Vec::new();
        let mut buf = [0u8; 2048];
        // Read until ffmpeg has exited and its last datagram is in (a slow
        // start on a busy machine must not end the capture early).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut exited = None;
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => packets.push(buf[..n].to_vec()),
                Err(_) if exited.is_some() => break,
                Err(_) => {
                    exited = child.try_wait().unwrap();
                    assert!(
                        std::time::Instant::now() < deadline,
                        "ffmpeg did not finish"
                    );
                }
            }
        }
        assert!(exited.unwrap().success());
        packets
    }

    /// (seq, ts, marker, payload) of an RTP packet.
    fn rtp(p: &[u8]) -> (u16, u32, bool, &[u8]) {
        let cc = usize::from(p[0] & 0x0F);
        let mut off = 12 + 4 * cc;
        if p[0] & 0x10 != 0 {
            let len = usize::from(u16::from_be_bytes([p[off + 2], p[off + 3]]));
            off += 4 + 4 * len;
        }
        let mut end = p.len();
        if p[0] & 0x20 != 0 {
            end -= usize::from(p[p.len() - 1]);
        }
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        (seq, ts, p[1] & 0x80 != 0, &p[off..end])
    }

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            Codec::H264,
            "h264",
            "mkv",
            vec![
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25:duration=2",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-g",
                "25",
            ],
        ),
        (
            Codec::Vp8,
            "vp8",
            "webm",
            vec![
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25:duration=2",
                "-c:v",
                "libvpx",
                "-g",
                "25",
                "-deadline",
                "realtime",
            ],
        ),
        (
            Codec::Opus,
            "opus",
            "webm",
            vec![
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=2",
                "-c:a",
                "libopus",
                "-ar",
                "48000",
            ],
        ),
    ];
    for (codec, name, ext, args) in cases {
        let packets = capture(&args);
        assert!(packets.len() > 40, "{name}: {} packets", packets.len());
        let mut d = Depacketizer::new(codec);
        let mut frames = Vec::new();
        let mut last_seq: Option<u16> = None;
        for p in &packets {
            let (seq, ts, marker, payload) = rtp(p);
            let gap = last_seq.is_some_and(|l| seq != l.wrapping_add(1));
            last_seq = Some(seq);
            if let Some(f) = d.push(payload, ts, marker, gap) {
                frames.push(f);
            }
        }
        assert!(frames.len() > 40, "{name}: {} frames", frames.len());
        assert!(frames[0].keyframe, "{name}: starts at a keyframe");
        let track = match codec {
            Codec::H264 => TrackCodec::H264 {
                avcc: d.codec_private().expect("avcC from SPS/PPS"),
            },
            Codec::Vp8 => TrackCodec::Vp8,
            _ => TrackCodec::Opus { channels: 1 },
        };
        let dims = d.dimensions();
        if codec != Codec::Opus {
            assert_eq!(
                dims.map(|d| (d.width, d.height)),
                Some((320, 240)),
                "{name}"
            );
        }
        let path = dir.path().join(format!("{name}.{ext}"));
        let file = std::fs::File::create(&path).unwrap();
        let spec = TrackSpec {
            codec: track,
            width: 320,
            height: 240,
            name: name.into(),
        };
        let mut w = MkvWriter::new(file, &FileInfo::default(), &[spec]).unwrap();
        let clock = f64::from(codec.clock_rate());
        let t0 = frames[0].ts;
        for f in &frames {
            let ms = (f64::from(f.ts.wrapping_sub(t0)) * 1000.0 / clock).round() as i64;
            w.write_frame(1, ms, f.keyframe, &f.data).unwrap();
        }
        w.finish().unwrap();
        let (streams, duration, raw) = probe(&path);
        assert_eq!(streams[0].1, name, "{raw}");
        assert!((1.5..=2.5).contains(&duration), "{name}: {duration} s");
        let (v, a) = decode(&path);
        if codec == Codec::Opus {
            assert!(a >= 90, "{name}: {a} audio frames");
        } else {
            assert!(v >= 45, "{name}: {v} video frames");
        }
    }
}
