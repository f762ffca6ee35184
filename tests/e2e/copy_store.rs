//! `convene copy-store` (issue 20): an embedded SQLite database moves into
//! PostgreSQL with everything a backend reads back, and the server then
//! runs on PostgreSQL with the same answers.

use std::path::Path;
use std::process::{Command, Output};

use convene_tests::{Options, Server, binary, pg};
use serde_json::{Value, json};

/// Runs `convene copy-store --to <to>` on `data_dir`.
fn copy_store(data_dir: &Path, to: &str) -> Output {
    Command::new(binary("convene"))
        .args(["copy-store", "--to", to])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CONVENE_DATABASE_URL")
        .env("CONVENE_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the test reads back before and after the move.
async fn snapshot(api: &convene_tests::Api) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/api/v1/rooms/moved",
        "/api/v1/rooms?limit=100",
        "/api/v1/rooms/moved/chat",
        "/api/v1/rooms/moved/polls",
        "/api/v1/rooms/moved/questions",
        "/api/v1/recordings",
        "/api/v1/webhooks",
        "/api/v1/sessions",
        "/api/v1/roles",
    ] {
        all.push(api.get(path).await.expect(200).body);
    }
    all
}

/// Waits until no session is live and every recording reached its end.
async fn settled(api: &convene_tests::Api) {
    for _ in 0..200 {
        let sessions = api.get("/api/v1/sessions").await.expect(200).body;
        let recordings = api.get("/api/v1/recordings").await.expect(200).body;
        let live = |list: &Value, done: &dyn Fn(&Value) -> bool| {
            list["data"].as_array().unwrap().iter().any(|x| !done(x))
        };
        let sessions_live = live(&sessions, &|s| s["live"] == false);
        let recording = live(&recordings, &|r| {
            r["status"] == "READY" || r["status"] == "FAILED"
        });
        if !sessions_live && !recording {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the session or the recording never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_store_moves_the_embedded_database_into_postgres() {
    // SQLite even in the PostgreSQL pass: the source is the embedded store.
    let mut s = Server::start_with(Options {
        env: vec![("CONVENE_DATABASE_URL".into(), String::new())],
        ..Default::default()
    });
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "moved", "tags": ["copy"], "recordings_enabled": true}),
    )
    .await
    .expect(200);
    api.post("/api/v1/rooms", json!({"friendly_url": "second"}))
        .await
        .expect(200);
    api.post(
        "/api/v1/rooms/moved/polls",
        json!({"question": "Lunch?", "type": "single",
               "options": [{"text": "Soup"}, {"text": "Salad"}]}),
    )
    .await
    .expect(200);
    api.post(
        "/api/v1/webhooks",
        json!({"endpoint": "https://203.0.113.9/hook", "events": ["room.created"]}),
    )
    .await
    .expect(200);
    let (ann, _) = convene_tests::join(&s, "moved", "Ann", None).await;
    for m in ["first", "second"] {
        api.post("/api/v1/rooms/moved/chat", json!({"message": m}))
            .await
            .expect(200);
    }
    api.post("/api/v1/rooms/moved/recordings/start", json!({}))
        .await
        .expect(200);
    api.post("/api/v1/rooms/moved/recordings/stop", json!({}))
        .await
        .expect(200);
    ann.leave();
    // The session's end and the recording's failure (nobody published) are
    // written after the answers above; the snapshot waits for both, or a
    // stop would end the session itself and the copies would differ.
    settled(&api).await;
    let before = snapshot(&api).await;
    assert_eq!(
        before[2]["data"].as_array().unwrap().len(),
        2,
        "{}",
        before[2]
    );
    assert_eq!(before[5]["total_count"], 1, "{}", before[5]);

    let url = pg::fresh_database();
    // Not while a server holds the directory, and only into PostgreSQL.
    let out = copy_store(&s.data_dir, &url);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("another convene server is using"),
        "{}",
        text(&out)
    );
    s.stop();
    let out = copy_store(&s.data_dir, "mysql://db/convene");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unsupported scheme `mysql`"),
        "{}",
        text(&out)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = copy_store(empty.path(), &url);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no embedded database"),
        "{}",
        text(&out)
    );

    let out = copy_store(&s.data_dir, &url);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("copied "), "{printed}");
    assert!(
        printed.lines().any(|l| l.starts_with("chat_messages")),
        "{printed}"
    );

    // The server on PostgreSQL, same data dir (recordings stay files there).
    s.set_env("CONVENE_DATABASE_URL", &url);
    s.restart();
    let api = s.api();
    let after = snapshot(&api).await;
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b);
    }
    // The developer key came along (the API answered with it above), and
    // new rows follow the copied ones: identity sequences moved past them.
    let (bea, _) = convene_tests::join(&s, "moved", "Bea", None).await;
    api.post("/api/v1/rooms/moved/chat", json!({"message": "third"}))
        .await
        .expect(200);
    bea.leave();
    let chat = api.get("/api/v1/rooms/moved/chat").await.expect(200).body;
    let messages: Vec<&str> = chat["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    // Newest first, as the list is ordered by default.
    assert_eq!(messages, ["third", "second", "first"], "{chat}");
    api.post(
        "/api/v1/webhooks",
        json!({"endpoint": "https://203.0.113.10/hook", "events": ["room.deleted"]}),
    )
    .await
    .expect(200);

    // A second copy into the now-used database is refused, and changes nothing.
    s.stop();
    let out = copy_store(&s.data_dir, &url);
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds data"), "{}", text(&out));
    s.restart();
    let api = s.api();
    let rooms = api.get("/api/v1/rooms?limit=100").await.expect(200).body;
    assert_eq!(rooms, after[1]);
    let hooks = api.get("/api/v1/webhooks").await.expect(200).body;
    assert_eq!(hooks["total_count"], 2, "{hooks}");
}
