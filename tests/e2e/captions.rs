//! Live captions through the real server: a str0m client publishes real
//! speech (made by `espeak-ng`, encoded to Opus here) as its microphone in
//! a room with `transcription_enabled`; the server's transcriber decodes,
//! segments and recognises it (PocketSphinx), another participant receives
//! the `caption`, the transcript endpoint lists the stored segment and the
//! end of the session fires `transcript.ready`. Quiet noise makes no
//! caption, and a room without transcription runs no transcriber.

use std::time::Duration;

use convene_tests::{Options, Server, rtc_client};
use serde_json::{Value, json};

use crate::api_chat::wait_not_live;

/// 20 ms of 48 kHz mono.
const FRAME: usize = 960;

/// `text` spoken by espeak-ng, as 48 kHz mono samples.
pub(crate) fn speech(text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-s", "130", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng (installed by scripts/test.sh)");
    assert!(ok.success());
    let bytes = std::fs::read(&wav).unwrap();
    // A canonical 44-byte header from espeak-ng: 16-bit mono at `rate`.
    assert_eq!(&bytes[..4], b"RIFF");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let data = &bytes[44..];
    let input: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // Linear interpolation to 48 kHz (fine for a test voice).
    let out_len = input.len() * 48_000 / rate as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * f64::from(rate) / 48_000.0;
            let k = pos as usize;
            let frac = pos - k as f64;
            let a = f64::from(input[k.min(input.len() - 1)]);
            let b = f64::from(input[(k + 1).min(input.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

/// Quiet noise (about -58 dBFS: below any speech) for `ms`.
fn quiet_noise(ms: usize) -> Vec<i16> {
    let mut x: u32 = 12345;
    (0..ms * 48)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) % 80) as i16 - 40
        })
        .collect()
}

/// 20 ms Opus packets of `pcm` (48 kHz mono), the last one padded.
pub(crate) fn opus_packets(pcm: &[i16]) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    pcm.chunks(FRAME)
        .map(|c| {
            let mut frame = c.to_vec();
            frame.resize(FRAME, 0);
            enc.encode_vec(&frame, 1500).unwrap()
        })
        .collect()
}

pub(crate) async fn room(s: &Server, name: &str, transcription: bool) {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": name, "transcription_enabled": transcription}),
        )
        .await
        .expect(200);
}

pub(crate) async fn metrics(s: &Server) -> String {
    s.metrics_text().await
}

/// Joins `name` as a speaker (who may publish) by a room token.
pub(crate) async fn join(s: &Server, room: &str, name: &str) -> (rtc_client::Client, Value) {
    let token = crate::browser::token(s, room, name, "speaker").await;
    convene_tests::join(s, room, name, Some(token)).await
}

