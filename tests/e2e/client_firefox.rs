//! The meeting client's layout basics in Firefox ESR (issue 25; Gecko's
//! WebRTC and DOM, driven over WebDriver BiDi), in one room with a Chromium
//! page: the grid shows the other's tile with its video decoding, and pin
//! and speaker view make one tile large.

use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, MEDIA_TIMEOUT, ONE_AT_A_TIME, server};

/// Tile `key`'s state in the page: shown, large, its video's width, and
/// the grid's layout class.
fn tile_state(key: &str) -> String {
    format!(
        "(() => {{ const t = document.querySelector('#grid .tile[data-key=\"{key}\"]'); \
           if (!t) return null; const v = t.querySelector('video'); \
           return {{shown: !t.hidden, large: t.classList.contains('large'), width: v.videoWidth, \
             focused: document.getElementById('grid').classList.contains('focused'), \
             tiles: document.querySelectorAll('#grid .tile:not([hidden])').length}}; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_shows_the_grid_and_pin_and_speaker_view_make_one_tile_large() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "gecko", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let (_chromium, ann, firefox) =
        crate::interop::ann_in_chromium_and_fred_in_firefox(&s, "gecko").await;
    let ann_id = ann.eval("window.convene.participantId").await;
    let ann_id = ann_id.as_str().unwrap().to_string();
    let fred_id = firefox.eval("window.convene.participantId").await;
    let fred_id = fred_id.as_str().unwrap().to_string();

    // The grid: both tiles shown, none large, Ann's video decoding in Firefox.
    let state = tile_state(&ann_id);
    let grid = firefox
        .wait_for(
            &format!("(() => {{ const s = {state}; return s && s.width > 0 ? s : false; }})()"),
            MEDIA_TIMEOUT,
        )
        .await;
    assert_eq!(
        (
            &grid["shown"],
            &grid["large"],
            &grid["focused"],
            &grid["tiles"]
        ),
        (&json!(true), &json!(false), &json!(false), &json!(2)),
        "{grid}"
    );
    let layout = firefox.eval("window.convene.layout").await;
    assert_eq!(
        (&layout["mode"], &layout["focus"]),
        (&json!("grid"), &Value::Null),
        "{layout}"
    );
    let frames = "(async () => { let n = 0; (await window.convene.pc.getStats()).forEach(s => { \
        if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); return n; })()";
    let before = firefox.eval(frames).await.as_u64().unwrap();
    firefox
        .wait_for(
            &format!("{frames}.then(n => n > {before} + 30)"),
            MEDIA_TIMEOUT,
        )
        .await;

    // Pin Fred's own tile (its pin button): it is the large one.
    firefox
        .eval(&format!(
            "(() => {{ document.querySelector('#grid .tile[data-key=\"{fred_id}\"] button.pin').click(); return true; }})()"
        ))
        .await;
    let pinned = firefox
        .wait_for(
            &format!(
                "(() => {{ const s = {}; return s && s.large && s.focused ? s : false; }})()",
                tile_state(&fred_id)
            ),
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(pinned["shown"], json!(true), "{pinned}");
    assert_eq!(
        firefox.eval(&tile_state(&ann_id)).await["large"],
        json!(false)
    );
    let layout = firefox.eval("window.convene.layout").await;
    assert_eq!(
        (&layout["pinned"], &layout["focus"]),
        (&json!(fred_id), &json!(fred_id)),
        "{layout}"
    );
    // Unpinned: the grid again.
    firefox
        .eval(&format!(
            "(() => {{ document.querySelector('#grid .tile[data-key=\"{fred_id}\"] button.pin').click(); return true; }})()"
        ))
        .await;
    firefox
        .wait_for(
            "window.convene.layout.focus === null && !document.getElementById('grid').classList.contains('focused')",
            JOIN_TIMEOUT,
        )
        .await;

    // Speaker view: the other participant (the only remote tile) is large,
    // and still decoding.
    firefox
        .eval("(() => { document.getElementById('ctl-layout').click(); return true; })()")
        .await;
    let speaker = firefox
        .wait_for(
            &format!(
                "(() => {{ const s = {}; return s && s.large && s.focused && s.width > 0 ? s : false; }})()",
                tile_state(&ann_id)
            ),
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(speaker["tiles"], json!(2), "{speaker}");
    assert_eq!(
        firefox.eval("window.convene.layout.mode").await,
        json!("speaker")
    );
    assert_eq!(
        firefox
            .eval("document.getElementById('ctl-layout').getAttribute('aria-pressed')")
            .await,
        json!("true")
    );
    let before = firefox.eval(frames).await.as_u64().unwrap();
    firefox
        .wait_for(
            &format!("{frames}.then(n => n > {before} + 30)"),
            MEDIA_TIMEOUT,
        )
        .await;
}
