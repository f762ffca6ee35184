//! GStreamer's webrtcbin (Debian 12's GStreamer 1.22, a WebRTC stack no one
//! here wrote) publishes VP8 + Opus over WHIP into a room with the API's
//! default settings, and headless Chromium in that room decodes its video
//! and plays its audio, through the real server (tests/gst/whip_publish.py).

use std::process::{Command, Stdio};
use std::time::Duration;

use convene_tests::browser::Browser;
use convene_tests::media_ip;
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// What Chromium receives from the participant named "GStreamer": video
/// frames decoded, audio packets and samples played; null until it has
/// both a camera and a microphone track from it.
const FROM_GSTREAMER: &str = "(async () => { const c = window.convene; \
    if (!c || !c.pc) return null; \
    const gst = Object.values(c.participants).find(p => p.name === 'GStreamer'); \
    if (!gst) return null; \
    const out = {video: 0, audio: 0, samples: 0, sources: [], codecs: []}; \
    out.sources = c.remoteTracks.filter(t => t.participant_id === gst.id) \
      .map(t => t.source).sort(); \
    const stats = await c.pc.getStats(); \
    stats.forEach(s => { if (s.type !== 'inbound-rtp') return; \
      const codec = stats.get(s.codecId); \
      if (codec) out.codecs.push(codec.mimeType); \
      if (s.kind === 'video') out.video += s.framesDecoded || 0; \
      if (s.kind === 'audio') { out.audio += s.packetsReceived || 0; \
        out.samples += s.totalSamplesReceived || 0; } }); \
    out.codecs.sort(); \
    return out; })()";

/// How long GStreamer publishes before its DELETE.
const PUBLISH_SECS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_over_whip_and_chromium_sees_and_hears_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    // The room defaults a user gets.
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "gst"}))
        .await
        .expect(200);
    let t_viewer = token(&s, "gst", "Vera", "attendee").await;
    let t_gst = token(&s, "gst", "GStreamer", "moderator").await;

    let chromium = Browser::launch().await;
    let vera = chromium
        .open(&s.url(&format!("/gst?token={t_viewer}")))
        .await;
    vera.wait_for(
        "!document.getElementById('screen-join').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    vera.eval("window.convene.join()").await;
    wait_state(&vera, "joined").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/gst/whip_publish.py");
    let publisher = Command::new("/usr/bin/python3")
        .args([
            script,
            &s.url("/whip/gst"),
            &t_gst,
            &media_ip().to_string(),
            &PUBLISH_SECS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs tests/gst/whip_publish.py");
    let publisher = tokio::task::spawn_blocking(move || publisher.wait_with_output());

    // Chromium gets GStreamer's camera and microphone, decodes its VP8
    // and plays its Opus, and keeps decoding.
    let first = vera
        .try_wait_for(
            &format!(
                "{FROM_GSTREAMER}.then(r => r && r.video > 0 && r.samples > 0 && \
                 r.sources.length === 2 ? r : null)"
            ),
            Duration::from_secs(30),
        )
        .await;
    let first: Value = match first {
        Ok(v) => v,
        Err(e) => {
            let out = publisher.await.unwrap().unwrap();
            panic!(
                "Chromium did not receive GStreamer's media: {e}\n{}\n== GStreamer stdout:\n{}\n== stderr:\n{}",
                vera.report().await,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
        }
    };
    eprintln!("Chromium received from GStreamer: {first}");
    assert_eq!(first["sources"], json!(["camera", "microphone"]), "{first}");
    let codecs = first["codecs"].to_string();
    assert!(codecs.contains("video/VP8"), "{first}");
    assert!(codecs.contains("audio/opus"), "{first}");
    let more = vera
        .wait_for(
            &format!(
                "{FROM_GSTREAMER}.then(r => r && r.video > {} && r.samples > {} ? r : null)",
                first["video"].as_u64().unwrap() + 30,
                first["samples"].as_u64().unwrap()
            ),
            Duration::from_secs(30),
        )
        .await;
    eprintln!("and later: {more}");

    // GStreamer ends with a DELETE on its resource (answered 200, or the
    // script fails), and leaves the room.
    let out = publisher.await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "whip_publish.py failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("POST 201"), "{stdout}");
    assert!(stdout.contains("connection connected"), "{stdout}");
    assert!(stdout.contains("DELETE 200"), "{stdout}");
    // GStreamer 1.22 offers only AES_CM_128_HMAC_SHA1_80: its media went
    // through the server's AES-CM ciphers (rtc/srtp.rs), Chromium's
    // through AEAD-GCM.
    let metrics = crate::captions::metrics(&s).await;
    eprintln!(
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("convene_srtp_ciphers_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        metrics.contains("convene_srtp_ciphers_total{profile=\"aes_128_cm_sha1_80\"}"),
        "no AES-CM SRTP"
    );
    vera.wait_for(
        "!Object.values(window.convene.participants).some(p => p.name === 'GStreamer')",
        Duration::from_secs(15),
    )
    .await;
}
