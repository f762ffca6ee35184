//! Several nodes as one service (issue 20): real `convene` processes on one
//! PostgreSQL database and one Redis server (both started by the test).
//!
//! - A room is placed on one node; a client that reaches another node is
//!   told where (`moved`), and WHIP is redirected (307).
//! - REST calls on any node reach the room's participants on its node:
//!   chat, hands, a role change, breakouts, recording, media counters, the
//!   end of the session; live counts agree.
//! - A node started with another cluster secret is refused, and forged
//!   messages on a node's channel are dropped.
//! - Redis down: a node keeps its rooms, refuses joins it cannot place with
//!   `CLUSTER_UNAVAILABLE`, and places rooms again when Redis is back.

use std::time::{Duration, Instant};

use convene_tests::redis::{Redis, free_port};
use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{Options, Server, pg};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::media::MediaKind;
use tokio_tungstenite::tungstenite::Message;

mod compose;

pub(crate) const SECRET: &str = "cluster-secret-for-the-tests";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A node named `id` of the cluster on `db` and `redis`.
fn node(id: &str, db: &str, redis: &Redis, secret: &str) -> Server {
    node_with(id, db, redis, secret, &[])
}

/// [`node`] with more command-line flags.
pub(crate) fn node_with(id: &str, db: &str, redis: &Redis, secret: &str, flags: &[&str]) -> Server {
    let port = free_port();
    let mut args = vec!["--http-addr".to_string(), format!("127.0.0.1:{port}")];
    args.extend(flags.iter().map(|f| f.to_string()));
    Server::start_with(Options {
        args,
        env: vec![
            ("CONVENE_DATABASE_URL".into(), db.into()),
            ("CONVENE_REDIS_URL".into(), redis.url()),
            ("CONVENE_CLUSTER_SECRET".into(), secret.into()),
            ("CONVENE_NODE_ID".into(), id.into()),
            (
                "CONVENE_NODE_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("CONVENE_RATE_LIMIT_PER_MINUTE".into(), "100000".into()),
        ],
        ..Options::default()
    })
}

async fn room_token(s: &Server, room: &str, name: &str, role: &str) -> String {
    crate::browser::token(s, room, name, role).await
}

/// Opens `/rtc` on `s`, sends `join`, and returns the socket with the first
/// answer (`joined`, `moved`, `lobby` or `error`).
async fn try_join(s: &Server, room: &str, token: &str) -> (Socket, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
    let join = json!({"type": "join", "v": 1, "room": room, "token": token});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let first = next_of(&mut ws, &["joined", "moved", "lobby", "error"]).await;
    (ws, first)
}

/// The next message of one of `types` (others are skipped).
async fn next_of(ws: &mut Socket, types: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if types.iter().any(|ty| v["type"] == *ty) {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no {types:?}: {other:?}"),
        }
    }
}

