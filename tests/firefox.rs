//! Firefox for end-to-end tests: starts Debian's headless Firefox ESR with
//! fake media devices and drives it over WebDriver BiDi (the W3C protocol
//! Firefox speaks natively; it no longer serves CDP), with a minimal client
//! over `tokio-tungstenite`. One page: the browser's first tab.

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

use crate::browser::{DEBUG_STATE, kill_group, truthy};

/// The Firefox binary: `CONVENE_TEST_FIREFOX`, else Debian's `/usr/bin/firefox-esr`.
pub fn firefox_path() -> String {
    std::env::var("CONVENE_TEST_FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into())
}

/// Preferences from ../shared/notes/test-environment.md: fake devices
/// without a prompt, host candidates on every interface (127.0.0.2 on the
/// namespace's veth) with their real addresses, media that plays unasked.
const PREFS: &[(&str, &str)] = &[
    ("media.navigator.streams.fake", "true"),
    ("media.navigator.permission.disabled", "true"),
    ("permissions.default.camera", "1"),
    ("permissions.default.microphone", "1"),
    ("media.peerconnection.ice.loopback", "true"),
    ("media.peerconnection.ice.obfuscate_host_addresses", "false"),
    ("media.autoplay.default", "0"),
    ("media.autoplay.blocking_policy", "0"),
    ("browser.shell.checkDefaultBrowser", "false"),
    ("app.update.disabledForTesting", "true"),
    ("datareporting.policy.dataSubmissionEnabled", "false"),
    ("toolkit.telemetry.enabled", "false"),
    ("network.captive-portal-service.enabled", "false"),
    ("network.connectivity-service.enabled", "false"),
    ("browser.safebrowsing.malware.enabled", "false"),
    ("browser.safebrowsing.phishing.enabled", "false"),
];

type Pending = Arc<Mutex<std::collections::HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A running Firefox and its BiDi session.
pub struct Firefox {
    child: Option<Child>,
    out: tmpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    logs: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    context: String,
    _profile: tempfile::TempDir,
}

impl Firefox {
    /// Starts Firefox; panics with the reason (and its stderr) when it cannot.
    pub async fn launch() -> Firefox {
        let profile = tempfile::Builder::new()
            .prefix("convene-firefox-")
            .tempdir()
            .unwrap();
        let prefs: String = PREFS
            .iter()
            .map(|(k, v)| format!("user_pref(\"{k}\", {v});\n"))
            .collect();
        std::fs::write(profile.path().join("user.js"), prefs).unwrap();
        let path = firefox_path();
        let mut child = Command::new(&path)
            .args(["--headless", "--no-remote", "--remote-debugging-port=0"])
            .arg("--profile")
            .arg(profile.path())
            .arg("about:blank")
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Firefox ({path}): {e}. Install it with \
                     `apt-get install -y firefox-esr` (scripts/test.sh does this)"
                )
            });
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<String>();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("WebDriver BiDi listening on ") {
                    let url = line[i + "WebDriver BiDi listening on ".len()..].trim();
                    let _ = tx.send(url.to_string());
                }
                let mut l = keep.lock().unwrap();
                if l.len() < 500 {
                    l.push(line);
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                kill_group(&mut child);
                panic!(
                    "Firefox ({path}) did not print its WebDriver BiDi address within 60 s; \
                     its stderr:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(format!("{url}/session"))
            .await
            .unwrap_or_else(|e| panic!("connecting to Firefox's BiDi at {url}: {e}"));
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = tmpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(Message::Text(m.into())).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, l) = (pending.clone(), logs.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    let result = if v["type"] == "error" {
                        Err(format!("{}: {}", v["error"], v["message"]))
                    } else {
                        Ok(v["result"].clone())
                    };
                    if let Some(tx) = p.lock().unwrap().remove(&id) {
                        let _ = tx.send(result);
                    }
                } else if v["method"] == "log.entryAdded" {
                    let e = &v["params"];
                    let mut l = l.lock().unwrap();
                    if l.len() < 1000 {
                        l.push(format!("[{}] {}", e["level"], e["text"]));
                    }
                }
            }
        });
        let mut ff = Firefox {
            child: Some(child),
            out,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            logs,
            stderr: lines,
            context: String::new(),
            _profile: profile,
        };
        ff.call("session.new", json!({"capabilities": {}}))
            .await
            .unwrap_or_else(|e| panic!("BiDi session.new: {e}"));
        ff.call("session.subscribe", json!({"events": ["log.entryAdded"]}))
            .await
            .unwrap();
        let tree = ff
            .call("browsingContext.getTree", json!({"maxDepth": 0}))
            .await
            .unwrap();
        ff.context = tree["contexts"][0]["context"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ff
    }

    /// One BiDi command.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let msg = json!({"id": id, "method": method, "params": params});
        self.out
            .send(msg.to_string())
            .map_err(|_| "the BiDi connection is gone".to_string())?;
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(r)) => r,
            _ => Err(format!("no answer to {method}")),
        }
    }

    /// Navigates the tab and waits until the document has loaded.
    pub async fn navigate(&self, url: &str) {
        self.call(
            "browsingContext.navigate",
            json!({"context": self.context, "url": url, "wait": "complete"}),
        )
        .await
        .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// Evaluates `js` (awaiting a promise) and returns its value as JSON;
    /// `Err` on an exception.
    pub async fn try_eval(&self, js: &str) -> Result<Value, String> {
        // Values come back through JSON, as CDP's returnByValue gives them.
        let expr = format!("(async () => JSON.stringify(await ({js})))()");
        let r = self
            .call(
                "script.evaluate",
                json!({"expression": expr, "target": {"context": self.context},
                       "awaitPromise": true, "resultOwnership": "none"}),
            )
            .await?;
        if r["type"] == "exception" {
            return Err(format!("{js}: {}", r["exceptionDetails"]["text"]));
        }
        match r["result"]["value"].as_str() {
            Some(s) => Ok(serde_json::from_str(s).unwrap_or(Value::Null)),
            None => Ok(Value::Null),
        }
    }

    /// Evaluates `js`; panics on an exception.
    pub async fn eval(&self, js: &str) -> Value {
        match self.try_eval(js).await {
            Ok(v) => v,
            Err(e) => panic!("{e}\nconsole:\n{}", self.console().join("\n")),
        }
    }

    /// Polls `js` until it is truthy and returns that value; `Err` with the
    /// last value, the client's state and the console after `timeout`.
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

    pub async fn wait_for(&self, js: &str, timeout: Duration) -> Value {
        match self.try_wait_for(js, timeout).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// The client's state and the console, for failure messages.
    pub async fn report(&self) -> String {
        format!(
            "window.convene: {}\nconsole:\n{}\nfirefox stderr (end):\n{}",
            self.try_eval(DEBUG_STATE).await.unwrap_or(Value::Null),
            self.console().join("\n"),
            self.stderr_tail(40)
        )
    }

    /// The page's console messages so far.
    pub fn console(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    fn stderr_tail(&self, n: usize) -> String {
        let l = self.stderr.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}
