//! Sessions, participants and live rooms over HTTP, with participants
//! joining through the real signaling WebSocket, and statistics over
//! fixture rows written straight into the server's SQLite file.

use std::time::Duration;

use convene_tests::{Api, KEY, Server, join};
use serde_json::{Value, json};

/// Polls `path` until `pred` holds on the body (the signaling layer writes
/// asynchronously).
async fn eventually(api: &Api, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let r = api.get(path).await.expect(200);
        if pred(&r.body) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{path} never satisfied the condition: {}",
        api.get(path).await.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_participants_follow_joins_and_leaves() {
    let s = Server::start();
    let api = s.api();
    let room = api
        .post("/api/v1/rooms", json!({"friendly_url": "standup"}))
        .await
        .expect(200)
        .body;
    let room_id = room["id"].as_str().unwrap().to_string();
    let token = api
        .post(
            "/api/v1/rooms/standup/token",
            json!({"u": "Alice", "ud": "ext-alice", "role": "moderator"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Nothing yet.
    let r = api.get("/api/v1/sessions").await.expect(200);
    assert_eq!(r.body, json!({"total_count": 0, "data": []}));
    let r = api.get("/api/v1/rooms/standup/live").await.expect(200);
    assert_eq!(r.body["live_participants"], 0);
    assert_eq!(r.body["session_id"], Value::Null);

    let (mut alice, a_joined) = join(&s, "standup", "ignored", Some(token)).await;
    let (bob, b_joined) = join(&s, "standup", "Bob", None).await;
    let session_id = a_joined["session_id"].as_str().unwrap().to_string();
    assert_eq!(b_joined["session_id"], session_id.as_str());
    let alice_id = a_joined["participant"]["id"].as_str().unwrap().to_string();
    let bob_id = b_joined["participant"]["id"].as_str().unwrap().to_string();

    let list = api.get("/api/v1/sessions").await.expect(200).body;
    assert_eq!(list["total_count"], 1);
    let sess = &list["data"][0];
    assert_eq!(sess["id"], session_id.as_str());
    assert_eq!(sess["room_id"], room_id.as_str());
    assert_eq!(sess["room_friendly_url"], "standup");
    assert_eq!(sess["live"], true);
    assert_eq!(sess["end_time"], Value::Null);
    assert_eq!(sess["participants_live"], 2);
    assert!(sess["start_time"].as_str().unwrap().ends_with('Z'));

    let one = api
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(one["participants_total"], 2);
    let by_room = api.get("/api/v1/rooms/standup/sessions").await.expect(200);
    assert_eq!(by_room.body["total_count"], 1);
    let by_room_id = api
        .get(&format!("/api/v1/sessions?room_id={room_id}&live=true"))
        .await
        .expect(200);
    assert_eq!(by_room_id.body["total_count"], 1);

    let parts = api
        .get(&format!(
            "/api/v1/sessions/{session_id}/participants?order=asc"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(parts["total_count"], 2);
    let a = &parts["data"][0];
    assert_eq!(a["id"], alice_id.as_str());
    assert_eq!(a["name"], "Alice", "the token's name wins");
    assert_eq!(a["external_id"], "ext-alice");
    assert_eq!(a["role"], "moderator");
    assert_eq!(a["live"], true);
    assert_eq!(a["leave_time"], Value::Null);
    assert_eq!(a["device_type"], "bot");
    assert_eq!(parts["data"][1]["name"], "Bob");
    assert_eq!(
        parts["data"][1]["role"], "attendee",
        "the room's default_role"
    );

    let p = api
        .get(&format!("/api/v1/participants/{alice_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(p["session_id"], session_id.as_str());
    let p = api.get("/api/v1/participants/ext-alice").await.expect(200);
    assert_eq!(p.body["id"], alice_id.as_str(), "found by external id");
    let ps = api
        .get("/api/v1/participants/ext-alice/sessions")
        .await
        .expect(200);
    assert_eq!(ps.body["total_count"], 1);
    let live = api.get("/api/v1/participants?live=true").await.expect(200);
    assert_eq!(live.body["total_count"], 2);
    let rp = api
        .get(&format!(
            "/api/v1/rooms/standup/participants?session_id={session_id}"
        ))
        .await
        .expect(200);
    assert_eq!(rp.body["total_count"], 2);

    // Live views.
    let lr = api.get("/api/v1/rooms/live").await.expect(200).body;
    assert_eq!(lr["total_count"], 1);
    assert_eq!(lr["data"][0]["id"], room_id.as_str());
    assert_eq!(lr["data"][0]["live_participants"], 2);
    let lrp = api
        .get("/api/v1/rooms/live/participants")
        .await
        .expect(200)
        .body;
    let names: Vec<&str> = lrp["data"][0]["live_participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "Bob"]);
    let one = api.get("/api/v1/rooms/standup/live").await.expect(200).body;
    assert_eq!(one["session_id"], session_id.as_str());
    assert_eq!(one["live_participants"], 2);
    let one = api
        .get(&format!("/api/v1/rooms/{room_id}/live/participants"))
        .await
        .expect(200)
        .body;
    assert_eq!(one["live_participants"][1]["id"], bob_id.as_str());

    // Bob leaves: his participation ends with a time and a reason.
    bob.leave();
    let b = eventually(&api, &format!("/api/v1/participants/{bob_id}"), |b| {
        b["live"] == false
    })
    .await;
    assert_eq!(b["leave_reason"], "left");
    assert!(b["leave_time"].as_str().unwrap() >= b["join_time"].as_str().unwrap());
    let live = api.get("/api/v1/participants?live=true").await.expect(200);
    assert_eq!(live.body["total_count"], 1);
    let ended = api.get("/api/v1/participants?live=false").await.expect(200);
    assert_eq!(ended.body["total_count"], 1);

    // End the session over REST: Alice is told and disconnected.
    api.post(&format!("/api/v1/sessions/{session_id}/end"), json!({}))
        .await
        .expect(204);
    let err = alice
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "error")
        .await;
    assert_eq!(err["code"], "SESSION_ENDED");
    let one = api
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(one["live"], false);
    assert_eq!(one["end_reason"], "ended_by_api");
    assert!(one["end_time"].is_string());
    api.post(&format!("/api/v1/sessions/{session_id}/end"), json!({}))
        .await
        .expect(409);
    let stats = api
        .get(&format!("/api/v1/sessions/{session_id}/statistics"))
        .await
        .expect(200)
        .body;
    assert_eq!(stats["participants_total"], 2);
    assert_eq!(stats["peak_participants"], 2);
    assert_eq!(stats["live"], false);
    assert_eq!(api.get("/api/v1/rooms/live").await.body["total_count"], 0);
    let a = api
        .get(&format!("/api/v1/participants/{alice_id}"))
        .await
        .body;
    assert_eq!(a["leave_reason"], "session_ended");

    // Filters and their validation.
    assert_eq!(
        api.get("/api/v1/sessions?live=false").await.body["total_count"],
        1
    );
    assert_eq!(
        api.get("/api/v1/sessions?live=true").await.body["total_count"],
        0
    );
    assert_eq!(
        api.get("/api/v1/sessions?date_start=2020-01-01").await.body["total_count"],
        1
    );
    assert_eq!(
        api.get("/api/v1/sessions?date_end=2020-01-01").await.body["total_count"],
        0
    );
    api.get("/api/v1/sessions?live=maybe")
        .await
        .expect_invalid("live");
    api.get("/api/v1/sessions?date_start=yesterday")
        .await
        .expect_invalid("date_start");
    api.get("/api/v1/participants?date_start=2026-02-01&date_end=2026-01-01")
        .await
        .expect_invalid("date_end");
    api.get("/api/v1/sessions?limit=0")
        .await
        .expect_invalid("limit");
    api.get("/api/v1/sessions?room_id=nope").await.expect(404);
    api.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000")
        .await
        .expect(404);
    api.get("/api/v1/participants/nobody").await.expect(404);
    api.post("/api/v1/sessions/nope/end", json!({}))
        .await
        .expect(404);

    // Another team sees none of it.
    let (_, other_key) = s.create_team("Other");
    let other = s.api_with_key(&other_key);
    assert_eq!(other.get("/api/v1/sessions").await.body["total_count"], 0);
    other
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await
        .expect(404);
    other
        .get(&format!("/api/v1/participants/{alice_id}"))
        .await
        .expect(404);
    other
        .post(&format!("/api/v1/sessions/{session_id}/end"), json!({}))
        .await
        .expect(404);
    assert_ne!(other_key, KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_statistics_match_hand_computed_values() {
    let s = Server::start();
    let api = s.api();
    let room = api
        .post("/api/v1/rooms", json!({"friendly_url": "fixture"}))
        .await
        .expect(200)
        .body;
    let room_id = room["id"].as_str().unwrap();
    // Fixture: a 60-minute session; A 10:00-10:30, B 10:10-10:20,
    // C 10:15-10:50 (C is A again on another device: same external id).
    let db = s.db().await;
    let team_id = db
        .text("SELECT team_id FROM rooms WHERE id = $1", &[&room_id])
        .await;
    db.execute(
        "INSERT INTO sessions (id, team_id, room_id, started_at, ended_at, end_reason,
                               packets_in, bytes_in, packets_out, bytes_out)
         VALUES ('sess-1', $1, $2, '2026-03-02T10:00:00.000000Z', '2026-03-02T11:00:00.000000Z',
                 'empty', 1000, 800000, 2000, 1600000)",
        &[&team_id, &room_id],
    )
    .await;
    for (id, ext, from, to) in [
        ("pa", Some("x"), "10:00", "10:30"),
        ("pb", None, "10:10", "10:20"),
        ("pc", Some("x"), "10:15", "10:50"),
    ] {
        db.execute(
            "INSERT INTO participants (id, team_id, room_id, session_id, name, external_id, role,
                                       joined_at, left_at, leave_reason)
             VALUES ($1, $2, $3, 'sess-1', $4, $5, 'speaker', $6, $7, 'left')",
            &[
                &id,
                &team_id,
                &room_id,
                &id.to_uppercase(),
                &ext,
                &format!("2026-03-02T{from}:00.000000Z"),
                &format!("2026-03-02T{to}:00.000000Z"),
            ],
        )
        .await;
    }
    for i in 0..3 {
        db.execute(
            "INSERT INTO chat_messages (id, team_id, room_id, session_id, participant_id,
                                        participant_name, message, created_at)
             VALUES ($1, $2, $3, 'sess-1', 'pa', 'PA', 'hi', '2026-03-02T10:05:00.000000Z')",
            &[&format!("m{i}"), &team_id, &room_id],
        )
        .await;
    }
    db.close().await;

    let st = api
        .get("/api/v1/sessions/sess-1/statistics")
        .await
        .expect(200)
        .body;
    assert_eq!(st["duration"], 3600);
    assert_eq!(st["participants_total"], 3);
    assert_eq!(st["participants_unique"], 2);
    assert_eq!(st["peak_participants"], 3, "10:15-10:20 all three are in");
    assert_eq!(st["participation_minutes"], 75.0);
    assert_eq!(st["average_minutes_per_participant"], 25.0);
    assert_eq!(
        st["media"],
        json!({"packets_in": 1000, "bytes_in": 800000, "packets_out": 2000, "bytes_out": 1600000})
    );
    assert_eq!(st["chat_messages"], 3);
    assert_eq!(st["questions"], 0);
    let sess = api.get("/api/v1/sessions/sess-1").await.expect(200).body;
    assert_eq!(sess["session_duration"], 3600);
    assert_eq!(sess["live"], false);
    let pb = api.get("/api/v1/participants/pb").await.expect(200).body;
    assert_eq!(pb["duration"], 600);
    // Date filters on participants: joined on 2026-03-02.
    let day = api
        .get("/api/v1/participants?date_start=2026-03-02&date_end=2026-03-02")
        .await
        .expect(200);
    assert_eq!(day.body["total_count"], 3);
    let later = api
        .get("/api/v1/participants?date_start=2026-03-02T10:12:00Z")
        .await
        .expect(200);
    assert_eq!(later.body["total_count"], 1);

    // Session deletes: later features' data (none yet) and everything.
    for what in ["recordings", "transcripts", "summaries"] {
        api.delete(&format!("/api/v1/sessions/sess-1/{what}"))
            .await
            .expect(204);
    }
    api.delete("/api/v1/sessions/nope/recordings")
        .await
        .expect(404);
    api.delete_with(
        "/api/v1/sessions/sess-1/resources",
        json!({"delete_history": "yes"}),
    )
    .await
    .expect_invalid("delete_history");
    api.delete_with(
        "/api/v1/sessions/sess-1/resources",
        json!({"delete_history": true}),
    )
    .await
    .expect(204);
    let st = api
        .get("/api/v1/sessions/sess-1/statistics")
        .await
        .expect(200)
        .body;
    assert_eq!(st["chat_messages"], 0);
    assert_eq!(
        st["participants_total"], 3,
        "participations stay, anonymised"
    );
    let pa = api.get("/api/v1/participants/pa").await.expect(200).body;
    assert_eq!(pa["name"], "Anonymous");
    assert_eq!(pa["external_id"], Value::Null);
    api.get("/api/v1/participants/x").await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_media_records_its_bytes() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "bytes"}))
        .await
        .expect(200);
    let token = api
        .post(
            "/api/v1/rooms/bytes/token",
            json!({"u": "Alice", "role": "speaker"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut alice, joined) = join(&s, "bytes", "Alice", Some(token)).await;
    let session_id = joined["session_id"].as_str().unwrap().to_string();
    alice.publish();
    alice.wait_type("answer").await;
    let (mut bob, _) = join(&s, "bytes", "Bob", None).await;
    bob.wait_rtp(str0m::media::MediaKind::Video, 30, Duration::from_secs(20))
        .await;
    // Live: counted from the running room.
    let st = api
        .get(&format!("/api/v1/sessions/{session_id}/statistics"))
        .await
        .expect(200)
        .body;
    assert!(st["media"]["bytes_in"].as_u64().unwrap() > 0, "{st}");
    assert!(st["media"]["bytes_out"].as_u64().unwrap() > 0, "{st}");
    alice.leave();
    bob.leave();
    let st = eventually(
        &api,
        &format!("/api/v1/sessions/{session_id}/statistics"),
        |b| b["live"] == false,
    )
    .await;
    // Ended: stored with the session.
    assert!(st["media"]["packets_in"].as_u64().unwrap() >= 30, "{st}");
    assert!(st["media"]["bytes_out"].as_u64().unwrap() > 0, "{st}");
}
