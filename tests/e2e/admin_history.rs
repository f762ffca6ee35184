//! The admin console's "recent errors" (issue 24) through the real server:
//! a WARN the test provokes (a webhook whose receiver answers 500 gives up
//! after one attempt) shows in `GET /admin/api/errors` and in the
//! console's table in Chromium; the route needs a session.

use std::time::Duration;

use convene_tests::{KEY, Options, Server};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const CSRF: (&str, &str) = ("x-convene-admin", "1");
const GIVE_UP: &str = "webhook delivery failed for good";

/// A receiver on 127.0.0.1 that answers every request with 500.
async fn failing_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 16 * 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("http://{addr}/hook")
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
    let endpoint = failing_receiver().await;
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
        page.eval("document.getElementById('no-errors').hidden").await,
        json!(true)
    );
}
