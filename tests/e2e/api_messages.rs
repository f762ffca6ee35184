//! eyeson-style data messages: `POST /rooms/{room}/messages` into the live session.

use std::time::Duration;

use convene_tests::Server;
use serde_json::json;

use crate::api_chat::{join, room};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_is_broadcast_to_everyone_in_the_session() {
    let s = Server::start();
    let api = s.api();
    room(&api, "board").await;
    // No live session: 409 with a clear message.
    let r = api
        .post(
            "/api/v1/rooms/board/messages",
            json!({"type": "chat", "content": "hi"}),
        )
        .await
        .expect(409);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("no live session")
    );
    // Validation of both fields.
    api.post("/api/v1/rooms/board/messages", json!({"content": "hi"}))
        .await
        .expect_invalid("type");
    api.post("/api/v1/rooms/board/messages", json!({"type": "chat"}))
        .await
        .expect_invalid("content");
    api.post(
        "/api/v1/rooms/board/messages",
        json!({"type": 1, "content": "x"}),
    )
    .await
    .expect_invalid("type");
    api.post(
        "/api/v1/rooms/nope/messages",
        json!({"type": "chat", "content": "x"}),
    )
    .await
    .expect(404);

    let (mut ann, _) = join(&s, "board", "Ann").await;
    let (mut bob, _) = join(&s, "board", "Bob").await;
    let r = api
        .post(
            "/api/v1/rooms/board/messages",
            json!({"type": "custom", "content": "{\"slide\": 3}"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["type"], "custom");
    assert_eq!(r.body["content"], "{\"slide\": 3}");
    for c in [&mut ann, &mut bob] {
        let ev = c
            .wait_signal(Duration::from_secs(10), |v| v["type"] == "message")
            .await;
        assert_eq!(ev["message_type"], "custom");
        assert_eq!(ev["content"], "{\"slide\": 3}");
    }
}
