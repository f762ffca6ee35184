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
    ("get", "/api/v1/rooms/{room}/guest-links"),
    ("post", "/api/v1/rooms/{room}/guest-links"),
    ("delete", "/api/v1/rooms/{room}/guest-links/{link}"),
    ("post", "/api/v1/rooms/{room}/breakouts"),
    ("get", "/api/v1/rooms/{room}/breakouts"),
    ("delete", "/api/v1/rooms/{room}/breakouts"),
    ("post", "/api/v1/rooms/{room}/breakouts/open"),
    ("post", "/api/v1/rooms/{room}/breakouts/close"),
    ("post", "/api/v1/rooms/{room}/breakouts/broadcast"),
    (
        "put",
        "/api/v1/rooms/{room}/breakouts/{breakout}/participants/{participant}",
    ),
    ("get", "/api/v1/roles"),
    ("post", "/api/v1/roles"),
    ("get", "/api/v1/roles/{role}"),
    ("patch", "/api/v1/roles/{role}"),
    ("delete", "/api/v1/roles/{role}"),
    ("get", "/api/v1/permissions"),
    ("get", "/api/v1/rooms/{room}/live/count"),
    ("get", "/api/v1/live/count"),
    ("get", "/api/v1/rooms/live"),
    (
        "post",
        "/api/v1/rooms/{room}/live/participants/{participant}/mute",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/live/participants/{participant}/remove",
    ),
    (
        "put",
        "/api/v1/rooms/{room}/live/participants/{participant}/role",
    ),
    ("get", "/api/v1/rooms/live/participants"),
    ("get", "/api/v1/rooms/{room}/live"),
    ("get", "/api/v1/rooms/{room}/live/participants"),
    ("get", "/api/v1/sessions"),
    ("get", "/api/v1/rooms/{room}/sessions"),
    ("get", "/api/v1/sessions/{session}"),
    ("get", "/api/v1/sessions/{session}/participants"),
    ("get", "/api/v1/sessions/{session}/statistics"),
    ("post", "/api/v1/sessions/{session}/end"),
    ("get", "/api/v1/participants"),
    ("get", "/api/v1/rooms/{room}/participants"),
    ("get", "/api/v1/participants/{participant}"),
    ("get", "/api/v1/participants/{participant}/sessions"),
    ("get", "/api/v1/statistics"),
    ("delete", "/api/v1/sessions/{session}/recordings"),
    ("get", "/api/v1/recordings"),
    ("get", "/api/v1/recordings/archived"),
    ("get", "/api/v1/recordings/{recording}"),
    ("delete", "/api/v1/recordings/{recording}"),
    ("get", "/api/v1/recordings/{recording}/download"),
    ("get", "/api/v1/recordings/{recording}/media"),
    ("get", "/api/v1/recordings/{recording}/bookmarks"),
    ("post", "/api/v1/recordings/{recording}/archive"),
    ("post", "/api/v1/recordings/{recording}/unarchive"),
    ("delete", "/api/v1/rooms/{room}/recordings"),
    ("post", "/api/v1/rooms/{room}/recordings/start"),
    ("post", "/api/v1/rooms/{room}/recordings/stop"),
    ("post", "/api/v1/rooms/{room}/recording"),
    ("delete", "/api/v1/rooms/{room}/recording"),
    ("post", "/api/v1/rooms/{room}/restreamers/start"),
    ("post", "/api/v1/rooms/{room}/restreamers/stop"),
    ("post", "/api/v1/rooms/{room}/phone/connect"),
    ("post", "/api/v1/rooms/{room}/phone/disconnect"),
    ("get", "/api/v1/rooms/{room}/phone-participants"),
    (
        "post",
        "/api/v1/rooms/{room}/phone-participants/{callId}/mute",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/phone-participants/{callId}/unmute",
    ),
    ("delete", "/api/v1/sessions/{session}/transcripts"),
    ("get", "/api/v1/sessions/{session}/transcripts"),
    ("get", "/api/v1/sessions/{session}/transcripts/export"),
    ("get", "/api/v1/rooms/{room}/transcripts"),
    ("get", "/api/v1/rooms/{room}/transcripts/export"),
    ("delete", "/api/v1/rooms/{room}/transcripts"),
    ("delete", "/api/v1/sessions/{session}/summaries"),
    ("get", "/api/v1/sessions/{session}/summary"),
    ("delete", "/api/v1/rooms/{room}/summaries"),
    ("delete", "/api/v1/sessions/{session}/resources"),
    ("get", "/api/v1/statistics/rooms"),
    ("get", "/api/v1/statistics/participants"),
    ("get", "/api/v1/statistics/sessions"),
    ("get", "/api/v1/statistics/recordings"),
    ("get", "/api/v1/statistics/current"),
    ("get", "/api/v1/statistics/team/current"),
    ("get", "/api/v1/rooms/{room}/statistics"),
    ("get", "/api/v1/rooms/{room}/statistics/current"),
    ("get", "/api/v1/participants/{participant}/statistics"),
    (
        "post",
        "/api/v1/rooms/{room}/participants/{participant}/raise-hand",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/participants/{participant}/lower-hand",
    ),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/rooms/{room}/chat"),
    ("post", "/api/v1/rooms/{room}/chat"),
    ("delete", "/api/v1/rooms/{room}/chat"),
    ("get", "/api/v1/rooms/{room}/chat/export"),
    ("delete", "/api/v1/sessions/{session}/chat"),
    ("post", "/api/v1/rooms/{room}/messages"),
    ("get", "/api/v1/rooms/{room}/polls"),
    ("post", "/api/v1/rooms/{room}/polls"),
    ("delete", "/api/v1/rooms/{room}/polls"),
    ("get", "/api/v1/rooms/{room}/polls/{poll}"),
    ("patch", "/api/v1/rooms/{room}/polls/{poll}"),
    ("delete", "/api/v1/rooms/{room}/polls/{poll}"),
    ("get", "/api/v1/rooms/{room}/polls/{poll}/results"),
    ("get", "/api/v1/rooms/{room}/polls/export"),
    ("get", "/api/v1/rooms/{room}/polls/template"),
    ("post", "/api/v1/rooms/{room}/polls/import"),
    (
        "post",
        "/api/v1/sessions/{session}/polls/{poll}/publish-results",
    ),
    ("delete", "/api/v1/sessions/{session}/polls"),
    ("get", "/api/v1/rooms/{room}/questions"),
    ("post", "/api/v1/rooms/{room}/questions"),
    ("delete", "/api/v1/rooms/{room}/questions"),
    ("get", "/api/v1/rooms/{room}/questions/export"),
    ("delete", "/api/v1/sessions/{session}/questions"),
    ("patch", "/api/v1/rooms/{room}/questions/{question}"),
    ("delete", "/api/v1/rooms/{room}/questions/{question}"),
    ("post", "/api/v1/rooms/{room}/questions/{question}/dismiss"),
    ("post", "/api/v1/rooms/{room}/questions/{question}/reopen"),
    ("post", "/api/v1/rooms/{room}/questions/{question}/vote"),
    ("delete", "/api/v1/rooms/{room}/questions/{question}/vote"),
    ("post", "/api/v1/rooms/{room}/questions/{question}/answers"),
    (
        "patch",
        "/api/v1/rooms/{room}/questions/{question}/answers/{answer}",
    ),
    (
        "delete",
        "/api/v1/rooms/{room}/questions/{question}/answers/{answer}",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/questions/{question}/live-answers/start",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/questions/{question}/live-answers/stop",
    ),
    (
        "post",
        "/api/v1/rooms/{room}/questions/{question}/live-answers/cancel",
    ),
    ("get", "/api/v1/rooms/{room}/quizzes"),
    ("post", "/api/v1/rooms/{room}/quizzes"),
    ("delete", "/api/v1/rooms/{room}/quizzes"),
    ("get", "/api/v1/rooms/{room}/quizzes/{quiz}"),
    ("patch", "/api/v1/rooms/{room}/quizzes/{quiz}"),
    ("delete", "/api/v1/rooms/{room}/quizzes/{quiz}"),
    ("get", "/api/v1/rooms/{room}/quizzes/{quiz}/results"),
    ("get", "/api/v1/rooms/{room}/quizzes/export"),
    ("get", "/api/v1/rooms/{room}/quizzes/template"),
    ("post", "/api/v1/rooms/{room}/quizzes/import"),
    ("delete", "/api/v1/sessions/{session}/quizzes"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{webhook}"),
    ("patch", "/api/v1/webhooks/{webhook}"),
    ("delete", "/api/v1/webhooks/{webhook}"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/webhooks/{webhook}/deliveries"),
    ("get", "/api/v1/webhooks/{webhook}/deliveries/{delivery}"),
    (
        "post",
        "/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver",
    ),
    ("get", "/api/v1/libraries"),
    ("post", "/api/v1/libraries"),
    ("get", "/api/v1/libraries/{library}"),
    ("get", "/api/v1/libraries/{library}/files"),
    ("post", "/api/v1/libraries/{library}/files"),
    ("get", "/api/v1/libraries/{library}/files/{file}"),
    ("delete", "/api/v1/libraries/{library}/files/{file}"),
    ("get", "/api/v1/libraries/{library}/files/{file}/download"),
    ("get", "/api/v1/libraries/{library}/files/{file}/media"),
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
            .replace("{role}", "no-such-role")
            .replace("{session}", "no-such-session")
            .replace("{poll}", "no-such-poll")
            .replace("{question}", "no-such-question")
            .replace("{answer}", "no-such-answer")
            .replace("{quiz}", "no-such-quiz")
            .replace("{webhook}", "no-such-webhook")
            .replace("{delivery}", "no-such-delivery")
            .replace("{library}", "no-such-library")
            .replace("{file}", "no-such-file")
            .replace("{callId}", "no-such-call");
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
