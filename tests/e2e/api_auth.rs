//! Authentication, team isolation, rate limiting and body limits.

use base64::Engine;
use convene_tests::{KEY, Options, Resp, Server};
use serde_json::json;

#[tokio::test]
async fn missing_and_wrong_credentials_are_401_json() {
    let s = Server::start();
    for auth in [
        None,
        Some("Bearer wrong-key"),
        Some("Bearer "),
        Some("Token abc"),
        Some("Basic !!!"),
    ] {
        let mut req = s.client.get(s.url("/api/v1/rooms"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = Resp::read(req.send().await.unwrap()).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.body["code"], "UNAUTHORIZED");
        assert!(r.body["message"].is_string());
    }
}

#[tokio::test]
async fn basic_auth_with_team_id() {
    let s = Server::start();
    let team = s.cli(&["key", "show"]).1;
    let team_id = team
        .lines()
        .find_map(|l| l.strip_prefix("team id:"))
        .unwrap()
        .trim()
        .to_string();
    let basic = |id: &str, key: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"))
        )
    };
    let ok = s
        .client
        .get(s.url("/api/v1/rooms"))
        .header("authorization", basic(&team_id, KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for (id, key) in [
        (team_id.as_str(), "wrong"),
        ("00000000-0000-0000-0000-000000000000", KEY),
        ("not-a-uuid", KEY),
    ] {
        let r = s
            .client
            .get(s.url("/api/v1/rooms"))
            .header("authorization", basic(id, key))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{id}:{key}");
    }
}

#[tokio::test]
async fn teams_cannot_see_each_other() {
    let s = Server::start();
    let mine = s.api();
    let (_, other_key) = s.create_team("Other");
    let theirs = s.api_with_key(&other_key);
    let room = mine
        .post("/api/v1/rooms", json!({"friendly_url": "private-one"}))
        .await
        .expect(200)
        .body;
    let id = room["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/rooms/{id}"),
        "/api/v1/rooms/private-one".to_string(),
    ] {
        theirs.get(&path).await.expect(404);
        theirs
            .patch(&path, json!({"chat_enabled": false}))
            .await
            .expect(404);
        theirs
            .post(&format!("{path}/token"), json!({}))
            .await
            .expect(404);
        theirs.delete(&path).await.expect(404);
    }
    assert_eq!(
        theirs.get("/api/v1/rooms").await.expect(200).body["total_count"],
        0
    );
    // The same friendly_url is free in the other team.
    theirs
        .post("/api/v1/rooms", json!({"friendly_url": "private-one"}))
        .await
        .expect(200);
    // Custom roles are per team.
    mine.post("/api/v1/roles", json!({"name": "host"}))
        .await
        .expect(201);
    theirs.get("/api/v1/roles/host").await.expect(404);
    mine.get("/api/v1/rooms/private-one").await.expect(200);
}

#[tokio::test]
async fn rate_limit_per_key() {
    let s = Server::start_with(Options {
        env: vec![("CONVENE_RATE_LIMIT_PER_MINUTE".into(), "5".into())],
        ..Default::default()
    });
    let api = s.api();
    let mut last = None;
    for i in 0..5 {
        let r = api.get("/api/v1/rooms").await.expect(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining").unwrap(),
            (4 - i).to_string()
        );
        assert!(
            r.header("x-ratelimit-reset")
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        last = Some(r);
    }
    drop(last);
    let r = api.get("/api/v1/rooms").await;
    // A minute boundary may have passed; then the window restarted.
    if r.status == 429 {
        assert_eq!(r.body["code"], "RATE_LIMITED");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        // Another team has its own quota.
        let (_, other) = s.create_team("Other");
        s.api_with_key(&other)
            .get("/api/v1/rooms")
            .await
            .expect(200);
    } else {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let s = Server::start_with(Options {
        args: vec!["--max-body-bytes".into(), "2048".into()],
        ..Default::default()
    });
    let api = s.api();
    let big = json!({"description": "x".repeat(4000)});
    let r = api.post("/api/v1/rooms", big).await.expect(413);
    assert_eq!(r.body["code"], "PAYLOAD_TOO_LARGE");
    // The refused body is read to its end: the 413 arrives whole (not a
    // reset while the client still sends) and the connection serves the
    // next request. A body far over the limit (60 KiB here) too.
    let body = format!(r#"{{"description": "{}"}}"#, "x".repeat(60 * 1024));
    convene_tests::assert_a_refused_body_keeps_the_connection(
        &s.url(""),
        &[("Authorization", &format!("Bearer {}", convene_tests::KEY))],
        ("/api/v1/rooms", &body),
        ("/api/v1/rooms", 200),
    )
    .await;
    api.post("/api/v1/rooms", json!({"description": "small"}))
        .await
        .expect(200);
}

#[tokio::test]
async fn key_rotation_revokes_the_old_key() {
    let s = Server::start_with(Options {
        no_key: true,
        ..Default::default()
    });
    // The generated key was printed once on first start.
    let printed = s
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("developer key:"))
        .expect("first start prints the key")
        .trim()
        .to_string();
    assert!(printed.len() >= 43, "key of 32 random bytes: {printed}");
    let shown = s.cli(&["key", "show"]).1;
    assert!(shown.contains(&printed));
    s.api_with_key(&printed)
        .get("/api/v1/rooms")
        .await
        .expect(200);
    let (ok, out, _) = s.cli(&["key", "rotate"]);
    assert!(ok);
    let new_key = out
        .lines()
        .find_map(|l| l.strip_prefix("developer key:"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(new_key, printed);
    s.api_with_key(&printed)
        .get("/api/v1/rooms")
        .await
        .expect(401);
    s.api_with_key(&new_key)
        .get("/api/v1/rooms")
        .await
        .expect(200);
}
