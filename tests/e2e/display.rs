//! The room display view (`/{room}?token=...&view=display`) in real headless
//! Chromium: what a room appliance's TV shows. A participant publishes camera
//! and microphone; a second page opens the display view with a token that
//! *may* publish (role speaker), and must still send nothing, show no
//! controls and no local tile, and decode the participant's video full screen.

use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// The display page's inbound video and audio, its outbound counters and
/// what its peer connection would send.
const DISPLAY_STATS: &str = "(async () => { \
    const out = { video: null, audio: null, outboundRtp: 0, framesSent: 0, packetsSent: 0 }; \
    (await window.convene.pc.getStats()).forEach(s => { \
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.video = { frames: s.framesDecoded || 0, \
        width: s.frameWidth || 0, height: s.frameHeight || 0 }; \
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio = { samples: s.totalSamplesReceived || 0 }; \
      if (s.type === 'outbound-rtp') { out.outboundRtp += 1; out.framesSent += s.framesSent || 0; \
        out.packetsSent += s.packetsSent || 0; } }); \
    out.sendersWithTracks = window.convene.pc.getSenders().filter(s => s.track).length; \
    out.sendingTransceivers = window.convene.pc.getTransceivers() \
      .filter(t => t.currentDirection === 'sendonly' || t.currentDirection === 'sendrecv').length; \
    return out; })()";

/// Whether an element is rendered (not `display: none` itself or through an ancestor).
const VISIBLE: &str = "(sel) => { const e = document.querySelector(sel); \
    return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }";

