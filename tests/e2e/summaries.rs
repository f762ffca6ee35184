//! Session summaries through the real server (docs/transcripts.md,
//! "Summaries"): a str0m client publishes real speech (espeak-ng → Opus)
//! in a room with `transcription_enabled`; a fake OpenAI-compatible
//! transcription endpoint started here gives each utterance a fixed,
//! multi-sentence text (deterministic); when the session ends the summary
//! job runs and `GET /sessions/{session}/summary` serves it. Covered: the
//! built-in extractive summariser, an LLM chat-completions endpoint (the
//! request it gets, a job resumed after `kill -9`, a failing endpoint),
//! the deletes, and the errors (unknown or other team's session, no
//! transcription, bad token).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_tests::{Api, Options, Server};
use serde_json::{Value, json};

use crate::api_chat::wait_not_live;
use crate::captions::{is_caption, join, opus_packets, room, speech};

/// What the fake transcription endpoint says for every utterance.
const SAID: &str = "Hello everyone, can you hear me? The Berlin office missed its sales \
    targets by ten percent this quarter. We agree to raise the marketing budget for the \
    Berlin office next quarter. Okay, bye.";

/// Starts a fake transcription endpoint; returns its URL.
async fn transcription_engine() -> String {
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(|| async { axum::Json(json!({ "text": SAID })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1/audio/transcriptions")
}

/// Requests the fake chat endpoint got: headers and JSON body.
type Requests = Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>;

/// How the fake chat endpoint answers: its first `hang` requests never
/// get an answer; after them it answers 500 when `fail`, else a summary.
async fn chat_endpoint(hang: usize, fail: bool) -> (String, Requests) {
    let requests: Requests = Default::default();
    let seen = requests.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                let count = count.clone();
                async move {
                    seen.lock().unwrap().push((headers, body));
                    if count.fetch_add(1, Ordering::SeqCst) < hang {
                        std::future::pending::<()>().await;
                    }
                    if fail {
                        return (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(json!({"error": "model not loaded"})),
                        );
                    }
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                "role": "assistant",
                                "content": " The team agreed to raise the Berlin marketing budget. "
                            }}]
                        })),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/chat/completions"), requests)
}

/// A finished session of room `name` (with transcription) in which Ann
/// spoke (one caption); returns its id.
async fn spoken_session(s: &Server, name: &str) -> String {
    let (mut a, joined) = join(s, name, "Ann").await;
    let session = joined["session_id"].as_str().unwrap().to_string();
    let (mut b, _) = join(s, name, "Bob").await;
    let mut pcm = speech("three three three");
    pcm.extend(std::iter::repeat_n(0, 48_000 * 2));
    a.speak(opus_packets(&pcm));
    a.publish_kinds(true, false);
    a.wait_type("answer").await;
    b.wait_signal(Duration::from_secs(60), is_caption).await;
    a.leave();
    b.leave();
    wait_not_live(&s.api(), name).await;
    session
}

