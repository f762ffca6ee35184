//! The store on PostgreSQL (issue 20): the schema the real binary migrates
//! there matches SQLite's table for table and column for column, and a bad
//! `--database-url` stops the start with a clear error.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use convene_tests::{Server, binary, pg};
use serde_json::json;
use sqlx::{Connection as _, Row as _};

/// Runs `convene serve` (or `args`) on a fresh data dir with `url` as
/// `CONVENE_DATABASE_URL`; these starts are expected to end by themselves.
fn run(url: &str, args: &[&str], data_dir: &Path) -> Output {
    Command::new(binary("convene"))
        .args(args)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--turn-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("CONVENE_DATABASE_URL", url)
        .env("CONVENE_API_KEY", convene_tests::KEY)
        .env("CONVENE_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (table, column, not null) of every table but sqlx's bookkeeping.
type Columns = BTreeSet<(String, String, bool)>;

async fn sqlite_columns(db: &Path) -> (Columns, Vec<i64>) {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT m.name AS t, p.name AS c, (p.\"notnull\" OR p.pk > 0) AS nn \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let cols = rows
        .iter()
        .map(|r| (r.get("t"), r.get("c"), r.get::<bool, _>("nn")))
        .collect();
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (cols, versions)
}

async fn postgres_columns(url: &str) -> (Columns, Vec<i64>) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable = 'NO' AS nn \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // `rowid`: SQLite's implicit column, which pragma_table_info does not
    // list, spelled out on PostgreSQL where the store orders by it.
    let cols = rows
        .iter()
        .map(|r| (r.get("t"), r.get("c"), r.get::<bool, _>("nn")))
        .filter(|(_, c, _): &(String, String, bool)| c != "rowid")
        .collect();
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (cols, versions)
}

#[tokio::test]
async fn postgres_schema_matches_sqlite() {
    // An empty URL: SQLite even when CONVENE_TEST_DB=postgres.
    let sqlite = Server::start_with(convene_tests::Options {
        env: vec![("CONVENE_DATABASE_URL".into(), String::new())],
        ..Default::default()
    });
    let (lite, lite_versions) = sqlite_columns(&sqlite.data_dir.join("convene.db")).await;

    let url = pg::fresh_database();
    let mut s = Server::start_with(convene_tests::Options {
        env: vec![("CONVENE_DATABASE_URL".into(), url.clone())],
        ..Default::default()
    });
    // Again: the second start finds every migration applied and serves.
    s.restart();
    s.api().get("/api/v1/rooms").await.expect(200);
    assert!(!s.data_dir.join("convene.db").exists());
    let (pg_cols, pg_versions) = postgres_columns(&url).await;

    assert!(lite.len() > 100, "only {} SQLite columns", lite.len());
    let only_lite: Vec<_> = lite.difference(&pg_cols).collect();
    let only_pg: Vec<_> = pg_cols.difference(&lite).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "SQLite only: {only_lite:?}\nPostgreSQL only: {only_pg:?}"
    );
    assert_eq!(lite_versions, pg_versions);
}

#[tokio::test]
async fn bad_database_urls_stop_the_start() {
    let c = pg::cluster();
    let closed_port = convene_tests::free_port();
    let cases = [
        (
            "mysql://convene:hunter2secret@127.0.0.1/convene".to_string(),
            "unsupported scheme `mysql`",
        ),
        (
            "convene:hunter2secret@127.0.0.1/convene".to_string(),
            "no scheme",
        ),
        (
            "postgres://convene:hunter2secret@127.0.0.1:notaport/convene".to_string(),
            "not a valid PostgreSQL URL",
        ),
        (
            format!("postgres://convene:hunter2secret@127.0.0.1:{closed_port}/convene"),
            "cannot reach PostgreSQL at 127.0.0.1:",
        ),
        (
            format!(
                "postgres://{}:hunter2secret@127.0.0.1:{}/postgres",
                pg::USER,
                c.port
            ),
            "refused the credentials",
        ),
        (c.url("no_such_database"), "does not exist"),
        // A database made on a host whose locale is C: the migrations
        // would fail half-way (the ICU collation needs UTF-8).
        (
            pg::fresh_database_in("SQL_ASCII"),
            "uses the encoding SQL_ASCII; Convene needs UTF8",
        ),
    ];
    for (url, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&url, &["serve"], &dir.path().join("data"));
        let err = stderr(&out);
        assert!(!out.status.success(), "{url} started");
        assert!(err.contains(expected), "{url}: {err}");
        assert!(!err.contains("hunter2secret"), "{url} leaked: {err}");
        assert!(!err.contains("panicked"), "{url}: {err}");
        assert!(!dir.path().join("data/convene.db").exists(), "{url}");
    }
}

