//! Quizzes over HTTP: CRUD with the seed's field constraints, PATCH by ids,
//! results, export, CSV template and import, session delete.

use convene_tests::{Api, Server};
use serde_json::{Value, json};

use crate::api_chat::{join, room};
use crate::api_polls::parse_csv;

fn seed_quiz() -> Value {
    json!({
        "title": "My quiz",
        "time_limit_minutes": 60,
        "questions": [
            {"text": "Question #1", "multiple": false, "choices": [
                {"text": "Correct answer", "correct": true},
                {"text": "Wrong answer", "correct": false}]},
            {"text": "Question #2 (multiple choice)", "multiple": true, "choices": [
                {"text": "Correct answer #1", "correct": true},
                {"text": "Wrong answer", "correct": false},
                {"text": "Correct answer #2", "correct": true}]}
        ]
    })
}

async fn create(api: &Api, room: &str, body: Value) -> Value {
    api.post(&format!("/api/v1/rooms/{room}/quizzes"), body)
        .await
        .expect(200)
        .body
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[tokio::test]
async fn create_get_patch_delete_and_constraints() {
    let s = Server::start();
    let api = s.api();
    room(&api, "quiz").await;
    let q = create(&api, "quiz", seed_quiz()).await;
    assert_eq!(q["title"], "My quiz");
    assert_eq!(q["time_limit_minutes"], 60);
    assert_eq!(q["time_limit_seconds"], 3600);
    assert_eq!(q["status"], "created");
    assert!(q["timing_mode"].is_null());
    assert_eq!(q["questions"].as_array().unwrap().len(), 2);
    for question in q["questions"].as_array().unwrap() {
        assert!(uuid::Uuid::parse_str(question["id"].as_str().unwrap()).is_ok());
        for c in question["choices"].as_array().unwrap() {
            assert!(uuid::Uuid::parse_str(c["id"].as_str().unwrap()).is_ok());
        }
    }
    assert_eq!(
        q["questions"][1]["choices"][2],
        json!({"id": q["questions"][1]["choices"][2]["id"], "text": "Correct answer #2", "correct": true})
    );
    let id = q["id"].as_str().unwrap();
    let s2 = create(
        &api,
        "quiz",
        with(
            with(seed_quiz(), "time_limit_seconds", json!(90)),
            "timing_mode",
            json!("question"),
        ),
    )
    .await;
    assert_eq!(s2["time_limit_seconds"], 90);
    assert_eq!(s2["time_limit_minutes"], 2);
    assert_eq!(s2["timing_mode"], "question");

    // One failing case per seed constraint (and our structural ones).
    let cases: Vec<(Value, &str)> = vec![
        (with(seed_quiz(), "title", json!("")), "title"),
        (with(seed_quiz(), "title", json!("x".repeat(513))), "title"),
        (with(seed_quiz(), "title", Value::Null), "title"),
        (
            with(seed_quiz(), "time_limit_minutes", json!(0)),
            "time_limit_minutes",
        ),
        (
            with(seed_quiz(), "time_limit_minutes", json!(1441)),
            "time_limit_minutes",
        ),
        (
            with(seed_quiz(), "time_limit_minutes", json!("60")),
            "time_limit_minutes",
        ),
        (
            with(seed_quiz(), "time_limit_seconds", json!(0)),
            "time_limit_seconds",
        ),
        (
            with(seed_quiz(), "time_limit_seconds", json!(86401)),
            "time_limit_seconds",
        ),
        (
            with(seed_quiz(), "timing_mode", json!("slide")),
            "timing_mode",
        ),
        (with(seed_quiz(), "questions", json!([])), "questions"),
        (with(seed_quiz(), "questions", json!("q")), "questions"),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "", "choices": [{"text": "a", "correct": true}, {"text": "b"}]}]),
            ),
            "questions.0.text",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "x".repeat(513), "choices": [{"text": "a", "correct": true}, {"text": "b"}]}]),
            ),
            "questions.0.text",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "choices": [{"text": "a", "correct": true}]}]),
            ),
            "questions.0.choices",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "choices": [{"text": "a"}, {"text": "b"}]}]),
            ),
            "questions.0.choices",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "choices": [{"text": "a", "correct": true}, {"text": "b", "correct": true}]}]),
            ),
            "questions.0.choices",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "choices": [{"text": "a", "correct": true}, {"text": ""}]}]),
            ),
            "questions.0.choices.1.text",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "multiple": "no", "choices": [{"text": "a", "correct": true}, {"text": "b"}]}]),
            ),
            "questions.0.multiple",
        ),
        (
            with(
                seed_quiz(),
                "questions",
                json!([{"text": "q", "choices": [{"text": "a", "correct": 1}, {"text": "b"}]}]),
            ),
            "questions.0.choices.0.correct",
        ),
    ];
    for (body, field) in cases {
        api.post("/api/v1/rooms/quiz/quizzes", body)
            .await
            .expect_invalid(field);
    }
    api.post("/api/v1/rooms/quiz/quizzes", json!({"title": "t"}))
        .await
        .expect_invalid("questions");
    api.post("/api/v1/rooms/nope/quizzes", seed_quiz())
        .await
        .expect(404);

    // Get.
    assert_eq!(
        api.get(&format!("/api/v1/rooms/quiz/quizzes/{id}"))
            .await
            .expect(200)
            .body,
        q
    );
    api.get("/api/v1/rooms/quiz/quizzes/nope").await.expect(404);

    // PATCH: ids update, missing ids create, left-out items go.
    let q1 = &q["questions"][0];
    let c0 = q1["choices"][0]["id"].as_str().unwrap();
    let p = api
        .patch(
            &format!("/api/v1/rooms/quiz/quizzes/{id}"),
            json!({"title": "Renamed", "time_limit_minutes": null, "timing_mode": "quiz", "questions": [
                {"id": q1["id"], "text": "Question #1 (edited)", "choices": [
                    {"id": c0, "text": "Still correct"},
                    {"text": "New wrong answer", "correct": false}]},
                {"text": "Brand new", "choices": [{"text": "yes", "correct": true}, {"text": "no"}]}
            ]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(p["title"], "Renamed");
    assert!(p["time_limit_minutes"].is_null());
    assert_eq!(p["timing_mode"], "quiz");
    assert_eq!(p["questions"].as_array().unwrap().len(), 2);
    assert_eq!(p["questions"][0]["id"], q1["id"]);
    assert_eq!(p["questions"][0]["text"], "Question #1 (edited)");
    assert_eq!(p["questions"][0]["choices"][0]["id"], c0);
    assert_eq!(p["questions"][0]["choices"][0]["text"], "Still correct");
    assert_eq!(p["questions"][0]["choices"][0]["correct"], true);
    assert_ne!(
        p["questions"][0]["choices"][1]["id"],
        q1["choices"][1]["id"]
    );
    assert_ne!(p["questions"][1]["id"], q["questions"][1]["id"]);
    // Just the title: questions untouched.
    let t = api
        .patch(
            &format!("/api/v1/rooms/quiz/quizzes/{id}"),
            json!({"title": "Again"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(t["questions"], p["questions"]);
    api.patch(
        &format!("/api/v1/rooms/quiz/quizzes/{id}"),
        json!({"questions": [{"id": "nope", "text": "x"}]}),
    )
    .await
    .expect_invalid("questions.0.id");
    api.patch(
        &format!("/api/v1/rooms/quiz/quizzes/{id}"),
        json!({"title": ""}),
    )
    .await
    .expect_invalid("title");
    api.patch("/api/v1/rooms/quiz/quizzes/nope", json!({"title": "x"}))
        .await
        .expect(404);

    // List and pagination.
    let l = api
        .get("/api/v1/rooms/quiz/quizzes?order=asc&limit=1")
        .await
        .expect(200)
        .body;
    assert_eq!(l["total_count"], 2);
    assert_eq!(l["data"][0]["id"], id);
    assert_eq!(l["data"][0]["status"], "created");
    let l = api
        .get(&format!("/api/v1/rooms/quiz/quizzes?order=asc&after={id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(l["data"][0]["id"], s2["id"]);
    api.get("/api/v1/rooms/quiz/quizzes?after=nope")
        .await
        .expect_invalid("after");

    // Delete one, then all.
    api.delete(&format!("/api/v1/rooms/quiz/quizzes/{id}"))
        .await
        .expect(204);
    api.delete(&format!("/api/v1/rooms/quiz/quizzes/{id}"))
        .await
        .expect(404);
    api.delete("/api/v1/rooms/quiz/quizzes").await.expect(204);
    assert_eq!(
        api.get("/api/v1/rooms/quiz/quizzes").await.body["total_count"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_export_and_session_delete() {
    let s = Server::start();
    let api = s.api();
    room(&api, "qres").await;
    let q = create(&api, "qres", seed_quiz()).await;
    let id = q["id"].as_str().unwrap().to_string();
    // Before any run: no results.
    let r = api
        .get(&format!("/api/v1/rooms/qres/quizzes/{id}/results"))
        .await
        .expect(200)
        .body;
    assert_eq!(r, json!([]));

    // A run in a live session (as the signaling layer records it).
    let (mut ann, joined) = join(&s, "qres", "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let q1 = q["questions"][0]["id"].as_str().unwrap();
    let q2 = q["questions"][1]["id"].as_str().unwrap();
    let c = |qi: usize, ci: usize| {
        q["questions"][qi]["choices"][ci]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pool = s.db().await;
    pool.execute("UPDATE quizzes SET status = 'launched', session_id = $1, started_at = '2026-01-01T00:00:00.000000Z' WHERE id = $2",
        &[&session, &id]).await;
    for (qid, pid, name, choices) in [
        (q1, "p1", "Ann", vec![c(0, 0)]),
        (q1, "p2", "=Bob", vec![c(0, 1)]),
        (q2, "p1", "Ann", vec![c(1, 0), c(1, 2)]),
    ] {
        let choices = serde_json::to_string(&choices).unwrap();
        pool.execute("INSERT INTO quiz_answers (quiz_id, room_id, session_id, question_id, participant_id, participant_name, choice_ids, created_at)
                     SELECT id, room_id, $1, $2, $3, $4, $5, '2026-01-01T00:00:01.000000Z' FROM quizzes WHERE id = $6",
            &[&session, &qid, &pid, &name, &choices, &id]).await;
    }
    pool.close().await;

    // A launched quiz cannot be edited.
    api.patch(
        &format!("/api/v1/rooms/qres/quizzes/{id}"),
        json!({"title": "x"}),
    )
    .await
    .expect(409);

    let r = api
        .get(&format!("/api/v1/rooms/qres/quizzes/{id}/results"))
        .await
        .expect(200)
        .body;
    let runs = r.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["session_id"], session.as_str());
    assert_eq!(runs[0]["status"], "launched");
    assert_eq!(runs[0]["started"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(runs[0]["questions"][0]["question"], "Question #1");
    assert_eq!(runs[0]["questions"][0]["voted"], 2);
    assert_eq!(runs[0]["questions"][0]["votes"][0]["voted"], 1);
    assert_eq!(
        runs[0]["questions"][0]["votes"][0]["voters"],
        json!([{"id": "p1", "name": "Ann"}])
    );
    assert_eq!(runs[0]["questions"][1]["voted"], 1);
    assert_eq!(runs[0]["questions"][1]["votes"][2]["voted"], 1);
    assert_eq!(runs[0]["questions"][1]["votes"][1]["voted"], 0);
    let none = api
        .get(&format!("/api/v1/rooms/qres/quizzes/{id}/results?session_id=00000000-0000-4000-8000-000000000000"))
        .await
        .expect(200)
        .body;
    assert_eq!(none, json!([]));
    api.get("/api/v1/rooms/qres/quizzes/nope/results")
        .await
        .expect(404);

    // Export in the three formats, parsed back.
    let csv = api
        .get("/api/v1/rooms/qres/quizzes/export?format=csv")
        .await
        .expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        csv.header("content-disposition").unwrap(),
        "attachment; filename=\"quizzes-qres.csv\""
    );
    let rows = parse_csv(&String::from_utf8(csv.raw).unwrap());
    assert_eq!(rows[0][0], "quiz_id");
    assert_eq!(rows.len(), 1 + 2 + 3);
    assert_eq!(rows[2][5], "Wrong answer");
    assert_eq!(rows[2][8], "'=Bob", "formula cell not neutralised");
    assert_eq!(rows[1][6], "true");
    let js = api
        .get("/api/v1/rooms/qres/quizzes/export?format=json")
        .await
        .expect(200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let arr: Vec<Value> = serde_json::from_slice(&js.raw).unwrap();
    assert_eq!(arr[0]["questions"][0]["voted"], 2);
    let txt = api
        .get("/api/v1/rooms/qres/quizzes/export?format=txt")
        .await
        .expect(200);
    assert!(
        txt.header("content-disposition")
            .unwrap()
            .ends_with(".txt\"")
    );
    let text = String::from_utf8(txt.raw).unwrap();
    assert!(text.contains("Question #1 (2 answered)"), "{text}");
    assert!(text.contains("- Correct answer [correct]: 1"), "{text}");
    api.get("/api/v1/rooms/qres/quizzes/export?format=pdf")
        .await
        .expect_invalid("format");

    // Session delete removes the run's quiz and answers.
    api.delete("/api/v1/sessions/00000000-0000-4000-8000-000000000000/quizzes")
        .await
        .expect(404);
    api.delete(&format!("/api/v1/sessions/{session}/quizzes"))
        .await
        .expect(204);
    let ev = ann
        .wait_signal(std::time::Duration::from_secs(10), |v| {
            v["type"] == "quizzes_cleared"
        })
        .await;
    assert_eq!(ev["session_id"], session.as_str());
    // Deleting one quiz is announced too.
    let other = create(&api, "qres", seed_quiz()).await;
    let oid = other["id"].as_str().unwrap();
    api.delete(&format!("/api/v1/rooms/qres/quizzes/{oid}"))
        .await
        .expect(204);
    let ev = ann
        .wait_signal(std::time::Duration::from_secs(10), |v| {
            v["type"] == "quiz_deleted"
        })
        .await;
    assert_eq!(ev["quiz_id"], oid);
    api.get(&format!("/api/v1/rooms/qres/quizzes/{id}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn csv_template_and_import() {
    let s = Server::start();
    let api = s.api();
    room(&api, "qimp").await;
    let t = api
        .get("/api/v1/rooms/qimp/quizzes/template")
        .await
        .expect(200);
    assert!(t.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        t.header("content-disposition").unwrap(),
        "attachment; filename=\"quizzes-template.csv\""
    );
    let upload = |content: Vec<u8>| {
        let s = &s;
        async move {
            let mut body = b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec();
            body.extend_from_slice(&content);
            body.extend_from_slice(b"\r\n--b0undary--\r\n");
            let res = s
                .client
                .post(s.url("/api/v1/rooms/qimp/quizzes/import"))
                .bearer_auth(convene_tests::KEY)
                .header("content-type", "multipart/form-data; boundary=b0undary")
                .body(body)
                .send()
                .await
                .unwrap();
            convene_tests::Resp::read(res).await
        }
    };
    let r = upload(t.raw.clone()).await.expect(200);
    assert_eq!(r.body["total_count"], 1);
    let quiz = &r.body["data"][0];
    assert_eq!(quiz["title"], "My quiz");
    assert_eq!(quiz["time_limit_minutes"], 10);
    assert_eq!(quiz["questions"][1]["multiple"], true);
    assert_eq!(quiz["questions"][1]["choices"][2]["correct"], true);
    assert_eq!(quiz["questions"][1]["choices"][1]["correct"], false);

    // Hostile cells are kept as text; the export neutralises them.
    let r = upload(b"quiz_title,time_limit_minutes,question,multiple,choices,correct\n@evil,,=1+1,false,+a|-b,1\n".to_vec())
        .await
        .expect(200);
    assert_eq!(r.body["data"][0]["title"], "@evil");

    let bad = b"quiz_title,time_limit_minutes,question,multiple,choices,correct\n\
                Quiz A,5,Fine?,false,Yes|No,1\n\
                Quiz A,5,Too few\n\
                Quiz A,5,Which?,maybe,Yes|No,1\n\
                Quiz A,5,Which?,false,Yes|No,3\n\
                Quiz B,9999,Long?,false,Yes|No,1\n"
        .to_vec();
    let r = upload(bad).await.expect_invalid("file");
    let problems: Vec<&str> = r.body["errors"]["file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].starts_with("line 3: expected 6 columns"),
        "{problems:?}"
    );
    assert!(problems[1].starts_with("line 4: multiple"), "{problems:?}");
    assert!(problems[2].starts_with("line 5: correct"), "{problems:?}");
    assert!(
        problems[3].starts_with("line 6: time_limit_minutes"),
        "{problems:?}"
    );
    assert_eq!(
        api.get("/api/v1/rooms/qimp/quizzes").await.body["total_count"],
        2
    );

    upload(b"quiz_title,time_limit_minutes,question,multiple,choices,correct\n\xff\xfe,1,q,false,a|b,1\n".to_vec())
        .await
        .expect_invalid("file");
    let mut big = Vec::new();
    while big.len() <= 2 * 1024 * 1024 {
        big.extend_from_slice(b"Big quiz,5,Is this too big?,false,Yes|No,1\n");
    }
    let r = upload(big).await.expect(413);
    assert!(r.body["message"].as_str().unwrap().contains("at most 2 MB"));
    api.get("/api/v1/rooms/nope/quizzes/template")
        .await
        .expect(404);
}