/// Polls the session's summary until it is no longer IN_PROGRESS.
async fn finished_summary(api: &Api, session: &str) -> Value {
    for _ in 0..300 {
        let r = api
            .get(&format!("/api/v1/sessions/{session}/summary"))
            .await;
        if r.status == 200 && r.body["status"] != "IN_PROGRESS" {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the summary of {session} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_session_gets_an_extractive_summary() {
    let engine = transcription_engine().await;
    let s = Server::start_with(Options {
        args: vec!["--transcription-url".into(), engine],
        ..Options::default()
    });
    let api = s.api();
    room(&s, "briefing", true).await;
    let session = spoken_session(&s, "briefing").await;

    let summary = finished_summary(&api, &session).await;
    assert_eq!(summary["status"], "READY", "{summary}");
    assert_eq!(summary["job_id"].as_str().unwrap().len(), 36, "{summary}");
    assert!(summary.get("failure_reason").is_none(), "{summary}");
    let text = summary["summary"].as_str().unwrap();
    // The informative sentences, with their speaker; not the small talk.
    assert!(
        text.contains("Ann: The Berlin office missed its sales targets"),
        "{text}"
    );
    assert!(!text.contains("can you hear me"), "{text}");
    assert!(!text.contains("bye"), "{text}");

    // Errors: unknown session, another team's session, a bad token.
    api.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000/summary")
        .await
        .expect(404);
    let (_, other_key) = s.create_team("Other");
    s.api_with_key(&other_key)
        .get(&format!("/api/v1/sessions/{session}/summary"))
        .await
        .expect(404);
    s.api_with_key("not-a-key")
        .get(&format!("/api/v1/sessions/{session}/summary"))
        .await
        .expect(401);
    // The other team cannot delete it either.
    s.api_with_key(&other_key)
        .delete(&format!("/api/v1/sessions/{session}/summaries"))
        .await
        .expect(404);
    api.get(&format!("/api/v1/sessions/{session}/summary"))
        .await
        .expect(200);

    // The session delete removes it; GET then says why there is none.
    api.delete(&format!("/api/v1/sessions/{session}/summaries"))
        .await
        .expect(204);
    let gone = api
        .get(&format!("/api/v1/sessions/{session}/summary"))
        .await
        .expect(404)
        .body;
    assert!(
        gone.to_string().contains("no transcript") && gone.to_string().contains("deleted"),
        "{gone}"
    );

    // A room without transcription: its session has no summary, and says so.
    room(&s, "silent", false).await;
    let (c, joined) = join(&s, "silent", "Cy").await;
    let quiet = joined["session_id"].as_str().unwrap().to_string();
    let live = api
        .get(&format!("/api/v1/sessions/{quiet}/summary"))
        .await
        .expect(404)
        .body;
    assert!(live.to_string().contains("still live"), "{live}");
    c.leave();
    wait_not_live(&api, "silent").await;
    api.get(&format!("/api/v1/sessions/{quiet}/summary"))
        .await
        .expect(404);

    // The room-wide delete removes a second session's summary.
    let second = spoken_session(&s, "briefing").await;
    assert_eq!(finished_summary(&api, &second).await["status"], "READY");
    api.delete("/api/v1/rooms/nope/summaries").await.expect(404);
    api.delete("/api/v1/rooms/briefing/summaries")
        .await
        .expect(204);
    api.get(&format!("/api/v1/sessions/{second}/summary"))
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_endpoint_writes_the_summary_and_a_killed_job_resumes() {
    let engine = transcription_engine().await;
    // The first request hangs: the server is killed while it waits.
    let (url, requests) = chat_endpoint(1, false).await;
    let mut s = Server::start_with(Options {
        args: vec![
            "--transcription-url".into(),
            engine,
            "--summary-url".into(),
            url,
            "--summary-model".into(),
            "llama-test".into(),
            "--summary-api-key".into(),
            "summary-key-456".into(),
        ],
        ..Options::default()
    });
    let api = s.api();
    room(&s, "board", true).await;
    let session = spoken_session(&s, "board").await;

    // The job is running (the endpoint has its request): IN_PROGRESS.
    for _ in 0..300 {
        if !requests.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = api
        .get(&format!("/api/v1/sessions/{session}/summary"))
        .await
        .expect(200)
        .body;
    assert_eq!(running["status"], "IN_PROGRESS", "{running}");
    assert_eq!(running["summary"], "", "{running}");
    let job = running["job_id"].clone();

    {
        let seen = requests.lock().unwrap();
        let (headers, body) = &seen[0];
        assert_eq!(
            headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer summary-key-456")
        );
        assert_eq!(body["model"], "llama-test", "{body}");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system", "{body}");
        assert_eq!(messages[1]["role"], "user", "{body}");
        assert!(
            messages[1]["content"]
                .as_str()
                .unwrap()
                .contains("Ann: Hello everyone"),
            "{body}"
        );
    }
    assert!(!s.stdout.iter().any(|l| l.contains("summary-key-456")));

    // kill -9 in the middle of the job; the restarted server resumes it.
    s.kill9();
    s.restart();
    let api = s.api();
    let done = finished_summary(&api, &session).await;
    assert_eq!(done["status"], "READY", "{done}");
    assert_eq!(done["job_id"], job, "{done}");
    assert_eq!(
        done["summary"], "The team agreed to raise the Berlin marketing budget.",
        "{done}"
    );
    assert_eq!(requests.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_llm_endpoint_is_retried_then_the_summary_fails_with_the_reason() {
    let engine = transcription_engine().await;
    let (url, requests) = chat_endpoint(0, true).await;
    let s = Server::start_with(Options {
        args: vec![
            "--transcription-url".into(),
            engine,
            "--summary-url".into(),
            url,
        ],
        ..Options::default()
    });
    let api = s.api();
    room(&s, "broken", true).await;
    let session = spoken_session(&s, "broken").await;
    let failed = finished_summary(&api, &session).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["summary"], "", "{failed}");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 500") && reason.contains("model not loaded"),
        "{reason}"
    );
    // Three tries (with backoff) before it gave up.
    assert_eq!(requests.lock().unwrap().len(), 3);
}
