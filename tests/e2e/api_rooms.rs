//! Rooms over HTTP: create/read/update/delete, validation, pagination, bulk delete.

use convene_tests::{Api, Server};
use serde_json::{Value, json};

async fn create(api: &Api, body: Value) -> Value {
    api.post("/api/v1/rooms", body).await.expect(200).body
}

#[tokio::test]
async fn empty_body_takes_team_defaults() {
    let s = Server::start();
    let api = s.api();
    let room = create(&api, json!({})).await;
    assert!(uuid::Uuid::parse_str(room["id"].as_str().unwrap()).is_ok());
    let fu = room["friendly_url"].as_str().unwrap();
    assert!(!fu.is_empty() && fu.len() <= 32);
    assert_eq!(room["room_url"], format!("http://localhost:8080/{fu}"));
    for (field, value) in [
        ("privacy", json!("public")),
        ("is_locked", json!(false)),
        ("join_screen_enabled", json!(true)),
        ("chat_enabled", json!(true)),
        ("qa_enabled", json!(false)),
        ("recordings_enabled", json!(false)),
        ("screenshare_enabled", json!(true)),
        ("raise_hand_enabled", json!(true)),
        ("video_on_join_enabled", json!(true)),
        ("audio_on_join_enabled", json!(false)),
        ("topbar_enabled", json!(true)),
        ("chat_persistence_enabled", json!(false)),
        ("connection_quality_indicator_enabled", json!(false)),
        ("watermark_enabled", json!(false)),
        ("watermark_text", Value::Null),
        ("default_language", json!("en")),
        ("toolbar", json!({"position": "bottom", "visible": true})),
        ("logo_url", Value::Null),
        ("primary_color", Value::Null),
        ("background_color", Value::Null),
        ("default_role", json!("attendee")),
        ("roles", json!(["moderator", "speaker", "attendee"])),
        ("description", Value::Null),
        ("tags", json!([])),
    ] {
        assert_eq!(room[field], value, "field {field}");
    }
    for field in [
        "max_participants",
        "session_length",
        "auto_pip_enabled",
        "room_reactions_enabled",
        "invite_participants_advanced_enabled",
        "chat_reactions_enabled",
        "chat_reactions_extended_enabled",
        "virtual_backgrounds_v2_enabled",
        "pin_panels_enabled",
        "created_at",
        "updated_at",
    ] {
        assert!(!room[field].is_null(), "field {field} missing: {room}");
    }
    assert!(room["max_participants"].is_i64());
    chrono::DateTime::parse_from_rfc3339(room["created_at"].as_str().unwrap()).unwrap();

    // A POST with no body at all is the same as {}.
    let res = s
        .client
        .post(s.url("/api/v1/rooms"))
        .bearer_auth(convene_tests::KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn seed_full_request_round_trips() {
    let s = Server::start();
    let api = s.api();
    let room = create(
        &api,
        json!({
            "friendly_url": "team-standup",
            "description": "Daily standup meeting",
            "privacy": "private",
            "max_participants": 50,
            "session_length": 60,
            "default_role": "attendee",
            "roles": ["moderator", "speaker", "attendee"],
            "chat_enabled": true,
            "recordings_enabled": true,
            "screenshare_enabled": true,
            "raise_hand_enabled": true,
            "watermark_enabled": true,
            "watermark_text": "Confidential - ACME, Inc.",
            "default_language": "de-DE",
            "toolbar": {"position": "left", "visible": false},
            "primary_color": "#1a2b3c",
            "background_color": "#fff",
            "logo_url": "https://example.com/logo.png",
            "tags": ["daily", "eng"]
        }),
    )
    .await;
    assert_eq!(room["friendly_url"], "team-standup");
    assert_eq!(room["room_url"], "http://localhost:8080/team-standup");
    assert_eq!(room["privacy"], "private");
    assert_eq!(room["max_participants"], 50);
    assert_eq!(room["session_length"], 60);
    assert_eq!(room["recordings_enabled"], true);
    assert_eq!(room["watermark_text"], "Confidential - ACME, Inc.");
    assert_eq!(room["default_language"], "de-DE");
    assert_eq!(
        room["toolbar"],
        json!({"position": "left", "visible": false})
    );
    assert_eq!(room["tags"], json!(["daily", "eng"]));

    let by_url = api.get("/api/v1/rooms/team-standup").await.expect(200).body;
    let by_id = api
        .get(&format!("/api/v1/rooms/{}", room["id"].as_str().unwrap()))
        .await
        .expect(200)
        .body;
    assert_eq!(by_url, room);
    assert_eq!(by_id, room);
}

#[tokio::test]
async fn extra_fields_real_clients_send_are_ignored() {
    let s = Server::start();
    let api = s.api();
    let room = create(
        &api,
        json!({
            "name": "Weekly sync",
            "topic": "Planning",
            "team_id": "00000000-0000-0000-0000-000000000000",
            "language": "en",
            "expires_at": "2031-05-01T10:00:00.123456789Z",
            "mute_on_join": true,
            "camera_off_on_join": false,
            "default_layout": "grid",
            "enable_whiteboard": true,
            "enable_polling": true,
            "enable_qa": true,
            "friendly_url": "weekly"
        }),
    )
    .await;
    assert_eq!(room["friendly_url"], "weekly");
    assert!(room.get("topic").is_none());
}

#[tokio::test]
async fn every_validation_rule_refuses_bad_input() {
    let s = Server::start();
    let api = s.api();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"friendly_url": "a".repeat(33)}), "friendly_url"),
        (json!({"friendly_url": "has space"}), "friendly_url"),
        (json!({"friendly_url": "semi;colon"}), "friendly_url"),
        (json!({"friendly_url": ""}), "friendly_url"),
        (json!({"friendly_url": 12}), "friendly_url"),
        (json!({"friendly_url": "api"}), "friendly_url"),
        (json!({"friendly_url": "RTC"}), "friendly_url"),
        (json!({"friendly_url": "health"}), "friendly_url"),
        (json!({"friendly_url": "metrics"}), "friendly_url"),
        (json!({"friendly_url": "tags"}), "friendly_url"),
        (json!({"friendly_url": "live"}), "friendly_url"),
        (
            json!({"friendly_url": "0b5c4f4e-6a32-4f57-9d1e-6f1f8e0e9d11"}),
            "friendly_url",
        ),
        (json!({"privacy": "secret"}), "privacy"),
        (json!({"privacy": true}), "privacy"),
        (json!({"session_length": 0}), "session_length"),
        (json!({"session_length": 1441}), "session_length"),
        (json!({"session_length": 60.5}), "session_length"),
        (json!({"max_participants": "50"}), "max_participants"),
        (json!({"max_participants": 0}), "max_participants"),
        (json!({"default_role": "speaker"}), "default_role"),
        (
            json!({"default_role": "guest", "roles": ["moderator", "speaker"]}),
            "default_role",
        ),
        (
            json!({"roles": ["moderator", "nosuchrole"], "default_role": "moderator"}),
            "roles",
        ),
        (json!({"roles": []}), "roles"),
        (json!({"roles": "moderator"}), "roles"),
        (json!({"roles": ["moderator", "speaker"]}), "roles"),
        (json!({"watermark_text": "ab"}), "watermark_text"),
        (json!({"watermark_text": "x".repeat(51)}), "watermark_text"),
        (
            json!({"watermark_text": "<script>alert(1)</script>"}),
            "watermark_text",
        ),
        (
            json!({"watermark_text": "日本語のテキスト"}),
            "watermark_text",
        ),
        (json!({"default_language": "fr"}), "default_language"),
        (json!({"primary_color": "red"}), "primary_color"),
        (json!({"background_color": "#12345"}), "background_color"),
        (json!({"logo_url": "javascript:alert(1)"}), "logo_url"),
        (json!({"chat_enabled": "true"}), "chat_enabled"),
        (json!({"is_locked": 1}), "is_locked"),
        (json!({"toolbar": {"position": "middle"}}), "toolbar"),
        (json!({"toolbar": "bottom"}), "toolbar"),
        (json!({"tags": "one"}), "tags"),
        (json!({"tags": [1, 2]}), "tags"),
        (json!({"description": 5}), "description"),
    ];
    for (body, field) in cases {
        let res = api.post("/api/v1/rooms", body.clone()).await;
        assert_eq!(res.status, 422, "{body} should be refused: {}", res.body);
        assert!(
            res.body["errors"][field].is_array(),
            "{body}: expected an error on {field}, got {}",
            res.body
        );
        assert!(res.body["message"].as_str().unwrap().contains(field));
    }
    // Nothing was created by the refused requests.
    let list = api.get("/api/v1/rooms").await.expect(200).body;
    assert_eq!(list["total_count"], 0);

    // Malformed JSON and non-objects are clear 400s.
    let res = api.send("POST", "/api/v1/rooms", None).await;
    assert_eq!(res.status, 200);
    let raw = s
        .client
        .post(s.url("/api/v1/rooms"))
        .bearer_auth(convene_tests::KEY)
        .body("{\"friendly_url\": ")
        .send()
        .await
        .unwrap();
    let r = convene_tests::Resp::read(raw).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], "BAD_REQUEST");
    api.post("/api/v1/rooms", json!([1, 2])).await.expect(400);
}

