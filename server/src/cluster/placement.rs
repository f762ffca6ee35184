//! Where a room's live session runs: placing a room on the least-loaded
//! live node, placing it again when its node is gone (and ending the
//! sessions that node left open), and the compare-and-swap on its Redis key
//! that settles races between nodes.

use std::collections::HashMap;
use std::time::Duration;

use super::wire::Heartbeat;
use redis::AsyncCommands;

use super::{Cluster, MAX_PENDING, PLACEMENT_MS, Place, SETTLE, lock, room_key};

impl Cluster {
    /// Where the room's live session runs, deciding it (and holding the
    /// placement for this node when it is here) if no live node has it.
    pub async fn place(&self, room_id: &str) -> Place {
        match self.try_place(room_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(room = %room_id, error = %e, "cannot place a room: Redis unreachable");
                Place::Unavailable
            }
        }
    }

    async fn try_place(&self, room_id: &str) -> redis::RedisResult<Place> {
        let me = &self.config.node_id;
        let key = room_key(room_id);
        let mut con = self.con.clone();
        for _ in 0..3 {
            let now: Option<String> = self.noted(con.get(&key).await)?;
            let draining = self.is_draining();
            if now.as_deref() == Some(me.as_str()) && !draining {
                return Ok(Place::Here);
            }
            let nodes = self.nodes().await?;
            if let Some(n) = now.as_deref()
                && n != me
                && let Some(hb) = nodes.get(n)
            {
                return Ok(Place::Elsewhere {
                    node: n.to_string(),
                    url: hb.url.clone(),
                });
            }
            // Unplaced, or its node is gone. An unplaced room whose session
            // is still open runs somewhere unless it stays unplaced past a
            // heartbeat or two (Redis may have restarted and lost the key).
            let sig = self.signaling();
            if now.is_none()
                && let Some(sig) = &sig
                && sig.db.has_open_session(room_id).await.unwrap_or(true)
                && !self.settled(room_id)
            {
                return Ok(Place::Unavailable);
            }
            // The least-loaded live node (this one counts even before its
            // first heartbeat).
            let Some((node, url)) = self.least_loaded(&nodes) else {
                continue;
            };
            // Sessions up to here were left by the gone node; one the new
            // node starts after the swap is not stale.
            let stale_up_to = match &sig {
                Some(sig) => sig.db.latest_session_seq(room_id).await.unwrap_or(None),
                None => None,
            };
            if self.swap_placement(&key, now.as_deref(), &node).await? {
                lock(&self.unplaced).remove(room_id);
                if now.is_some() {
                    tracing::info!(room = %room_id, from = ?now, to = %node, "room placed again: its node is gone");
                }
                // The session the gone node left open ends here; the room
                // starts a new one on its new node.
                if let Some(sig) = &sig
                    && let Some(up_to) = stale_up_to
                {
                    match sig.db.close_stale_session_of(room_id, up_to).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(room = %room_id, sessions = n, "ended the session a gone node left open")
                        }
                        Err(e) => {
                            tracing::warn!(room = %room_id, error = %e, "could not end a gone node's session")
                        }
                    }
                }
                return Ok(if node == *me {
                    Place::Here
                } else {
                    Place::Elsewhere { node, url }
                });
            }
        }
        // Three races lost in a row: let the client try again.
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "placement contended",
        )))
    }

    /// The node a new room goes to: the live, not draining node with the
    /// fewest participants, then rooms (this one counts before its first
    /// heartbeat). A draining node only takes a room no other can.
    pub(super) fn least_loaded(
        &self,
        nodes: &HashMap<String, Heartbeat>,
    ) -> Option<(String, String)> {
        let me = &self.config.node_id;
        let others = nodes
            .values()
            .filter(|hb| hb.node != *me && !hb.draining)
            .map(|hb| (hb.participants, hb.rooms, hb.node.clone(), hb.url.clone()));
        let sig = self.signaling();
        let mine = (
            sig.as_ref().map_or(0, |s| s.connected()),
            sig.as_ref().map_or(0, |s| s.live_room_ids().len()),
            me.clone(),
            self.config.node_url.clone(),
        );
        if self.is_draining() {
            others.min().or(Some(mine))
        } else {
            others.chain(std::iter::once(mine)).min()
        }
        .map(|(_, _, node, url)| (node, url))
    }

    /// Places a room on `node` if its placement is still `was` (`None`:
    /// unplaced); false when another node changed it first.
    pub(super) async fn swap_placement(
        &self,
        key: &str,
        was: Option<&str>,
        node: &str,
    ) -> redis::RedisResult<bool> {
        let mut con = self.con.clone();
        let swapped: i32 = self.noted(
            self.cas
                .key(key)
                .arg(was.unwrap_or(""))
                .arg(node)
                .arg(PLACEMENT_MS)
                .invoke_async(&mut con)
                .await,
        )?;
        Ok(swapped == 1)
    }

    /// Whether an unplaced room with an open session has been seen
    /// unplaced for [`SETTLE`] (the first sighting starts the clock).
    fn settled(&self, room_id: &str) -> bool {
        let now = std::time::Instant::now();
        let mut seen = lock(&self.unplaced);
        if seen.len() >= MAX_PENDING {
            seen.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        let since = *seen.entry(room_id.to_string()).or_insert(now);
        now.duration_since(since) >= SETTLE
    }
}
