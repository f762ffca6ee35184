//! Forwarding: an incoming RTP packet becomes one `Outgoing` and is
//! fanned out to every subscriber's `Forwarder` and the recorder; keyframe
//! requests travel to the publisher; every 100 ms deferred requests are
//! released and every 500 ms layers are allocated and speakers detected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use convene_sfu::{
    Decision, Forwarder, KeyframeRoute, Layer, Packet, SteeredTrack, route_keyframe,
};
use str0m::bwe::Bitrate;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::RtpPacket;

use super::Worker;
use super::copies::{Copies, CopyPlan};
use super::relay::{Relay, RelayedRtp, send_ctl};
use super::state::{
    Origin, OutState, Outgoing, PeerTable, Room, RoomRecorder, Slot, Sub, Track, capture_time,
    forward_kind, is_keyframe, media_codec,
};
use crate::recording::recorder::{RecEvent, RecPacket, RecorderSink};
use crate::rtc::MediaCounters;
use crate::rtc::TrackKey;
use crate::rtc::notice::MediaNotice;

impl Worker {
    pub(super) fn forward_rtp(&mut self, slot: Slot, pkt: &RtpPacket, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.rtp_in.fetch_add(1, Relaxed);
        self.counters
            .rtp_bytes_in
            .fetch_add(pkt.payload.len() as u64, Relaxed);
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let (mid, rid) = match p.ssrcs.get(&ssrc) {
            Some(v) => *v,
            None => {
                let Some(rx) = p
                    .rtc
                    .direct_api()
                    .stream_rx(&ssrc)
                    .map(|s| (s.mid(), s.rid()))
                else {
                    return;
                };
                p.ssrcs.insert(ssrc, rx);
                rx
            }
        };
        let Some(&key) = p.published.get(&mid) else {
            return;
        };
        let codec = p
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|pp| pp.pt() == pkt.header.payload_type)
            .map(|pp| pp.spec().codec);
        let Some(codec) = codec else {
            return;
        };
        if let Some(level) = pkt.header.ext_vals.audio_level {
            p.levels.record(level);
        }
        let room_id = p.room_id.clone();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&key) else {
            return;
        };
        tracing::trace!(track = %track.id, seq = *pkt.seq_no, "rtp in");
        if track.muted && track.kind == MediaKind::Audio {
            // A muted microphone still sends DTX comfort noise; nobody needs it.
            return;
        }
        let layer = match rid {
            Some(r) if track.simulcast => Layer::from_rid(r.as_bytes()),
            _ => Layer::F,
        };
        track.rates[layer.index()].record(pkt.payload.len(), now);
        room.counters.rtp_in.fetch_add(1, Relaxed);
        room.counters
            .bytes_in
            .fetch_add(pkt.payload.len() as u64, Relaxed);
        let view = Packet {
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            layer,
            keyframe: track.kind == MediaKind::Video && is_keyframe(codec, &pkt.payload),
            clock_rate: if track.kind == MediaKind::Audio {
                48_000
            } else {
                90_000
            },
            arrival: now,
        };
        let wants_capture =
            room.recorder.is_some() || !room.restreams.is_empty() || !room.shards.is_empty();
        let out = Outgoing {
            key,
            view,
            codec,
            payload: pkt.payload.clone(),
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            capture: if wants_capture {
                capture_time(pkt, view.clock_rate)
            } else {
                None
            },
        };
        let kind = track.kind;
        // The room's other workers fan it out to their own subscribers.
        for &w in &room.shards {
            let relayed = RelayedRtp {
                room: room_id.clone(),
                pkt: out.clone(),
            };
            match self.rtp_links.get(w.index()).map(|l| l.try_send(relayed)) {
                Some(Ok(())) => self.counters.rtp_relayed.fetch_add(1, Relaxed),
                _ => self.counters.relay_dropped.fetch_add(1, Relaxed),
            };
        }
        // The room found above serves the fan-out too (one lookup a packet).
        let need_keyframe = fan_out(
            room,
            kind,
            &mut self.peers,
            &self.counters,
            &mut self.copies,
            &mut self.scratch_sends,
            &out,
            Some(slot),
        );
        if need_keyframe {
            self.request_keyframe(&room_id, key, KeyframeRequestKind::Pli, now, false);
        }
    }

    /// A packet another worker relayed: counted into the track's rates and
    /// audio level here too (layer allocation and active speakers are
    /// computed per worker), then fanned out to this worker's subscribers.
    pub(super) fn on_relayed_rtp(&mut self, r: RelayedRtp) {
        let now = Instant::now();
        let Some(room) = self.rooms.get_mut(&r.room) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&r.pkt.key) else {
            return;
        };
        track.rates[r.pkt.view.layer.index()].record(r.pkt.payload.len(), now);
        if let Some(level) = r.pkt.audio_level {
            track.levels.record(level);
        }
        let kind = track.kind;
        let need_keyframe = fan_out(
            room,
            kind,
            &mut self.peers,
            &self.counters,
            &mut self.copies,
            &mut self.scratch_sends,
            &r.pkt,
            None,
        );
        if need_keyframe {
            self.request_keyframe(&r.room, r.pkt.key, KeyframeRequestKind::Pli, now, false);
        }
    }

    pub(super) fn on_keyframe_request(
        &mut self,
        slot: Slot,
        mid: Mid,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let Some(p) = self.peers.get(slot) else {
            return;
        };
        let Some(o) = p.outs.iter().find(|o| o.mid == mid) else {
            return;
        };
        let key = o.track_key;
        let room_id = p.room_id.clone();
        self.request_keyframe(&room_id, key, kind, now, false);
    }

    /// Asks a track's publisher for a keyframe, at most once per 500 ms
    /// (a request inside the interval is deferred, not lost) unless `force`d
    /// by a new subscriber.
    pub(super) fn request_keyframe(
        &mut self,
        room_id: &Arc<str>,
        key: TrackKey,
        kind: KeyframeRequestKind,
        now: Instant,
        force: bool,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&key) else {
            return;
        };
        let video = track.kind == MediaKind::Video;
        match route_keyframe(
            track.publisher_at(),
            video,
            force,
            &mut track.keyframes,
            now,
        ) {
            KeyframeRoute::Hold => {}
            KeyframeRoute::Relay(worker) => relay_keyframe(
                &self.ctl_links,
                &self.counters,
                worker,
                room_id,
                key,
                kind,
                force,
            ),
            KeyframeRoute::Ask((publisher, mid)) => {
                let simulcast = track.simulcast;
                room.counters
                    .plis
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.send_keyframe_request(publisher, mid, simulcast, kind);
            }
        }
    }

    pub(super) fn send_keyframe_request(
        &mut self,
        publisher: Slot,
        mid: Mid,
        simulcast: bool,
        kind: KeyframeRequestKind,
    ) {
        self.counters
            .plis
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self.peers.get_mut(publisher) {
            let mut api = p.rtc.direct_api();
            if simulcast {
                for rid in ["q", "h", "f"] {
                    if let Some(rx) = api.stream_rx_by_mid(mid, Some(Rid::from(rid))) {
                        rx.request_keyframe(kind);
                    }
                }
            } else if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                rx.request_keyframe(kind);
            }
        }
        self.mark_dirty(publisher);
    }

    /// Every 100 ms: releases deferred keyframe requests and updates each
    /// subscriber's congestion state from its send queues.
    pub(super) fn housekeeping(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_keyframes);
        // Rooms whose last restream ended and that have no peer here (no
        // allocation unless one did).
        let mut untapped: Vec<Arc<str>> = Vec::new();
        for (room_id, room) in self.rooms.iter_mut() {
            // A restream whose thread has ended (stopped, after it closed
            // its ffmpeg while still fed) is dropped here.
            let before = room.restreams.len();
            room.restreams.retain(|(_, r)| {
                !(r.sink.keyframes.is_empty()
                    && matches!(
                        r.sink.keyframes.try_recv(),
                        Err(crossbeam_channel::TryRecvError::Disconnected)
                    ))
            });
            if room.restreams.len() < before && room.peers.is_empty() {
                untapped.push(room_id.clone());
            }
            for rec in room
                .recorder
                .iter()
                .chain(room.restreams.iter().map(|(_, r)| r))
            {
                while let Ok(key) = rec.sink.keyframes.try_recv() {
                    let Some(t) = room.tracks.get_mut(&key) else {
                        continue;
                    };
                    let video = t.kind == MediaKind::Video;
                    match route_keyframe(t.publisher_at(), video, false, &mut t.keyframes, now) {
                        KeyframeRoute::Hold => {}
                        KeyframeRoute::Ask((slot, mid)) => due.push((slot, mid, t.simulcast)),
                        KeyframeRoute::Relay(worker) => relay_keyframe(
                            &self.ctl_links,
                            &self.counters,
                            worker,
                            room_id,
                            key,
                            KeyframeRequestKind::Pli,
                            false,
                        ),
                    }
                }
            }
            for t in room.tracks.values_mut() {
                if let Origin::Local { slot, mid } = t.origin
                    && t.keyframes.poll(now)
                {
                    due.push((slot, mid, t.simulcast));
                }
            }
        }
        for (publisher, mid, simulcast) in due.drain(..) {
            self.send_keyframe_request(publisher, mid, simulcast, KeyframeRequestKind::Pli);
        }
        for room_id in untapped {
            self.drop_room_if_unused(&room_id);
        }
        self.scratch_keyframes = due;
    }

    /// Every 500 ms: shares each subscriber's bandwidth estimate among the
    /// video tracks it receives (simulcast layer caps), and tells str0m's
    /// BWE what to probe for.
    pub(super) fn allocate_layers(&mut self, now: Instant) {
        let mut demands = std::mem::take(&mut self.scratch_demands);
        for slot in self.peers.slots() {
            let Some(p) = self.peers.get_mut(slot) else {
                continue;
            };
            let Some(room) = self.rooms.get_mut(&p.room_id) else {
                continue;
            };
            let mut audio_tracks = 0;
            // (offer order, track): the allocation favours earlier tracks
            // when it must choose, so the order stays put between ticks.
            let mut tracks = Vec::new();
            for Track {
                key, rates, fanout, ..
            } in room.tracks.values_mut()
            {
                let Some(i) = p.outs.iter().position(|o| o.track_key == *key) else {
                    continue;
                };
                let o = &p.outs[i];
                if o.state != OutState::Active || !o.subscribed || o.paused {
                    continue;
                }
                if o.kind == MediaKind::Audio {
                    audio_tracks += 1;
                    continue;
                }
                let layer_bps = [rates[0].bps(now), rates[1].bps(now), rates[2].bps(now)];
                if layer_bps == [0; 3] {
                    continue;
                }
                if let Some(forward) = fanout.forwarder_mut((slot, i as u32)) {
                    tracks.push((i, SteeredTrack { forward, layer_bps }));
                }
            }
            tracks.sort_unstable_by_key(|(i, _)| *i);
            let mut tracks: Vec<SteeredTrack<'_>> = tracks.into_iter().map(|(_, t)| t).collect();
            if tracks.is_empty() {
                continue;
            }
            // Decided and applied to the forwarders in the sfu crate; the
            // estimator's targets are applied here.
            let estimate = match p.own.as_deref() {
                // The own write path's estimator, once feedback reached it.
                Some(own) => (self.bwe && own.estimating).then(|| own.bwe.estimate_bps()),
                None => p.bwe.map(|e| e.as_u64()),
            };
            let plan = p
                .alloc
                .steer(estimate, audio_tracks, now, &mut tracks, &mut demands);
            drop(tracks);
            if plan.changed {
                tracing::debug!(
                    participant = %p.participant_id,
                    estimate_bps = estimate,
                    caps = ?demands.iter().map(|d| d.cap).collect::<Vec<_>>(),
                    "simulcast layer caps changed"
                );
            }
            match p.own.as_deref_mut() {
                Some(own) => {
                    own.bwe.set_desired_bps(now, plan.desired_bps);
                    // A higher desired rate may ask for a probe.
                    if own.next_timeout.is_none_or(|t| t > now) {
                        own.next_timeout = Some(now);
                        self.own_timers.push(std::cmp::Reverse((now, slot)));
                    }
                }
                None => p
                    .rtc
                    .bwe()
                    .set_bitrate(Bitrate::bps(plan.min_bps), Bitrate::bps(plan.desired_bps)),
            }
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(slot);
            }
        }
        self.scratch_demands = demands;
    }

    pub(super) fn speaker_tick(&mut self) {
        let mut changed = Vec::new();
        for (room_id, room) in self.rooms.iter_mut() {
            let local = room.peers.iter().filter_map(|&s| {
                let p = self.peers.get_mut(s)?;
                Some((p.participant_id.clone(), p.levels.take()))
            });
            // Participants of other workers, by the levels of their relayed audio.
            let remote = room
                .tracks
                .values_mut()
                .filter(|t| t.publisher().is_none() && t.kind == MediaKind::Audio)
                .map(|t| (t.participant_id.clone(), t.levels.take()));
            if let Some(speakers) = room.speakers.tick(local.chain(remote)) {
                changed.push(room_id.clone());
                if let (Some(rec), Some(first)) = (room.recorder.as_ref(), speakers.first()) {
                    rec.sink.offer(RecEvent::Speaker {
                        participant_id: first.clone(),
                    });
                }
                for &s in &room.peers {
                    if let Some(p) = self.peers.get(s) {
                        p.send(
                            MediaNotice::ActiveSpeakers {
                                speakers: speakers.clone(),
                            },
                            &self.counters,
                        );
                    }
                }
            }
        }
        // Viewers that follow the speakers are shown the new ones.
        for room_id in changed {
            self.bind_viewers(&room_id);
        }
    }

    /// Starts feeding a restream; like a recording, but several may run.
    pub(super) fn start_restream(&mut self, room_id: &str, id: String, sink: Box<RecorderSink>) {
        self.tap_room(room_id, "restream", sink, |room, rec| {
            room.restreams.retain(|(r, _)| *r != id);
            room.restreams.push((id, rec));
        });
    }

    pub(super) fn start_recording(&mut self, room_id: &str, sink: Box<RecorderSink>) {
        self.tap_room(room_id, "recording", sink, |room, rec| {
            room.recorder = Some(rec);
        });
    }

    /// Taps a room for a recorder or a restream: the sink hears of every
    /// track now, `place` keeps the tap in the room, and every video
    /// track's publisher is asked for a keyframe (a tap starts at one).
    /// A worker without peers of the room holds it for the tap (when all
    /// of the room's peers are on other workers or nodes): their tracks
    /// and packets come over the relay.
    fn tap_room(
        &mut self,
        room_id: &str,
        what: &'static str,
        sink: Box<RecorderSink>,
        place: impl FnOnce(&mut Room, RoomRecorder),
    ) {
        if !self.rooms.contains_key(room_id) {
            tracing::debug!(room = %room_id, what, "room held for a tap");
        }
        let room_id = self.hold_room(room_id, &Arc::default());
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let audio_only = sink.audio_only;
        let rec = RoomRecorder {
            sink,
            forwarders: HashMap::new(),
        };
        let mut video = Vec::new();
        for t in room.tracks.values() {
            rec.track(t);
            if t.kind == MediaKind::Video && !audio_only {
                video.push(t.key);
            }
        }
        place(room, rec);
        let now = Instant::now();
        for key in video {
            self.request_keyframe(&room_id, key, KeyframeRequestKind::Pli, now, true);
        }
    }
}

