//! Room tokens: claims checked with an independent JWT decode.

use convene_tests::{KEY, Server};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

fn decode(token: &str, key: &str) -> Value {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(key.as_bytes()), &v)
        .expect("token verifies with the developer key")
        .claims
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn token_claims_and_link() {
    let s = Server::start();
    let api = s.api();
    let room = api
        .post("/api/v1/rooms", json!({"friendly_url": "tok"}))
        .await
        .expect(200)
        .body;
    let res = api
        .post(
            "/api/v1/rooms/tok/token",
            json!({
                "ud": "user-123", "u": "John Doe", "initials": "JD", "role": "moderator",
                "avatar": "https://example.com/avatar.jpg", "breakoutId": "breakout-1",
                "nbf": 1700000000, "exp": 4102444800i64,
                "email": "john@example.com", "team_id": "ignored"
            }),
        )
        .await
        .expect(200)
        .body;
    let token = res["token"].as_str().unwrap();
    assert_eq!(
        res["link"],
        format!("http://localhost:8080/tok?token={token}")
    );
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    let c = decode(token, KEY);
    let team_id = s.cli(&["key", "show"]).1;
    assert!(team_id.contains(c["td"].as_str().unwrap()));
    assert_eq!(c["rd"], room["id"]);
    assert_eq!(c["ud"], "user-123");
    assert_eq!(c["u"], "John Doe");
    assert_eq!(c["initials"], "JD");
    assert_eq!(c["role"], "moderator");
    assert_eq!(c["avatar"], "https://example.com/avatar.jpg");
    assert_eq!(c["breakoutId"], "breakout-1");
    assert_eq!(c["nbf"], 1700000000);
    assert_eq!(c["exp"], 4102444800i64);
    assert!(c.get("email").is_none());

    // Another key does not verify it.
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp"]);
    assert!(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(b"other"), &v).is_err());
}

#[tokio::test]
async fn exp_and_nbf_forms() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "t"}))
        .await
        .expect(200);
    let exp_of = |body: Value| {
        let api = api.clone();
        async move {
            let t = api
                .post("/api/v1/rooms/t/token", body)
                .await
                .expect(200)
                .body;
            decode(t["token"].as_str().unwrap(), KEY)
        }
    };
    // Default lifetime: 24 hours.
    let c = exp_of(json!({"u": "a"})).await;
    let exp = c["exp"].as_i64().unwrap();
    assert!((exp - now() - 86400).abs() < 60, "default exp {exp}");
    // Minutes from now.
    let c = exp_of(json!({"exp": 30})).await;
    assert!((c["exp"].as_i64().unwrap() - now() - 1800).abs() < 60);
    // Unix seconds.
    let c = exp_of(json!({"exp": 4102444800i64})).await;
    assert_eq!(c["exp"], 4102444800i64);
    // Date-time strings, with nanoseconds too.
    let c = exp_of(json!({"exp": "2099-12-31T23:59:59Z"})).await;
    assert_eq!(c["exp"], 4102444799i64);
    let c = exp_of(
        json!({"exp": "2099-12-31T23:59:59.123456789+00:00", "nbf": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(c["exp"], 4102444799i64);
    assert_eq!(c["nbf"], 1577836800);

    for (body, field) in [
        (json!({"exp": 1600000000}), "exp"),
        (json!({"exp": "yesterday"}), "exp"),
        (json!({"exp": true}), "exp"),
        (json!({"exp": -1}), "exp"),
        (json!({"nbf": "soon"}), "nbf"),
        (json!({"nbf": 4102444800i64, "exp": 4102444700i64}), "nbf"),
        (json!({"role": "superuser"}), "role"),
        (json!({"u": 5}), "u"),
        (json!({"u": "x".repeat(101)}), "u"),
    ] {
        api.post("/api/v1/rooms/t/token", body)
            .await
            .expect_invalid(field);
    }
    // A role outside the room's roles is refused even if the team has it.
    api.patch(
        "/api/v1/rooms/t",
        json!({"roles": ["moderator", "attendee"]}),
    )
    .await
    .expect(200);
    api.post("/api/v1/rooms/t/token", json!({"role": "speaker"}))
        .await
        .expect_invalid("role");
    api.post("/api/v1/rooms/nope/token", json!({}))
        .await
        .expect(404);
}

#[tokio::test]
async fn cli_prints_a_verifiable_token() {
    let s = Server::start();
    let api = s.api();
    let room = api
        .post("/api/v1/rooms", json!({"friendly_url": "cli-room"}))
        .await
        .expect(200)
        .body;
    let (ok, out, err) = s.cli(&[
        "token", "--room", "cli-room", "--name", "Kiosk", "--role", "speaker",
    ]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let token = lines.next().unwrap();
    let link = lines.next().unwrap();
    assert_eq!(
        link,
        format!("http://localhost:8080/cli-room?token={token}")
    );
    let c = decode(token, KEY);
    assert_eq!(c["rd"], room["id"]);
    assert_eq!(c["u"], "Kiosk");
    assert_eq!(c["role"], "speaker");
    let (ok, _, err) = s.cli(&[
        "token", "--room", "cli-room", "--name", "K", "--role", "boss",
    ]);
    assert!(!ok);
    assert!(err.contains("role"), "{err}");
}
