//! The browser client in real headless Chromium against the real binary:
//! two peers see and hear each other, refused joins are shown, and a
//! moderator admits a guest from the lobby. These run inside the test network
//! namespace (scripts/test.sh), where media uses 127.0.0.2.

use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page, assert_isolated_network};
use convene_tests::{Options, Server};
use serde_json::{Value, json};

/// Media must arrive within this long of both peers having joined.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(15);
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// One browser test at a time: two Chromiums per test already fill the two
/// cores of a CI machine, and the other tests' timing must not suffer.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn server() -> (Server, LogOnFailure) {
    assert_isolated_network();
    let s = Server::start_with(Options {
        capture_log: true,
        env: vec![("CONVENE_LOG".into(), "info".into())],
        ..Options::default()
    });
    let guard = LogOnFailure(s.log_path.clone());
    (s, guard)
}

/// Prints the end of the server's log when the test fails (drop it before the server).
struct LogOnFailure(std::path::PathBuf);

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "---- server log (last {} lines) ----\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

async fn token(s: &Server, room: &str, name: &str, role: &str) -> String {
    s.api()
        .post(
            &format!("/api/v1/rooms/{room}/token"),
            json!({"u": name, "role": role}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_state(page: &Page, state: &str) {
    page.wait_for(
        &format!("window.convene && window.convene.state === '{state}'"),
        JOIN_TIMEOUT,
    )
    .await;
}

const MEDIA_FLOWS: &str = "window.convene.stats().then(s => \
    s.framesDecoded > 0 && s.totalSamplesReceived > 0 ? s : null)";

/// Waits until `page` decodes remote video and plays remote audio; returns the stats.
async fn wait_media(page: &Page) -> Value {
    page.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await
}

/// Waits until both pages decode each other's media; on failure, reports both.
async fn wait_media_both(a: &Page, b: &Page) -> (Value, Value) {
    let (ra, rb) = tokio::join!(
        a.try_wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT),
        b.try_wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT)
    );
    match (ra, rb) {
        (Ok(va), Ok(vb)) => (va, vb),
        (ra, rb) => panic!(
            "media did not flow both ways:\n== first page: {}\n== second page: {}",
            ra.err().unwrap_or(a.report().await),
            rb.err().unwrap_or(b.report().await)
        ),
    }
}

/// No negotiation step failed in `page` (e.g. an SDP the browser refused).
async fn assert_clean_negotiation(page: &Page) {
    let n = page.eval("window.convene.negotiation").await;
    assert!(n["lastError"].is_null(), "negotiation failed: {n}");
}

/// The names of the other participants `page` knows of.
async fn others(page: &Page) -> Vec<String> {
    let v = page
        .eval("Object.values(window.convene.participants).map(p => p.name).sort()")
        .await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_two_peers_see_each_other() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "duo", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "duo", "Ann", "speaker").await;
    let t_ben = token(&s, "duo", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());

    let ann = b1.open(&s.url(&format!("/duo?token={t_ann}"))).await;
    let ben = b2.open(&s.url(&format!("/rooms/duo?token={t_ben}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    let joined = Instant::now();

    let (sa, sb) = wait_media_both(&ann, &ben).await;
    let took = joined.elapsed();
    assert!(took <= MEDIA_TIMEOUT, "media took {took:?}");
    eprintln!("media both ways after {took:?}: ann {sa}, ben {sb}");
    assert_eq!(others(&ann).await, ["Ben"]);
    assert_eq!(others(&ben).await, ["Ann"]);
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;
    // Each tile shows the other's video, mapped by the server offer's mids.
    let sources = ann
        .eval("window.convene.remoteTracks.map(t => t.source).sort()")
        .await;
    assert_eq!(sources, json!(["camera", "microphone"]));
    let playing = ann
        .eval(
            "[...document.querySelectorAll('#grid .tile:not(.local) video')] \
               .some(v => v.videoWidth > 0)",
        )
        .await;
    assert_eq!(playing, json!(true), "Ben's tile shows no video");

    // Muting the microphone and turning the camera off show on Ben's tile of Ann.
    let ann_id = ann.eval("window.convene.participantId").await;
    let ann_id = ann_id.as_str().unwrap();
    ann.eval("window.convene.toggleMicrophone().then(() => window.convene.toggleCamera()).then(() => true)")
        .await;
    ben.wait_for(
        &format!(
            "(() => {{ const p = window.convene.participants['{ann_id}']; \
               const tile = document.querySelector('#grid .tile[data-key=\"{ann_id}\"]'); \
               return p.tracks.every(t => t.muted) && !tile.querySelector('.mic-off').hidden \
                 && tile.querySelector('video').hidden; }})()"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    ann.eval("window.convene.toggleMicrophone().then(() => window.convene.toggleCamera()).then(() => true)")
        .await;
    ben.wait_for(
        &format!("window.convene.participants['{ann_id}'].tracks.every(t => !t.muted)"),
        JOIN_TIMEOUT,
    )
    .await;
    let before = ben.eval("window.convene.stats()").await["framesDecoded"]
        .as_u64()
        .unwrap();
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {before} + 10)"),
        MEDIA_TIMEOUT,
    )
    .await;

    // A screen share is a second video from Ann (renegotiated by Ann's offer);
    // stopping it takes the tile away again.
    ann.eval("window.convene.toggleScreen().then(() => true)")
        .await;
    ben.wait_for(
        "window.convene.remoteTracks.some(t => t.source === 'screen') && \
         document.querySelectorAll('#grid .tile.screen').length === 1",
        JOIN_TIMEOUT,
    )
    .await;
    ann.eval("window.convene.toggleScreen().then(() => true)")
        .await;
    ben.wait_for(
        "!window.convene.remoteTracks.some(t => t.source === 'screen') && \
         document.querySelectorAll('#grid .tile.screen').length === 0",
        JOIN_TIMEOUT,
    )
    .await;
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;

    // Leaving is seen by the other side.
    ann.eval("window.convene.leave()").await;
    ben.wait_for(
        "Object.keys(window.convene.participants).length === 0",
        Duration::from_secs(10),
    )
    .await;
    wait_state(&ann, "left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_private_room_without_token_is_refused() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "secret", "privacy": "private"}),
        )
        .await
        .expect(200);
    let b = Browser::launch().await;
    let page = b.open(&s.url("/secret")).await;
    let code = page
        .wait_for(
            "window.convene && window.convene.error && window.convene.error.code",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(code, "TOKEN_REQUIRED");
    assert_eq!(page.eval("window.convene.state").await, "error");
    // The refusal is on screen, in words.
    let shown = page
        .eval(
            "(() => { const s = document.getElementById('screen-error'); \
               return !s.hidden && s.getBoundingClientRect().height > 0 \
               ? document.getElementById('error-message').textContent : ''; })()",
        )
        .await;
    let text = shown.as_str().unwrap();
    assert!(text.contains("invitation"), "error screen says: {text:?}");
    // The public facts were injected; nothing secret.
    let facts = page.eval("window.convene.room").await;
    assert_eq!(facts["is_private"], true);
    assert_eq!(facts["friendly_url"], "secret");
    assert!(facts.get("roles").is_none() && facts.get("team_id").is_none());

    // A bad token gets the server's refusal, shown the same way.
    page.navigate(&s.url("/secret?token=not.a.token")).await;
    page.wait_for(
        "window.convene && !document.getElementById('screen-join').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    page.eval("window.convene.join('Eve'); true").await;
    let code = page
        .wait_for(
            "window.convene.error && window.convene.error.code",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(code, "TOKEN_INVALID");
    assert_eq!(
        page.eval("!document.getElementById('screen-error').hidden")
            .await,
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_locked_room_lobby_admit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "gated", "is_locked": true, "default_role": "speaker",
                   "roles": ["moderator", "speaker", "attendee"],
                   "audio_on_join_enabled": true, "video_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_mod = token(&s, "gated", "Mod", "moderator").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());

    // The moderator goes through the join screen (the room has one).
    let moderator = b1.open(&s.url(&format!("/gated?token={t_mod}"))).await;
    moderator
        .wait_for(
            "!document.getElementById('screen-join').hidden",
            JOIN_TIMEOUT,
        )
        .await;
    moderator.eval("window.convene.join()").await;
    wait_state(&moderator, "joined").await;

    // The guest types a name and clicks Join, and waits in the lobby.
    let guest = b2.open(&s.url("/gated")).await;
    guest
        .wait_for(
            "!document.getElementById('screen-join').hidden && \
             !document.getElementById('join-button').disabled",
            JOIN_TIMEOUT,
        )
        .await;
    guest
        .eval(
            "document.getElementById('name-input').value = 'Guest Gina'; \
             document.getElementById('join-button').click(); true",
        )
        .await;
    wait_state(&guest, "lobby").await;
    assert_eq!(
        guest
            .eval("!document.getElementById('screen-lobby').hidden")
            .await,
        true
    );

    // The moderator sees the request and clicks Admit.
    moderator
        .wait_for(
            "window.convene.lobbyRequests.some(r => r.name === 'Guest Gina') && \
             document.querySelector('#lobby-list button.admit')",
            JOIN_TIMEOUT,
        )
        .await;
    moderator
        .eval("document.querySelector('#lobby-list button.admit').click(); true")
        .await;
    wait_state(&guest, "joined").await;
    moderator
        .wait_for(
            "window.convene.lobbyRequests.length === 0 && \
             document.getElementById('lobby-panel').hidden",
            JOIN_TIMEOUT,
        )
        .await;

    let (sm, sg) = wait_media_both(&moderator, &guest).await;
    eprintln!("lobby: media both ways: moderator {sm}, guest {sg}");
    assert_eq!(others(&moderator).await, ["Guest Gina"]);
    assert_eq!(others(&guest).await, ["Mod"]);
    assert_clean_negotiation(&moderator).await;
    assert_clean_negotiation(&guest).await;

    // The moderator mutes the guest from the tile: the guest stops sending.
    moderator
        .wait_for(
            "document.querySelector('#grid .tile button.mute')",
            JOIN_TIMEOUT,
        )
        .await;
    moderator
        .eval("document.querySelector('#grid .tile button.mute').click(); true")
        .await;
    guest
        .wait_for(
            "window.convene.pc.getTransceivers().every(t => t.sender.track === null || t.sender.track.kind !== 'audio') && \
             document.getElementById('ctl-mic').getAttribute('aria-pressed') === 'false'",
            JOIN_TIMEOUT,
        )
        .await;
    moderator
        .wait_for(
            "Object.values(window.convene.participants)[0].tracks.some(t => t.source === 'microphone' && t.muted)",
            JOIN_TIMEOUT,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_reconnects_with_resume_after_a_dropped_socket() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "flaky", "join_screen_enabled": false,
                   "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "flaky", "Ann", "speaker").await;
    let t_ben = token(&s, "flaky", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/flaky?token={t_ann}"))).await;
    let ben = b2.open(&s.url(&format!("/flaky?token={t_ben}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    wait_media_both(&ann, &ben).await;
    let id = ann.eval("window.convene.participantId").await;

    // The socket drops: the page shows it, resumes, and media flows again.
    ann.eval("window.convene.dropConnection(); true").await;
    ann.wait_for("window.convene.resumes === 1", JOIN_TIMEOUT)
        .await;
    wait_state(&ann, "joined").await;
    assert_eq!(ann.eval("window.convene.participantId").await, id);
    let before = ben.eval("window.convene.stats()").await["framesDecoded"]
        .as_u64()
        .unwrap();
    wait_media(&ann).await;
    ben.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {before} + 20)"),
        MEDIA_TIMEOUT,
    )
    .await;
    assert_eq!(
        ann.eval("window.convene.trace.filter(t => t === 'out:join').length")
            .await,
        2
    );
    // Ben saw no departure.
    let trace = ben.eval("window.convene.trace").await;
    assert!(
        !trace
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "in:participant_left"),
        "{trace}"
    );
    assert_eq!(others(&ben).await, ["Ann"]);
    assert_clean_negotiation(&ann).await;
    assert_clean_negotiation(&ben).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refused_publish_rolls_back_and_keeps_receiving() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "stage", "join_screen_enabled": false,
                   "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_sam = token(&s, "stage", "Sam", "speaker").await;
    let t_ada = token(&s, "stage", "Ada", "attendee").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let sam = b1.open(&s.url(&format!("/stage?token={t_sam}"))).await;
    wait_state(&sam, "joined").await;
    let ada = b2.open(&s.url(&format!("/stage?token={t_ada}"))).await;
    wait_state(&ada, "joined").await;
    // An attendee watches: nothing is captured, the controls say why.
    ada.wait_for(
        "window.convene.stats().then(s => s.framesDecoded > 0 && s.totalSamplesReceived > 0)",
        MEDIA_TIMEOUT,
    )
    .await;
    assert_eq!(
        ada.eval("document.getElementById('ctl-cam').disabled")
            .await,
        true
    );

    // Asking the server anyway: it refuses; the page rolls back, drops the
    // camera, says so, and keeps receiving.
    ada.eval("window.convene.publish('camera'); true").await;
    let refusal = ada
        .wait_for("window.convene.lastRefusal", JOIN_TIMEOUT)
        .await;
    assert_eq!(refusal["code"], "FORBIDDEN");
    ada.wait_for(
        "window.convene.pc.signalingState === 'stable' && \
         window.convene.pc.getTransceivers().every(t => !t.sender.track)",
        JOIN_TIMEOUT,
    )
    .await;
    let notice = ada
        .eval(
            "(() => { const n = document.getElementById('notice'); \
               return n.hidden ? '' : n.textContent; })()",
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("did not accept your camera"),
        "notice: {notice}"
    );
    assert_eq!(ada.eval("window.convene.state").await, "joined");
    let before = ada.eval("window.convene.stats()").await["framesDecoded"]
        .as_u64()
        .unwrap();
    ada.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {before} + 10)"),
        MEDIA_TIMEOUT,
    )
    .await;
    // Sam never got a track from Ada.
    let ada_tracks = sam
        .eval(
            "Object.values(window.convene.participants).find(p => p.name === 'Ada').tracks.length",
        )
        .await;
    assert_eq!(ada_tracks, 0);
    assert_clean_negotiation(&sam).await;
}
