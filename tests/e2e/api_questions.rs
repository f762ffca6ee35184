//! Q&A over HTTP: questions, votes, answers, dismiss/reopen, live answers,
//! export, anonymity, and delivery into the live session.

use std::time::Duration;

use convene_tests::{Api, Server};
use serde_json::{Value, json};

use crate::api_chat::{join, room};

const JOHN: &str = r#"{"name": "John Doe", "external_id": "ABCDEF123"}"#;

fn john() -> Value {
    serde_json::from_str(JOHN).unwrap()
}

async fn ask(api: &Api, room: &str, body: Value) -> Value {
    api.post(&format!("/api/v1/rooms/{room}/questions"), body)
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn questions_votes_answers_and_validation() {
    let s = Server::start();
    let api = s.api();
    room(&api, "qa").await;
    let q = ask(&api, "qa", json!({"participant": john(), "question": "My question?", "anonymous": false, "breakout_id": null})).await;
    assert_eq!(q["question"], "My question?");
    assert_eq!(q["participant_name"], "John Doe");
    assert_eq!(q["external_participant_id"], "ABCDEF123");
    assert_eq!(q["status"], "open");
    assert_eq!(q["votes"], 0);
    assert_eq!(q["answers"], json!([]));
    assert!(q["session_id"].is_null());
    let id = q["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/rooms/qa/questions/{id}");

    // One failing case per field rule.
    for (body, field) in [
        (json!({"question": "q"}), "participant"),
        (
            json!({"participant": "John", "question": "q"}),
            "participant",
        ),
        (json!({"participant": {}, "question": "q"}), "participant"),
        (
            json!({"participant": {"id": "not-a-uuid"}, "question": "q"}),
            "participant.id",
        ),
        (
            json!({"participant": {"id": "00000000-0000-4000-8000-000000000000"}, "question": "q"}),
            "participant.id",
        ),
        (
            json!({"participant": {"name": ""}, "question": "q"}),
            "participant.name",
        ),
        (
            json!({"participant": {"name": "A", "external_id": ["x"]}, "question": "q"}),
            "participant.external_id",
        ),
        (json!({"participant": john()}), "question"),
        (json!({"participant": john(), "question": ""}), "question"),
        (
            json!({"participant": john(), "question": "x".repeat(2001)}),
            "question",
        ),
        (
            json!({"participant": john(), "question": "q", "anonymous": "yes"}),
            "anonymous",
        ),
        (
            json!({"participant": john(), "question": "q", "breakout_id": 7}),
            "breakout_id",
        ),
    ] {
        api.post("/api/v1/rooms/qa/questions", body)
            .await
            .expect_invalid(field);
    }
    api.post(
        "/api/v1/rooms/nope/questions",
        json!({"participant": john(), "question": "q"}),
    )
    .await
    .expect(404);

    // Update.
    let u = api.patch(&base, json!({"participant": {"id": null, "name": "John Doe"}, "question": "Updated question text"})).await.expect(200).body;
    assert_eq!(u["question"], "Updated question text");
    api.patch(&base, json!({"question": "x"}))
        .await
        .expect_invalid("participant");
    api.patch(&base, json!({"participant": john()}))
        .await
        .expect_invalid("question");
    api.patch(
        "/api/v1/rooms/qa/questions/nope",
        json!({"participant": john(), "question": "x"}),
    )
    .await
    .expect(404);

    // Dismiss / reopen.
    let d = api
        .post(&format!("{base}/dismiss"), json!({"participant": john()}))
        .await
        .expect(200)
        .body;
    assert_eq!(d["status"], "dismissed");
    api.post(&format!("{base}/dismiss"), json!({"participant": john()}))
        .await
        .expect(409);
    api.post(&format!("{base}/dismiss"), json!({}))
        .await
        .expect_invalid("participant");
    let r = api
        .post(&format!("{base}/reopen"), json!({"participant": john()}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["status"], "open");
    api.post(&format!("{base}/reopen"), json!({"participant": john()}))
        .await
        .expect(409);

    // Votes: one per participant.
    let v = api
        .post(&format!("{base}/vote"), json!({"participant": john()}))
        .await
        .expect(200)
        .body;
    assert_eq!(v["votes"], 1);
    let again = api
        .post(&format!("{base}/vote"), json!({"participant": john()}))
        .await
        .expect(409);
    assert!(
        again.body["message"]
            .as_str()
            .unwrap()
            .contains("already voted")
    );
    let v = api
        .post(
            &format!("{base}/vote"),
            json!({"participant": {"name": "Jane", "external_id": "J1"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(v["votes"], 2);
    let v = api
        .delete_with(&format!("{base}/vote"), json!({"participant": john()}))
        .await
        .expect(200)
        .body;
    assert_eq!(v["votes"], 1);
    api.delete_with(&format!("{base}/vote"), json!({"participant": john()}))
        .await
        .expect(409);
    api.post(
        "/api/v1/rooms/qa/questions/nope/vote",
        json!({"participant": john()}),
    )
    .await
    .expect(404);

    // Answers.
    let a = api
        .post(
            &format!("{base}/answers"),
            json!({"participant": {"name": "Moderator"}, "answer": "You can...", "private": false}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(a["answer"], "You can...");
    assert_eq!(a["participant_name"], "Moderator");
    assert_eq!(a["private"], false);
    let aid = a["id"].as_str().unwrap();
    let p = api
        .post(&format!("{base}/answers"), json!({"participant": {"name": "Moderator"}, "answer": "Just for you", "private": true}))
        .await
        .expect(200)
        .body;
    assert_eq!(p["private"], true);
    api.post(&format!("{base}/answers"), json!({"participant": john()}))
        .await
        .expect_invalid("answer");
    api.post(
        &format!("{base}/answers"),
        json!({"participant": john(), "answer": "x", "private": "no"}),
    )
    .await
    .expect_invalid("private");
    api.post(&format!("{base}/answers"), json!({"answer": "x"}))
        .await
        .expect_invalid("participant");
    api.post(
        "/api/v1/rooms/qa/questions/nope/answers",
        json!({"participant": john(), "answer": "x"}),
    )
    .await
    .expect(404);
    let ua = api
        .patch(
            &format!("{base}/answers/{aid}"),
            json!({"participant": {"name": "Moderator"}, "answer": "Updated answer text"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(ua["answer"], "Updated answer text");
    assert_eq!(ua["private"], false);
    api.patch(
        &format!("{base}/answers/{aid}"),
        json!({"participant": john(), "answer": ""}),
    )
    .await
    .expect_invalid("answer");
    api.patch(
        &format!("{base}/answers/nope"),
        json!({"participant": john(), "answer": "x"}),
    )
    .await
    .expect(404);
    let got = api.get("/api/v1/rooms/qa/questions").await.expect(200).body;
    assert_eq!(got["total_count"], 1);
    assert_eq!(got["data"][0]["answers"].as_array().unwrap().len(), 2);
    api.delete_with(
        &format!("{base}/answers/{}", p["id"].as_str().unwrap()),
        json!({"participant": john()}),
    )
    .await
    .expect(204);
    api.delete_with(
        &format!("{base}/answers/{}", p["id"].as_str().unwrap()),
        json!({"participant": john()}),
    )
    .await
    .expect(404);
    api.delete_with(&format!("{base}/answers/{aid}"), json!({}))
        .await
        .expect_invalid("participant");

    // Live answers: start -> stop; cancel only while active.
    let st = api
        .post(
            &format!("{base}/live-answers/start"),
            json!({"participant": {"name": "Host"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(st["live_answer"]["status"], "active");
    assert_eq!(st["live_answer"]["participant_name"], "Host");
    api.post(
        &format!("{base}/live-answers/start"),
        json!({"participant": {"name": "Host"}}),
    )
    .await
    .expect(409);
    let sp = api
        .post(
            &format!("{base}/live-answers/stop"),
            json!({"participant": {"name": "Host"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(sp["live_answer"]["status"], "done");
    assert!(sp["live_answer"]["ended_at"].is_string());
    api.post(
        &format!("{base}/live-answers/stop"),
        json!({"participant": {"name": "Host"}}),
    )
    .await
    .expect(409);
    api.post(
        &format!("{base}/live-answers/cancel"),
        json!({"participant": {"name": "Host"}}),
    )
    .await
    .expect(409);
    api.post(
        &format!("{base}/live-answers/start"),
        json!({"participant": {"name": "Host"}}),
    )
    .await
    .expect(200);
    let c = api
        .post(
            &format!("{base}/live-answers/cancel"),
            json!({"participant": {"name": "Host"}}),
        )
        .await
        .expect(200)
        .body;
    assert!(c["live_answer"].is_null());
    api.post(&format!("{base}/live-answers/start"), json!({}))
        .await
        .expect_invalid("participant");

    // Pagination.
    ask(
        &api,
        "qa",
        json!({"participant": john(), "question": "Second?"}),
    )
    .await;
    let l = api
        .get("/api/v1/rooms/qa/questions?order=asc&limit=1")
        .await
        .expect(200)
        .body;
    assert_eq!(l["total_count"], 2);
    assert_eq!(l["data"][0]["id"], id.as_str());
    let l = api
        .get(&format!("/api/v1/rooms/qa/questions?order=asc&after={id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(l["data"][0]["question"], "Second?");
    api.get("/api/v1/rooms/qa/questions?after=nope")
        .await
        .expect_invalid("after");

    // Delete one (needs the actor), then all.
    api.delete(&base).await.expect_invalid("participant");
    api.delete_with(&base, json!({"participant": john()}))
        .await
        .expect(204);
    api.delete_with(&base, json!({"participant": john()}))
        .await
        .expect(404);
    api.delete("/api/v1/rooms/qa/questions").await.expect(204);
    assert_eq!(
        api.get("/api/v1/rooms/qa/questions").await.body["total_count"],
        0
    );
}

#[tokio::test]
async fn anonymous_questions_and_exports() {
    let s = Server::start();
    let api = s.api();
    room(&api, "anon").await;
    let q = ask(&api, "anon", json!({"participant": {"name": "Secret Sam", "external_id": "sam-1"}, "question": "Is this anonymous?", "anonymous": true})).await;
    assert_eq!(q["participant_name"], "Anonymous");
    assert!(q["participant_id"].is_null());
    assert!(q["external_participant_id"].is_null());
    let id = q["id"].as_str().unwrap();
    api.post(
        &format!("/api/v1/rooms/anon/questions/{id}/answers"),
        json!({"participant": {"name": "Mod"}, "answer": "Yes, it is", "private": true}),
    )
    .await
    .expect(200);
    ask(
        &api,
        "anon",
        json!({"participant": {"name": "Open Olga"}, "question": "Visible?"}),
    )
    .await;

    let list = api.get("/api/v1/rooms/anon/questions").await.expect(200);
    assert!(
        !String::from_utf8_lossy(&list.raw).contains("Sam"),
        "{}",
        list.body
    );

    let txt = api
        .get("/api/v1/rooms/anon/questions/export?format=txt")
        .await
        .expect(200);
    assert!(
        txt.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        txt.header("content-disposition").unwrap(),
        "attachment; filename=\"questions-anon.txt\""
    );
    let text = String::from_utf8(txt.raw).unwrap();
    assert!(!text.contains("Sam"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("Q: Anonymous: Is this anonymous? (0 votes)"),
        "{text}"
    );
    assert!(lines[1].contains("A: Mod (private): Yes, it is"), "{text}");
    assert!(lines[2].contains("Q: Open Olga: Visible?"), "{text}");
    let js = api
        .get("/api/v1/rooms/anon/questions/export?format=json")
        .await
        .expect(200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(!String::from_utf8_lossy(&js.raw).contains("Sam"));
    let arr: Vec<Value> = serde_json::from_slice(&js.raw).unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["participant_name"], "Anonymous");
    api.get("/api/v1/rooms/anon/questions/export?format=csv")
        .await
        .expect_invalid("format");
    api.get("/api/v1/rooms/nope/questions/export")
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_live_session() {
    let s = Server::start();
    let api = s.api();
    room(&api, "liveqa").await;
    let (mut ann, joined) = join(&s, "liveqa", "Ann").await;
    let ann_id = joined["participant"]["id"].as_str().unwrap().to_string();
    let session = joined["session_id"].as_str().unwrap().to_string();

    // Asked as Ann (by participant id), anonymously.
    let q = ask(
        &api,
        "liveqa",
        json!({"participant": {"id": ann_id}, "question": "Who am I?", "anonymous": true}),
    )
    .await;
    assert_eq!(q["session_id"], session.as_str());
    let id = q["id"].as_str().unwrap().to_string();
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "question_created")
        .await;
    assert_eq!(ev["question"]["id"], id.as_str());
    assert_eq!(ev["question"]["participant_name"], "Anonymous");
    assert!(
        !ev.to_string().contains(&ann_id),
        "anonymous asker leaked: {ev}"
    );

    // A private answer is not broadcast; a public one is.
    api.post(
        &format!("/api/v1/rooms/liveqa/questions/{id}/answers"),
        json!({"participant": {"name": "Mod"}, "answer": "psst", "private": true}),
    )
    .await
    .expect(200);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "question_updated")
        .await;
    assert_eq!(ev["question"]["answers"], json!([]));
    api.post(
        &format!("/api/v1/rooms/liveqa/questions/{id}/answers"),
        json!({"participant": {"name": "Mod"}, "answer": "Everyone hears this"}),
    )
    .await
    .expect(200);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "question_updated")
        .await;
    assert_eq!(
        ev["question"]["answers"][0]["answer"],
        "Everyone hears this"
    );
    assert!(!ev.to_string().contains("psst"));

    api.post(
        &format!("/api/v1/rooms/liveqa/questions/{id}/dismiss"),
        json!({"participant": {"id": ann_id}}),
    )
    .await
    .expect(200);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| {
            v["type"] == "question_updated" && v["question"]["status"] == "dismissed"
        })
        .await;
    assert_eq!(ev["question"]["id"], id.as_str());

    // Votes by participant id: one per participant.
    api.post(
        &format!("/api/v1/rooms/liveqa/questions/{id}/vote"),
        json!({"participant": {"id": ann_id}}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/v1/rooms/liveqa/questions/{id}/vote"),
        json!({"participant": {"id": ann_id}}),
    )
    .await
    .expect(409);

    api.delete_with(
        &format!("/api/v1/rooms/liveqa/questions/{id}"),
        json!({"participant": {"id": ann_id}}),
    )
    .await
    .expect(204);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "question_deleted")
        .await;
    assert_eq!(ev["question_id"], id.as_str());

    // Session delete.
    ask(
        &api,
        "liveqa",
        json!({"participant": john(), "question": "Later?"}),
    )
    .await;
    api.delete("/api/v1/sessions/00000000-0000-4000-8000-000000000000/questions")
        .await
        .expect(404);
    api.delete(&format!("/api/v1/sessions/{session}/questions"))
        .await
        .expect(204);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| {
            v["type"] == "questions_cleared"
        })
        .await;
    assert_eq!(ev["session_id"], session.as_str());
    assert_eq!(
        api.get("/api/v1/rooms/liveqa/questions").await.body["total_count"],
        0
    );
}
