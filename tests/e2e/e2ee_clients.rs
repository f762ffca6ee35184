//! Who else takes part in an end-to-end encrypted room (docs/e2ee.md):
//! browsers without `RTCRtpScriptTransform` (the `createEncodedStreams`
//! fallback), simulcast layer switches under encryption, the room display
//! view, and the room appliance (refused: it cannot encrypt).

use std::time::Duration;

use convene_tests::Server;
use convene_tests::browser::Browser;
use serde_json::{Value, json};
use str0m::media::MediaKind;

use crate::appliance::Appliance;
use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};
use crate::e2ee::{DECODE_TIMEOUT, decodes, open, picture_detail, pid, room, subscriber_video};

/// The fallback for browsers without `RTCRtpScriptTransform` (older
/// Chromium): a page where it is removed before any script runs uses
/// `createEncodedStreams`, and it and a page with the script transform
/// decode each other; what it sends is the same frame format (clear VP8
/// keyframe header, key index trailer), as a str0m subscriber sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_e2ee_fallback_to_encoded_streams_interoperates() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "oldvault", true).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = open(&b1, &s, "oldvault", "Ann", "correct horse").await;
    // Ben's page: the same Chromium with the script transform taken away.
    let ben = b2.open("about:blank").await;
    ben.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": "delete window.RTCRtpScriptTransform;"}),
    )
    .await
    .unwrap();
    let t = token(&s, "oldvault", "Ben", "moderator").await;
    ben.navigate(&s.url(&format!("/oldvault?token={t}#e2ee=correct horse")))
        .await;
    wait_state(&ben, "joined").await;
    assert_eq!(
        ben.eval("typeof RTCRtpScriptTransform").await,
        json!("undefined")
    );
    assert_eq!(
        ben.eval("window.convene.e2ee.support").await,
        json!("streams")
    );
    assert_eq!(
        ann.eval("window.convene.e2ee.support").await,
        json!("script")
    );
    let (id_ann, id_ben) = (pid(&ann).await, pid(&ben).await);
    decodes(&ann, &id_ben, 0).await;
    decodes(&ben, &id_ann, 0).await;
    // Both workers decrypt (their counts arrive once a second) and nobody fails.
    for p in [&ann, &ben] {
        let ok = p
            .try_wait_for(
                "(() => { const e = window.convene.e2ee; \
                   return e.frames && e.frames.decrypted > 30 && !e.failing.length ? e : null; })()",
                DECODE_TIMEOUT,
            )
            .await;
        if let Err(e) = ok {
            panic!("{e}: {}", p.eval("window.convene.e2ee").await);
        }
    }
    // The SFU's view of what both send: encrypted VP8 frames ending in key
    // index 0, keyframes with their clear header.
    let (mut rx, _) = convene_tests::join(&s, "oldvault", "Rx", None).await;
    rx.wait_rtp(MediaKind::Video, 100, DECODE_TIMEOUT).await;
    let (indexes, clear_keyframes) = subscriber_video(&mut rx, Duration::from_secs(3), true).await;
    assert!(indexes.len() >= 40, "too few frames: {}", indexes.len());
    assert!(indexes.iter().all(|i| *i == 0), "{indexes:?}");
    assert!(
        clear_keyframes >= 2,
        "keyframes of both publishers: {clear_keyframes}"
    );
}

