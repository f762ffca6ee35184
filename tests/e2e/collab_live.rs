//! Collaboration inside a live room over the real signaling WebSocket:
//! chat, raised hands, reactions, polls, Q&A and quizzes, each checked
//! against the REST API that serves the same rows.

use std::time::Duration;

use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{Api, Server, join};
use serde_json::{Value, json};

async fn moderator_token(api: &Api, room: &str, name: &str) -> String {
    api.post(
        &format!("/api/v1/rooms/{room}/token"),
        json!({"u": name, "role": "moderator"}),
    )
    .await
    .expect(200)
    .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

const T: Duration = Duration::from_secs(10);

async fn wait_event(c: &mut Client, ty: &str) -> Value {
    let ty = ty.to_string();
    c.wait_signal(T, move |v| v["type"] == ty.as_str()).await
}

/// The string `field` of each item of the array `list`.
fn strings<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    let items = list.as_array().expect("an array");
    items.iter().map(|v| v[field].as_str().unwrap()).collect()
}

async fn wait_error(c: &mut Client) -> Value {
    c.wait_signal(T, |v| v["type"] == "error").await
}

async fn live_room(s: &Server, name: &str, settings: Value) -> Api {
    let api = s.api();
    let mut body = json!({"friendly_url": name});
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.post("/api/v1/rooms", body).await.expect(200);
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_launched_in_the_room_is_answered_and_counted_over_rest() {
    let s = Server::start();
    let api = live_room(&s, "vote", json!({})).await;
    let poll = api
        .post(
            "/api/v1/rooms/vote/polls",
            json!({"question": "Lunch?", "type": "single",
                   "options": [{"label": "Pizza"}, {"label": "Salad"}]}),
        )
        .await
        .expect(200)
        .body;
    let poll_id = poll["id"].as_str().unwrap().to_string();
    let pizza = poll["options"][0]["id"].as_str().unwrap().to_string();
    let salad = poll["options"][1]["id"].as_str().unwrap().to_string();

    let (mut m, _) = join(
        &s,
        "vote",
        "Mod",
        Some(moderator_token(&api, "vote", "Mod").await),
    )
    .await;
    let (mut a, _) = join(&s, "vote", "Ann", None).await;
    let (mut b, _) = join(&s, "vote", "Ben", None).await;

    // An attendee may not launch it.
    a.send(json!({"type": "poll_launch", "poll_id": poll_id}));
    let err = wait_error(&mut a).await;
    assert_eq!(err["code"], "FORBIDDEN");
    assert!(
        err["message"].as_str().unwrap().contains("manage_polls"),
        "{err}"
    );
    assert_eq!(err["fatal"], false);

    m.send(json!({"type": "poll_launch", "poll_id": poll_id}));
    for c in [&mut m, &mut a, &mut b] {
        let ev = wait_event(c, "poll_launched").await;
        assert_eq!(ev["poll"]["id"], poll_id.as_str());
        assert_eq!(ev["poll"]["status"], "launched");
    }
    a.send(json!({"type": "poll_vote", "poll_id": poll_id, "option_ids": [pizza]}));
    b.send(json!({"type": "poll_vote", "poll_id": poll_id, "option_ids": [salad]}));
    wait_event(&mut a, "poll_voted").await;
    wait_event(&mut b, "poll_voted").await;
    // Once per participant.
    a.send(json!({"type": "poll_vote", "poll_id": poll_id, "option_ids": [salad]}));
    assert_eq!(wait_error(&mut a).await["code"], "CONFLICT");
    // An unknown option is a clear refusal.
    m.send(json!({"type": "poll_vote", "poll_id": poll_id, "option_ids": ["nope"]}));
    assert_eq!(wait_error(&mut m).await["code"], "BAD_REQUEST");

    let results = api
        .get(&format!("/api/v1/rooms/vote/polls/{poll_id}/results"))
        .await
        .expect(200)
        .body;
    assert_eq!(results["total_votes"], 2, "{results}");
    let votes: Vec<i64> = results["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes"].as_i64().unwrap())
        .collect();
    assert_eq!(votes, [1, 1]);
    let voters: Vec<&str> = results["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["voters"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(voters, ["Ann", "Ben"]);

    m.send(json!({"type": "poll_end", "poll_id": poll_id}));
    let ended = wait_event(&mut b, "poll_ended").await;
    assert_eq!(ended["poll"]["status"], "ended");
    let p = api
        .get(&format!("/api/v1/rooms/vote/polls/{poll_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(p["status"], "ended");

    // A poll created in the room appears over REST.
    m.send(json!({"type": "poll_create", "poll": {"question": "Again?", "type": "free"}}));
    let created = wait_event(&mut m, "poll_created").await;
    assert_eq!(created["poll"]["status"], "draft");
    a.send(json!({"type": "poll_create", "poll": {"question": "Mine?"}}));
    assert_eq!(wait_error(&mut a).await["code"], "FORBIDDEN");
    m.send(json!({"type": "poll_create", "poll": {"question": ""}}));
    assert_eq!(wait_error(&mut m).await["code"], "BAD_REQUEST");
    let list = api.get("/api/v1/rooms/vote/polls").await.expect(200).body;
    assert_eq!(list["total_count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_hands_and_reactions_in_the_room_and_over_rest() {
    let s = Server::start();
    let api = live_room(
        &s,
        "talk",
        json!({"chat_enabled": true, "raise_hand_enabled": true,
               "room_reactions_enabled": true, "chat_persistence_enabled": false}),
    )
    .await;
    let (mut a, a_joined) = join(&s, "talk", "Ann", None).await;
    let (mut b, b_joined) = join(&s, "talk", "Ben", None).await;
    let a_id = a_joined["participant"]["id"].as_str().unwrap().to_string();
    let b_id = b_joined["participant"]["id"].as_str().unwrap().to_string();
    let state = wait_event(&mut b, "collab_state").await;
    assert_eq!(state["chat"], json!([]));
    assert_eq!(state["hands"], json!([]));

    a.send(json!({"type": "chat", "message": "  hello room  "}));
    let got = wait_event(&mut b, "chat_message").await;
    assert_eq!(got["message"]["message"], "hello room");
    assert_eq!(got["message"]["participant_name"], "Ann");
    assert_eq!(got["message"]["participant_id"], a_id.as_str());
    let rest = api.get("/api/v1/rooms/talk/chat").await.expect(200).body;
    assert_eq!(rest["total_count"], 1);
    assert_eq!(rest["data"][0]["message"], "hello room");
    // REST -> room.
    api.post(
        "/api/v1/rooms/talk/chat",
        json!({"message": "from the backend"}),
    )
    .await
    .expect(200);
    let got = a
        .wait_signal(T, |v| {
            v["type"] == "chat_message" && v["message"]["participant_name"] == "API"
        })
        .await;
    assert_eq!(got["message"]["message"], "from the backend");
    // Bad input.
    a.send(json!({"type": "chat", "message": "   "}));
    assert_eq!(wait_error(&mut a).await["code"], "BAD_REQUEST");
    a.send(json!({"type": "chat", "message": "x".repeat(5000)}));
    assert_eq!(wait_error(&mut a).await["code"], "BAD_REQUEST");
    a.send(json!({"type": "chat", "message": "psst", "recipient_id": "nobody"}));
    assert_eq!(wait_error(&mut a).await["code"], "NOT_FOUND");
    a.send(json!({"type": "no_such_thing"}));
    assert_eq!(wait_error(&mut a).await["code"], "BAD_MESSAGE");

    // A late joiner gets the session's chat history.
    let (mut c, _) = join(&s, "talk", "Cat", None).await;
    let state = wait_event(&mut c, "collab_state").await;
    let history = strings(&state["chat"], "message");
    assert_eq!(history, ["hello room", "from the backend"]);

    // Hands, in order, in the room and over REST.
    b.send(json!({"type": "raise_hand"}));
    let h = wait_event(&mut a, "hands").await;
    assert_eq!(h["raised"][0]["participant_id"], b_id.as_str());
    assert_eq!(h["raised"][0]["position"], 1);
    api.post(
        &format!("/api/v1/rooms/talk/participants/{a_id}/raise-hand"),
        json!({}),
    )
    .await
    .expect(204);
    let h = c
        .wait_signal(T, |v| {
            v["type"] == "hands" && v["raised"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(h["raised"][1]["participant_id"], a_id.as_str());
    // REST sees the hands too.
    let live = api
        .get("/api/v1/rooms/talk/live/participants")
        .await
        .expect(200)
        .body;
    let up: Vec<&str> = live["live_participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hand_raised_at"].is_string())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(up, ["Ann", "Ben"]);
    api.post(
        &format!("/api/v1/rooms/talk/participants/{b_id}/lower-hand"),
        json!({}),
    )
    .await
    .expect(204);
    let h = c
        .wait_signal(T, |v| {
            v["type"] == "hands"
                && v["raised"].as_array().unwrap().len() == 1
                && v["changed"] == b_id.as_str()
                && v["raised"][0]["participant_id"] != b_id.as_str()
        })
        .await;
    assert_eq!(h["raised"][0]["position"], 1);
    let ben = api
        .get(&format!("/api/v1/participants/{b_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(ben["hand_raised_at"], Value::Null);
    let ann = api
        .get(&format!("/api/v1/participants/{a_id}"))
        .await
        .expect(200)
        .body;
    assert!(ann["hand_raised_at"].is_string(), "{ann}");
    // Attendees may not lower someone else's hand.
    b.send(json!({"type": "lower_hand", "participant_id": a_id}));
    assert_eq!(wait_error(&mut b).await["code"], "FORBIDDEN");
    api.post(
        "/api/v1/rooms/talk/participants/nobody/raise-hand",
        json!({}),
    )
    .await
    .expect(404);

    // Reactions.
    b.send(json!({"type": "reaction", "emoji": "👍"}));
    let r = wait_event(&mut a, "reaction").await;
    assert_eq!(r["emoji"], "👍");
    assert_eq!(r["participant_id"], b_id.as_str());
    b.send(json!({"type": "reaction", "emoji": ""}));
    assert_eq!(wait_error(&mut b).await["code"], "BAD_REQUEST");

    // Settings turn things off.
    api.patch("/api/v1/rooms/talk", json!({"raise_hand_enabled": false}))
        .await
        .expect(200);
    drop((a, b, c));
    let api2 = live_room(
        &s,
        "quiet",
        json!({"chat_enabled": false, "room_reactions_enabled": false}),
    )
    .await;
    let (mut q, _) = join(&s, "quiet", "Quin", None).await;
    q.send(json!({"type": "chat", "message": "hi"}));
    let err = wait_error(&mut q).await;
    assert_eq!(err["code"], "FORBIDDEN");
    assert!(err["message"].as_str().unwrap().contains("Chat"), "{err}");
    q.send(json!({"type": "reaction", "emoji": "🎉"}));
    assert_eq!(wait_error(&mut q).await["code"], "FORBIDDEN");
    assert_eq!(
        api2.get("/api/v1/rooms/quiet/chat").await.body["total_count"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_and_a_timed_quiz_in_the_room() {
    let s = Server::start();
    let api = live_room(&s, "qa", json!({"qa_enabled": true})).await;
    let (mut m, _) = join(
        &s,
        "qa",
        "Mod",
        Some(moderator_token(&api, "qa", "Mod").await),
    )
    .await;
    let (mut a, _) = join(&s, "qa", "Ann", None).await;

    a.send(json!({"type": "question_ask", "question": "Who am I?", "anonymous": true}));
    let q = wait_event(&mut m, "question_created").await;
    assert_eq!(q["question"]["participant_name"], "Anonymous");
    assert_eq!(q["question"]["participant_id"], Value::Null);
    let qid = q["question"]["id"].as_str().unwrap().to_string();
    m.send(json!({"type": "question_vote", "question_id": qid}));
    let u = wait_event(&mut a, "question_updated").await;
    assert_eq!(u["question"]["votes"], 1);
    m.send(json!({"type": "question_vote", "question_id": qid}));
    assert_eq!(wait_error(&mut m).await["code"], "CONFLICT");
    // Only moderators answer.
    a.send(json!({"type": "question_answer", "question_id": qid, "answer": "me"}));
    assert_eq!(wait_error(&mut a).await["code"], "FORBIDDEN");
    m.send(json!({"type": "question_answer", "question_id": qid, "answer": "A guest."}));
    let u = a
        .wait_signal(T, |v| {
            v["type"] == "question_updated"
                && !v["question"]["answers"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(u["question"]["answers"][0]["answer"], "A guest.");
    m.send(json!({"type": "question_dismiss", "question_id": qid}));
    let u = a
        .wait_signal(T, |v| {
            v["type"] == "question_updated" && v["question"]["status"] == "dismissed"
        })
        .await;
    assert_eq!(u["question"]["id"], qid.as_str());
    let rest = api.get("/api/v1/rooms/qa/questions").await.expect(200).body;
    assert_eq!(rest["data"][0]["status"], "dismissed");
    assert_eq!(rest["data"][0]["participant_name"], "Anonymous");

    // A quiz with a 2 s limit ends by itself, on the server's clock.
    let quiz = api
        .post(
            "/api/v1/rooms/qa/quizzes",
            json!({"title": "Quick", "time_limit_seconds": 2, "questions": [
                {"text": "2+2?", "multiple": false, "choices": [
                    {"text": "4", "correct": true}, {"text": "5", "correct": false}]}]}),
        )
        .await
        .expect(200)
        .body;
    let quiz_id = quiz["id"].as_str().unwrap().to_string();
    let question_id = quiz["questions"][0]["id"].as_str().unwrap().to_string();
    let four = quiz["questions"][0]["choices"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.send(json!({"type": "quiz_launch", "quiz_id": quiz_id}));
    assert_eq!(wait_error(&mut a).await["code"], "FORBIDDEN");
    m.send(json!({"type": "quiz_launch", "quiz_id": quiz_id}));
    let l = wait_event(&mut a, "quiz_launched").await;
    assert_eq!(l["ends_in_seconds"], 2);
    assert!(
        l["quiz"]["questions"][0]["choices"][0]
            .get("correct")
            .is_none(),
        "participants do not see the answers: {l}"
    );
    a.send(
        json!({"type": "quiz_answer", "quiz_id": quiz_id, "question_id": question_id,
                  "choice_ids": [four]}),
    );
    wait_event(&mut a, "quiz_answered").await;
    let e = wait_event(&mut a, "quiz_ended").await;
    assert_eq!(e["reason"], "time_up");
    // Too late now.
    m.send(
        json!({"type": "quiz_answer", "quiz_id": quiz_id, "question_id": question_id,
                  "choice_ids": [four]}),
    );
    assert_eq!(wait_error(&mut m).await["code"], "CONFLICT");
    let q = api
        .get(&format!("/api/v1/rooms/qa/quizzes/{quiz_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(q["status"], "ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_note_to_oneself_arrives_once() {
    let s = Server::start();
    live_room(&s, "notes", json!({"chat_enabled": true})).await;
    let (mut a, a_joined) = join(&s, "notes", "Ann", None).await;
    let (mut b, _) = join(&s, "notes", "Ben", None).await;
    let a_id = a_joined["participant"]["id"].as_str().unwrap().to_string();
    a.send(json!({"type": "chat", "message": "note to self", "recipient_id": a_id}));
    a.send(json!({"type": "chat", "message": "after"}));
    // Events reach a participant in order: once "after" is in, so is every
    // copy of the note.
    for c in [&mut a, &mut b] {
        c.wait_signal(T, |v| {
            v["type"] == "chat_message" && v["message"]["message"] == "after"
        })
        .await;
    }
    let count = |c: &Client| c.signals().iter().filter(|t| *t == "chat_message").count();
    assert_eq!(count(&a), 2, "{:?}", a.signals());
    assert_eq!(count(&b), 1, "{:?}", b.signals());
    let note = a
        .wait_signal(T, |v| v["message"]["message"] == "note to self")
        .await;
    assert_eq!(note["private"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_participant_catches_up_on_what_it_missed() {
    let s = Server::start();
    live_room(&s, "away", json!({"chat_enabled": true})).await;
    let (a, a_joined) = join(&s, "away", "Ann", None).await;
    let (b, _) = join(&s, "away", "Ben", None).await;
    a.vanish();
    b.send(json!({"type": "chat", "message": "while you were out"}));
    b.send(json!({"type": "raise_hand"}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = Client::connect(ClientOptions {
        room: Some("away".into()),
        name: Some("Ann".into()),
        resume: Some(a_joined["resume_token"].as_str().unwrap().to_string()),
        ..ClientOptions::new(s.ws_url())
    })
    .await;
    let joined = again.wait_type("joined").await;
    assert_eq!(joined["resumed"], true);
    let state = wait_event(&mut again, "collab_state").await;
    assert_eq!(state["chat"][0]["message"], "while you were out");
    assert_eq!(state["hands"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reactions_toggle_and_reach_late_joiners() {
    let s = Server::start();
    let api = live_room(
        &s,
        "emoji",
        json!({"chat_enabled": true, "chat_reactions_enabled": true}),
    )
    .await;
    let (a, a_joined) = join(&s, "emoji", "Ann", None).await;
    let (mut b, _) = join(&s, "emoji", "Ben", None).await;
    let a_id = a_joined["participant"]["id"].as_str().unwrap().to_string();
    a.send(json!({"type": "chat", "message": "ship it?"}));
    let msg = wait_event(&mut b, "chat_message").await;
    let mid = msg["message"]["id"].as_str().unwrap().to_string();
    a.send(json!({"type": "chat_reaction", "message_id": mid, "emoji": "👍"}));
    let r = wait_event(&mut b, "chat_reactions").await;
    assert_eq!(r["message_id"], mid.as_str());
    assert_eq!(
        r["reactions"],
        json!([{"emoji": "👍", "count": 1, "participant_ids": [a_id]}])
    );
    // A late joiner sees it; the same reaction again takes it back.
    let (mut c, _) = join(&s, "emoji", "Cat", None).await;
    let state = wait_event(&mut c, "collab_state").await;
    assert_eq!(state["chat_reactions"][&mid][0]["count"], 1);
    a.send(json!({"type": "chat_reaction", "message_id": mid, "emoji": "👍"}));
    let r = c
        .wait_signal(T, |v| {
            v["type"] == "chat_reactions" && v["reactions"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(r["message_id"], mid.as_str());
    b.send(json!({"type": "chat_reaction", "message_id": "nope", "emoji": "👍"}));
    assert_eq!(wait_error(&mut b).await["code"], "NOT_FOUND");
    b.send(json!({"type": "chat_reaction", "message_id": mid, "emoji": ""}));
    assert_eq!(wait_error(&mut b).await["code"], "BAD_REQUEST");
    // Off in the room: refused.
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "plain", "chat_enabled": true, "chat_reactions_enabled": false}),
    )
    .await
    .expect(200);
    let (mut p, _) = join(&s, "plain", "Pat", None).await;
    p.send(json!({"type": "chat", "message": "hi"}));
    let m = wait_event(&mut p, "chat_message").await;
    p.send(json!({"type": "chat_reaction", "message_id": m["message"]["id"], "emoji": "👍"}));
    let err = wait_error(&mut p).await;
    assert_eq!(err["code"], "FORBIDDEN");
    assert!(err["message"].as_str().unwrap().contains("Chat reactions"));
}

/// Participants who join at once (the room actor admits those queued
/// together as one burst, reading the catch-up records once for all of
/// them; how they fall into bursts is the scheduler's) still each get their
/// own view: the chat history for all, a draft poll only for the poll
/// manager among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_admitted_together_each_get_their_own_catch_up_state() {
    let s = Server::start();
    let api = live_room(&s, "rush", json!({"chat_enabled": true})).await;
    let (_host, _) = join(&s, "rush", "Host", None).await;
    api.post(
        "/api/v1/rooms/rush/chat",
        json!({"message": "before the rush"}),
    )
    .await
    .expect(200);
    let draft = api
        .post(
            "/api/v1/rooms/rush/polls",
            json!({"question": "Ready?", "type": "single",
                   "options": [{"label": "Yes"}, {"label": "No"}]}),
        )
        .await
        .expect(200)
        .body;
    let draft_id = draft["id"].as_str().unwrap().to_string();

    let mod_token = moderator_token(&api, "rush", "Mod").await;
    let names: Vec<String> = (0..8).map(|i| format!("Guest {i}")).collect();
    let mut joins = vec![join(&s, "rush", "Mod", Some(mod_token))];
    for name in &names {
        joins.push(join(&s, "rush", name, None));
    }
    let joined = futures::future::join_all(joins).await;
    for (i, (mut c, _)) in joined.into_iter().enumerate() {
        let state = wait_event(&mut c, "collab_state").await;
        let chat = strings(&state["chat"], "message");
        assert_eq!(chat, ["before the rush"], "joiner {i}");
        let polls = strings(&state["polls"], "id");
        if i == 0 {
            assert_eq!(polls, [draft_id.as_str()], "the moderator sees the draft");
        } else {
            assert!(polls.is_empty(), "joiner {i} sees a draft: {polls:?}");
        }
    }
}
