//! The meeting client's own controls in real Chromium (issue 25): keyboard
//! shortcuts do what their buttons do, never while typing, and are listed
//! in a help dialog.

use convene_tests::browser::{Browser, Page};
use serde_json::json;

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Presses `key` as a user would (a trusted key event at the focus).
async fn press(page: &Page, key: &str, shift: bool) {
    let modifiers = if shift { 8 } else { 0 };
    for kind in ["keyDown", "keyUp"] {
        page.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": key, "text": key, "modifiers": modifiers}),
        )
        .await
        .unwrap();
    }
}

async fn pressed(page: &Page, id: &str) -> bool {
    page.eval(&format!(
        "document.getElementById('{id}').getAttribute('aria-pressed') === 'true'"
    ))
    .await
        == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_keyboard_shortcuts_toggle_state_and_are_listed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "keys", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let t = token(&s, "keys", "Kim", "moderator").await;
    let b = Browser::launch().await;
    let page = b.open(&s.url(&format!("/keys?token={t}"))).await;
    wait_state(&page, "joined").await;
    // The room defaults: camera on, microphone off.
    assert!(!pressed(&page, "ctl-mic").await);
    assert!(pressed(&page, "ctl-cam").await);

    press(&page, "m", false).await;
    page.wait_for(
        "document.getElementById('ctl-mic').getAttribute('aria-pressed') === 'true'",
        JOIN_TIMEOUT,
    )
    .await;
    press(&page, "v", false).await;
    page.wait_for(
        "document.getElementById('ctl-cam').getAttribute('aria-pressed') === 'false'",
        JOIN_TIMEOUT,
    )
    .await;

    // Typing in the chat toggles nothing.
    page.eval("document.getElementById('chat-input').focus(); true")
        .await;
    press(&page, "m", false).await;
    press(&page, "v", false).await;
    assert_eq!(
        page.eval("document.getElementById('chat-input').value")
            .await,
        json!("mv")
    );
    assert!(
        pressed(&page, "ctl-mic").await,
        "typing 'm' muted the microphone"
    );
    assert!(
        !pressed(&page, "ctl-cam").await,
        "typing 'v' turned the camera on"
    );
    page.eval("document.activeElement.blur(); true").await;

    // '?' opens the list of shortcuts; Escape closes it.
    press(&page, "?", true).await;
    page.wait_for("document.getElementById('help-dialog').open", JOIN_TIMEOUT)
        .await;
    let rows = page
        .eval("[...document.querySelectorAll('#help-list > div')].map(r => r.textContent)")
        .await;
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with('M') && r.contains("microphone"))
    );
    // While the dialog is open other shortcuts do nothing.
    press(&page, "m", false).await;
    assert!(pressed(&page, "ctl-mic").await);
    page.call(
        "Input.dispatchKeyEvent",
        json!({"type": "keyDown", "key": "Escape", "code": "Escape", "windowsVirtualKeyCode": 27}),
    )
    .await
    .unwrap();
    page.wait_for("!document.getElementById('help-dialog').open", JOIN_TIMEOUT)
        .await;

    // Shift+L leaves.
    press(&page, "L", true).await;
    wait_state(&page, "left").await;
    let trace = page.eval("window.convene.trace").await;
    assert!(
        trace.as_array().unwrap().iter().any(|t| t == "out:leave"),
        "{trace}"
    );
}

