//! Several `convene` nodes as one service (`--redis-url`; issue 20).
//!
//! The nodes share one PostgreSQL database (rooms, sessions, chat, live
//! counts) and one Redis server, which holds what the database should not:
//!
//! - `convene:nodes` (a set) and `convene:alive:{node}`: each node's signed
//!   [`Heartbeat`] every [`HEARTBEAT`], kept for [`ALIVE_MS`]; a node whose
//!   key expired is gone.
//! - `convene:room:{room_id}`: the node a room's live session runs on, kept
//!   for [`PLACEMENT_MS`] and renewed by that node's heartbeat while the room
//!   runs there. A new room goes to the least-loaded node ([`Cluster::place`]);
//!   a room whose node is gone is placed again.
//! - `convene:node:{node}`: the node's channel (pub/sub). A REST call on
//!   node A for a room running on node B becomes a signed request there, and
//!   B's answer comes back on A's channel ([`ClusterLive`]).
//! - `convene:cluster:secret-check`: an HMAC of a fixed text with the
//!   cluster secret, written by the first node; a node whose secret gives
//!   another value refuses to start.
//!
//! A participant who reaches a node for a room that runs on another is told
//! where (`moved` over signaling, `307` for WHIP/WHEP) and reconnects there.
//! When Redis cannot be reached, a node keeps serving the rooms it runs and
//! refuses joins it cannot place (`CLUSTER_UNAVAILABLE`); its next heartbeat
//! after Redis is back claims its rooms again.

mod live;
pub mod phone;
mod placement;
pub mod seal;
pub mod start;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::signaling::Signaling;
pub use live::ClusterLive;
pub use phone::ClusterPhone;
use wire::{Answer, Call, Envelope, Heartbeat, NodeMsg};

/// How often a node tells the others it is alive and renews its rooms.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is gone.
pub const ALIVE_MS: u64 = 6_000;
/// How long a room stays placed on a node that stops renewing it: longer
/// than [`ALIVE_MS`], so that a node that died is seen gone (and its rooms
/// taken over at once) while its placements still name it.
pub const PLACEMENT_MS: u64 = 12_000;
/// How long a room with an open session stays unplaced before another node
/// takes it: after Redis lost its keys (a restart), the node that runs the
/// room claims it again with its next heartbeat.
const SETTLE: Duration = Duration::from_millis(2 * 2_000 + 500);
/// How long a node waits for another node's answer.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// Requests waiting for an answer, at most (a bound on memory when another
/// node stops answering).
const MAX_PENDING: usize = 4096;

const SECRET_CHECK: &str = "convene:cluster:secret-check";
const NODES: &str = "convene:nodes";

fn alive_key(node: &str) -> String {
    format!("convene:alive:{node}")
}
fn room_key(room_id: &str) -> String {
    format!("convene:room:{room_id}")
}
fn channel(node: &str) -> String {
    format!("convene:node:{node}")
}

/// What `--redis-url`, `--cluster-secret`, `--node-id` and `--node-url`
/// set.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub secret: String,
    pub node_id: String,
    pub node_url: String,
}

impl ClusterConfig {
    /// Checks the values before anything connects.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.secret.chars().count() < 16 {
            bail!("--cluster-secret must be at least 16 characters");
        }
        if self.node_id.is_empty()
            || self.node_id.len() > 64
            || !self
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bail!(
                "--node-id must be 1 to 64 letters, digits, '.', '_' or '-' (got {:?})",
                self.node_id
            );
        }
        let url = reqwest::Url::parse(&self.node_url)
            .with_context(|| format!("--node-url {:?} is not a URL", self.node_url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!("--node-url must be an http(s) URL with a host");
        }
        Ok(())
    }
}

/// Where a room's live session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// On this node (it now holds the placement).
    Here,
    /// On another node, reached at `url`.
    Elsewhere { node: String, url: String },
    /// Redis cannot be reached, so no one can say.
    Unavailable,
}

