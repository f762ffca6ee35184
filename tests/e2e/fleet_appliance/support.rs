//! What the fleet-appliance tests share: a fleet API client, a server with
//! an admin and a viewer, a real `convene-appliance` process, WebSocket helpers.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_tests::{Options, Resp, Server, binary, media_ip};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(super) const ADMIN: &str = "admin@example.com";
pub(super) const VIEWER: &str = "viewer@example.com";
pub(super) const PASSWORD: &str = "correct horse battery";
pub(super) const WAIT: Duration = Duration::from_secs(20);

/// A fleet API client with an access token.
#[derive(Clone)]
pub(super) struct Fleet {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
}

impl Fleet {
    pub(super) async fn login(s: &Server, email: &str) -> Fleet {
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

    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
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
    pub(super) async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub(super) async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub(super) async fn action(&self, device: &str, body: Value) -> Resp {
        self.post(&format!("/devices/{device}/actions"), body).await
    }

    pub(super) async fn enrollment_token(&self) -> String {
        self.post("/enrollment-tokens", json!({}))
            .await
            .expect(201)
            .body["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Polls `GET /devices/{id}` until `pred` holds; returns the device.
    pub(super) async fn wait_device(
        &self,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
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

    /// Polls `/alerts?{query}` until it lists `n`; returns the list. A
    /// heartbeat's figures are stored before its alerts are evaluated, so
    /// an alert can show a moment after the figures that raise it.
    pub(super) async fn wait_alerts(&self, query: &str, n: u64, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.get(&format!("/alerts?{query}")).await.expect(200).body;
            if l["total"] == n {
                return l;
            }
            assert!(Instant::now() < deadline, "{what}: {l}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the device list until `n` devices are listed; returns them.
    pub(super) async fn wait_devices(&self, n: usize) -> Vec<Value> {
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
pub(super) fn expect_error(r: &Resp, status: u16, code: &str) {
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
pub(super) async fn fleet_server(extra: &[&str]) -> (Server, Fleet, Fleet) {
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
pub(super) struct Appliance {
    child: Option<Child>,
}

impl Appliance {
    /// Starts the agent with its state in `dir` (the credentials file is
    /// `dir/fleet.json`); `token` is the enrollment token, if any.
    pub(super) fn start(
        s: &Server,
        dir: &Path,
        name: &str,
        token: Option<&str>,
        env: &[(&str, String)],
    ) -> Appliance {
        Self::start_at(&s.url("/fleet/api/v1"), dir, name, token, env)
    }

    /// Starts the agent against the fleet API at `server`; its log goes to
    /// `dir/appliance.log` ([`log_of`]).
    pub(super) fn start_at(
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
            .stderr(std::fs::File::create(dir.join("appliance.log")).unwrap());
        if let Some(t) = token {
            cmd.env("CONVENE_APPLIANCE_FLEET_ENROLLMENT_TOKEN", t);
        }
        Appliance {
            child: Some(cmd.spawn().expect("start convene-appliance")),
        }
    }

    pub(super) fn kill(&mut self) {
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

/// What the appliance started in `dir` has logged so far.
pub(super) fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appliance.log")).unwrap_or_default()
}

/// Polls the appliance's log until a line holds every one of `parts`; returns it.
pub(super) fn wait_log(dir: &Path, parts: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = log_of(dir);
        if let Some(l) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}; the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The device id an appliance stored after enrolling (polls for the file).
pub(super) fn enrolled_id(dir: &Path) -> String {
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

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The fleet WebSocket API, authenticated and subscribed to `events`.
pub(super) async fn fleet_ws(s: &Server, token: &str, events: &[&str]) -> Ws {
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

pub(super) async fn next_json(ws: &mut Ws) -> Value {
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
pub(super) async fn wait_event(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let ev = next_json(ws).await;
        if pred(&ev) {
            return ev;
        }
    }
}

/// Opens the device socket with the given headers; `Err(status)` when refused.
pub(super) async fn device_socket(
    s: &Server,
    id: Option<&str>,
    credential: Option<&str>,
) -> Result<Ws, u16> {
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
pub(super) async fn closed_with(ws: &mut Ws) -> String {
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

/// A speaker token for `name` in `room`.
pub(super) async fn room_token(s: &Server, room: &str, name: &str) -> String {
    s.api()
        .post(
            &format!("/api/v1/rooms/{room}/token"),
            json!({"u": name, "role": "speaker"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates `room` (no join screen) and returns its link with a speaker
/// token for `name`: what an appliance is told to join.
pub(super) async fn room_link(s: &Server, room: &str, name: &str) -> String {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": room, "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let token = room_token(s, room, name).await;
    s.url(&format!("/{room}?token={token}"))
}
