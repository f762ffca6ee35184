//! The cross-worker relay: a room held by several workers exchanges its
//! publishers' packets (`RelayedRtp`, bounded) and track changes, keyframe
//! requests and quality (`Relay`, the control channel) over the `Mesh`.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use str0m::media::{KeyframeRequestKind, MediaKind};

use super::Worker;
use super::state::{Origin, Outgoing, Track};
use crate::rtc::MediaCounters;
use crate::rtc::TrackKey;
use crate::rtc::WorkerId;
use crate::rtc::notice::{MediaNotice, Source};

/// A track as replicated to another worker.
pub(crate) struct RemoteTrack {
    pub(crate) key: TrackKey,
    pub(crate) home: WorkerId,
    pub(crate) id: String,
    pub(crate) participant_id: String,
    pub(crate) kind: MediaKind,
    pub(crate) source: Source,
    pub(crate) muted: bool,
    pub(crate) simulcast: bool,
}

/// A publisher's packet handed to another worker holding its room.
pub(crate) struct RelayedRtp {
    pub(crate) room: Arc<str>,
    pub(crate) pkt: Outgoing,
}

/// Control messages between workers holding the same room.
pub(crate) enum Relay {
    /// `from` now holds peers of the room: those holding it answer
    /// `Welcome` and send their tracks.
    Hello {
        room: Arc<str>,
        from: WorkerId,
    },
    Welcome {
        room: Arc<str>,
        from: WorkerId,
    },
    /// `from` no longer holds the room.
    Goodbye {
        room: Arc<str>,
        from: WorkerId,
    },
    TrackAdded {
        room: Arc<str>,
        track: Box<RemoteTrack>,
    },
    TrackRemoved {
        room: Arc<str>,
        key: TrackKey,
    },
    TrackMuted {
        room: Arc<str>,
        key: TrackKey,
        muted: bool,
        by: Option<String>,
    },
    /// For the worker publishing the track.
    Keyframe {
        room: Arc<str>,
        key: TrackKey,
        kind: KeyframeRequestKind,
        force: bool,
    },
    Quality {
        room: Arc<str>,
        participant_id: String,
        quality: &'static str,
    },
}

/// Relayed packets a worker queues before further ones are dropped (and
/// counted): about 100 ms of a busy worker's input.
pub(super) const RELAY_QUEUE: usize = 8192;

/// Control messages a worker queues before further ones are dropped (and
/// counted).
pub(super) const CTL_QUEUE: usize = 65_536;

/// A gateway's control queue (`rtc::nodes::gateway`).
const GATEWAY_CTL_QUEUE: usize = 8192;

/// The sending end of a mesh member's control queue, with its bound.
///
/// The queue takes memory as messages wait in it, not for its bound: a
/// preallocated queue of [`CTL_QUEUE`] slots held ~4.6 MB resident per
/// worker (and a server runs one worker per core) for a queue that is
/// nearly always empty. The bound is kept by looking at the queue's length
/// before a send, so concurrent senders can overshoot it by one message
/// each; what it guards against, a stuck worker, is still met.
#[derive(Clone)]
pub(crate) struct CtlTx {
    tx: Sender<Relay>,
    bound: usize,
}

impl CtlTx {
    fn new(bound: usize) -> (CtlTx, Receiver<Relay>) {
        let (tx, rx) = unbounded();
        (CtlTx { tx, bound }, rx)
    }

    /// Queues `m` without waiting. `false` when the queue already holds its
    /// bound (`m` is dropped) or its worker has stopped.
    fn try_send(&self, m: Relay) -> bool {
        self.tx.len() < self.bound && self.tx.try_send(m).is_ok()
    }

    /// Whether the queue holds its bound.
    fn is_full(&self) -> bool {
        self.tx.len() >= self.bound
    }
}

/// The channels between all workers, made once by the media plane.
pub struct Mesh {
    pub(super) rtp: Vec<(Sender<RelayedRtp>, Receiver<RelayedRtp>)>,
    pub(super) ctl: Vec<(CtlTx, Receiver<Relay>)>,
}

impl Mesh {
    pub fn new(workers: usize) -> Mesh {
        Mesh::with_gateways(workers, 0)
    }

    /// `workers` workers, then `gateways` members standing for other nodes
    /// (`rtc::nodes`), whose control queues are smaller: a gateway only
    /// forwards.
    pub fn with_gateways(workers: usize, gateways: usize) -> Mesh {
        Mesh {
            rtp: (0..workers + gateways)
                .map(|_| bounded(RELAY_QUEUE))
                .collect(),
            // Control messages follow signaling (joins, publishes, mutes),
            // never packets: far fewer than the bound unless a worker is
            // stuck, and then dropping (counted) beats unbounded memory.
            ctl: (0..workers + gateways)
                .map(|i| {
                    CtlTx::new(if i < workers {
                        CTL_QUEUE
                    } else {
                        GATEWAY_CTL_QUEUE
                    })
                })
                .collect(),
        }
    }

    /// A gateway's receivers (member `index` of the mesh).
    pub(crate) fn receivers(&self, index: usize) -> (Receiver<RelayedRtp>, Receiver<Relay>) {
        (self.rtp[index].1.clone(), self.ctl[index].1.clone())
    }

    /// Senders to the first `workers` members (the real workers).
    pub(crate) fn worker_senders(&self, workers: usize) -> (Vec<Sender<RelayedRtp>>, Vec<CtlTx>) {
        (
            self.rtp
                .iter()
                .take(workers)
                .map(|(tx, _)| tx.clone())
                .collect(),
            self.ctl
                .iter()
                .take(workers)
                .map(|(tx, _)| tx.clone())
                .collect(),
        )
    }

