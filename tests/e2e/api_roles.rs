//! Roles and permissions over HTTP.

use convene_tests::Server;
use serde_json::{Value, json};

#[tokio::test]
async fn builtin_roles_and_permission_names() {
    let s = Server::start();
    let api = s.api();
    let perms = api.get("/api/v1/permissions").await.expect(200).body;
    let perms: Vec<&str> = perms
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in [
        "broadcast",
        "screenshare",
        "chat",
        "raise_hand",
        "recording",
        "emoji_reactions",
        "mute_others",
        "remove_participants",
        "manage_polls",
        "manage_qa",
    ] {
        assert!(perms.contains(&p), "missing permission {p}");
    }
    let list = api.get("/api/v1/roles?order=asc").await.expect(200).body;
    assert_eq!(list["total_count"], 3);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["moderator", "speaker", "attendee"]);
    let moderator = &list["data"][0];
    assert_eq!(moderator["builtin"], true);
    for p in &perms {
        assert_eq!(moderator["permissions"][p], true, "moderator lacks {p}");
    }
    let speaker = api.get("/api/v1/roles/speaker").await.expect(200).body;
    assert_eq!(speaker["permissions"]["broadcast"], true);
    assert_eq!(speaker["permissions"]["remove_participants"], false);
    let attendee = api.get("/api/v1/roles/attendee").await.expect(200).body;
    assert_eq!(attendee["permissions"]["broadcast"], false);
    assert_eq!(attendee["permissions"]["chat"], true);
    // By id too.
    let by_id = api
        .get(&format!(
            "/api/v1/roles/{}",
            speaker["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(by_id, speaker);
    api.get("/api/v1/roles/nope").await.expect(404);
    // Paged.
    let page = api
        .get("/api/v1/roles?order=asc&limit=1&offset=1")
        .await
        .expect(200)
        .body;
    assert_eq!(page["data"][0]["name"], "speaker");
    assert_eq!(page["total_count"], 3);
    let after = api
        .get("/api/v1/roles?order=asc&after=speaker")
        .await
        .expect(200)
        .body;
    assert_eq!(after["data"][0]["name"], "attendee");
}

#[tokio::test]
async fn custom_role_lifecycle() {
    let s = Server::start();
    let api = s.api();
    let created = api
        .post(
            "/api/v1/roles",
            json!({
                "name": "presenter",
                "display_name": "Presenter",
                "permissions": {
                    "broadcast": true,
                    "screenshare": true,
                    "chat": true,
                    "raise_hand": true,
                    "recording": false,
                    "emoji_reactions": true
                }
            }),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(created["name"], "presenter");
    assert_eq!(created["display_name"], "Presenter");
    assert_eq!(created["builtin"], false);
    assert_eq!(created["permissions"]["screenshare"], true);
    assert_eq!(created["permissions"]["mute_others"], false);

    let dup = api
        .post("/api/v1/roles", json!({"name": "presenter"}))
        .await
        .expect(409);
    assert!(
        dup.body["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    let patched = api
        .patch(
            "/api/v1/roles/presenter",
            json!({"permissions": {"recording": true}, "display_name": "Lead"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(patched["permissions"]["recording"], true);
    assert_eq!(patched["permissions"]["broadcast"], true);
    assert_eq!(patched["display_name"], "Lead");

    // Use it in a room: it cannot be deleted or renamed while in use.
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "webinar", "roles": ["moderator", "presenter"], "default_role": "presenter"}),
    )
    .await
    .expect(200);
    let res = api.delete("/api/v1/roles/presenter").await.expect(409);
    assert!(
        res.body["message"].as_str().unwrap().contains("in use"),
        "{}",
        res.body
    );
    api.patch("/api/v1/roles/presenter", json!({"name": "host"}))
        .await
        .expect(409);
    api.delete("/api/v1/rooms/webinar").await.expect(204);
    api.patch("/api/v1/roles/presenter", json!({"name": "host"}))
        .await
        .expect(200);
    let res = api.delete("/api/v1/roles/host").await.expect(204);
    assert!(res.raw.is_empty());
    api.get("/api/v1/roles/host").await.expect(404);
}

#[tokio::test]
async fn builtin_roles_cannot_be_deleted_and_defaults_pin_roles() {
    let s = Server::start();
    let api = s.api();
    api.delete("/api/v1/roles/attendee").await.expect(409);
    api.patch("/api/v1/roles/moderator", json!({"name": "boss"}))
        .await
        .expect(409);
    // A custom role named in the team defaults is in use too.
    api.post("/api/v1/roles", json!({"name": "guest"}))
        .await
        .expect(201);
    api.patch(
        "/api/v1",
        json!({"roles": ["moderator", "guest"], "default_role": "guest"}),
    )
    .await
    .expect(200);
    api.delete("/api/v1/roles/guest").await.expect(409);
}

#[tokio::test]
async fn role_validation() {
    let s = Server::start();
    let api = s.api();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "Has Space"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (
            json!({"name": "ok", "permissions": {"fly": true}}),
            "permissions",
        ),
        (
            json!({"name": "ok", "permissions": {"chat": "yes"}}),
            "permissions",
        ),
        (
            json!({"name": "ok", "permissions": ["chat"]}),
            "permissions",
        ),
        (json!({"name": "ok", "display_name": ""}), "display_name"),
        (json!({"name": "ok", "display_name": 3}), "display_name"),
    ];
    for (body, field) in cases {
        api.post("/api/v1/roles", body).await.expect_invalid(field);
    }
    api.patch("/api/v1/roles/speaker", json!({"permissions": {"chat": 1}}))
        .await
        .expect_invalid("permissions");
    api.patch("/api/v1/roles/nope", json!({})).await.expect(404);
    api.delete("/api/v1/roles/nope").await.expect(404);
}
