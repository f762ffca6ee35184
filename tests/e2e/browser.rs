//! The browser client in real headless Chromium against the real binary:
//! two peers see and hear each other, refused joins are shown, and a
//! moderator admits a guest from the lobby. These run inside the test network
//! namespace (scripts/test.sh), where media uses 127.0.0.2.

use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page, assert_isolated_network};
use convene_tests::{Options, Server};
use serde_json::{Value, json};

/// Media must arrive within this long of both peers having joined.
pub(crate) const MEDIA_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// One browser test at a time: two Chromiums per test already fill the two
/// cores of a CI machine, and the other tests' timing must not suffer.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn server() -> (Server, LogOnFailure) {
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
pub(crate) struct LogOnFailure(pub(crate) std::path::PathBuf);

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

pub(crate) async fn token(s: &Server, room: &str, name: &str, role: &str) -> String {
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

pub(crate) async fn wait_state(page: &Page, state: &str) {
    page.wait_for(
        &format!("window.convene && window.convene.state === '{state}'"),
        JOIN_TIMEOUT,
    )
    .await;
}

pub(crate) const MEDIA_FLOWS: &str = "window.convene.stats().then(s => \
    s.framesDecoded > 0 && s.totalSamplesReceived > 0 ? s : null)";

/// Waits until `page` decodes remote video and plays remote audio; returns the stats.
async fn wait_media(page: &Page) -> Value {
    page.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await
}

/// Waits until both pages decode each other's media; on failure, reports both.
pub(crate) async fn wait_media_both(a: &Page, b: &Page) -> (Value, Value) {
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

/// Waits until `page` has the catch-up state of the room (`collab_state`).
async fn wait_collab_state(page: &Page) {
    page.wait_for(
        "window.convene.trace.includes('in:collab_state')",
        JOIN_TIMEOUT,
    )
    .await;
}

/// Types `text` into an input or textarea the way a user would (value + input event).
fn type_into(selector: &str, text: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({sel}); e.focus(); e.value = {text}; \
           e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
        sel = json!(selector),
        text = json!(text)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_chat_message_reaches_another_browser() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "chatty", "join_screen_enabled": false,
                   "chat_enabled": true, "chat_reactions_enabled": true,
                   "video_on_join_enabled": false, "audio_on_join_enabled": false}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "chatty", "Ann", "speaker").await;
    let t_ben = token(&s, "chatty", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/chatty?token={t_ann}"))).await;
    let ben = b2.open(&s.url(&format!("/chatty?token={t_ben}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    wait_collab_state(&ann).await;
    wait_collab_state(&ben).await;
    ann.wait_for(
        "Object.values(window.convene.participants).some(p => p.name === 'Ben')",
        JOIN_TIMEOUT,
    )
    .await;
    // The chat tab is there and usable.
    assert_eq!(
        ann.eval(
            "!document.getElementById('side').hidden && \
             !document.getElementById('pane-chat').hidden && \
             !document.getElementById('chat-input').disabled"
        )
        .await,
        true
    );

    // Ann types and clicks Send.
    let text = "Hello from Ann <b>not bold</b>";
    ann.eval(&type_into("#chat-input", text)).await;
    ann.eval("document.getElementById('chat-send').click(); true")
        .await;
    let got = ben
        .wait_for(
            &format!(
                "window.convene.chat.find(m => m.message === {})",
                json!(text)
            ),
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(got["participant_name"], "Ann");
    assert_eq!(got["private"], false);
    // Ben's chat panel shows it, as text (never as HTML).
    let shown = ben
        .wait_for(
            "(() => { const li = document.querySelector('#chat-list li:last-child'); \
               return li && { who: li.querySelector('.who').textContent, \
                 text: li.querySelector('.text').textContent, \
                 html: li.querySelector('.text b') !== null }; })()",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(shown["who"], "Ann");
    assert_eq!(shown["text"], text);
    assert_eq!(shown["html"], false);
    // Ann sees her own message, and the input is empty again.
    ann.wait_for(
        "window.convene.chat.length === 1 && \
         document.querySelector('#chat-list li.mine .text') && \
         document.getElementById('chat-input').value === ''",
        JOIN_TIMEOUT,
    )
    .await;

    // Ben reacts to it with a click; Ann's page shows the count.
    ben.eval(
        "document.querySelector('#chat-list li:last-child .reactions .chip.add').click(); true",
    )
    .await;
    ann.wait_for(
        "(() => { const c = document.querySelector('#chat-list li.mine .reactions .chip:not(.add)'); \
           return c && c.textContent.endsWith(' 1'); })()",
        JOIN_TIMEOUT,
    )
    .await;

    // The message is stored: REST serves it.
    let rest = s
        .api()
        .get("/api/v1/rooms/chatty/chat")
        .await
        .expect(200)
        .body;
    assert_eq!(rest["total_count"], 1, "{rest}");
    assert_eq!(rest["data"][0]["message"], text);
    assert_eq!(rest["data"][0]["participant_name"], "Ann");

    // A message from the REST API reaches both pages; an eyeson-style
    // `message` is shown as a notice.
    s.api()
        .post(
            "/api/v1/rooms/chatty/chat",
            json!({"message": "from the backend"}),
        )
        .await
        .expect(200);
    for page in [&ann, &ben] {
        page.wait_for(
            "window.convene.chat.some(m => m.participant_name === 'API' && m.message === 'from the backend')",
            JOIN_TIMEOUT,
        )
        .await;
    }
    s.api()
        .post(
            "/api/v1/rooms/chatty/messages",
            json!({"type": "chat", "content": "Slides are up"}),
        )
        .await
        .expect(201);
    ben.wait_for(
        "window.convene.notices.some(n => n.text.includes('Slides are up')) && \
         document.getElementById('notice').textContent.includes('Slides are up')",
        JOIN_TIMEOUT,
    )
    .await;

    // A private message: only Ben gets it, marked as private.
    ann.eval(&format!(
        "(() => {{ const sel = document.getElementById('chat-to'); \
           sel.value = [...sel.options].find(o => o.textContent.startsWith('Ben')).value; \
           return true; }})() && {}",
        type_into("#chat-input", "just for you")
    ))
    .await;
    ann.eval("document.getElementById('chat-send').click(); true")
        .await;
    ben.wait_for(
        "window.convene.chat.some(m => m.message === 'just for you' && m.private) && \
         document.querySelector('#chat-list li.private .tag').textContent === 'private to you'",
        JOIN_TIMEOUT,
    )
    .await;
    let rest = s
        .api()
        .get("/api/v1/rooms/chatty/chat")
        .await
        .expect(200)
        .body;
    // REST lists it too (for the room's owner), marked with its recipient.
    let ben_id = ben.eval("window.convene.participantId").await;
    let private = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message"] == "just for you")
        .unwrap_or_else(|| panic!("the private message is not stored: {rest}"));
    assert_eq!(private["recipient_id"], ben_id, "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_poll_and_hand() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "townhall", "join_screen_enabled": false,
                   "raise_hand_enabled": true, "room_reactions_enabled": true,
                   "qa_enabled": true, "video_on_join_enabled": false, "audio_on_join_enabled": false}),
        )
        .await
        .expect(200);
    let poll = s
        .api()
        .post(
            "/api/v1/rooms/townhall/polls",
            json!({"question": "Coffee or tea?", "type": "single",
                   "options": [{"label": "Coffee"}, {"label": "Tea"}]}),
        )
        .await
        .expect(200)
        .body;
    let poll_id = poll["id"].as_str().unwrap().to_string();
    let tea = poll["options"][1]["id"].as_str().unwrap().to_string();
    let t_mod = token(&s, "townhall", "Mod", "moderator").await;
    let t_ada = token(&s, "townhall", "Ada", "attendee").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let moderator = b1.open(&s.url(&format!("/townhall?token={t_mod}"))).await;
    let ada = b2.open(&s.url(&format!("/townhall?token={t_ada}"))).await;
    wait_state(&moderator, "joined").await;
    wait_state(&ada, "joined").await;
    wait_collab_state(&moderator).await;
    wait_collab_state(&ada).await;
    moderator
        .wait_for(
            "Object.values(window.convene.participants).some(p => p.name === 'Ada')",
            JOIN_TIMEOUT,
        )
        .await;
    // Only the moderator gets the form to create polls.
    assert_eq!(
        moderator
            .eval("!document.getElementById('poll-create').hidden")
            .await,
        true
    );
    assert_eq!(
        ada.eval("document.getElementById('poll-create').hidden")
            .await,
        true
    );

    // The moderator launches the REST-created poll; Ada answers it in the Polls tab.
    moderator
        .eval(&format!("window.convene.launchPoll('{poll_id}')"))
        .await;
    ada.wait_for(
        &format!(
            "window.convene.polls.some(p => p.id === '{poll_id}' && p.status === 'launched') && \
             document.querySelector('#poll-list li[data-id=\"{poll_id}\"] form.poll-vote')"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    ada.eval(
        "document.getElementById('tab-polls').click(); \
         [...document.querySelectorAll('#poll-list label.choice')] \
           .find(l => l.textContent === 'Tea').querySelector('input').click(); \
         document.querySelector('#poll-list form.poll-vote button[type=submit]').click(); true",
    )
    .await;
    ada.wait_for(
        &format!(
            "window.convene.polls.some(p => p.id === '{poll_id}' && p.voted) && \
             document.querySelector('#poll-list li[data-id=\"{poll_id}\"] .voted')"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    let results = s
        .api()
        .get(&format!("/api/v1/rooms/townhall/polls/{poll_id}/results"))
        .await
        .expect(200)
        .body;
    assert_eq!(results["total_votes"], 1, "{results}");
    let tea_votes = results["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == tea.as_str())
        .unwrap();
    assert_eq!(tea_votes["votes"], 1, "{results}");
    assert_eq!(tea_votes["voters"][0]["name"], "Ada", "{results}");
    // Live results on the moderator's page (show_results: everyone's).
    moderator
        .wait_for(
            &format!(
                "window.convene.polls.some(p => p.id === '{poll_id}' && p.results && p.results.total_votes === 1) && \
                 document.querySelector('#poll-list li[data-id=\"{poll_id}\"] .bar-row[data-id=\"{tea}\"]').dataset.votes === '1'"
            ),
            JOIN_TIMEOUT,
        )
        .await;
    // A second vote is refused, and the refusal is a notice.
    ada.eval(&format!("window.convene.votePoll('{poll_id}', ['{tea}'])"))
        .await;
    ada.wait_for(
        "window.convene.notices.some(n => /already/i.test(n.text))",
        JOIN_TIMEOUT,
    )
    .await;
    // The moderator ends it with the End button.
    moderator
        .eval(&format!(
            "document.querySelector('#poll-list li[data-id=\"{poll_id}\"] button.end').click(); true"
        ))
        .await;
    ada.wait_for(
        &format!("window.convene.polls.some(p => p.id === '{poll_id}' && p.status === 'ended')"),
        JOIN_TIMEOUT,
    )
    .await;

    // Ada raises her hand with the control button; the moderator sees the
    // badge on her tile and lowers it from there.
    let ada_id = ada.eval("window.convene.participantId").await;
    let ada_id = ada_id.as_str().unwrap().to_string();
    assert_eq!(
        ada.eval("!document.getElementById('ctl-hand').hidden")
            .await,
        true
    );
    ada.eval("document.getElementById('ctl-hand').click(); true")
        .await;
    let badge = moderator
        .wait_for(
            &format!(
                "(() => {{ const b = document.querySelector('#grid .tile[data-key=\"{ada_id}\"] .hand'); \
                   return b && !b.hidden && window.convene.hands.length === 1 ? b.textContent : null; }})()"
            ),
            JOIN_TIMEOUT,
        )
        .await;
    assert!(badge.as_str().unwrap().contains('1'), "badge: {badge}");
    assert_eq!(
        moderator
            .eval("window.convene.hands[0].participant_id")
            .await,
        ada_id.as_str()
    );
    ada.wait_for(
        "document.getElementById('ctl-hand').getAttribute('aria-pressed') === 'true'",
        JOIN_TIMEOUT,
    )
    .await;
    moderator
        .eval(&format!(
            "document.querySelector('#grid .tile[data-key=\"{ada_id}\"] button.lower-hand').click(); true"
        ))
        .await;
    ada.wait_for(
        "window.convene.hands.length === 0 && \
         document.getElementById('ctl-hand').getAttribute('aria-pressed') === 'false' && \
         window.convene.notices.some(n => n.text.includes('lowered your hand'))",
        JOIN_TIMEOUT,
    )
    .await;
    moderator
        .wait_for(
            &format!("document.querySelector('#grid .tile[data-key=\"{ada_id}\"] .hand').hidden"),
            JOIN_TIMEOUT,
        )
        .await;

    // A reaction floats over the sender's tile on the other page.
    ada.eval("document.querySelector('#ctl-reactions button[data-emoji=\"👏\"]').click(); true")
        .await;
    moderator
        .wait_for(
            &format!(
                "[...document.querySelectorAll('#grid .tile[data-key=\"{ada_id}\"] .reaction')] \
                   .some(e => e.textContent === '👏')"
            ),
            JOIN_TIMEOUT,
        )
        .await;

    // A poll made with the moderator's form is a draft until Launch is clicked.
    moderator
        .eval(&format!(
            "document.getElementById('tab-polls').click(); {} && {} && \
             (document.getElementById('poll-create-button').click(), true)",
            type_into("#poll-question", "Again next week?"),
            type_into("#poll-options", "Yes\nNo")
        ))
        .await;
    let draft = moderator
        .wait_for(
            "window.convene.polls.find(p => p.question === 'Again next week?' && p.status === 'draft')",
            JOIN_TIMEOUT,
        )
        .await;
    let draft_id = draft["id"].as_str().unwrap().to_string();
    assert_eq!(
        ada.eval("window.convene.polls.some(p => p.question === 'Again next week?')")
            .await,
        false
    );
    moderator
        .eval(&format!(
            "document.querySelector('#poll-list li[data-id=\"{draft_id}\"] button.launch').click(); true"
        ))
        .await;
    ada.wait_for(
        &format!("document.querySelector('#poll-list li[data-id=\"{draft_id}\"] form.poll-vote')"),
        JOIN_TIMEOUT,
    )
    .await;
    // Q&A: Ada asks anonymously in the Q&A tab; the moderator sees no name,
    // upvotes and answers it; Ada sees the answer.
    ada.eval(&format!(
        "document.getElementById('tab-qa').click(); {} && \
         (document.getElementById('qa-anon').click(), document.getElementById('qa-ask').click(), true)",
        type_into("#qa-input", "When is the next one?")
    ))
    .await;
    let q = moderator
        .wait_for(
            "window.convene.questions.find(q => q.question === 'When is the next one?')",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(q["anonymous"], true, "{q}");
    assert_eq!(q["participant_name"], "Anonymous", "{q}");
    assert!(q["participant_id"].is_null(), "{q}");
    let q_id = q["id"].as_str().unwrap().to_string();
    let card = format!("#qa-list li[data-id=\"{q_id}\"]");
    moderator
        .eval(&format!(
            "document.getElementById('tab-qa').click(); \
             document.querySelector('{card} button.upvote').click(); {} && \
             (document.querySelector('{card} .qa-answer button').click(), true)",
            type_into(&format!("{card} .qa-answer-input"), "Next Friday")
        ))
        .await;
    ada.wait_for(
        &format!(
            "window.convene.questions.some(q => q.id === '{q_id}' && q.votes === 1 && \
               q.answers.some(a => a.answer === 'Next Friday')) && \
             document.querySelector('{card} .qa-answer-text').textContent.includes('Next Friday')"
        ),
        JOIN_TIMEOUT,
    )
    .await;

    // A timed quiz: a countdown, an answer through the form, and the results
    // when the server ends it (time up).
    let quiz = s
        .api()
        .post(
            "/api/v1/rooms/townhall/quizzes",
            json!({"title": "Warm-up", "time_limit_seconds": 4, "questions": [
                {"text": "2+2?", "multiple": false, "choices": [
                    {"text": "4", "correct": true}, {"text": "5", "correct": false}]}]}),
        )
        .await
        .expect(200)
        .body;
    let quiz_id = quiz["id"].as_str().unwrap().to_string();
    let quiz_card = format!("#poll-list li[data-key=\"quiz:{quiz_id}\"]");
    moderator
        .eval(&format!("window.convene.launchQuiz('{quiz_id}')"))
        .await;
    ada.wait_for(
        &format!(
            "document.getElementById('tab-polls').click(), \
             document.querySelector('{quiz_card} .countdown').textContent.includes('left') && \
             document.querySelector('{quiz_card} form.quiz-q')"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    ada.eval(&format!(
        "[...document.querySelectorAll('{quiz_card} label.choice')] \
           .find(l => l.textContent === '4').querySelector('input').click(); \
         document.querySelector('{quiz_card} form.quiz-q button[type=submit]').click(); true"
    ))
    .await;
    ada.wait_for(
        &format!(
            "window.convene.quizzes.some(q => q.id === '{quiz_id}' && q.answered.length === 1)"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    let ended = ada
        .wait_for(
            &format!(
                "window.convene.quizzes.find(q => q.id === '{quiz_id}' && q.status === 'ended' && \
                   document.querySelector('{quiz_card} .quiz-result .correct'))"
            ),
            JOIN_TIMEOUT,
        )
        .await;
    let right = &ended["results"]["questions"][0]["votes"][0];
    assert_eq!(right["correct"], true, "{ended}");
    assert_eq!(right["voted"], 1, "{ended}");
}
