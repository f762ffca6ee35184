//! Room passwords (issue 22) through the real server: the write-only REST
//! `password` field (set, clear, validation, `has_password`, never the
//! hash), and the signaling `join` of a room with a password (required,
//! wrong, rate limited, right, and a room token that needs none).

use convene_tests::{Api, Server};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends one `join` over a fresh WebSocket; the first `joined` or `error`.
pub(crate) async fn join_reply(s: &Server, join: Value) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    join_answer(&mut ws, &join).await
}

/// The first `joined` or `error` on `ws`, which sent `join`.
pub(crate) async fn join_answer<S>(ws: &mut S, join: &Value) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "joined" || v["type"] == "error" {
                    return v;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("no reply to {join}: {other:?}"),
        }
    }
}

fn name_join(room: &str, password: Option<&str>) -> Value {
    let mut j = json!({"type": "join", "v": 1, "room": room, "name": "Ann"});
    if let Some(p) = password {
        j["password"] = json!(p);
    }
    j
}

fn assert_no_secret(body: &Value, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(!text.contains("argon2"), "{text}");
    assert!(!text.contains("password_hash"), "{text}");
    assert!(body.get("password").is_none(), "{body}");
}

async fn get_room(api: &Api, room: &str) -> Value {
    let r = api.get(&format!("/api/v1/rooms/{room}")).await.expect(200);
    assert_no_secret(&r.body, &r.raw);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_password_is_write_only_validated_and_clearable() {
    let s = Server::start();
    let api = s.api();
    // Set at creation.
    let r = api
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "locked", "password": "open sesame"}),
        )
        .await
        .expect(200);
    assert_no_secret(&r.body, &r.raw);
    assert_eq!(r.body["has_password"], true);
    assert_eq!(get_room(&api, "locked").await["has_password"], true);
    // A room without one.
    let r = api
        .post("/api/v1/rooms", json!({"friendly_url": "plain"}))
        .await
        .expect(200);
    assert_eq!(r.body["has_password"], false);

    // Bad passwords: 422 in the API's field shape, nothing changes.
    for bad in [
        json!("abc"),
        json!("x".repeat(129)),
        json!(1234),
        json!(["a"]),
    ] {
        let r = api
            .patch(
                "/api/v1/rooms/plain",
                json!({"password": bad, "description": "changed"}),
            )
            .await;
        let body = r.expect(422).body;
        assert!(body["errors"]["password"].is_array(), "{body}");
        let room = get_room(&api, "plain").await;
        assert_eq!(room["has_password"], false);
        assert_eq!(room["description"], Value::Null);
    }
    let r = api
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "never", "password": "ab"}),
        )
        .await;
    assert!(r.expect(422).body["errors"]["password"].is_array());
    api.get("/api/v1/rooms/never").await.expect(404);

    // Set by PATCH; a PATCH without `password` keeps it; null and "" clear.
    let r = api
        .patch("/api/v1/rooms/plain", json!({"password": "four"}))
        .await
        .expect(200);
    assert_no_secret(&r.body, &r.raw);
    assert_eq!(r.body["has_password"], true);
    let r = api
        .patch("/api/v1/rooms/plain", json!({"description": "kept"}))
        .await
        .expect(200);
    assert_eq!(r.body["has_password"], true);
    let r = api
        .patch("/api/v1/rooms/plain", json!({"password": null}))
        .await
        .expect(200);
    assert_eq!(r.body["has_password"], false);
    api.patch("/api/v1/rooms/locked", json!({"password": ""}))
        .await
        .expect(200);
    assert_eq!(get_room(&api, "locked").await["has_password"], false);

    // The list never leaks it either.
    api.patch("/api/v1/rooms/locked", json!({"password": "again1"}))
        .await
        .expect(200);
    let r = api.get("/api/v1/rooms").await.expect(200);
    assert_no_secret(&r.body, &r.raw);
    let flags: Vec<(String, bool)> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["friendly_url"].as_str().unwrap().to_string(),
                x["has_password"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(flags.contains(&("locked".into(), true)), "{flags:?}");
    assert!(flags.contains(&("plain".into(), false)), "{flags:?}");

    // A cleared room is joined by name alone again.
    let reply = join_reply(&s, name_join("plain", None)).await;
    assert_eq!(reply["type"], "joined", "{reply}");

    // The room page says whether there is a password, never the hash.
    let page = reqwest::get(s.url("/locked"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#""has_password":true"#), "{page}");
    assert!(!page.contains("argon2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_room_with_a_password() {
    let s = Server::start();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "vault", "password": "right one"}),
    )
    .await
    .expect(200);

    let r = join_reply(&s, name_join("vault", None)).await;
    assert_eq!(r["code"], "PASSWORD_REQUIRED", "{r}");
    let r = join_reply(&s, name_join("vault", Some(""))).await;
    assert_eq!(r["code"], "PASSWORD_REQUIRED", "{r}");
    let r = join_reply(&s, name_join("vault", Some("right one"))).await;
    assert_eq!(r["type"], "joined", "{r}");
    assert_eq!(r["participant"]["name"], "Ann");

    // Five wrong tries; then even the right password waits.
    for i in 0..5 {
        let r = join_reply(&s, name_join("vault", Some(&format!("wrong {i}")))).await;
        assert_eq!(r["code"], "PASSWORD_INVALID", "{r}");
    }
    let r = join_reply(&s, name_join("vault", Some("right one"))).await;
    assert_eq!(r["code"], "PASSWORD_RATE_LIMITED", "{r}");
    // The wait is a field of the error: whole seconds, within the 60 s window.
    let wait = r["retry_after"].as_u64().expect("retry_after");
    assert!((1..=60).contains(&wait), "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("try again in"),
        "{r}"
    );

    // A room token minted by the API is not asked for the password (and
    // not limited by the wrong tries).
    let token = api
        .post("/api/v1/rooms/vault/token", json!({"u": "Bea"}))
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = join_reply(
        &s,
        json!({"type": "join", "v": 1, "room": "vault", "token": token}),
    )
    .await;
    assert_eq!(r["type"], "joined", "{r}");
    assert_eq!(r["participant"]["name"], "Bea");
}

/// The room page asks for the password (a labelled `type=password` field),
/// shows a wrong one's refusal and lets the user try again, then joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_asks_for_the_password_and_retries() {
    use crate::browser::{ONE_AT_A_TIME, server, wait_state};
    use convene_tests::browser::Browser;
    use std::time::Duration;

    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "guarded", "password": "letmein"}),
        )
        .await
        .expect(200);
    let b = Browser::launch().await;
    let page = b.open(&s.url("/guarded")).await;
    page.wait_for(
        "window.convene && window.convene.state === 'idle' && !document.getElementById('password-row').hidden",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('password-input').type")
            .await,
        json!("password")
    );
    assert_eq!(
        page.eval("document.getElementById('password-input').closest('label').textContent.trim()")
            .await,
        json!("Room password")
    );
    let submit = |pw: &str| {
        format!(
            "document.getElementById('name-input').value = 'Carla';
             document.getElementById('password-input').value = {};
             document.getElementById('join-button').click(); true",
            json!(pw)
        )
    };
    page.eval(&submit("wrong-one")).await;
    let hint = page
        .wait_for(
            "window.convene.error && window.convene.error.code === 'PASSWORD_INVALID' && window.convene.state === 'idle' && !document.getElementById('join-hint').hidden ? document.getElementById('join-hint').textContent : null",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(hint, json!("The password is wrong. Please try again."));
    page.eval(&submit("letmein")).await;
    wait_state(&page, "joined").await;
    let live = s
        .api()
        .get("/api/v1/rooms/guarded/live/participants")
        .await
        .expect(200)
        .body;
    assert_eq!(live["live_participants"][0]["name"], "Carla", "{live}");
}