/// Waits until `f` holds, polling.
pub(crate) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn live_count(s: &Server, room: &str) -> i64 {
    s.api()
        .get(&format!("/api/v1/rooms/{room}/live/count"))
        .await
        .expect(200)
        .body["live_participants"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_places_a_room_on_one_node_and_rest_on_any_node_reaches_it() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = node("n1", &db, &redis, SECRET);
    let n2 = node("n2", &db, &redis, SECRET);
    // Rooms are in the shared database: created on n2, seen on n1.
    n2.api()
        .post("/api/v1/rooms", json!({"friendly_url": "spans"}))
        .await
        .expect(200);

    // Ann reaches n2 first. Both nodes are empty, so the room goes to the
    // first by name (n1), and n2 sends her there.
    let ann_token = room_token(&n2, "spans", "Ann", "moderator").await;
    let (_ws, moved) = try_join(&n2, "spans", &ann_token).await;
    assert_eq!(moved["type"], "moved", "{moved}");
    assert_eq!(moved["node"], "n1");
    assert_eq!(moved["url"], n1.base.trim_end_matches('/'));
    let (mut ann, joined) = try_join(&n1, "spans", &ann_token).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let ann_id = joined["participant"]["id"].as_str().unwrap().to_string();

    // Bob reaches n2 too and is sent to n1: the room stays where it is.
    let bob_token = room_token(&n1, "spans", "Bob", "attendee").await;
    let (_ws, moved) = try_join(&n2, "spans", &bob_token).await;
    assert_eq!(moved["type"], "moved", "{moved}");
    assert_eq!(moved["node"], "n1");

    // WHIP on n2 is redirected to the same endpoint on n1 (RFC 9725 §4.5),
    // after the token was checked.
    let whip = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(n2.url("/whip/spans"))
        .bearer_auth(&ann_token)
        .header("content-type", "application/sdp")
        .body(crate::whip::offer())
        .send()
        .await
        .unwrap();
    assert_eq!(whip.status(), 307);
    assert_eq!(
        whip.headers()["location"].to_str().unwrap(),
        format!("{}/whip/spans", n1.base.trim_end_matches('/'))
    );

    // Live counts agree through either node (one database).
    eventually("a live count of 1 on both nodes", || async {
        live_count(&n1, "spans").await == 1 && live_count(&n2, "spans").await == 1
    })
    .await;

    // REST on n2 reaches Ann on n1: chat, her hand, a role change.
    n2.api()
        .post(
            "/api/v1/rooms/spans/chat",
            json!({"message": "from node 2"}),
        )
        .await
        .expect(200);
    let chat = next_of(&mut ann, &["chat_message"]).await;
    assert_eq!(chat["message"]["message"], "from node 2");
    n2.api()
        .post(
            &format!("/api/v1/rooms/spans/participants/{ann_id}/raise-hand"),
            json!({}),
        )
        .await
        .expect(204);
    let hands = next_of(&mut ann, &["hands"]).await;
    assert_eq!(hands["raised"][0]["participant_id"], ann_id.as_str());
    n2.api()
        .send(
            "PUT",
            &format!("/api/v1/rooms/spans/live/participants/{ann_id}/role"),
            Some(json!({"role": "speaker"})),
        )
        .await
        .expect(200);
    let role = next_of(&mut ann, &["role_changed"]).await;
    assert_eq!(role["role"], "speaker");
    // A refusal crosses back as one: a role the room does not have.
    n2.api()
        .send(
            "PUT",
            &format!("/api/v1/rooms/spans/live/participants/{ann_id}/role"),
            Some(json!({"role": "wizard"})),
        )
        .await
        .expect_invalid("role");

    // Breakouts opened through n2 open in Ann's room on n1; moving her
    // there through n2 is answered with where everyone is.
    let base = "/api/v1/rooms/spans/breakouts";
    let created = n2
        .api()
        .post(base, json!({"names": ["Red"]}))
        .await
        .expect(201);
    let red = created.body["data"][0]["id"].as_str().unwrap().to_string();
    n2.api()
        .post(&format!("{base}/open"), json!({}))
        .await
        .expect(200);
    let opened = next_of(&mut ann, &["breakouts_opened"]).await;
    assert_eq!(opened["breakouts"][0]["name"], "Red");
    n2.api()
        .send("PUT", &format!("{base}/{red}/participants/{ann_id}"), None)
        .await
        .expect(200);
    let moved = next_of(&mut ann, &["breakout_moved"]).await;
    assert_eq!(moved["breakout_id"], red.as_str());

    // The session ends from n2; Ann is told, the room is no longer live.
    let session = n2
        .api()
        .get("/api/v1/rooms/spans/live")
        .await
        .expect(200)
        .body["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    n2.api()
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await
        .expect(204);
    let ended = next_of(&mut ann, &["error"]).await;
    assert_eq!(ended["code"], "SESSION_ENDED", "{ended}");
    eventually("no live participants", || async {
        live_count(&n2, "spans").await == 0
    })
    .await;
    // A room no node runs: REST answers 409 from either node.
    n2.api()
        .post("/api/v1/rooms/spans/chat", json!({"message": "anyone?"}))
        .await
        .expect(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_media_flows_between_participants_sent_to_the_rooms_node() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = node("n1", &db, &redis, SECRET);
    let n2 = node("n2", &db, &redis, SECRET);
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "media"}))
        .await
        .expect(200);
    // Cat arrives at n2 first: the room is placed on n1 and she moves.
    let cat = room_token(&n1, "media", "Cat", "moderator").await;
    let (_ws, moved) = try_join(&n2, "media", &cat).await;
    assert_eq!(moved["type"], "moved", "{moved}");
    let opts = |s: &Server, token: String, publish: bool| ClientOptions {
        room: Some("media".into()),
        publish,
        ..ClientOptions::with_token(s.ws_url(), token)
    };
    let mut publisher = Client::connect(opts(&n1, cat, false)).await;
    publisher.wait_type("joined").await;
    publisher.publish();
    publisher.wait_type("answer").await;
    let dan = room_token(&n1, "media", "Dan", "attendee").await;
    let mut viewer = Client::connect(opts(&n1, dan, false)).await;
    let joined = viewer.wait_type("joined").await;
    viewer
        .wait_rtp(MediaKind::Video, 20, Duration::from_secs(20))
        .await;
    viewer
        .wait_rtp(MediaKind::Audio, 20, Duration::from_secs(20))
        .await;

    // Through n2: the live session's media counters come from n1, and a
    // recording request reaches n1's room, whose refusal comes back as is
    // (recording is off by default).
    let session = joined["session_id"].as_str().unwrap().to_string();
    let stats = n2
        .api()
        .get(&format!("/api/v1/sessions/{session}/statistics"))
        .await
        .expect(200);
    assert!(
        stats.body["media"]["packets_in"].as_u64().unwrap() > 0,
        "{}",
        stats.body
    );
    let refused = n2
        .api()
        .post("/api/v1/rooms/media/recordings/start", json!({}))
        .await
        .expect(403);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("recordings_enabled"),
        "{}",
        refused.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_refuses_a_node_with_another_secret_and_drops_forged_messages() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = node("n1", &db, &redis, SECRET);
    // The same Redis, another secret: the node does not start.
    let port = free_port();
    let out = std::process::Command::new(convene_tests::binary("convene"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .env("CONVENE_DATABASE_URL", &db)
        .env("CONVENE_REDIS_URL", redis.url())
        .env("CONVENE_CLUSTER_SECRET", "not-the-cluster-secret")
        .env("CONVENE_NODE_ID", "intruder")
        .env_remove("CONVENE_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-secret differs"), "{err}");
    // Without PostgreSQL there is no cluster either.
    let out = std::process::Command::new(convene_tests::binary("convene"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("CONVENE_DATABASE_URL")
        .env("CONVENE_REDIS_URL", redis.url())
        .env("CONVENE_CLUSTER_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PostgreSQL"), "{err}");

    // Someone with Redis access but not the secret publishes a chat
    // message to n1's channel: it is dropped and counted.
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "guarded"}))
        .await
        .expect(200);
    let t = room_token(&n1, "guarded", "Eve", "moderator").await;
    let (mut eve, joined) = try_join(&n1, "guarded", &t).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let room_id = joined["room"]["id"].as_str().unwrap().to_string();
    let forged = json!({
        "from": "n2",
        "body": json!({"type": "request", "id": 1, "room_id": room_id, "call": "broadcast",
            "event": {"type": "message", "message_type": "x", "content": "forged",
                      "created_at": "2026-01-01T00:00:00Z"}}).to_string(),
        "mac": "00".repeat(32),
    });
    redis_cli(&redis, &["PUBLISH", "convene:node:n1", &forged.to_string()]);
    n1.api()
        .post("/api/v1/rooms/guarded/chat", json!({"message": "genuine"}))
        .await
        .expect(200);
    let next = next_of(&mut eve, &["message", "chat_message"]).await;
    assert_eq!(
        next["type"], "chat_message",
        "the forged message arrived: {next}"
    );
    let metrics = n1
        .client
        .get(n1.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("convene_cluster_unverified_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_without_redis_keeps_its_rooms_refuses_what_it_cannot_place_and_recovers() {
    let mut redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = node("n1", &db, &redis, SECRET);
    let n2 = node("n2", &db, &redis, SECRET);
    for r in ["held", "other"] {
        n1.api()
            .post("/api/v1/rooms", json!({"friendly_url": r}))
            .await
            .expect(200);
    }
    let t = room_token(&n1, "held", "Fay", "moderator").await;
    let (mut fay, joined) = try_join(&n1, "held", &t).await;
    assert_eq!(joined["type"], "joined", "{joined}");

    redis.stop();
    // n1 still serves its room: a second participant joins it, and REST on
    // n1 reaches it.
    let t2 = room_token(&n1, "held", "Gus", "attendee").await;
    let (_gus, joined) = try_join(&n1, "held", &t2).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    n1.api()
        .post("/api/v1/rooms/held/chat", json!({"message": "still here"}))
        .await
        .expect(200);
    let chat = next_of(&mut fay, &["chat_message"]).await;
    assert_eq!(chat["message"]["message"], "still here");
    // n2 cannot tell where a room runs: a clear, retryable refusal.
    let t3 = room_token(&n2, "other", "Hal", "moderator").await;
    let (_ws, refused) = try_join(&n2, "other", &t3).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "CLUSTER_UNAVAILABLE");
    assert!(refused["retry_after"].as_u64().is_some(), "{refused}");

    // Redis comes back empty: n1's heartbeat claims its room again, so a
    // join through n2 is sent to n1, and new rooms are placed again.
    redis.resume();
    let t = room_token(&n2, "held", "Ida", "attendee").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_ws, v) = try_join(&n2, "held", &t).await;
        if v["type"] == "moved" && v["node"] == "n1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n2 does not send the held room's joins to n1: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_ws, v) = try_join(&n2, "other", &t3).await;
    assert!(v["type"] == "joined" || v["type"] == "moved", "{v}");
}

