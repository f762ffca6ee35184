//! Harness for end-to-end tests: starts the real `convene` binary on a free
//! port with a temporary data dir, and talks to it over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod firefox;
pub mod fixture_db;
pub mod nft;
pub mod pg;
pub mod redis;
pub mod relay;
pub mod rtc_client;
pub mod seeds;
pub mod stall;
pub mod turn_client;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The developer key every test server's default team gets.
pub const KEY: &str = "test-developer-key-0123456789abcdef";

/// The address tests bind media to: `CONVENE_TEST_MEDIA_IP` (set inside the
/// test network namespace by scripts/test.sh), else 127.0.0.1.
pub fn media_ip() -> std::net::IpAddr {
    std::env::var("CONVENE_TEST_MEDIA_IP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// A port on 127.0.0.1 free for both TCP and UDP, for a process the test
/// starts on a given port (PostgreSQL, Redis, a second node, baresip).
///
/// It comes from below the kernel's ephemeral range (32768-60999 on Linux),
/// one after another across the test process: a port the kernel handed out
/// with bind-to-0 and the test released could be given to the next outgoing
/// connection before the started process binds it; these are never handed
/// out by the kernel, and no two tests of one run get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    // Spread by process id, so that two test binaries run side by side start
    // apart.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!(
        "no port free for TCP and UDP on 127.0.0.1 between {FIRST} and {}",
        FIRST + COUNT
    )
}

/// Path of a binary built from this workspace (`CONVENE_BIN` overrides `convene`).
/// With `CONVENE_TEST_SEEDS_DIR` set, keeps `bytes` as a seed input of the
/// fuzz target `target` (`<dir>/<target>/<hash>`), so that a run of the
/// tests captures what real clients send (signaling messages, SDP) for
/// `fuzz/seeds/`. Without it, nothing happens.
pub fn capture_seed(target: &str, bytes: &[u8]) {
    use std::hash::{Hash, Hasher};
    let Some(dir) = std::env::var_os("CONVENE_TEST_SEEDS_DIR") else {
        return;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let dir = Path::new(&dir).join(target);
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{:016x}", h.finish())), bytes);
    }
}

/// A signaling message a test client sends, captured as a seed of
/// `signaling_json` (and its SDP, if any, of `sdp_scan`).
pub fn capture_signaling_seed(msg: &Value) {
    capture_seed("signaling_json", msg.to_string().as_bytes());
    if let Some(sdp) = msg.get("sdp").and_then(Value::as_str) {
        capture_seed("sdp_scan", sdp.as_bytes());
    }
}

pub fn binary(name: &str) -> PathBuf {
    if name == "convene"
        && let Ok(p) = std::env::var("CONVENE_BIN")
    {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let p = target.join(profile).join(name);
    assert!(
        p.exists(),
        "{} not found: build it first (`cargo build --workspace --bins`)",
        p.display()
    );
    p
}

/// A running `convene` process.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    /// The PostgreSQL database the server uses (`CONVENE_TEST_DB=postgres`,
    /// or a test's own `CONVENE_DATABASE_URL`); `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    wrap: Vec<String>,
    own_addresses: bool,
    capture_log: bool,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
    pub stdout: Vec<String>,
}