/// This node's membership of the cluster.
pub struct Cluster {
    config: ClusterConfig,
    client: redis::Client,
    con: ConnectionManager,
    /// Whether the last exchange with Redis worked.
    up: AtomicBool,
    /// `convene drain`: no new rooms; this node's rooms move away.
    draining: AtomicBool,
    sig: OnceLock<Weak<Signaling>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_id: AtomicU64,
    /// Rooms with an open session seen unplaced, and since when.
    unplaced: Mutex<HashMap<String, std::time::Instant>>,
    /// The other nodes draining as of the last heartbeat's view (no new
    /// peers go to them through `via`).
    draining_nodes: Mutex<std::collections::HashSet<String>>,
    cas: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Cluster {
    /// Connects to Redis and checks the cluster secret. Redis must be
    /// reachable at start (afterwards the node rides out outages).
    pub async fn connect(config: ClusterConfig) -> anyhow::Result<Arc<Cluster>> {
        config.check()?;
        let client = redis::Client::open(config.redis_url.as_str())
            .context("--redis-url is not a Redis URL")?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut con = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(manager),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .context("cannot reach Redis at --redis-url")?;
        let check = hex::encode(
            Hmac::<Sha256>::new_from_slice(config.secret.as_bytes())
                .context("cluster secret")?
                .chain_update(b"convene cluster secret check v1")
                .finalize()
                .into_bytes(),
        );
        let _: bool = con
            .set_nx(SECRET_CHECK, &check)
            .await
            .context("writing to Redis")?;
        let stored: Option<String> = con.get(SECRET_CHECK).await.context("reading Redis")?;
        if stored.as_deref() != Some(check.as_str()) {
            bail!(
                "--cluster-secret differs from the secret the cluster's other nodes use \
                 (every node must start with the same one)"
            );
        }
        Ok(Arc::new(Cluster {
            config,
            client,
            con,
            up: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            sig: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            unplaced: Mutex::new(HashMap::new()),
            draining_nodes: Mutex::new(std::collections::HashSet::new()),
            cas: redis::Script::new(
                r"local v = redis.call('GET', KEYS[1])
                  if (v == false and ARGV[1] == '') or v == ARGV[1] then
                    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
                    return 1
                  end
                  return 0",
            ),
            renew: redis::Script::new(
                r"local lost = {}
                  for _, k in ipairs(KEYS) do
                    local v = redis.call('GET', k)
                    if v == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2])
                    elseif v == false then redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
                    else table.insert(lost, k) end
                  end
                  return lost",
            ),
            release: redis::Script::new(
                r"if redis.call('GET', KEYS[1]) == ARGV[1] then
                    return redis.call('DEL', KEYS[1])
                  end
                  return 0",
            ),
        }))
    }

    /// What the media plane's node links need (`--node-link-addr`): they
    /// are keyed by the cluster secret, and other nodes dial the host of
    /// `--node-url`.
    pub fn node_link_config(
        &self,
        bind: std::net::SocketAddr,
    ) -> crate::rtc::nodes::NodeLinkConfig {
        let host = reqwest::Url::parse(&self.config.node_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
            .unwrap_or_else(|| "127.0.0.1".into());
        crate::rtc::nodes::NodeLinkConfig {
            bind,
            advertise_host: host,
            node_id: self.config.node_id.clone(),
            secret: self.config.secret.clone(),
        }
    }

    /// The cluster secret's bytes (sealing values between nodes).
    pub(crate) fn secret_bytes(&self) -> &[u8] {
        self.secret()
    }

    /// Whether `node` was draining at the last heartbeat.
    pub fn is_node_draining(&self, node: &str) -> bool {
        lock(&self.draining_nodes).contains(node)
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Whether the last exchange with Redis worked.
    pub fn redis_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn secret(&self) -> &[u8] {
        self.config.secret.as_bytes()
    }

    fn noted<T>(&self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        let ok = r.is_ok();
        let was = self.up.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!(node = %self.config.node_id, "Redis reachable again");
            } else if let Err(e) = &r {
                tracing::warn!(node = %self.config.node_id, error = %e, "Redis unreachable: serving this node's rooms only");
            }
            metrics::gauge!("convene_cluster_redis_up").set(if ok { 1.0 } else { 0.0 });
        }
        r
    }

    /// Starts the heartbeat and the node's channel (call once, after
    /// signaling exists).
    pub fn start(self: &Arc<Self>, sig: &Arc<Signaling>) {
        let _ = self.sig.set(Arc::downgrade(sig));
        metrics::gauge!("convene_cluster_redis_up").set(1.0);
        tokio::spawn(self.clone().heartbeats());
        tokio::spawn(self.clone().listen());
    }

    fn signaling(&self) -> Option<Arc<Signaling>> {
        self.sig.get().and_then(Weak::upgrade)
    }

    async fn heartbeats(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(sig) = self.signaling() else { return };
            let _ = self.beat(&sig).await;
            // Media links to the nodes this one has none to yet.
            if let Some(links) = sig.media.node_links()
                && let Ok(nodes) = self.nodes().await
            {
                *lock(&self.draining_nodes) = nodes
                    .values()
                    .filter(|hb| hb.draining)
                    .map(|hb| hb.node.clone())
                    .collect();
                links.connect_to(
                    nodes
                        .into_values()
                        .filter(|hb| hb.node != self.config.node_id)
                        .filter_map(|hb| hb.link.map(|l| (hb.node, l)))
                        .collect(),
                );
            }
        }
    }

    /// One heartbeat: this node's load, and its rooms' placements renewed
    /// (claimed again when Redis lost them).
    async fn beat(&self, sig: &Signaling) -> redis::RedisResult<()> {
        let rooms = sig.live_room_ids();
        let hb = Heartbeat {
            node: self.config.node_id.clone(),
            url: self.config.node_url.clone(),
            rooms: rooms.len(),
            participants: sig.connected(),
            draining: self.is_draining(),
            link: sig.media.node_links().map(|l| l.advertise().to_string()),
        };
        let sealed = Envelope::seal(self.secret(), &self.config.node_id, &hb);
        let mut con = self.con.clone();
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(alive_key(&self.config.node_id))
            .arg(sealed)
            .arg("PX")
            .arg(ALIVE_MS)
            .ignore()
            .sadd(NODES, &self.config.node_id)
            .ignore()
            .query_async(&mut con)
            .await;
        self.noted(r)?;
        if rooms.is_empty() {
            return Ok(());
        }
        let mut inv = self.renew.prepare_invoke();
        for r in &rooms {
            inv.key(room_key(r));
        }
        inv.arg(&self.config.node_id).arg(PLACEMENT_MS);
        let lost: Vec<String> = self.noted(inv.invoke_async(&mut con).await)?;
        for key in lost {
            // Another node took the room while this one could not renew it
            // (Redis was away longer than a placement lasts).
            tracing::warn!(room = %key.trim_start_matches("convene:room:"), "room placed on another node meanwhile");
            metrics::counter!("convene_cluster_placements_lost_total").increment(1);
        }
        Ok(())
    }

    /// The live nodes and what they last said, this one included.
    pub async fn nodes(&self) -> redis::RedisResult<HashMap<String, Heartbeat>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = self.noted(con.smembers(NODES).await)?;
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let keys: Vec<String> = ids.iter().map(|n| alive_key(n)).collect();
        let values: Vec<Option<Vec<u8>>> = self.noted(con.mget(&keys).await)?;
        let mut gone = Vec::new();
        for (id, v) in ids.iter().zip(values) {
            match v.map(|b| Envelope::open::<Heartbeat>(self.secret(), &b)) {
                Some(Ok((from, hb))) if from == *id && hb.node == *id => {
                    out.insert(id.clone(), hb);
                }
                Some(_) => {
                    metrics::counter!("convene_cluster_unverified_total").increment(1);
                }
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let _: redis::RedisResult<()> = con.srem(NODES, gone).await;
        }
        Ok(out)
    }

    /// Whether this node drains (`convene drain`).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// `convene drain`: this node takes no new rooms; each of its rooms is
    /// placed on another node and its participants are sent there
    /// (`moved`); the peers it keeps for other nodes' rooms are handed back
    /// (`MEDIA_LOST`, their clients resume elsewhere). Returns when no
    /// room, participant or kept peer is left here.
    pub async fn drain(self: &Arc<Self>) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::info!(node = %self.config.node_id, "draining: no new rooms; moving this node's rooms");
        let Some(sig) = self.signaling() else { return };
        let _ = self.beat(&sig).await;
        // The peers this node keeps for other nodes' rooms go back to them
        // (their participants resume on a node that does not drain).
        let links = sig.media.node_links().cloned();
        if let Some(l) = &links {
            l.release_hosted();
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut empty_ticks = 0;
        loop {
            tick.tick().await;
            let rooms = sig.live_room_ids();
            let hosted = links.as_ref().map_or(0, |l| l.hosted());
            if rooms.is_empty() && sig.connected() == 0 && hosted == 0 {
                // One more tick once empty: what was last handed back
                // (notices over the node links) is written before the
                // node stops.
                empty_ticks += 1;
                if empty_ticks > 1 || links.is_none() {
                    break;
                }
                continue;
            }
            empty_ticks = 0;
            for room in rooms {
                if let Err(e) = self.move_room(&sig, &room).await {
                    tracing::info!(room = %room, error = %e, "cannot move a room yet");
                }
            }
        }
        tracing::info!(node = %self.config.node_id, "drained");
    }

    /// Places one of this node's rooms on another node and sends its
    /// members there; nothing happens when no other node can take it.
    async fn move_room(&self, sig: &Signaling, room_id: &str) -> redis::RedisResult<()> {
        let nodes = self.nodes().await?;
        let Some((node, url)) = self.least_loaded(&nodes) else {
            return Ok(());
        };
        if node == self.config.node_id {
            return Ok(());
        }
        let mut con = self.con.clone();
        let key = room_key(room_id);
        let now: Option<String> = self.noted(con.get(&key).await)?;
        // Already placed elsewhere: only the members are left to move.
        let elsewhere = now.as_deref().is_some_and(|n| n != self.config.node_id);
        if !elsewhere && !self.swap_placement(&key, now.as_deref(), &node).await? {
            return Ok(());
        }
        tracing::info!(room = %room_id, to = %node, "room moved off this draining node");
        sig.move_room(room_id, url, node).await;
        Ok(())
    }

    /// The live node (not this one) the room runs on, if any.
    async fn owner(&self, room_id: &str) -> Option<String> {
        let mut con = self.con.clone();
        let node: Option<String> = self.noted(con.get(room_key(room_id)).await).ok()?;
        let node = node.filter(|n| *n != self.config.node_id)?;
        let mut con = self.con.clone();
        let alive: bool = self.noted(con.exists(alive_key(&node)).await).ok()?;
        alive.then_some(node)
    }

    /// The room's actor on this node stopped: it no longer runs here.
    pub fn released(self: &Arc<Self>, room_id: &str) {
        let this = self.clone();
        let key = room_key(room_id);
        tokio::spawn(async move {
            let mut con = this.con.clone();
            let r: redis::RedisResult<i32> = this
                .release
                .key(key)
                .arg(&this.config.node_id)
                .invoke_async(&mut con)
                .await;
            let _ = this.noted(r);
        });
    }

    /// The rooms whose live sessions run on live nodes (other than this
    /// one): at start, their open sessions are not stale.
    pub async fn rooms_live_elsewhere(&self) -> anyhow::Result<Vec<String>> {
        let nodes = self.nodes().await?;
        let mut con = self.con.clone();
        let mut out = Vec::new();
        let mut iter: redis::AsyncIter<String> = con.scan_match("convene:room:*").await?;
        let mut keys = Vec::new();
        while let Some(k) = iter.next_item().await {
            keys.push(k?);
        }
        drop(iter);
        for k in keys {
            let node: Option<String> = con.get(&k).await?;
            if node.is_some_and(|n| n != self.config.node_id && nodes.contains_key(&n)) {
                out.push(k.trim_start_matches("convene:room:").to_string());
            }
        }
        Ok(out)
    }

    /// Asks the node the room runs on; `None` when no other live node runs
    /// it, or it did not answer in time.
    async fn ask(&self, room_id: &str, call: Call) -> Option<Answer> {
        let node = self.owner(room_id).await?;
        self.ask_node(&node, room_id, call, ANSWER_WAIT).await
    }

    /// Asks `node` about `room_id`; `None` when it did not answer within
    /// `wait` (or Redis is away).
    pub(crate) async fn ask_node(
        &self,
        node: &str,
        room_id: &str,
        call: Call,
        wait: Duration,
    ) -> Option<Answer> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING {
                metrics::counter!("convene_cluster_requests_dropped_total").increment(1);
                return None;
            }
            pending.insert(id, tx);
        }
        let msg = NodeMsg::Request {
            id,
            room_id: room_id.to_string(),
            call,
        };
        let sealed = Envelope::seal(self.secret(), &self.config.node_id, &msg);
        let mut con = self.con.clone();
        let sent: redis::RedisResult<i64> = self.noted(con.publish(channel(node), sealed).await);
        let answer = match sent {
            Ok(_) => tokio::time::timeout(wait, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        lock(&self.pending).remove(&id);
        if answer.is_none() {
            tracing::info!(room = %room_id, %node, "no answer from a node");
        }
        answer
    }

    /// Asks every other live node about `room_id` at once; the answers
    /// that came in time.
    pub(crate) async fn ask_others(&self, room_id: &str, call: Call) -> Vec<Answer> {
        let Ok(nodes) = self.nodes().await else {
            return Vec::new();
        };
        let asks = nodes
            .keys()
            .filter(|n| **n != self.config.node_id)
            .map(|n| self.ask_node(n, room_id, call.clone(), ANSWER_WAIT));
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Reads this node's channel, reconnecting with backoff.
    async fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if self.signaling().is_none() {
                return;
            }
            match self.subscribe().await {
                Ok(mut pubsub) => {
                    backoff = Duration::from_millis(250);
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
                        self.clone().received(&payload);
                    }
                    tracing::info!("cluster channel closed; subscribing again");
                }
                Err(e) => {
                    let _ = self.noted::<()>(Err(e));
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub =
            tokio::time::timeout(Duration::from_secs(2), self.client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "connect timed out"))
                })??;
        pubsub.subscribe(channel(&self.config.node_id)).await?;
        Ok(pubsub)
    }

    fn received(self: Arc<Self>, payload: &[u8]) {
        let (from, msg) = match Envelope::open::<NodeMsg>(self.secret(), payload) {
            Ok(m) => m,
            Err(why) => {
                tracing::warn!(?why, "dropped a cluster message that does not verify");
                metrics::counter!("convene_cluster_unverified_total").increment(1);
                return;
            }
        };
        match msg {
            NodeMsg::Reply { id, answer } => {
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(answer);
                }
            }
            NodeMsg::Request { id, room_id, call } => {
                tokio::spawn(async move {
                    let Some(sig) = self.signaling() else { return };
                    let answer = live::answer_here(&sig, &room_id, call).await;
                    let reply = NodeMsg::Reply { id, answer };
                    let sealed = Envelope::seal(self.secret(), &self.config.node_id, &reply);
                    let mut con = self.con.clone();
                    let r: redis::RedisResult<i64> = con.publish(channel(&from), sealed).await;
                    let _ = self.noted(r);
                });
            }
        }
    }
}
