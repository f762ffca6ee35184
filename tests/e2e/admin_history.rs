//! The admin console's "recent errors" (issue 24) through the real server:
//! a WARN the test provokes (a webhook whose receiver answers 500 gives up
//! after one attempt) shows in `GET /admin/api/errors` and in the
//! console's table in Chromium; the route needs a session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use convene_tests::{KEY, Options, Server};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const CSRF: (&str, &str) = ("x-convene-admin", "1");
const GIVE_UP: &str = "webhook delivery failed for good";

/// A webhook receiver on 127.0.0.1: answers 500 while `fail` is set,
/// 200 after; counts the requests it got.
#[derive(Clone)]
struct Receiver {
    url: String,
    fail: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = Receiver {
        url: format!("http://{addr}/hook"),
        fail: Arc::new(AtomicBool::new(true)),
        hits: Arc::new(AtomicUsize::new(0)),
    };
    let (fail, hits) = (r.fail.clone(), r.hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (fail, hits) = (fail.clone(), hits.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // The whole request: headers, then `content-length` bytes.
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let head: &[u8] = if fail.load(Ordering::SeqCst) {
                    b"HTTP/1.1 500 Internal Server Error\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\n"
                };
                let _ = sock.write_all(head).await;
                let _ = sock
                    .write_all(b"content-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    r
}

fn server() -> Server {
    Server::start_with(Options {
        args: vec!["--webhooks-allow-private".into()],
        env: vec![
            ("CONVENE_WEBHOOK_MAX_ATTEMPTS".into(), "1".into()),
            ("CONVENE_WEBHOOK_RETRY_BASE_MS".into(), "100".into()),
            ("CONVENE_LOG".into(), "info".into()),
        ],
        capture_log: true,
        ..Options::default()
    })
}

/// Makes the server log a WARN: a webhook delivery that fails for good.
async fn provoke_warn(s: &Server) {
    let api = s.api();
    let endpoint = receiver().await.url;
    api.post(
        "/api/v1/webhooks",
        json!({"endpoint": endpoint, "events": ["room.created"]}),
    )
    .await
    .expect(200);
    api.post("/api/v1/rooms", json!({"friendly_url": "errors-1"}))
        .await
        .expect(200);
}

async fn sign_in(s: &Server) -> String {
    let r = s
        .client
        .post(s.url("/admin/api/session"))
        .header(CSRF.0, CSRF.1)
        .json(&json!({"key": KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = r.headers()["set-cookie"].to_str().unwrap().to_string();
    line.split(';').next().unwrap().to_string()
}

async fn errors(s: &Server, cookie: Option<&str>) -> (u16, Value) {
    let mut req = s.client.get(s.url("/admin/api/errors"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_recent_errors_show_a_provoked_warn() {
    let s = server();
    // No session: 401 in the API's error shape, nothing listed.
    let (status, body) = errors(&s, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].is_string(), "{body}");

    let cookie = sign_in(&s).await;
    let (status, before) = errors(&s, Some(&cookie)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["capacity"], 200);
    let has_give_up = |v: &Value| {
        v["data"].as_array().unwrap().iter().any(|e| {
            e["level"] == "WARN"
                && e["message"].as_str().unwrap().contains(GIVE_UP)
                && e["target"].as_str().unwrap().contains("webhooks")
        })
    };
    assert!(!has_give_up(&before), "{before}");

    provoke_warn(&s).await;
    let deadline = tokio::time::Instant::now() + T;
    let after = loop {
        let (status, v) = errors(&s, Some(&cookie)).await;
        assert_eq!(status, 200, "{v}");
        if has_give_up(&v) {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WARN never showed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Newest first, with a time and the event's fields.
    let entry = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"].as_str().unwrap().contains(GIVE_UP))
        .unwrap();
    assert!(entry["t"].as_u64().unwrap() > 1_600_000_000_000, "{entry}");
    assert!(
        entry["message"].as_str().unwrap().contains("attempts=1"),
        "{entry}"
    );
    let times: Vec<u64> = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["t"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // After sign-out the route is 401 again.
    let r = s
        .client
        .delete(s.url("/admin/api/session"))
        .header("cookie", &cookie)
        .header(CSRF.0, CSRF.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(errors(&s, Some(&cookie)).await.0, 401);
}

/// Chromium: the console's "Recent errors" table shows the WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_console_shows_recent_errors() {
    use convene_tests::browser::Browser;

    use crate::browser::ONE_AT_A_TIME;
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = server();
    let b = Browser::launch().await;
    let page = b.open(&s.url("/admin")).await;
    page.wait_for("!document.getElementById('sign-in').hidden", T)
        .await;
    page.eval(&format!(
        "document.getElementById('key').value = '{KEY}';
         document.getElementById('sign-in-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for("!document.getElementById('console').hidden", T)
        .await;

    provoke_warn(&s).await;
    // Refresh until the row is there (the delivery runs in the background).
    page.wait_for(
        &format!(
            "(() => {{ document.getElementById('errors-refresh').click();
               return [...document.querySelectorAll('#errors tbody tr')]
                 .some(r => r.dataset.level === 'WARN' && r.textContent.includes('{GIVE_UP}')); }})()"
        ),
        T,
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('no-errors').hidden")
            .await,
        json!(true)
    );
}

/// `CONVENE_DOC_SCREENSHOTS=1` refreshes the pictures in docs/admin.md.
async fn screenshot(page: &convene_tests::browser::Page, name: &str) {
    if std::env::var("CONVENE_DOC_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/img")
            .join(name);
        page.screenshot(&path).await;
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }
}

/// Every console route added for History and Settings: 401 without a
/// session; a state change from a foreign origin is 403 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_history_and_settings_routes_need_a_session_and_csrf() {
    let s = server();
    let gets = [
        "/admin/api/errors",
        "/admin/api/sessions",
        "/admin/api/sessions/x/statistics",
        "/admin/api/recordings",
        "/admin/api/recordings/x/download",
        "/admin/api/webhooks",
        "/admin/api/webhooks/x/deliveries",
        "/admin/api/defaults",
    ];
    for path in gets {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let changes = [
        ("POST", "/admin/api/webhooks/x/deliveries/y/redeliver"),
        ("PATCH", "/admin/api/defaults"),
        ("POST", "/admin/api/webhooks"),
        ("DELETE", "/admin/api/webhooks/x"),
        ("POST", "/admin/api/key/rotate"),
    ];
    for (m, path) in changes {
        let m = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = s
            .client
            .request(m, s.url(path))
            .header(CSRF.0, CSRF.1)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }

    // With a session but from another origin: 403, nothing created.
    let cookie = sign_in(&s).await;
    let api = s.api();
    let before = api.get("/api/v1").await.expect(200).body;
    let flip = !before["audio_on_join_enabled"].as_bool().unwrap();
    let foreign = |m: &str, path: &str, body: Value| {
        let m = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        s.client
            .request(m, s.url(path))
            .header("cookie", &cookie)
            .header("origin", "http://evil.example")
            .header(CSRF.0, CSRF.1)
            .json(&body)
            .send()
    };
    let r = foreign(
        "PATCH",
        "/admin/api/defaults",
        json!({"audio_on_join_enabled": flip}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = foreign(
        "POST",
        "/admin/api/webhooks",
        json!({"endpoint": "http://127.0.0.1:9/x", "events": ["room.created"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = foreign(
        "POST",
        "/admin/api/key/rotate",
        json!({"confirm": "rotate"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // The key rotation without its confirmation: 422, nothing changed.
    let r = s
        .client
        .post(s.url("/admin/api/key/rotate"))
        .header("cookie", &cookie)
        .header(CSRF.0, CSRF.1)
        .json(&json!({"confirm": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("confirm"),
        "{body}"
    );
    // The old key still works, so nothing was rotated.
    assert_eq!(api.get("/api/v1").await.expect(200).body, before);
    let hooks = api.get("/api/v1/webhooks").await.expect(200).body;
    assert_eq!(hooks["total_count"], 0, "{hooks}");
}

/// Chromium: History lists a finished session with its statistics and a
/// failed webhook delivery whose **Redeliver** reaches the receiver again;
/// Settings changes a team default (seen through the REST API) and
/// creates and deletes a webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_history_and_settings() {
    use convene_tests::browser::Browser;
    use convene_tests::rtc_client::{Client, ClientOptions};

    use crate::browser::ONE_AT_A_TIME;
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = server();
    let api = s.api();
    let rx = receiver().await;
    let hook = api
        .post(
            "/api/v1/webhooks",
            json!({"endpoint": rx.url, "events": ["session.ended"]}),
        )
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A session: one participant joins, then the session is ended.
    api.post("/api/v1/rooms", json!({"friendly_url": "hist"}))
        .await
        .expect(200);
    let token = api
        .post("/api/v1/rooms/hist/token", json!({"u": "Ann"}))
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Client::connect(ClientOptions::with_token(s.ws_url(), token)).await;
    c.wait_type("joined").await;
    let live = api.get("/api/v1/sessions?live=true").await.expect(200).body;
    let session = live["data"][0]["id"].as_str().unwrap().to_string();
    api.post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await
        .expect(204);
    drop(c);
    // The session.ended delivery fails for good (one attempt, 500).
    let deadline = tokio::time::Instant::now() + T;
    let failed = loop {
        let d = api
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"))
            .await
            .expect(200)
            .body;
        if let Some(f) = d["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["status"] == "failed")
        {
            break f["id"].as_str().unwrap().to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rx.hits.load(Ordering::SeqCst), 1);

    let b = Browser::launch().await;
    let page = b.open(&s.url("/admin")).await;
    page.wait_for("!document.getElementById('sign-in').hidden", T)
        .await;
    page.eval(&format!(
        "document.getElementById('key').value = '{KEY}';
         document.getElementById('sign-in-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for("!document.getElementById('tabs').hidden", T)
        .await;
    page.eval("document.querySelector('[data-tab=history]').click(); true")
        .await;
    // The finished session, newest first, with its statistics.
    page.wait_for(
        &format!("!!document.querySelector('tr[data-session=\"{session}\"]')"),
        T,
    )
    .await;
    let text = page
        .eval(&format!(
            "document.querySelector('tr[data-session=\"{session}\"]').textContent"
        ))
        .await;
    assert!(text.as_str().unwrap().contains("hist"), "{text}");
    page.eval(&format!(
        "document.querySelector('[data-stats-button=\"{session}\"]').click(); true"
    ))
    .await;
    let stats = page
        .wait_for(
            &format!(
                "(() => {{ const t = document.querySelector('[data-stats=\"{session}\"]').textContent;
                   return t.includes(':') ? t : null; }})()"
            ),
            T,
        )
        .await;
    let rest = api
        .get(&format!("/api/v1/sessions/{session}/statistics"))
        .await
        .expect(200)
        .body;
    let (k, v) = rest
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v.is_i64() || v.is_u64())
        .unwrap();
    assert!(
        stats.as_str().unwrap().contains(&format!("{k}: {v}")),
        "{stats} vs {rest}"
    );

    // The failed delivery shows with its 500; Redeliver reaches the receiver.
    page.wait_for(
        &format!(
            "(() => {{ const r = document.querySelector('tr[data-delivery=\"{failed}\"]');
               return r && r.dataset.deliveryStatus === 'failed' && r.textContent.includes('500'); }})()"
        ),
        T,
    )
    .await;
    screenshot(&page, "admin-history.png").await;
    rx.fail.store(false, Ordering::SeqCst);
    page.eval(&format!(
        "document.querySelector('[data-redeliver=\"{failed}\"]').click(); true"
    ))
    .await;
    let deadline = tokio::time::Instant::now() + T;
    while rx.hits.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no redelivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.wait_for(
        "[...document.querySelectorAll('tr[data-delivery]')].some(r => r.dataset.deliveryStatus === 'succeeded')
         || (document.getElementById('history-refresh').click(), false)",
        T,
    )
    .await;

    // Settings: flip a team default and see it through the REST API.
    let before = api.get("/api/v1").await.expect(200).body;
    let flip = !before["audio_on_join_enabled"].as_bool().unwrap();
    page.eval("document.querySelector('[data-tab=settings]').click(); true")
        .await;
    page.wait_for(
        "!!document.querySelector('[data-default=audio_on_join_enabled]')",
        T,
    )
    .await;
    page.eval(&format!(
        "document.querySelector('[data-default=audio_on_join_enabled]').checked = {flip};
         document.getElementById('defaults-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for(
        "document.getElementById('settings-note').textContent === 'Defaults saved.'",
        T,
    )
    .await;
    let after = api.get("/api/v1").await.expect(200).body;
    assert_eq!(after["audio_on_join_enabled"], json!(flip), "{after}");
    screenshot(&page, "admin-settings.png").await;

    // Create a webhook on the form (the secret is write-only), then delete it.
    page.eval(
        "document.getElementById('webhook-endpoint').value = 'http://127.0.0.1:9/made-here';
         document.getElementById('webhook-events').value = 'room.created, room.deleted';
         document.getElementById('webhook-secret').value = 'a-secret-of-sixteen+';
         document.getElementById('webhook-form').requestSubmit(); true",
    )
    .await;
    page.wait_for(
        "[...document.querySelectorAll('tr[data-webhook]')].some(r => r.textContent.includes('made-here'))",
        T,
    )
    .await;
    let hooks = api.get("/api/v1/webhooks").await.expect(200).body;
    let made = hooks["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["endpoint"] == "http://127.0.0.1:9/made-here")
        .unwrap_or_else(|| panic!("{hooks}"))
        .clone();
    assert_eq!(made["has_secret"], true);
    assert!(made.get("secret").is_none(), "{made}");
    let id = made["id"].as_str().unwrap();
    let html = page
        .eval("document.getElementById('settings').innerHTML")
        .await;
    assert!(!html.as_str().unwrap().contains("a-secret-of-sixteen+"));
    page.eval(&format!(
        "window.confirm = () => true;
         document.querySelector('[data-delete-webhook=\"{id}\"]').click(); true"
    ))
    .await;
    page.wait_for(
        &format!("!document.querySelector('tr[data-webhook=\"{id}\"]')"),
        T,
    )
    .await;
    api.get(&format!("/api/v1/webhooks/{id}")).await.expect(404);

    // Rotate the developer key: a confirmation step, then signed out with
    // the new key shown once; the old key is refused, the new one works.
    page.eval("document.getElementById('rotate-start').click(); true")
        .await;
    page.wait_for("!document.getElementById('rotate-confirm').hidden", T)
        .await;
    page.eval(
        "document.getElementById('rotate-text').value = 'rotate';
         document.getElementById('rotate-go').click(); true",
    )
    .await;
    page.wait_for(
        "!document.getElementById('sign-in').hidden && !document.getElementById('rotated').hidden",
        T,
    )
    .await;
    let new_key = page
        .eval("document.getElementById('new-key').textContent")
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(new_key.len() >= 32 && new_key != KEY, "{new_key}");
    assert_eq!(
        page.eval("document.getElementById('history').hidden && document.getElementById('settings').hidden")
            .await,
        json!(true)
    );
    let status = page
        .wait_for("fetch('/admin/api/session').then(r => r.status)", T)
        .await;
    assert_eq!(status, json!(401));
    api.get("/api/v1").await.expect(401);
    s.api_with_key(&new_key).get("/api/v1").await.expect(200);
}
