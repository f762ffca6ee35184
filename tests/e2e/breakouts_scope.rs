//! Breakout rooms (issue 22), what stays inside a breakout beyond its
//! media: Q&A, polls and raised hands go only to where they happen, over
//! signaling and over REST; a restart closes the breakouts of the session
//! it ends; and the timer closes breakouts by itself.
//!
//! "Not delivered" is checked with a later event of the same type as a
//! sentinel: the room actor handles messages one at a time, so a wrongly
//! delivered event would reach the client before the sentinel, and the
//! client's first event of that type would not be the sentinel.

use std::time::Duration;

use convene_tests::rtc_client::Client;
use convene_tests::{Api, Server, join};
use serde_json::{Value, json};

use super::breakouts::{moved, resume, token};

const T: Duration = Duration::from_secs(20);

async fn first_of(c: &mut Client, ty: &str) -> Value {
    let ty = ty.to_string();
    c.wait_signal(T, move |v| v["type"] == ty.as_str()).await
}

/// Creates and opens breakouts `names` over REST; returns their ids.
async fn open(api: &Api, room: &str, body: Value) -> Vec<String> {
    let base = format!("/api/v1/rooms/{room}/breakouts");
    let created = api.post(&base, body).await.expect(201).body;
    api.post(&format!("{base}/open"), json!({}))
        .await
        .expect(200);
    created["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// Moves `pid` into breakout `to` over REST; the participant's client
/// resumes, as the browser does.
async fn move_into(
    s: &Server,
    room: &str,
    to: &str,
    c: Client,
    t: &str,
    joined: &Value,
) -> (Client, Value) {
    let pid = joined["participant"]["id"].clone();
    s.api()
        .send(
            "PUT",
            &format!(
                "/api/v1/rooms/{room}/breakouts/{to}/participants/{}",
                pid.as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    let mut c = c;
    moved(&mut c, &pid).await;
    let (c, j) = resume(s, c, t, joined, false).await;
    assert_eq!(j["participant"]["breakout_id"], to, "{j}");
    (c, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_polls_and_hands_stay_in_their_breakout() {
    let s = Server::start();
    let api = s.api();
    // Q&A is off by default; a room that uses it turns it on.
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "scope", "qa_enabled": true}),
    )
    .await
    .expect(200);
    let t_mo = token(&s, "scope", "Mo", "moderator", None).await;
    let t_ann = token(&s, "scope", "Ann", "attendee", None).await;
    let (mut mo, mo_joined) = join(&s, "scope", "Mo", Some(t_mo.clone())).await;
    let (ann, ann_joined) = join(&s, "scope", "Ann", Some(t_ann.clone())).await;
    let (mut bob, bob_joined) = join(&s, "scope", "Bob", None).await;
    let bob_id = bob_joined["participant"]["id"].clone();
    let poll = |q: &str| {
        json!({"question": q, "type": "single",
               "options": [{"text": "Yes"}, {"text": "No"}]})
    };
    let main_poll = api
        .post("/api/v1/rooms/scope/polls", poll("Main?"))
        .await
        .expect(200)
        .body;
    let red_poll = api
        .post("/api/v1/rooms/scope/polls", poll("Red?"))
        .await
        .expect(200)
        .body;
    let ids = open(&api, "scope", json!({"names": ["Red"]})).await;
    let red = ids[0].clone();
    let (mut ann, _) = move_into(&s, "scope", &red, ann, &t_ann, &ann_joined).await;

    // Q&A: Ann's question is Red's; Bob in the main room first hears Mo's.
    ann.send(json!({"type": "question_ask", "question": "In red?", "anonymous": false}));
    let q = first_of(&mut ann, "question_created").await;
    assert_eq!(q["question"]["breakout_id"], red.as_str(), "{q}");
    mo.send(json!({"type": "question_ask", "question": "In main?", "anonymous": false}));
    let q = first_of(&mut bob, "question_created").await;
    assert_eq!(q["question"]["question"], "In main?", "{q}");
    let q = first_of(&mut mo, "question_created").await;
    assert_eq!(q["question"]["question"], "In main?", "{q}");
    // Over REST, the DS `breakout_id` field places a question the same way.
    api.post(
        "/api/v1/rooms/scope/questions",
        json!({"participant": {"name": "Backend", "external_id": "be-1"},
               "question": "REST red?", "breakout_id": red}),
    )
    .await
    .expect(200);
    api.post(
        "/api/v1/rooms/scope/questions",
        json!({"participant": {"name": "Backend", "external_id": "be-1"},
               "question": "REST main?"}),
    )
    .await
    .expect(200);
    let q = first_of(&mut ann, "question_created").await;
    assert_eq!(q["question"]["question"], "REST red?", "{q}");
    let q = first_of(&mut bob, "question_created").await;
    assert_eq!(q["question"]["question"], "REST main?", "{q}");

    // Hands: Ann's goes up in Red only; Bob's list in the main room is his.
    ann.send(json!({"type": "raise_hand"}));
    let h = first_of(&mut ann, "hands").await;
    assert_eq!(h["raised"].as_array().unwrap().len(), 1, "{h}");
    bob.send(json!({"type": "raise_hand"}));
    let h = first_of(&mut bob, "hands").await;
    let raised = h["raised"].as_array().unwrap();
    assert_eq!(raised.len(), 1, "only the main room's hands: {h}");
    assert_eq!(raised[0]["position"], 1);
    assert_eq!(h["changed"], bob_id);
    let h = first_of(&mut mo, "hands").await;
    assert_eq!(h["changed"], bob_id, "{h}");

    // Polls: the main room's poll runs in the main room only.
    let main_id = main_poll["id"].as_str().unwrap();
    mo.send(json!({"type": "poll_launch", "poll_id": main_id}));
    assert_eq!(
        first_of(&mut bob, "poll_launched").await["poll"]["id"],
        main_id
    );
    ann.send(json!({"type": "poll_vote", "poll_id": main_id,
                    "option_ids": [main_poll["options"][0]["id"]]}));
    let e = first_of(&mut ann, "error").await;
    assert_eq!(e["code"], "FORBIDDEN", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("another room"),
        "{e}"
    );
    // Mo goes into Red and launches Red's poll there: the first poll Ann
    // sees is Red's, and Bob may not vote in it.
    let (mo, _) = move_into(&s, "scope", &red, mo, &t_mo, &mo_joined).await;
    let red_id = red_poll["id"].as_str().unwrap();
    mo.send(json!({"type": "poll_launch", "poll_id": red_id}));
    assert_eq!(
        first_of(&mut ann, "poll_launched").await["poll"]["id"],
        red_id
    );
    bob.send(json!({"type": "poll_vote", "poll_id": red_id,
                    "option_ids": [red_poll["options"][0]["id"]]}));
    assert_eq!(first_of(&mut bob, "error").await["code"], "FORBIDDEN");
    ann.send(json!({"type": "poll_vote", "poll_id": red_id,
                    "option_ids": [red_poll["options"][0]["id"]]}));
    first_of(&mut ann, "poll_voted").await;
    let results = api
        .get(&format!("/api/v1/rooms/scope/polls/{red_id}/results"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        results["total_votes"], 1,
        "only Ann's vote counted: {results}"
    );

    // A late joiner in the main room catches up on the main room only.
    let (mut cat, _) = join(&s, "scope", "Cat", None).await;
    let state = first_of(&mut cat, "collab_state").await;
    let questions: Vec<&str> = state["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["question"].as_str().unwrap())
        .collect();
    assert!(questions.contains(&"In main?") && questions.contains(&"REST main?"));
    assert!(
        !questions.iter().any(|q| q.contains("red")),
        "{questions:?}"
    );
    let polls: Vec<&str> = state["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(polls, [main_id], "{state}");
    assert_eq!(state["hands"].as_array().unwrap().len(), 1, "{state}");
    drop((ann, mo, bob, cat));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_closes_the_breakouts_of_the_session_it_ended() {
    let mut s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "rs"}))
        .await
        .expect(200);
    let t_mo = token(&s, "rs", "Mo", "moderator", None).await;
    let (mo, _) = join(&s, "rs", "Mo", Some(t_mo.clone())).await;
    open(&api, "rs", json!({"count": 2})).await;
    let base = "/api/v1/rooms/rs/breakouts";
    let before = api.get(base).await.expect(200).body;
    assert_eq!(before["data"][0]["status"], "open", "{before}");
    mo.vanish();

    s.restart();
    let api = s.api();
    let after = api.get(base).await.expect(200).body;
    for b in after["data"].as_array().unwrap() {
        assert_eq!(b["status"], "closed", "{after}");
        assert!(b["closed_at"].is_string(), "{after}");
        assert_eq!(b["participants"], json!([]));
    }
    // Nothing is open: opening, closing and moving are refused clearly,
    // and deleting works.
    let r = api
        .post(&format!("{base}/open"), json!({}))
        .await
        .expect(409);
    assert!(r.body["message"].is_string(), "{}", r.body);
    api.post(&format!("{base}/close"), json!({}))
        .await
        .expect(409);
    api.delete(base).await.expect(204);
    // The next session splits again.
    let (mo, _) = join(&s, "rs", "Mo", Some(t_mo)).await;
    let ids = open(&api, "rs", json!({"names": ["Again"]})).await;
    assert_eq!(ids.len(), 1);
    let listed = api.get(base).await.expect(200).body;
    assert_eq!(listed["data"][0]["status"], "open", "{listed}");
    drop(mo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_closes_the_breakouts_by_itself() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "timer"}))
        .await
        .expect(200);
    let t_mo = token(&s, "timer", "Mo", "moderator", None).await;
    let t_ann = token(&s, "timer", "Ann", "attendee", None).await;
    let (mut mo, _) = join(&s, "timer", "Mo", Some(t_mo)).await;
    let (ann, ann_joined) = join(&s, "timer", "Ann", Some(t_ann.clone())).await;
    // The shortest timer the API takes: one minute, then the default
    // 30-second countdown. Nobody calls /close.
    let ids = open(&api, "timer", json!({"count": 1, "duration_minutes": 1})).await;
    let (mut ann, _) = move_into(&s, "timer", &ids[0], ann, &t_ann, &ann_joined).await;
    let closing = ann
        .wait_signal(Duration::from_secs(90), |v| {
            v["type"] == "breakouts_closing"
        })
        .await;
    assert_eq!(closing["seconds"], 30, "{closing}");
    let listed = api
        .get("/api/v1/rooms/timer/breakouts")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["data"][0]["status"], "closing", "{listed}");
    let pid = ann_joined["participant"]["id"].clone();
    let back = ann
        .wait_signal(Duration::from_secs(60), move |v| {
            v["type"] == "breakout_moved" && v["participant_id"] == pid
        })
        .await;
    assert_eq!(back["breakout_id"], Value::Null, "{back}");
    first_of(&mut mo, "breakouts_closed").await;
    let listed = api
        .get("/api/v1/rooms/timer/breakouts")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["data"][0]["status"], "closed", "{listed}");
}