/// Two browsers open the room's page on two other nodes: both are moved to
/// the room's node and decode each other; when that node is killed, they
/// meet again on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_browsers_that_reach_different_nodes_meet_on_the_rooms_node() {
    use crate::browser::{ONE_AT_A_TIME, wait_media_both};
    let _turn = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = node("n1", &db, &redis, SECRET);
    let n2 = node("n2", &db, &redis, SECRET);
    let n3 = node("n3", &db, &redis, SECRET);
    let (_browsers, ann, ben) = two_pages_through_nodes_2_and_3(&n1, &n2, &n3, "duo").await;
    for page in [&ann, &ben] {
        let trace = page.eval("window.convene.trace").await;
        assert!(
            trace.as_array().unwrap().iter().any(|e| e == "in:moved"),
            "the page was not moved: {trace}"
        );
    }
    // The live count through the third node, which neither uses, and a
    // chat message posted there reaches both pages.
    assert_eq!(live_count(&n3, "duo").await, 2);
    chat_reaches_pages(&n3, "duo", "via node 3", &[&ann, &ben]).await;

    // The room's node dies. Each page asks its own node again; once n1 is
    // gone from the registry the room is placed on another node, the
    // session n1 left open is ended, and the pages meet there.
    let mut n1 = n1;
    let killed = Instant::now();
    n1.kill9();
    let again = "window.convene.state === 'joined' && \
                 window.convene.trace.filter(e => e === 'in:joined').length >= 2";
    for page in [&ann, &ben] {
        page.wait_for(again, Duration::from_secs(40)).await;
    }
    wait_media_both(&ann, &ben).await;
    eprintln!(
        "media again {:?} after the room's node was killed",
        killed.elapsed()
    );
    eventually("one live session with both pages", || async {
        live_count(&n3, "duo").await == 2
    })
    .await;
    let sessions = n2.api().get("/api/v1/rooms/duo/live").await.expect(200);
    assert!(sessions.body["session_id"].is_string(), "{}", sessions.body);
}