/// Options of a test server.
#[derive(Default, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Leave the developer key unset so the server generates one.
    pub no_key: bool,
    /// Write the server's stderr (logs) to `<tmp>/server.log` instead of the
    /// test's stderr.
    pub capture_log: bool,
    /// A command the server is started through (e.g. `unshare -m sh -c ...`
    /// to give it a small tmpfs); the binary and its arguments follow it.
    pub wrap: Vec<String>,
    /// The server's addresses come from `env` (a deployment's own
    /// configuration, e.g. the Compose file's): no `--http-addr`,
    /// `--rtc-ip`, `--rtc-port` or `--turn-port` is added.
    pub own_addresses: bool,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let tmp_path = tmp.path().to_path_buf();
        let mut env = opts.env.clone();
        if !opts.no_key {
            env.push(("CONVENE_API_KEY".into(), KEY.into()));
        }
        // CONVENE_TEST_DB=postgres: every server gets a fresh database in
        // the test binary's PostgreSQL cluster (pg.rs).
        if std::env::var("CONVENE_TEST_DB").as_deref() == Ok("postgres")
            && !env.iter().any(|(k, _)| k == "CONVENE_DATABASE_URL")
        {
            env.push(("CONVENE_DATABASE_URL".into(), pg::fresh_database()));
        }
        let database_url = env
            .iter()
            .find(|(k, _)| k == "CONVENE_DATABASE_URL")
            .map(|(_, v)| v.clone());
        let mut s = Server {
            child: None,
            base: String::new(),
            data_dir,
            database_url,
            _tmp: Some(tmp),
            extra_args: opts.args,
            extra_env: env,
            wrap: opts.wrap,
            own_addresses: opts.own_addresses,
            capture_log: opts.capture_log,
            log_path: tmp_path.join("server.log"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stdout: Vec::new(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = match self.wrap.split_first() {
            None => Command::new(binary("convene")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary("convene"));
                c
            }
        };
        cmd.arg("serve");
        cmd.arg("--data-dir").arg(&self.data_dir);
        if !self.own_addresses {
            // A free port unless the test gives the address (a cluster node
            // names its own URL).
            if !self.extra_args.iter().any(|a| a == "--http-addr") {
                cmd.arg("--http-addr").arg("127.0.0.1:0");
            }
            cmd.arg("--rtc-ip")
                .arg(media_ip().to_string())
                .arg("--rtc-port")
                .arg("0");
            // The built-in TURN server on a free port (tests run in parallel).
            if !self.extra_args.iter().any(|a| a == "--turn-port") {
                cmd.arg("--turn-port").arg("0");
            }
        }
        // Two media workers unless the test asks for its own number.
        if !self.extra_args.iter().any(|a| a == "--media-workers") {
            cmd.arg("--media-workers").arg("2");
        }
        cmd.args(&self.extra_args)
            .env(
                "CONVENE_LOG",
                std::env::var("CONVENE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("CONVENE_API_KEY")
            .env_remove("CONVENE_DATABASE_URL")
            // Test machines' disks may be small; tests that need the floor set it.
            .env("CONVENE_RECORDINGS_MIN_FREE_MB", "16")
            .stdout(Stdio::piped())
            .stderr(if self.capture_log {
                Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.log_path)
                        .unwrap(),
                )
            } else {
                Stdio::inherit()
            });
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start convene");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("convene did not print its address in time");
            self.stdout.push(line.clone());
            if let Some(addr) = line.strip_prefix("listening on ") {
                self.base = addr.trim().to_string();
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.child = Some(child);
    }

    /// Sends SIGTERM and waits for the process to exit; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            for _ in 0..300 {
                if let Ok(Some(_)) = child.try_wait() {
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// The server process's id, while it runs.
    /// The server's database, for fixture rows a test writes into it.
    pub async fn db(&self) -> fixture_db::FixtureDb {
        fixture_db::FixtureDb::open(&self.data_dir, self.database_url.as_deref()).await
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets an environment variable for the server's next start (e.g.
    /// `CONVENE_DATABASE_URL` after moving its database).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.into(), value.into()));
        if key == "CONVENE_DATABASE_URL" {
            self.database_url = Some(value.into()).filter(|v: &String| !v.is_empty());
        }
    }

    /// Stops and starts again on the same data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The UDP address of the media plane (from the startup line).
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix("media on udp "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .expect("the server prints its media address")
    }

    /// The built-in TURN server's UDP and TCP addresses (from the startup line).
    pub fn turn_addrs(&self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        let line = self
            .stdout
            .iter()
            .find_map(|l| l.strip_prefix("turn on udp "))?;
        let (udp, tcp) = line.split_once(" and tcp ")?;
        Some((udp.trim().parse().ok()?, tcp.trim().parse().ok()?))
    }

    /// The built-in TURN server's TLS address, when it serves TURN over TLS.
    pub fn turns_addr(&self) -> Option<std::net::SocketAddr> {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix("turns on tcp "))?
            .trim()
            .parse()
            .ok()
    }

    /// The signaling WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("{}/rtc", self.base.replacen("http://", "ws://", 1))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text")
    }

    /// A metric's value in `/metrics` (its labelled series summed); `None`
    /// when the server has not reported it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().await;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Runs a `convene` subcommand against this server's data dir.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(binary("convene"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("CONVENE_API_KEY")
            .envs(
                self.database_url
                    .iter()
                    .map(|u| ("CONVENE_DATABASE_URL", u)),
            )
            .env("CONVENE_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a `convene` subcommand against this server's data dir with
    /// `stdin` as its standard input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new(binary("convene"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("CONVENE_API_KEY")
            .envs(
                self.database_url
                    .iter()
                    .map(|u| ("CONVENE_DATABASE_URL", u)),
            )
            .env("CONVENE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Creates a fleet user through the CLI (`convene fleet user create
    /// --password-stdin`); returns its id.
    pub fn create_fleet_user(&self, email: &str, role: &str, password: &str) -> String {
        let (ok, out, err) = self.cli_with_stdin(
            &[
                "fleet",
                "user",
                "create",
                "--email",
                email,
                "--role",
                role,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        assert!(ok, "fleet user create failed: {err}");
        out.lines()
            .find_map(|l| l.strip_prefix("fleet user id:"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The fleet API's own listener (`--fleet-addr`), from the startup line.
    pub fn fleet_base(&self) -> Option<String> {
        self.stdout.iter().find_map(|l| {
            l.strip_prefix("fleet API on ")
                .and_then(|u| u.trim().strip_suffix("/api/v1"))
                .map(str::to_string)
        })
    }

    /// Creates another team through the CLI; returns (team id, key).
    pub fn create_team(&self, name: &str) -> (String, String) {
        let (ok, out, err) = self.cli(&["team", "create", "--name", name]);
        assert!(ok, "team create failed: {err}");
        let field = |p: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(p))
                .unwrap()
                .trim()
                .to_string()
        };
        (field("team id:"), field("developer key:"))
    }

    /// An API client for the default team.
    pub fn api(&self) -> Api {
        self.api_with_key(KEY)
    }

    pub fn api_with_key(&self, key: &str) -> Api {
        Api {
            base: self.base.clone(),
            key: key.to_string(),
            client: self.client.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response: status, headers and parsed body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
    /// Asserts a 422 naming `field`.
    #[track_caller]
    pub fn expect_invalid(self, field: &str) -> Resp {
        assert_eq!(
            self.status, 422,
            "expected 422 for {field}; body: {}",
            self.body
        );
        assert_eq!(self.body["code"], "VALIDATION_ERROR");
        assert!(
            self.body["errors"][field].is_array(),
            "expected an error on {field}: {}",
            self.body
        );
        self
    }
}

/// An authenticated client for `/api/v1`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().await.unwrap();
        Resp::read(res).await
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send("PATCH", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None).await
    }
    pub async fn delete_with(&self, path: &str, body: Value) -> Resp {
        self.send("DELETE", path, Some(body)).await
    }
}

impl Resp {
    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let raw = res.bytes().await.unwrap().to_vec();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }
}

/// Joins `room` over the real signaling WebSocket (name-only, or with a
/// `token`) without publishing; returns the client and its `joined` message.
pub async fn join(
    s: &Server,
    room: &str,
    name: &str,
    token: Option<String>,
) -> (rtc_client::Client, Value) {
    let mut c = rtc_client::Client::connect(rtc_client::ClientOptions {
        room: Some(room.to_string()),
        token,
        name: Some(name.to_string()),
        ..rtc_client::ClientOptions::new(s.ws_url())
    })
    .await;
    let joined = c.wait_type("joined").await;
    (c, joined)
}

/// Sends `requests` (whole HTTP/1.1 requests, head and body) one after
/// another on one TCP connection to `base` (`http://host:port`) and returns
/// each response's status and body, or stops at the first that does not
/// come (the connection closed or reset; the error says which). For what
/// reqwest hides: whether a connection survived a response.
pub async fn http_on_one_connection(
    base: &str,
    requests: &[String],
) -> Result<Vec<(u16, String)>, String> {
    use tokio::io::AsyncWriteExt;
    let host = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let mut out = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        tcp.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("request {i}: write: {e}"))?;
        let r = tokio::time::timeout(Duration::from_secs(20), read_response(&mut tcp))
            .await
            .map_err(|_| format!("request {i}: no response within 20 s"))?
            .map_err(|e| format!("request {i}: {e}"))?;
        out.push(r);
    }
    Ok(out)
}

/// One HTTP/1.1 response with a `Content-Length`: its status and body.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> Result<(u16, String), String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut head_end = None;
    let mut want = usize::MAX;
    while buf.len() < want {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(match head_end {
                None => "the connection was closed".into(),
                Some(_) => "closed inside the body".into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if head_end.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or_else(|| format!("no content-length in {head:?}"))?;
            head_end = Some(end + 4);
            want = end + 4 + length;
        }
    }
    let start = head_end.unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..start]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((
        status,
        String::from_utf8_lossy(&buf[start..want]).to_string(),
    ))
}

/// POSTs `body` as `content_type` to `post_path`, then GETs `get_path`,
/// on one connection, both with the `headers` given: both answers (status
/// and body), or the error of the first that did not come.
pub async fn post_then_get_on_one_connection(
    base: &str,
    headers: &[(&str, &str)],
    (post_path, content_type, body): (&str, &str, &str),
    get_path: &str,
) -> Result<Vec<(u16, String)>, String> {
    let host = base.trim_start_matches("http://");
    let auth: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let post = format!(
        "POST {post_path} HTTP/1.1\r\nHost: {host}\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let get = format!("GET {get_path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n");
    http_on_one_connection(base, &[post, get]).await
}

/// POSTs the JSON `body` (over the server's body limit) to `post_path`,
/// then GETs `get_path`, on one connection, both with the `headers` given:
/// the first must be refused with 413 `PAYLOAD_TOO_LARGE` and the second
/// answered with `get_status` on the same connection (the refused body was
/// read to its end, not left to reset the connection).
pub async fn assert_a_refused_body_keeps_the_connection(
    base: &str,
    headers: &[(&str, &str)],
    (post_path, body): (&str, &str),
    (get_path, get_status): (&str, u16),
) {
    let answers = post_then_get_on_one_connection(
        base,
        headers,
        (post_path, "application/json", body),
        get_path,
    )
    .await
    .unwrap();
    assert_eq!(answers[0].0, 413, "{:?}", answers[0]);
    assert!(
        answers[0].1.contains("PAYLOAD_TOO_LARGE"),
        "{:?}",
        answers[0]
    );
    assert_eq!(answers[1].0, get_status, "{:?}", answers[1]);
}
