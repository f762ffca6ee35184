//! Chat over HTTP: listing, export, sending into a live session, deletion.

use std::time::Duration;

use convene_tests::rtc_client::Client;
use convene_tests::{Api, Server};
use serde_json::{Value, json};

/// Joins `name` to the public room `room` over the real signaling WebSocket;
/// returns the client and its `joined` message (which carries `session_id`).
pub async fn join(s: &Server, room: &str, name: &str) -> (Client, Value) {
    convene_tests::join(s, room, name, None).await
}

pub async fn room(api: &Api, friendly_url: &str) -> Value {
    api.post("/api/v1/rooms", json!({"friendly_url": friendly_url}))
        .await
        .expect(200)
        .body
}

/// Waits until the room has no live session (after everyone left and the
/// room ended the session).
pub async fn wait_not_live(api: &Api, room: &str) {
    for _ in 0..100 {
        // The session itself has ended (not only its participants left).
        let r = api.get(&format!("/api/v1/rooms/{room}/live")).await;
        if r.status == 200 && r.body["session_id"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the room stayed live");
}

#[tokio::test]
async fn sending_needs_a_live_session() {
    let s = Server::start();
    let api = s.api();
    room(&api, "quiet").await;
    let r = api
        .post("/api/v1/rooms/quiet/chat", json!({"message": "anyone?"}))
        .await
        .expect(409);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("no live session"),
        "{}",
        r.body
    );
    assert_eq!(r.body["code"], "CONFLICT");
    // Validation comes first, and nothing was stored.
    api.post("/api/v1/rooms/quiet/chat", json!({}))
        .await
        .expect_invalid("message");
    api.post("/api/v1/rooms/quiet/chat", json!({"message": "   "}))
        .await
        .expect_invalid("message");
    api.post("/api/v1/rooms/quiet/chat", json!({"message": 5}))
        .await
        .expect_invalid("message");
    api.post(
        "/api/v1/rooms/quiet/chat",
        json!({"message": "x".repeat(5001)}),
    )
    .await
    .expect_invalid("message");
    let list = api.get("/api/v1/rooms/quiet/chat").await.expect(200);
    assert_eq!(list.body, json!({"total_count": 0, "data": []}));
    api.get("/api/v1/rooms/nope/chat").await.expect(404);
    api.post("/api/v1/rooms/nope/chat", json!({"message": "x"}))
        .await
        .expect(404);
    api.delete("/api/v1/sessions/00000000-0000-4000-8000-000000000000/chat")
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_message_reaches_participants_and_is_stored() {
    let s = Server::start();
    let api = s.api();
    room(&api, "lounge").await;
    let (mut ann, joined) = join(&s, "lounge", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();

    let sent = api
        .post(
            "/api/v1/rooms/lounge/chat",
            json!({"message": "Hello from the API"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(sent["message"], "Hello from the API");
    assert_eq!(sent["participant_name"], "API");
    assert_eq!(sent["session_id"], session.as_str());
    for field in [
        "id",
        "message",
        "participant_id",
        "participant_name",
        "external_participant_id",
        "breakout_id",
        "created_at",
    ] {
        assert!(sent.get(field).is_some(), "missing {field}: {sent}");
    }
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "chat_message")
        .await;
    assert_eq!(ev["message"]["id"], sent["id"]);
    assert_eq!(ev["message"]["message"], "Hello from the API");

    for i in 0..3 {
        api.post(
            "/api/v1/rooms/lounge/chat",
            json!({"message": format!("m{i}"), "unknown_field": true}),
        )
        .await
        .expect(200);
    }
    // Pagination: newest first by default; after/limit/offset/order.
    let list = api.get("/api/v1/rooms/lounge/chat").await.expect(200).body;
    assert_eq!(list["total_count"], 4);
    assert_eq!(list["data"][0]["message"], "m2");
    let asc = api
        .get("/api/v1/rooms/lounge/chat?order=asc&limit=2")
        .await
        .expect(200)
        .body;
    assert_eq!(asc["data"].as_array().unwrap().len(), 2);
    assert_eq!(asc["data"][0]["message"], "Hello from the API");
    let first = asc["data"][0]["id"].as_str().unwrap();
    let after = api
        .get(&format!(
            "/api/v1/rooms/lounge/chat?order=asc&after={first}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(after["data"][0]["message"], "m0");
    let off = api
        .get("/api/v1/rooms/lounge/chat?order=asc&offset=3")
        .await
        .expect(200)
        .body;
    assert_eq!(off["data"][0]["message"], "m2");
    api.get("/api/v1/rooms/lounge/chat?limit=0")
        .await
        .expect_invalid("limit");
    api.get("/api/v1/rooms/lounge/chat?after=nope")
        .await
        .expect_invalid("after");
    let by_session = api
        .get(&format!("/api/v1/rooms/lounge/chat?session_id={session}"))
        .await
        .expect(200)
        .body;
    assert_eq!(by_session["total_count"], 4);
    let other = api
        .get("/api/v1/rooms/lounge/chat?session_id=00000000-0000-4000-8000-000000000000")
        .await
        .expect(200)
        .body;
    assert_eq!(other["total_count"], 0);

    // Exports parse back.
    let txt = api
        .get("/api/v1/rooms/lounge/chat/export?format=txt")
        .await
        .expect(200);
    assert!(
        txt.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let cd = txt.header("content-disposition").unwrap();
    assert!(
        cd.starts_with("attachment; filename=\"chat-lounge") && cd.ends_with(".txt\""),
        "{cd}"
    );
    let text = String::from_utf8(txt.raw.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].ends_with("] API: Hello from the API"),
        "{}",
        lines[0]
    );
    let js = api
        .get(&format!(
            "/api/v1/rooms/lounge/chat/export?format=json&session_id={session}"
        ))
        .await
        .expect(200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(js.header("content-disposition").unwrap().contains(".json"));
    let arr: Vec<Value> = serde_json::from_slice(&js.raw).unwrap();
    assert_eq!(arr.len(), 4);
    assert_eq!(arr[3]["message"], "m2");
    // Default format is txt; other formats are refused.
    let def = api
        .get("/api/v1/rooms/lounge/chat/export")
        .await
        .expect(200);
    assert!(
        def.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    api.get("/api/v1/rooms/lounge/chat/export?format=pdf")
        .await
        .expect_invalid("format");

    // Deleting a session's chat, then the room's.
    api.delete(&format!("/api/v1/sessions/{session}/chat"))
        .await
        .expect(204);
    let list = api.get("/api/v1/rooms/lounge/chat").await.expect(200).body;
    assert_eq!(list["total_count"], 0);
    api.post("/api/v1/rooms/lounge/chat", json!({"message": "again"}))
        .await
        .expect(200);
    let r = api.delete("/api/v1/rooms/lounge/chat").await.expect(204);
    assert!(r.raw.is_empty());
    let list = api.get("/api/v1/rooms/lounge/chat").await.expect(200).body;
    assert_eq!(list["total_count"], 0);

    // After everyone leaves, sending is a 409 again.
    ann.leave();
    wait_not_live(&api, "lounge").await;
    api.post("/api/v1/rooms/lounge/chat", json!({"message": "late"}))
        .await
        .expect(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_resources_and_room_deletion_remove_everything() {
    let s = Server::start();
    let api = s.api();
    room(&api, "keep").await;
    room(&api, "wipe").await;
    let (mut a, _) = join(&s, "keep", "A").await;
    let (mut b, _) = join(&s, "wipe", "B").await;
    for r in ["keep", "wipe"] {
        api.post(&format!("/api/v1/rooms/{r}/chat"), json!({"message": "hi"}))
            .await
            .expect(200);
    }
    a.wait_type("chat_message").await;
    b.wait_type("chat_message").await;
    for r in ["keep", "wipe"] {
        let q = api
            .post(
                &format!("/api/v1/rooms/{r}/questions"),
                json!({"participant": {"name": "N"}, "question": "Q?"}),
            )
            .await
            .expect(200)
            .body;
        let qid = q["id"].as_str().unwrap();
        api.post(
            &format!("/api/v1/rooms/{r}/questions/{qid}/vote"),
            json!({"participant": {"name": "N"}}),
        )
        .await
        .expect(200);
        api.post(
            &format!("/api/v1/rooms/{r}/questions/{qid}/answers"),
            json!({"participant": {"name": "M"}, "answer": "A"}),
        )
        .await
        .expect(200);
        api.post(
            &format!("/api/v1/rooms/{r}/polls"),
            json!({"question": "P?", "options": ["a", "b"]}),
        )
        .await
        .expect(200);
        api.post(
            &format!("/api/v1/rooms/{r}/quizzes"),
            json!({"title": "T", "questions": [{"text": "Q", "choices": [{"text": "a", "correct": true}, {"text": "b"}]}]}),
        )
        .await
        .expect(200);
    }
    api.delete("/api/v1/rooms/wipe/resources").await.expect(204);
    for kind in ["chat", "questions", "polls", "quizzes"] {
        let wiped = api
            .get(&format!("/api/v1/rooms/wipe/{kind}"))
            .await
            .expect(200);
        assert_eq!(wiped.body["total_count"], 0, "{kind} not wiped");
        let kept = api
            .get(&format!("/api/v1/rooms/keep/{kind}"))
            .await
            .expect(200);
        assert_eq!(kept.body["total_count"], 1, "{kind} of another room wiped");
    }

    // Another team sees none of it.
    let (_, key) = s.create_team("other");
    let other = s.api_with_key(&key);
    other.get("/api/v1/rooms/keep/chat").await.expect(404);

    // Room deletion cascades (checked in the database file itself).
    a.leave();
    wait_not_live(&api, "keep").await;
    api.delete("/api/v1/rooms/keep").await.expect(204);
    let db = s.db().await;
    for table in [
        "chat_messages",
        "questions",
        "question_answers",
        "question_votes",
        "polls",
        "poll_votes",
        "quizzes",
        "quiz_answers",
    ] {
        let n = db.int(&format!("SELECT COUNT(*) FROM {table}"), &[]).await;
        assert_eq!(n, 0, "{table} rows outlived their room");
    }
    db.close().await;
}
