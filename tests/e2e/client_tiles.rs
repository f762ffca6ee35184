//! A tile of the meeting client in real Chromium (issue 25): its full-screen
//! and picture-in-picture controls (used with trusted input, as a user
//! would), the room setting `auto_pip_enabled`, and the speaker and
//! presentation layouts making different tiles large when a screen is shared.

use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, MEDIA_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Clicks the element `selector` with trusted mouse input at its centre
/// (a user gesture: what the Fullscreen and Picture-in-Picture APIs ask for).
pub(crate) async fn click_trusted(page: &Page, selector: &str) {
    // Input goes to the tab in front (a browser may hold several pages).
    page.call("Page.bringToFront", json!({})).await.unwrap();
    let rect = page
        .eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
               e.scrollIntoView({{block: 'nearest'}}); const r = e.getBoundingClientRect(); \
               return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()",
            json!(selector)
        ))
        .await;
    assert!(!rect.is_null(), "nothing to click at {selector}");
    for kind in ["mousePressed", "mouseReleased"] {
        page.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}),
        )
        .await
        .unwrap();
    }
}

fn tile(key: &str, part: &str) -> String {
    format!("#grid .tile[data-key=\"{key}\"] {part}")
}

/// Makes the page believe it was hidden (or shown again): the events a
/// browser fires when the user switches to another tab. Headless Chromium
/// has no other tab in front, so the state is set and the event fired here.
async fn set_hidden(page: &Page, hidden: bool) {
    let state = if hidden { "hidden" } else { "visible" };
    page.eval(&format!(
        "Object.defineProperty(document, 'visibilityState', {{value: '{state}', configurable: true}}); \
         Object.defineProperty(document, 'hidden', {{value: {hidden}, configurable: true}}); \
         document.dispatchEvent(new Event('visibilitychange')); true"
    ))
    .await;
}