async fn visible(page: &Page, selector: &str) -> bool {
    page.eval(&format!("({VISIBLE})({})", json!(selector)))
        .await
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_view_subscribes_full_screen_and_publishes_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "tv", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "tv", "Ann", "speaker").await;
    // The display's token may broadcast: the view itself must not.
    let t_tv = token(&s, "tv", "Room A display", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());

    let ann = b1.open(&s.url(&format!("/tv?token={t_ann}"))).await;
    wait_state(&ann, "joined").await;
    ann.wait_for(
        "window.convene.stats().then(s => s.framesSent > 0 && s.packetsSent > 0)",
        JOIN_TIMEOUT,
    )
    .await;
    let ann_id = ann.eval("window.convene.participantId").await;
    let ann_id = ann_id.as_str().unwrap().to_string();

    let tv = b2
        .open(&s.url(&format!("/tv?token={t_tv}&view=display")))
        .await;
    // No join screen, no click: the display joins by itself.
    wait_state(&tv, "joined").await;
    assert_eq!(
        tv.eval("document.body.dataset.view").await,
        json!("display")
    );
    let tv_id = tv.eval("window.convene.participantId").await;
    let tv_id = tv_id.as_str().unwrap().to_string();

    // The display decodes Ann's camera and plays her microphone.
    let st = match tv
        .try_wait_for(
            &format!(
                "({DISPLAY_STATS}).then(s => s.video && s.video.frames > 10 && s.video.width > 0 \
                 && s.audio && s.audio.samples > 0 ? s : null)"
            ),
            JOIN_TIMEOUT,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => panic!("the display decodes no media: {e}\n{}", tv.report().await),
    };
    eprintln!("display stats: {st}");
    // What Ann sends: her largest simulcast layer. The display decodes one of
    // her layers: at most that size, same aspect ratio.
    let sent = ann
        .eval(
            "(async () => { let w = 0, h = 0; (await window.convene.pc.getStats()).forEach(s => { \
               if (s.type === 'outbound-rtp' && s.kind === 'video' && (s.frameWidth || 0) > w) \
                 { w = s.frameWidth; h = s.frameHeight; } }); return { w, h }; })()",
        )
        .await;
    let (sw, sh) = (sent["w"].as_u64().unwrap(), sent["h"].as_u64().unwrap());
    let (w, h) = (
        st["video"]["width"].as_u64().unwrap(),
        st["video"]["height"].as_u64().unwrap(),
    );
    assert!(sw > 0 && sh > 0, "Ann sends no video: {sent}");
    let same_shape = |a: u64, b: u64| (a * sh).abs_diff(b * sw) <= sw.max(sh) * 2;
    assert!(
        w <= sw && h <= sh && same_shape(w, h),
        "decoded {w}x{h}, sent {sw}x{sh}"
    );
    // ...and shows it on Ann's tile, at the decoded size.
    let tile = tv
        .wait_for(
            &format!(
                "(() => {{ const v = document.querySelector('#grid .tile[data-key=\"{ann_id}\"] video'); \
                   return v && !v.hidden && v.videoWidth > 0 \
                     ? {{ w: v.videoWidth, h: v.videoHeight }} : null; }})()"
            ),
            JOIN_TIMEOUT,
        )
        .await;
    assert!(
        same_shape(tile["w"].as_u64().unwrap(), tile["h"].as_u64().unwrap()),
        "tile video {tile}, sent {sw}x{sh}"
    );

    // Nothing was captured or sent: no sender carries a track, no RTP went out.
    assert_eq!(st["sendersWithTracks"], json!(0), "{st}");
    assert_eq!(st["sendingTransceivers"], json!(0), "{st}");
    assert_eq!(st["framesSent"], json!(0), "{st}");
    assert_eq!(st["packetsSent"], json!(0), "{st}");
    assert_eq!(st["outboundRtp"], json!(0), "{st}");
    let local_media = tv
        .eval("Object.values(window.convene.participants).length")
        .await;
    assert_eq!(local_media, json!(1), "the display sees Ann only");

    // No controls, no top bar, no side panel, no local tile; the grid fills the window.
    for sel in ["#controls", "#topbar", "#side", "#grid .tile.local"] {
        assert!(!visible(&tv, sel).await, "{sel} is visible on the display");
    }
    assert!(visible(&tv, "#grid").await);
    let grid = tv
        .eval(
            "(() => { const r = document.querySelector('#grid').getBoundingClientRect(); \
               return { x: r.left, y: r.top, w: r.width, h: r.height, \
                        vw: window.innerWidth, vh: window.innerHeight }; })()",
        )
        .await;
    assert_eq!(grid["x"], json!(0), "{grid}");
    assert_eq!(grid["y"], json!(0), "{grid}");
    assert_eq!(grid["w"], grid["vw"], "{grid}");
    assert_eq!(grid["h"], grid["vh"], "{grid}");
    // One far-end participant: her tile is the whole grid (no cell is kept
    // for a local tile).
    let fill = tv
        .eval(&format!(
            "(() => {{ const g = document.querySelector('#grid').getBoundingClientRect(); \
               const t = document.querySelector('#grid .tile[data-key=\"{ann_id}\"]').getBoundingClientRect(); \
               return {{ tiles: document.querySelectorAll('#grid .tile').length, \
                        w: t.width / g.width, h: t.height / g.height }}; }})()"
        ))
        .await;
    assert_eq!(fill["tiles"], json!(1), "{fill}");
    assert!(
        fill["w"].as_f64().unwrap() > 0.95 && fill["h"].as_f64().unwrap() > 0.95,
        "{fill}"
    );
    // The normal page keeps its controls (the hiding is the display's only).
    assert!(visible(&ann, "#controls").await);

    // Server side: the display is a participant without tracks. Ann's page
    // knows the room through the server's events only: the display is there,
    // has published nothing, and Ann receives nothing from it.
    ann.wait_for(
        &format!("!!window.convene.participants['{tv_id}']"),
        JOIN_TIMEOUT,
    )
    .await;
    let seen = ann
        .eval(&format!(
            "(() => {{ const p = window.convene.participants['{tv_id}']; \
               return {{ name: p.name, tracks: p.tracks.length, \
                        remote: window.convene.remoteTracks.filter(t => t.participant_id === '{tv_id}').length }}; }})()"
        ))
        .await;
    assert_eq!(
        seen,
        json!({"name": "Room A display", "tracks": 0, "remote": 0})
    );
    // The live-participants API lists both; only Ann's tracks exist in the room
    // (the display's own view of the room names exactly Ann's two tracks).
    let live = s.api().get("/api/v1/rooms/tv/live/participants").await;
    let names: Vec<Value> = live.body["live_participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{}", live.body);
    assert!(names.contains(&json!("Room A display")), "{}", live.body);
    let sources = tv
        .eval("window.convene.remoteTracks.map(t => t.participant_id + ':' + t.source).sort()")
        .await;
    assert_eq!(
        sources,
        json!([format!("{ann_id}:camera"), format!("{ann_id}:microphone")])
    );

    // Ann keeps hearing nothing from the display while it watches: her inbound
    // counters stay at zero.
    let ann_in = ann.eval("window.convene.stats()").await;
    assert_eq!(ann_in["packetsReceived"], json!(0), "{ann_in}");
}
