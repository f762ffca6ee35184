//! The admin console signed in with a fleet account (issue 24): a fleet
//! admin may do what the developer key may; a viewer may only look, on the
//! server and on the page; a changed password or role ends the session; and
//! a READY recording downloads from the console.

use std::time::{Duration, Instant};

use convene_tests::{KEY, Resp, Server};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const CSRF: (&str, &str) = ("x-convene-admin", "1");
const ADMIN: &str = "ops@example.com";
const VIEWER: &str = "watch@example.com";
const PASSWORD: &str = "correct horse battery";

/// An admin-console request with an optional session cookie.
async fn admin(
    s: &Server,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.client.request(method, s.url(path)).header(CSRF.0, CSRF.1);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("convene_admin={c}"));
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    Resp::read(req.send().await.unwrap()).await
}

/// Signs in with `body`; the session cookie's value and the answer.
async fn sign_in(s: &Server, body: Value) -> (String, Value) {
    let r = admin(s, "POST", "/admin/api/session", None, Some(body))
        .await
        .expect(200);
    let line = r.header("set-cookie").unwrap().to_string();
    let value = line
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("convene_admin="))
        .unwrap()
        .to_string();
    (value, r.body)
}

/// A fleet API access token for `email`.
async fn fleet_token(s: &Server, email: &str, password: &str) -> String {
    let r = s
        .client
        .post(s.url("/fleet/api/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let r = Resp::read(r).await.expect(200);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn fleet(s: &Server, method: &str, path: &str, token: &str, body: Value) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = s
        .client
        .request(method, s.url(&format!("/fleet/api/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    Resp::read(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_console_fleet_accounts_admins_act_viewers_only_look() {
    let s = Server::start();
    s.create_fleet_user(ADMIN, "admin", PASSWORD);
    let viewer_id = s.create_fleet_user(VIEWER, "viewer", PASSWORD);
    let (_, by_key) = sign_in(&s, json!({"key": KEY})).await;
    assert_eq!(by_key["principal"], "developer_key", "{by_key}");
    assert_eq!(by_key["read_only"], false, "{by_key}");

    // Wrong password, unknown account, malformed bodies: refused, no cookie.
    for body in [
        json!({"email": VIEWER, "password": "wrong password here"}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
    ] {
        let r = admin(&s, "POST", "/admin/api/session", None, Some(body)).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.header("set-cookie").is_none());
        // The same answer whether the account exists or not.
        assert_eq!(r.body["message"], "invalid email or password", "{}", r.body);
    }
    for body in [
        json!({}),
        json!({"email": 5, "password": "x"}),
        json!({"email": VIEWER}),
    ] {
        let r = admin(&s, "POST", "/admin/api/session", None, Some(body.clone())).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.body["code"], "VALIDATION_ERROR", "{}", r.body);
        assert!(r.header("set-cookie").is_none());
    }
    let long = "x".repeat(300);
    let r = admin(
        &s,
        "POST",
        "/admin/api/session",
        None,
        Some(json!({"email": long, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["errors"]["email"].is_array(), "{}", r.body);

    // The viewer: the default team, read-only.
    let (viewer, who) = sign_in(&s, json!({"email": VIEWER, "password": PASSWORD})).await;
    assert_eq!(who["team_id"], by_key["team_id"], "{who}");
    assert_eq!(who["principal"], "fleet_account", "{who}");
    assert_eq!(who["email"], VIEWER, "{who}");
    assert_eq!(who["role"], "viewer", "{who}");
    assert_eq!(who["read_only"], true, "{who}");
    let me = admin(&s, "GET", "/admin/api/session", Some(&viewer), None)
        .await
        .expect(200)
        .body;
    assert_eq!(me["read_only"], true, "{me}");
    for path in [
        "/admin/api/sessions",
        "/admin/api/defaults",
        "/admin/api/recordings",
        "/admin/api/webhooks",
        "/admin/api/errors",
    ] {
        admin(&s, "GET", path, Some(&viewer), None)
            .await
            .expect(200);
    }
    // Every change is refused and changes nothing.
    let defaults = s.api().get("/api/v1").await.expect(200).body;
    let flip = !defaults["audio_on_join_enabled"].as_bool().unwrap();
    for (method, path, body) in [
        (
            "PATCH",
            "/admin/api/defaults",
            json!({"audio_on_join_enabled": flip}),
        ),
        (
            "POST",
            "/admin/api/key/rotate",
            json!({"confirm": "rotate"}),
        ),
        (
            "POST",
            "/admin/api/webhooks",
            json!({"endpoint": "https://example.com/h", "events": ["session.ended"]}),
        ),
        ("POST", "/admin/api/sessions/x/end", json!({})),
        (
            "POST",
            "/admin/api/rooms/r/live/participants/p/mute",
            json!({}),
        ),
    ] {
        let r = admin(&s, method, path, Some(&viewer), Some(body)).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains("viewer"),
            "{}",
            r.body
        );
    }
    assert_eq!(s.api().get("/api/v1").await.expect(200).body, defaults);
    assert_eq!(
        s.api().get("/api/v1/webhooks").await.expect(200).body["total_count"],
        0
    );

    // A fleet admin may change things, like the developer key may.
    let (ops, who) = sign_in(&s, json!({"email": ADMIN, "password": PASSWORD})).await;
    assert_eq!(
        (who["role"].clone(), who["read_only"].clone()),
        (json!("admin"), json!(false))
    );
    admin(
        &s,
        "PATCH",
        "/admin/api/defaults",
        Some(&ops),
        Some(json!({"audio_on_join_enabled": flip})),
    )
    .await
    .expect(200);
    assert_eq!(
        s.api().get("/api/v1").await.expect(200).body["audio_on_join_enabled"],
        flip
    );

    // Promoting the viewer changes its token version: its console session
    // ends (a new sign-in gets the admin role).
    let ops_token = fleet_token(&s, ADMIN, PASSWORD).await;
    fleet(
        &s,
        "PATCH",
        &format!("/users/{viewer_id}"),
        &ops_token,
        json!({"role": "admin"}),
    )
    .await
    .expect(200);
    admin(&s, "GET", "/admin/api/session", Some(&viewer), None)
        .await
        .expect(401);
    let (_, who) = sign_in(&s, json!({"email": VIEWER, "password": PASSWORD})).await;
    assert_eq!(who["role"], "admin", "{who}");

    // The admin changes its own password: its console session ends too.
    fleet(
        &s,
        "POST",
        "/users/me/password",
        &ops_token,
        json!({"current_password": PASSWORD, "new_password": "another horse battery"}),
    )
    .await;
    admin(&s, "GET", "/admin/api/session", Some(&ops), None)
        .await
        .expect(401);

    // Signing out is allowed to a read-only session.
    let demoted = s.create_fleet_user("late@example.com", "viewer", PASSWORD);
    assert!(!demoted.is_empty());
    let (late, _) = sign_in(
        &s,
        json!({"email": "late@example.com", "password": PASSWORD}),
    )
    .await;
    admin(&s, "DELETE", "/admin/api/session", Some(&late), None)
        .await
        .expect(204);
    admin(&s, "GET", "/admin/api/session", Some(&late), None)
        .await
        .expect(401);
}

/// Polls the REST API until the recording is READY (or fails).
async fn ready(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let r = s
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        if r["status"] == "READY" {
            return r;
        }
        assert!(r["status"] != "FAILED", "processing failed: {r:#}");
        assert!(Instant::now() < deadline, "not READY in time: {r:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Chromium: a fleet viewer signs in on the page, sees the live room but no
/// button that changes anything (and the server refuses a mute it sends
/// anyway), and downloads a READY recording from History.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_viewer_looks_and_downloads_a_ready_recording() {
    use convene_tests::browser::Browser;

    use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, wait_state};
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.create_fleet_user(VIEWER, "viewer", PASSWORD);
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "kept", "recordings_enabled": true, "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let token = s
        .api()
        .post(
            "/api/v1/rooms/kept/token",
            json!({"u": "Ann", "role": "moderator"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let b = Browser::launch().await;
    let ann = b.open(&s.url(&format!("/kept?token={token}"))).await;
    wait_state(&ann, "joined").await;
    ann.wait_for(
        "window.convene.pc && window.convene.pc.getSenders().filter(x => x.track).length >= 2",
        JOIN_TIMEOUT,
    )
    .await;
    let started = s
        .api()
        .post("/api/v1/rooms/kept/recordings/start", json!({}))
        .await
        .expect(200)
        .body;
    let rec = started["id"].as_str().unwrap().to_string();

    // The viewer signs in with the account form while the room is live.
    let page = b.open(&s.url("/admin")).await;
    page.wait_for("!document.getElementById('sign-in').hidden", T)
        .await;
    page.eval(&format!(
        "document.getElementById('account-email').value = '{VIEWER}';
         document.getElementById('account-password').value = 'wrong password here';
         document.getElementById('account-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for(
        "document.getElementById('account-error').textContent.includes('invalid')",
        T,
    )
    .await;
    page.eval(&format!(
        "document.getElementById('account-email').value = '{VIEWER}';
         document.getElementById('account-password').value = '{PASSWORD}';
         document.getElementById('account-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for("!document.getElementById('tabs').hidden", T)
        .await;
    let who = page
        .eval("document.getElementById('who').textContent")
        .await;
    assert!(who.as_str().unwrap().contains("(read-only)"), "{who}");
    // The live room shows Ann; her mute button and the Settings tab are not shown.
    page.wait_for(
        "document.querySelectorAll('tr[data-participant]').length === 1",
        T,
    )
    .await;
    let hidden = page
        .eval(
            "[...document.querySelectorAll('[data-mute], [data-remove], [data-end-session], [data-tab=settings]')]
               .map(e => getComputedStyle(e).display)",
        )
        .await;
    let hidden = hidden.as_array().unwrap();
    assert!(hidden.len() >= 4, "{hidden:?}");
    assert!(hidden.iter().all(|d| d == "none"), "{hidden:?}");
    // A mute sent anyway (from the page's own origin) is refused.
    let ann_id = page
        .eval("document.querySelector('tr[data-participant]').dataset.participant")
        .await;
    let room_id = s.api().get("/api/v1/rooms/kept").await.expect(200).body["id"].clone();
    let status = page
        .wait_for(
            &format!(
                "fetch('/admin/api/rooms/{}/live/participants/{}/mute', {{method: 'POST',
                   headers: {{'X-Convene-Admin': '1', 'Content-Type': 'application/json'}}, body: '{{}}'}})
                 .then(r => r.status)",
                room_id.as_str().unwrap(),
                ann_id.as_str().unwrap()
            ),
            T,
        )
        .await;
    assert_eq!(status, json!(403));
    assert_eq!(
        ann.eval("window.convene.pc.getSenders().filter(x => x.track && x.track.kind === 'audio' && x.track.enabled).length")
            .await,
        json!(1),
        "Ann's microphone stayed on"
    );

    // A few seconds of media, then the recording is stopped and processed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.api()
        .post("/api/v1/rooms/kept/recordings/stop", json!({}))
        .await
        .expect(200);
    ready(&s, &rec).await;

    // History: the READY recording downloads from the console's own origin.
    page.eval("document.querySelector('[data-tab=history]').click(); true")
        .await;
    page.wait_for(
        &format!(
            "(() => {{ const b = document.querySelector('[data-download-button=\"{rec}\"]');
               if (b) return true; document.getElementById('history-refresh').click(); return false; }})()"
        ),
        T,
    )
    .await;
    page.eval(&format!(
        "document.querySelector('[data-download-button=\"{rec}\"]').click(); true"
    ))
    .await;
    let href = page
        .wait_for(
            &format!(
                "document.querySelector('a[data-download=\"{rec}\"]')?.getAttribute('href') || null"
            ),
            T,
        )
        .await;
    let href = href.as_str().unwrap().to_string();
    assert!(href.starts_with("/api/v1/recordings/"), "{href}");
    let fetched = page
        .wait_for(
            &format!(
                "fetch('{href}').then(async r => [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength])"
            ),
            T,
        )
        .await;
    let direct = s.client.get(s.url(&href)).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    let bytes = direct.bytes().await.unwrap();
    assert_eq!(fetched[0], 200, "{fetched}");
    assert_eq!(
        fetched[2].as_u64().unwrap(),
        bytes.len() as u64,
        "{fetched}"
    );
    assert_eq!(fetched[1], "video/mp4", "{fetched}");
    assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
    // The composite is an MP4: its first box is `ftyp`.
    assert_eq!(&bytes[4..8], b"ftyp");
}
