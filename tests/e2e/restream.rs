//! RTMP restreaming end to end: two Chromium participants, the room pushed
//! to a local RTMP receiver (Debian's ffmpeg listening in the test
//! namespace), the received FLV checked with ffprobe/ffmpeg; stop, a
//! receiver that dies and comes back, the webhooks, and bad input refused
//! with nothing started. The stream key never reaches the server's log.

use convene_tests::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page};
use convene_tests::{Options, Server};
use serde_json::{Value, json};

use crate::browser::{LogOnFailure, ONE_AT_A_TIME, token, wait_media_both, wait_state};

pub(crate) const KEY: &str = "sk-Secret_restream-KEY-4711";
/// The stream reaches a receiver within this long of a start (ffmpeg's
/// probe, a keyframe, the RTMP handshake; retries back off up to 30 s).
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);

/// An `ffmpeg -listen 1` RTMP receiver writing what it gets to a file;
/// killed on drop.
pub(crate) struct Receiver {
    child: Child,
    out: PathBuf,
}

impl Receiver {
    pub(crate) fn start(port: u16, out: &Path) -> Receiver {
        let log = std::fs::File::create(out.with_extension("log")).unwrap();
        let child = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "warning",
                "-y",
                "-listen",
                "1",
                "-i",
            ])
            .arg(format!("rtmp://127.0.0.1:{port}/live/{KEY}"))
            .args(["-c", "copy", "-flush_packets", "1", "-f", "flv"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ffmpeg runs");
        Receiver {
            child,
            out: out.to_path_buf(),
        }
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0)
    }

    /// Waits until the received file holds more than `bytes`.
    pub(crate) async fn wait_bytes(&self, bytes: u64) {
        let deadline = Instant::now() + LIVE_TIMEOUT;
        while self.size() <= bytes {
            assert!(
                Instant::now() < deadline,
                "the receiver got no stream ({} bytes); its log: {}",
                self.size(),
                std::fs::read_to_string(self.out.with_extension("log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the receiver to exit by itself (the publisher ended the stream).
    pub(crate) async fn wait_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the receiver failed: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not see the stream end"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (codec_type, codec_name) of every stream and the duration ffprobe reads.
fn probe(path: &Path) -> (Vec<(String, String)>, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name:format=duration",
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
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let d = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (streams, d)
}

/// Decodes the whole file; returns the decoded video frames.
fn decode(path: &Path) -> u64 {
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
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
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
        .parse()
        .unwrap_or(0)
}

fn assert_h264_aac(path: &Path, at_least_secs: f64) {
    let (streams, duration) = probe(path);
    assert!(
        streams.contains(&("video".into(), "h264".into())),
        "no H.264 video in {}: {streams:?}",
        path.display()
    );
    assert!(
        streams.contains(&("audio".into(), "aac".into())),
        "no AAC audio in {}: {streams:?}",
        path.display()
    );
    assert!(
        duration >= at_least_secs,
        "{} lasts {duration} s, expected at least {at_least_secs} s",
        path.display()
    );
    let frames = decode(path);
    eprintln!(
        "{}: {streams:?}, {duration:.1} s, {frames} video frames decoded",
        path.display()
    );
    assert!(
        frames as f64 >= at_least_secs * 10.0,
        "only {frames} video frames decoded from {}",
        path.display()
    );
}

fn assert_no_key_in(what: &str, text: &str) {
    assert!(!text.contains(KEY), "the stream key appears in {what}");
}

fn server_log(s: &Server) -> String {
    std::fs::read_to_string(&s.log_path).unwrap_or_default()
}

async fn open_joined(b: &Browser, s: &Server, room: &str, token: &str) -> Page {
    let p = b.open(&s.url(&format!("/{room}?token={token}"))).await;
    wait_state(&p, "joined").await;
    p
}

async fn room(s: &Server, name: &str) {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": name, "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
}

/// (event name, payload data) of a webhook's deliveries, oldest first.
async fn delivered(s: &Server, webhook: &str) -> Vec<(String, Value)> {
    let h = s
        .api()
        .get(&format!(
            "/api/v1/webhooks/{webhook}/deliveries?order=asc&limit=100"
        ))
        .await
        .expect(200)
        .body;
    h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap_or("").to_string(),
                d["payload"]["data"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restream_two_browsers_to_a_local_rtmp_receiver() {
    let _turn = ONE_AT_A_TIME.lock().await;
    convene_tests::browser::assert_isolated_network();
    let s = Server::start_with(Options {
        capture_log: true,
        args: vec![
            "--restream-allow-private".into(),
            "--webhooks-allow-private".into(),
        ],
        env: vec![("CONVENE_LOG".into(), "info".into())],
        ..Options::default()
    });
    let _log = LogOnFailure(s.log_path.clone());
    let tmp = tempfile::tempdir().unwrap();
    let webhook = s
        .api()
        .post(
            "/api/v1/webhooks",
            json!({"endpoint": "http://127.0.0.1:9/hook",
                   "events": ["restreaming.started", "restreaming.stopped",
                              "restreaming.failed"]}),
        )
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    room(&s, "onair").await;
    let t_ann = token(&s, "onair", "Ann", "moderator").await;
    let t_ben = token(&s, "onair", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = open_joined(&b1, &s, "onair", &t_ann).await;
    let ben = open_joined(&b2, &s, "onair", &t_ben).await;
    wait_media_both(&ann, &ben).await;

    // Start: the stream goes to the receiver, as H.264 + AAC in FLV.
    let port = free_port();
    let mut rx1 = Receiver::start(port, &tmp.path().join("first.flv"));
    let server_url = format!("rtmp://127.0.0.1:{port}/live");
    let asked = Instant::now();
    let started = s
        .api()
        .post(
            "/api/v1/rooms/onair/restreamers/start",
            json!({"server_url": server_url, "stream_key": KEY}),
        )
        .await
        .expect(200);
    assert_no_key_in("the start response", &started.body.to_string());
    assert_eq!(started.body["server_url"], json!(server_url));
    assert_eq!(started.body["room_id"].as_str().map(str::len), Some(36));
    assert!(
        ["starting", "live"].contains(&started.body["status"].as_str().unwrap_or("")),
        "{}",
        started.body
    );
    // The same destination twice is a conflict; nothing more is started.
    let again = s
        .api()
        .post(
            "/api/v1/rooms/onair/restreamers/start",
            json!({"server_url": server_url, "stream_key": KEY}),
        )
        .await
        .expect(409);
    assert_no_key_in("a refusal", &again.body.to_string());

    rx1.wait_bytes(0).await;
    // Ten more seconds of the room.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stopped = s
        .api()
        .post("/api/v1/rooms/onair/restreamers/stop", json!({}))
        .await
        .expect(200)
        .body;
    let streamed = asked.elapsed().as_secs_f64();
    assert_eq!(
        stopped["data"].as_array().map(Vec::len),
        Some(1),
        "{stopped}"
    );
    assert_eq!(stopped["data"][0]["status"], "stopped");
    assert_eq!(stopped["data"][0]["id"], started.body["id"]);
    // Stop ends the stream: the receiver sees its end and exits.
    rx1.wait_exit().await;
    // At most the time since the start. Not a lower bound near ten
    // seconds: on a loaded 2-core machine ffmpeg runs below real time (its
    // speed is in the server log when it ends), so the media time received
    // is less than the wall time; seconds of decodable frames are asked.
    let (_, duration) = probe(&rx1.out);
    assert!(
        duration <= streamed + 1.0,
        "the receiver got {duration} s from {streamed} s of streaming"
    );
    assert_h264_aac(&rx1.out, 2.0);
    s.api()
        .post("/api/v1/rooms/onair/restreamers/stop", json!({}))
        .await
        .expect(409);

    // A receiver that dies and comes back gets the stream again.
    let port = free_port();
    let server_url = format!("rtmp://127.0.0.1:{port}/live");
    let mut rx2 = Receiver::start(port, &tmp.path().join("second.flv"));
    s.api()
        .post(
            "/api/v1/rooms/onair/restreamers/start",
            json!({"server_url": server_url, "stream_key": KEY}),
        )
        .await
        .expect(200);
    rx2.wait_bytes(0).await;
    rx2.kill();
    let rx3 = Receiver::start(port, &tmp.path().join("third.flv"));
    rx3.wait_bytes(50_000).await;
    s.api()
        .post(
            "/api/v1/rooms/onair/restreamers/stop",
            json!({"server_url": server_url}),
        )
        .await
        .expect(200);
    let mut rx3 = rx3;
    rx3.wait_exit().await;
    assert_h264_aac(&rx3.out, 1.0);

    // The composition follows the room: Ben leaves, the stream is restarted
    // without his tracks (the receiver sees one publish end and the next
    // begin); ending the session ends the restream.
    let port = free_port();
    let server_url = format!("rtmp://127.0.0.1:{port}/live");
    let mut rx4 = Receiver::start(port, &tmp.path().join("fourth.flv"));
    s.api()
        .post(
            "/api/v1/rooms/onair/restreamers/start",
            json!({"server_url": server_url, "stream_key": KEY}),
        )
        .await
        .expect(200);
    rx4.wait_bytes(0).await;
    drop(ben);
    drop(b2);
    rx4.wait_exit().await;
    let rx5 = Receiver::start(port, &tmp.path().join("fifth.flv"));
    rx5.wait_bytes(50_000).await;
    let sessions = s
        .api()
        .get("/api/v1/rooms/onair/sessions")
        .await
        .expect(200)
        .body;
    let session = sessions["data"][0]["id"].as_str().unwrap().to_string();
    s.api()
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await
        .expect(204);
    let mut rx5 = rx5;
    rx5.wait_exit().await;
    assert_h264_aac(&rx5.out, 1.0);
    let log = server_log(&s);
    assert!(
        log.contains("the room's media changed; restarting the composition"),
        "the composition was not restarted when Ben left"
    );

    // Webhooks: started, stopped; failed when the receiver died.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let e = delivered(&s, &webhook).await;
        let stops = e.iter().filter(|(n, _)| n == "restreaming.stopped").count();
        if stops >= 3 || Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_no_key_in("the webhooks", &format!("{events:?}"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|e| **e == "restreaming.started")
            .count(),
        3,
        "{names:?}"
    );
    assert!(names.contains(&"restreaming.failed"), "{names:?}");
    let reasons: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "restreaming.stopped")
        .filter_map(|(_, d)| d["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["stopped_by_api", "stopped_by_api", "session_ended"],
        "{events:?}"
    );
    for (_, d) in &events {
        assert!(d["restreamer_id"].is_string(), "{d}");
        assert!(
            d["server_url"]
                .as_str()
                .unwrap()
                .starts_with("rtmp://127.0.0.1:"),
            "{d}"
        );
    }
    drop(ann);
    assert_no_key_in("the server log", &server_log(&s));
    let log = server_log(&s);
    for line in log.lines().filter(|l| l.contains("restream")) {
        eprintln!("{line}");
    }
    assert!(
        log.contains("restream is live"),
        "the log never says the stream was live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restream_bad_input_is_refused_and_nothing_starts() {
    let s = Server::start_with(Options {
        capture_log: true,
        env: vec![("CONVENE_LOG".into(), "info".into())],
        ..Options::default()
    });
    let _log = LogOnFailure(s.log_path.clone());
    room(&s, "quiet").await;
    let start = "/api/v1/rooms/quiet/restreamers/start";

    // No live session: 409 with a reason.
    let r = s
        .api()
        .post(
            start,
            json!({"server_url": "rtmp://203.0.113.7/live", "stream_key": KEY}),
        )
        .await
        .expect(409);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("no live session"),
        "{}",
        r.body
    );
    s.api()
        .post(
            "/api/v1/rooms/nope/restreamers/start",
            json!({"type": "youtube", "stream_key": KEY}),
        )
        .await
        .expect(404);

    // A live session (a participant joined), and still bad input.
    let t = token(&s, "quiet", "Cy", "attendee").await;
    let (_c, _) = convene_tests::join(&s, "quiet", "Cy", Some(t)).await;
    let bad: &[(Value, &str)] = &[
        (
            json!({"server_url": "ftp://203.0.113.7/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "https://203.0.113.7/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "rtmp://203.0.113.7/live"}),
            "stream_key",
        ),
        (
            json!({"server_url": "rtmp://203.0.113.7/live", "stream_key": ""}),
            "stream_key",
        ),
        (json!({"type": "youtube", "stream_key": 5}), "stream_key"),
        (json!({"type": "twitch", "stream_key": KEY}), "type"),
        (json!({"stream_key": KEY}), "server_url"),
        (
            json!({"type": "youtube", "server_url": "rtmp://203.0.113.7/live",
                   "stream_key": KEY}),
            "type",
        ),
        // Private and loopback targets without --restream-allow-private.
        (
            json!({"server_url": "rtmp://127.0.0.1:1935/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "rtmps://10.1.2.3/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "rtmp://localhost/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "rtmp://[::1]/live", "stream_key": KEY}),
            "server_url",
        ),
        (
            json!({"server_url": "rtmp://169.254.169.254/live", "stream_key": KEY}),
            "server_url",
        ),
    ];
    for (body, field) in bad {
        let r = s
            .api()
            .post(start, body.clone())
            .await
            .expect_invalid(field);
        assert!(
            !r.body["message"].as_str().unwrap_or("").is_empty(),
            "{}",
            r.body
        );
        assert_no_key_in("a refusal", &r.body.to_string());
    }
    let r = s
        .api()
        .post(
            start,
            json!({"server_url": "rtmp://127.0.0.1:1935/live", "stream_key": KEY}),
        )
        .await
        .expect(422);
    assert!(
        r.body["message"].as_str().unwrap().contains("loopback"),
        "{}",
        r.body
    );
    // Nothing was started.
    let r = s
        .api()
        .post("/api/v1/rooms/quiet/restreamers/stop", json!({}))
        .await
        .expect(409);
    assert!(
        r.body["message"].as_str().unwrap().contains("no restream"),
        "{}",
        r.body
    );
    s.api()
        .post(
            "/api/v1/rooms/quiet/restreamers/stop",
            json!({"server_url": "gopher://x"}),
        )
        .await
        .expect_invalid("server_url");
    assert_no_key_in("the server log", &server_log(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restream_two_destinations_of_a_room_without_media() {
    // A participant who publishes nothing: the stream is the background and
    // silence, still H.264 + AAC. Two destinations at once, stopped one by one.
    let s = Server::start_with(Options {
        capture_log: true,
        args: vec!["--restream-allow-private".into()],
        env: vec![("CONVENE_LOG".into(), "info".into())],
        ..Options::default()
    });
    let _log = LogOnFailure(s.log_path.clone());
    let tmp = tempfile::tempdir().unwrap();
    room(&s, "empty").await;
    let t = token(&s, "empty", "Cy", "attendee").await;
    let (_c, _) = convene_tests::join(&s, "empty", "Cy", Some(t)).await;
    let start = "/api/v1/rooms/empty/restreamers/start";
    let (pa, pb) = (free_port(), free_port());
    let (url_a, url_b) = (
        format!("rtmp://127.0.0.1:{pa}/live"),
        format!("rtmp://127.0.0.1:{pb}/live"),
    );
    let mut rx_a = Receiver::start(pa, &tmp.path().join("a.flv"));
    let mut rx_b = Receiver::start(pb, &tmp.path().join("b.flv"));
    let a = s
        .api()
        .post(start, json!({"server_url": url_a, "stream_key": KEY}))
        .await
        .expect(200)
        .body;
    assert_eq!(a["type"], Value::Null);
    let b = s
        .api()
        .post(start, json!({"server_url": url_b, "stream_key": KEY}))
        .await
        .expect(200)
        .body;
    assert_ne!(a["id"], b["id"]);
    s.api()
        .post(start, json!({"server_url": url_a, "stream_key": KEY}))
        .await
        .expect(409);
    rx_a.wait_bytes(0).await;
    rx_b.wait_bytes(0).await;

    // Stopping A leaves B streaming.
    let stopped = s
        .api()
        .post(
            "/api/v1/rooms/empty/restreamers/stop",
            json!({"server_url": url_a}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(stopped["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(stopped["data"][0]["id"], a["id"]);
    rx_a.wait_exit().await;
    assert_h264_aac(&rx_a.out, 1.0);
    let before = rx_b.size();
    rx_b.wait_bytes(before).await;
    // An empty body stops the rest.
    let stopped = s
        .api()
        .post("/api/v1/rooms/empty/restreamers/stop", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(stopped["data"][0]["id"], b["id"]);
    rx_b.wait_exit().await;
    assert_h264_aac(&rx_b.out, 1.0);
    assert_no_key_in("the server log", &server_log(&s));
}
