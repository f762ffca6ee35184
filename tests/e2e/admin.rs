//! The admin console (issue 24) through the real server: sign-in for a
//! session cookie, 401 without it, CSRF refusals that change nothing,
//! sign-out, the live WebSocket (history, then per-second rooms with
//! participants, tracks and media figures) and moderation through the
//! console's cookie-authenticated proxies.

use std::time::Duration;

use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{KEY, Resp, Server, join};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(20);

/// An admin request with an optional session cookie and extra headers.
async fn admin(
    s: &Server,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.client.request(method, s.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("convene_admin={c}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    Resp::read(req.send().await.unwrap()).await
}

const CSRF: (&str, &str) = ("x-convene-admin", "1");

/// Signs in with the team key; returns the session cookie's value and
/// the whole `Set-Cookie` line.
async fn sign_in(s: &Server) -> (String, String) {
    let r = admin(
        s,
        "POST",
        "/admin/api/session",
        None,
        &[CSRF],
        Some(json!({"key": KEY})),
    )
    .await
    .expect(200);
    assert!(r.body["team_id"].is_string(), "{}", r.body);
    let line = r.header("set-cookie").unwrap().to_string();
    let value = line
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("convene_admin="))
        .unwrap()
        .to_string();
    assert!(value.len() >= 40, "session id too short: {line}");
    (value, line)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the live WebSocket; `Err(status)` when the upgrade is refused.
async fn live(s: &Server, cookie: Option<&str>, origin: Option<&str>) -> Result<Ws, u16> {
    let url = format!("{}/admin/api/live", s.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("cookie", format!("convene_admin={c}").parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("live websocket: {e}"),
    }
}

/// The next message of a type, within [`T`].
async fn next_of(ws: &mut Ws, ty: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no matching {ty} message within {T:?}"))
            .expect("live websocket closed")
            .unwrap();
        if let tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == ty && pred(&v) {
                return v;
            }
        }
    }
}

fn participants(tick: &Value) -> Vec<Value> {
    tick["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["participants"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_a_session_and_refuses_cross_site_requests() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "adm"}))
        .await
        .expect(200);
    let (_c, joined) = join(&s, "adm", "Ada", None).await;
    let pid = joined["participant"]["id"].as_str().unwrap().to_string();
    let live_room = s.api().get("/api/v1/rooms/adm/live").await.expect(200);
    let session_id = live_room.body["session_id"].as_str().unwrap().to_string();
    let room_id = live_room.body["id"].as_str().unwrap().to_string();
    let mute = format!("/admin/api/rooms/{room_id}/live/participants/{pid}/mute");
    let remove = format!("/admin/api/rooms/{room_id}/live/participants/{pid}/remove");
    let end = format!("/admin/api/sessions/{session_id}/end");

    // Without a session every admin API route is a 401 in the API's shape,
    // with no challenge that would open a browser's password dialog.
    let routes = [
        ("GET", "/admin/api/session".to_string()),
        ("DELETE", "/admin/api/session".to_string()),
        ("GET", "/admin/api/live".to_string()),
        ("GET", "/admin/api/rooms/live/participants".to_string()),
        ("POST", mute.clone()),
        ("POST", remove.clone()),
        ("POST", end.clone()),
        ("GET", "/admin/api/no-such-route".to_string()),
    ];
    for (method, path) in &routes {
        for cookie in [None, Some("forged-session-id")] {
            let r = admin(&s, method, path, cookie, &[CSRF], Some(json!({}))).await;
            assert_eq!(r.status, 401, "{method} {path} {cookie:?}: {}", r.body);
            assert_eq!(r.body["code"], "UNAUTHORIZED", "{}", r.body);
            assert!(r.body["message"].is_string());
            assert!(r.header("www-authenticate").is_none());
        }
    }
    assert_eq!(live(&s, None, Some(&s.base)).await.err(), Some(401));

    // A wrong key: 401 that does not say more; no cookie.
    let r = admin(
        &s,
        "POST",
        "/admin/api/session",
        None,
        &[CSRF],
        Some(json!({"key": "nope-0123456789abcdef"})),
    )
    .await
    .expect(401);
    assert_eq!(r.body["message"], "invalid developer key");
    assert!(r.header("set-cookie").is_none());
    // Bad input: a clear validation error.
    admin(
        &s,
        "POST",
        "/admin/api/session",
        None,
        &[CSRF],
        Some(json!({"secret": KEY})),
    )
    .await
    .expect_invalid("key");
    // A body over the sign-in's 4 KiB: 413, and the rest of it is read
    // first, so that the connection serves the next request (a 401: no
    // session) instead of being reset with the rest unread.
    let long = format!(r#"{{"key": "{}"}}"#, "k".repeat(64 * 1024));
    convene_tests::assert_a_refused_body_keeps_the_connection(
        &s.url(""),
        &[CSRF],
        ("/admin/api/session", &long),
        ("/admin/api/session", 401),
    )
    .await;
    // Sign-in itself needs the CSRF header (or this server's Origin).
    let r = admin(
        &s,
        "POST",
        "/admin/api/session",
        None,
        &[],
        Some(json!({"key": KEY})),
    )
    .await
    .expect(403);
    assert!(r.header("set-cookie").is_none());

    let (cookie, line) = sign_in(&s).await;
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(line.contains("Path=/admin"), "{line}");
    assert!(line.contains("Max-Age=43200"), "{line}");
    assert!(
        !line.contains("Secure"),
        "plain HTTP must not mark it Secure: {line}"
    );
    let me = admin(&s, "GET", "/admin/api/session", Some(&cookie), &[], None)
        .await
        .expect(200);
    assert_eq!(me.body["team_name"], "Default team");
    let list = admin(
        &s,
        "GET",
        "/admin/api/rooms/live/participants",
        Some(&cookie),
        &[],
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        list.body["data"][0]["live_participants"][0]["id"],
        pid.as_str()
    );

    // State-changing requests without the header, or from a foreign
    // origin, are 403 and change nothing.
    let foreign = ("origin", "https://evil.example");
    for headers in [vec![], vec![foreign], vec![foreign, CSRF]] {
        for path in [&mute, &remove, &end] {
            let r = admin(&s, "POST", path, Some(&cookie), &headers, Some(json!({}))).await;
            assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.body);
            assert_eq!(r.body["code"], "FORBIDDEN");
        }
        let r = admin(
            &s,
            "DELETE",
            "/admin/api/session",
            Some(&cookie),
            &headers,
            None,
        )
        .await;
        assert_eq!(r.status, 403);
    }
    let still = s.api().get("/api/v1/rooms/adm/live").await.expect(200);
    assert_eq!(still.body["live_participants"], 1);
    assert_eq!(still.body["session_id"], session_id.as_str());
    admin(&s, "GET", "/admin/api/session", Some(&cookie), &[], None)
        .await
        .expect(200);

    // The live WebSocket: refused from a foreign origin or without one;
    // from this server's origin, the history and then per-second updates.
    assert_eq!(
        live(&s, Some(&cookie), Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(live(&s, Some(&cookie), None).await.err(), Some(403));
    let mut ws = live(&s, Some(&cookie), Some(&s.base)).await.unwrap();
    let history = next_of(&mut ws, "history", |_| true).await;
    assert!(history["samples"].is_array());
    let tick = next_of(&mut ws, "tick", |v| !participants(v).is_empty()).await;
    assert_eq!(tick["rooms"][0]["friendly_url"], "adm");
    assert_eq!(tick["rooms"][0]["session_id"], session_id.as_str());
    let p = &participants(&tick)[0];
    assert_eq!(p["id"], pid.as_str());
    assert_eq!(p["name"], "Ada");
    let tick = next_of(&mut ws, "tick", |v| v["server"].is_object()).await;
    assert!(
        tick["server"]["rss_bytes"].as_u64().unwrap() > 1_000_000,
        "{}",
        tick["server"]
    );
    assert!(tick["server"]["t"].as_u64().unwrap() > 0);

    // At most 16 consoles at once: the 17th is told to retry later.
    let mut more = Vec::new();
    for _ in 0..15 {
        more.push(live(&s, Some(&cookie), Some(&s.base)).await.unwrap());
    }
    assert_eq!(
        live(&s, Some(&cookie), Some(&s.base)).await.err(),
        Some(429)
    );
    for mut m in more {
        let _ = m.close(None).await;
    }

    // "End session" from the console ends the room's live session.
    admin(&s, "POST", &end, Some(&cookie), &[CSRF], None)
        .await
        .expect(204);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = s.api().get("/api/v1/rooms/adm/live").await.expect(200);
        if r.body["live_participants"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session not ended: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    next_of(&mut ws, "tick", |v| participants(v).is_empty()).await;

    // Sign-out ends the session server-side: the old cookie is refused
    // and the open live stream closes.
    let r = admin(
        &s,
        "DELETE",
        "/admin/api/session",
        Some(&cookie),
        &[CSRF],
        None,
    )
    .await
    .expect(204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    admin(&s, "GET", "/admin/api/session", Some(&cookie), &[], None)
        .await
        .expect(401);
    admin(&s, "POST", &mute, Some(&cookie), &[CSRF], Some(json!({})))
        .await
        .expect(401);
    let closed = tokio::time::timeout(T, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(tungstenite::Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the live stream stayed open after sign-out");
    let _ = ws.close(None).await;
    assert_eq!(
        live(&s, Some(&cookie), Some(&s.base)).await.err(),
        Some(401)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sign_in_failures_are_rate_limited_like_api_keys() {
    let s = Server::start();
    let wrong = json!({"key": "wrong-key-0123456789abcdef"});
    // 20 failures a minute per address; 41 attempts cross at most one
    // window boundary.
    let mut limited = None;
    for i in 0..41 {
        let r = admin(
            &s,
            "POST",
            "/admin/api/session",
            None,
            &[CSRF],
            Some(wrong.clone()),
        )
        .await;
        if r.status == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert!(
        limited.is_some_and(|i| i >= 20),
        "never limited: {limited:?}"
    );
    // Now even the right key waits; no session is handed out.
    let r = admin(
        &s,
        "POST",
        "/admin/api/session",
        None,
        &[CSRF],
        Some(json!({"key": KEY})),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.header("set-cookie").is_none());
}

async fn publisher(s: &Server, name: &str) -> (Client, String) {
    let token = s
        .api()
        .post(
            "/api/v1/rooms/duo/token",
            json!({"u": name, "role": "moderator"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Client::connect(ClientOptions::with_token(s.ws_url(), token)).await;
    let joined = c.wait_type("joined").await;
    c.publish();
    c.wait_type("answer").await;
    let id = joined["participant"]["id"].as_str().unwrap().to_string();
    (c, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_live_shows_bitrates_and_moderates() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "duo"}))
        .await
        .expect(200);
    let (mut a, a_id) = publisher(&s, "Ann").await;
    let (_b, b_id) = publisher(&s, "Ben").await;
    let room_id = s.api().get("/api/v1/rooms/duo").await.expect(200).body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (cookie, _) = sign_in(&s).await;
    let mut ws = live(&s, Some(&cookie), Some(&s.base)).await.unwrap();
    next_of(&mut ws, "history", |_| true).await;
    // Both participants, both sending and receiving media, with their
    // published tracks and the network figures str0m measured.
    let tick = next_of(&mut ws, "tick", |v| {
        let ps = participants(v);
        ps.len() == 2
            && ps.iter().all(|p| {
                p["recv_bps"].as_u64().unwrap_or(0) > 0
                    && p["send_bps"].as_u64().unwrap_or(0) > 0
                    && p["tracks"].as_array().is_some_and(|t| t.len() == 2)
                    // The other's camera, with the layer forwarded.
                    && p["receiving"].as_array().is_some_and(|r| {
                        r.len() == 1 && ["q", "h", "f"].contains(&r[0]["layer"].as_str().unwrap_or(""))
                    })
            })
    })
    .await;
    let ps = participants(&tick);
    let ids: Vec<&str> = ps.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&a_id.as_str()) && ids.contains(&b_id.as_str()),
        "{ids:?}"
    );
    for p in &ps {
        assert_eq!(p["role"], "moderator");
        let sources: Vec<&str> = p["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["source"].as_str().unwrap())
            .collect();
        assert!(
            sources.contains(&"microphone") && sources.contains(&"camera"),
            "{p}"
        );
        assert!(
            p["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["muted"] == false)
        );
    }
    // RTT, loss and jitter as str0m measured them (from RTCP).
    next_of(&mut ws, "tick", |v| {
        let ps = participants(v);
        ps.len() == 2
            && ps.iter().all(|p| {
                p["rtt_ms"].is_number() && p["loss_in"].is_number() && p["jitter_ms"].is_number()
            })
    })
    .await;
    // The server's forwarded packets show in its samples.
    next_of(&mut ws, "tick", |v| {
        v["server"]["pps_out"].as_u64().unwrap_or(0) > 0
    })
    .await;

    // Mute from the console: the participant is told, and the console
    // shows its microphone muted.
    let mute = format!("/admin/api/rooms/{room_id}/live/participants/{a_id}/mute");
    admin(
        &s,
        "POST",
        &mute,
        Some(&cookie),
        &[CSRF],
        Some(json!({"source": "microphone"})),
    )
    .await
    .expect(204);
    let told = a.wait_type("muted_by_moderator").await;
    assert_eq!(told["source"], "microphone");
    next_of(&mut ws, "tick", |v| {
        participants(v).iter().any(|p| {
            p["id"] == a_id.as_str()
                && p["tracks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["source"] == "microphone" && t["muted"] == true)
        })
    })
    .await;
    // Bad input: a clear error, nothing changed.
    admin(
        &s,
        "POST",
        &mute,
        Some(&cookie),
        &[CSRF],
        Some(json!({"source": "nose"})),
    )
    .await
    .expect_invalid("source");
    // Remove from the console.
    let remove = format!("/admin/api/rooms/{room_id}/live/participants/{b_id}/remove");
    admin(&s, "POST", &remove, Some(&cookie), &[CSRF], None)
        .await
        .expect(204);
    next_of(&mut ws, "tick", |v| {
        let ps = participants(v);
        ps.len() == 1 && ps[0]["id"] == a_id.as_str()
    })
    .await;
}

/// The console page in real Chromium: sign-in, two live participants with
/// non-zero bitrates, drawn plots, mute from the console, sign-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_console_live_view_mute_and_sign_out() {
    use convene_tests::browser::Browser;

    use crate::browser::{ONE_AT_A_TIME, server};
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "duo"}))
        .await
        .expect(200);
    let (mut a, a_id) = publisher(&s, "Ann").await;
    let (_b, _b_id) = publisher(&s, "Ben").await;

    let b = Browser::launch().await;
    let page = b.open(&s.url("/admin")).await;
    // Without a session the page shows the sign-in form.
    page.wait_for("!document.getElementById('sign-in').hidden", T)
        .await;
    assert_eq!(
        page.eval("document.getElementById('console').hidden").await,
        json!(true)
    );
    // A wrong key is refused on the form.
    page.eval(
        "document.getElementById('key').value = 'wrong-key-0123456789';
         document.getElementById('sign-in-form').requestSubmit(); true",
    )
    .await;
    page.wait_for(
        "document.getElementById('sign-in-error').textContent.includes('invalid')",
        T,
    )
    .await;
    page.eval(&format!(
        "document.getElementById('key').value = '{KEY}';
         document.getElementById('sign-in-form').requestSubmit(); true"
    ))
    .await;
    // The room with its two participants and their bitrates, updating.
    page.wait_for(
        "(() => { const rows = [...document.querySelectorAll('tr[data-participant]')];
           return rows.length === 2 && rows.every(r => +r.dataset.sendBps > 0 && +r.dataset.recvBps > 0); })()",
        T,
    )
    .await;
    // The plots have drawn data: several points, and line pixels.
    page.wait_for(
        "+document.getElementById('plot-pps').dataset.points >= 3
         && +document.getElementById('plot-participant').dataset.points >= 3",
        T,
    )
    .await;
    let drawn = page
        .eval(
            "(() => { const c = document.getElementById('plot-bitrate');
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0;
               for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 100) n++;
               return n; })()",
        )
        .await;
    assert!(drawn.as_u64().unwrap() > 20, "no line drawn: {drawn}");

    // `CONVENE_DOC_SCREENSHOTS=1` refreshes the picture in docs/admin.md.
    if std::env::var("CONVENE_DOC_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/admin-live.png");
        page.screenshot(&path).await;
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }

    // Mute from the console reaches the participant and shows.
    page.eval(&format!(
        "document.querySelector('button[data-mute=\"{a_id}\"]').click(); true"
    ))
    .await;
    a.wait_type("muted_by_moderator").await;
    page.wait_for(
        &format!(
            "document.querySelector('tr[data-participant=\"{a_id}\"]').textContent.includes('(muted)')"
        ),
        T,
    )
    .await;

    // Sign-out: back to the sign-in form, and the session is gone.
    page.eval("document.getElementById('sign-out').click(); true")
        .await;
    page.wait_for("!document.getElementById('sign-in').hidden", T)
        .await;
    let status = page
        .wait_for("fetch('/admin/api/session').then(r => r.status)", T)
        .await;
    assert_eq!(status, json!(401));
}

/// Over HTTPS (the server's own TLS) the session cookie is also `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cookie_is_secure_over_tls() {
    use crate::server::{self_signed, trusting};
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = self_signed();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let s = Server::start_with(convene_tests::Options {
        args: vec![
            "--tls-cert".into(),
            cert_path.display().to_string(),
            "--tls-key".into(),
            key_path.display().to_string(),
            // TURN over TLS on a free port: other TLS tests run in parallel.
            "--turn-tls-port".into(),
            "0".into(),
        ],
        ..Default::default()
    });
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let r = trusting(&cert)
        .post(s.url("/admin/api/session"))
        .header(CSRF.0, CSRF.1)
        .header("content-type", "application/json")
        .body(json!({"key": KEY}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(line.contains(attr), "{attr} missing: {line}");
    }
}
