//! Janus VideoRoom as a [`SignalingAdapter`]: the WebSocket API of Janus
//! (subprotocol `janus-protocol`), one Janus session per participant.
//!
//! - A publisher: `create` session -> `attach` `janus.plugin.videoroom` ->
//!   `join` as `publisher` -> `publish` with the generator's JSEP offer ->
//!   Janus's answer.
//! - A subscriber: the same, then `join` as `subscriber` to every feed
//!   published in the room at that time -> Janus's JSEP offer -> `start`
//!   with the generator's answer.
//!
//! Janus keeps publishing and subscribing on separate handles (separate
//! PeerConnections), so a participant here either publishes or
//! subscribes; the scenarios that use both in one peer (S2, S3) are
//! Convene-only. Sessions are kept alive with `keepalive` every 20 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::signaling::{Joined, SigIn, SigOut, SignalingAdapter};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type WsTx = SplitSink<Ws, Message>;
type WsRx = SplitStream<Ws>;

const PLUGIN: &str = "janus.plugin.videoroom";
const KEEPALIVE: Duration = Duration::from_secs(20);
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Janus reached at `ws://ADDR:PORT` (its WebSockets transport).
pub struct Janus {
    pub url: String,
    next_room: AtomicU64,
    next_tx: AtomicU64,
    /// Feeds (publisher ids) of each room whose PeerConnection is up.
    feeds: Feeds,
    /// Publishers that joined each room (published or not yet).
    publishers: Mutex<HashMap<String, usize>>,
}

/// One Janus session with one videoroom handle on one WebSocket.
struct Conn {
    tx: WsTx,
    rx: WsRx,
    session: u64,
    handle: u64,
}

fn text(v: &Value) -> Message {
    Message::Text(v.to_string().into())
}

impl Janus {
    pub fn new(url: &str) -> Janus {
        Janus {
            url: url.trim_end_matches('/').to_string(),
            // Room numbers unlikely to collide with a configured room.
            next_room: AtomicU64::new(100_000 + u64::from(std::process::id() % 1000) * 1000),
            next_tx: AtomicU64::new(1),
            feeds: Arc::new(Mutex::new(HashMap::new())),
            publishers: Mutex::new(HashMap::new()),
        }
    }

    fn transaction(&self) -> String {
        format!("t{}", self.next_tx.fetch_add(1, Ordering::Relaxed))
    }

