//! WebRTC stacks that no one here wrote, in one room: Firefox ESR (Gecko's
//! WebRTC, driven over WebDriver BiDi) and Chromium (libwebrtc, over CDP)
//! both run the browser client; each must decode the other's video and
//! play the other's audio, through the server.

use std::time::Duration;

use convene_tests::browser::{Browser, Page};
use convene_tests::firefox::Firefox;
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Media of each kind received: video frames decoded, audio packets and
/// samples (Firefox may not report samples), per inbound stream kind.
const RECEIVED: &str = "(async () => { const c = window.convene; \
    if (!c || !c.pc) return null; const out = {video: 0, audio: 0, samples: 0, remote: []}; \
    (await c.pc.getStats()).forEach(s => { if (s.type !== 'inbound-rtp') return; \
      if (s.kind === 'video') out.video += s.framesDecoded || 0; \
      if (s.kind === 'audio') { out.audio += s.packetsReceived || 0; \
        out.samples += s.totalSamplesReceived || 0; } }); \
    out.remote = c.remoteTracks.map(t => t.source).sort(); \
    return out.video > 0 && out.audio > 0 ? out : null; })()";

/// Ann (speaker) joins room `room` in Chromium and Fred (speaker) in
/// Firefox; both are `joined` on return. The browser is returned so that it
/// outlives the page.
pub(crate) async fn ann_in_chromium_and_fred_in_firefox(
    s: &convene_tests::Server,
    room: &str,
) -> (Browser, Page, Firefox) {
    let t_ann = token(s, room, "Ann", "speaker").await;
    let t_fred = token(s, room, "Fred", "speaker").await;
    let (chromium, firefox) = tokio::join!(Browser::launch(), Firefox::launch());
    let ann = chromium
        .open(&s.url(&format!("/{room}?token={t_ann}")))
        .await;
    firefox
        .navigate(&s.url(&format!("/{room}?token={t_fred}")))
        .await;
    wait_state(&ann, "joined").await;
    firefox
        .wait_for(
            "window.convene && window.convene.state === 'joined'",
            JOIN_TIMEOUT,
        )
        .await;
    // Each browser's offer or answer, kept as `sdp_scan` seeds when the
    // run captures seeds.
    const SDPS: &str = "[window.convene.pc.localDescription && window.convene.pc.localDescription.sdp, \
        window.convene.pc.remoteDescription && window.convene.pc.remoteDescription.sdp]";
    for sdps in [ann.eval(SDPS).await, firefox.eval(SDPS).await] {
        for sdp in sdps
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            convene_tests::capture_seed("sdp_scan", sdp.as_bytes());
        }
    }
    (chromium, ann, firefox)
}

const MEDIA: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_chromium_see_and_hear_each_other() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "mixed", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let (_chromium, ann, firefox) = ann_in_chromium_and_fred_in_firefox(&s, "mixed").await;

    let (a, f) = tokio::join!(
        ann.try_wait_for(RECEIVED, MEDIA),
        firefox.try_wait_for(RECEIVED, MEDIA)
    );
    let (a, f): (Value, Value) = match (a, f) {
        (Ok(a), Ok(f)) => (a, f),
        (a, f) => panic!(
            "media did not flow both ways:\n== Chromium: {}\n== Firefox: {}",
            a.err().unwrap_or_default(),
            f.err().unwrap_or_default()
        ),
    };
    eprintln!("Chromium received {a}; Firefox received {f}");
    assert_eq!(a["remote"], json!(["camera", "microphone"]), "{a}");
    assert_eq!(f["remote"], json!(["camera", "microphone"]), "{f}");
    // Chromium reports played-out audio samples: Firefox's Opus decoded.
    assert!(a["samples"].as_u64().unwrap_or(0) > 0, "{a}");
    let n = firefox.eval("window.convene.negotiation").await;
    assert!(
        n["lastError"].is_null(),
        "Firefox's negotiation failed: {n}"
    );

    // Leaving from Firefox is seen in Chromium.
    firefox.eval("window.convene.leave()").await;
    ann.wait_for(
        "Object.keys(window.convene.participants).length === 0",
        Duration::from_secs(15),
    )
    .await;
}
