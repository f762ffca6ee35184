//! How the generator reaches an SFU: rooms, credentials and the signaling
//! channel. [`SignalingAdapter`] is the seam for other SFUs: [`Convene`]
//! speaks docs/signaling.md, [`crate::janus::Janus`] the Janus VideoRoom API.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The generator's WebSocket settings: tungstenite reads into a 128 KiB
/// buffer by default and zero-fills it at every read, which in a 100-join
/// storm took ~30 % of the generator's core (the same reason the server
/// reads 4 KiB at a time). A larger message still fits: the buffer grows.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// From the SFU to a peer.
#[derive(Debug)]
pub enum SigIn {
    Offer(String),
    Answer(String),
    OfferRejected(String),
    Closed(String),
}

/// From a peer to the SFU.
#[derive(Debug)]
pub enum SigOut {
    /// An offer with the `(mid, source)` of every sending m-line.
    Offer(String, Vec<(String, &'static str)>),
    Answer(String),
    Leave,
}

/// A joined participant's signaling channel.
pub struct Joined {
    /// When the join began (after credentials were fetched).
    pub started: Instant,
    /// The signaling transport was open.
    pub ws_open: Duration,
    /// The SFU accepted the join.
    pub joined: Duration,
    pub incoming: mpsc::UnboundedReceiver<SigIn>,
    pub outgoing: mpsc::UnboundedSender<SigOut>,
}

/// An SFU's room management and signaling.
pub trait SignalingAdapter: Send + Sync + 'static {
    /// Creates a room for `participants` people; returns its reference.
    fn create_room(&self, participants: usize) -> impl Future<Output = Result<String>> + Send;
    /// Fetches whatever a participant needs to join (a token), outside the
    /// timed part of a join.
    fn credentials(&self, room: &str, name: &str) -> impl Future<Output = Result<String>> + Send;
    /// Joins `room` and returns once the SFU accepted the participant.
    /// `publishes`: the participant will offer media (SFUs such as Janus
    /// keep publishers and subscribers on separate handles).
    fn join(
        &self,
        room: &str,
        name: &str,
        credentials: String,
        publishes: bool,
    ) -> impl Future<Output = Result<Joined>> + Send;
    /// A short name of the SFU for reports (`convene`, `janus`).
    fn name(&self) -> &'static str;
}

/// Convene: REST API for rooms and tokens, WebSocket `/rtc` for signaling.
pub struct Convene {
    pub base: String,
    pub api_key: String,
    http: reqwest::Client,
    /// In a cluster (`benches/cluster.sh`): subscribers whose media stays
    /// on another node, `(node, every)`: every `every`-th subscriber joins
    /// with `via: node` (1: all of them, 2: half).
    via: Option<(String, usize)>,
    subscribers: std::sync::atomic::AtomicUsize,
}

impl Convene {
    pub fn new(base: &str, api_key: &str) -> Result<Convene> {
        Ok(Convene {
            base: base.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            via: None,
            subscribers: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Every `every`-th subscriber keeps its media on cluster node `node`.
    pub fn with_via(mut self, node: &str, every: usize) -> Convene {
        self.via = Some((node.to_string(), every.max(1)));
        self
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/rtc")
    }
}

impl SignalingAdapter for Convene {
    async fn create_room(&self, participants: usize) -> Result<String> {
        let v = self
            .post(
                "/api/v1/rooms",
                json!({"max_participants": participants.max(2) + 5}),
            )
            .await?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("room without id: {v}"))
    }

    async fn credentials(&self, room: &str, name: &str) -> Result<String> {
        let v = self
            .post(
                &format!("/api/v1/rooms/{room}/token"),
                json!({"u": name, "role": "moderator"}),
            )
            .await?;
        v["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token: {v}"))
    }

    fn name(&self) -> &'static str {
        "convene"
    }

    async fn join(&self, room: &str, name: &str, token: String, publishes: bool) -> Result<Joined> {
        let via = match &self.via {
            Some((node, every)) if !publishes => {
                let k = self
                    .subscribers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                k.is_multiple_of(*every).then(|| node.clone())
            }
            _ => None,
        };
        let started = Instant::now();
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(self.ws_url(), Some(ws_config()), false)
                .await
                .context("websocket")?;
        let ws_open = started.elapsed();
        let (mut tx, mut rx) = ws.split();
        let join = json!({"type": "join", "v": 1, "room": room, "token": token, "name": name,
            "resume": null, "via": via,
            "client": {"kind": "bot", "user_agent": "convene-load"}});
        tx.send(Message::Text(join.to_string().into())).await?;
        loop {
            let m = rx
                .next()
                .await
                .ok_or_else(|| anyhow!("closed before joined"))??;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t)?;
            match v["type"].as_str() {
                Some("joined") => break,
                Some("error") => bail!("join refused: {v}"),
                _ => {}
            }
        }
        let joined = started.elapsed();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<SigOut>();
        let pong = out_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rx.next() => {
                        let t = match m {
                            Some(Ok(Message::Text(t))) => t,
                            Some(Ok(_)) => continue,
                            other => {
                                let _ = in_tx.send(SigIn::Closed(format!("{other:?}")));
                                return;
                            }
                        };
                        let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                        let sdp = || v["sdp"].as_str().unwrap_or_default().to_string();
                        let msg = match v["type"].as_str() {
                            Some("offer") => SigIn::Offer(sdp()),
                            Some("answer") => SigIn::Answer(sdp()),
                            Some("offer_rejected") => SigIn::OfferRejected(v["message"].to_string()),
                            Some("error") if v["fatal"] == true => SigIn::Closed(v.to_string()),
                            Some("ping") => {
                                // Answered here: the media thread has no part in keepalive.
                                let _ = pong.send(SigOut::Answer(String::new()));
                                continue;
                            }
                            _ => continue,
                        };
                        if in_tx.send(msg).is_err() {
                            return;
                        }
                    }
                    o = out_rx.recv() => {
                        let v = match o {
                            Some(SigOut::Offer(sdp, tracks)) => {
                                let tracks: Vec<Value> = tracks
                                    .iter()
                                    .map(|(mid, source)| json!({"mid": mid, "source": source}))
                                    .collect();
                                json!({"type": "offer", "sdp": sdp, "tracks": tracks})
                            }
                            Some(SigOut::Answer(sdp)) if sdp.is_empty() => json!({"type": "pong"}),
                            Some(SigOut::Answer(sdp)) => json!({"type": "answer", "sdp": sdp}),
                            Some(SigOut::Leave) | None => {
                                let _ = tx.send(Message::Text(json!({"type": "leave"}).to_string().into())).await;
                                let _ = tx.close().await;
                                return;
                            }
                        };
                        if tx.send(Message::Text(v.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Joined {
            started,
            ws_open,
            joined,
            incoming: in_rx,
            outgoing: out_tx,
        })
    }
}