/// A chat message posted over REST to `node` shows on every page.
async fn chat_reaches_pages(
    node: &Server,
    room: &str,
    text: &str,
    pages: &[&convene_tests::browser::Page],
) {
    node.api()
        .post(
            &format!("/api/v1/rooms/{room}/chat"),
            json!({"message": text}),
        )
        .await
        .expect(200);
    for page in pages {
        page.wait_for(
            &format!("window.convene.chat.some(m => m.message === '{text}')"),
            Duration::from_secs(10),
        )
        .await;
    }
}

/// A room made on `n1` with camera and microphone on at join, and two
/// speakers' pages opened on `n2` (Ann) and `n3` (Ben), joined and decoding
/// each other. The browsers are returned to keep them open.
async fn two_pages_through_nodes_2_and_3(
    n1: &Server,
    n2: &Server,
    n3: &Server,
    room: &str,
) -> (
    (
        convene_tests::browser::Browser,
        convene_tests::browser::Browser,
    ),
    convene_tests::browser::Page,
    convene_tests::browser::Page,
) {
    use crate::browser::{wait_media_both, wait_state};
    use convene_tests::browser::Browser;
    n1.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": room, "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = room_token(n1, room, "Ann", "speaker").await;
    let t_ben = room_token(n1, room, "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&n2.url(&format!("/{room}?token={t_ann}"))).await;
    wait_state(&ann, "joined").await;
    let ben = b2.open(&n3.url(&format!("/{room}?token={t_ben}"))).await;
    wait_state(&ben, "joined").await;
    wait_media_both(&ann, &ben).await;
    ((b1, b2), ann, ben)
}

/// `convene drain`: the node's room moves to the other node, its
/// participants are sent there, and the node stops once it is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_drain_moves_a_nodes_rooms_and_stops_it() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let hooks = ["--webhooks-allow-private"];
    let n1 = node_with("n1", &db, &redis, SECRET, &hooks);
    let n2 = node_with("n2", &db, &redis, SECRET, &hooks);
    let hook = n1
        .api()
        .post(
            "/api/v1/webhooks",
            json!({"endpoint": "http://127.0.0.1:9/hook", "events": ["transcript.ready"]}),
        )
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    n1.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "leaving", "recordings_enabled": true,
                   "transcription_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = room_token(&n1, "leaving", "Ann", "moderator").await;
    let t_bob = room_token(&n1, "leaving", "Bob", "attendee").await;
    let (mut ann, joined) = try_join(&n1, "leaving", &t_ann).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let (mut bob, joined) = try_join(&n1, "leaving", &t_bob).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let first_session = joined["session_id"].clone();
    let first_recording = n1
        .api()
        .post("/api/v1/rooms/leaving/recordings/start", json!({}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let drain = drain_and_wait(&n1);
    for ws in [&mut ann, &mut bob] {
        let moved = next_of(ws, &["moved", "error"]).await;
        assert_eq!(moved["type"], "moved", "{moved}");
        assert_eq!(moved["node"], "n2");
        let _ = ws.close(None).await;
    }
    drained(drain).await;

    // Both join the room again where they were sent: the same session goes
    // on there (handed over, not ended).
    let (_ann, joined) = try_join(&n2, "leaving", &t_ann).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["session_id"], first_session);
    let (_bob, joined) = try_join(&n2, "leaving", &t_bob).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["session_id"], first_session);
    eventually("two live participants", || async {
        live_count(&n2, "leaving").await == 2
    })
    .await;
    let session = first_session.as_str().unwrap();
    let live = n2
        .api()
        .get(&format!("/api/v1/sessions/{session}"))
        .await
        .expect(200);
    assert!(live.body["end_time"].is_null(), "{}", live.body);
    // Each left the drained node and joined the new one, in that session.
    let ps = n2
        .api()
        .get(&format!("/api/v1/sessions/{session}/participants"))
        .await
        .expect(200);
    let rows = ps.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{}", ps.body);
    let drained = rows
        .iter()
        .filter(|p| p["leave_reason"] == "node_drained")
        .count();
    assert_eq!(drained, 2, "{}", ps.body);
    // The recording running at the move ended there and goes on as a new
    // recording of the session on n2.
    let recs = n2
        .api()
        .get(&format!("/api/v1/recordings?session_id={session}"))
        .await
        .expect(200);
    let recs = recs.body["data"].as_array().unwrap().clone();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let (before, after): (Vec<&Value>, Vec<&Value>) = recs
        .iter()
        .partition(|r| r["id"] == first_recording.as_str());
    assert_eq!(before[0]["stop_reason"], "node_drained", "{recs:#?}");
    assert_ne!(before[0]["status"], "IN_PROGRESS", "{recs:#?}");
    assert_eq!(after[0]["status"], "IN_PROGRESS", "{recs:#?}");
    assert_eq!(after[0]["started_by"], "api", "{recs:#?}");
    // So does the live transcription, on n2.
    assert_eq!(metric(&n2, "convene_transcribers_started_total").await, 1.0);
    // Ending it through either node ends it once, with the real reason.
    n2.api()
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await
        .expect(204);
    eventually("the session ends", || async {
        let s = n2
            .api()
            .get(&format!("/api/v1/sessions/{session}"))
            .await
            .expect(200);
        !s.body["end_time"].is_null()
    })
    .await;
    let second = after[0]["id"].as_str().unwrap();
    let rec = n2
        .api()
        .get(&format!("/api/v1/recordings/{second}"))
        .await
        .expect(200);
    assert_eq!(rec.body["stop_reason"], "session_ended", "{}", rec.body);
    // One transcript, complete once: at the session's end, not at the move.
    let ready = || async {
        let d = n2
            .api()
            .get(&format!("/api/v1/webhooks/{hook}/deliveries?limit=100"))
            .await
            .expect(200)
            .body;
        d["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["event"] == "transcript.ready")
            .count()
    };
    eventually("transcript.ready is queued", || async {
        ready().await >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ready().await, 1);
    // A server that is not a cluster node refuses nothing and stays up.
    let single = Server::start();
    let (ok, stdout, stderr) = single.cli(&["drain"]);
    assert!(ok, "{stdout} {stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    single.api().get("/api/v1/rooms").await.expect(200);
    // No server with that data dir: a clear error.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(convene_tests::binary("convene"))
        .args(["drain", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server"));
}

/// `convene drain --wait` on `s`'s data dir, in the background.
fn drain_and_wait(s: &Server) -> tokio::task::JoinHandle<std::process::Output> {
    let data_dir = s.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(convene_tests::binary("convene"))
            .args(["drain", "--wait", "--timeout-secs", "60", "--data-dir"])
            .arg(&data_dir)
            .output()
            .unwrap()
    })
}

/// The drain `drain_and_wait` started ended with its node stopped.
async fn drained(drain: tokio::task::JoinHandle<std::process::Output>) {
    let out = drain.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drained and stopped"), "{stdout}");
}

/// Every node delivers webhooks from the one outbox in the shared database:
/// each event reaches the receiver once, not once per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nodes_deliver_each_webhook_event_once() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| node_with(id, &db, &redis, SECRET, &["--webhooks-allow-private"]))
        .collect();
    let receiver = crate::webhooks::Receiver::start().await;
    nodes[0]
        .api()
        .post(
            "/api/v1/webhooks",
            json!({"endpoint": receiver.url("rooms"), "events": ["room.created"]}),
        )
        .await
        .expect(200);
    // Thirty rooms, created through all three nodes.
    for i in 0..30 {
        nodes[i % 3]
            .api()
            .post(
                "/api/v1/rooms",
                json!({"friendly_url": format!("hooked-{i}")}),
            )
            .await
            .expect(200);
    }
    receiver
        .wait_for("rooms", "thirty room.created", |h| h.len() >= 30)
        .await;
    // Three more poll intervals: a duplicate would have arrived by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rooms: Vec<String> = receiver
        .ok_hits("rooms")
        .iter()
        .map(|h| {
            h.json()["data"]["friendly_url"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(rooms.len(), 30, "{rooms:?}");
    rooms.sort();
    rooms.dedup();
    assert_eq!(rooms.len(), 30, "{rooms:?}");
}

/// Runs `redis-cli` against the test Redis.
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (the redis-tools package comes with redis-server)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A node of a cluster whose media links listen on `link_port`.
fn linked_node(id: &str, db: &str, redis: &Redis, link_port: u16) -> Server {
    node_with(
        id,
        db,
        redis,
        SECRET,
        &["--node-link-addr", &format!("127.0.0.1:{link_port}")],
    )
}

/// The value of a metric on `s` (0 when it is absent).
pub(crate) async fn metric(s: &Server, name: &str) -> f64 {
    s.metric(name).await.unwrap_or(0.0)
}

/// A str0m participant's options for `room` through `s` (`via`: the node
/// its `moved` named).
fn span_opts(s: &Server, room: &str, token: String, via: Option<String>) -> ClientOptions {
    ClientOptions {
        room: Some(room.into()),
        node_via: via,
        ..ClientOptions::with_token(s.ws_url(), token)
    }
}

/// Cat and Dan in a room that spans two nodes, each receiving the other.
struct Spanned {
    cat: Client,
    dan: Client,
    dan_token: String,
    dan_joined: Value,
}

/// Cat joins `room` on its node `n1` and publishes; Dan reaches the other
/// node `n2` (named `via`), is `moved` with `via`, joins through `n1`
/// keeping his media on `n2`, and publishes. Each receives the other's
/// camera and microphone.
async fn cat_and_dan_span(n1: &Server, n2: &Server, room: &str, via: &str) -> Spanned {
    let cat_token = room_token(n1, room, "Cat", "moderator").await;
    let mut cat = Client::connect(span_opts(n1, room, cat_token, None)).await;
    cat.wait_type("joined").await;
    cat.publish();
    cat.wait_type("answer").await;
    let dan_token = room_token(n1, room, "Dan", "speaker").await;
    let (ws, moved) = try_join(n2, room, &dan_token).await;
    drop(ws);
    assert_eq!(moved["type"], "moved", "{moved}");
    assert_eq!(moved["via"], via, "{moved}");
    let mut dan = Client::connect(span_opts(n1, room, dan_token.clone(), Some(via.into()))).await;
    let dan_joined = dan.wait_type("joined").await;
    dan.publish();
    dan.wait_type("answer").await;
    for (who, c) in [("Dan", &mut dan), ("Cat", &mut cat)] {
        for kind in [MediaKind::Video, MediaKind::Audio] {
            c.wait_rtp(kind, 20, Duration::from_secs(20)).await;
        }
        eprintln!("{who} receives the other's media");
    }
    Spanned {
        cat,
        dan,
        dan_token,
        dan_joined,
    }
}

/// A room spans two nodes: Cat's peer is on the room's node, Dan's stays
/// on the node he reached (`moved` names it `via`), and each receives the
/// other's camera and microphone over the encrypted link between the
/// nodes. A stranger on the link port is refused. When Dan's node dies,
/// Dan hears `MEDIA_LOST`, resumes on the room's node, and receives again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_room_spans_two_nodes_and_media_crosses_the_link() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let (p1, p2) = (free_port(), free_port());
    let n1 = linked_node("n1", &db, &redis, p1);
    let mut n2 = linked_node("n2", &db, &redis, p2);
    for n in [&n1, &n2] {
        eventually("the nodes link", || async {
            metric(n, "convene_node_links_up").await == 1.0
        })
        .await;
    }
    // Somebody without the cluster secret on the link port: refused.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p1)).unwrap();
        let _ = s.write_all(&[0, 48]);
        let _ = s.write_all(&[0x42; 48]);
        eventually("the stranger is refused", || async {
            metric(&n1, "convene_node_link_refused_total").await >= 1.0
        })
        .await;
    }
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "span"}))
        .await
        .expect(200);
    // Both nodes are idle: the room goes to the first by name, n1.
    let Spanned {
        cat: _cat,
        mut dan,
        dan_token,
        dan_joined: joined,
    } = cat_and_dan_span(&n1, &n2, "span", "n2").await;
    // Each node keeps one of the two peers: Dan's media did not go to the
    // room's node, and packets crossed the link.
    for n in [&n1, &n2] {
        eventually("one peer on each node", || async {
            metric(n, "convene_peers").await == 1.0
        })
        .await;
        assert!(metric(n, "convene_rtp_packets_relayed_total").await > 0.0);
    }
    assert_eq!(live_count(&n2, "span").await, 2);

    // Dan's node dies: his media is lost, and a resume (its node gone)
    // puts his peer on the room's node.
    let resume = joined["resume_token"].as_str().unwrap().to_string();
    let killed = Instant::now();
    n2.kill9();
    let lost = dan
        .wait_signal(Duration::from_secs(10), |v| v["code"] == "MEDIA_LOST")
        .await;
    assert_eq!(lost["type"], "error", "{lost}");
    dan.vanish();
    let mut dan = Client::connect(ClientOptions {
        resume: Some(resume),
        ..span_opts(&n1, "span", dan_token, Some("n2".into()))
    })
    .await;
    dan.wait_type("joined").await;
    dan.wait_rtp(MediaKind::Video, 20, Duration::from_secs(10))
        .await;
    eprintln!(
        "Dan receives again {:?} after his node died",
        killed.elapsed()
    );
}

