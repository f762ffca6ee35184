//! Guest links (issue 22) through the real server's REST API: create (the
//! secret only in the creation's URL), list (paginated, never a secret),
//! revoke, validation in the 422 field shape, 404 and 401, and room
//! deletion taking its links along; and the signaling `join` with a link
//! (role, no password or token, used up, revoked, other room, limited).

use crate::room_password::join_reply;
use chrono::{DateTime, Utc};
use convene_tests::Server;
use serde_json::{Value, json};

fn secret_of(url: &str) -> String {
    url.split_once("?guest=")
        .expect("guest secret")
        .1
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_create_list_revoke_and_validation() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "hall"}))
        .await
        .expect(200);

    // Create with a TTL: the default role, expiry = created + TTL.
    let room_url = api.get("/api/v1/rooms/hall").await.expect(200).body["room_url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .post(
            "/api/v1/rooms/hall/guest-links",
            json!({"ttl_seconds": 3600, "name": "Partners", "max_uses": 2}),
        )
        .await
        .expect(201);
    let a = r.body.clone();
    assert_eq!(a["role"], "attendee", "{a}");
    assert_eq!(a["name"], "Partners");
    assert_eq!(
        (a["uses"].as_i64(), a["max_uses"].as_i64()),
        (Some(0), Some(2))
    );
    let url = a["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{room_url}?guest=")), "{url}");
    let secret = secret_of(url);
    assert!(
        secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{secret}"
    );
    let created: DateTime<Utc> = a["created_at"].as_str().unwrap().parse().unwrap();
    let expires: DateTime<Utc> = a["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = (expires - created).num_seconds();
    assert!((3599..=3600).contains(&ttl), "{a}");

    // An explicit expiry and a role of the room.
    let at = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let b = api
        .post(
            "/api/v1/rooms/hall/guest-links",
            json!({"expires_at": at, "role": "speaker"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(b["role"], "speaker");
    assert_eq!(b["max_uses"], Value::Null);
    assert_ne!(secret_of(b["url"].as_str().unwrap()), secret);
    // A moderator link only when explicitly allowed.
    api.post(
        "/api/v1/rooms/hall/guest-links",
        json!({"ttl_seconds": 600, "role": "moderator"}),
    )
    .await
    .expect_invalid("role");
    let m = api
        .post(
            "/api/v1/rooms/hall/guest-links",
            json!({"ttl_seconds": 600, "role": "moderator", "allow_moderator": true}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(m["role"], "moderator");

    // Bad bodies: 422 naming the field, nothing stored.
    let past = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    for (body, field) in [
        (json!({}), "expires_at"),
        (json!({"ttl_seconds": 59}), "ttl_seconds"),
        (json!({"ttl_seconds": 30 * 24 * 3600 + 1}), "ttl_seconds"),
        (json!({"ttl_seconds": "60"}), "ttl_seconds"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"ttl_seconds": 60, "role": "ghost"}), "role"),
        (json!({"ttl_seconds": 60, "max_uses": 0}), "max_uses"),
        (json!({"ttl_seconds": 60, "name": "x".repeat(101)}), "name"),
    ] {
        api.post("/api/v1/rooms/hall/guest-links", body)
            .await
            .expect_invalid(field);
    }

    // The list: three links, no secret anywhere, paginated.
    let r = api.get("/api/v1/rooms/hall/guest-links").await.expect(200);
    assert_eq!(r.body["total_count"], 3, "{}", r.body);
    let text = String::from_utf8_lossy(&r.raw);
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains("guest="), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let page = api
        .get("/api/v1/rooms/hall/guest-links?limit=1&order=asc")
        .await
        .expect(200)
        .body;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], a["id"]);
    let next = api
        .get(&format!(
            "/api/v1/rooms/hall/guest-links?limit=1&order=asc&after={}",
            a["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(next["data"][0]["id"], b["id"], "{next}");
    api.get("/api/v1/rooms/hall/guest-links?after=nope")
        .await
        .expect_invalid("after");

    // Revoke: 204, then gone (404 for it again and for unknown ids).
    let path = format!(
        "/api/v1/rooms/hall/guest-links/{}",
        a["id"].as_str().unwrap()
    );
    api.delete(&path).await.expect(204);
    api.delete(&path).await.expect(404);
    api.delete("/api/v1/rooms/hall/guest-links/unknown")
        .await
        .expect(404);
    let r = api.get("/api/v1/rooms/hall/guest-links").await.expect(200);
    assert_eq!(r.body["total_count"], 2);

    // Unknown room: 404; no or a wrong key: 401, before any lookup.
    api.get("/api/v1/rooms/nowhere/guest-links")
        .await
        .expect(404);
    api.post(
        "/api/v1/rooms/nowhere/guest-links",
        json!({"ttl_seconds": 60}),
    )
    .await
    .expect(404);
    let stranger = s.api_with_key("not-the-key");
    stranger
        .get("/api/v1/rooms/hall/guest-links")
        .await
        .expect(401);
    stranger
        .post("/api/v1/rooms/hall/guest-links", json!({"ttl_seconds": 60}))
        .await
        .expect(401);
    stranger.delete(&path).await.expect(401);

    // Deleting the room deletes its links: a new room of the same name has none.
    api.delete("/api/v1/rooms/hall").await.expect(204);
    api.post("/api/v1/rooms", json!({"friendly_url": "hall"}))
        .await
        .expect(200);
    let r = api.get("/api/v1/rooms/hall/guest-links").await.expect(200);
    assert_eq!(r.body["total_count"], 0, "{}", r.body);
}

fn guest_join(room: &str, secret: &str) -> Value {
    json!({"type": "join", "v": 1, "room": room, "name": "Gus", "guest": secret})
}

async fn link(api: &convene_tests::Api, room: &str, body: Value) -> (String, Value) {
    let b = api
        .post(&format!("/api/v1/rooms/{room}/guest-links"), body)
        .await
        .expect(201)
        .body;
    (secret_of(b["url"].as_str().unwrap()), b)
}

async fn uses(api: &convene_tests::Api, room: &str) -> Vec<i64> {
    let b = api
        .get(&format!("/api/v1/rooms/{room}/guest-links?order=asc"))
        .await
        .expect(200)
        .body;
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["uses"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_with_a_guest_link() {
    let s = Server::start();
    let api = s.api();
    // A private room with a password: a guest link needs neither a token
    // nor the password.
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "vip", "privacy": "private", "password": "open sesame"}),
    )
    .await
    .expect(200);
    api.post("/api/v1/rooms", json!({"friendly_url": "other"}))
        .await
        .expect(200);
    let (speaker, _) = link(&api, "vip", json!({"ttl_seconds": 600, "role": "speaker"})).await;
    let (once, _) = link(&api, "vip", json!({"ttl_seconds": 600, "max_uses": 1})).await;
    let (revoked, r) = link(&api, "vip", json!({"ttl_seconds": 600})).await;
    let (elsewhere, _) = link(&api, "other", json!({"ttl_seconds": 600})).await;

    let r1 = join_reply(&s, guest_join("vip", &speaker)).await;
    assert_eq!(r1["type"], "joined", "{r1}");
    assert_eq!(r1["participant"]["role"], "speaker", "{r1}");
    assert_eq!(r1["participant"]["name"], "Gus");
    // A name is still required (and a refused join uses nothing).
    let mut nameless = guest_join("vip", &once);
    nameless.as_object_mut().unwrap().remove("name");
    let e = join_reply(&s, nameless).await;
    assert_eq!(e["code"], "NAME_REQUIRED", "{e}");
    assert_eq!(uses(&api, "vip").await, vec![1, 0, 0]);

    // max_uses 1: the first join counts, the second is refused.
    let r2 = join_reply(&s, guest_join("vip", &once)).await;
    assert_eq!(r2["type"], "joined", "{r2}");
    assert_eq!(r2["participant"]["role"], "attendee", "{r2}");
    let e = join_reply(&s, guest_join("vip", &once)).await;
    assert_eq!(e["code"], "GUEST_LINK_USED_UP", "{e}");
    assert!(e["message"].as_str().unwrap().contains("used"), "{e}");
    assert_eq!(uses(&api, "vip").await, vec![1, 1, 0]);

    // Revoked, another room's, unknown: invalid.
    api.delete(&format!(
        "/api/v1/rooms/vip/guest-links/{}",
        r["id"].as_str().unwrap()
    ))
    .await
    .expect(204);
    let e = join_reply(&s, guest_join("vip", &revoked)).await;
    assert_eq!(e["code"], "GUEST_LINK_INVALID", "{e}");
    let e = join_reply(&s, guest_join("vip", &elsewhere)).await;
    assert_eq!(e["code"], "GUEST_LINK_INVALID", "{e}");
    assert_eq!(uses(&api, "other").await, vec![0]);
    // Without a link the private room still wants a token.
    let e = join_reply(
        &s,
        json!({"type": "join", "v": 1, "room": "vip", "name": "Gus"}),
    )
    .await;
    assert_eq!(e["code"], "TOKEN_REQUIRED", "{e}");

    // Wrong secrets are limited like wrong passwords: 2 so far, three
    // more reach the limit and then even a valid link waits.
    for i in 0..3 {
        let e = join_reply(&s, guest_join("vip", &format!("{i:032x}"))).await;
        assert_eq!(e["code"], "GUEST_LINK_INVALID", "{e}");
    }
    let e = join_reply(&s, guest_join("vip", &speaker)).await;
    assert_eq!(e["code"], "GUEST_LINK_RATE_LIMITED", "{e}");
    let wait = e["retry_after"].as_u64().expect("retry_after");
    assert!((1..=60).contains(&wait), "{e}");
    // The other room is not limited.
    let (fresh, _) = link(&api, "other", json!({"ttl_seconds": 60})).await;
    let r3 = join_reply(&s, guest_join("other", &fresh)).await;
    assert_eq!(r3["type"], "joined", "{r3}");
}

/// Opening a guest URL of a private room with a password asks only for a
/// name and joins with the link's role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_joins_with_a_guest_link() {
    use crate::browser::{ONE_AT_A_TIME, server, wait_state};
    use convene_tests::browser::Browser;
    use std::time::Duration;

    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "backstage", "privacy": "private", "password": "letmein"}),
    )
    .await
    .expect(200);
    let (secret, _) = link(
        &api,
        "backstage",
        json!({"ttl_seconds": 600, "role": "speaker"}),
    )
    .await;
    let b = Browser::launch().await;
    let page = b.open(&s.url(&format!("/backstage?guest={secret}"))).await;
    page.wait_for(
        "window.convene && window.convene.state === 'idle' && !document.getElementById('name-input').closest('[hidden]')",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('password-row').hidden")
            .await,
        json!(true)
    );
    page.eval(
        "document.getElementById('name-input').value = 'Gina';
         document.getElementById('join-button').click(); true",
    )
    .await;
    wait_state(&page, "joined").await;
    let live = api
        .get("/api/v1/rooms/backstage/live/participants")
        .await
        .expect(200)
        .body;
    assert_eq!(live["live_participants"][0]["name"], "Gina", "{live}");
    assert_eq!(live["live_participants"][0]["role"], "speaker", "{live}");
    assert_eq!(uses(&api, "backstage").await, vec![1]);
}

