//! `GET/PATCH /api/v1`: the team's default room settings.

use convene_tests::Server;
use serde_json::json;

#[tokio::test]
async fn defaults_read_and_patch_with_and_without_slash() {
    let s = Server::start();
    let api = s.api();
    let d = api.get("/api/v1").await.expect(200).body;
    let slash = api.get("/api/v1/").await.expect(200).body;
    assert_eq!(d, slash);
    assert_eq!(d["default_role"], "attendee");
    assert_eq!(d["roles"], json!(["moderator", "speaker", "attendee"]));
    assert_eq!(d["domain"], serde_json::Value::Null);
    assert_eq!(d["default_language"], "en");
    assert!(d.as_object().unwrap().len() >= 30, "{d}");

    // The seed's example request.
    let patched = api
        .patch(
            "/api/v1",
            json!({"domain": "custom.domain.com", "default_role": "attendee", "session_length": 60, "max_participants": 100}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(patched["domain"], "custom.domain.com");
    assert_eq!(patched["session_length"], 60);
    let patched = api
        .patch(
            "/api/v1/",
            json!({"chat_enabled": false, "primary_color": "#00ff00"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(patched["chat_enabled"], false);
    assert_eq!(patched["session_length"], 60);
    assert_eq!(api.get("/api/v1").await.body, patched);

    // New rooms take the new defaults; existing ones keep theirs.
    let room = api.post("/api/v1/rooms", json!({})).await.expect(200).body;
    assert_eq!(room["session_length"], 60);
    assert_eq!(room["chat_enabled"], false);
    assert_eq!(room["primary_color"], "#00ff00");
    assert!(room.get("domain").is_none());
}

#[tokio::test]
async fn defaults_validation() {
    let s = Server::start();
    let api = s.api();
    for (body, field) in [
        (json!({"session_length": 0}), "session_length"),
        (json!({"max_participants": "100"}), "max_participants"),
        (json!({"default_role": "nobody"}), "default_role"),
        (json!({"roles": ["moderator"]}), "roles"),
        (json!({"domain": "not a domain"}), "domain"),
        (json!({"privacy": "hidden"}), "privacy"),
        (json!({"watermark_text": "§§§§"}), "watermark_text"),
        (json!({"qa_enabled": null}), "qa_enabled"),
    ] {
        api.patch("/api/v1", body).await.expect_invalid(field);
    }
    let d = api.get("/api/v1").await.expect(200).body;
    assert_eq!(d["session_length"], 1440, "a refused patch changes nothing");
}