/// A drained node hands back the peers it keeps for another node's room
/// before it stops: Dan's media is on n2 for a room on n1; draining n2
/// tells him `MEDIA_LOST` (the node drains), n2 stops, and his resume gets
/// a peer on n1 (n2 drains, so `via` is passed by) that receives again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_drain_hands_back_the_peers_a_node_keeps_for_another_nodes_room() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let (p1, p2) = (free_port(), free_port());
    let n1 = linked_node("n1", &db, &redis, p1);
    let n2 = linked_node("n2", &db, &redis, p2);
    for n in [&n1, &n2] {
        eventually("the nodes link", || async {
            metric(n, "convene_node_links_up").await == 1.0
        })
        .await;
    }
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "handback"}))
        .await
        .expect(200);
    let opts = |token: String, via: Option<String>| span_opts(&n1, "handback", token, via);
    let cat_token = room_token(&n1, "handback", "Cat", "moderator").await;
    let mut cat = Client::connect(opts(cat_token, None)).await;
    cat.wait_type("joined").await;
    cat.publish();
    cat.wait_type("answer").await;
    let dan_token = room_token(&n1, "handback", "Dan", "attendee").await;
    let mut dan = Client::connect(opts(dan_token.clone(), Some("n2".into()))).await;
    let joined = dan.wait_type("joined").await;
    dan.wait_rtp(MediaKind::Video, 20, Duration::from_secs(20))
        .await;
    eventually("Dan's peer is kept on n2", || async {
        metric(&n2, "convene_peers").await == 1.0
    })
    .await;

    let drain = drain_and_wait(&n2);
    let lost = dan
        .wait_signal(Duration::from_secs(10), |v| v["code"] == "MEDIA_LOST")
        .await;
    assert!(
        lost["message"].as_str().unwrap().contains("draining"),
        "{lost}"
    );
    drained(drain).await;
    let resume = joined["resume_token"].as_str().unwrap().to_string();
    dan.vanish();
    let mut dan = Client::connect(ClientOptions {
        resume: Some(resume),
        ..opts(dan_token, Some("n2".into()))
    })
    .await;
    dan.wait_type("joined").await;
    dan.wait_rtp(MediaKind::Video, 20, Duration::from_secs(10))
        .await;
    assert_eq!(metric(&n1, "convene_peers").await, 2.0);
    assert_eq!(live_count(&n1, "handback").await, 2);
}