/// Hands a keyframe request to the worker holding the track's publisher
/// (it limits and counts; see `route_keyframe`).
#[allow(clippy::too_many_arguments)]
fn relay_keyframe(
    links: &[super::relay::CtlTx],
    counters: &MediaCounters,
    worker: crate::rtc::WorkerId,
    room: &Arc<str>,
    key: TrackKey,
    kind: KeyframeRequestKind,
    force: bool,
) {
    send_ctl(
        links,
        counters,
        worker,
        Relay::Keyframe {
            room: room.clone(),
            key,
            kind,
            force,
        },
    );
}

/// Fans a packet of a `kind` track out to the room's recorder and every
/// local subscriber of the track (but `except`, its publisher): the
/// subscribers' copies are queued in `copies`, written at the end of the
/// turn (`copies.rs`). Returns
/// whether a forwarder needs a keyframe of the track. A free function over
/// the worker's parts, so the caller's room borrow serves it (the room is
/// found once per packet).
#[allow(clippy::too_many_arguments)]
fn fan_out(
    room: &mut Room,
    kind: MediaKind,
    peers: &mut PeerTable,
    counters: &MediaCounters,
    copies: &mut Copies,
    sends: &mut Vec<(Sub, u64, u32)>,
    out: &Outgoing,
    except: Option<Slot>,
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let key = out.key;
    let view = &out.view;
    let nackable = kind == MediaKind::Video;
    let mut need_keyframe = false;
    // The recorder and the restreams, each behind its own forwarder.
    for rec in room
        .recorder
        .iter_mut()
        .chain(room.restreams.iter_mut().map(|(_, r)| r))
    {
        if rec.sink.audio_only && kind != MediaKind::Audio {
            continue;
        }
        let fwd = rec
            .forwarders
            .entry(key)
            .or_insert_with(|| Forwarder::new(forward_kind(kind)));
        if let (Decision::Forward { seq, ts }, Some(codec)) =
            (fwd.decide(view), media_codec(out.codec))
        {
            rec.sink.offer(RecEvent::Packet(RecPacket {
                key,
                codec,
                seq,
                ts,
                marker: view.marker,
                payload: out.payload.clone(),
                arrival: view.arrival,
                capture: out.capture,
            }));
        }
        need_keyframe |= fwd.take_keyframe_request();
    }
    let Some(track) = room.tracks.get_mut(&key) else {
        return need_keyframe;
    };
    // Decided in the sfu crate for the track's subscribers; applied here.
    let count = track.fanout.decide(view, sends);
    need_keyframe |= count.keyframe_needed;
    // The packet, kept once for all its copies (at the first).
    let mut packet = None;
    for &((s, i), seq, ts) in sends.iter() {
        if Some(s) == except {
            continue;
        }
        let Some(sub) = peers.get_mut(s) else {
            continue;
        };
        let Some(o) = sub.outs.get_mut(i as usize) else {
            continue;
        };
        if o.track_key != key || o.state != OutState::Active {
            continue;
        }
        let pt = match o.pt {
            Some((c, pt)) if c == out.codec => pt,
            _ => {
                let Some(pt) = sub
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|pp| pp.spec().codec == out.codec)
                    .map(|pp| pp.pt())
                else {
                    continue;
                };
                o.pt = Some((out.codec, pt));
                pt
            }
        };
        let copy = CopyPlan {
            mid: o.mid,
            out: i,
            pt,
            seq,
            ts,
            nackable,
        };
        let packet = *packet.get_or_insert_with(|| copies.packet(out));
        copies.push(s, &mut sub.copies, copy, packet);
    }
    // The counters once per packet, not once per copy.
    if count.dropped > 0 {
        counters
            .rtp_dropped
            .fetch_add(count.dropped as u64, Relaxed);
        room.counters
            .rtp_dropped
            .fetch_add(count.dropped as u64, Relaxed);
    }
    need_keyframe
}
