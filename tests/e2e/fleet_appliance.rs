//! Appliances in the fleet, end to end (docs/fleet.md): the real server and
//! real `convene-appliance` processes (test pattern + sine) that enroll with
//! a one-time token, keep one outbound WebSocket with heartbeats, and carry
//! out remote actions; the fleet WebSocket API reporting their status.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use convene_tests::{Options, Resp, Server, binary, media_ip};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "admin@example.com";
const VIEWER: &str = "viewer@example.com";
const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);

/// A fleet API client with an access token.
#[derive(Clone)]
struct Fleet {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Fleet {
    async fn login(s: &Server, email: &str) -> Fleet {
        let base = s.url("/fleet/api/v1");
        let r = Resp::read(
            s.client
                .post(format!("{base}/auth/token"))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap(),
        )
        .await
        .expect(200);
        Fleet {
            client: s.client.clone(),
            base,
            token: r.body["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.unwrap()).await
    }
    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn action(&self, device: &str, body: Value) -> Resp {
        self.post(&format!("/devices/{device}/actions"), body).await
    }

    async fn enrollment_token(&self) -> String {
        self.post("/enrollment-tokens", json!({}))
            .await
            .expect(201)
            .body["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Polls `GET /devices/{id}` until `pred` holds; returns the device.
    async fn wait_device(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let d = self.get(&format!("/devices/{id}")).await.expect(200).body;
            if pred(&d) {
                return d;
            }
            assert!(Instant::now() < deadline, "device {id} never {what}: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the device list until `n` devices are listed; returns them.
    async fn wait_devices(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.get("/devices").await.expect(200).body;
            let devices = l["devices"].as_array().unwrap().clone();
            if devices.len() == n {
                return devices;
            }
            assert!(Instant::now() < deadline, "never {n} devices: {l}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[track_caller]
fn expect_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(r.body["error"]["details"].is_object(), "{}", r.body);
}

/// A server (offline after 3 s without a heartbeat, and `extra` flags)
/// with an admin and a viewer.
async fn fleet_server(extra: &[&str]) -> (Server, Fleet, Fleet) {
    let mut args: Vec<String> = ["--fleet-offline-after", "3", "--fleet-action-timeout", "20"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let s = Server::start_with(Options {
        args,
        ..Options::default()
    });
    s.create_fleet_user(ADMIN, "admin", PASSWORD);
    s.create_fleet_user(VIEWER, "viewer", PASSWORD);
    let admin = Fleet::login(&s, ADMIN).await;
    let viewer = Fleet::login(&s, VIEWER).await;
    (s, admin, viewer)
}

/// A running `convene-appliance` managed by the fleet; killed on drop.
struct Appliance {
    child: Option<Child>,
}

impl Appliance {
    /// Starts the agent with its state in `dir` (the credentials file is
    /// `dir/fleet.json`); `token` is the enrollment token, if any.
    fn start(
        s: &Server,
        dir: &Path,
        name: &str,
        token: Option<&str>,
        env: &[(&str, String)],
    ) -> Appliance {
        Self::start_at(&s.url("/fleet/api/v1"), dir, name, token, env)
    }

    /// Starts the agent against the fleet API at `server`.
    fn start_at(
        server: &str,
        dir: &Path,
        name: &str,
        token: Option<&str>,
        env: &[(&str, String)],
    ) -> Appliance {
        let mut cmd = Command::new(binary("convene-appliance"));
        cmd.arg("--config")
            .arg(dir.join("none.toml"))
            .env("CONVENE_APPLIANCE_HTTP_ADDR", "127.0.0.1:0")
            .env("CONVENE_APPLIANCE_API_KEY", "appliance-test-key")
            .env("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern")
            .env("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine:440")
            .env("CONVENE_APPLIANCE_VIDEO_WIDTH", "320")
            .env("CONVENE_APPLIANCE_VIDEO_HEIGHT", "240")
            .env("CONVENE_APPLIANCE_VIDEO_FPS", "15")
            .env("CONVENE_APPLIANCE_VIDEO_BITRATE_KBPS", "300")
            .env("CONVENE_APPLIANCE_HTTP_MIN_FREE_BYTES", "1048576")
            .env("CONVENE_APPLIANCE_MEDIA_DIR", dir.join("media"))
            .env("CONVENE_APPLIANCE_STATE_FILE", dir.join("state.json"))
            .env("CONVENE_APPLIANCE_RUNTIME_CONFIG", dir.join("runtime.toml"))
            .env("CONVENE_APPLIANCE_RTC_IP", media_ip().to_string())
            .env("CONVENE_APPLIANCE_DEVICE_NAME", name)
            .env("CONVENE_APPLIANCE_FLEET_SERVER", server)
            .env(
                "CONVENE_APPLIANCE_FLEET_CREDENTIALS_FILE",
                dir.join("fleet.json"),
            )
            .env("CONVENE_APPLIANCE_FLEET_HEARTBEAT_SECS", "1")
            .env("CONVENE_APPLIANCE_FLEET_MAX_BACKOFF_SECS", "2")
            .env(
                "CONVENE_APPLIANCE_LOG",
                std::env::var("CONVENE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.env("CONVENE_APPLIANCE_FLEET_ENROLLMENT_TOKEN", t);
        }
        Appliance {
            child: Some(cmd.spawn().expect("start convene-appliance")),
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The device id an appliance stored after enrolling (polls for the file).
fn enrolled_id(dir: &Path) -> String {
    let path = dir.join("fleet.json");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the credentials file must be private");
            assert!(v["device_credential"].as_str().unwrap().starts_with("cvd_"));
            return v["device_id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The fleet WebSocket API, authenticated and subscribed to `events`.
async fn fleet_ws(s: &Server, token: &str, events: &[&str]) -> Ws {
    let url = s.url("/fleet/api/v1/ws").replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "authenticated");
    ws.send(Message::text(
        json!({"type": "subscribe", "events": events}).to_string(),
    ))
    .await
    .unwrap();
    let sub = next_json(&mut ws).await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no WebSocket message in time")
            .expect("the WebSocket ended")
            .unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => {}
        }
    }
}

/// Reads events until one matching `pred` arrives.
async fn wait_event(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let ev = next_json(ws).await;
        if pred(&ev) {
            return ev;
        }
    }
}

#[tokio::test]
async fn appliances_enroll_report_health_and_go_offline_and_back() {
    let (s, admin, viewer) = fleet_server(&["--fleet-alert-offline-after", "2"]).await;
    let mut ws = fleet_ws(
        &s,
        &admin.token,
        &["device.status", "alert.triggered", "alert.cleared"],
    )
    .await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ta, tb) = (
        admin.enrollment_token().await,
        admin.enrollment_token().await,
    );
    let mut a = Appliance::start(&s, dir_a.path(), "Room A", Some(&ta), &[]);
    let _b = Appliance::start(&s, dir_b.path(), "Room B", Some(&tb), &[]);
    let id_a = enrolled_id(dir_a.path());
    let id_b = enrolled_id(dir_b.path());
    assert_ne!(id_a, id_b);

    // Both online, with the seed's health figures from their heartbeats.
    for id in [&id_a, &id_b] {
        let d = admin
            .wait_device(id, "online with health", |d| {
                d["status"] == "online" && d["health"]["memory_percent"].is_number()
            })
            .await;
        let h = &d["health"];
        for k in ["memory_percent", "disk_percent"] {
            let v = h[k].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{d}");
        }
        assert!(h.as_object().unwrap().contains_key("cpu_percent"), "{d}");
        assert!(h.as_object().unwrap().contains_key("temperature"), "{d}");
        assert!(h["uptime"].as_u64().unwrap() > 0, "{d}");
        assert!(d["last_seen"].is_string(), "{d}");
        assert!(d["version"].is_string(), "{d}");
        assert_eq!(d["model"], "convene-appliance");
    }
    let online = admin.get("/devices?status=online").await.expect(200).body;
    assert_eq!(online["total"], 2, "{online}");
    let names: Vec<&str> = online["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, ["Room A", "Room B"]);
    // Both were announced online on the fleet WebSocket (in either order).
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let ev = wait_event(&mut ws, |e| {
            e["type"] == "device.status" && e["status"] == "online"
        })
        .await;
        assert_eq!(ev["type"], "device.status");
        seen.insert(ev["device_id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, [id_a.clone(), id_b.clone()].into_iter().collect());

    // Killed: offline (socket closed), announced on the WebSocket; actions
    // to it answer DEVICE_OFFLINE.
    a.kill();
    let ev = wait_event(&mut ws, |e| {
        e["device_id"] == id_a.as_str() && e["type"] == "device.status"
    })
    .await;
    assert_eq!(ev["status"], "offline");
    assert!(ev["timestamp"].is_string());
    admin
        .wait_device(&id_a, "offline", |d| d["status"] == "offline")
        .await;
    expect_error(
        &admin.action(&id_a, json!({"action": "reboot"})).await,
        503,
        "DEVICE_OFFLINE",
    );
    assert_eq!(
        admin.get(&format!("/devices/{id_b}")).await.body["status"],
        "online"
    );

    // Offline for longer than --fleet-alert-offline-after (2 s): an alert,
    // on the WebSocket and in GET /alerts; a viewer may not acknowledge it.
    let ev = wait_event(&mut ws, |e| {
        e["type"] == "alert.triggered" && e["alert_type"] == "offline"
    })
    .await;
    assert_eq!(ev["device_id"], id_a.as_str());
    assert_eq!(ev["alert_type"], "offline");
    assert_eq!(ev["severity"], "critical");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .starts_with("Device offline")
    );
    let alert_id = ev["alert_id"].as_str().unwrap().to_string();
    let active = admin
        .get(&format!("/alerts?status=active&device={id_a}"))
        .await
        .expect(200)
        .body;
    assert_eq!(active["total"], 1, "{active}");
    assert_eq!(active["alerts"][0]["id"], alert_id.as_str());
    assert_eq!(active["alerts"][0]["type"], "offline");
    let ack = format!("/alerts/{alert_id}/acknowledge");
    expect_error(&viewer.post(&ack, json!({})).await, 403, "FORBIDDEN");
    let r = admin.post(&ack, json!({})).await.expect(200);
    assert_eq!(r.body["status"], "acknowledged");
    assert!(r.body["acknowledged_at"].is_string());
    expect_error(
        &admin
            .post("/alerts/alert-nope/acknowledge", json!({}))
            .await,
        404,
        "NOT_FOUND",
    );
    expect_error(
        &admin.get("/alerts?status=open").await,
        400,
        "VALIDATION_ERROR",
    );

    // Restarted with the same state directory and no enrollment token: the
    // same device comes back online (no second device); the alert clears.
    let _a = Appliance::start(&s, dir_a.path(), "Room A", None, &[]);
    wait_event(&mut ws, |e| {
        e["device_id"] == id_a.as_str() && e["status"] == "online"
    })
    .await;
    let ev = wait_event(&mut ws, |e| e["type"] == "alert.cleared").await;
    assert_eq!(ev["alert_id"], alert_id.as_str());
    let cleared = admin
        .get(&format!("/alerts?status=cleared&device={id_a}"))
        .await
        .expect(200)
        .body;
    assert_eq!(cleared["alerts"][0]["id"], alert_id.as_str(), "{cleared}");
    assert!(cleared["alerts"][0]["cleared_at"].is_string());
    expect_error(&admin.post(&ack, json!({})).await, 409, "CONFLICT");
    admin
        .wait_device(&id_a, "online again", |d| d["status"] == "online")
        .await;
    assert_eq!(admin.wait_devices(2).await.len(), 2);
    // The spent token cannot enroll anything else.
    let again = admin
        .post("/devices/enroll", json!({"token": ta, "name": "Intruder"}))
        .await;
    expect_error(&again, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn remote_actions_are_carried_out_by_the_appliance() {
    let (s, admin, viewer) = fleet_server(&[]).await;
    let mut ws = fleet_ws(&s, &admin.token, &["meeting.started", "meeting.ended"]).await;
    let dir = tempfile::tempdir().unwrap();
    let marker: PathBuf = dir.path().join("rebooted");
    let token = admin.enrollment_token().await;
    let _app = Appliance::start(
        &s,
        dir.path(),
        "Boardroom",
        Some(&token),
        &[(
            "CONVENE_APPLIANCE_FLEET_REBOOT_COMMAND",
            format!("touch {}", marker.display()),
        )],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;

    // join_meeting: the appliance joins the room through the meeting code.
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "boardroom", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let room_token = s
        .api()
        .post(
            "/api/v1/rooms/boardroom/token",
            json!({"u": "Boardroom", "role": "speaker"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let link = s.url(&format!("/boardroom?token={room_token}"));
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["device_id"], id.as_str());
    assert_eq!(r.body["result"]["platform"], "convene");
    assert_eq!(r.body["result"]["meeting_id"], "boardroom");
    let ev = wait_event(&mut ws, |e| e["type"] == "meeting.started").await;
    assert_eq!(
        (ev["device_id"].as_str(), ev["platform"].as_str()),
        (Some(id.as_str()), Some("convene"))
    );
    // The room's live participant list on the server shows it.
    let deadline = Instant::now() + WAIT;
    loop {
        let live = s
            .api()
            .get("/api/v1/rooms/boardroom/live")
            .await
            .expect(200)
            .body;
        if live["live_participants"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the appliance never showed in the room: {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second join: MEETING_ACTIVE.
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await;
    expect_error(&r, 409, "MEETING_ACTIVE");

    // screenshot: the camera's current frame, a JPEG that decodes.
    let r = admin
        .action(&id, json!({"action": "screenshot"}))
        .await
        .expect(200);
    let shot = &r.body["result"];
    assert_eq!(shot["content_type"], "image/jpeg");
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(shot["size"], jpeg.len());
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], [0xFF, 0xD9], "EOI");
    assert_eq!(jpeg_size(&jpeg), Some((320, 240)));
    assert_eq!(
        (shot["width"].as_u64(), shot["height"].as_u64()),
        (Some(320), Some(240))
    );

    // leave_meeting: out of the room.
    let r = admin
        .action(&id, json!({"action": "leave_meeting"}))
        .await
        .expect(200);
    assert_eq!(r.body["result"]["success"], true);
    wait_event(&mut ws, |e| {
        e["type"] == "meeting.ended" && e["device_id"] == id.as_str()
    })
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let live = s
            .api()
            .get("/api/v1/rooms/boardroom/live")
            .await
            .expect(200)
            .body;
        if live["live_participants"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the appliance never left: {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_error(
        &admin.action(&id, json!({"action": "leave_meeting"})).await,
        409,
        "NO_ACTIVE_MEETING",
    );

    // reboot runs the configured command (it writes the marker file).
    let r = admin
        .action(&id, json!({"action": "reboot"}))
        .await
        .expect(200);
    assert_eq!(r.body["result"]["success"], true);
    let deadline = Instant::now() + WAIT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the reboot command never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // update has no command configured: a clear error.
    expect_error(
        &admin.action(&id, json!({"action": "update"})).await,
        409,
        "NOT_CONFIGURED",
    );

    // logs: recent lines of the appliance's log.
    let r = admin
        .action(&id, json!({"action": "logs", "params": {"lines": 50}}))
        .await
        .expect(200);
    let lines = r.body["result"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 50, "{}", r.body);
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("reboot")),
        "{}",
        r.body
    );

    // Refusals in the seed's error object.
    expect_error(
        &viewer.action(&id, json!({"action": "screenshot"})).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &admin
            .action("croom-0000000000000000", json!({"action": "reboot"}))
            .await,
        404,
        "NOT_FOUND",
    );
    for bad in [
        json!({"action": "selfdestruct"}),
        json!({"action": "join_meeting"}),
        json!({"action": "logs", "params": {"lines": 0}}),
        json!({}),
    ] {
        expect_error(&admin.action(&id, bad).await, 400, "VALIDATION_ERROR");
    }
}

/// Width and height from a JPEG's SOF0/SOF2 segment.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// Opens the device socket with the given headers; `Err(status)` when refused.
async fn device_socket(s: &Server, id: Option<&str>, credential: Option<&str>) -> Result<Ws, u16> {
    let url = s
        .url("/fleet/api/v1/devices/connect")
        .replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    if let Some(id) = id {
        req.headers_mut().insert("x-device-id", id.parse().unwrap());
    }
    if let Some(c) = credential {
        req.headers_mut()
            .insert("authorization", format!("Bearer {c}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The close frame's reason, once the server closes.
async fn closed_with(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("not closed in time")
        {
            Some(Ok(Message::Close(f))) => {
                return f.map(|f| f.reason.to_string()).unwrap_or_default();
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return String::new(),
        }
    }
}

#[tokio::test]
async fn the_device_socket_needs_the_device_credential() {
    let (s, admin, _viewer) = fleet_server(&[
        "--fleet-alert-temperature",
        "50",
        "--fleet-alert-disk",
        "95",
    ])
    .await;
    let token = admin.enrollment_token().await;
    let enrolled = admin
        .post("/devices/enroll", json!({"token": token, "name": "Lobby"}))
        .await
        .expect(201)
        .body;
    let id = enrolled["device_id"].as_str().unwrap();
    let cred = enrolled["device_credential"].as_str().unwrap();

    // Forged, missing, someone else's: refused before the upgrade.
    assert_eq!(
        device_socket(&s, Some(id), Some("cvd_forged")).await.err(),
        Some(401)
    );
    assert_eq!(device_socket(&s, Some(id), None).await.err(), Some(401));
    assert_eq!(device_socket(&s, None, Some(cred)).await.err(), Some(401));
    assert_eq!(
        device_socket(&s, Some("croom-0000000000000000"), Some(cred))
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        admin.get(&format!("/devices/{id}")).await.body["status"],
        "offline"
    );

    // The right credential: online; a heartbeat's figures are shown.
    let mut first = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    // On connecting, the device is sent its (here empty) policy configuration.
    let policy = next_json(&mut first).await;
    assert_eq!(policy["type"], "policy", "{policy}");
    assert_eq!(policy["config"], json!({}));
    assert_eq!(policy["revision"].as_str().unwrap().len(), 16);
    first
        .send(Message::text(
            json!({"type": "heartbeat", "version": "9.9.9",
                   "health": {"cpu_percent": 12.5, "memory_percent": 40, "temperature": 55,
                              "disk_percent": 30, "uptime": 1234}})
            .to_string(),
        ))
        .await
        .unwrap();
    let d = admin
        .wait_device(id, "heartbeating", |d| d["health"]["temperature"] == 55.0)
        .await;
    assert_eq!(d["status"], "online");
    assert_eq!(d["version"], "9.9.9");
    assert_eq!(
        d["health"],
        json!({"cpu_percent": 12.5, "memory_percent": 40.0, "temperature": 55.0, "disk_percent": 30.0, "uptime": 1234})
    );

    // Temperature above --fleet-alert-temperature (50): an alert; back
    // under it: cleared.
    let active = admin
        .get(&format!("/alerts?status=active&device={id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(active["total"], 1, "{active}");
    let a = &active["alerts"][0];
    assert_eq!(
        (a["type"].as_str(), a["severity"].as_str()),
        (Some("temperature"), Some("warning"))
    );
    assert_eq!(
        (a["value"].as_f64(), a["threshold"].as_f64()),
        (Some(55.0), Some(50.0))
    );
    first
        .send(Message::text(
            json!({"type": "heartbeat", "health": {"temperature": 40, "disk_percent": 30}})
                .to_string(),
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let l = admin
            .get(&format!("/alerts?status=cleared&device={id}"))
            .await
            .expect(200)
            .body;
        if l["total"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the temperature alert never cleared: {l}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A second connection replaces the first (one connection per device).
    let mut second = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    assert!(closed_with(&mut first).await.contains("replaced"));
    assert_eq!(
        admin.get(&format!("/devices/{id}")).await.body["status"],
        "online"
    );

    // A message over the 8 MiB limit ends the connection.
    let mut big = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    assert!(closed_with(&mut second).await.contains("replaced"));
    let _ = big
        .send(Message::text(format!(
            "{{\"type\": \"heartbeat\", \"version\": \"{}\"}}",
            "x".repeat(9 * 1024 * 1024)
        )))
        .await;
    closed_with(&mut big).await;
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;
    let mut second = device_socket(&s, Some(id), Some(cred)).await.unwrap();

    // A bad message gets an error and the socket closes: offline.
    second
        .send(Message::text(
            "{\"type\": \"heartbeat\", \"health\": {\"cpu_percent\": 900}}",
        ))
        .await
        .unwrap();
    let err = wait_event(&mut second, |e| e["type"] == "error").await;
    assert_eq!(err["type"], "error");
    assert!(
        err["message"].as_str().unwrap().contains("cpu_percent"),
        "{err}"
    );
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;

    // Silence: closed after --fleet-offline-after (3 s), offline again.
    let mut quiet = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    admin
        .wait_device(id, "online", |d| d["status"] == "online")
        .await;
    assert!(closed_with(&mut quiet).await.contains("no heartbeat"));
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;

    // A deleted device's credential stops working.
    assert_eq!(
        admin
            .send(reqwest::Method::DELETE, &format!("/devices/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        device_socket(&s, Some(id), Some(cred)).await.err(),
        Some(401)
    );

    // The fleet WebSocket refuses a forged access token.
    let url = s.url("/fleet/api/v1/ws").replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": "eyJ.forged.token"}).to_string(),
    ))
    .await
    .unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("UNAUTHORIZED"))
    );
    assert_eq!(closed_with(&mut ws).await, "authentication failed");
}

#[tokio::test]
async fn appliances_reconnect_after_a_server_restart() {
    // The appliance talks to the --fleet-addr listener (the seed's own
    // paths), whose port survives the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fleet_addr = format!("127.0.0.1:{port}");
    let (mut s, admin, _viewer) = fleet_server(&["--fleet-addr", &fleet_addr]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = admin.enrollment_token().await;
    let _app = Appliance::start_at(
        &format!("http://{fleet_addr}/api/v1"),
        dir.path(),
        "Annex",
        Some(&token),
        &[],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;

    // The server goes away and comes back: every device starts offline,
    // and the appliance reconnects by itself (backoff capped at 2 s here)
    // with its stored credential.
    s.restart();
    let admin = Fleet::login(&s, ADMIN).await;
    let d = admin
        .wait_device(&id, "online after the restart", |d| {
            d["status"] == "online" && d["health"]["memory_percent"].is_number()
        })
        .await;
    assert_eq!(d["name"], "Annex");
    assert_eq!(admin.get("/devices").await.expect(200).body["total"], 1);
    let r = admin
        .action(&id, json!({"action": "logs", "params": {"lines": 5}}))
        .await
        .expect(200);
    assert!(r.body["result"]["count"].as_u64().unwrap() <= 5);
}

/// The appliance's saved audio settings (its `state_file`).
fn saved_output_volume(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("state.json")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["audio"]["output_volume"].as_u64()
}

#[tokio::test]
async fn policies_are_pushed_applied_and_reported() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    admin
        .post("/groups", json!({"name": "Building A"}))
        .await
        .expect(201);
    let token = admin
        .post("/enrollment-tokens", json!({"group": "building-a"}))
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let _app = Appliance::start(&s, dir.path(), "Room P", Some(&token), &[]);
    let id = enrolled_id(dir.path());
    // On connecting it gets its (empty) configuration and applies it.
    let d = admin
        .wait_device(&id, "reporting its policies", |d| {
            d["policy"]["status"] == "applied"
        })
        .await;
    let empty_rev = d["policy"]["revision"].as_str().unwrap().to_string();

    // A policy for its group: pushed, applied, saved on the appliance.
    admin
        .post(
            "/policies",
            json!({"name": "Quiet rooms", "priority": 100,
                   "target": {"groups": ["building-a"]},
                   "config": {"audio": {"output_volume": 40}}}),
        )
        .await
        .expect(201);
    let d = admin
        .wait_device(&id, "applying the group policy", |d| {
            d["policy"]["status"] == "applied" && d["policy"]["revision"] != empty_rev.as_str()
        })
        .await;
    let applied_rev = d["policy"]["revision"].as_str().unwrap().to_string();
    assert_eq!(saved_output_volume(dir.path()), Some(40));

    // A higher-priority policy with a setting the appliance does not have:
    // refused whole, reported failed with the reason; nothing changes.
    let bad = admin
        .post(
            "/policies",
            json!({"name": "Displays", "priority": 200,
                   "target": {"devices": [id]},
                   "config": {"display": {"hdmi_cec": true}, "audio": {"output_volume": 90}}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = admin
        .wait_device(&id, "refusing the display policy", |d| {
            d["policy"]["status"] == "failed"
        })
        .await;
    let reason = d["policy"]["reason"].as_str().unwrap();
    assert!(reason.contains("display"), "{reason}");
    assert_eq!(saved_output_volume(dir.path()), Some(40));

    // Removing it: back to the group policy, applied again.
    assert_eq!(
        admin
            .send(reqwest::Method::DELETE, &format!("/policies/{bad}"), None)
            .await
            .status,
        204
    );
    admin
        .wait_device(&id, "applying again", |d| {
            d["policy"]["status"] == "applied" && d["policy"]["revision"] == applied_rev.as_str()
        })
        .await;
}
