//! The meeting client's languages, room-wide layout and pages of tiles in
//! real Chromium (issue 25, issue 22's room layout): a German browser gets
//! German unless the room forces its language, a moderator or the API sets
//! the layout for everyone, and a page shows (and receives video for) only
//! the tiles of its current page.

use convene_tests::Server;
use convene_tests::browser::{Browser, Page};
use convene_tests::rtc_client::{Client, ClientOptions};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

async fn text(page: &Page, id: &str) -> String {
    page.eval(&format!(
        "document.getElementById('{id}').textContent.trim()"
    ))
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_language_follows_the_browser_unless_the_room_forces_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "sprache"}))
        .await
        .expect(200);
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "english", "default_language": "en",
                   "language_selection_enabled": false}),
        )
        .await
        .expect(200);
    // Bad input is refused with the API's error shape and changes nothing.
    s.api()
        .patch(
            "/api/v1/rooms/english",
            json!({"language_selection_enabled": "no"}),
        )
        .await
        .expect_invalid("language_selection_enabled");
    let room = s.api().get("/api/v1/rooms/english").await.expect(200).body;
    assert_eq!(room["language_selection_enabled"], false);

    let b = Browser::launch_with(&["--lang=de-DE", "--accept-lang=de-DE,de"]).await;
    let page = b.open(&s.url("/sprache")).await;
    page.wait_for("document.getElementById('join-button') && window.convene && window.convene.state === 'idle' && document.documentElement.lang === 'de'", JOIN_TIMEOUT)
        .await;
    assert_eq!(
        page.eval("navigator.languages[0]").await,
        json!("de-DE"),
        "the browser was not started in German"
    );
    assert_eq!(text(&page, "join-button").await, "Beitreten");
    assert_eq!(text(&page, "join-title").await, "sprache beitreten");
    assert_eq!(
        page.eval("document.getElementById('name-input').placeholder")
            .await,
        json!("Ihr Name")
    );
    // In the call: the controls, the tabs, the own tile, in German.
    page.eval("window.convene.join('Greta')").await;
    wait_state(&page, "joined").await;
    assert_eq!(text(&page, "ctl-leave").await, "Verlassen");
    assert_eq!(text(&page, "ctl-settings").await, "Einstellungen");
    assert_eq!(text(&page, "status").await, "Verbunden");
    page.wait_for(
        "[...document.querySelectorAll('.tile .name')].some(e => e.textContent === 'Greta (Sie)')",
        JOIN_TIMEOUT,
    )
    .await;
    // Open every tab and the dialogs so their strings are asked for too.
    page.eval(
        "for (const id of ['tab-polls', 'tab-people', 'tab-chat', 'ctl-help']) \
         document.getElementById(id).click(); true",
    )
    .await;
    page.wait_for("document.getElementById('help-dialog').open", JOIN_TIMEOUT)
        .await;
    let rows = page
        .eval("[...document.querySelectorAll('#help-list dd')].map(r => r.textContent)")
        .await;
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Das Mikrofon ein- oder ausschalten"),
        "{rows}"
    );
    let i18n = page.eval("window.convene.i18n").await;
    assert_eq!(i18n["language"], "de");
    assert_eq!(
        i18n["missing"],
        json!([]),
        "strings without a German translation"
    );

    // The room that forces English shows English to the same German browser.
    let page = b.open(&s.url("/english")).await;
    page.wait_for(
        "window.convene && window.convene.state === 'idle' && document.documentElement.lang === 'en'",
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(text(&page, "join-button").await, "Join");
    assert_eq!(text(&page, "join-title").await, "Join english");
    page.eval("window.convene.join('Greta')").await;
    wait_state(&page, "joined").await;
    assert_eq!(text(&page, "ctl-leave").await, "Leave");
    assert_eq!(page.eval("window.convene.i18n.language").await, json!("en"));
}

async fn layout(page: &Page) -> Value {
    page.eval("window.convene.layout").await
}

