//! Polls over HTTP: CRUD and validation, results and anonymity, export,
//! publishing results into a live session, CSV template and import.

use std::time::Duration;

use convene_tests::{Api, Server};
use serde_json::{Value, json};

use crate::api_chat::{join, room};

/// (participant id, name, option ids, free text) of one vote.
type Vote<'a> = (&'a str, &'a str, Option<Vec<&'a str>>, Option<&'a str>);

/// Simulates the signaling layer: launches the poll in `session` and records votes.
async fn launch_and_vote(s: &Server, poll: &str, session: Option<&str>, votes: &[Vote<'_>]) {
    let db = s.db().await;
    db.execute(
        "UPDATE polls SET status = 'launched', session_id = $1 WHERE id = $2",
        &[&session, &poll],
    )
    .await;
    for (pid, name, options, text) in votes {
        let options = options.as_ref().map(|o| serde_json::to_string(o).unwrap());
        db.execute(
            "INSERT INTO poll_votes (poll_id, room_id, session_id, participant_id, participant_name,
                                     option_ids, answer_text, created_at)
             SELECT id, room_id, $1, $2, $3, $4, $5, '2026-01-01T00:00:00.000000Z' FROM polls WHERE id = $6",
            &[&session, pid, name, &options, text, &poll],
        )
        .await;
    }
    db.close().await;
}