/// Decoded video frames grow on `page` over a second (it decodes now, not
/// only before).
const DECODING_NOW: &str = "(async () => { \
    const a = (await window.convene.stats()).framesDecoded; \
    await new Promise(r => setTimeout(r, 1000)); \
    const b = (await window.convene.stats()).framesDecoded; \
    return b > a ? {before: a, after: b} : null; })()";

/// Three nodes, one room (issue 20): the room runs on node 1, Ann's page
/// reaches node 2 and Ben's node 3; each page's signaling is sent to node 1
/// but its media stays on the node it reached, and the two decode each
/// other through the link between nodes 2 and 3. A chat message posted to
/// node 1 reaches both pages; the live count is 2 through any node. Node 3
/// is killed: Ben's page hears `MEDIA_LOST`, resumes, gets a peer on node 1
/// and decodes Ann again, and Ann decodes Ben's new camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_browsers_on_two_nodes_decode_each_other_through_the_link() {
    use crate::browser::ONE_AT_A_TIME;
    let _turn = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = linked_node("n1", &db, &redis, free_port());
    let n2 = linked_node("n2", &db, &redis, free_port());
    let mut n3 = linked_node("n3", &db, &redis, free_port());
    for n in [&n1, &n2, &n3] {
        eventually("every node links to the two others", || async {
            metric(n, "convene_node_links_up").await == 2.0
        })
        .await;
    }
    let (_browsers, ann, ben) = two_pages_through_nodes_2_and_3(&n1, &n2, &n3, "trio").await;
    for page in [&ann, &ben] {
        let trace = page.eval("window.convene.trace").await;
        assert!(
            trace.as_array().unwrap().iter().any(|e| e == "in:moved"),
            "the page's signaling was not sent to the room's node: {trace}"
        );
    }
    // The media is on nodes 2 and 3, none on the room's node.
    for (n, peers) in [(&n1, 0.0), (&n2, 1.0), (&n3, 1.0)] {
        eventually("each page's peer on the node it reached", || async {
            metric(n, "convene_peers").await == peers
        })
        .await;
    }
    assert!(metric(&n2, "convene_rtp_packets_relayed_total").await > 0.0);
    assert!(metric(&n3, "convene_rtp_packets_relayed_total").await > 0.0);
    for n in [&n1, &n2, &n3] {
        assert_eq!(live_count(n, "trio").await, 2);
    }
    chat_reaches_pages(&n1, "trio", "via node 1", &[&ann, &ben]).await;

    // Node 3 dies with Ben's media.
    let killed = Instant::now();
    n3.kill9();
    ben.wait_for(
        "window.convene.trace.includes('in:error:MEDIA_LOST') && \
         window.convene.state === 'joined' && \
         window.convene.trace.filter(e => e === 'in:joined').length >= 2",
        Duration::from_secs(10),
    )
    .await;
    let back = ben.wait_for(DECODING_NOW, Duration::from_secs(10)).await;
    eprintln!(
        "Ben decodes Ann again {:?} after node 3 was killed: {back}",
        killed.elapsed()
    );
    let ann_now = ann.wait_for(DECODING_NOW, Duration::from_secs(10)).await;
    eprintln!("Ann decodes Ben's new camera: {ann_now}");
    eventually("Ben's new peer on the room's node", || async {
        metric(&n1, "convene_peers").await == 1.0
    })
    .await;
    assert_eq!(live_count(&n2, "trio").await, 2);
}