    async fn connect(&self) -> Result<(WsTx, WsRx)> {
        let mut req = self.url.as_str().into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().context("header")?,
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            req,
            Some(crate::signaling::ws_config()),
            false,
        )
        .await
        .with_context(|| format!("websocket {}", self.url))?;
        Ok(ws.split())
    }

    /// Sends a request and waits for the reply with its transaction that
    /// is not an `ack` (plugin requests answer `ack`, then an `event`).
    async fn call(&self, tx: &mut WsTx, rx: &mut WsRx, mut req: Value) -> Result<Value> {
        let t = self.transaction();
        req["transaction"] = json!(t);
        tx.send(text(&req)).await?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let m = tokio::time::timeout_at(deadline, rx.next())
                .await
                .map_err(|_| anyhow!("janus: no reply to {}", req["janus"]))?
                .ok_or_else(|| anyhow!("janus: websocket closed"))??;
            let Message::Text(s) = m else { continue };
            let v: Value = serde_json::from_str(&s)?;
            if v["transaction"] != json!(t) || v["janus"] == "ack" {
                continue;
            }
            if v["janus"] == "error" {
                bail!("janus error: {}", v["error"]);
            }
            if let Some(code) = v["plugindata"]["data"]["error_code"].as_u64() {
                bail!(
                    "videoroom error {code}: {}",
                    v["plugindata"]["data"]["error"]
                );
            }
            return Ok(v);
        }
    }

    async fn open(&self) -> Result<(Conn, Duration, Instant)> {
        let started = Instant::now();
        let (mut tx, mut rx) = self.connect().await?;
        let ws_open = started.elapsed();
        let v = self
            .call(&mut tx, &mut rx, json!({"janus": "create"}))
            .await?;
        let session = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session id: {v}"))?;
        let v = self
            .call(
                &mut tx,
                &mut rx,
                json!({"janus": "attach", "session_id": session, "plugin": PLUGIN}),
            )
            .await?;
        let handle = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle id: {v}"))?;
        Ok((
            Conn {
                tx,
                rx,
                session,
                handle,
            },
            ws_open,
            started,
        ))
    }

    async fn message(&self, c: &mut Conn, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut req = json!({"janus": "message", "session_id": c.session,
            "handle_id": c.handle, "body": body});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        self.call(&mut c.tx, &mut c.rx, req).await
    }

    /// Feeds of `room` that are up, waiting until every publisher that
    /// joined it has published (at most `REPLY_TIMEOUT`).
    async fn wait_feeds(&self, room: &str) -> Result<Vec<u64>> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let joined = self
                .publishers
                .lock()
                .map(|m| m.get(room).copied().unwrap_or(0))
                .unwrap_or(0);
            let feeds = self
                .feeds
                .lock()
                .map(|m| m.get(room).cloned().unwrap_or_default())
                .unwrap_or_default();
            if !feeds.is_empty() && feeds.len() >= joined {
                return Ok(feeds);
            }
            if Instant::now() > deadline {
                bail!("room {room}: {} of {joined} publishers up", feeds.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl SignalingAdapter for Janus {
    fn name(&self) -> &'static str {
        "janus"
    }

    async fn create_room(&self, participants: usize) -> Result<String> {
        let room = self.next_room.fetch_add(1, Ordering::Relaxed);
        let (mut c, _, _) = self.open().await?;
        let v = self
            .message(
                &mut c,
                json!({"request": "create", "room": room, "permanent": false,
                    "publishers": participants.max(2) + 5, "bitrate": 0, "fir_freq": 0,
                    "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false}),
                None,
            )
            .await?;
        if v["plugindata"]["data"]["videoroom"] != "created" {
            bail!("room not created: {v}");
        }
        let _ =
            c.tx.send(text(&json!({"janus": "destroy", "session_id": c.session,
                "transaction": self.transaction()})))
                .await;
        Ok(room.to_string())
    }

    async fn credentials(&self, _room: &str, _name: &str) -> Result<String> {
        Ok(String::new())
    }

    async fn join(
        &self,
        room: &str,
        name: &str,
        _credentials: String,
        publishes: bool,
    ) -> Result<Joined> {
        let room_no: u64 = room.parse().context("janus room number")?;
        let feeds = if publishes {
            if let Ok(mut m) = self.publishers.lock() {
                *m.entry(room.to_string()).or_default() += 1;
            }
            Vec::new()
        } else {
            self.wait_feeds(room).await?
        };
        let (mut c, ws_open, started) = self.open().await?;
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let joined;
        let mut feed = None;
        if publishes {
            let v = self
                .message(
                    &mut c,
                    json!({"request": "join", "ptype": "publisher", "room": room_no,
                        "display": name}),
                    None,
                )
                .await?;
            if v["plugindata"]["data"]["videoroom"] != "joined" {
                bail!("publisher join: {v}");
            }
            feed = v["plugindata"]["data"]["id"].as_u64();
            joined = started.elapsed();
        } else {
            let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
            let v = self
                .message(
                    &mut c,
                    json!({"request": "join", "ptype": "subscriber", "room": room_no,
                        "streams": streams, "use_msid": false}),
                    None,
                )
                .await?;
            if v["plugindata"]["data"]["videoroom"] != "attached" {
                bail!("subscriber join: {v}");
            }
            joined = started.elapsed();
            let sdp = v["jsep"]["sdp"]
                .as_str()
                .ok_or_else(|| anyhow!("no offer from janus: {v}"))?;
            let _ = in_tx.send(SigIn::Offer(sdp.to_string()));
        }
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let task = Task {
            room: room.to_string(),
            feed,
            feeds: self.feeds.clone(),
            in_tx,
            out_rx,
            next_tx: 0,
        };
        tokio::spawn(task.run(c));
        Ok(Joined {
            started,
            ws_open,
            joined,
            incoming: in_rx,
            outgoing: out_tx,
        })
    }
}

type Feeds = Arc<Mutex<HashMap<String, Vec<u64>>>>;

/// The signaling of one joined participant.
struct Task {
    room: String,
    /// This publisher's feed id.
    feed: Option<u64>,
    feeds: Feeds,
    in_tx: mpsc::UnboundedSender<SigIn>,
    out_rx: mpsc::UnboundedReceiver<SigOut>,
    next_tx: u64,
}

impl Task {
    fn req(&mut self, c: &Conn, mut v: Value) -> Message {
        self.next_tx += 1;
        v["transaction"] = json!(format!("c{}", self.next_tx));
        v["session_id"] = json!(c.session);
        text(&v)
    }

    fn unpublish(&self) {
        if let (Some(f), Ok(mut m)) = (self.feed, self.feeds.lock())
            && let Some(v) = m.get_mut(&self.room)
        {
            v.retain(|x| *x != f);
        }
    }

    async fn run(mut self, mut c: Conn) {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                m = c.rx.next() => {
                    let Some(Ok(m)) = m else {
                        self.unpublish();
                        let _ = self.in_tx.send(SigIn::Closed("janus websocket closed".into()));
                        return;
                    };
                    let Message::Text(s) = m else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&s) else { continue };
                    match v["janus"].as_str() {
                        Some("event") => {
                            if let Some(code) = v["plugindata"]["data"]["error_code"].as_u64() {
                                let _ = self.in_tx.send(SigIn::OfferRejected(format!(
                                    "videoroom error {code}: {}", v["plugindata"]["data"]["error"])));
                                continue;
                            }
                            let sdp = v["jsep"]["sdp"].as_str().map(str::to_string);
                            let msg = match (v["jsep"]["type"].as_str(), sdp) {
                                (Some("answer"), Some(sdp)) => SigIn::Answer(sdp),
                                (Some("offer"), Some(sdp)) => SigIn::Offer(sdp),
                                _ => continue,
                            };
                            if self.in_tx.send(msg).is_err() {
                                return;
                            }
                        }
                        Some("webrtcup") => {
                            if let (Some(f), Ok(mut m)) = (self.feed, self.feeds.lock()) {
                                let v = m.entry(self.room.clone()).or_default();
                                if !v.contains(&f) {
                                    v.push(f);
                                }
                            }
                        }
                        Some("hangup") | Some("detached") | Some("timeout") => {
                            self.unpublish();
                            let _ = self.in_tx.send(SigIn::Closed(v.to_string()));
                            return;
                        }
                        _ => {}
                    }
                }
                o = self.out_rx.recv() => {
                    let body = match o {
                        Some(SigOut::Offer(sdp, _)) => (
                            json!({"request": "publish", "audio": true, "video": true}),
                            json!({"type": "offer", "sdp": sdp, "trickle": false}),
                        ),
                        Some(SigOut::Answer(sdp)) if sdp.is_empty() => continue,
                        Some(SigOut::Answer(sdp)) => (
                            json!({"request": "start"}),
                            json!({"type": "answer", "sdp": sdp, "trickle": false}),
                        ),
                        Some(SigOut::Leave) | None => {
                            self.unpublish();
                            let m = self.req(&c, json!({"janus": "destroy"}));
                            let _ = c.tx.send(m).await;
                            let _ = c.tx.close().await;
                            return;
                        }
                    };
                    let m = self.req(&c, json!({"janus": "message", "handle_id": c.handle,
                        "body": body.0, "jsep": body.1}));
                    if c.tx.send(m).await.is_err() {
                        return;
                    }
                }
                _ = keepalive.tick() => {
                    let m = self.req(&c, json!({"janus": "keepalive"}));
                    if c.tx.send(m).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