    /// Worker `index`'s ends: senders to every worker, its own receivers.
    pub fn links(&self, index: WorkerId) -> Links {
        Links {
            rtp: self.rtp.iter().map(|(tx, _)| tx.clone()).collect(),
            ctl: self.ctl.iter().map(|(tx, _)| tx.clone()).collect(),
            rtp_rx: self.rtp[index.index()].1.clone(),
            ctl_rx: self.ctl[index.index()].1.clone(),
        }
    }
}

/// One worker's ends of the [`Mesh`].
pub struct Links {
    pub(super) rtp: Vec<Sender<RelayedRtp>>,
    pub(super) ctl: Vec<CtlTx>,
    pub(super) rtp_rx: Receiver<RelayedRtp>,
    pub(super) ctl_rx: Receiver<Relay>,
}

/// Queues a control message for worker `to` without waiting. The queue is
/// bounded ([`CTL_QUEUE`]); a full one drops the message, counts it
/// (`ctl_dropped`) and says so: a replica may then be out of date until the
/// room's next change. Sending to a stopped worker fails silently (nobody
/// needs the message then).
pub(crate) fn send_ctl(links: &[CtlTx], counters: &MediaCounters, to: WorkerId, m: Relay) {
    if let Some(l) = links.get(to.index())
        && !l.try_send(m)
        && l.is_full()
    {
        counters
            .ctl_dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            worker = %to,
            "media worker control queue full; a message was dropped"
        );
    }
}

impl Worker {
    /// Notes that worker `from` holds the room too and sends it this
    /// worker's tracks of it (both sides do, on `Hello` and on `Welcome`: a
    /// track published between the two would otherwise reach one side
    /// only; a track already known is ignored). False when this worker
    /// does not hold the room.
    pub(super) fn add_shard(&mut self, room: &Arc<str>, from: WorkerId) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        if !r.shards.contains(&from) {
            r.shards.push(from);
        }
        for t in r.tracks.values().filter(|t| t.publisher().is_some()) {
            send_ctl(
                &self.ctl_links,
                &self.counters,
                from,
                Relay::TrackAdded {
                    room: room.clone(),
                    track: Box::new(t.replica(self.index)),
                },
            );
        }
        true
    }

    /// A control message from another worker holding (or joining) a room.
    pub(super) fn on_relay(&mut self, m: Relay) {
        match m {
            Relay::Hello { room, from } => {
                if self.add_shard(&room, from) {
                    send_ctl(
                        &self.ctl_links,
                        &self.counters,
                        from,
                        Relay::Welcome {
                            room: room.clone(),
                            from: self.index,
                        },
                    );
                }
            }
            // Our tracks go there too. If the room has left this worker
            // since its `Hello`, `from` must stop relaying to it.
            Relay::Welcome { room, from } => {
                if !self.add_shard(&room, from) {
                    send_ctl(
                        &self.ctl_links,
                        &self.counters,
                        from,
                        Relay::Goodbye {
                            room,
                            from: self.index,
                        },
                    );
                }
            }
            Relay::Goodbye { room, from } => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.shards.retain(|&w| w != from);
                let gone: Vec<TrackKey> = r
                    .tracks
                    .values()
                    .filter(|t| matches!(t.origin, Origin::Remote { worker } if worker == from))
                    .map(|t| t.key)
                    .collect();
                for key in gone {
                    self.remove_track(&room, key);
                }
            }
            Relay::TrackAdded { room, track } => {
                self.insert_track(&room, Track::from_replica(*track));
            }
            Relay::TrackRemoved { room, key } => self.remove_track(&room, key),
            Relay::TrackMuted {
                room,
                key,
                muted,
                by,
            } => {
                let Some(t) = self
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.tracks.get_mut(&key))
                else {
                    return;
                };
                t.muted = muted;
                let (pid, track_id, source) = (t.participant_id.clone(), t.id.clone(), t.source);
                self.broadcast(&room, None, || MediaNotice::TrackMuted {
                    participant_id: pid.clone(),
                    track_id: track_id.clone(),
                    source,
                    muted,
                    by: by.clone(),
                });
            }
            Relay::Keyframe {
                room,
                key,
                kind,
                force,
            } => self.request_keyframe(&room, key, kind, Instant::now(), force),
            Relay::Quality {
                room,
                participant_id,
                quality,
            } => self.broadcast(&room, None, || MediaNotice::ConnectionQuality {
                participant_id: participant_id.clone(),
                quality,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_control_queue_drops_and_counts_instead_of_growing() {
        let (tx, rx) = CtlTx::new(2);
        let links = vec![tx];
        let counters = MediaCounters::default();
        let hello = || Relay::Hello {
            room: Arc::from("r"),
            from: WorkerId::from_index(1).unwrap(),
        };
        for _ in 0..5 {
            send_ctl(&links, &counters, WorkerId::default(), hello());
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(
            counters
                .ctl_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        // A worker that does not exist: nothing sent, nothing counted.
        send_ctl(&links, &counters, WorkerId::from_index(7).unwrap(), hello());
        assert_eq!(
            counters
                .ctl_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        // A worker that stopped: nothing counted either.
        drop(rx);
        send_ctl(&links, &counters, WorkerId::default(), hello());
        assert_eq!(
            counters
                .ctl_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        // Mesh queues are bounded: the packet queues by their slots, the
        // control queues by their length (they hold no slots while empty).
        let mesh = Mesh::with_gateways(2, 1);
        assert_eq!(mesh.ctl[0].0.bound, CTL_QUEUE);
        assert_eq!(mesh.ctl[2].0.bound, GATEWAY_CTL_QUEUE);
        assert_eq!(mesh.ctl[0].0.tx.capacity(), None);
        assert_eq!(mesh.rtp[1].0.capacity(), Some(RELAY_QUEUE));
    }
}
