//! Webhooks against a real HTTP receiver in the test process: CRUD and
//! validation, signatures and the Authorization header of every event the
//! server can produce today, retries with backoff, redelivery, durability
//! across kill -9, and the SSRF guard.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use convene_tests::{Api, Options, Server, join};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub(crate) const SECRET: &str = "whsec-test-0123456789";
const AUTHORIZATION: &str = "Bearer receiver-token-abc";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The status the receiver answered.
    answered: u16,
}

impl Hit {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub(crate) fn event(&self) -> String {
        self.json()["event"].as_str().unwrap().to_string()
    }
}

struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    /// Requests to `/flaky` answer 500 while this is above zero.
    flaky_failures_left: AtomicUsize,
    /// Requests to `/hold` are counted here on arrival, then wait for a permit.
    held: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

impl Default for ReceiverState {
    fn default() -> Self {
        ReceiverState {
            hits: Mutex::default(),
            flaky_failures_left: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(0),
        }
    }
}

/// An HTTP receiver on 127.0.0.1: `/fail` always answers 500, `/flaky`
/// answers 500 `flaky_failures_left` times, `/hold` waits for a permit of
/// `gate`, everything else answers 200.
pub(crate) struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if path == "hold" {
        state.held.fetch_add(1, Ordering::SeqCst);
        state.gate.acquire().await.unwrap().forget();
    }
    let flaky_fails = path == "flaky"
        && state
            .flaky_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if path == "fail" || flaky_fails {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.hits.lock().unwrap().push(Hit {
        path,
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(receive))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Successful (200) hits on `path`.
    pub(crate) fn ok_hits(&self, path: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == path && h.answered == 200)
            .collect()
    }

    /// Waits until `pred` holds on the successful hits of `path`.
    pub(crate) async fn wait_for(
        &self,
        path: &str,
        what: &str,
        pred: impl Fn(&[Hit]) -> bool,
    ) -> Vec<Hit> {
        for _ in 0..300 {
            let hits = self.ok_hits(path);
            if pred(&hits) {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events: Vec<String> = self.ok_hits(path).iter().map(Hit::event).collect();
        panic!("receiver /{path} never got {what}; got {events:?}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn hmac_hex(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// What a receiver must check: both signatures (constant-time comparison
/// left to real receivers), the timestamp window, and the Authorization header.
#[track_caller]
fn verify_signed(hit: &Hit) {
    let sig = hit.header("x-signature").expect("X-Signature");
    assert_eq!(
        sig,
        hmac_hex(&[&hit.body]),
        "X-Signature of {}",
        hit.event()
    );
    let ts = hit
        .header("x-webhook-timestamp")
        .expect("X-Webhook-Timestamp");
    let ts_num: i64 = ts.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - ts_num).abs() < 300, "timestamp {ts} is not recent");
    let v1 = hit
        .header("x-webhook-signature")
        .expect("X-Webhook-Signature");
    assert_eq!(
        v1,
        format!("v1={}", hmac_hex(&[ts.as_bytes(), b".", &hit.body])),
        "X-Webhook-Signature of {}",
        hit.event()
    );
    assert_eq!(hit.header("authorization"), Some(AUTHORIZATION));
    assert!(hit.header("x-webhook-id").is_some_and(|id| !id.is_empty()));
    assert!(
        hit.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

fn local_server(extra_env: Vec<(String, String)>) -> Server {
    let mut env = vec![(
        "CONVENE_WEBHOOK_RETRY_BASE_MS".to_string(),
        "100".to_string(),
    )];
    env.extend(extra_env);
    Server::start_with(Options {
        args: vec!["--webhooks-allow-private".into()],
        env,
        ..Options::default()
    })
}

async fn create_webhook(api: &Api, body: Value) -> String {
    api.post("/api/v1/webhooks", body).await.expect(200).body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls the delivery history of a webhook until `pred` holds.
async fn history_until(api: &Api, webhook: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/webhooks/{webhook}/deliveries?order=asc");
    for _ in 0..300 {
        let body = api.get(&path).await.expect(200).body;
        if pred(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "delivery history never satisfied the condition: {}",
        api.get(&path).await.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_crud_and_validation() {
    // The SSRF guard is on here: endpoints are public IP literals (nothing
    // is ever sent to them: this test triggers no event).
    let s = Server::start();
    let api = s.api();

    let events = api.get("/api/v1/events").await.expect(200).body;
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for e in [
        "session.started",
        "session.ended",
        "participant.joined",
        "participant.left",
        "recording.started",
        "recording.stopped",
        "recording.ready",
        "transcript.ready",
        "room.created",
        "room.deleted",
        "chat.message",
        "poll.launched",
        "poll.ended",
        "restreaming.started",
        "restreaming.stopped",
        "restreaming.failed",
    ] {
        assert!(names.contains(&e), "{e} missing from {events}");
    }

    let r = api.get("/api/v1/webhooks").await.expect(200);
    assert_eq!(r.body, json!({"total_count": 0, "data": []}));

    let created = api
        .post(
            "/api/v1/webhooks",
            json!({
                "endpoint": "https://203.0.113.10/hooks/convene",
                "name": "Backend",
                "events": ["participant.joined", "participant_left", "room.created"],
                "secret": SECRET,
                "authorization_header": AUTHORIZATION,
                "unknown_field": "ignored",
            }),
        )
        .await
        .expect(200)
        .body;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["endpoint"], "https://203.0.113.10/hooks/convene");
    assert_eq!(created["name"], "Backend");
    assert_eq!(
        created["events"],
        json!(["participant.joined", "participant_left", "room.created"]),
        "events are kept as subscribed"
    );
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["has_authorization_header"], true);
    let text = created.to_string();
    assert!(!text.contains(SECRET), "the secret never leaves: {text}");
    assert!(
        !text.contains("receiver-token"),
        "nor the authorization header"
    );
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let got = api
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(got["id"], id.as_str());
    assert!(!got.to_string().contains(SECRET));

    let list = api.get("/api/v1/webhooks").await.expect(200).body;
    assert_eq!(list["total_count"], 1);
    assert_eq!(list["data"][0]["id"], id.as_str());

    // PATCH changes only what is given; null clears the secret.
    let patched = api
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"name": "Renamed", "secret": null, "events": ["session_ended"]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["has_secret"], false);
    assert_eq!(patched["has_authorization_header"], true);
    assert_eq!(patched["events"], json!(["session_ended"]));
    assert_eq!(patched["endpoint"], "https://203.0.113.10/hooks/convene");

    // Validation: one failing case per rule.
    let base = || json!({"endpoint": "https://203.0.113.10/x", "events": ["room.created"]});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(&str, Value)> = vec![
        ("endpoint", without("endpoint")),
        ("endpoint", with("endpoint", json!(42))),
        ("endpoint", with("endpoint", json!("not a url"))),
        ("endpoint", with("endpoint", json!("ftp://203.0.113.10/x"))),
        (
            "endpoint",
            with(
                "endpoint",
                json!(format!("https://203.0.113.10/{}", "a".repeat(2100))),
            ),
        ),
        (
            "endpoint",
            with("endpoint", json!("https://u:p@203.0.113.10/")),
        ),
        ("events", without("events")),
        ("events", with("events", json!([]))),
        ("events", with("events", json!("room.created"))),
        (
            "events",
            with("events", json!(["room.created", "no.such_event"])),
        ),
        ("events", with("events", json!([1]))),
        ("name", with("name", json!("n".repeat(256)))),
        ("name", with("name", json!(5))),
        ("secret", with("secret", json!(""))),
        ("secret", with("secret", json!("s".repeat(257)))),
        ("secret", with("secret", json!(true))),
        (
            "authorization_header",
            with("authorization_header", json!("Bearer a\r\nX-Evil: 1")),
        ),
        (
            "authorization_header",
            with("authorization_header", json!("a".repeat(1025))),
        ),
    ];
    for (field, body) in cases {
        let r = api.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(r.status, 422, "{field}: {body} -> {}", r.body);
        r.expect_invalid(field);
    }
    api.patch(&format!("/api/v1/webhooks/{id}"), json!({"events": []}))
        .await
        .expect_invalid("events");
    api.patch(
        &format!("/api/v1/webhooks/{id}"),
        json!({"endpoint": "mailto:x@y"}),
    )
    .await
    .expect_invalid("endpoint");
    let bad_json = s
        .client
        .post(s.url("/api/v1/webhooks"))
        .bearer_auth(convene_tests::KEY)
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);

    // Deliveries of an unknown webhook / delivery.
    api.get("/api/v1/webhooks/nope/deliveries")
        .await
        .expect(404);
    let r = api
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    assert_eq!(r.body, json!({"total_count": 0, "data": []}));
    api.get(&format!("/api/v1/webhooks/{id}/deliveries?limit=0"))
        .await
        .expect_invalid("limit");
    api.get(&format!("/api/v1/webhooks/{id}/deliveries?status=weird"))
        .await
        .expect_invalid("status");
    api.post(
        &format!("/api/v1/webhooks/{id}/deliveries/nope/redeliver"),
        json!({}),
    )
    .await
    .expect(404);

    // Teams are isolated.
    let (_, other_key) = s.create_team("Other");
    let other = s.api_with_key(&other_key);
    other
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(404);
    other
        .patch(&format!("/api/v1/webhooks/{id}"), json!({"name": "x"}))
        .await
        .expect(404);
    other
        .delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(404);
    assert_eq!(
        other.get("/api/v1/webhooks").await.expect(200).body["total_count"],
        0
    );

    let r = api
        .delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(204);
    assert!(r.raw.is_empty());
    api.get(&format!("/api/v1/webhooks/{id}")).await.expect(404);
    api.delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(404);
}

/// A team holds at most 100 webhooks, also when creates race: the count
/// and the insert are one transaction, so twenty concurrent creates with
/// five places left make exactly five webhooks, and the other fifteen are
/// 409 with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_pass_the_team_webhook_limit() {
    let s = Server::start();
    let api = s.api();
    let body = |i: usize| json!({"endpoint": format!("https://203.0.113.7/hook/{i}"), "events": ["room.created"]});
    for i in 0..95 {
        create_webhook(&api, body(i)).await;
    }
    let creates = (95..115).map(|i| {
        let api = api.clone();
        let body = body(i);
        async move { api.post("/api/v1/webhooks", body).await }
    });
    let results = futures::future::join_all(creates).await;
    let made = results.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.status == 409).collect();
    assert_eq!(
        made,
        5,
        "five places were left: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 15);
    for r in refused {
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("at most 100 webhooks"),
            "{}",
            r.body
        );
    }
    let list = api.get("/api/v1/webhooks?limit=100").await.expect(200).body;
    assert_eq!(list["total_count"], 100, "{list}");
    // At the limit a sequential create is refused too, and a delete makes room.
    api.post("/api/v1/webhooks", body(200)).await.expect(409);
    let first = list["data"][0]["id"].as_str().unwrap().to_string();
    api.delete(&format!("/api/v1/webhooks/{first}"))
        .await
        .expect(204);
    create_webhook(&api, body(201)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_guard_refuses_private_endpoints() {
    let s = Server::start();
    let api = s.api();
    for endpoint in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://192.168.1.10:8080/hook",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:9000/",
        "http://2130706433/",
    ] {
        let r = api
            .post(
                "/api/v1/webhooks",
                json!({"endpoint": endpoint, "events": ["room.created"]}),
            )
            .await;
        assert_eq!(r.status, 422, "{endpoint} must be refused: {}", r.body);
        let msg = r.body["errors"]["endpoint"][0].as_str().unwrap();
        assert!(
            msg.contains("public addresses") && msg.contains("--webhooks-allow-private"),
            "{endpoint}: {msg}"
        );
    }
    // An update to a private address is refused too.
    let id = create_webhook(
        &api,
        json!({"endpoint": "https://203.0.113.20/x", "events": ["room.created"]}),
    )
    .await;
    api.patch(
        &format!("/api/v1/webhooks/{id}"),
        json!({"endpoint": "http://169.254.169.254/latest/meta-data"}),
    )
    .await
    .expect_invalid("endpoint");
    api.delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(204);

    // Delivery time: a private endpoint that got into the database anyway
    // (e.g. stored while the operator allowed them) is refused when sending.
    let receiver = Receiver::start().await;
    let db = s.db().await;
    let team_id = db
        .text("SELECT id FROM teams WHERE is_default = TRUE", &[])
        .await;
    db.execute(
        "INSERT INTO webhooks (id, team_id, endpoint, events, created_at, updated_at)
         VALUES ('smuggled', $1, $2, '[\"room.created\"]', '2026-01-01T00:00:00.000000Z',
                 '2026-01-01T00:00:00.000000Z')",
        &[&team_id, &receiver.url("smuggled")],
    )
    .await;
    db.close().await;
    api.post("/api/v1/rooms", json!({"friendly_url": "guarded"}))
        .await
        .expect(200);
    let h = history_until(&api, "smuggled", |b| {
        b["data"][0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let d = &h["data"][0];
    assert_eq!(d["status"], "pending", "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("loopback"),
        "{d}"
    );
    assert_eq!(d["last_status_code"], Value::Null);
    assert!(receiver.hits().is_empty(), "nothing reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_signed_and_authorized() {
    let s = local_server(vec![]);
    let api = s.api();
    let receiver = Receiver::start().await;
    // Subscribed in both spellings; deliveries use the subscribed one.
    let subscribed = [
        "room.created",
        "session_started",
        "participant.joined",
        "chat_message",
        "poll.launched",
        "poll_ended",
        "participant.left",
        "session.ended",
        "room_deleted",
    ];
    let signed = create_webhook(
        &api,
        json!({
            "endpoint": receiver.url("signed"),
            "name": "signed",
            "events": subscribed,
            "secret": SECRET,
            "authorization_header": AUTHORIZATION,
        }),
    )
    .await;
    // A second webhook: no credentials, one event.
    create_webhook(
        &api,
        json!({"endpoint": receiver.url("plain"), "events": ["participant_joined"]}),
    )
    .await;

    let room = api
        .post("/api/v1/rooms", json!({"friendly_url": "hooked"}))
        .await
        .expect(200)
        .body;
    let room_id = room["id"].as_str().unwrap().to_string();
    let token = api
        .post(
            "/api/v1/rooms/hooked/token",
            json!({"u": "Alice", "ud": "ext-alice", "role": "moderator"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut alice, joined) = join(&s, "hooked", "ignored", Some(token)).await;
    let session_id = joined["session_id"].as_str().unwrap().to_string();
    let alice_id = joined["participant"]["id"].as_str().unwrap().to_string();
    let msg = api
        .post(
            "/api/v1/rooms/hooked/chat",
            json!({"message": "hello hooks"}),
        )
        .await
        .expect(200)
        .body;
    let poll = api
        .post(
            "/api/v1/rooms/hooked/polls",
            json!({"question": "Ship it?", "type": "single",
                   "options": [{"label": "Yes"}, {"label": "No"}]}),
        )
        .await
        .expect(200)
        .body;
    let poll_id = poll["id"].as_str().unwrap().to_string();
    alice.send(json!({"type": "poll_launch", "poll_id": poll_id}));
    alice
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "poll_launched")
        .await;
    alice.send(json!({"type": "poll_end", "poll_id": poll_id}));
    alice
        .wait_signal(Duration::from_secs(10), |v| v["type"] == "poll_ended")
        .await;
    alice.leave();
    receiver
        .wait_for("signed", "session.ended", |h| {
            h.iter().any(|h| h.event() == "session.ended")
        })
        .await;
    api.delete("/api/v1/rooms/hooked").await.expect(204);

    let hits = receiver
        .wait_for("signed", "all nine events", |h| h.len() >= 9)
        .await;
    let events: Vec<String> = hits.iter().map(Hit::event).collect();
    assert_eq!(events, subscribed, "in order, named as subscribed");
    let mut ids = std::collections::HashSet::new();
    for hit in &hits {
        verify_signed(hit);
        assert!(ids.insert(hit.header("x-webhook-id").unwrap().to_string()));
        let body = hit.json();
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["data"]["room_id"], room_id.as_str(), "{body}");
    }
    let by = |e: &str| hits.iter().find(|h| h.event() == e).unwrap().json();
    assert_eq!(by("room.created")["data"]["friendly_url"], "hooked");
    assert_eq!(
        by("session_started")["data"]["session_id"],
        session_id.as_str()
    );
    let j = by("participant.joined");
    assert_eq!(j["data"]["session_id"], session_id.as_str());
    assert_eq!(j["data"]["participant_id"], alice_id.as_str());
    assert_eq!(j["data"]["name"], "Alice");
    assert_eq!(j["data"]["external_id"], "ext-alice");
    let c = by("chat_message");
    assert_eq!(c["data"]["message"], "hello hooks");
    assert_eq!(c["data"]["message_id"], msg["id"]);
    assert_eq!(c["data"]["session_id"], session_id.as_str());
    for e in ["poll.launched", "poll_ended"] {
        let p = by(e);
        assert_eq!(p["data"]["poll_id"], poll_id.as_str(), "{p}");
        assert_eq!(p["data"]["question"], "Ship it?");
        assert_eq!(p["data"]["session_id"], session_id.as_str());
    }
    let l = by("participant.left");
    assert_eq!(l["data"]["participant_id"], alice_id.as_str());
    assert_eq!(l["data"]["name"], "Alice");
    assert_eq!(l["data"]["external_id"], "ext-alice");
    assert_eq!(
        by("session.ended")["data"]["session_id"],
        session_id.as_str()
    );
    assert_eq!(by("room_deleted")["data"]["friendly_url"], "hooked");

    // The unsigned webhook got its one event, unsigned and without Authorization.
    let plain = receiver
        .wait_for("plain", "participant_joined", |h| !h.is_empty())
        .await;
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].event(), "participant_joined");
    assert_eq!(plain[0].json()["data"]["participant_id"], alice_id.as_str());
    assert!(plain[0].header("x-signature").is_none());
    assert!(plain[0].header("x-webhook-signature").is_none());
    assert!(plain[0].header("authorization").is_none());
    assert!(plain[0].header("x-webhook-timestamp").is_some());

    // The history shows every delivery as succeeded on the first attempt.
    // (The receiver records a hit before its answer reaches the worker.)
    let h = history_until(&api, &signed, |b| {
        b["total_count"] == 9
            && b["data"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["status"] == "succeeded"))
    })
    .await;
    for d in h["data"].as_array().unwrap() {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_status_code"], 200);
        assert!(d["delivered_at"].is_string());
    }
    let h = api
        .get(&format!("/api/v1/webhooks/{signed}/deliveries?limit=2"))
        .await
        .expect(200)
        .body;
    assert_eq!(h["total_count"], 9);
    assert_eq!(h["data"].as_array().unwrap().len(), 2);
    assert_eq!(h["data"][0]["event"], "room_deleted", "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_success_and_gives_up_after_max_attempts() {
    let s = local_server(vec![("CONVENE_WEBHOOK_MAX_ATTEMPTS".into(), "4".into())]);
    let api = s.api();
    let receiver = Receiver::start().await;
    receiver
        .state
        .flaky_failures_left
        .store(3, Ordering::SeqCst);
    let flaky = create_webhook(
        &api,
        json!({"endpoint": receiver.url("flaky"), "events": ["room.created"], "secret": SECRET,
               "authorization_header": AUTHORIZATION}),
    )
    .await;
    let failing = create_webhook(
        &api,
        json!({"endpoint": receiver.url("fail"), "events": ["room.created"]}),
    )
    .await;
    api.post("/api/v1/rooms", json!({"friendly_url": "retry-1"}))
        .await
        .expect(200);
    api.post("/api/v1/rooms", json!({"friendly_url": "retry-2"}))
        .await
        .expect(200);

    // Flaky: three 500s, then both events, in order, each exactly once.
    let ok = receiver
        .wait_for("flaky", "two deliveries", |h| h.len() >= 2)
        .await;
    let attempts: Vec<Hit> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.path == "flaky")
        .collect();
    assert_eq!(attempts.len(), 5, "3 failures + 2 successes");
    let first_id = attempts[0].header("x-webhook-id").unwrap().to_string();
    assert!(
        attempts[..4]
            .iter()
            .all(|h| h.header("x-webhook-id") == Some(first_id.as_str())),
        "a retry is the same delivery, and the next waits for it"
    );
    assert!(attempts[..4].iter().all(|h| h.body == attempts[0].body));
    for h in &attempts {
        verify_signed(h);
    }
    assert_eq!(ok[0].json()["data"]["friendly_url"], "retry-1");
    assert_eq!(ok[1].json()["data"]["friendly_url"], "retry-2");
    let h = history_until(&api, &flaky, |b| b["data"][1]["status"] == "succeeded").await;
    let d = &h["data"][0];
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["last_status_code"], 200);
    assert_eq!(d["id"], first_id.as_str());
    assert_eq!(h["data"][1]["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.ok_hits("flaky").len(),
        2,
        "no duplicate deliveries"
    );

    // Always failing: 4 attempts, then failed; the next delivery proceeds
    // (and fails the same way).
    let h = history_until(&api, &failing, |b| b["data"][1]["status"] == "failed").await;
    for d in h["data"].as_array().unwrap() {
        assert_eq!(d["status"], "failed", "{d}");
        assert_eq!(d["attempts"], 4);
        assert_eq!(d["last_status_code"], 500);
        assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["next_attempt_at"], Value::Null);
    }
    let failed_filter = api
        .get(&format!(
            "/api/v1/webhooks/{failing}/deliveries?status=failed"
        ))
        .await
        .expect(200);
    assert_eq!(failed_filter.body["total_count"], 2);

    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for result in ["success", "retry", "failed"] {
        assert!(
            metrics.contains(&format!(
                "convene_webhook_deliveries_total{{result=\"{result}\"}}"
            )),
            "{result} missing from /metrics"
        );
    }

    // Redeliver the first flaky delivery: a new delivery, same body.
    let r = api
        .post(
            &format!("/api/v1/webhooks/{flaky}/deliveries/{first_id}/redeliver"),
            json!({}),
        )
        .await
        .expect(202)
        .body;
    assert_eq!(r["redelivery_of"], first_id.as_str());
    assert_eq!(r["status"], "pending");
    let ok = receiver
        .wait_for("flaky", "the redelivery", |h| h.len() >= 3)
        .await;
    assert_eq!(ok[2].body, ok[0].body);
    assert_eq!(ok[2].header("x-webhook-id"), r["id"].as_str());
    verify_signed(&ok[2]);
    // Redelivering through another webhook's path is a 404.
    api.post(
        &format!("/api/v1/webhooks/{failing}/deliveries/{first_id}/redeliver"),
        json!({}),
    )
    .await
    .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_kill9() {
    let mut s = local_server(vec![("CONVENE_WEBHOOK_RETRY_BASE_MS".into(), "200".into())]);
    let api = s.api();
    // Reserve a port with nothing listening: the receiver is down.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], convene_tests::free_port()));
    let webhook = create_webhook(
        &api,
        json!({"endpoint": format!("http://{addr}/durable"), "events": ["room.created", "room.deleted"],
               "secret": SECRET, "authorization_header": AUTHORIZATION}),
    )
    .await;
    for name in ["durable-a", "durable-b", "durable-c"] {
        api.post("/api/v1/rooms", json!({"friendly_url": name}))
            .await
            .expect(200);
    }
    api.delete("/api/v1/rooms/durable-b").await.expect(204);
    let h = history_until(&api, &webhook, |b| {
        b["total_count"] == 4 && b["data"][0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert!(
        h["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{h}"
    );
    assert!(
        h["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "pending")
    );

    s.kill9();
    let receiver = Receiver::start_on(addr).await;
    s.restart();
    let api = s.api();
    let hits = receiver
        .wait_for("durable", "four deliveries", |h| h.len() >= 4)
        .await;
    let got: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            let b = h.json();
            (
                b["event"].as_str().unwrap().to_string(),
                b["data"]["friendly_url"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("room.created".to_string(), "durable-a".to_string()),
            ("room.created".to_string(), "durable-b".to_string()),
            ("room.created".to_string(), "durable-c".to_string()),
            ("room.deleted".to_string(), "durable-b".to_string()),
        ]
    );
    for h in &hits {
        verify_signed(h);
    }
    let h = history_until(&api, &webhook, |b| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.len() == 4 && d.iter().all(|d| d["status"] == "succeeded"))
    })
    .await;
    assert!(h["data"][0]["attempts"].as_i64().unwrap() >= 2, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_only_its_own_webhook() {
    let s = local_server(vec![]);
    let api = s.api();
    let receiver = Receiver::start().await;
    let slow = create_webhook(
        &api,
        json!({"endpoint": receiver.url("hold"), "events": ["room.created"]}),
    )
    .await;
    create_webhook(
        &api,
        json!({"endpoint": receiver.url("fast"), "events": ["room.created"]}),
    )
    .await;
    for name in ["slow-1", "slow-2"] {
        api.post("/api/v1/rooms", json!({"friendly_url": name}))
            .await
            .expect(200);
    }
    // The other webhook gets both events while the slow one still holds
    // its first request (and has not been sent its second).
    receiver
        .wait_for("fast", "both events", |h| h.len() == 2)
        .await;
    assert_eq!(receiver.state.held.load(Ordering::SeqCst), 1);
    assert!(receiver.ok_hits("hold").is_empty());
    let h = api
        .get(&format!("/api/v1/webhooks/{slow}/deliveries?order=asc"))
        .await
        .expect(200)
        .body;
    assert_eq!(h["data"][0]["status"], "pending");
    assert_eq!(h["data"][1]["status"], "pending");
    // Released, the slow webhook catches up in order.
    receiver.state.gate.add_permits(10);
    let hits = receiver
        .wait_for("hold", "both events", |h| h.len() == 2)
        .await;
    assert_eq!(hits[0].json()["data"]["friendly_url"], "slow-1");
    assert_eq!(hits[1].json()["data"]["friendly_url"], "slow-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_answer_in_time_is_retried() {
    let s = local_server(vec![("CONVENE_WEBHOOK_TIMEOUT_MS".into(), "300".into())]);
    let api = s.api();
    let receiver = Receiver::start().await;
    let hook = create_webhook(
        &api,
        json!({"endpoint": receiver.url("hold"), "events": ["room.created"]}),
    )
    .await;
    api.post("/api/v1/rooms", json!({"friendly_url": "late"}))
        .await
        .expect(200);
    let h = history_until(&api, &hook, |b| {
        b["data"][0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(h["data"][0]["status"], "pending");
    assert!(
        h["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{h}"
    );
    // Answer from now on: the retry gets through.
    receiver.state.gate.add_permits(100);
    history_until(&api, &hook, |b| b["data"][0]["status"] == "succeeded").await;
}
