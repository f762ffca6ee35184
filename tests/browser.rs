//! Real browsers for end-to-end tests: starts Debian's headless Chromium with
//! fake media devices and drives it over the Chrome DevTools Protocol (CDP),
//! with a minimal client over `tokio-tungstenite`.
//!
//! One WebSocket to the browser carries every page: each page is a target
//! attached in "flatten" mode, so its commands carry a `sessionId`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc as tmpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// The Chromium binary: `CONVENE_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> String {
    std::env::var("CONVENE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Flags from ../shared/notes/test-environment.md, plus what a call needs.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1280,720",
    // Remote audio must play (and be counted) without a click.
    "--autoplay-policy=no-user-gesture-required",
    // Plain host candidates: no mDNS names, no mDNS traffic.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--remote-debugging-port=0",
];

/// Panics unless this process runs in a network namespace whose only
/// interfaces are `lo` and veth devices (scripts/test.sh sets one up), so a
/// browser cannot send anything off the machine.
pub fn assert_isolated_network() {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let outside: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|name| *name != "lo" && !name.starts_with("cvn"))
        .collect();
    assert!(
        outside.is_empty(),
        "browser tests must run inside the test network namespace (only `lo` and the \
         cvn* veth pair), but this one also has {outside:?}: run them through \
         scripts/test.sh (e.g. `scripts/test.sh -p convene-tests --test e2e browser`)"
    );
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
type Logs = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// A CDP connection: commands go out through a writer task, a reader task
/// routes replies by `id` and records each session's console output.
#[derive(Clone)]
struct Cdp {
    out: tmpsc::UnboundedSender<String>,
    pending: Pending,
    logs: Logs,
    next_id: Arc<AtomicU64>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connecting to Chromium's DevTools at {url}: {e}"));
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = tmpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let logs: Logs = Arc::default();
        let (p, l) = (pending.clone(), logs.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = p.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                } else if let Some(line) = event_line(&v) {
                    let session = v["sessionId"].as_str().unwrap_or("").to_string();
                    l.lock().unwrap().entry(session).or_default().push(line);
                }
            }
            // The browser went away: fail every outstanding command.
            p.lock().unwrap().clear();
        });
        Cdp {
            out,
            pending,
            logs,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Sends one command and waits for its reply; `Err` carries CDP's error.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out
            .send(msg.to_string())
            .map_err(|_| format!("{method}: the DevTools connection is closed"))?;
        let reply = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| format!("{method}: no reply from Chromium within 30 s"))?
            .map_err(|_| format!("{method}: the DevTools connection closed"))?;
        if reply["error"].is_object() {
            return Err(format!("{method}: {}", reply["error"]));
        }
        Ok(reply["result"].clone())
    }
}

/// A readable line for console messages and uncaught exceptions.
fn event_line(v: &Value) -> Option<String> {
    let p = &v["params"];
    match v["method"].as_str()? {
        "Runtime.consoleAPICalled" => {
            let args: Vec<String> = p["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| match &x["value"] {
                            Value::String(s) => s.clone(),
                            Value::Null => x["description"].as_str().unwrap_or("").to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(format!(
                "console.{}: {}",
                p["type"].as_str()?,
                args.join(" ")
            ))
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            let text = d["exception"]["description"]
                .as_str()
                .or(d["text"].as_str())
                .unwrap_or("exception");
            Some(format!("uncaught: {text}"))
        }
        "Log.entryAdded" => Some(format!(
            "log.{}: {}",
            p["entry"]["level"].as_str()?,
            p["entry"]["text"].as_str()?
        )),
        _ => None,
    }
}

/// A running headless Chromium. Dropping it kills its whole process group and
/// removes its temporary profile.
pub struct Browser {
    child: Option<Child>,
    cdp: Cdp,
    stderr: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium; panics with the reason (and its stderr) when it cannot.
    pub async fn launch() -> Browser {
        Self::launch_with(&[]).await
    }

    /// [`Browser::launch`] with extra command-line flags (e.g. `--lang=de-DE`
    /// for a German browser: `navigator.languages` and `Accept-Language`).
    pub async fn launch_with(extra: &[&str]) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("convene-chromium-")
            .tempdir()
            .unwrap();
        let path = chromium_path();
        let mut cmd = Command::new(&path);
        cmd.args(FLAGS)
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can end every Chromium process.
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start Chromium ({path}): {e}. Install it with \
                 `apt-get install -y chromium` (scripts/test.sh does this)"
            )
        });
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<String>();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                let mut l = keep.lock().unwrap();
                if l.len() < 500 {
                    l.push(line);
                }
            }
        });
        let mut browser_child = Some(child);
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let status = browser_child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(c) = browser_child.as_mut() {
                    kill_group(c);
                }
                panic!(
                    "Chromium ({path}) did not print its DevTools address within 30 s \
                     (exit status: {status:?}); its stderr:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        let cdp = Cdp::connect(&url).await;
        Browser {
            child: browser_child,
            cdp,
            stderr: lines,
            _profile: profile,
        }
    }

    /// Opens a new tab on `url`.
    pub async fn open(&self, url: &str) -> Page {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await
            .unwrap();
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await
            .unwrap();
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let page = Page {
            cdp: self.cdp.clone(),
            session,
            target_id,
        };
        page.call("Runtime.enable", json!({})).await.unwrap();
        page.call("Log.enable", json!({})).await.unwrap();
        page.call("Page.enable", json!({})).await.unwrap();
        page.navigate(url).await;
        page
    }

    /// Chromium's own stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

