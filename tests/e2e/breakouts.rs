//! Breakout rooms (issue 22) through the real server: the REST lifecycle
//! and its refusals, media isolation between a breakout and the main room
//! with in-process str0m participants, and a token's `breakoutId`.

use std::time::Duration;

use convene_tests::Server;
use convene_tests::rtc_client::{Client, ClientOptions};
use serde_json::{Value, json};
use str0m::media::MediaKind;

pub(crate) async fn token(
    s: &Server,
    room: &str,
    name: &str,
    role: &str,
    breakout: Option<&str>,
) -> String {
    let mut body = json!({"u": name, "role": role, "ud": format!("ext-{name}")});
    if let Some(b) = breakout {
        body["breakoutId"] = json!(b);
    }
    s.api()
        .post(&format!("/api/v1/rooms/{room}/token"), body)
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn opts(s: &Server, token: String, resume: Option<&Value>) -> ClientOptions {
    ClientOptions {
        resume: resume.map(|j| j["resume_token"].as_str().unwrap().to_string()),
        ..ClientOptions::with_token(s.ws_url(), token)
    }
}

/// Waits for `breakout_moved` of participant `pid`.
pub(crate) async fn moved(c: &mut Client, pid: &Value) -> Value {
    let pid = pid.clone();
    c.wait_signal(Duration::from_secs(20), move |v| {
        v["type"] == "breakout_moved" && v["participant_id"] == pid
    })
    .await
}

/// What the moved participant's client does: drop the socket and resume
/// (a fresh peer connection lands in its new media room).
pub(crate) async fn resume(
    s: &Server,
    old: Client,
    t: &str,
    joined: &Value,
    publish: bool,
) -> (Client, Value) {
    old.vanish();
    let mut c = Client::connect(opts(s, t.to_string(), Some(joined))).await;
    let j = c.wait_type("joined").await;
    assert_eq!(j["resumed"], true, "{j}");
    if publish {
        c.publish();
    }
    (c, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakouts_over_rest_with_clear_refusals() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "bo"}))
        .await
        .expect(200);
    let base = "/api/v1/rooms/bo/breakouts";

    // No live session: nothing to split, nothing stored.
    let r = api.post(base, json!({"count": 2})).await.expect(409);
    assert_eq!(r.body["code"], "CONFLICT");
    assert!(r.body["message"].as_str().unwrap().contains("live session"));
    api.post("/api/v1/rooms/nope/breakouts", json!({"count": 2}))
        .await
        .expect(404);
    assert_eq!(api.get(base).await.expect(200).body["total_count"], 0);

    let t_mod = token(&s, "bo", "Mo", "moderator", None).await;
    let t_ann = token(&s, "bo", "Ann", "speaker", None).await;
    let (mut mo, _) = convene_tests::join(&s, "bo", "Mo", Some(t_mod.clone())).await;
    let (mut ann, ann_joined) = convene_tests::join(&s, "bo", "Ann", Some(t_ann)).await;
    let ann_id = ann_joined["participant"]["id"].clone();

    // Over signaling: only a role that admits others may manage breakouts,
    // and bad input is refused; nothing is stored either way.
    ann.send(json!({"type": "breakouts_open", "count": 2}));
    let e = ann.wait_type("error").await;
    assert_eq!(e["code"], "FORBIDDEN", "{e}");
    assert_eq!(e["fatal"], false);
    mo.send(json!({"type": "breakouts_open", "count": 0}));
    let e = mo.wait_type("error").await;
    assert_eq!(e["code"], "BAD_REQUEST", "{e}");
    assert!(e["message"].as_str().unwrap().contains("count"), "{e}");
    mo.send(json!({"type": "breakout_move", "participant_id": "nobody"}));
    assert_eq!(mo.wait_type("error").await["code"], "CONFLICT");
    assert_eq!(api.get(base).await.expect(200).body["total_count"], 0);

    // Bad bodies: 422 naming the field, nothing stored.
    for (body, field) in [
        (json!({}), "names"),
        (json!({"count": 0}), "count"),
        (json!({"count": 51}), "count"),
        (json!({"names": []}), "names"),
        (json!({"names": ["Red", "red"]}), "names"),
        (json!({"names": ["x".repeat(101)]}), "names"),
        (
            json!({"count": 2, "assignment": "alphabetical"}),
            "assignment",
        ),
        (
            json!({"count": 2, "duration_minutes": 0}),
            "duration_minutes",
        ),
    ] {
        api.post(base, body).await.expect_invalid(field);
    }
    assert_eq!(api.get(base).await.expect(200).body["total_count"], 0);
    // A room token is no developer key.
    s.api_with_key(&t_mod)
        .post(base, json!({"count": 2}))
        .await
        .expect(401);
    // Before any breakouts exist.
    api.post(&format!("{base}/open"), json!({}))
        .await
        .expect(404);

    let created = api
        .post(
            base,
            json!({"names": ["Red", "Blue"], "assignment": "manual", "duration_minutes": 30}),
        )
        .await
        .expect(201);
    let data = created.body["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["name"], "Red");
    assert_eq!(data[0]["status"], "created");
    assert_eq!(data[0]["duration_minutes"], 30);
    let red = data[0]["id"].as_str().unwrap().to_string();
    let blue = data[1]["id"].as_str().unwrap().to_string();
    // A second set while this one is not closed: refused, the first kept.
    api.post(base, json!({"count": 3})).await.expect(409);
    let listed = api.get(base).await.expect(200);
    assert_eq!(listed.body["total_count"], 2);
    assert_eq!(listed.body["data"][0]["id"], red.as_str());

    // Not open yet: moves, broadcasts and closing are refused.
    let put = format!("{base}/{red}/participants/{}", ann_id.as_str().unwrap());
    api.send("PUT", &put, None).await.expect(409);
    api.post(&format!("{base}/broadcast"), json!({"message": "hi"}))
        .await
        .expect(409);
    api.post(&format!("{base}/close"), json!({}))
        .await
        .expect(409);

    let opened = api
        .post(&format!("{base}/open"), json!({}))
        .await
        .expect(200);
    assert_eq!(opened.body["data"][1]["status"], "open");
    assert!(opened.body["data"][0]["opened_at"].is_string());
    let ev = mo.wait_type("breakouts_opened").await;
    assert_eq!(ev["breakouts"][0]["name"], "Red");
    assert!(ev["ends_at"].is_string(), "a timer: {ev}");
    api.post(&format!("{base}/open"), json!({}))
        .await
        .expect(409);

    // Move Ann into Red: everyone is told.
    let placed = api.send("PUT", &put, None).await.expect(200);
    assert_eq!(placed.body["breakout_id"], red.as_str());
    assert_eq!(placed.body["name"], "Ann");
    let ev = moved(&mut ann, &ann_id).await;
    assert_eq!(ev["breakout_id"], red.as_str());
    assert_eq!(ev["breakout_name"], "Red");
    moved(&mut mo, &ann_id).await;
    let listed = api.get(base).await.expect(200);
    assert_eq!(
        listed.body["data"][0]["participants"][0]["participant_id"],
        ann_id
    );
    assert_eq!(listed.body["data"][1]["participants"], json!([]));
    // Her participant record says which breakout she was in.
    let p = api
        .get(&format!(
            "/api/v1/participants/{}",
            ann_id.as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(p.body["breakout_id"], red.as_str(), "{}", p.body);
    let stats = api
        .get(&format!(
            "/api/v1/sessions/{}/statistics",
            ann_joined["session_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(
        stats.body["breakouts"],
        json!([{"breakout_id": red, "name": "Red", "participants": 1}])
    );

    // Chat inside the breakout carries its id and stays in it; the main
    // room's chat stays in the main room.
    ann.send(json!({"type": "chat", "message": "hello Red"}));
    let m = ann
        .wait_signal(Duration::from_secs(20), |v| v["type"] == "chat_message")
        .await;
    assert_eq!(m["message"]["breakout_id"], red.as_str());
    mo.send(json!({"type": "chat", "message": "hello main"}));
    let m = mo
        .wait_signal(Duration::from_secs(20), |v| v["type"] == "chat_message")
        .await;
    assert_eq!(
        m["message"]["message"], "hello main",
        "Mo got Red's chat: {m}"
    );
    assert_eq!(m["message"]["breakout_id"], Value::Null);
    let chat = api.get("/api/v1/rooms/bo/chat").await.expect(200);
    let red_msgs: Vec<&Value> = chat.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["breakout_id"] == red.as_str())
        .collect();
    assert_eq!(red_msgs.len(), 1, "{}", chat.body);
    assert_eq!(red_msgs[0]["message"], "hello Red");

    // Unknown breakout, unknown participant: 404, nothing moved.
    api.send(
        "PUT",
        &format!("{base}/nope/participants/{}", ann_id.as_str().unwrap()),
        None,
    )
    .await
    .expect(404);
    api.send("PUT", &format!("{base}/{blue}/participants/nobody"), None)
        .await
        .expect(404);
    let listed = api.get(base).await.expect(200);
    assert_eq!(
        listed.body["data"][0]["participants"][0]["participant_id"],
        ann_id
    );

    // Broadcast to everyone.
    api.post(&format!("{base}/broadcast"), json!({"message": "  "}))
        .await
        .expect_invalid("message");
    api.post(
        &format!("{base}/broadcast"),
        json!({"message": "Five minutes left"}),
    )
    .await
    .expect(204);
    for c in [&mut mo, &mut ann] {
        let b = c.wait_type("breakout_broadcast").await;
        assert_eq!(b["message"], "Five minutes left");
    }

    assert!(
        !ann.seen.iter().any(
            |e| matches!(e, convene_tests::rtc_client::ClientEvent::Signal(v)
            if v["type"] == "chat_message" && v["message"]["message"] == "hello main")
        ),
        "the main room's chat reached the breakout"
    );

    // Open breakouts cannot be deleted; a bad countdown changes nothing.
    api.delete(base).await.expect(409);
    api.post(&format!("{base}/close"), json!({"countdown_seconds": 601}))
        .await
        .expect_invalid("countdown_seconds");
    assert_eq!(
        api.get(base).await.expect(200).body["data"][0]["status"],
        "open"
    );

    // Close with a one second countdown: everyone back in the main room.
    let closing = api
        .post(&format!("{base}/close"), json!({"countdown_seconds": 1}))
        .await
        .expect(200);
    assert_eq!(closing.body["data"][0]["status"], "closing");
    assert_eq!(ann.wait_type("breakouts_closing").await["seconds"], 1);
    let back = moved(&mut ann, &ann_id).await;
    assert_eq!(back["breakout_id"], Value::Null);
    ann.wait_type("breakouts_closed").await;
    mo.wait_type("breakouts_closed").await;
    let listed = api.get(base).await.expect(200);
    assert_eq!(listed.body["data"][0]["status"], "closed");
    assert!(listed.body["data"][0]["closed_at"].is_string());
    api.send("PUT", &put, None).await.expect(409);

    api.delete(base).await.expect(204);
    assert_eq!(api.get(base).await.expect(200).body["total_count"], 0);
    api.delete(base).await.expect(404);

    // Another team sees none of it.
    let (_, other_key) = s.create_team("other");
    s.api_with_key(&other_key).get(base).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakout_isolates_media_and_closing_brings_everyone_back() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "iso"}))
        .await
        .expect(200);
    let base = "/api/v1/rooms/iso/breakouts";
    let t_a = token(&s, "iso", "Ann", "speaker", None).await;
    let t_b = token(&s, "iso", "Ben", "speaker", None).await;

    let mut a = Client::connect(opts(&s, t_a, None)).await;
    a.wait_type("joined").await;
    let mut b = Client::connect(opts(&s, t_b.clone(), None)).await;
    let b_joined = b.wait_type("joined").await;
    let b_id = b_joined["participant"]["id"].clone();
    b.publish();
    // In the main room, Ann receives Ben.
    a.wait_rtp(MediaKind::Audio, 20, Duration::from_secs(20))
        .await;

    let data = api
        .post(base, json!({"names": ["One"]}))
        .await
        .expect(201)
        .body["data"]
        .clone();
    let one = data[0]["id"].as_str().unwrap().to_string();

    // A token into a breakout that is not open: a clear refusal at join.
    let t_c = token(&s, "iso", "Cy", "speaker", Some(&one)).await;
    let mut early = Client::connect(opts(&s, t_c.clone(), None)).await;
    let err = early.wait_type("error").await;
    assert_eq!(err["code"], "BREAKOUT_NOT_OPEN", "{err}");
    let t_x = token(&s, "iso", "Xe", "speaker", Some("no-such-breakout")).await;
    let mut stray = Client::connect(opts(&s, t_x, None)).await;
    assert_eq!(stray.wait_type("error").await["code"], "BREAKOUT_NOT_OPEN");

    api.post(&format!("{base}/open"), json!({}))
        .await
        .expect(200);
    // Now the token lands Cy straight in the breakout.
    let mut c = Client::connect(opts(&s, t_c, None)).await;
    let c_joined = c.wait_type("joined").await;
    assert_eq!(c_joined["participant"]["breakout_id"], one.as_str());

    // Move Ben into the breakout; his client resumes into it.
    api.send(
        "PUT",
        &format!("{base}/{one}/participants/{}", b_id.as_str().unwrap()),
        None,
    )
    .await
    .expect(200);
    moved(&mut b, &b_id).await;
    let (b2, b2_joined) = resume(&s, b, &t_b, &b_joined, true).await;
    assert_eq!(b2_joined["participant"]["breakout_id"], one.as_str());
    // Cy, in the same breakout, receives Ben...
    c.wait_rtp(MediaKind::Audio, 20, Duration::from_secs(20))
        .await;
    // ...and Ann, in the main room, gets nothing more of him while Cy
    // receives another second of his audio.
    a.collect_for(Duration::from_millis(300)).await;
    let a_before = a.received(MediaKind::Audio).len();
    let c_now = c.received(MediaKind::Audio).len();
    c.wait_rtp(MediaKind::Audio, c_now + 50, Duration::from_secs(20))
        .await;
    a.collect_for(Duration::from_millis(300)).await;
    assert_eq!(
        a.received(MediaKind::Audio).len(),
        a_before,
        "the main room received media from inside the breakout"
    );

    // Close at once: Ben is moved back, resumes, and Ann receives him again.
    api.post(&format!("{base}/close"), json!({"countdown_seconds": 0}))
        .await
        .expect(200);
    let mut b2 = b2;
    let back = moved(&mut b2, &b_id).await;
    assert_eq!(back["breakout_id"], Value::Null);
    let (_b3, b3_joined) = resume(&s, b2, &t_b, &b2_joined, true).await;
    assert!(b3_joined["participant"].get("breakout_id").is_none());
    a.wait_rtp(MediaKind::Audio, a_before + 20, Duration::from_secs(20))
        .await;
    a.wait_type("breakouts_closed").await;
    assert_eq!(
        api.get(base).await.expect(200).body["data"][0]["status"],
        "closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_assignment_deals_everyone_but_the_moderators() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "deal"}))
        .await
        .expect(200);
    let base = "/api/v1/rooms/deal/breakouts";
    let t_mod = token(&s, "deal", "Mo", "moderator", None).await;
    let (mut mo, mo_joined) = convene_tests::join(&s, "deal", "Mo", Some(t_mod)).await;
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for name in ["Ann", "Ben", "Cy", "Di"] {
        let t = token(&s, "deal", name, "attendee", None).await;
        let (c, j) = convene_tests::join(&s, "deal", name, Some(t)).await;
        ids.push(j["participant"]["id"].clone());
        clients.push(c);
    }
    api.post(base, json!({"count": 2, "assignment": "random"}))
        .await
        .expect(201);
    let opened = api
        .post(&format!("{base}/open"), json!({}))
        .await
        .expect(200);
    let data = opened.body["data"].as_array().unwrap();
    // Two in each breakout, every attendee placed, the moderator in neither.
    for b in data {
        assert_eq!(b["participants"].as_array().unwrap().len(), 2, "{b}");
    }
    let placed: Vec<&Value> = data
        .iter()
        .flat_map(|b| b["participants"].as_array().unwrap())
        .map(|p| &p["participant_id"])
        .collect();
    for id in &ids {
        assert!(placed.contains(&id), "{id} not placed: {data:?}");
    }
    assert!(!placed.contains(&&mo_joined["participant"]["id"]));
    // Each attendee was told of its own move; the moderator of all four.
    for (c, id) in clients.iter_mut().zip(&ids) {
        let m = moved(c, id).await;
        assert!(m["breakout_name"].as_str().unwrap().starts_with("Room "));
    }
    for id in &ids {
        moved(&mut mo, id).await;
    }
}

/// The visible flow in real Chromium: a moderator's page opens a breakout
/// room from its Breakouts tab and moves another page into it; that page
/// resumes into the breakout and shows its label, gets the broadcast, then
/// the closing countdown, and returns to the main room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_moderator_moves_a_page_that_shows_its_breakout_and_the_countdown() {
    use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, wait_state};
    use convene_tests::browser::Browser;

    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "brk", "join_screen_enabled": false}),
    )
    .await
    .expect(200);
    let base = "/api/v1/rooms/brk/breakouts";
    let t_mo = token(&s, "brk", "Mo", "moderator", None).await;
    let t_ann = token(&s, "brk", "Ann", "speaker", None).await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/brk?token={t_mo}"))).await;
    let ann = b2.open(&s.url(&format!("/brk?token={t_ann}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ann, "joined").await;
    let ann_id = ann.eval("window.convene.participantId").await;
    let ann_id = ann_id.as_str().unwrap();
    // Only the moderator has the Breakouts tab; nobody is in a breakout.
    assert_eq!(
        mo.eval("document.getElementById('tab-breakouts').hidden")
            .await,
        false
    );
    assert_eq!(
        ann.eval("document.getElementById('tab-breakouts').hidden")
            .await,
        true
    );
    assert_eq!(
        ann.eval("document.getElementById('breakout-label').hidden")
            .await,
        true
    );

    // The moderator opens one breakout room from the tab.
    mo.eval(
        "document.getElementById('tab-breakouts').click(); \
         document.getElementById('bo-count').value = '1'; \
         document.getElementById('bo-open').click(); true",
    )
    .await;
    mo.wait_for(
        &format!(
            "!document.getElementById('bo-live').hidden && \
             document.querySelector('select.bo-move[data-participant=\"{ann_id}\"]') !== null"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    let listed = api.get(base).await.expect(200);
    assert_eq!(listed.body["data"][0]["status"], "open");
    assert_eq!(listed.body["data"][0]["name"], "Room 1");
    let room1 = listed.body["data"][0]["id"].as_str().unwrap().to_string();

    // ...and moves Ann into it with her row's menu.
    mo.eval(&format!(
        "(() => {{ const s = document.querySelector('select.bo-move[data-participant=\"{ann_id}\"]'); \
           s.value = '{room1}'; s.dispatchEvent(new Event('change')); return true; }})()"
    ))
    .await;
    // Ann's page resumes into the breakout: the resumed `joined` says where
    // it is, and the label shows the breakout's name.
    ann.wait_for(
        &format!(
            "window.convene.state === 'joined' && window.convene.resumes === 1 \
             && window.convene.breakout.id === '{room1}'"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    ann.wait_for(
        "(() => { const l = document.getElementById('breakout-label'); \
           return !l.hidden && l.textContent.includes('Room 1'); })()",
        JOIN_TIMEOUT,
    )
    .await;
    let listed = api.get(base).await.expect(200);
    assert_eq!(
        listed.body["data"][0]["participants"][0]["participant_id"],
        ann_id
    );

    // A broadcast from the tab reaches her as a notice.
    mo.eval(
        "document.getElementById('bo-message').value = 'Two minutes left'; \
         document.getElementById('bo-send').click(); true",
    )
    .await;
    ann.wait_for(
        "window.convene.notices.some(n => n.text.includes('Two minutes left'))",
        JOIN_TIMEOUT,
    )
    .await;

    // Closing from the tab: the countdown shows, then the page is back in
    // the main room.
    mo.eval(
        "document.getElementById('bo-countdown').value = '4'; \
         document.getElementById('bo-close').click(); true",
    )
    .await;
    ann.wait_for(
        "(() => { const c = document.getElementById('breakout-countdown'); \
           return !c.hidden && /[1-4]/.test(c.textContent) && window.convene.breakout.closesIn > 0; })()",
        JOIN_TIMEOUT,
    )
    .await;
    ann.wait_for(
        "window.convene.state === 'joined' && window.convene.resumes === 2 \
         && window.convene.breakout.id === null \
         && document.getElementById('breakout-label').hidden \
         && document.getElementById('breakout-countdown').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    mo.wait_for(
        "!document.getElementById('bo-create').hidden && document.getElementById('bo-live').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    assert_eq!(
        api.get(base).await.expect(200).body["data"][0]["status"],
        "closed"
    );
}
