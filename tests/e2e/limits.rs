//! Per-address limits before authentication (issue 18): an address that
//! keeps presenting bad developer keys or room tokens is answered 429 with
//! `Retry-After` before any credential is looked at, and one address cannot
//! hold more than a few `/rtc` sockets that have not joined.

use std::time::Duration;

use convene_tests::{KEY, Resp, Server};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// `convene_api::limits::PRE_JOIN_SOCKETS_PER_IP` (the tests see the
/// server only from outside).
const PRE_JOIN_SOCKETS_PER_IP: usize = 256;

#[tokio::test]
async fn bad_developer_keys_from_one_address_end_in_429_before_lookup() {
    let s = Server::start();
    let get = |auth: String| {
        let req = s
            .client
            .get(s.url("/api/v1/rooms"))
            .header("authorization", auth);
        async move { Resp::read(req.send().await.unwrap()).await }
    };
    for i in 0..20 {
        let r = get(format!("Bearer wrong-key-{i}")).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = get("Bearer wrong-key-again".into()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["code"], "RATE_LIMITED");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The address is turned away before its key is looked at, even a good one.
    let r = get(format!("Bearer {KEY}")).await;
    assert_eq!(r.status, 429);
    // A request without credentials is not a failed attempt of a key, but
    // is refused all the same while the address is blocked.
    let r = Resp::read(s.client.get(s.url("/api/v1/rooms")).send().await.unwrap()).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn bad_room_tokens_on_rtc_end_in_429_and_idle_sockets_are_capped() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "guarded"}))
        .await
        .expect(200);
    // Sockets that do not join: 256 are held, the next upgrade is refused.
    let mut idle = Vec::new();
    for i in 0..PRE_JOIN_SOCKETS_PER_IP {
        let (ws, _) = tokio_tungstenite::connect_async(s.ws_url())
            .await
            .unwrap_or_else(|e| panic!("socket {i}: {e}"));
        idle.push(ws);
    }
    let refused = tokio_tungstenite::connect_async(s.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            assert!(r.headers().contains_key("retry-after"));
        }
        other => panic!(
            "one idle socket too many was accepted: {:?}",
            other.map(|_| ())
        ),
    }
    // Closing them frees the places.
    for mut ws in idle.drain(..) {
        let _ = ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Twenty forged tokens, each refused; then the address is blocked.
    for i in 0..20 {
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
        let join = json!({"type": "join", "v": 1, "room": "guarded",
                          "token": format!("forged.{i}.token")});
        ws.send(Message::Text(join.to_string().into()))
            .await
            .unwrap();
        let reply = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    break serde_json::from_str::<serde_json::Value>(&t).unwrap();
                }
                Some(Ok(_)) => continue,
                other => panic!("no reply to join {i}: {other:?}"),
            }
        };
        assert_eq!(reply["code"], "TOKEN_INVALID", "{reply}");
    }
    match tokio_tungstenite::connect_async(s.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a blocked address got a socket: {:?}", other.map(|_| ())),
    }
}

/// A forged token tells nobody which rooms exist: for a real room (bad
/// signature) and for one that does not exist, the answer is the same.
#[tokio::test]
async fn a_forged_token_reads_the_same_for_real_and_missing_rooms() {
    let s = Server::start();
    let room = s
        .api()
        .post("/api/v1/rooms", json!({"friendly_url": "secret-room"}))
        .await
        .expect(200)
        .body;
    let team = s.cli(&["key", "show"]).1;
    let team_id = team
        .lines()
        .find_map(|l| l.strip_prefix("team id:"))
        .unwrap()
        .trim()
        .to_string();
    let forge = |rd: &str| {
        let claims = json!({"td": team_id, "rd": rd, "u": "Mallory",
                            "exp": chrono::Utc::now().timestamp() + 600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"not-the-developer-key-at-all"),
        )
        .unwrap()
    };
    let answer = |token: String| {
        let url = s.ws_url();
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let join = json!({"type": "join", "v": 1, "token": token});
            ws.send(Message::Text(join.to_string().into()))
                .await
                .unwrap();
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        break serde_json::from_str::<serde_json::Value>(&t).unwrap();
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("no answer: {other:?}"),
                }
            }
        }
    };
    let real = answer(forge(room["id"].as_str().unwrap())).await;
    let missing = answer(forge("0b7e4f3a-9a51-4c1e-9f59-3f1d1f7a2b10")).await;
    assert_eq!(real["code"], "TOKEN_INVALID", "{real}");
    assert_eq!(real, missing, "a forged token told the rooms apart");
}
