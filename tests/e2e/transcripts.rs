//! Transcript endpoints over HTTP: list, export (txt, json), delete, and
//! their errors. To control the rows exactly, the segments are inserted
//! into the database file directly, against a real session of a real join
//! (the transcriber itself is tested with real speech in `captions.rs`).

use convene_tests::Server;
use serde_json::Value;

use crate::api_chat::{join, room, wait_not_live};

async fn insert(s: &Server, room_id: &str, session: &str, pid: &str, text: &str, start: &str) {
    let db = s.db().await;
    let team = db
        .text("SELECT team_id FROM rooms WHERE id = $1", &[&room_id])
        .await;
    db.execute(
        "INSERT INTO transcripts (id, team_id, room_id, session_id, participant_id,
            participant_name, transcript, start_time, end_time, created_at)
         VALUES ($1, $2, $3, $4, $5, 'Ann', $6, $7, $8, $9)",
        &[
            &uuid::Uuid::new_v4().to_string(),
            &team,
            &room_id,
            &session,
            &pid,
            &text,
            &start,
            &start,
            &start,
        ],
    )
    .await;
    db.close().await;
}

#[tokio::test]
async fn transcripts_list_export_delete_and_errors() {
    let s = Server::start();
    let api = s.api();
    let r = room(&api, "spoken").await;
    let room_id = r["id"].as_str().unwrap().to_string();
    let (a, joined) = join(&s, "spoken", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let pid = joined["participant"]["id"].as_str().unwrap().to_string();
    a.leave();
    wait_not_live(&api, "spoken").await;

    // Nothing yet.
    let empty = api
        .get("/api/v1/rooms/spoken/transcripts")
        .await
        .expect(200);
    assert_eq!(empty.body["total_count"], 0);

    insert(
        &s,
        &room_id,
        &session,
        &pid,
        "three four",
        "2026-01-01T00:00:02.000000Z",
    )
    .await;
    insert(
        &s,
        &room_id,
        &session,
        &pid,
        "one two",
        "2026-01-01T00:00:01.000000Z",
    )
    .await;

    // Spoken order, the seed's fields.
    for path in [
        "/api/v1/rooms/spoken/transcripts".to_string(),
        format!("/api/v1/sessions/{session}/transcripts"),
    ] {
        let l = api.get(&path).await.expect(200);
        assert_eq!(l.body["total_count"], 2, "{path}");
        let first = &l.body["data"][0];
        assert_eq!(first["transcript"], "one two");
        assert_eq!(first["participant_name"], "Ann");
        assert_eq!(first["participant_id"], pid.as_str());
        assert_eq!(first["start_time"], "2026-01-01T00:00:01.000000Z");
        assert!(first["end_time"].is_string());
    }

    // Exports.
    let txt = api
        .get("/api/v1/rooms/spoken/transcripts/export?format=txt")
        .await
        .expect(200);
    let text = String::from_utf8(txt.raw).unwrap();
    assert_eq!(
        text,
        "[2026-01-01T00:00:01.000000Z] Ann: one two\n[2026-01-01T00:00:02.000000Z] Ann: three four\n"
    );
    let json = api
        .get(&format!(
            "/api/v1/sessions/{session}/transcripts/export?format=json"
        ))
        .await
        .expect(200);
    let parsed: Value = serde_json::from_slice(&json.raw).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 2);
    assert_eq!(parsed[1]["transcript"], "three four");

    // Bad input: clear errors, nothing changed.
    let bad = api
        .get("/api/v1/rooms/spoken/transcripts/export?format=pdf")
        .await
        .expect(422);
    assert!(bad.body["message"].is_string(), "{}", bad.body);
    api.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000/transcripts")
        .await
        .expect(404);
    api.get("/api/v1/sessions/nope/transcripts/export?format=txt")
        .await
        .expect(404);
    api.get("/api/v1/rooms/nowhere/transcripts")
        .await
        .expect(404);
    api.delete("/api/v1/rooms/nowhere/transcripts")
        .await
        .expect(404);
    // Another team sees none of it.
    let (_, key) = s.create_team("other");
    s.api_with_key(&key)
        .get("/api/v1/rooms/spoken/transcripts")
        .await
        .expect(404);
    let still = api
        .get("/api/v1/rooms/spoken/transcripts")
        .await
        .expect(200);
    assert_eq!(still.body["total_count"], 2);

    // Deletes.
    api.delete(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(204);
    let gone = api
        .get(&format!("/api/v1/sessions/{session}/transcripts"))
        .await
        .expect(200);
    assert_eq!(gone.body["total_count"], 0);
    insert(
        &s,
        &room_id,
        &session,
        &pid,
        "again",
        "2026-01-01T00:00:03.000000Z",
    )
    .await;
    api.delete("/api/v1/rooms/spoken/transcripts")
        .await
        .expect(204);
    let gone = api
        .get("/api/v1/rooms/spoken/transcripts")
        .await
        .expect(200);
    assert_eq!(gone.body["total_count"], 0);
}
