//! Rooms that span nodes: the media links between the nodes of a cluster
//! (`--node-link-addr`).
//!
//! Every pair of nodes keeps one TCP connection (the node whose id sorts
//! first dials; `link.rs` makes it authenticated and encrypted with the
//! cluster secret). Each other node has a [`gateway`] in this node's media
//! plane: a mesh member after the real workers, so a room whose peers are on
//! two nodes is, to the workers, a room on one more worker. Each publisher's
//! packets cross to another node once, whatever the number of subscribers
//! there.
//!
//! A participant whose signaling runs on the room's node but whose media
//! should stay on the node it reached first (`moved` says `via`, the client
//! joins with it) gets its peer on that node: signaling's commands for it go
//! to the gateway, which carries them over the link; its notices come back.

mod counters;
pub mod gateway;
mod ingress;
pub mod link;
pub mod wire;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::{GatewayInfo, GwIn};

use crate::rtc::WorkerId;

/// Nodes this node can link to at once (gateways in the mesh).
pub const MAX_LINKED_NODES: usize = 16;
/// Handshakes in progress at most (a bound against connection floods).
const MAX_HANDSHAKES: usize = 16;

/// What `--node-link-addr` and the cluster settings give the media plane.
#[derive(Debug, Clone)]
pub struct NodeLinkConfig {
    pub bind: SocketAddr,
    /// The host other nodes dial when `bind` is a wildcard address (the
    /// host of `--node-url`).
    pub advertise_host: String,
    pub node_id: String,
    pub secret: String,
}

/// The node links of this media plane.
pub struct NodeLinks {
    node_id: String,
    psk: [u8; 32],
    /// `host:port` other nodes dial.
    advertise: String,
    pub(crate) gateways: Vec<Arc<GatewayInfo>>,
    dialing: Mutex<HashSet<String>>,
    handshakes: AtomicUsize,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl NodeLinks {
    /// Binds the listener; `gateways` are the mesh members standing for
    /// other nodes (made by the media plane).
    pub(crate) fn start(
        config: &NodeLinkConfig,
        gateways: Vec<Arc<GatewayInfo>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(Arc<NodeLinks>, std::thread::JoinHandle<()>)> {
        let listener = TcpListener::bind(config.bind)?;
        let local = listener.local_addr()?;
        let advertise = if local.ip().is_unspecified() {
            let host = &config.advertise_host;
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{}", local.port())
            } else {
                format!("{host}:{}", local.port())
            }
        } else {
            local.to_string()
        };
        let links = Arc::new(NodeLinks {
            node_id: config.node_id.clone(),
            psk: link::psk(&config.secret),
            advertise,
            gateways,
            dialing: Mutex::new(HashSet::new()),
            handshakes: AtomicUsize::new(0),
        });
        listener.set_nonblocking(true)?;
        let l2 = links.clone();
        let t = std::thread::Builder::new()
            .name("node-link-accept".into())
            .spawn(move || l2.accept_loop(listener, stop))?;
        tracing::info!(listen = %local, advertise = %links.advertise, "node links listening");
        Ok((links, t))
    }

    /// Where other nodes dial this one (put in the heartbeat).
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// The gateway standing for `node`, when its link is up.
    pub fn gateway_of(&self, node: &str) -> Option<WorkerId> {
        self.gateways
            .iter()
            .find(|g| g.up.load(Ordering::Relaxed) && locked(&g.node).as_deref() == Some(node))
            .map(|g| g.id)
    }

    /// The nodes linked now.
    pub fn linked(&self) -> Vec<String> {
        self.gateways
            .iter()
            .filter(|g| g.up.load(Ordering::Relaxed))
            .filter_map(|g| locked(&g.node).clone())
            .collect()
    }

    /// This node drains: the peers it keeps for other nodes' signaling are
    /// handed back (their participants resume elsewhere) and no new one is
    /// taken. [`NodeLinks::hosted`] counts down to 0.
    pub fn release_hosted(&self) {
        for g in &self.gateways {
            g.release.store(true, Ordering::Relaxed);
        }
    }

    /// Peers this node keeps for other nodes' signaling now.
    pub fn hosted(&self) -> usize {
        self.gateways
            .iter()
            .filter(|g| g.up.load(Ordering::Relaxed))
            .map(|g| g.hosted.load(Ordering::Relaxed))
            .sum()
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, from)) => {
                    if self.handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
                        self.handshakes.fetch_sub(1, Ordering::AcqRel);
                        tracing::warn!(%from, "too many node link handshakes at once; connection refused");
                        continue;
                    }
                    let me = self.clone();
                    let _ = std::thread::Builder::new()
                        .name("node-link-handshake".into())
                        .spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            match link::handshake(stream, false, &me.psk, &me.node_id) {
                                Ok((w, r, node)) => me.attach(node, w, r),
                                Err(e) => {
                                    tracing::warn!(%from, error = %e, "node link refused (wrong cluster secret, or not a node)");
                                    metrics::counter!("convene_node_link_refused_total")
                                        .increment(1);
                                }
                            }
                            me.handshakes.fetch_sub(1, Ordering::AcqRel);
                        });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "node link accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Hands a connection to the gateway of `node`: the one it had, else a
    /// free one, else one whose link is down.
    fn attach(&self, node: String, writer: link::LinkWriter, reader: link::LinkReader) {
        if node == self.node_id {
            return;
        }
        let g = self
            .gateways
            .iter()
            .find(|g| locked(&g.node).as_deref() == Some(node.as_str()))
            .or_else(|| self.gateways.iter().find(|g| locked(&g.node).is_none()))
            .or_else(|| self.gateways.iter().find(|g| !g.up.load(Ordering::Relaxed)));
        let Some(g) = g else {
            tracing::warn!(%node, max = MAX_LINKED_NODES, "no gateway left for another node; link refused");
            return;
        };
        *locked(&g.node) = Some(node.clone());
        if g.tx
            .send_timeout(
                GwIn::Attach {
                    writer,
                    reader,
                    node,
                },
                Duration::from_secs(2),
            )
            .is_err()
        {
            tracing::warn!("a node gateway is not taking connections");
        }
    }

    /// Dials the live nodes this node must dial (those whose id sorts after
    /// its own) and is not linked to. Called with each heartbeat's view of
    /// the cluster: `(node id, link address)`.
    pub fn connect_to(self: &Arc<Self>, nodes: Vec<(String, String)>) {
        for (node, addr) in nodes {
            if node.as_str() <= self.node_id.as_str() || self.gateway_of(&node).is_some() {
                continue;
            }
            if !locked(&self.dialing).insert(node.clone()) {
                continue;
            }
            let me = self.clone();
            let _ = std::thread::Builder::new()
                .name("node-link-dial".into())
                .spawn(move || {
                    let r = dial(&addr).and_then(|s| link::handshake(s, true, &me.psk, &me.node_id));
                    match r {
                        Ok((w, r, remote)) if remote == node => me.attach(remote, w, r),
                        Ok((w, _, remote)) => {
                            tracing::warn!(expected = %node, %remote, %addr, "node link reached another node than expected; closed");
                            w.shutdown();
                        }
                        Err(e) => {
                            tracing::warn!(%node, %addr, error = %e, "cannot link to node");
                        }
                    }
                    locked(&me.dialing).remove(&node);
                });
        }
    }
}

fn dial(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other(format!("{addr} names no address"));
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, link::HANDSHAKE_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}