/// The trace entries of auto picture-in-picture so far.
async fn auto_pip_trace(page: &Page) -> Vec<String> {
    let trace = page.eval("window.convene.trace").await;
    trace
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| e.starts_with("pip:auto"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_tile_goes_full_screen_and_picture_in_picture_and_auto_pip_follows_the_room() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "tiles", "join_screen_enabled": false, "auto_pip_enabled": true}),
        )
        .await
        .expect(200);
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "nopip", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    // Bad input: the API's error, nothing changes.
    s.api()
        .patch("/api/v1/rooms/tiles", json!({"auto_pip_enabled": "yes"}))
        .await
        .expect_invalid("auto_pip_enabled");
    assert_eq!(
        s.api().get("/api/v1/rooms/tiles").await.expect(200).body["auto_pip_enabled"],
        true
    );
    let t_mo = token(&s, "tiles", "Mo", "moderator").await;
    let t_ada = token(&s, "tiles", "Ada", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/tiles?token={t_mo}"))).await;
    let ada = b2.open(&s.url(&format!("/tiles?token={t_ada}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ada, "joined").await;
    let ada_id = ada.eval("window.convene.participantId").await;
    let ada_id = ada_id.as_str().unwrap().to_string();
    mo.wait_for(
        &format!(
            "(() => {{ const v = document.querySelector({}); return v && v.videoWidth > 0; }})()",
            json!(tile(&ada_id, "video"))
        ),
        MEDIA_TIMEOUT,
    )
    .await;
    // The controls are labelled buttons in the tile's bar.
    let labels = mo
        .eval(&format!(
            "[document.querySelector({}).getAttribute('aria-label'), document.querySelector({}).getAttribute('aria-label')]",
            json!(tile(&ada_id, "button.fullscreen")),
            json!(tile(&ada_id, "button.pip"))
        ))
        .await;
    assert_eq!(
        labels,
        json!(["Show Ada full screen", "Picture-in-picture of Ada"])
    );

    // Full screen: that tile is the fullscreen element; again: back.
    assert_eq!(mo.eval("window.convene.fullscreen").await, Value::Null);
    click_trusted(&mo, &tile(&ada_id, "button.fullscreen")).await;
    mo.wait_for(
        &format!(
            "window.convene.fullscreen === {} && document.fullscreenElement.classList.contains('tile')",
            json!(ada_id)
        ),
        JOIN_TIMEOUT,
    )
    .await;
    click_trusted(&mo, &tile(&ada_id, "button.fullscreen")).await;
    mo.wait_for(
        "window.convene.fullscreen === null && document.fullscreenElement === null",
        JOIN_TIMEOUT,
    )
    .await;

    // Picture-in-picture of Ada's video.
    click_trusted(&mo, &tile(&ada_id, "button.pip")).await;
    let pip = mo
        .wait_for(
            &format!(
                "window.convene.pip === {} ? 'open' : (window.convene.trace.find(e => e.startsWith('pip:refused')) || false)",
                json!(ada_id)
            ),
            JOIN_TIMEOUT,
        )
        .await;
    eprintln!("picture-in-picture: {pip}");
    if pip == json!("open") {
        assert_eq!(
            mo.eval("document.pictureInPictureElement.closest('.tile').dataset.key")
                .await,
            json!(ada_id)
        );
        click_trusted(&mo, &tile(&ada_id, "button.pip")).await;
        mo.wait_for("window.convene.pip === null", JOIN_TIMEOUT)
            .await;
    } else {
        // Refused: the user is told why.
        mo.wait_for(
            "window.convene.notices.some(n => n.text.startsWith('Picture-in-picture is not available'))",
            JOIN_TIMEOUT,
        )
        .await;
    }

    // auto_pip_enabled: leaving the tab asks for picture-in-picture of the
    // other participant (opened, or refused by a browser without automatic
    // PiP); coming back closes a window it opened.
    assert_eq!(mo.eval("window.convene.autoPip").await, json!(true));
    set_hidden(&mo, true).await;
    let entered = mo
        .wait_for(
            "window.convene.trace.find(e => e.startsWith('pip:auto')) || false",
            JOIN_TIMEOUT,
        )
        .await;
    eprintln!("auto picture-in-picture: {entered}");
    if entered == json!("pip:auto:hidden") {
        assert_eq!(mo.eval("window.convene.pip").await, json!(ada_id));
        set_hidden(&mo, false).await;
        mo.wait_for("window.convene.pip === null", JOIN_TIMEOUT)
            .await;
    } else {
        assert!(
            entered.as_str().unwrap().starts_with("pip:auto-refused:"),
            "{entered}"
        );
        set_hidden(&mo, false).await;
    }

    // A room without the setting: leaving the tab does nothing.
    let t_no = token(&s, "nopip", "Nia", "moderator").await;
    let t_nb = token(&s, "nopip", "Ned", "speaker").await;
    let nia = b1.open(&s.url(&format!("/nopip?token={t_no}"))).await;
    let ned = b2.open(&s.url(&format!("/nopip?token={t_nb}"))).await;
    wait_state(&nia, "joined").await;
    wait_state(&ned, "joined").await;
    nia.wait_for(
        "[...document.querySelectorAll('#grid .tile:not(.local) video')].some(v => v.videoWidth > 0)",
        MEDIA_TIMEOUT,
    )
    .await;
    assert_eq!(nia.eval("window.convene.autoPip").await, json!(false));
    set_hidden(&nia, true).await;
    // The handler runs synchronously on the event; give it a round trip.
    nia.eval("new Promise(r => setTimeout(() => r(true), 300))")
        .await;
    assert_eq!(auto_pip_trace(&nia).await, Vec::<String>::new());
    assert_eq!(nia.eval("window.convene.pip").await, Value::Null);
}

/// The keys of the large tiles.
async fn large(page: &Page) -> Value {
    page.eval("[...document.querySelectorAll('#grid .tile.large')].map(t => t.dataset.key)")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_presentation_shows_the_screen_large_and_speaker_view_the_speaker() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "present", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let t_mo = token(&s, "present", "Mo", "moderator").await;
    let t_ada = token(&s, "present", "Ada", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/present?token={t_mo}"))).await;
    let ada = b2.open(&s.url(&format!("/present?token={t_ada}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ada, "joined").await;
    let ada_id = ada.eval("window.convene.participantId").await;
    let ada_id = ada_id.as_str().unwrap().to_string();
    let mo_id = mo.eval("window.convene.participantId").await;
    let screen = format!("{ada_id}:screen");
    ada.eval("window.convene.toggleScreen().then(() => true)")
        .await;
    mo.wait_for(
        &format!(
            "(() => {{ const v = document.querySelector({}); return v && v.videoWidth > 0; }})()",
            json!(tile(&screen, "video"))
        ),
        MEDIA_TIMEOUT,
    )
    .await;
    // Presentation: the shared screen is large, the cameras in the strip.
    mo.eval("window.convene.setRoomLayout('presentation')")
        .await;
    for page in [&mo, &ada] {
        page.wait_for(
            &format!(
                "window.convene.layout.room === 'presentation' && window.convene.layout.focus === {}",
                json!(screen)
            ),
            JOIN_TIMEOUT,
        )
        .await;
    }
    assert_eq!(large(&mo).await, json!([screen]));
    // (Ada's own screen is large for her too.)
    assert_eq!(large(&ada).await, json!([screen]));
    let strip = mo
        .eval(&format!(
            "[{}, {}].map(k => {{ const t = document.querySelector('#grid .tile[data-key=\"' + k + '\"]'); \
               return !t.hidden && !t.classList.contains('large'); }})",
            json!(ada_id),
            mo_id
        ))
        .await;
    assert_eq!(strip, json!([true, true]), "the cameras are in the strip");

    // Speaker view: a person (the active speaker, else the other
    // participant's camera) is large, not the screen.
    mo.eval("window.convene.setRoomLayout('speaker')").await;
    mo.wait_for(
        &format!(
            "window.convene.layout.room === 'speaker' && window.convene.layout.focus === {}",
            json!(ada_id)
        ),
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(large(&mo).await, json!([ada_id]));

    // Grid: nothing is large.
    mo.eval("window.convene.setRoomLayout('grid')").await;
    mo.wait_for(
        "window.convene.layout.room === 'grid' && window.convene.layout.focus === null",
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(large(&mo).await, json!([]));
}