pub(crate) fn kill_group(child: &mut Child) {
    // The negative pid names the process group started by `launch`.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

/// One tab.
pub struct Page {
    cdp: Cdp,
    session: String,
    pub target_id: String,
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// Navigates and waits until the document has loaded.
    pub async fn navigate(&self, url: &str) {
        let r = self
            .call("Page.navigate", json!({"url": url}))
            .await
            .unwrap();
        assert!(
            r["errorText"].is_null(),
            "navigating to {url}: {}",
            r["errorText"]
        );
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(15),
        )
        .await;
    }

    /// Evaluates `js` (awaiting a promise) and returns its value as JSON;
    /// `Err` on an exception or a protocol error.
    pub async fn try_eval(&self, js: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(d) = r.get("exceptionDetails") {
            let text = d["exception"]["description"]
                .as_str()
                .or(d["text"].as_str())
                .unwrap_or("exception");
            return Err(format!("{js}: {text}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `js`; panics on an exception.
    pub async fn eval(&self, js: &str) -> Value {
        match self.try_eval(js).await {
            Ok(v) => v,
            Err(e) => panic!("{e}\nconsole:\n{}", self.console().join("\n")),
        }
    }

    /// Polls `js` until it is truthy and returns that value; panics after
    /// `timeout` with the last value or error and the page's state and console.
    pub async fn wait_for(&self, js: &str, timeout: Duration) -> Value {
        match self.try_wait_for(js, timeout).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Page::wait_for`], but returns the failure report as `Err`.
    pub async fn try_wait_for(&self, js: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_eval(js).await {
                Ok(v) if truthy(&v) => return Ok(v),
                other => other,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for `{js}` (last: {last:?})\n{}",
                    self.report().await
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The client's state (window.convene, inbound streams) and console, for failure messages.
    pub async fn report(&self) -> String {
        format!(
            "window.convene: {}\nconsole:\n{}",
            self.try_eval(DEBUG_STATE).await.unwrap_or(Value::Null),
            self.console().join("\n")
        )
    }

    /// Saves a PNG of the page (for looking at failures).
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or(""))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The page's console messages and uncaught exceptions so far.
    pub fn console(&self) -> Vec<String> {
        self.cdp
            .logs
            .lock()
            .unwrap()
            .get(&self.session)
            .cloned()
            .unwrap_or_default()
    }
}

/// A summary of the client's state for failure messages.
pub(crate) const DEBUG_STATE: &str = "(async () => { const c = window.convene; if (!c) return null; \
    const rtp = []; \
    if (c.pc) (await c.pc.getStats()).forEach(s => { \
      if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') rtp.push({type: s.type, \
        kind: s.kind, mid: s.mid, rid: s.rid, packets: s.packetsReceived ?? s.packetsSent, \
        frames: s.framesDecoded ?? s.framesSent, keyFrames: s.keyFramesDecoded ?? s.keyFramesEncoded, \
        pli: s.pliCount, nack: s.nackCount, samples: s.totalSamplesReceived, \
        height: s.frameHeight, limit: s.qualityLimitationReason, active: s.active}); }); \
    return {state: c.state, error: c.error, participantId: c.participantId, \
    participants: c.participants, remote: c.remoteTracks, trace: c.trace, \
    negotiation: c.negotiation && c.negotiation.lastError, rtp, \
    signaling: c.pc && c.pc.signalingState, ice: c.pc && c.pc.iceConnectionState}; })()";

pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
