//! Durability (issue 18): writes the API acknowledged survive `kill -9`
//! under load, the database stays intact, and a full disk gets a clean
//! error instead of a crash — and writes work again once space is back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_tests::{Options, Server};
use serde_json::{Value, json};

/// One REST write: the status (0: no answer, the server was gone) and body.
async fn post(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_under_load() {
    let mut s = Server::start_with(Options {
        env: vec![("CONVENE_RATE_LIMIT_PER_MINUTE".into(), "1000000".into())],
        ..Options::default()
    });
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "durable"}))
        .await
        .expect(200);
    // Four writers: rooms, polls and questions in the room, chat-free (no
    // live session needed). Every 200 is recorded.
    let acked: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let api = s.api();
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let (client, base, key, acked) = (
            api.client.clone(),
            api.base.clone(),
            api.key.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let (kind, path, body) = match (w + i) % 3 {
                    0 => (
                        "room",
                        "/api/v1/rooms".to_string(),
                        json!({"friendly_url": format!("r-{w}-{i}"), "description": "x".repeat(200)}),
                    ),
                    1 => (
                        "poll",
                        "/api/v1/rooms/durable/polls".to_string(),
                        json!({"question": format!("q {w} {i}"), "type": "single",
                               "options": [{"label": "a"}, {"label": "b"}]}),
                    ),
                    _ => (
                        "question",
                        "/api/v1/rooms/durable/questions".to_string(),
                        json!({"participant": {"name": format!("W{w}")}, "question": format!("why {i}?")}),
                    ),
                };
                let (status, body) = post(&client, &base, &key, &path, body).await;
                match status {
                    200 => {
                        let id = match kind {
                            "room" => body["friendly_url"].as_str(),
                            _ => body["id"].as_str(),
                        };
                        acked
                            .lock()
                            .unwrap()
                            .push((kind, id.unwrap_or_default().to_string()));
                    }
                    0 => return,
                    other => panic!("{kind} write answered {other}: {body}"),
                }
            }
        }));
    }
    // Let the load build up, then kill the server in the middle of it.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 150 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 150,
        "only {} writes before the kill",
        acked.len()
    );

    // The database file is intact.
    let db = s.data_dir.join("convene.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;

    // Every acknowledged write is there after a restart.
    s.restart();
    let api = s.api();
    let mut missing = Vec::new();
    for (kind, id) in &acked {
        let path = match *kind {
            "room" => format!("/api/v1/rooms/{id}"),
            "poll" => format!("/api/v1/rooms/durable/polls/{id}"),
            _ => format!("/api/v1/rooms/durable/questions?limit=100&after={id}"),
        };
        let r = api.get(&path).await;
        if r.status != 200 {
            missing.push(format!("{kind} {id}: {}", r.status));
        }
    }
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
    println!(
        "{} acknowledged writes, all present after kill -9",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_a_clean_error_and_writes_resume_when_space_returns() {
    // The data directory is a 6 MiB tmpfs in the server's own mount
    // namespace, 4 MiB of it taken by a filler file that is removed when the
    // test creates `release` (a file the namespace can see; the waiting
    // loop gives up after 120 s, so a failed test leaves nothing behind).
    // The other 2 MiB
    // must hold a fresh database while its migrations run (about 1.1 MiB
    // with the WAL at its peak); freeing twice that lets the WAL and its
    // checkpoints grow again after the disk was full.
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("release");
    // Written by the script once the filler is gone.
    let released = tmp.path().join("released");
    // sh -c SCRIPT wrap <convene> serve ... --data-dir D ...: the script
    // finds D among the arguments, mounts the tmpfs there, then execs.
    let script = format!(
        "d=''; prev=''; for a in \"$@\"; do [ \"$prev\" = --data-dir ] && d=\"$a\"; prev=\"$a\"; done; \
         mkdir -p \"$d\" && mount -t tmpfs -o size=6m tmpfs \"$d\" && \
         dd if=/dev/zero of=\"$d/filler\" bs=64k count=64 status=none && \
         {{ (i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
             rm -f \"$d/filler\" && : > '{}') & }} && exec \"$@\"",
        release.display(),
        released.display()
    );
    let mut s = Server::start_with(Options {
        env: vec![("CONVENE_RATE_LIMIT_PER_MINUTE".into(), "1000000".into())],
        wrap: vec![
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            "-c".into(),
            script,
            "wrap".into(),
        ],
        ..Options::default()
    });
    let api = s.api();
    let mut stored = 0;
    let mut full = None;
    for i in 0..5000 {
        let r = api
            .post(
                "/api/v1/rooms",
                json!({"friendly_url": format!("fill-{i}"), "description": "x".repeat(1000)}),
            )
            .await;
        match r.status {
            200 => stored += 1,
            _ => {
                full = Some(r);
                break;
            }
        }
    }
    let full = full.expect("the disk never filled up");
    assert_eq!(full.status, 507, "{:?}", full.body);
    assert_eq!(full.body["code"], "INSUFFICIENT_STORAGE");
    assert!(
        full.body["message"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{:?}",
        full.body
    );
    // Reads still work, and what was stored is all there.
    let list = api.get("/api/v1/rooms?limit=1").await;
    assert_eq!(list.status, 200);
    assert!(list.body["total_count"].as_i64().unwrap() >= stored);
    // A second write fails the same way (nothing half-written in between).
    let again = api
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "again", "description": "x".repeat(1000)}),
        )
        .await;
    assert_eq!(again.status, 507);

    // Space comes back: writes work again, without a restart. (A small
    // write may fit in what the failed ones left before the filler is
    // gone, so wait for it to be gone.)
    std::fs::write(&release, "").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !released.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the filler was never removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ok = false;
    for _ in 0..100 {
        let r = api
            .post("/api/v1/rooms", json!({"friendly_url": "after-the-flood"}))
            .await;
        if r.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "writes did not resume once space was freed");
    // What was acknowledged after the disk filled is really stored (before
    // the fix the writer connection stayed inside the transaction the full
    // disk had broken: later writes answered 200 and were never committed).
    assert_eq!(api.get("/api/v1/rooms/after-the-flood").await.status, 200);
    for i in 0..5 {
        api.post(
            "/api/v1/rooms",
            json!({"friendly_url": format!("later-{i}")}),
        )
        .await
        .expect(200);
        assert_eq!(
            api.get(&format!("/api/v1/rooms/later-{i}")).await.status,
            200
        );
    }
    let list = api.get("/api/v1/rooms?limit=1").await;
    assert_eq!(list.body["total_count"].as_i64().unwrap(), stored + 6);
    println!("{stored} rooms stored before the disk was full");
    s.stop();
}