/// A signaling connection kept open: sends `join`, waits for `joined`.
struct Held(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Held {
    async fn join(s: &Server, join: Value) -> (Held, Value) {
        use futures::SinkExt as _;
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            join.to_string().into(),
        ))
        .await
        .unwrap();
        let mut h = Held(ws);
        let first = h.next_of(&["joined", "error", "lobby"]).await;
        (h, first)
    }

    async fn next_of(&mut self, types: &[&str]) -> Value {
        use futures::StreamExt as _;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match tokio::time::timeout(left, self.0.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if types.iter().any(|ty| v["type"] == *ty) {
                        return v;
                    }
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no {types:?}: {other:?}"),
            }
        }
    }

    async fn send(&mut self, v: Value) {
        use futures::SinkExt as _;
        self.0
            .send(tokio_tungstenite::tungstenite::Message::Text(
                v.to_string().into(),
            ))
            .await
            .unwrap();
    }
}

/// A use of a guest link is counted only when the room lets the guest in:
/// a full room or a moderator's "no" in the lobby leaves the link as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_turned_away_by_the_room_does_not_use_up_the_link() {
    let s = Server::start();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "tiny", "max_participants": 1}),
    )
    .await
    .expect(200);
    let (once, _) = link(&api, "tiny", json!({"ttl_seconds": 600, "max_uses": 1})).await;
    let tok = |name: &'static str, role: &'static str| {
        let api = s.api();
        async move {
            api.post("/api/v1/rooms/tiny/token", json!({"u": name, "role": role}))
                .await
                .expect(200)
                .body["token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let mo_token = tok("Mo", "moderator").await;
    let (mut mo, joined) = Held::join(
        &s,
        json!({"type": "join", "v": 1, "room": "tiny", "token": mo_token}),
    )
    .await;
    assert_eq!(joined["type"], "joined", "{joined}");

    // Full: refused, and the link keeps its one use.
    let e = join_reply(&s, guest_join("tiny", &once)).await;
    assert_eq!(e["code"], "ROOM_FULL", "{e}");
    assert_eq!(uses(&api, "tiny").await, vec![0]);

    // Locked with room for one more (settings apply when the room's session
    // starts again): the guest waits, the moderator says no.
    mo.send(json!({"type": "leave"})).await;
    drop(mo);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while api.get("/api/v1/rooms/tiny/live").await.body["live_participants"] != 0 {
        assert!(std::time::Instant::now() < deadline, "Mo never left");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    api.patch(
        "/api/v1/rooms/tiny",
        json!({"max_participants": 2, "is_locked": true}),
    )
    .await
    .expect(200);
    let mo_token = tok("Mo", "moderator").await;
    let (mut mo, joined) = Held::join(
        &s,
        json!({"type": "join", "v": 1, "room": "tiny", "token": mo_token}),
    )
    .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let (mut gus, waiting) = Held::join(&s, guest_join("tiny", &once)).await;
    assert_eq!(waiting["type"], "lobby", "{waiting}");
    let req = mo.next_of(&["lobby_request"]).await;
    let pid = req["participant"]["id"].as_str().unwrap().to_string();
    mo.send(json!({"type": "reject", "participant_id": pid}))
        .await;
    let e = gus.next_of(&["error"]).await;
    assert_eq!(e["code"], "REJECTED", "{e}");
    assert_eq!(uses(&api, "tiny").await, vec![0]);

    // Admitted from the lobby: now the use counts, and the link is used up.
    let (mut gus, waiting) = Held::join(&s, guest_join("tiny", &once)).await;
    assert_eq!(waiting["type"], "lobby", "{waiting}");
    let req = mo.next_of(&["lobby_request"]).await;
    let pid = req["participant"]["id"].as_str().unwrap().to_string();
    mo.send(json!({"type": "admit", "participant_id": pid}))
        .await;
    let j = gus.next_of(&["joined", "error"]).await;
    assert_eq!(j["type"], "joined", "{j}");
    assert_eq!(uses(&api, "tiny").await, vec![1]);
    // Used up: refused before the lobby.
    let e = join_reply(&s, guest_join("tiny", &once)).await;
    assert_eq!(e["code"], "GUEST_LINK_USED_UP", "{e}");
    assert_eq!(uses(&api, "tiny").await, vec![1]);
}

/// Whether a link may carry a role goes by what the role may do: a custom
/// role that may mute and remove others moderates, whatever its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderating_custom_role_needs_allow_moderator_like_the_moderator() {
    let s = Server::start();
    let api = s.api();
    api.post(
        "/api/v1/roles",
        json!({"name": "host", "permissions": {"chat": true, "mute_others": true, "remove_participants": true}}),
    )
    .await
    .expect(201);
    api.post(
        "/api/v1/roles",
        json!({"name": "greeter", "permissions": {"chat": true}}),
    )
    .await
    .expect(201);
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "hosted", "roles": ["moderator", "host", "greeter", "attendee"]}),
    )
    .await
    .expect(200);
    let r = api
        .post(
            "/api/v1/rooms/hosted/guest-links",
            json!({"ttl_seconds": 600, "role": "host"}),
        )
        .await;
    let r = r.expect_invalid("role");
    assert!(r.body.to_string().contains("mute_others"), "{}", r.body);
    assert!(uses(&api, "hosted").await.is_empty(), "nothing was created");
    let (_, ok) = link(
        &api,
        "hosted",
        json!({"ttl_seconds": 600, "role": "host", "allow_moderator": true}),
    )
    .await;
    assert_eq!(ok["role"], "host");
    // A role that moderates nobody needs no opt-in.
    let (_, ok) = link(
        &api,
        "hosted",
        json!({"ttl_seconds": 600, "role": "greeter"}),
    )
    .await;
    assert_eq!(ok["role"], "greeter");
}