async fn create(api: &Api, room: &str, body: Value) -> Value {
    api.post(&format!("/api/v1/rooms/{room}/polls"), body)
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn create_read_update_delete_and_validation() {
    let s = Server::start();
    let api = s.api();
    room(&api, "pollroom").await;
    let p = create(
        &api,
        "pollroom",
        json!({"question": "What topic should we cover next?", "type": "single", "anonymous": true,
               "options": [{"id": "opt-a", "label": "API Design"}, {"label": "Security"}, {"text": "Performance"}]}),
    )
    .await;
    assert_eq!(p["status"], "draft");
    assert_eq!(p["type"], "single");
    assert_eq!(p["anonymous"], true);
    assert_eq!(p["show_results"], true);
    assert_eq!(
        p["options"][0],
        json!({"id": "opt-a", "label": "API Design"})
    );
    assert_eq!(p["options"][2]["label"], "Performance");
    assert!(uuid::Uuid::parse_str(p["options"][1]["id"].as_str().unwrap()).is_ok());
    chrono::DateTime::parse_from_rfc3339(p["created_at"].as_str().unwrap()).unwrap();
    let id = p["id"].as_str().unwrap();

    // Deprecated `multiple` boolean, `show_results`, free polls.
    let m = create(
        &api,
        "pollroom",
        json!({"question": "Pick any", "multiple": true, "show_results": false, "options": ["a", "b"]}),
    )
    .await;
    assert_eq!(m["type"], "multiple");
    assert_eq!(m["multiple"], true);
    assert_eq!(m["show_results"], false);
    let f = create(
        &api,
        "pollroom",
        json!({"question": "Say something", "type": "free"}),
    )
    .await;
    assert_eq!(f["options"], json!([]));

    // One failing case per constraint.
    let bad = |body: Value| {
        let api = api.clone();
        async move { api.post("/api/v1/rooms/pollroom/polls", body).await }
    };
    bad(json!({"type": "single", "options": ["a", "b"]}))
        .await
        .expect_invalid("question");
    bad(json!({"question": "", "options": ["a", "b"]}))
        .await
        .expect_invalid("question");
    bad(json!({"question": "x".repeat(1001), "options": ["a", "b"]}))
        .await
        .expect_invalid("question");
    bad(json!({"question": "q", "type": "ranked", "options": ["a", "b"]}))
        .await
        .expect_invalid("type");
    bad(json!({"question": "q", "options": ["a"]}))
        .await
        .expect_invalid("options");
    bad(json!({"question": "q", "options": "a,b"}))
        .await
        .expect_invalid("options");
    bad(json!({"question": "q", "type": "free", "options": ["a"]}))
        .await
        .expect_invalid("options");
    bad(json!({"question": "q", "options": [{"label": "a"}, {"nothing": 1}]}))
        .await
        .expect_invalid("options.1.label");
    bad(
        json!({"question": "q", "options": [{"id": "x", "label": "a"}, {"id": "x", "label": "b"}]}),
    )
    .await
    .expect_invalid("options.1.id");
    bad(json!({"question": "q", "options": ["a", "b"], "anonymous": "yes"}))
        .await
        .expect_invalid("anonymous");
    bad(json!({"question": "q", "options": ["a", "b"], "show_results": 1}))
        .await
        .expect_invalid("show_results");
    bad(json!({"question": "q", "options": ["a", "b"], "multiple": "no"}))
        .await
        .expect_invalid("multiple");

    // Get, patch, list, delete.
    let got = api
        .get(&format!("/api/v1/rooms/pollroom/polls/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(got, p);
    let patched = api
        .patch(
            &format!("/api/v1/rooms/pollroom/polls/{id}"),
            json!({"question": "Next topic?", "type": "multiple"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(patched["question"], "Next topic?");
    assert_eq!(patched["type"], "multiple");
    assert_eq!(patched["options"], p["options"]);
    api.patch(
        &format!("/api/v1/rooms/pollroom/polls/{id}"),
        json!({"options": ["only"]}),
    )
    .await
    .expect_invalid("options");
    api.get("/api/v1/rooms/pollroom/polls/nope")
        .await
        .expect(404);
    api.patch("/api/v1/rooms/pollroom/polls/nope", json!({}))
        .await
        .expect(404);

    let list = api
        .get("/api/v1/rooms/pollroom/polls?order=asc&limit=2")
        .await
        .expect(200)
        .body;
    assert_eq!(list["total_count"], 3);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0]["id"], id);
    let after = api
        .get(&format!(
            "/api/v1/rooms/pollroom/polls?order=asc&after={id}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(after["data"][0]["id"], m["id"]);
    api.get("/api/v1/rooms/pollroom/polls?after=zzz")
        .await
        .expect_invalid("after");
    api.get("/api/v1/rooms/pollroom/polls?order=up")
        .await
        .expect_invalid("order");

    // A launched poll only takes show_results.
    launch_and_vote(&s, m["id"].as_str().unwrap(), None, &[]).await;
    api.patch(
        &format!("/api/v1/rooms/pollroom/polls/{}", m["id"].as_str().unwrap()),
        json!({"question": "changed"}),
    )
    .await
    .expect(409);
    let shown = api
        .patch(
            &format!("/api/v1/rooms/pollroom/polls/{}", m["id"].as_str().unwrap()),
            json!({"show_results": true}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(shown["show_results"], true);

    api.delete(&format!("/api/v1/rooms/pollroom/polls/{id}"))
        .await
        .expect(204);
    api.delete(&format!("/api/v1/rooms/pollroom/polls/{id}"))
        .await
        .expect(404);
    assert_eq!(
        api.get("/api/v1/rooms/pollroom/polls").await.body["total_count"],
        2
    );
    api.delete("/api/v1/rooms/pollroom/polls").await.expect(204);
    assert_eq!(
        api.get("/api/v1/rooms/pollroom/polls").await.body["total_count"],
        0
    );
    api.get("/api/v1/rooms/nope/polls").await.expect(404);
}

#[tokio::test]
async fn results_export_and_anonymity() {
    let s = Server::start();
    let api = s.api();
    room(&api, "res").await;
    let named = create(
        &api,
        "res",
        json!({"question": "Best?", "options": [{"label": "=HYPERLINK(\"x\")"}, {"label": "B"}]}),
    )
    .await;
    let anon = create(&api, "res", json!({"question": "Secret?", "type": "multiple", "anonymous": true, "options": ["X", "Y", "Z"]})).await;
    let free = create(
        &api,
        "res",
        json!({"question": "Thoughts?", "type": "free", "anonymous": false}),
    )
    .await;
    let oid = |p: &Value, i: usize| p["options"][i]["id"].as_str().unwrap().to_string();
    let (n0, a0, a2) = (oid(&named, 0), oid(&anon, 0), oid(&anon, 2));
    launch_and_vote(
        &s,
        named["id"].as_str().unwrap(),
        None,
        &[
            ("p1", "Ann", Some(vec![&n0]), None),
            ("p2", "Bob", Some(vec![&n0]), None),
        ],
    )
    .await;
    launch_and_vote(
        &s,
        anon["id"].as_str().unwrap(),
        None,
        &[
            ("p1", "Ann", Some(vec![&a0, &a2]), None),
            ("p2", "Bob", Some(vec![&a2]), None),
        ],
    )
    .await;
    launch_and_vote(
        &s,
        free["id"].as_str().unwrap(),
        None,
        &[("p1", "Ann", None, Some("Great session"))],
    )
    .await;

    let r = api
        .get(&format!(
            "/api/v1/rooms/res/polls/{}/results",
            named["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(r["total_votes"], 2);
    assert_eq!(r["options"][0]["votes"], 2);
    assert_eq!(r["options"][1]["votes"], 0);
    assert_eq!(r["options"][0]["voters"][1]["name"], "Bob");
    let r = api
        .get(&format!(
            "/api/v1/rooms/res/polls/{}/results",
            anon["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(r["options"][0]["votes"], 1);
    assert_eq!(r["options"][2]["votes"], 2);
    assert_eq!(r["options"][2]["voters"], json!([]));
    assert!(
        !r.to_string().contains("Ann"),
        "anonymous results name a voter: {r}"
    );
    let r = api
        .get(&format!(
            "/api/v1/rooms/res/polls/{}/results",
            free["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(r["answers"][0]["text"], "Great session");
    assert_eq!(r["answers"][0]["participant_name"], "Ann");
    let r = api
        .get(&format!(
            "/api/v1/rooms/res/polls/{}/results?session_id=00000000-0000-4000-8000-000000000000",
            named["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(r["total_votes"], 0);
    api.get("/api/v1/rooms/res/polls/nope/results")
        .await
        .expect(404);

    // CSV export: parsed back; formula cells neutralised; anonymous voters absent.
    let csv = api.get("/api/v1/rooms/res/polls/export").await.expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        csv.header("content-disposition").unwrap(),
        "attachment; filename=\"polls-res.csv\""
    );
    let text = String::from_utf8(csv.raw.clone()).unwrap();
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        [
            "poll_id", "question", "type", "status", "answer", "votes", "voters"
        ]
    );
    assert_eq!(rows.len(), 1 + 2 + 3 + 1);
    assert_eq!(rows[1][4], "'=HYPERLINK(\"x\")");
    assert_eq!(rows[1][5], "2");
    assert_eq!(rows[1][6], "Ann; Bob");
    assert!(
        rows.iter()
            .filter(|r| r[1] == "Secret?")
            .all(|r| r[6].is_empty())
    );
    assert_eq!(rows[6][4], "Great session");
    let js = api
        .get("/api/v1/rooms/res/polls/export?format=json")
        .await
        .expect(200);
    assert!(
        js.header("content-disposition")
            .unwrap()
            .ends_with(".json\"")
    );
    let arr: Vec<Value> = serde_json::from_slice(&js.raw).unwrap();
    assert_eq!(arr.len(), 3);
    let txt = api
        .get("/api/v1/rooms/res/polls/export?format=txt")
        .await
        .expect(200);
    assert!(
        txt.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        String::from_utf8(txt.raw)
            .unwrap()
            .contains("Best? (single, launched, 2 answered)")
    );
    api.get("/api/v1/rooms/res/polls/export?format=xml")
        .await
        .expect_invalid("format");
}

/// A minimal RFC 4180 reader for the test's own checks.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_results_into_the_live_session() {
    let s = Server::start();
    let api = s.api();
    room(&api, "pub").await;
    let p = create(
        &api,
        "pub",
        json!({"question": "Ready?", "anonymous": true, "options": ["Yes", "No"]}),
    )
    .await;
    let pid = p["id"].as_str().unwrap();
    let (mut ann, joined) = join(&s, "pub", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let yes = p["options"][0]["id"].as_str().unwrap().to_string();
    launch_and_vote(
        &s,
        pid,
        Some(&session),
        &[("p1", "Ann", Some(vec![&yes]), None)],
    )
    .await;

    api.post(
        &format!("/api/v1/sessions/{session}/polls/nope/publish-results"),
        json!({}),
    )
    .await
    .expect(404);
    api.post(
        &format!(
            "/api/v1/sessions/00000000-0000-4000-8000-000000000000/polls/{pid}/publish-results"
        ),
        json!({}),
    )
    .await
    .expect(404);
    let r = api
        .post(
            &format!("/api/v1/sessions/{session}/polls/{pid}/publish-results"),
            json!({}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(r["options"][0]["votes"], 1);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "poll_results")
        .await;
    assert_eq!(ev["poll_id"], pid);
    assert_eq!(ev["results"]["options"][0]["votes"], 1);
    assert!(
        !ev.to_string().contains("\"Ann\""),
        "anonymous results leaked a name: {ev}"
    );

    // Session delete of polls.
    api.delete("/api/v1/sessions/00000000-0000-4000-8000-000000000000/polls")
        .await
        .expect(404);
    api.delete(&format!("/api/v1/sessions/{session}/polls"))
        .await
        .expect(204);
    let ev = ann
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "polls_cleared")
        .await;
    assert_eq!(ev["session_id"], session.as_str());
    api.get(&format!("/api/v1/rooms/pub/polls/{pid}"))
        .await
        .expect(404);

    // Once the session has ended: 409.
    let p2 = create(
        &api,
        "pub",
        json!({"question": "Again?", "options": ["Yes", "No"]}),
    )
    .await;
    ann.leave();
    crate::api_chat::wait_not_live(&api, "pub").await;
    let r = api
        .post(
            &format!(
                "/api/v1/sessions/{session}/polls/{}/publish-results",
                p2["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(409);
    assert!(r.body["message"].as_str().unwrap().contains("live session"));
}

async fn upload(s: &Server, path: &str, filename: &str, content: Vec<u8>) -> convene_tests::Resp {
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--BOUNDARYxyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"",
    );
    body.extend_from_slice(filename.as_bytes());
    body.extend_from_slice(b"\"\r\nContent-Type: text/csv\r\n\r\n");
    body.extend_from_slice(&content);
    body.extend_from_slice(b"\r\n--BOUNDARYxyz--\r\n");
    let res = s
        .client
        .post(s.url(path))
        .bearer_auth(convene_tests::KEY)
        .header("content-type", "multipart/form-data; boundary=BOUNDARYxyz")
        .body(body)
        .send()
        .await
        .unwrap();
    convene_tests::Resp::read(res).await
}

#[tokio::test]
async fn csv_template_and_import() {
    let s = Server::start();
    let api = s.api();
    room(&api, "imp").await;
    let t = api
        .get("/api/v1/rooms/imp/polls/template")
        .await
        .expect(200);
    assert!(t.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        t.header("content-disposition").unwrap(),
        "attachment; filename=\"polls-template.csv\""
    );
    // The template itself imports cleanly.
    let r = upload(
        &s,
        "/api/v1/rooms/imp/polls/import",
        "template.csv",
        t.raw.clone(),
    )
    .await
    .expect(200);
    assert_eq!(r.body["total_count"], 3);
    assert_eq!(r.body["data"][1]["type"], "multiple");
    assert_eq!(r.body["data"][2]["type"], "free");
    let list = api.get("/api/v1/rooms/imp/polls?order=asc").await.body;
    assert_eq!(list["total_count"], 3);
    assert_eq!(list["data"][0]["options"].as_array().unwrap().len(), 3);

    // Hostile: formula cells are stored as text and neutralised on export.
    let hostile =
        b"question,type,anonymous,options\r\n=cmd|' /C calc'!A0,single,false,+1|-2|@SUM(A1)\r\n"
            .to_vec();
    let r = upload(&s, "/api/v1/rooms/imp/polls/import", "h.csv", hostile)
        .await
        .expect(200);
    assert_eq!(r.body["data"][0]["question"], "=cmd|' /C calc'!A0");
    assert_eq!(r.body["data"][0]["options"][2]["label"], "@SUM(A1)");
    let csv = String::from_utf8(api.get("/api/v1/rooms/imp/polls/export").await.raw).unwrap();
    for row in parse_csv(&csv).iter().skip(1) {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "unneutralised cell {cell:?}"
            );
        }
    }

    // Bad rows: each reported by line, nothing imported.
    let bad = b"question,type,anonymous,options\n\
                Good one,single,false,A|B\n\
                Too few columns,single\n\
                ,single,false,A|B\n\
                Q,ranked,false,A|B\n\
                Q,single,maybe,A|B\n\
                Q,single,false,A\n"
        .to_vec();
    let r = upload(&s, "/api/v1/rooms/imp/polls/import", "bad.csv", bad)
        .await
        .expect_invalid("file");
    let problems: Vec<String> = r.body["errors"]["file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(problems.len(), 5, "{problems:?}");
    for (i, line) in [3, 4, 5, 6, 7].iter().enumerate() {
        assert!(
            problems[i].starts_with(&format!("line {line}:")),
            "{problems:?}"
        );
    }
    assert!(problems[0].contains("expected 4 columns"));
    assert_eq!(
        api.get("/api/v1/rooms/imp/polls").await.body["total_count"],
        4
    );

    // Non-UTF-8.
    let r = upload(
        &s,
        "/api/v1/rooms/imp/polls/import",
        "latin1.csv",
        b"question,type,anonymous,options\nCaf\xe9?,single,false,A|B\n".to_vec(),
    )
    .await
    .expect_invalid("file");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("line 2: the file is not UTF-8"),
        "{}",
        r.body
    );
    // Unterminated quote.
    upload(
        &s,
        "/api/v1/rooms/imp/polls/import",
        "q.csv",
        b"\"open,single,false,A|B\n".to_vec(),
    )
    .await
    .expect_invalid("file");
    // Empty file and missing part.
    upload(&s, "/api/v1/rooms/imp/polls/import", "e.csv", Vec::new())
        .await
        .expect_invalid("file");
    // Oversized (> 2 MB): 413 with a clear message.
    let mut big = b"question,type,anonymous,options\n".to_vec();
    while big.len() <= 2 * 1024 * 1024 {
        big.extend_from_slice(b"Is this too big?,single,false,Yes|No\n");
    }
    let r = upload(&s, "/api/v1/rooms/imp/polls/import", "big.csv", big)
        .await
        .expect(413);
    assert!(
        r.body["message"].as_str().unwrap().contains("at most 2 MB"),
        "{}",
        r.body
    );
    // A raw text/csv body works too.
    let res = s
        .client
        .post(s.url("/api/v1/rooms/imp/polls/import"))
        .bearer_auth(convene_tests::KEY)
        .header("content-type", "text/csv")
        .body("Raw?,single,no,A|B\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        api.get("/api/v1/rooms/imp/polls").await.body["total_count"],
        5
    );
    api.get("/api/v1/rooms/nope/polls/template")
        .await
        .expect(404);
}