pub(crate) fn is_caption(v: &Value) -> bool {
    v["type"] == "caption"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_becomes_captions_and_a_stored_transcript() {
    let s = Server::start_with(Options {
        args: vec!["--webhooks-allow-private".into()],
        ..Options::default()
    });
    let api = s.api();
    let hook = api
        .post(
            "/api/v1/webhooks",
            json!({"endpoint": "http://127.0.0.1:9/hook", "events": ["transcript.ready"]}),
        )
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    room(&s, "spoken", true).await;
    let (mut a, joined) = join(&s, "spoken", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let ann = joined["participant"]["id"].as_str().unwrap().to_string();
    let (mut b, _) = join(&s, "spoken", "Bob").await;

    // First only quiet noise: the transcriber hears it, and says nothing.
    a.speak(opus_packets(&quiet_noise(4_000)));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    b.collect_for(Duration::from_secs(6)).await;
    assert!(
        !b.signals().iter().any(|t| t == "caption"),
        "noise made a caption: {:?}",
        b.signals()
    );
    assert!(
        metrics(&s)
            .await
            .contains("convene_transcribers_started_total 1")
    );

    // Then speech, with silence after it (the utterance closes on it).
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    let caption = b.wait_signal(Duration::from_secs(60), is_caption).await;
    assert_eq!(caption["participant_id"], ann.as_str(), "{caption}");
    assert_eq!(caption["participant_name"], "Ann", "{caption}");
    let text = caption["transcript"].as_str().unwrap();
    assert!(text.contains("three"), "recognised: {text:?}");
    assert!(
        caption["start_time"].as_str().unwrap() < caption["end_time"].as_str().unwrap(),
        "{caption}"
    );

    // Stored as it was recognised: the session's transcript lists it.
    let list = api
        .get(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(200)
        .body;
    let rows = list["data"].as_array().unwrap();
    assert!(!rows.is_empty(), "{list}");
    assert!(
        rows.iter().any(|r| r["participant_id"] == ann.as_str()
            && r["participant_name"] == "Ann"
            && r["transcript"] == text),
        "{list}"
    );

    // The session ends: the transcript is complete and the webhook fires.
    a.leave();
    b.leave();
    wait_not_live(&api, "spoken").await;
    let mut ready = None;
    for _ in 0..100 {
        let d = api
            .get(&format!("/api/v1/webhooks/{hook}/deliveries?limit=100"))
            .await
            .expect(200)
            .body;
        ready = d["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event"] == "transcript.ready")
            .cloned();
        if ready.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = ready.expect("transcript.ready was queued");
    let data = &ready["payload"]["data"];
    assert_eq!(data["session_id"], session.as_str(), "{ready}");
    assert!(
        data["segments"].as_u64().unwrap() >= rows.len() as u64,
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_without_transcription_runs_no_transcriber() {
    let s = Server::start();
    let api = s.api();
    room(&s, "unheard", false).await;
    let (mut a, joined) = join(&s, "unheard", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let (mut b, _) = join(&s, "unheard", "Bob").await;
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    // Bob hears Ann (the media flows), but no caption comes.
    b.wait_rtp(str0m::media::MediaKind::Audio, 100, Duration::from_secs(20))
        .await;
    b.collect_for(Duration::from_secs(5)).await;
    assert!(
        !b.signals().iter().any(|t| t == "caption"),
        "{:?}",
        b.signals()
    );
    let list = api
        .get(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(200)
        .body;
    assert_eq!(list["total_count"], 0, "{list}");
    assert!(
        !metrics(&s)
            .await
            .contains("convene_transcribers_started_total")
    );
}

/// The browser client shows the captions of a transcribed room: the
/// Captions toggle (on by default there), the speaker's name and text in an
/// aria-live region, hidden when turned off; no toggle in other rooms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_shows_captions_with_a_toggle() {
    use convene_tests::browser::Browser;
    let _turn = crate::browser::ONE_AT_A_TIME.lock().await;
    let (s, _log) = crate::browser::server();
    for (name, on) in [("captioned", true), ("plain", false)] {
        s.api()
            .post(
                "/api/v1/rooms",
                json!({"friendly_url": name, "transcription_enabled": on,
                       "join_screen_enabled": false}),
            )
            .await
            .expect(200);
    }
    let b = Browser::launch().await;
    let t = crate::browser::token(&s, "captioned", "Bea", "speaker").await;
    let page = b.open(&s.url(&format!("/captioned?token={t}"))).await;
    crate::browser::wait_state(&page, "joined").await;
    let button = page
        .eval(
            "(() => { const b = document.getElementById('ctl-captions'); \
             return [b.hidden, b.getAttribute('aria-pressed')]; })()",
        )
        .await;
    assert_eq!(button, json!([false, "true"]));

    let (mut a, _) = join(&s, "captioned", "Ann").await;
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    let shown = page
        .wait_for(
            "(() => { const c = document.getElementById('captions'); \
             return !c.hidden && c.getAttribute('aria-live') === 'polite' \
               && c.textContent.includes('Ann: ') && c.textContent; })()",
            Duration::from_secs(60),
        )
        .await;
    assert!(shown.as_str().unwrap().contains("Ann: "), "{shown}");

    // Turned off: the captions are hidden, the button says so.
    let off = page
        .eval(
            "(() => { document.getElementById('ctl-captions').click(); \
             return [document.getElementById('captions').hidden, \
               document.getElementById('ctl-captions').getAttribute('aria-pressed')]; })()",
        )
        .await;
    assert_eq!(off, json!([true, "false"]));
    a.leave();

    // A room without transcription has no Captions button.
    let t = crate::browser::token(&s, "plain", "Bea", "speaker").await;
    let plain = b.open(&s.url(&format!("/plain?token={t}"))).await;
    crate::browser::wait_state(&plain, "joined").await;
    let hidden = plain
        .eval("document.getElementById('ctl-captions').hidden")
        .await;
    assert_eq!(hidden, json!(true));
}

/// What the fake transcription endpoint received: headers and body.
type Posted = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// With `--transcription-url`, each utterance is posted to an
/// OpenAI-compatible endpoint (here a fake one in the test) and its `text`
/// becomes the caption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_engine_gets_each_utterance_and_its_text_is_the_caption() {
    let posted: Posted = Default::default();
    let seen = posted.clone();
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                seen.lock().unwrap().push((headers, body.to_vec()));
                axum::Json(json!({"text": "  hello from\n the   engine "}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = Server::start_with(Options {
        args: vec![
            "--transcription-url".into(),
            format!("http://{addr}/v1/audio/transcriptions"),
            "--transcription-model".into(),
            "whisper-test".into(),
            "--transcription-api-key".into(),
            "engine-key-123".into(),
        ],
        ..Options::default()
    });
    room(&s, "posted", true).await;
    let (mut a, joined) = join(&s, "posted", "Ann").await;
    let ann = joined["participant"]["id"].as_str().unwrap().to_string();
    let (mut b, _) = join(&s, "posted", "Bob").await;
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    let caption = b.wait_signal(Duration::from_secs(60), is_caption).await;
    assert_eq!(caption["participant_id"], ann.as_str(), "{caption}");
    assert_eq!(caption["transcript"], "hello from the engine", "{caption}");

    let posted = posted.lock().unwrap().clone();
    assert!(!posted.is_empty());
    let (headers, body) = &posted[0];
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer engine-key-123")
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("name=\"model\"\r\n\r\nwhisper-test"),
        "{text:.400}"
    );
    assert!(
        text.contains("name=\"response_format\"\r\n\r\njson"),
        "{text:.400}"
    );
    assert!(
        text.contains("name=\"file\"; filename=\"utterance.wav\"\r\nContent-Type: audio/wav"),
        "{text:.400}"
    );
    // A real WAV: RIFF....WAVE with 16 kHz mono, 16 bit.
    let riff = body.windows(4).position(|w| w == b"RIFF").unwrap();
    assert_eq!(&body[riff + 8..riff + 12], b"WAVE");
    let rate = u32::from_le_bytes(body[riff + 24..riff + 28].try_into().unwrap());
    assert_eq!(rate, 16_000);
    // The key is never in the server's printed configuration.
    assert!(!s.stdout.iter().any(|l| l.contains("engine-key-123")));
}

/// The transcriber taps the worker of the session's first participant; when
/// that participant leaves, the worker keeps holding the room for the tap
/// (the room's other worker relays its tracks to it) and the transcript goes
/// on (issues 20 and 21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_goes_on_when_the_first_participants_worker_has_nobody_left() {
    // Two workers, one participant each (sharding after one).
    let s = Server::start_with(Options {
        args: vec!["--media-workers".into(), "2".into()],
        env: vec![("CONVENE_MEDIA_SHARD_PEERS".into(), "1".into())],
        ..Options::default()
    });
    let api = s.api();
    room(&s, "spread", true).await;
    let (cy, joined) = join(&s, "spread", "Cy").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let (mut a, joined) = join(&s, "spread", "Ann").await;
    let ann = joined["participant"]["id"].as_str().unwrap().to_string();
    assert!(
        metrics(&s)
            .await
            .contains("convene_transcribers_started_total 1")
    );

    // Cy, the first, leaves: their worker holds no one of the room now,
    // only the transcriber's tap.
    cy.leave();
    let mut left = false;
    for _ in 0..100 {
        let m = metrics(&s).await;
        if m.lines().any(|l| l == "convene_peers 1") {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "Cy's peer did not go");

    // Ann, on the other worker, speaks: her words are transcribed.
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    let mut rows = Vec::new();
    for _ in 0..300 {
        rows = api
            .get(&format!("/api/v1/sessions/{session}/transcripts"))
            .await
            .expect(200)
            .body["data"]
            .as_array()
            .unwrap()
            .clone();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        rows.iter().any(|r| r["participant_id"] == ann.as_str()
            && r["transcript"].as_str().unwrap().contains("three")),
        "{rows:?}"
    );
    a.leave();
    wait_not_live(&api, "spread").await;
}

/// `transcription_enabled` changed during a live session takes effect at
/// once: turned on, the next words become a caption; turned off, the
/// following ones do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcription_turned_on_and_off_mid_session_takes_effect_at_once() {
    let s = Server::start();
    let api = s.api();
    room(&s, "turned", false).await;
    let (mut a, joined) = join(&s, "turned", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let (mut b, _) = join(&s, "turned", "Bob").await;
    a.publish_kinds(true, false);
    a.wait_type("answer").await;

    // On: a transcriber starts for the live session, and hears Ann.
    api.patch(
        "/api/v1/rooms/turned",
        json!({"transcription_enabled": true}),
    )
    .await
    .expect(200);
    let mut started = false;
    for _ in 0..100 {
        if metrics(&s)
            .await
            .contains("convene_transcribers_started_total 1")
        {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "no transcriber started");
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    let caption = b.wait_signal(Duration::from_secs(60), is_caption).await;
    assert!(
        caption["transcript"].as_str().unwrap().contains("three"),
        "{caption}"
    );

    // Off: Ann's next words make no caption and no transcript row.
    api.patch(
        "/api/v1/rooms/turned",
        json!({"transcription_enabled": false}),
    )
    .await
    .expect(200);
    let before = api
        .get(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(200)
        .body["total_count"]
        .clone();
    // The room's actor has taken the switch before Ann speaks again.
    let mut switched = false;
    for _ in 0..100 {
        if metrics(&s)
            .await
            .contains(r#"convene_transcription_switches_total{to="off"} 1"#)
        {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "the room did not take the switch");
    let signals_before = b.signals().iter().filter(|t| *t == "caption").count();
    a.speak(opus_packets(&pcm));
    b.collect_for(Duration::from_secs(8)).await;
    assert_eq!(
        b.signals().iter().filter(|t| *t == "caption").count(),
        signals_before,
        "a caption came while transcription was off: {:?}",
        b.signals()
    );
    let after = api
        .get(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(200)
        .body["total_count"]
        .clone();
    assert_eq!(before, after);
    a.leave();
    b.leave();
    wait_not_live(&api, "turned").await;
}