/// Switching the camera mid-call captures a new track and sends it on the
/// same sender: no renegotiation, and the other side keeps decoding. (The
/// fake capture has one camera that works for a call; with Chromium's
/// `device-count=2` the second fake camera delivered only a handful of
/// frames, so the test switches to a fresh capture of the same device: a
/// new track all the same.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_switching_camera_mid_call_keeps_the_other_side_decoding() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "swap", "join_screen_enabled": false,
                   "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_a = token(&s, "swap", "Ann", "speaker").await;
    let t_b = token(&s, "swap", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/swap?token={t_a}"))).await;
    let ben = b2.open(&s.url(&format!("/swap?token={t_b}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    crate::browser::wait_media_both(&ann, &ben).await;

    let cameras = ann
        .eval("window.convene.devices().then(d => d.cameras.map(c => c.id))")
        .await;
    let cameras: Vec<String> = serde_json::from_value(cameras).unwrap();
    let device = ann.eval("window.convene.captureDevice('camera')").await;
    assert!(
        cameras.iter().any(|c| json!(c) == device),
        "the camera in use is listed: {device} in {cameras:?}"
    );
    let sent_track = "window.convene.pc.getSenders() \
        .filter(s => s.track && s.track.kind === 'video').map(s => s.track.id)[0]";
    let track_before = ann.eval(sent_track).await;
    let offers_before = ann
        .eval("window.convene.trace.filter(t => t === 'out:offer').length")
        .await;
    let decoded = ben.eval("window.convene.stats()").await["framesDecoded"]
        .as_u64()
        .unwrap();

    ann.eval(&format!(
        "window.convene.switchDevice('camera', {device}).then(() => true)"
    ))
    .await;
    // A new capture track is on the same sender; nothing was renegotiated.
    let track_after = ann.eval(sent_track).await;
    assert!(track_after.is_string());
    assert_ne!(
        track_after, track_before,
        "the sender still sends the old track"
    );
    assert_eq!(
        ann.eval("window.convene.captureDevice('camera')").await,
        device
    );
    assert_eq!(
        ann.eval("window.convene.trace.includes('device:camera')")
            .await,
        json!(true)
    );
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {decoded} + 60)"),
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(
        ann.eval("window.convene.trace.filter(t => t === 'out:offer').length")
            .await,
        offers_before,
        "switching the camera renegotiated"
    );
    let ben_trace = ben.eval("window.convene.trace").await;
    assert_eq!(
        ben_trace
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| *t == "in:track_published")
            .count(),
        2,
        "Ben saw a new track: {ben_trace}"
    );
    // The self view is mirrored by default.
    assert_eq!(ann.eval("window.convene.mirror").await, json!(true));
    assert_eq!(
        ann.eval("document.querySelector('#grid .tile.local').classList.contains('mirrored')")
            .await,
        json!(true)
    );
}

/// The People tab of a page: `name|role|hand|mic|cam|buttons` per row.
async fn people(page: &Page) -> Vec<String> {
    let v = page
        .eval(
            "[...document.querySelectorAll('#people-list li.person')].map(li => [\
               li.querySelector('.name').textContent, li.querySelector('.role').textContent, \
               (li.querySelector('.hand') || {textContent: ''}).textContent, \
               li.querySelector('.state.mic').className.split(' ').pop(), \
               li.querySelector('.state.cam').className.split(' ').pop(), \
               [...li.querySelectorAll('.actions button')].map(b => b.className).join(',')].join('|'))",
        )
        .await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_people_tab_lists_state_and_moderator_actions_and_copies_the_invite_link() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "people", "join_screen_enabled": false,
                   "raise_hand_enabled": true}),
        )
        .await
        .expect(200);
    let t_mod = token(&s, "people", "Mo", "moderator").await;
    let t_ada = token(&s, "people", "Ada", "attendee").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/people?token={t_mod}"))).await;
    let ada = b2.open(&s.url(&format!("/people?token={t_ada}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ada, "joined").await;
    mo.eval("document.getElementById('tab-people').click(); true")
        .await;
    mo.wait_for(
        "document.querySelectorAll('#people-list li.person').length === 2",
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(
        mo.eval("document.querySelector('#tab-people .count').textContent")
            .await,
        json!("2")
    );
    let rows = people(&mo).await;
    // The room defaults: camera on, microphone off. An attendee may not
    // broadcast, so Ada has neither; the moderator may remove her (no
    // microphone to mute).
    assert_eq!(rows[0], "Mo (you)|moderator||off|on|", "{rows:?}");
    assert_eq!(rows[1], "Ada|attendee||off|off|remove", "{rows:?}");

    // Ada raises her hand: it shows, with the moderator's lower-hand action.
    ada.eval("document.getElementById('ctl-hand').click(); true")
        .await;
    mo.wait_for(
        "[...document.querySelectorAll('#people-list .hand')].some(h => h.textContent.includes('1'))",
        JOIN_TIMEOUT,
    )
    .await;
    let rows = people(&mo).await;
    assert_eq!(
        rows[1], "Ada|attendee|✋ 1|off|off|lower-hand,remove",
        "{rows:?}"
    );
    // An attendee's list offers no actions.
    ada.eval("document.getElementById('tab-people').click(); true")
        .await;
    ada.wait_for(
        "document.querySelectorAll('#people-list li.person').length === 2",
        JOIN_TIMEOUT,
    )
    .await;
    assert!(people(&ada).await.iter().all(|r| r.ends_with('|')));

    // Lowering from the list, then removing from the list.
    mo.eval("document.querySelector('#people-list li.person:nth-child(2) button.lower-hand').click(); true")
        .await;
    mo.wait_for(
        "!document.querySelector('#people-list .hand')",
        JOIN_TIMEOUT,
    )
    .await;
    mo.eval(
        "document.querySelector('#people-list li.person:nth-child(2) button.remove').click(); true",
    )
    .await;
    mo.wait_for(
        "document.querySelectorAll('#people-list li.person').length === 1",
        JOIN_TIMEOUT,
    )
    .await;
    ada.wait_for(
        "['error', 'left'].includes(window.convene.state)",
        JOIN_TIMEOUT,
    )
    .await;

    // The invite link is the room's address without the token.
    mo.eval("document.getElementById('people-invite').click(); true")
        .await;
    mo.wait_for(
        "!document.getElementById('people-copied').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(
        mo.eval("document.getElementById('people-link').value")
            .await,
        json!(s.url("/people"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pin_and_speaker_view_make_one_tile_large_and_ask_for_layers_to_fit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    // The room defaults: cameras on.
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "layouts", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let t_mo = token(&s, "layouts", "Mo", "moderator").await;
    let t_ada = token(&s, "layouts", "Ada", "moderator").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/layouts?token={t_mo}"))).await;
    let ada = b2.open(&s.url(&format!("/layouts?token={t_ada}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ada, "joined").await;
    let ada_id = ada.eval("window.convene.participantId").await;
    let ada_id = ada_id.as_str().unwrap().to_string();
    let mo_id = mo.eval("window.convene.participantId").await;
    let mo_id = mo_id.as_str().unwrap().to_string();
    // Mo receives Ada's camera.
    mo.wait_for(
        &format!(
            "(() => {{ const v = document.querySelector('#grid .tile[data-key=\"{ada_id}\"] video'); \
               return v && v.srcObject && v.videoWidth > 0; }})()"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    let layout = || async { mo.eval("window.convene.layout").await };
    assert_eq!(layout().await["focus"], serde_json::Value::Null);

    // Pinning Ada makes her tile the large one.
    mo.eval(&format!(
        "document.querySelector('#grid .tile[data-key=\"{ada_id}\"] button.pin').click(); true"
    ))
    .await;
    let l = layout().await;
    assert_eq!(
        (l["focus"].clone(), l["pinned"].clone()),
        (json!(ada_id), json!(ada_id))
    );
    assert_eq!(
        mo.eval(&format!(
            "document.getElementById('grid').classList.contains('focused') && \
             document.querySelector('#grid .tile[data-key=\"{ada_id}\"]').classList.contains('large') && \
             document.querySelector('#grid .tile[data-key=\"{ada_id}\"] button.pin').getAttribute('aria-pressed')"
        ))
        .await,
        json!("true")
    );
    // Pinning herself instead: Ada is in the filmstrip, so only her lowest
    // layer is asked for.
    mo.eval(&format!(
        "document.querySelector('#grid .tile[data-key=\"{mo_id}\"] button.pin').click(); true"
    ))
    .await;
    assert_eq!(layout().await["focus"], json!(mo_id));
    mo.wait_for(
        "Object.values(window.convene.layers).includes('q')",
        JOIN_TIMEOUT,
    )
    .await;
    // Unpinned: the grid again, and the full layer for two tiles.
    mo.eval(&format!(
        "document.querySelector('#grid .tile[data-key=\"{mo_id}\"] button.pin').click(); true"
    ))
    .await;
    assert_eq!(layout().await["focus"], serde_json::Value::Null);
    mo.wait_for(
        "Object.values(window.convene.layers).every(l => l === 'f') && \
         !document.getElementById('grid').classList.contains('focused')",
        JOIN_TIMEOUT,
    )
    .await;

    // Speaker view: the other participant (the only remote tile) is large.
    mo.eval("document.getElementById('ctl-layout').click(); true")
        .await;
    let l = layout().await;
    assert_eq!(
        (l["mode"].clone(), l["focus"].clone()),
        (json!("speaker"), json!(ada_id))
    );
    assert!(pressed(&mo, "ctl-layout").await);
    mo.eval("document.getElementById('ctl-layout').click(); true")
        .await;
    let l = layout().await;
    assert_eq!(
        (l["mode"].clone(), l["focus"].clone()),
        (json!("grid"), serde_json::Value::Null)
    );
}
