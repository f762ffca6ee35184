//! A gateway's reading side: one thread per connection that decodes what
//! the other node sends and hands it to the local workers holding the room
//! (packets, track changes, keyframe requests), to the peers this node keeps
//! for the other node's signaling (their commands), or to the participants
//! whose peers the other node keeps (their notices).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use convene_sfu::{Layer, Packet};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::oneshot;

use super::counters::{counted, report};
use super::gateway::{
    GwIn, LinkSink, LocalPlane, Mirror, Pending, RemotePeers, RemoteRooms, locked, tag,
};
use super::link::LinkReader;
use super::wire::{self, LinkMsg};
use crate::rtc::notice::{MediaNotice, PublishedMid, TrackInfo};
use crate::rtc::worker::{Command, NewPeer, Outgoing, Relay, RelayedRtp, RemoteTrack};
use crate::rtc::{RoomCounters, RoomCountersSnapshot, TrackKey, WorkerId};

/// A link that says nothing for this long is dead (pings come every second).
const SILENCE: Duration = Duration::from_secs(5);
/// Rooms one connection may name (a bound on the ingress map).
const MAX_ROOMS: usize = 100_000;
/// How often the counters of hosted peers are reported to the room's node.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The reading side of one connection.
pub(super) struct Ingress {
    reader: LinkReader,
    mirror: Receiver<Mirror>,
    generation: u64,
    cx: Ctx,
    holders: HashMap<Arc<str>, Vec<WorkerId>>,
    published: HashMap<u64, WorkerId>,
    rooms: HashMap<u32, Arc<str>>,
    /// Peers kept here for the other node's signaling, and their worker.
    hosted: HashMap<String, WorkerId>,
    room_counters: HashMap<String, Arc<RoomCounters>>,
    /// What was last reported of each hosted room's counters, and when.
    reported: HashMap<String, RoomCountersSnapshot>,
    last_report: Instant,
    /// What the other node last reported of this node's rooms.
    received: HashMap<String, RoomCountersSnapshot>,
}

impl Ingress {
    pub(super) fn new(
        reader: LinkReader,
        mirror: Receiver<Mirror>,
        generation: u64,
        cx: Ctx,
    ) -> Ingress {
        Ingress {
            reader,
            mirror,
            generation,
            cx,
            holders: HashMap::new(),
            published: HashMap::new(),
            rooms: HashMap::new(),
            hosted: HashMap::new(),
            room_counters: HashMap::new(),
            reported: HashMap::new(),
            last_report: Instant::now(),
            received: HashMap::new(),
        }
    }

