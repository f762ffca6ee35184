//! A gateway: the media plane's stand-in for one other node. It has a
//! worker number of its own in the relay mesh (after the real workers), so
//! a worker treats the other node like one more worker holding its rooms:
//! it says `Hello`, relays its publishers' packets once, forwards keyframe
//! requests. The gateway carries all of that over the node link, and
//! delivers what the other node sends to the local workers holding the room.
//!
//! Two threads per gateway:
//! - the *egress* thread owns the link's writing half and the bookkeeping:
//!   which local workers hold which room (`holders`), which worker publishes
//!   each local track (`published`), and the peers kept on the other node for
//!   this node's signaling (`remote_peers`);
//! - the *ingress* thread (one per connection) reads, and keeps a copy of
//!   `holders` and `published` that the egress thread updates over a
//!   channel, so a relayed packet takes no lock on either side.
//!
//! Track keys of the other node are tagged with the gateway's number
//! ([`tag`]) so they never collide with local keys; keyframe requests for
//! them leave untagged.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use tokio::sync::oneshot;

use super::link::{LinkReader, LinkWriter};
use super::wire::{self, LinkMsg, WireNotice, WireRtp, WireTrack};
use crate::rtc::notice::{MediaNotice, NoticeSink, TrackInfo};
use crate::rtc::worker::{Command, NewPeer, Relay, RelayedRtp};
use crate::rtc::{MediaCounters, TrackKey, WorkerId};

/// What a gateway's egress thread is asked to do besides the mesh.
pub(crate) enum GwIn {
    /// A command for a peer that this node's signaling keeps on the other
    /// node (its `Member::worker` is the gateway).
    Command(Command),
    /// A notice for a peer this node keeps for the other node's signaling.
    Notice {
        participant_id: String,
        notice: MediaNotice,
    },
    Tracks {
        req: u64,
        tracks: HashMap<String, Vec<TrackInfo>>,
    },
    /// The other node welcomed us into a room no local worker holds any
    /// more: it must stop relaying to us.
    Goodbye {
        room: Arc<str>,
    },
    Attach {
        writer: LinkWriter,
        reader: LinkReader,
        node: String,
    },
    Detached {
        generation: u64,
    },
    /// The counters of the peers this node keeps in the other node's room.
    Counters {
        room: String,
        totals: crate::rtc::RoomCountersSnapshot,
    },
}

/// Commands and notices a gateway queues before refusing more.
pub(crate) const GW_QUEUE: usize = 4096;
const PING_EVERY: Duration = Duration::from_secs(1);

const TAG_SHIFT: u32 = 56;

/// The key a track of the other node has here.
pub fn tag(key: u64, gw: WorkerId) -> TrackKey {
    TrackKey((key & ((1 << TAG_SHIFT) - 1)) | ((u64::from(gw.as_u8()) + 1) << TAG_SHIFT))
}

/// The other node's own key of a track tagged by [`tag`].
pub fn untag(key: TrackKey) -> u64 {
    key.0 & ((1 << TAG_SHIFT) - 1)
}

/// What the ingress thread needs of the local media plane.
#[derive(Clone)]
pub(crate) struct LocalPlane {
    pub(crate) commands: Vec<Sender<Command>>,
    pub(crate) rtp: Vec<Sender<RelayedRtp>>,
    pub(crate) ctl: Vec<crate::rtc::worker::CtlTx>,
    pub(crate) counters: Arc<MediaCounters>,
}

impl LocalPlane {
    pub(super) fn workers(&self) -> usize {
        self.commands.len()
    }

    pub(super) fn ctl_to(&self, w: WorkerId, m: Relay) {
        crate::rtc::worker::send_ctl(&self.ctl, &self.counters, w, m);
    }

    /// Sends each of `workers` the message `make` builds.
    pub(super) fn tell(
        &self,
        workers: impl IntoIterator<Item = WorkerId>,
        make: impl Fn() -> Relay,
    ) {
        for w in workers {
            self.ctl_to(w, make());
        }
    }
}

/// Changes to the ingress thread's copy of the bookkeeping.
pub(super) enum Mirror {
    Hold(Arc<str>, WorkerId),
    Release(Arc<str>, WorkerId),
    Published(u64, WorkerId),
    Unpublished(u64),
}