#[tokio::test]
async fn backup_and_restore_point_at_pg_dump() {
    let url = pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.db");
    for args in [
        vec!["backup", target.to_str().unwrap()],
        vec!["restore", target.to_str().unwrap()],
    ] {
        let out = Command::new(binary("convene"))
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--database-url")
            .arg(&url)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("pg_dump"), "{args:?}: {err}");
        assert!(!target.exists());
    }
}

/// The ids of a list response's `data`.
fn ids(list: &serde_json::Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_postgres_keeps_rooms_chat_polls_and_recordings() {
    let url = pg::fresh_database();
    let mut s = Server::start_with(convene_tests::Options {
        env: vec![("CONVENE_DATABASE_URL".into(), url.clone())],
        ..Default::default()
    });
    let api = s.api();
    let room = api
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "kept", "tags": ["pg"], "recordings_enabled": true}),
        )
        .await
        .expect(200)
        .body;
    let poll = api
        .post(
            "/api/v1/rooms/kept/polls",
            json!({"question": "Lunch?", "type": "single",
                   "options": [{"text": "Soup"}, {"text": "Salad"}]}),
        )
        .await
        .expect(200)
        .body;
    // A live session: chat goes to it, a recording runs in it.
    let (ann, _) = convene_tests::join(&s, "kept", "Ann", None).await;
    api.post("/api/v1/rooms/kept/chat", json!({"message": "hello"}))
        .await
        .expect(200);
    let rec = api
        .post("/api/v1/rooms/kept/recordings/start", json!({}))
        .await
        .expect(200)
        .body;
    api.post("/api/v1/rooms/kept/recordings/stop", json!({}))
        .await
        .expect(200);
    ann.leave();
    let chat_before = api.get("/api/v1/rooms/kept/chat").await.expect(200).body;
    let polls_before = api.get("/api/v1/rooms/kept/polls").await.expect(200).body;
    let recs_before = api.get("/api/v1/recordings").await.expect(200).body;
    assert_eq!(chat_before["data"][0]["message"], "hello", "{chat_before}");
    assert_eq!(ids(&polls_before), [poll["id"].as_str().unwrap()]);
    assert_eq!(recs_before["total_count"], 1, "{recs_before}");
    let rec_id = recs_before["data"][0]["id"].as_str().unwrap().to_string();
    if let Some(id) = rec["id"].as_str() {
        assert_eq!(id, rec_id);
    }

    s.restart();
    let api = s.api();
    // Nothing was written to a SQLite file: the store is PostgreSQL.
    assert!(!s.data_dir.join("convene.db").exists());
    let again = api.get("/api/v1/rooms/kept").await.expect(200).body;
    assert_eq!(again, room);
    let chat = api.get("/api/v1/rooms/kept/chat").await.expect(200).body;
    assert_eq!(chat, chat_before);
    let polls = api.get("/api/v1/rooms/kept/polls").await.expect(200).body;
    assert_eq!(polls, polls_before);
    let recs = api.get("/api/v1/recordings").await.expect(200).body;
    assert_eq!(recs["total_count"], 1, "{recs}");
    assert_eq!(ids(&recs), [rec_id.as_str()]);
    assert_eq!(
        recs["data"][0]["room_id"],
        recs_before["data"][0]["room_id"]
    );
    assert_eq!(recs["data"][0]["room_id"], room["id"]);
}