/// Simulcast layer switches in an E2EE room: the forwarder picks layers
/// and keyframes from what stays clear (RTP header extensions, the VP8
/// keyframe header), so a subscriber moved from the full layer to the
/// lowest and back keeps decrypting and decoding at each size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_e2ee_simulcast_layer_switches_keep_decoding() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "layered", true).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = open(&b1, &s, "layered", "Ann", "correct horse").await;
    let ben = open(&b2, &s, "layered", "Ben", "correct horse").await;
    let (id_ann, id_ben) = (pid(&ann).await, pid(&ben).await);
    decodes(&ben, &id_ann, 0).await;
    let full = ann
        .wait_for(
            "(() => { const s = window.convene.pc.getSenders().find(s => s.track && s.track.kind === 'video'); \
               return s ? s.track.getSettings().width : null; })()",
            JOIN_TIMEOUT,
        )
        .await
        .as_u64()
        .unwrap();
    let width = format!(
        "(document.querySelector('#grid .tile[data-key=\"{id_ann}\"] video') || {{}}).videoWidth || 0"
    );
    let decrypted = "window.convene.e2ee.frames ? window.convene.e2ee.frames.decrypted : 0";
    // Each phase: Ben's view of Ann reaches the size, and Ben keeps
    // decrypting (more frames than before) with nobody failing.
    let phase = |cond: String, what: &'static str| {
        let ben = &ben;
        let width = &width;
        async move {
            let before = ben.eval(decrypted).await.as_u64().unwrap();
            let js = format!(
                "(() => {{ const w = {width}; const e = window.convene.e2ee; \
                   return {cond} && e.frames.decrypted > {before} + 30 && !e.failing.length ? w : null; }})()"
            );
            match ben.try_wait_for(&js, Duration::from_secs(45)).await {
                Ok(w) => w.as_u64().unwrap(),
                Err(e) => panic!(
                    "{what}: {e}\nwidth {} of {full}, layers {}, e2ee {}",
                    ben.eval(width).await,
                    ben.eval("JSON.stringify(window.convene.layers)").await,
                    ben.eval("window.convene.e2ee").await
                ),
            }
        }
    };
    let w = phase(format!("w === {full}"), "the full layer").await;
    eprintln!("full layer: {w} px");
    // Ben pins himself: Ann goes to the filmstrip and her lowest layer.
    ben.eval(&format!(
        "document.querySelector('#grid .tile[data-key=\"{id_ben}\"] button.pin').click(); true"
    ))
    .await;
    let w = phase(
        format!("Object.values(window.convene.layers).includes('q') && w > 0 && w <= {full} / 4"),
        "the lowest layer",
    )
    .await;
    eprintln!("lowest layer: {w} px");
    let picture = ben.eval(&picture_detail(&id_ann)).await;
    assert_eq!(picture["ok"], true, "{picture}");
    // Unpinned: the full layer again.
    ben.eval(&format!(
        "document.querySelector('#grid .tile[data-key=\"{id_ben}\"] button.pin').click(); true"
    ))
    .await;
    phase(format!("w === {full}"), "back to the full layer").await;
    let picture = ben.eval(&picture_detail(&id_ann)).await;
    assert_eq!(picture["ok"], true, "{picture}");
}

/// The room display view (what an appliance's TV shows) takes the
/// passphrase from its address like any page, and decodes the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_e2ee_display_view_decodes_with_the_passphrase() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "boardroom", true).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = open(&b1, &s, "boardroom", "Ann", "correct horse").await;
    let id_ann = pid(&ann).await;
    let t = token(&s, "boardroom", "TV", "attendee").await;
    let tv = b2
        .open(&s.url(&format!(
            "/boardroom?token={t}&view=display#e2ee=correct horse"
        )))
        .await;
    wait_state(&tv, "joined").await;
    assert_eq!(
        tv.eval("document.body.dataset.view").await,
        json!("display")
    );
    decodes(&tv, &id_ann, 0).await;
    let e = tv.eval("window.convene.e2ee").await;
    assert_eq!(e["hasKey"], true, "{e}");
    // It publishes nothing, so nothing of it could leave in clear.
    assert_eq!(
        tv.eval("window.convene.pc.getSenders().filter(s => s.track).length")
            .await,
        json!(0)
    );
}

/// The appliance cannot encrypt its media end to end, so an E2EE room
/// refuses it with the reason (its camera and microphone would leave in
/// clear); the join fails at once, without retrying, and nobody joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_is_refused_by_an_end_to_end_encrypted_room() {
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "sealed", "e2ee_enabled": true}),
        )
        .await
        .expect(200);
    let app = Appliance::start();
    let t = crate::appliance::token(&s, "sealed", "Room C").await;
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": s.url(&format!("/sealed?token={t}"))})),
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert_eq!(v["error"]["code"], "JOIN_FAILED");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("E2EE_UNSUPPORTED") && m.contains("clear"), "{m}");
    let live = s
        .api()
        .get("/api/v1/rooms/sealed/live/participants")
        .await
        .expect(200)
        .body;
    assert_eq!(live["live_participants"], json!([]), "{live}");
    assert_eq!(live["session_id"], Value::Null, "{live}");
}