    pub(super) fn run(mut self) {
        let _ = self.reader.set_timeout(SILENCE);
        loop {
            let msg = match self.reader.recv() {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "node link read ended");
                    break;
                }
            };
            // What the egress thread noted up to now (drained after the
            // read: an answer to a `Hello` must meet the holder that sent
            // it).
            let mut replaced = false;
            loop {
                match self.mirror.try_recv() {
                    Ok(m) => apply(&mut self.holders, &mut self.published, m),
                    Err(TryRecvError::Empty) => break,
                    // The egress thread replaced or dropped this
                    // connection: its reader ends here.
                    Err(TryRecvError::Disconnected) => {
                        replaced = true;
                        break;
                    }
                }
            }
            if replaced {
                break;
            }
            // Pings come every second, so a read ends at least that often.
            if self.last_report.elapsed() >= REPORT_EVERY {
                self.last_report = Instant::now();
                report(
                    &mut self.room_counters,
                    &mut self.reported,
                    &self.cx.to_egress,
                );
            }
            let msg = match postcard::from_bytes::<LinkMsg<'_>>(msg) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable node link message; link closed");
                    break;
                }
            };
            if let LinkMsg::Counters { room, totals } = &msg {
                counted(&mut self.received, &self.cx.remote_rooms, room, totals);
                continue;
            }
            // Borrowing ends with the message; what is kept is owned.
            let hosted = self.hosted.len();
            let ok = Self::on_msg(
                msg,
                &mut self.rooms,
                &self.holders,
                &self.published,
                &mut self.hosted,
                &mut self.room_counters,
                &self.cx,
            );
            // Most messages are packets: they change neither.
            if !self.hosted.is_empty() && self.cx.info.release.load(Relaxed) {
                self.hand_back();
            }
            if self.hosted.len() != hosted {
                self.cx.info.hosted.store(self.hosted.len(), Relaxed);
            }
            if !ok {
                break;
            }
        }
        self.end();
    }

    /// This node drains: each peer kept here for the other node's
    /// signaling ends, and its participant hears `MEDIA_LOST` through the
    /// room's node, so that its client resumes and gets a peer on a node
    /// that does not drain (before this node stops, not when its link
    /// breaks).
    fn hand_back(&mut self) {
        for (participant_id, w) in self.hosted.drain() {
            Self::command(
                &self.cx,
                w,
                Command::RemovePeer {
                    participant_id: participant_id.clone(),
                },
            );
            let _ = self.cx.to_egress.send_timeout(
                GwIn::Notice {
                    participant_id,
                    notice: draining(),
                },
                Duration::from_secs(1),
            );
        }
    }

    fn end(self) {
        for (pid, w) in &self.hosted {
            if let Some(tx) = self.cx.plane.commands.get(w.index()) {
                let _ = tx.try_send(Command::RemovePeer {
                    participant_id: pid.clone(),
                });
            }
        }
        self.cx.info.hosted.store(0, Relaxed);
        let _ = self.cx.to_egress.send(GwIn::Detached {
            generation: self.generation,
        });
    }

    /// False ends the connection (a message that breaks the protocol).
    #[allow(clippy::too_many_arguments)]
    fn on_msg(
        msg: LinkMsg<'_>,
        rooms: &mut HashMap<u32, Arc<str>>,
        holders: &HashMap<Arc<str>, Vec<WorkerId>>,
        published: &HashMap<u64, WorkerId>,
        hosted: &mut HashMap<String, WorkerId>,
        room_counters: &mut HashMap<String, Arc<RoomCounters>>,
        cx: &Ctx,
    ) -> bool {
        let room_of = |id: u32| rooms.get(&id).cloned();
        let holders_of = |room: &Arc<str>| holders.get(room).map(Vec::as_slice).unwrap_or(&[]);
        match msg {
            // Counted by `run` (it owns what was received before).
            LinkMsg::Ping | LinkMsg::Counters { .. } => {}
            LinkMsg::RoomName { id, room } => {
                if rooms.len() >= MAX_ROOMS && !rooms.contains_key(&id) {
                    tracing::warn!("the other node named too many rooms; link closed");
                    return false;
                }
                rooms.insert(id, Arc::from(room));
            }
            LinkMsg::Hello { room } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                let all = crate::rtc::all_workers(cx.plane.workers());
                cx.plane.tell(all, || Relay::Hello {
                    room: room.clone(),
                    from: cx.gw,
                });
            }
            LinkMsg::Welcome { room } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                let hs = holders_of(&room);
                if hs.is_empty() {
                    let _ = cx.to_egress.try_send(GwIn::Goodbye { room: room.clone() });
                }
                cx.plane.tell(hs.iter().copied(), || Relay::Welcome {
                    room: room.clone(),
                    from: cx.gw,
                });
            }
            LinkMsg::Goodbye { room } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                let all = crate::rtc::all_workers(cx.plane.workers());
                cx.plane.tell(all, || Relay::Goodbye {
                    room: room.clone(),
                    from: cx.gw,
                });
            }
            LinkMsg::TrackAdded { room, track } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                cx.plane.tell(holders_of(&room).iter().copied(), || {
                    let t = track.clone();
                    Relay::TrackAdded {
                        room: room.clone(),
                        track: Box::new(RemoteTrack {
                            key: tag(t.key, cx.gw),
                            home: cx.gw,
                            id: t.id,
                            participant_id: t.participant_id,
                            kind: wire::kind_of(t.video),
                            source: t.source,
                            muted: t.muted,
                            simulcast: t.simulcast,
                        }),
                    }
                });
            }
            LinkMsg::TrackRemoved { room, key } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                cx.plane
                    .tell(holders_of(&room).iter().copied(), || Relay::TrackRemoved {
                        room: room.clone(),
                        key: tag(key, cx.gw),
                    });
            }
            LinkMsg::TrackMuted {
                room,
                key,
                muted,
                by,
            } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                cx.plane
                    .tell(holders_of(&room).iter().copied(), || Relay::TrackMuted {
                        room: room.clone(),
                        key: tag(key, cx.gw),
                        muted,
                        by: by.clone(),
                    });
            }
            LinkMsg::Keyframe {
                room,
                key,
                fir,
                force,
            } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                if let Some(&w) = published.get(&key) {
                    cx.plane.ctl_to(
                        w,
                        Relay::Keyframe {
                            room,
                            key: TrackKey(key),
                            kind: wire::keyframe_kind(fir),
                            force,
                        },
                    );
                }
            }
            LinkMsg::Quality {
                room,
                participant_id,
                quality,
            } => {
                let Some(room) = room_of(room) else {
                    return false;
                };
                let notice = wire::WireNotice::ConnectionQuality {
                    participant_id: String::new(),
                    quality,
                };
                let quality = match notice.into_notice() {
                    MediaNotice::ConnectionQuality { quality, .. } => quality,
                    _ => "good",
                };
                cx.plane
                    .tell(holders_of(&room).iter().copied(), || Relay::Quality {
                        room: room.clone(),
                        participant_id: participant_id.clone(),
                        quality,
                    });
            }
            LinkMsg::Rtp(r) => {
                let Some(room) = rooms.get(&r.room) else {
                    return false;
                };
                let Some(codec) = wire::codec_from_u8(r.codec) else {
                    return true;
                };
                let hs = holders_of(room);
                if hs.is_empty() {
                    return true;
                }
                let pkt = Outgoing {
                    key: tag(r.key, cx.gw),
                    view: Packet {
                        seq: r.seq,
                        ts: r.ts,
                        marker: r.marker,
                        layer: match r.layer {
                            0 => Layer::Q,
                            1 => Layer::H,
                            _ => Layer::F,
                        },
                        keyframe: r.keyframe,
                        clock_rate: r.clock_rate,
                        arrival: Instant::now(),
                    },
                    codec,
                    payload: Arc::from(r.payload),
                    audio_level: r.audio_level,
                    voice_activity: r.voice_activity,
                    capture: r
                        .capture_ns
                        .map(|n| SystemTime::UNIX_EPOCH + Duration::from_nanos(n)),
                };
                for &w in hs {
                    let sent = cx.plane.rtp.get(w.index()).map(|tx| {
                        tx.try_send(RelayedRtp {
                            room: room.clone(),
                            pkt: pkt.clone(),
                        })
                    });
                    if matches!(sent, Some(Ok(()))) {
                        cx.plane.counters.rtp_relayed.fetch_add(1, Relaxed);
                    } else {
                        cx.plane.counters.relay_dropped.fetch_add(1, Relaxed);
                    }
                }
            }
            LinkMsg::AddPeer {
                participant_id,
                room,
                may_broadcast,
                may_screenshare,
                receives,
            } => {
                // A draining node takes no new peer (the other node knows
                // from its heartbeat, but may not have seen it yet).
                if cx.info.release.load(Relaxed) {
                    let _ = cx.to_egress.try_send(GwIn::Notice {
                        participant_id,
                        notice: draining(),
                    });
                    return true;
                }
                let w = crate::rtc::home_worker(&room, cx.plane.workers());
                let counters = room_counters.entry(room.clone()).or_default().clone();
                let new = NewPeer {
                    participant_id: participant_id.clone(),
                    room_id: room,
                    out: Box::new(LinkSink {
                        participant_id: participant_id.clone(),
                        tx: cx.to_egress.clone(),
                    }),
                    may_broadcast,
                    may_screenshare,
                    receives,
                    view: None,
                    room_counters: counters,
                };
                let sent = cx
                    .plane
                    .commands
                    .get(w.index())
                    .map(|tx| tx.try_send(Command::AddPeer(Box::new(new))));
                if matches!(sent, Some(Ok(()))) {
                    hosted.insert(participant_id, w);
                } else {
                    let _ = cx.to_egress.try_send(GwIn::Notice {
                        participant_id,
                        notice: MediaNotice::Error {
                            code: "SERVER_BUSY",
                            message: "the media node is overloaded; try again".into(),
                        },
                    });
                }
            }
            LinkMsg::RemovePeer { participant_id } => {
                if let Some(w) = hosted.remove(&participant_id) {
                    Self::command(cx, w, Command::RemovePeer { participant_id });
                }
            }
            LinkMsg::ClientOffer {
                participant_id,
                sdp,
                tracks,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    let tracks = tracks
                        .into_iter()
                        .map(|(mid, source)| PublishedMid { mid, source })
                        .collect();
                    Self::command(
                        cx,
                        w,
                        Command::ClientOffer {
                            participant_id,
                            sdp,
                            tracks,
                        },
                    );
                }
            }
            LinkMsg::ClientAnswer {
                participant_id,
                sdp,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::ClientAnswer {
                            participant_id,
                            sdp,
                        },
                    );
                }
            }
            LinkMsg::Subscribe {
                participant_id,
                track_id,
                subscribe,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::Subscribe {
                            participant_id,
                            track_id,
                            subscribe,
                        },
                    );
                }
            }
            LinkMsg::Pause {
                participant_id,
                track_id,
                paused,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::Pause {
                            participant_id,
                            track_id,
                            paused,
                        },
                    );
                }
            }
            LinkMsg::Layer {
                participant_id,
                track_id,
                max_layer,
                max_height,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::Layer {
                            participant_id,
                            track_id,
                            max_layer: max_layer
                                .and_then(|l| Layer::ALL.get(usize::from(l)).copied()),
                            max_height,
                        },
                    );
                }
            }
            LinkMsg::Mute {
                participant_id,
                source,
                muted,
                by,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::Mute {
                            participant_id,
                            source,
                            muted,
                            by,
                        },
                    );
                }
            }
            LinkMsg::SetPermissions {
                participant_id,
                may_broadcast,
                may_screenshare,
            } => {
                if let Some(&w) = hosted.get(&participant_id) {
                    Self::command(
                        cx,
                        w,
                        Command::SetPermissions {
                            participant_id,
                            may_broadcast,
                            may_screenshare,
                        },
                    );
                }
            }
            LinkMsg::RoomTracks { req, room } => {
                // Every local worker answers for its own publishers; the
                // answer is gathered off this thread.
                let mut replies = Vec::new();
                for tx in &cx.plane.commands {
                    let (reply, rx) = oneshot::channel();
                    if tx
                        .try_send(Command::RoomTracks {
                            room_id: room.clone(),
                            reply,
                        })
                        .is_ok()
                    {
                        replies.push(rx);
                    }
                }
                let to_egress = cx.to_egress.clone();
                let _ = std::thread::Builder::new()
                    .name("node-link-tracks".into())
                    .spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs(2);
                        let mut tracks: HashMap<String, Vec<TrackInfo>> = HashMap::new();
                        for mut rx in replies {
                            loop {
                                match rx.try_recv() {
                                    Ok(part) => {
                                        for (pid, t) in part {
                                            tracks.entry(pid).or_default().extend(t);
                                        }
                                        break;
                                    }
                                    Err(oneshot::error::TryRecvError::Empty)
                                        if Instant::now() < deadline =>
                                    {
                                        std::thread::sleep(Duration::from_millis(2));
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                        let _ = to_egress.try_send(GwIn::Tracks { req, tracks });
                    });
            }
            LinkMsg::Tracks { req, tracks } => {
                if let Some(reply) = locked(&cx.pending).remove(&req) {
                    let _ = reply.send(
                        tracks
                            .into_iter()
                            .map(|(p, ts)| (p, ts.into_iter().map(wire::info_from_wire).collect()))
                            .collect(),
                    );
                }
            }
            LinkMsg::Notice {
                participant_id,
                notice,
            } => {
                if let Some(sink) = locked(&cx.remote_peers).get(&participant_id) {
                    sink.notify(notice.into_notice());
                }
            }
        }
        true
    }

    fn command(cx: &Ctx, w: WorkerId, c: Command) {
        if let Some(tx) = cx.plane.commands.get(w.index())
            && tx.try_send(c).is_err()
        {
            tracing::warn!(worker = %w, "media worker busy; a command from another node was dropped");
        }
    }
}

