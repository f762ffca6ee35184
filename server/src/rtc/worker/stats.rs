//! Per-peer figures for the admin console: each worker folds str0m's
//! per-peer statistics (every `STATS_INTERVAL`) into a small table and, at
//! most once a second from its loop's periodic pass, publishes a fresh
//! `Arc<Vec<PeerFigures>>` on the shared [`PeerStatsBoard`] (one mutex
//! touched once per second per worker; never on the per-packet path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::media::MediaKind;
use str0m::stats::PeerStats;

use super::Worker;
use super::state::Slot;

/// How often a worker publishes its peers' figures.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// One participant's media figures over the last statistics interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerFigures {
    pub participant_id: String,
    pub room_id: String,
    /// What the server sent to the participant, bit/s (all of its transport).
    pub send_bps: u64,
    /// What the server received from the participant, bit/s.
    pub recv_bps: u64,
    /// Loss fraction (0..1) of what the participant sent us.
    pub loss_in: Option<f32>,
    /// Loss fraction (0..1) the participant reported for what we sent.
    pub loss_out: Option<f32>,
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter of the participant's incoming streams, ms (the
    /// largest of its streams).
    pub jitter_ms: Option<f64>,
    /// The participant's published tracks.
    pub tracks: Vec<TrackFigures>,
    /// The video this participant receives, with the simulcast layer sent.
    pub receiving: Vec<ReceivedVideo>,
}

/// A published track.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackFigures {
    pub id: String,
    pub kind: &'static str,
    pub source: &'static str,
    pub muted: bool,
}

/// An outgoing video stream of a subscriber.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReceivedVideo {
    pub track_id: String,
    /// `q`, `h`, `f` (simulcast layer being forwarded), or null when
    /// nothing is forwarded right now.
    pub layer: Option<&'static str>,
}

/// The latest figures of every worker, read by the admin console.
#[derive(Debug, Default)]
pub struct PeerStatsBoard {
    by_worker: Mutex<HashMap<usize, Arc<Vec<PeerFigures>>>>,
}

impl PeerStatsBoard {
    fn publish(&self, worker: usize, figures: Vec<PeerFigures>) {
        let mut g = self.by_worker.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(worker, Arc::new(figures));
    }

    /// Every worker's latest figures.
    pub fn all(&self) -> Vec<Arc<Vec<PeerFigures>>> {
        let g = self.by_worker.lock().unwrap_or_else(|p| p.into_inner());
        g.values().cloned().collect()
    }
}

/// What a worker remembers of one peer between statistics events.
#[derive(Debug)]
struct Acc {
    participant_id: String,
    last: Option<(Instant, u64, u64)>,
    send_bps: u64,
    recv_bps: u64,
    loss_in: Option<f32>,
    loss_out: Option<f32>,
    rtt_ms: Option<f64>,
    jitter_ms: Option<f64>,
    /// When `jitter_ms` was last set: reports of one statistics round
    /// arrive together, an older value belongs to an earlier round.
    jitter_at: Option<Instant>,
}

/// A worker's per-peer accumulators (see the module doc).
#[derive(Debug)]
pub(super) struct PeerStatsBook {
    board: Arc<PeerStatsBoard>,
    accs: HashMap<Slot, Acc>,
    last_publish: Instant,
}

impl PeerStatsBook {
    pub(super) fn new(board: Arc<PeerStatsBoard>) -> PeerStatsBook {
        PeerStatsBook {
            board,
            accs: HashMap::new(),
            last_publish: Instant::now(),
        }
    }
}

/// Bits per second from a byte counter's delta.
fn bps(bytes: u64, over: Duration) -> u64 {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (bytes as f64 * 8.0 / secs) as u64
}

fn layer_name(l: convene_sfu::Layer) -> &'static str {
    match l {
        convene_sfu::Layer::Q => "q",
        convene_sfu::Layer::H => "h",
        convene_sfu::Layer::F => "f",
    }
}

