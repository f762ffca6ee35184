//! The OpenAPI document lists every route the server serves, and every listed
//! route is served.

use convene_tests::Server;
use serde_json::Value;

/// Every `/api/v1` endpoint served so far: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1"),
    ("patch", "/api/v1"),
    ("get", "/api/v1/"),
    ("patch", "/api/v1/"),
    ("get", "/api/v1/rooms"),
    ("post", "/api/v1/rooms"),
    ("delete", "/api/v1/rooms"),
    ("delete", "/api/v1/rooms/tags"),
    ("get", "/api/v1/rooms/{room}"),
    ("patch", "/api/v1/rooms/{room}"),
    ("delete", "/api/v1/rooms/{room}"),
    ("delete", "/api/v1/rooms/{room}/resources"),
    ("post", "/api/v1/rooms/{room}/token"),
    ("get", "/api/v1/roles"),
    ("post", "/api/v1/roles"),
    ("get", "/api/v1/roles/{role}"),
    ("patch", "/api/v1/roles/{role}"),
    ("delete", "/api/v1/roles/{role}"),
    ("get", "/api/v1/permissions"),
    ("get", "/api/v1/rooms/{room}/live/count"),
    ("get", "/api/v1/live/count"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn document_covers_every_route() {
    let s = Server::start();
    let res = s
        .client
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    // ...and nothing is documented that the test does not know about.
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "update ROUTES: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every documented route is really served (not the JSON 404 / 405 of an unknown route).
    let api = s.api();
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{room}", "no-such-room")
            .replace("{role}", "no-such-role");
        let r = api.send(&method.to_uppercase(), &concrete, None).await;
        assert_ne!(r.status, 405, "{method} {path} not routed");
        if r.status == 404 {
            let msg = r.body["message"].as_str().unwrap_or("");
            assert!(
                !msg.starts_with("no such endpoint"),
                "{method} {path} not routed: {msg}"
            );
        }
    }
    let r = api.get("/api/v1/nothing-here").await.expect(404);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("no such endpoint")
    );
    let r = api.send("PUT", "/api/v1/rooms", None).await;
    assert_eq!(r.status, 405);
    assert!(r.body["message"].is_string());
}