async fn wait_mode(page: &Page, mode: &str) {
    page.wait_for(
        &format!(
            "window.convene.layout.mode === '{mode}' && window.convene.layout.room === '{mode}'"
        ),
        JOIN_TIMEOUT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_room_layout_is_set_for_everyone_by_the_api_and_a_moderator() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "stage", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let b = Browser::launch().await;
    let mo = b
        .open(&s.url(&format!(
            "/stage?token={}",
            token(&s, "stage", "Mo", "moderator").await
        )))
        .await;
    wait_state(&mo, "joined").await;
    let guest = b
        .open(&s.url(&format!(
            "/stage?token={}",
            token(&s, "stage", "Gus", "speaker").await
        )))
        .await;
    wait_state(&guest, "joined").await;
    wait_mode(&guest, "grid").await;
    let mo_id = mo.eval("window.convene.participantId").await;
    guest
        .wait_for(
            &format!("Boolean(window.convene.participants[{mo_id}])"),
            JOIN_TIMEOUT,
        )
        .await;
    // Only the moderator sees the control.
    assert_eq!(
        mo.eval("document.getElementById('ctl-room-layout-row').hidden")
            .await,
        json!(false)
    );
    assert_eq!(
        guest
            .eval("document.getElementById('ctl-room-layout-row').hidden")
            .await,
        json!(true)
    );

    // The API sets speaker view: the other page follows live.
    let room = s
        .api()
        .patch("/api/v1/rooms/stage", json!({"layout_mode": "speaker"}))
        .await
        .expect(200)
        .body;
    assert_eq!(room["layout_mode"], "speaker");
    wait_mode(&guest, "speaker").await;
    wait_mode(&mo, "speaker").await;
    assert!(!layout(&guest).await["focus"].is_null());

    // Bad input: a clear error, nothing changes.
    s.api()
        .patch("/api/v1/rooms/stage", json!({"layout_mode": "mosaic"}))
        .await
        .expect_invalid("layout_mode");
    assert_eq!(
        s.api().get("/api/v1/rooms/stage").await.expect(200).body["layout_mode"],
        "speaker"
    );

    // The moderator picks presentation from the control bar.
    mo.eval(
        "(() => { const s = document.getElementById('ctl-room-layout'); s.value = 'presentation'; \
         s.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    wait_mode(&guest, "presentation").await;
    guest
        .wait_for(
            "window.convene.notices.some(n => n.text === 'Mo set the layout to Presentation')",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(
        s.api().get("/api/v1/rooms/stage").await.expect(200).body["layout_mode"],
        "presentation"
    );

    // A guest may not set it; the room keeps its layout.
    guest.eval("window.convene.setRoomLayout('grid')").await;
    guest
        .wait_for(
            "window.convene.trace.includes('in:error:FORBIDDEN')",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(layout(&mo).await["mode"], "presentation");

    // A pin stays on top of the room's layout.
    guest
        .eval(&format!(
            "document.querySelector('.tile[data-key=' + JSON.stringify({mo_id}) + '] .pin').click(); true"
        ))
        .await;
    mo.eval("window.convene.setRoomLayout('grid')").await;
    wait_mode(&guest, "grid").await;
    let l = layout(&guest).await;
    assert_eq!(l["pinned"], mo_id, "{l}");
    assert_eq!(l["focus"], mo_id, "{l}");

    // Someone joining later starts in the room's layout.
    mo.eval("window.convene.setRoomLayout('speaker')").await;
    wait_mode(&guest, "speaker").await;
    let late = b
        .open(&s.url(&format!(
            "/stage?token={}",
            token(&s, "stage", "Lou", "attendee").await
        )))
        .await;
    wait_state(&late, "joined").await;
    wait_mode(&late, "speaker").await;
}

/// The inbound video streams receiving bytes now, and those of the tiles
/// shown (by mid); truthy once the two are the same non-empty set.
const ACTIVE_IS_VISIBLE: &str = r#"(async () => {
  const snap = async (kind) => {
    const m = {};
    (await window.convene.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === kind) m[r.mid] = r.bytesReceived;
    });
    return m;
  };
  const [a, aa] = [await snap('video'), await snap('audio')];
  await new Promise((r) => setTimeout(r, 1500));
  const [b, ab] = [await snap('video'), await snap('audio')];
  const active = Object.keys(b).filter((k) => b[k] > (a[k] || 0)).sort();
  const audio = Object.keys(ab).filter((k) => ab[k] > (aa[k] || 0));
  const shown = new Set(window.convene.layout.visible);
  const want = window.convene.remoteTracks
    .filter((t) => t.kind === 'video' && shown.has(t.participant_id))
    .map((t) => t.mid).sort();
  return want.length > 0 && JSON.stringify(active) === JSON.stringify(want)
    ? { active, want, audio: audio.length, videos: Object.keys(b).length } : false;
})()"#;

fn publisher(s: &Server, n: usize) -> ClientOptions {
    ClientOptions {
        room: Some("big".into()),
        name: Some(format!("P{n:02}")),
        ..ClientOptions::new(s.ws_url())
    }
}

/// Nineteen publishers in a debug build on a shared two-core machine take
/// a while to connect; this bounds the waits.
const LARGE_ROOM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// A publisher that only fills the room, and the (participant, track) pairs
/// it paused.
struct Filler {
    client: Client,
    paused: Vec<(String, String)>,
}