#[tokio::test]
async fn duplicate_friendly_url_conflicts() {
    let s = Server::start();
    let api = s.api();
    create(&api, json!({"friendly_url": "dup"})).await;
    let res = api
        .post("/api/v1/rooms", json!({"friendly_url": "dup"}))
        .await
        .expect(409);
    assert_eq!(res.body["code"], "CONFLICT");
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    // Renaming another room onto it conflicts too.
    create(&api, json!({"friendly_url": "other"})).await;
    api.patch("/api/v1/rooms/other", json!({"friendly_url": "dup"}))
        .await
        .expect(409);
}

#[tokio::test]
async fn patch_changes_only_given_fields() {
    let s = Server::start();
    let api = s.api();
    let room = create(
        &api,
        json!({"friendly_url": "p1", "description": "d", "tags": ["x"]}),
    )
    .await;
    let updated = api
        .patch(
            "/api/v1/rooms/p1",
            json!({"chat_enabled": false, "toolbar": {"visible": false}, "friendly_url": "p2", "unknown": 1}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(updated["id"], room["id"]);
    assert_eq!(updated["friendly_url"], "p2");
    assert_eq!(updated["chat_enabled"], false);
    assert_eq!(
        updated["toolbar"],
        json!({"position": "bottom", "visible": false})
    );
    assert_eq!(updated["description"], "d");
    assert_eq!(updated["tags"], json!(["x"]));
    assert_eq!(updated["created_at"], room["created_at"]);
    assert_ne!(updated["updated_at"], room["updated_at"]);
    api.get("/api/v1/rooms/p1").await.expect(404);
    api.patch("/api/v1/rooms/p2", json!({"session_length": 5000}))
        .await
        .expect_invalid("session_length");
    api.patch("/api/v1/rooms/p2", json!({"friendly_url": null}))
        .await
        .expect_invalid("friendly_url");
    // default_role alone needs roles in the same request (seed rule).
    api.patch("/api/v1/rooms/p2", json!({"default_role": "speaker"}))
        .await
        .expect_invalid("default_role");
    let ok = api
        .patch(
            "/api/v1/rooms/p2",
            json!({"default_role": "speaker", "roles": ["speaker", "moderator"]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(ok["default_role"], "speaker");
    api.patch("/api/v1/rooms/p2", json!({"description": null, "tags": []}))
        .await
        .expect(200);
    let after = api.get("/api/v1/rooms/p2").await.expect(200).body;
    assert_eq!(after["description"], Value::Null);
    assert_eq!(after["tags"], json!([]));
    api.patch("/api/v1/rooms/nope", json!({})).await.expect(404);
}

#[tokio::test]
async fn delete_is_204_with_no_body() {
    let s = Server::start();
    let api = s.api();
    create(&api, json!({"friendly_url": "gone"})).await;
    let res = api.delete("/api/v1/rooms/gone").await.expect(204);
    assert!(res.raw.is_empty());
    let res = api.delete("/api/v1/rooms/gone").await.expect(404);
    assert_eq!(res.body["code"], "NOT_FOUND");
    assert!(res.body["message"].as_str().unwrap().contains("not found"));
    create(&api, json!({"friendly_url": "res"})).await;
    let res = api.delete("/api/v1/rooms/res/resources").await.expect(204);
    assert!(res.raw.is_empty());
    api.get("/api/v1/rooms/res").await.expect(200);
    api.delete("/api/v1/rooms/nope/resources").await.expect(404);
}

#[tokio::test]
async fn pagination_limit_offset_order_after_and_tags() {
    let s = Server::start();
    let api = s.api();
    let mut ids = Vec::new();
    for i in 0..7 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        let r = create(
            &api,
            json!({"friendly_url": format!("room-{i}"), "tags": tags}),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["friendly_url"].as_str().unwrap().to_string())
            .collect()
    };
    let all = api.get("/api/v1/rooms").await.expect(200).body;
    assert_eq!(all["total_count"], 7);
    assert_eq!(names(&all)[0], "room-6", "default order is desc");
    let asc = api
        .get("/api/v1/rooms?order=asc&limit=3")
        .await
        .expect(200)
        .body;
    assert_eq!(names(&asc), ["room-0", "room-1", "room-2"]);
    assert_eq!(asc["total_count"], 7);
    let off = api
        .get("/api/v1/rooms?order=asc&limit=2&offset=3")
        .await
        .expect(200)
        .body;
    assert_eq!(names(&off), ["room-3", "room-4"]);
    let after = api
        .get("/api/v1/rooms?order=asc&after=room-4")
        .await
        .expect(200)
        .body;
    assert_eq!(names(&after), ["room-5", "room-6"]);
    let after_id = api
        .get(&format!(
            "/api/v1/rooms?order=desc&limit=2&after={}",
            ids[4]
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(names(&after_id), ["room-3", "room-2"]);
    let even = api
        .get("/api/v1/rooms?tag=even&order=asc")
        .await
        .expect(200)
        .body;
    assert_eq!(even["total_count"], 4);
    assert_eq!(names(&even), ["room-0", "room-2", "room-4", "room-6"]);
    let both = api
        .get("/api/v1/rooms?tag=even&tag=odd")
        .await
        .expect(200)
        .body;
    assert_eq!(both["total_count"], 7);
    let none = api.get("/api/v1/rooms?tag=missing").await.expect(200).body;
    assert_eq!(none["total_count"], 0);
    assert_eq!(none["data"], json!([]));

    api.get("/api/v1/rooms?limit=0")
        .await
        .expect_invalid("limit");
    api.get("/api/v1/rooms?limit=101")
        .await
        .expect_invalid("limit");
    api.get("/api/v1/rooms?limit=ten")
        .await
        .expect_invalid("limit");
    api.get("/api/v1/rooms?offset=-1")
        .await
        .expect_invalid("offset");
    api.get("/api/v1/rooms?order=sideways")
        .await
        .expect_invalid("order");
    api.get("/api/v1/rooms?after=no-such-room")
        .await
        .expect_invalid("after");
    let big = api.get("/api/v1/rooms?limit=100").await.expect(200).body;
    assert_eq!(big["data"].as_array().unwrap().len(), 7);
}

/// Marks a room as having a live session, the way the media plane does.
async fn open_session(s: &Server, room_id: &str, team_id: &str) {
    let db = s.db().await;
    db.execute(
        "INSERT INTO sessions (id, team_id, room_id, started_at) VALUES ($1, $2, $3, $4)",
        &[
            &uuid::Uuid::new_v4().to_string(),
            &team_id,
            &room_id,
            &chrono::Utc::now().to_rfc3339(),
        ],
    )
    .await;
    db.close().await;
}

#[tokio::test]
async fn bulk_delete_by_tags_skips_live_rooms() {
    let s = Server::start();
    let api = s.api();
    let a = create(&api, json!({"friendly_url": "a", "tags": ["t1"]})).await;
    let b = create(&api, json!({"friendly_url": "b", "tags": ["t2", "keep"]})).await;
    let live = create(&api, json!({"friendly_url": "live-room", "tags": ["t1"]})).await;
    create(&api, json!({"friendly_url": "c", "tags": ["keep"]})).await;
    let team = s.cli(&["key", "show"]).1;
    let team_id = team
        .lines()
        .find_map(|l| l.strip_prefix("team id:"))
        .unwrap()
        .trim()
        .to_string();
    open_session(&s, live["id"].as_str().unwrap(), &team_id).await;

    let res = api
        .delete_with(
            "/api/v1/rooms/tags",
            json!({"tags": ["t1"], "delete_resources": true}),
        )
        .await
        .expect(202)
        .body;
    assert_eq!(
        res["deleted"],
        json!([{"id": a["id"], "friendly_url": "a"}])
    );
    assert_eq!(res["skipped"][0]["id"], live["id"]);
    api.get("/api/v1/rooms/a").await.expect(404);
    api.get("/api/v1/rooms/live-room").await.expect(200);
    // A room with a live session cannot be deleted on its own either.
    api.delete("/api/v1/rooms/live-room").await.expect(409);

    let res = api
        .delete_with(
            "/api/v1/rooms",
            json!({"tags": ["t2"], "delete_resources": false}),
        )
        .await
        .expect(202)
        .body;
    assert_eq!(res["deleted"][0]["id"], b["id"]);
    api.get("/api/v1/rooms/c").await.expect(200);

    api.delete_with("/api/v1/rooms/tags", json!({}))
        .await
        .expect_invalid("tags");
    api.delete_with("/api/v1/rooms", json!({"tags": []}))
        .await
        .expect_invalid("tags");
    api.delete_with(
        "/api/v1/rooms",
        json!({"tags": ["x"], "delete_resources": "yes"}),
    )
    .await
    .expect_invalid("delete_resources");
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_friendly_url() {
    let s = Server::start();
    let api = s.api();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post("/api/v1/rooms", json!({"friendly_url": "race"}))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&c| c == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&c| c == 409).count(),
        49,
        "{statuses:?}"
    );
    let list = api.get("/api/v1/rooms").await.expect(200).body;
    assert_eq!(list["total_count"], 1);
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut s = Server::start();
    let api = s.api();
    let room = create(
        &api,
        json!({"friendly_url": "keep", "tags": ["k"], "qa_enabled": true}),
    )
    .await;
    api.post(
        "/api/v1/roles",
        json!({"name": "presenter", "permissions": {"broadcast": true}}),
    )
    .await
    .expect(201);
    api.patch("/api/v1", json!({"session_length": 90}))
        .await
        .expect(200);
    s.restart();
    let api = s.api();
    let again = api.get("/api/v1/rooms/keep").await.expect(200).body;
    assert_eq!(again, room);
    let role = api.get("/api/v1/roles/presenter").await.expect(200).body;
    assert_eq!(role["permissions"]["broadcast"], true);
    assert_eq!(
        api.get("/api/v1").await.expect(200).body["session_length"],
        90
    );
}
