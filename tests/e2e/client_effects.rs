//! Background blur and noise suppression of the meeting client in real
//! Chromium (issue 25): both off by default; turned on from the Settings
//! dialog they change what is sent (a processed camera track on the same
//! sender; the live microphone's `noiseSuppression`) without renegotiating,
//! and the other side keeps decoding.

use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Mean absolute difference of horizontally neighbouring pixels (all
/// channels) in the left and right fifth of the frame of the received video
/// of tile `key`: what a blur lowers (the middle is left sharp).
fn edges(key: &str) -> String {
    format!(
        "(() => {{ const v = document.querySelector('#grid .tile[data-key=\"{key}\"] video'); \
           if (!v || !v.videoWidth) return null; \
           const c = document.createElement('canvas'); c.width = 320; c.height = 180; \
           const x = c.getContext('2d', {{willReadFrequently: true}}); x.drawImage(v, 0, 0, 320, 180); \
           const d = x.getImageData(0, 0, 320, 180).data; let sum = 0, n = 0; \
           for (let y = 0; y < 180; y++) for (let i = 0; i < 319; i++) {{ \
             if (i > 64 && i < 255) continue; const p = (y * 320 + i) * 4; \
             for (let k = 0; k < 3; k++) {{ sum += Math.abs(d[p + k] - d[p + 4 + k]); n++; }} }} \
           return sum / n; }})()"
    )
}

/// The average of `edges` over a few frames (the fake camera moves).
async fn sharpness(page: &Page, key: &str) -> f64 {
    let mut total = 0.0;
    for _ in 0..5 {
        let v = page.eval(&edges(key)).await;
        total += v.as_f64().unwrap_or_else(|| panic!("no video: {v}"));
        page.eval("new Promise(r => setTimeout(() => r(true), 200))")
            .await;
    }
    total / 5.0
}

/// The tracks (id and mid) Ben receives from Ann.
const REMOTE_OF_ANN: &str = "window.convene.remoteTracks.filter(t => t.participant_id === '{ann}') \
    .map(t => t.track_id + '@' + t.mid).sort()";

async fn counter(page: &Page, what: &str) -> u64 {
    page.eval("window.convene.stats()").await[what]
        .as_u64()
        .unwrap()
}

async fn offers(page: &Page) -> Value {
    page.eval("window.convene.trace.filter(t => t === 'out:offer').length")
        .await
}

/// Clicks a checkbox of the Settings dialog (opened first), as a keyboard
/// or mouse user would.
async fn toggle_setting(page: &Page, id: &str) {
    page.eval(&format!(
        "(() => {{ document.getElementById('ctl-settings').click(); document.getElementById('{id}').click(); return true; }})()"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_blur_and_noise_suppression_change_what_is_sent_without_renegotiating() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "effects", "join_screen_enabled": false,
                   "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_a = token(&s, "effects", "Ann", "speaker").await;
    let t_b = token(&s, "effects", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/effects?token={t_a}"))).await;
    let ben = b2.open(&s.url(&format!("/effects?token={t_b}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    crate::browser::wait_media_both(&ann, &ben).await;
    let ann_id = ann.eval("window.convene.participantId").await;
    let ann_id = ann_id.as_str().unwrap().to_string();

    // Off by default: the camera itself is sent, without noise suppression.
    let e = ann.eval("window.convene.effects").await;
    assert_eq!(
        (&e["blur"], &e["noise"]),
        (&json!(false), &json!(false)),
        "{e}"
    );
    assert_eq!(e["sentCameraTrack"], e["cameraTrack"], "{e}");
    assert_eq!(e["sentNoiseSuppression"], json!(false), "{e}");
    assert_eq!(
        ann.eval("[document.getElementById('set-blur').checked, document.getElementById('set-noise').checked]")
            .await,
        json!([false, false])
    );
    let offers_before = offers(&ann).await;
    let remote_before = ben
        .eval(REMOTE_OF_ANN.replace("{ann}", &ann_id).as_str())
        .await;
    assert_eq!(
        remote_before.as_array().unwrap().len(),
        2,
        "{remote_before}"
    );
    ben.wait_for(
        &format!(
            "(() => {{ const v = document.querySelector('#grid .tile[data-key=\"{ann_id}\"] video'); return v && v.videoWidth > 0; }})()"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    let sharp = sharpness(&ben, &ann_id).await;

    // Blur on: a processed track goes out on the camera's sender.
    toggle_setting(&ann, "set-blur").await;
    let e = ann
        .wait_for(
            "(() => { const e = window.convene.effects; \
               return e.blur && e.sentCameraTrack && e.sentCameraTrack !== e.cameraTrack ? e : false; })()",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(e["blurHow"], "insertable-streams", "{e}");
    let decoded = counter(&ben, "framesDecoded").await;
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {decoded} + 60)"),
        JOIN_TIMEOUT,
    )
    .await;
    let blurred = sharpness(&ben, &ann_id).await;
    eprintln!("edges at the receiver: sharp {sharp:.2}, blurred {blurred:.2}");
    assert!(
        blurred < sharp * 0.8,
        "the received video is not blurred: {sharp} -> {blurred}"
    );

    // Noise suppression on: the microphone being sent has it.
    toggle_setting(&ann, "set-noise").await;
    let e = ann
        .wait_for(
            "(() => { const e = window.convene.effects; \
               return e.noise && e.sentNoiseSuppression === true ? e : false; })()",
            JOIN_TIMEOUT,
        )
        .await;
    eprintln!("with both effects: {e}");
    let samples = counter(&ben, "totalSamplesReceived").await;
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.totalSamplesReceived > {samples} + 48000)"),
        JOIN_TIMEOUT,
    )
    .await;

    // Both off again: the camera itself, no noise suppression.
    toggle_setting(&ann, "set-blur").await;
    toggle_setting(&ann, "set-noise").await;
    let e = ann
        .wait_for(
            "(() => { const e = window.convene.effects; \
               return !e.blur && !e.noise && e.sentCameraTrack === e.cameraTrack \
                 && e.sentNoiseSuppression === false && e.blurHow === null ? e : false; })()",
            JOIN_TIMEOUT,
        )
        .await;
    assert!(e["sentCameraTrack"].is_string(), "{e}");
    let decoded = counter(&ben, "framesDecoded").await;
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {decoded} + 60)"),
        JOIN_TIMEOUT,
    )
    .await;
    let samples = counter(&ben, "totalSamplesReceived").await;
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.totalSamplesReceived > {samples} + 48000)"),
        JOIN_TIMEOUT,
    )
    .await;

    // Nothing was renegotiated, nobody rejoined.
    assert_eq!(offers(&ann).await, offers_before, "an effect renegotiated");
    assert_eq!(ann.eval("window.convene.resumes").await, json!(0));
    assert_eq!(
        ben.eval(REMOTE_OF_ANN.replace("{ann}", &ann_id).as_str())
            .await,
        remote_before,
        "Ben receives Ann on other tracks"
    );
    // The choice is kept for the next call in this browser.
    assert_eq!(
        ann.eval("[localStorage.getItem('convene.blur'), localStorage.getItem('convene.noise')]")
            .await,
        json!(["off", "off"])
    );
}