impl Worker {
    /// `Event::PeerStats` of a peer (every `STATS_INTERVAL`), with the
    /// round trip and egress loss of whichever write path sends to it
    /// (`poll.rs`).
    pub(super) fn on_peer_stats(
        &mut self,
        slot: Slot,
        st: &PeerStats,
        rtt: Option<Duration>,
        egress_loss: Option<f32>,
    ) {
        let Some(p) = self.peers.get(slot) else {
            return;
        };
        let pid = &p.participant_id;
        // The own write path's datagrams are not in str0m's count (`own/`).
        let tx_bytes = st.peer_bytes_tx + p.own.as_deref().map_or(0, |o| o.bytes_sent);
        let acc = self.stats.accs.entry(slot).or_insert_with(|| Acc {
            participant_id: pid.clone(),
            last: None,
            send_bps: 0,
            recv_bps: 0,
            loss_in: None,
            loss_out: None,
            rtt_ms: None,
            jitter_ms: None,
            jitter_at: None,
        });
        if acc.participant_id != *pid {
            // The slot was reused by another peer: start over.
            acc.participant_id.clone_from(pid);
            acc.last = None;
            acc.jitter_ms = None;
            acc.jitter_at = None;
        }
        if let Some((at, rx, tx)) = acc.last {
            let over = st.timestamp.saturating_duration_since(at);
            acc.recv_bps = bps(st.peer_bytes_rx.saturating_sub(rx), over);
            acc.send_bps = bps(tx_bytes.saturating_sub(tx), over);
        }
        acc.last = Some((st.timestamp, st.peer_bytes_rx, tx_bytes));
        acc.loss_in = st.ingress_loss_fraction;
        acc.loss_out = egress_loss;
        acc.rtt_ms = rtt.map(|d| d.as_secs_f64() * 1000.0);
    }

    /// `Event::MediaIngressStats` jitter of one of a peer's streams, in
    /// seconds; the largest of one statistics round is kept.
    pub(super) fn on_peer_jitter(&mut self, slot: Slot, jitter_secs: f64, now: Instant) {
        if let Some(acc) = self.stats.accs.get_mut(&slot) {
            let ms = jitter_secs * 1000.0;
            let same_round = acc
                .jitter_at
                .is_some_and(|at| now.saturating_duration_since(at) < super::STATS_INTERVAL / 2);
            acc.jitter_ms = Some(match acc.jitter_ms {
                Some(j) if same_round => j.max(ms),
                _ => ms,
            });
            acc.jitter_at = Some(now);
        }
    }

    /// From the loop's periodic pass: publishes the figures once a second.
    pub(super) fn publish_peer_stats(&mut self, now: Instant) {
        if now.saturating_duration_since(self.stats.last_publish) < PUBLISH_INTERVAL {
            return;
        }
        self.stats.last_publish = now;
        let peers = &self.peers;
        self.stats.accs.retain(|slot, acc| {
            peers
                .get(*slot)
                .is_some_and(|p| p.participant_id == acc.participant_id)
        });
        let mut out = Vec::new();
        for slot in self.peers.slots() {
            let Some(p) = self.peers.get(slot) else {
                continue;
            };
            let acc = self.stats.accs.get(&slot);
            let room = self.rooms.get(&p.room_id);
            let mut tracks = Vec::new();
            let mut receiving = Vec::new();
            if let Some(room) = room {
                for t in room.tracks.values() {
                    if t.publisher() == Some(slot) {
                        tracks.push(TrackFigures {
                            id: t.id.clone(),
                            kind: match t.kind {
                                MediaKind::Audio => "audio",
                                MediaKind::Video => "video",
                            },
                            source: t.source.as_str(),
                            muted: t.muted,
                        });
                    }
                }
                for (i, o) in p.outs.iter().enumerate() {
                    if o.kind != MediaKind::Video {
                        continue;
                    }
                    if let Some(t) = room.tracks.get(&o.track_key) {
                        let layer = t
                            .fanout
                            .forwarder((slot, i as u32))
                            .and_then(|f| f.current())
                            .map(layer_name);
                        receiving.push(ReceivedVideo {
                            track_id: t.id.clone(),
                            layer,
                        });
                    }
                }
            }
            out.push(PeerFigures {
                participant_id: p.participant_id.clone(),
                room_id: p.room_id.to_string(),
                send_bps: acc.map_or(0, |a| a.send_bps),
                recv_bps: acc.map_or(0, |a| a.recv_bps),
                loss_in: acc.and_then(|a| a.loss_in),
                loss_out: acc.and_then(|a| a.loss_out),
                rtt_ms: acc.and_then(|a| a.rtt_ms),
                jitter_ms: acc.and_then(|a| a.jitter_ms),
                tracks,
                receiving,
            });
        }
        self.stats.board.publish(self.index.index(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_from_byte_deltas() {
        assert_eq!(bps(125_000, Duration::from_secs(1)), 1_000_000);
        assert_eq!(bps(125_000, Duration::from_millis(500)), 2_000_000);
        assert_eq!(bps(10, Duration::ZERO), 0);
    }
}