/// Applies one change the egress thread noted.
fn apply(
    holders: &mut HashMap<Arc<str>, Vec<WorkerId>>,
    published: &mut HashMap<u64, WorkerId>,
    m: Mirror,
) {
    match m {
        Mirror::Hold(room, w) => {
            let h = holders.entry(room).or_default();
            if !h.contains(&w) {
                h.push(w);
            }
        }
        Mirror::Release(room, w) => {
            if let Some(h) = holders.get_mut(&room) {
                h.retain(|&x| x != w);
                if h.is_empty() {
                    holders.remove(&room);
                }
            }
        }
        Mirror::Published(k, w) => {
            published.insert(k, w);
        }
        Mirror::Unpublished(k) => {
            published.remove(&k);
        }
    }
}

/// What the participant of a peer this draining node hands back hears (its
/// client resumes, as when a node is lost).
fn draining() -> MediaNotice {
    MediaNotice::Error {
        code: "MEDIA_LOST",
        message: "the node that carried this media connection is draining; resume to get a new one"
            .into(),
    }
}

/// What a connection's reader hands things to: the local workers, the
/// gateway's egress thread, and the bookkeeping it shares with it.
pub(super) struct Ctx {
    pub(super) gw: WorkerId,
    pub(super) info: Arc<super::gateway::GatewayInfo>,
    pub(super) plane: LocalPlane,
    pub(super) to_egress: Sender<GwIn>,
    pub(super) remote_peers: RemotePeers,
    pub(super) remote_rooms: RemoteRooms,
    pub(super) pending: Pending,
}