/// A recording of a room whose only participant's peer is kept on another
/// node: the room's node holds the room for its recorder alone, the other
/// node relays the tracks to it, and the file has the participant's video
/// and audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_records_a_participant_whose_media_is_on_another_node() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let n1 = linked_node("n1", &db, &redis, free_port());
    let n2 = linked_node("n2", &db, &redis, free_port());
    for n in [&n1, &n2] {
        eventually("the nodes link", || async {
            metric(n, "convene_node_links_up").await == 1.0
        })
        .await;
    }
    n1.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "taped", "recordings_enabled": true}),
        )
        .await
        .expect(200);
    // A first participant on n1 places the room there, then leaves.
    let eve = room_token(&n1, "taped", "Eve", "moderator").await;
    let (mut ws, first) = try_join(&n1, "taped", &eve).await;
    assert_eq!(first["type"], "joined", "{first}");
    ws.send(Message::Text(json!({"type": "leave"}).to_string().into()))
        .await
        .unwrap();
    let fay = room_token(&n1, "taped", "Fay", "moderator").await;
    let mut fay = Client::connect(ClientOptions {
        room: Some("taped".into()),
        node_via: Some("n2".into()),
        ..ClientOptions::with_token(n1.ws_url(), fay)
    })
    .await;
    let joined = fay.wait_type("joined").await;
    let fay_id = joined["participant"]["id"].as_str().unwrap().to_string();
    fay.publish();
    fay.wait_type("answer").await;
    eventually("Fay's peer is on n2 only", || async {
        metric(&n2, "convene_peers").await == 1.0 && metric(&n1, "convene_peers").await == 0.0
    })
    .await;
    let id = n1
        .api()
        .post("/api/v1/rooms/taped/recordings/start", json!({}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    fay.collect_for(Duration::from_secs(6)).await;
    n1.api()
        .post("/api/v1/rooms/taped/recordings/stop", json!({}))
        .await
        .expect(200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        let r = n1
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        let f = r["files"].as_array().and_then(|fs| {
            fs.iter()
                .find(|f| f["participant_id"] == fay_id.as_str() && f["complete"] == true)
                .cloned()
        });
        if let Some(f) = f {
            break f;
        }
        assert!(
            Instant::now() < deadline && r["status"] != "FAILED",
            "no complete file for Fay: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(file["video_codec"], "vp8", "{file}");
    assert_eq!(file["audio_codec"], "opus", "{file}");
    let ms = file["duration_ms"].as_i64().unwrap();
    assert!(ms >= 3000, "Fay's file lasts {ms} ms of ~6 s: {file}");
}

/// Two nodes that may restream to private addresses, and `room` created
/// through n1 with Gus (moderator) joined there, so it runs on n1: the
/// Redis server, the nodes, Gus's token, his socket and `joined`.
async fn restreaming_pair(room: &str) -> (Redis, Server, Server, String, Socket, Value) {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let flags = ["--restream-allow-private"];
    let n1 = node_with("n1", &db, &redis, SECRET, &flags);
    let n2 = node_with("n2", &db, &redis, SECRET, &flags);
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": room}))
        .await
        .expect(200);
    let t = room_token(&n1, room, "Gus", "moderator").await;
    let (ws, first) = try_join(&n1, room, &t).await;
    assert_eq!(first["type"], "joined", "{first}");
    (redis, n1, n2, t, ws, first)
}

/// A restream started and stopped over REST on a node the room does not
/// run on: the room's node streams to the receiver, and the stream key
/// crosses Redis only sealed (a subscriber to the room node's channel never
/// sees it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restreams_a_room_on_another_node_without_the_key_in_redis() {
    use crate::restream::{KEY, Receiver};
    let (redis, n1, n2, _, _ws, _) = restreaming_pair("aired").await;
    // Everything published on the room's node's channel, from now on.
    let spy_out = tempfile::NamedTempFile::new().unwrap();
    let mut spy = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "SUBSCRIBE",
            "convene:node:n1",
        ])
        .stdout(spy_out.reopen().unwrap())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live");
    let mut rx = Receiver::start(port, &tmp.path().join("aired.flv"));
    let started = n2
        .api()
        .post(
            "/api/v1/rooms/aired/restreamers/start",
            json!({"server_url": url, "stream_key": KEY}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(started["server_url"], url.as_str(), "{started}");
    assert_eq!(started["status"], "starting", "{started}");
    rx.wait_bytes(0).await;
    let listed = n2
        .api()
        .post(
            "/api/v1/rooms/aired/restreamers/stop",
            json!({"server_url": url}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(listed["data"][0]["id"], started["id"], "{listed}");
    rx.wait_exit().await;
    let _ = spy.kill();
    let _ = spy.wait();
    let seen = std::fs::read_to_string(spy_out.path()).unwrap();
    assert!(
        seen.contains("restream"),
        "the request did not cross Redis: {seen}"
    );
    assert!(!seen.contains(KEY), "the stream key crossed Redis in clear");
    // A room that is live nowhere: the same refusal through any node.
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "quiet"}))
        .await
        .expect(200);
    n2.api()
        .post(
            "/api/v1/rooms/quiet/restreamers/start",
            json!({"server_url": url, "stream_key": KEY}),
        )
        .await
        .expect(409);
}

/// A restream running when its room's node drains starts again on the
/// room's new node, to the same destination (its key stored sealed with
/// the session until that node takes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_drain_starts_a_running_restream_again_on_the_rooms_new_node() {
    use crate::restream::{KEY, Receiver};
    let (_redis, n1, n2, t, mut ws, first) = restreaming_pair("onair").await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live");
    let mut rx = Receiver::start(port, &tmp.path().join("before.flv"));
    n1.api()
        .post(
            "/api/v1/rooms/onair/restreamers/start",
            json!({"server_url": url, "stream_key": KEY}),
        )
        .await
        .expect(200);
    rx.wait_bytes(0).await;

    let drain = drain_and_wait(&n1);
    let moved = next_of(&mut ws, &["moved", "error"]).await;
    assert_eq!(moved["node"], "n2", "{moved}");
    let _ = ws.close(None).await;
    drained(drain).await;
    // n1's stream ended with it; n2 publishes to the same destination once
    // the room's first participant is back.
    rx.wait_exit().await;
    let rx = Receiver::start(port, &tmp.path().join("after.flv"));
    let (_ws, joined) = try_join(&n2, "onair", &t).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["session_id"], first["session_id"]);
    rx.wait_bytes(0).await;
}