/// Peers kept on the other node for this node's signaling, by participant:
/// where their notices go. Locked for notices and joins, never per packet.
pub(super) type RemotePeers = Arc<Mutex<HashMap<String, Box<dyn NoticeSink>>>>;
/// The counters of this node's rooms with peers kept on the other node
/// (what it reports of them is added there).
pub(super) type RemoteRooms = Arc<Mutex<HashMap<String, Arc<crate::rtc::RoomCounters>>>>;
pub(super) type Pending =
    Arc<Mutex<HashMap<u64, oneshot::Sender<HashMap<String, Vec<TrackInfo>>>>>>;

pub(super) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Where a peer kept here for another node's signaling sends its notices.
pub(super) struct LinkSink {
    pub(super) participant_id: String,
    pub(super) tx: Sender<GwIn>,
}

impl NoticeSink for LinkSink {
    fn notify(&self, notice: MediaNotice) -> bool {
        self.tx
            .try_send(GwIn::Notice {
                participant_id: self.participant_id.clone(),
                notice,
            })
            .is_ok()
    }
}

fn media_lost() -> MediaNotice {
    MediaNotice::Error {
        code: "MEDIA_LOST",
        message: "the node that carried this media connection is gone; resume to get a new one"
            .into(),
    }
}

/// The public side of one gateway: the mesh number, the node it stands for
/// and whether its link is up.
pub(crate) struct GatewayInfo {
    pub id: WorkerId,
    pub tx: Sender<GwIn>,
    pub node: Mutex<Option<String>>,
    pub up: std::sync::atomic::AtomicBool,
    /// This node drains: the peers it keeps for the other node's
    /// signaling are handed back (`MEDIA_MOVED`) and no new one is taken.
    pub release: std::sync::atomic::AtomicBool,
    /// Peers kept here for the other node's signaling now.
    pub hosted: std::sync::atomic::AtomicUsize,
}