impl Filler {
    /// Pauses, at the server, everything this publisher receives until both
    /// tracks (audio and video) of participant `from` are paused: nineteen
    /// publishers each receiving the other eighteen would starve a shared
    /// two-core machine. A server offer lists every track offered so far,
    /// so each is paused once, whichever offer brought it.
    async fn pause_all_from(&mut self, from: &str) {
        while self.paused.iter().filter(|(p, _)| p == from).count() < 2 {
            let done: Vec<String> = self.paused.iter().map(|(_, t)| t.clone()).collect();
            let offer = self
                .client
                .wait_signal(LARGE_ROOM_TIMEOUT, move |v| {
                    v["type"] == "offer"
                        && v["tracks"].as_array().is_some_and(|ts| {
                            ts.iter()
                                .any(|t| !done.iter().any(|d| t["track_id"] == d.as_str()))
                        })
                })
                .await;
            for t in offer["tracks"].as_array().unwrap() {
                let id = t["track_id"].as_str().unwrap().to_string();
                if self.paused.iter().any(|(_, d)| *d == id) {
                    continue;
                }
                self.client
                    .send(json!({"type": "pause", "track_id": id, "paused": true}));
                let who = t["participant_id"].as_str().unwrap().to_string();
                self.paused.push((who, id));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_large_room_receives_video_only_for_the_page_shown() {
    // Nineteen publishers and the page: a room of twenty.
    const PUBLISHERS: usize = 19;
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "big", "join_screen_enabled": false,
                   "default_role": "speaker", "roles": ["moderator", "speaker", "attendee"],
                   "max_participants": 50}),
        )
        .await
        .expect(200);
    let mut publishers: Vec<Filler> = Vec::new();
    for n in 0..PUBLISHERS {
        let mut client = Client::connect(publisher(&s, n)).await;
        // (With the generous bound: other tests may share the machine.)
        let joined = client
            .wait_signal(LARGE_ROOM_TIMEOUT, |v| v["type"] == "joined")
            .await;
        let id = joined["participant"]["id"].as_str().unwrap().to_string();
        client.publish();
        client
            .wait_signal(LARGE_ROOM_TIMEOUT, |v| v["type"] == "answer")
            .await;
        for other in &mut publishers {
            other.pause_all_from(&id).await;
        }
        // What the newcomer receives from those already here.
        let mut c = Filler {
            client,
            paused: Vec::new(),
        };
        let earlier: Vec<String> = joined["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(earlier.len(), n, "{joined}");
        for from in &earlier {
            c.pause_all_from(from).await;
        }
        publishers.push(c);
    }
    let b = Browser::launch().await;
    let page = b
        .open(&s.url(&format!(
            "/big?token={}&page_size=4",
            token(&s, "big", "Viewer", "attendee").await
        )))
        .await;
    wait_state(&page, "joined").await;
    page.wait_for(
        &format!(
            "window.convene.remoteTracks.filter(t => t.kind === 'video').length === {PUBLISHERS}"
        ),
        LARGE_ROOM_TIMEOUT,
    )
    .await;
    let l = layout(&page).await;
    assert_eq!(l["pages"], 5, "20 tiles, 4 a page: {l}");
    assert_eq!(l["visible"].as_array().unwrap().len(), 4, "{l}");
    // The pager is there and usable by keyboard (buttons).
    assert_eq!(
        page.eval("document.getElementById('pager').hidden").await,
        json!(false)
    );
    assert_eq!(
        page.eval("document.getElementById('page-label').textContent")
            .await,
        json!("Page 1 of 5")
    );

    // Page 1: the own tile and three others; only their video flows.
    let first = page.wait_for(ACTIVE_IS_VISIBLE, LARGE_ROOM_TIMEOUT).await;
    let active = first["active"].as_array().unwrap().clone();
    assert_eq!(active.len(), 3, "{first}");
    assert!(active.len() < PUBLISHERS, "{first}");
    // (Chromium lists an inbound stream once packets came: the paused
    // ones never started.)
    assert!(
        first["videos"].as_u64().unwrap() < PUBLISHERS as u64,
        "{first}"
    );
    // Audio is not paged: every publisher is heard.
    assert_eq!(first["audio"], PUBLISHERS, "{first}");
    assert_eq!(
        page.eval("window.convene.pausedTracks.length").await,
        json!(PUBLISHERS - 3)
    );

    // The next page (its button, as a keyboard user would press it).
    page.eval("document.getElementById('page-next').focus(); document.activeElement.click(); true")
        .await;
    page.wait_for("window.convene.layout.page === 1", JOIN_TIMEOUT)
        .await;
    let second = page.wait_for(ACTIVE_IS_VISIBLE, LARGE_ROOM_TIMEOUT).await;
    eprintln!("20 participants, page 1: {first}; page 2: {second}");
    let active2 = second["active"].as_array().unwrap().clone();
    assert_eq!(active2.len(), 4, "{second}");
    assert!(
        active.iter().all(|m| !active2.contains(m)),
        "paging did not switch the streams: {first} then {second}"
    );

    // Speaker view on page 2: the large tile (the active speaker, else the
    // first remote tile, which is on page 1) is shown on this page too,
    // and its video flows again.
    page.eval("document.getElementById('ctl-layout').click(); true")
        .await;
    let focused = page
        .wait_for(
            "(() => { const l = window.convene.layout; \
             return l.mode === 'speaker' && l.focus && l.visible.includes(l.focus) ? l : false; })()",
            JOIN_TIMEOUT,
        )
        .await;
    let focus = focused["focus"].clone();
    let third = page.wait_for(ACTIVE_IS_VISIBLE, LARGE_ROOM_TIMEOUT).await;
    let focus_mid = page
        .eval(&format!(
            "window.convene.remoteTracks.find(t => t.kind === 'video' && t.participant_id === {focus}).mid"
        ))
        .await;
    assert!(
        third["active"].as_array().unwrap().contains(&focus_mid),
        "the large tile's video does not flow: {focused} {third}"
    );
    drop(publishers);
}