impl GatewayInfo {
    pub(crate) fn new(id: WorkerId, tx: Sender<GwIn>) -> GatewayInfo {
        GatewayInfo {
            id,
            tx,
            node: Mutex::new(None),
            up: std::sync::atomic::AtomicBool::new(false),
            release: std::sync::atomic::AtomicBool::new(false),
            hosted: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

pub(crate) struct Egress {
    pub(crate) info: Arc<GatewayInfo>,
    pub(crate) rtp_rx: Receiver<RelayedRtp>,
    pub(crate) ctl_rx: Receiver<Relay>,
    pub(crate) gw_rx: Receiver<GwIn>,
    pub(crate) plane: LocalPlane,
    pub(crate) stop: Arc<std::sync::atomic::AtomicBool>,
}

struct State {
    info: Arc<GatewayInfo>,
    plane: LocalPlane,
    writer: Option<LinkWriter>,
    generation: u64,
    mirror: Option<Sender<Mirror>>,
    holders: HashMap<Arc<str>, Vec<WorkerId>>,
    published: HashMap<u64, WorkerId>,
    room_ids: HashMap<Arc<str>, u32>,
    remote_peers: RemotePeers,
    remote_rooms: RemoteRooms,
    pending: Pending,
    next_req: u64,
    buf: Vec<u8>,
    last_sent: Instant,
}

pub(crate) fn run(e: Egress) {
    let mut s = State {
        info: e.info,
        plane: e.plane,
        writer: None,
        generation: 0,
        mirror: None,
        holders: HashMap::new(),
        published: HashMap::new(),
        room_ids: HashMap::new(),
        remote_peers: Arc::default(),
        remote_rooms: Arc::default(),
        pending: Arc::default(),
        next_req: 1,
        buf: Vec::with_capacity(64 * 1024),
        last_sent: Instant::now(),
    };
    while !e.stop.load(Relaxed) {
        select! {
            recv(e.gw_rx) -> m => match m {
                Ok(m) => s.on_gw(m),
                Err(_) => break,
            },
            recv(e.ctl_rx) -> m => if let Ok(m) = m { s.on_ctl(m) },
            recv(e.rtp_rx) -> m => if let Ok(m) = m { s.on_rtp(m) },
            default(Duration::from_millis(200)) => {},
        }
        if s.writer.is_some() {
            if s.last_sent.elapsed() >= PING_EVERY {
                s.send(&LinkMsg::Ping);
            }
            if e.rtp_rx.is_empty()
                && e.ctl_rx.is_empty()
                && let Some(w) = s.writer.as_mut()
                && w.flush().is_err()
            {
                s.down("the link's connection failed");
            }
        }
    }
    s.down("the media plane stops");
}

impl State {
    fn gw(&self) -> WorkerId {
        self.info.id
    }

    fn send(&mut self, m: &LinkMsg<'_>) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        self.buf.clear();
        let ok = match postcard::to_extend(m, std::mem::take(&mut self.buf)) {
            Ok(b) => {
                self.buf = b;
                w.send(&self.buf).is_ok()
            }
            Err(_) => true,
        };
        self.last_sent = Instant::now();
        if !ok {
            self.down("writing to the link failed");
        }
    }

    /// The connection's number for a room, named on first use.
    fn room_id(&mut self, room: &Arc<str>) -> u32 {
        if let Some(&id) = self.room_ids.get(room) {
            return id;
        }
        let id = self.room_ids.len() as u32;
        self.room_ids.insert(room.clone(), id);
        self.send(&LinkMsg::RoomName {
            id,
            room: room.to_string(),
        });
        id
    }

    fn mirror(&self, m: Mirror) {
        if let Some(tx) = &self.mirror {
            let _ = tx.send(m);
        }
    }

    fn hold(&mut self, room: &Arc<str>, w: WorkerId) {
        let h = self.holders.entry(room.clone()).or_default();
        if !h.contains(&w) {
            h.push(w);
            self.mirror(Mirror::Hold(room.clone(), w));
        }
    }

    fn on_ctl(&mut self, m: Relay) {
        match m {
            Relay::Hello { room, from } => {
                self.hold(&room, from);
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::Hello { room: id });
                }
            }
            Relay::Welcome { room, from } => {
                self.hold(&room, from);
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::Welcome { room: id });
                }
            }
            Relay::Goodbye { room, from } => {
                let empty = match self.holders.get_mut(&room) {
                    Some(h) => {
                        h.retain(|&w| w != from);
                        h.is_empty()
                    }
                    None => true,
                };
                self.mirror(Mirror::Release(room.clone(), from));
                if empty {
                    self.holders.remove(&room);
                    if self.writer.is_some() {
                        let id = self.room_id(&room);
                        self.send(&LinkMsg::Goodbye { room: id });
                    }
                }
            }
            Relay::TrackAdded { room, track } => {
                self.published.insert(track.key.0, track.home);
                self.mirror(Mirror::Published(track.key.0, track.home));
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    let t = *track;
                    self.send(&LinkMsg::TrackAdded {
                        room: id,
                        track: WireTrack {
                            key: t.key.0,
                            id: t.id,
                            participant_id: t.participant_id,
                            video: t.kind == str0m::media::MediaKind::Video,
                            source: t.source,
                            muted: t.muted,
                            simulcast: t.simulcast,
                        },
                    });
                }
            }
            Relay::TrackRemoved { room, key } => {
                self.published.remove(&key.0);
                self.mirror(Mirror::Unpublished(key.0));
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::TrackRemoved {
                        room: id,
                        key: key.0,
                    });
                }
            }
            Relay::TrackMuted {
                room,
                key,
                muted,
                by,
            } => {
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::TrackMuted {
                        room: id,
                        key: key.0,
                        muted,
                        by,
                    });
                }
            }
            Relay::Keyframe {
                room,
                key,
                kind,
                force,
            } => {
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::Keyframe {
                        room: id,
                        key: untag(key),
                        fir: kind == str0m::media::KeyframeRequestKind::Fir,
                        force,
                    });
                }
            }
            Relay::Quality {
                room,
                participant_id,
                quality,
            } => {
                if self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::Quality {
                        room: id,
                        participant_id,
                        quality: quality.into(),
                    });
                }
            }
        }
    }

    fn on_rtp(&mut self, r: RelayedRtp) {
        if self.writer.is_none() {
            return;
        }
        let room = self.room_id(&r.room);
        let p = &r.pkt;
        let capture_ns = p
            .capture
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        self.send(&LinkMsg::Rtp(WireRtp {
            room,
            key: p.key.0,
            seq: p.view.seq,
            ts: p.view.ts,
            marker: p.view.marker,
            layer: p.view.layer as u8,
            keyframe: p.view.keyframe,
            clock_rate: p.view.clock_rate,
            codec: wire::codec_to_u8(p.codec),
            payload: &p.payload,
            audio_level: p.audio_level,
            voice_activity: p.voice_activity,
            capture_ns,
        }));
    }

    fn on_gw(&mut self, m: GwIn) {
        match m {
            GwIn::Command(c) => self.on_command(c),
            GwIn::Notice {
                participant_id,
                notice,
            } => self.send(&LinkMsg::Notice {
                participant_id,
                notice: WireNotice::from_notice(notice),
            }),
            GwIn::Tracks { req, tracks } => self.send(&LinkMsg::Tracks {
                req,
                tracks: wire::tracks_to_wire(tracks),
            }),
            GwIn::Goodbye { room } => {
                if !self.holders.contains_key(&room) && self.writer.is_some() {
                    let id = self.room_id(&room);
                    self.send(&LinkMsg::Goodbye { room: id });
                }
            }
            GwIn::Attach {
                writer,
                reader,
                node,
            } => self.attach(writer, reader, node),
            GwIn::Detached { generation } => {
                if generation == self.generation {
                    self.down("the other node closed the link");
                }
            }
            GwIn::Counters { room, totals } => self.send(&LinkMsg::Counters { room, totals }),
        }
    }

    fn on_command(&mut self, c: Command) {
        let msg = match c {
            Command::AddPeer(new) => {
                let NewPeer {
                    participant_id,
                    room_id,
                    out,
                    may_broadcast,
                    may_screenshare,
                    receives,
                    room_counters,
                    ..
                } = *new;
                if self.writer.is_none() {
                    out.notify(media_lost());
                    return;
                }
                locked(&self.remote_peers).insert(participant_id.clone(), out);
                locked(&self.remote_rooms).insert(room_id.clone(), room_counters);
                LinkMsg::AddPeer {
                    participant_id,
                    room: room_id,
                    may_broadcast,
                    may_screenshare,
                    receives,
                }
            }
            Command::RemovePeer { participant_id } => {
                locked(&self.remote_peers).remove(&participant_id);
                LinkMsg::RemovePeer { participant_id }
            }
            Command::ClientOffer {
                participant_id,
                sdp,
                tracks,
            } => LinkMsg::ClientOffer {
                participant_id,
                sdp,
                tracks: tracks.into_iter().map(|t| (t.mid, t.source)).collect(),
            },
            Command::ClientAnswer {
                participant_id,
                sdp,
            } => LinkMsg::ClientAnswer {
                participant_id,
                sdp,
            },
            Command::Subscribe {
                participant_id,
                track_id,
                subscribe,
            } => LinkMsg::Subscribe {
                participant_id,
                track_id,
                subscribe,
            },
            Command::Pause {
                participant_id,
                track_id,
                paused,
            } => LinkMsg::Pause {
                participant_id,
                track_id,
                paused,
            },
            Command::Layer {
                participant_id,
                track_id,
                max_layer,
                max_height,
            } => LinkMsg::Layer {
                participant_id,
                track_id,
                max_layer: max_layer.map(|l| l as u8),
                max_height,
            },
            Command::Mute {
                participant_id,
                source,
                muted,
                by,
            } => LinkMsg::Mute {
                participant_id,
                source,
                muted,
                by,
            },
            Command::SetPermissions {
                participant_id,
                may_broadcast,
                may_screenshare,
            } => LinkMsg::SetPermissions {
                participant_id,
                may_broadcast,
                may_screenshare,
            },
            Command::RoomTracks { room_id, reply } => {
                if self.writer.is_none() {
                    let _ = reply.send(HashMap::new());
                    return;
                }
                let req = self.next_req;
                self.next_req += 1;
                locked(&self.pending).insert(req, reply);
                LinkMsg::RoomTracks { req, room: room_id }
            }
            Command::Ping { reply } => {
                let _ = reply.send(());
                return;
            }
            Command::StartRecording { room_id, .. }
            | Command::StopRecording { room_id }
            | Command::StartRestream { room_id, .. } => {
                tracing::warn!(room = %room_id, "a recording or restream command reached a node gateway; ignored");
                return;
            }
        };
        self.send(&msg);
    }

    fn attach(&mut self, writer: LinkWriter, reader: LinkReader, node: String) {
        if self.writer.is_some() {
            self.down("a new connection from the same node replaces this one");
        }
        self.generation += 1;
        let (mirror_tx, mirror_rx) = crossbeam_channel::unbounded();
        for (room, ws) in &self.holders {
            for &w in ws {
                let _ = mirror_tx.send(Mirror::Hold(room.clone(), w));
            }
        }
        for (&k, &w) in &self.published {
            let _ = mirror_tx.send(Mirror::Published(k, w));
        }
        self.mirror = Some(mirror_tx);
        self.writer = Some(writer);
        *locked(&self.info.node) = Some(node.clone());
        let ingress = super::ingress::Ingress::new(
            reader,
            mirror_rx,
            self.generation,
            super::ingress::Ctx {
                gw: self.gw(),
                info: self.info.clone(),
                plane: self.plane.clone(),
                to_egress: self.info.tx.clone(),
                remote_peers: self.remote_peers.clone(),
                remote_rooms: self.remote_rooms.clone(),
                pending: self.pending.clone(),
            },
        );
        let spawned = std::thread::Builder::new()
            .name(format!("node-link-{}", self.gw()))
            .spawn(move || ingress.run());
        if spawned.is_err() {
            self.down("cannot start the link's reading thread");
            return;
        }
        self.info.up.store(true, Relaxed);
        tracing::info!(%node, gateway = %self.gw(), "node link up");
        metrics::gauge!("convene_node_links_up").increment(1.0);
        // The other node learns the rooms we hold (its holders welcome us).
        let rooms: Vec<Arc<str>> = self.holders.keys().cloned().collect();
        for room in rooms {
            let id = self.room_id(&room);
            self.send(&LinkMsg::Hello { room: id });
        }
    }

    /// The link is gone: local workers forget the other node's tracks of
    /// every room, and the peers kept there are lost (their participants
    /// hear `MEDIA_LOST` and resume, which places them again).
    fn down(&mut self, why: &str) {
        let Some(w) = self.writer.take() else {
            return;
        };
        w.shutdown();
        self.mirror = None;
        self.room_ids.clear();
        self.info.up.store(false, Relaxed);
        metrics::gauge!("convene_node_links_up").decrement(1.0);
        let node = locked(&self.info.node).clone().unwrap_or_default();
        tracing::warn!(%node, gateway = %self.gw(), why, "node link down");
        for (room, ws) in &self.holders {
            self.plane.tell(ws.iter().copied(), || Relay::Goodbye {
                room: room.clone(),
                from: self.info.id,
            });
        }
        locked(&self.remote_rooms).clear();
        let lost: Vec<(String, Box<dyn NoticeSink>)> = locked(&self.remote_peers).drain().collect();
        for (pid, sink) in lost {
            tracing::info!(participant = %pid, %node, "media kept on a node that is gone");
            sink.notify(media_lost());
        }
        locked(&self.pending).clear();
    }
}

/// A gateway's mesh channels: bounded like a worker's, but smaller (a
/// gateway only forwards).
pub(crate) fn channels() -> (Sender<GwIn>, Receiver<GwIn>) {
    bounded(GW_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_keys_never_meet_local_ones_and_come_back_untagged() {
        let gw = WorkerId::from_index(3).unwrap();
        let k = tag(41, gw);
        assert_ne!(k, TrackKey(41));
        assert_eq!(untag(k), 41);
        assert_ne!(tag(41, WorkerId::from_index(4).unwrap()), k);
        assert!(k.0 > 1 << 56);
    }
}
