//! Negotiation: the client offers to publish (permission-checked before
//! str0m sees the SDP), the server offers the room's tracks when they change
//! (the client is the polite peer), answers are applied, tracks are
//! published, unpublished and muted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_sfu::{Fanout, Forwarder, KeyframeLimiter, LevelMeter};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};

use super::Worker;
use super::relay::{Relay, send_ctl};
use super::state::{Origin, OutState, OutTrack, Slot, Sub, Track, forward_kind, kind_str};
use crate::recording::recorder::RecEvent;
use crate::rtc::TrackKey;
use crate::rtc::notice::{MediaNotice, OfferedTrack, PublishedMid, Source};
use crate::rtc::sdp_scan;

impl Worker {
    pub(super) fn on_media_added(
        &mut self,
        slot: Slot,
        mid: Mid,
        kind: MediaKind,
        dir: Direction,
        simulcast: bool,
    ) {
        if !dir.is_receiving() {
            if dir.is_sending() && self.peers.get(slot).is_some_and(|p| p.view.is_some()) {
                self.add_viewer_slot(slot, mid, kind);
            }
            return;
        }
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.published.contains_key(&mid) {
            return;
        }
        let source = p
            .offered_sources
            .get(&mid.to_string())
            .copied()
            .unwrap_or(match kind {
                MediaKind::Audio => Source::Microphone,
                MediaKind::Video => Source::Camera,
            });
        // The SDP pre-scan in `client_offer` refuses most offers that
        // publish without permission; this is the authority, on what str0m
        // actually added (a scan can read an SDP differently).
        let allowed = match source {
            Source::Screen => p.may_screenshare && kind == MediaKind::Video,
            Source::Microphone => p.may_broadcast && kind == MediaKind::Audio,
            Source::Camera => p.may_broadcast && kind == MediaKind::Video,
        };
        if !allowed {
            tracing::warn!(participant = %p.participant_id, %mid, source = source.as_str(), "track refused: no permission to publish it");
            self.counters
                .publish_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            p.send(
                MediaNotice::Error {
                    code: "FORBIDDEN",
                    message: format!(
                        "your role may not publish {} in this room; the track is ignored",
                        source.as_str()
                    ),
                },
                &self.counters,
            );
            return;
        }
        let key = TrackKey(self.next_track);
        self.next_track += self.ctl_links.len().max(1) as u64;
        p.published.insert(mid, key);
        let track = Track {
            key,
            id: format!("{}-{}", p.participant_id, key),
            origin: Origin::Local { slot, mid },
            participant_id: p.participant_id.clone(),
            kind,
            source,
            muted: false,
            simulcast,
            keyframes: KeyframeLimiter::default(),
            rates: Default::default(),
            levels: LevelMeter::default(),
            fanout: Fanout::new(forward_kind(kind)),
        };
        let room_id = p.room_id.clone();
        tracing::info!(participant = %track.participant_id, track = %track.id, kind = kind_str(kind), source = source.as_str(), simulcast, "track published");
        self.counters
            .tracks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.insert_track(&room_id, track);
    }

    /// Adds a track to a room this worker holds — a local publisher's, or a
    /// replica of another worker's — tells the room's local peers and offers
    /// it to them. A local track is replicated to the room's other workers.
    pub(super) fn insert_track(&mut self, room_id: &Arc<str>, track: Track) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.tracks.contains_key(&track.key) {
            return;
        }
        if let Some(rec) = room.recorder.as_ref() {
            rec.track(&track);
        }
        for (_, rec) in &room.restreams {
            rec.track(&track);
        }
        let publisher = track.publisher();
        if publisher.is_some() {
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    &self.counters,
                    w,
                    Relay::TrackAdded {
                        room: room_id.clone(),
                        track: Box::new(track.replica(self.index)),
                    },
                );
            }
        }
        let info = track.info();
        let pid = track.participant_id.clone();
        room.tracks.insert(track.key, track);
        let others: Vec<Slot> = room
            .peers
            .iter()
            .copied()
            .filter(|&s| Some(s) != publisher)
            .collect();
        self.broadcast(room_id, publisher, || MediaNotice::TrackPublished {
            participant_id: pid.clone(),
            track: info.clone(),
        });
        for s in others {
            self.renegotiate(s);
        }
        self.bind_viewers(room_id);
    }

    pub(super) fn unpublish_mid(&mut self, slot: Slot, mid: Mid) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let Some(key) = p.published.remove(&mid) else {
            return;
        };
        let room_id = p.room_id.clone();
        self.remove_track(&room_id, key);
    }

    /// Removes a track (local, or a replica) from a room this worker holds,
    /// closes it for the local subscribers and tells them; a local track's
    /// end is replicated to the room's other workers.
    pub(super) fn remove_track(&mut self, room_id: &Arc<str>, key: TrackKey) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(mut track) = room.tracks.remove(&key) else {
            return;
        };
        for rec in room
            .recorder
            .iter_mut()
            .chain(room.restreams.iter_mut().map(|(_, r)| r))
        {
            rec.forwarders.remove(&key);
            rec.sink.offer(RecEvent::TrackEnded { key });
        }
        let publisher = track.publisher();
        if publisher.is_some() {
            self.counters
                .tracks
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(participant = %track.participant_id, track = %track.id, "track unpublished");
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    &self.counters,
                    w,
                    Relay::TrackRemoved {
                        room: room_id.clone(),
                        key,
                    },
                );
            }
        }
        let peers = room.peers.clone();
        for &s in &peers {
            if let Some(p) = self.peers.get_mut(s) {
                if p.view.is_some() {
                    // A viewer's m-line stays; its forwarder waits for the
                    // next track shown there (`bind_viewers` below).
                    for (i, o) in p.outs.iter_mut().enumerate() {
                        if o.track_key == key {
                            o.track_key = TrackKey::UNBOUND;
                            if let Some(f) = track.fanout.take((s, i as u32)) {
                                p.parked.push((i as u32, f));
                            }
                        }
                    }
                    continue;
                }
                for o in p.outs.iter_mut().filter(|o| o.track_key == key) {
                    o.state = match o.state {
                        OutState::Closed | OutState::ClosingOffered => o.state,
                        _ => OutState::Closing,
                    };
                }
            }
        }
        self.broadcast(room_id, publisher, || MediaNotice::TrackUnpublished {
            participant_id: track.participant_id.clone(),
            track_id: track.id.clone(),
        });
        for s in peers {
            if Some(s) != publisher {
                self.renegotiate(s);
            }
        }
        self.bind_viewers(room_id);
    }

    pub(super) fn with_out(
        &mut self,
        participant_id: &str,
        track_id: &str,
        f: impl FnOnce(&mut OutTrack, &mut Forwarder),
    ) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(room_id) = self.peers.get(slot).map(|p| p.room_id.clone()) else {
            return;
        };
        let Some(track) = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.tracks.values_mut().find(|t| t.id == track_id))
        else {
            return;
        };
        let key = track.key;
        let mut wants_keyframe = false;
        if let Some(p) = self.peers.get_mut(slot)
            && let Some(i) = p.outs.iter().position(|o| o.track_key == key)
            && let Some(forward) = track.fanout.forwarder_mut((slot, i as u32))
        {
            let o = &mut p.outs[i];
            f(o, forward);
            wants_keyframe = o.subscribed && !o.paused;
        }
        if wants_keyframe {
            self.request_keyframe(
                &room_id,
                key,
                KeyframeRequestKind::Pli,
                Instant::now(),
                true,
            );
        }
    }

    pub(super) fn mute(
        &mut self,
        participant_id: &str,
        source: Option<Source>,
        muted: bool,
        by: Option<String>,
    ) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some((room_id, may_broadcast, may_screenshare)) = self
            .peers
            .get(slot)
            .map(|p| (p.room_id.clone(), p.may_broadcast, p.may_screenshare))
        else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        // A source the participant may no longer publish (its role
        // changed) stays muted.
        let may_unmute = |s: Source| match s {
            Source::Screen => may_screenshare,
            Source::Microphone | Source::Camera => may_broadcast,
        };
        let mut changed = Vec::new();
        for t in room.tracks.values_mut() {
            if t.publisher() == Some(slot)
                && source.is_none_or(|s| s == t.source)
                && t.muted != muted
                && (muted || may_unmute(t.source))
            {
                t.muted = muted;
                changed.push((t.id.clone(), t.source));
                for &w in &room.shards {
                    send_ctl(
                        &self.ctl_links,
                        &self.counters,
                        w,
                        Relay::TrackMuted {
                            room: room_id.clone(),
                            key: t.key,
                            muted,
                            by: by.clone(),
                        },
                    );
                }
            }
        }
        for (track_id, src) in changed {
            let by = by.clone();
            self.broadcast(&room_id, None, || MediaNotice::TrackMuted {
                participant_id: participant_id.to_string(),
                track_id: track_id.clone(),
                source: src,
                muted,
                by: by.clone(),
            });
        }
    }

    pub(super) fn client_offer(
        &mut self,
        participant_id: &str,
        sdp: &str,
        tracks: Vec<PublishedMid>,
    ) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.pending_offer.is_some() {
            // Glare: our offer is outstanding; the polite client rolls back.
            tracing::debug!(participant = %participant_id, "ignoring client offer during our own offer");
            return;
        }
        let declared: HashMap<String, Source> =
            tracks.into_iter().map(|t| (t.mid, t.source)).collect();
        let own_mids: Vec<String> = p.outs.iter().map(|o| o.mid.to_string()).collect();
        for line in sdp_scan::sending_lines(sdp) {
            if own_mids.contains(&line.mid) {
                continue;
            }
            let source = declared.get(&line.mid).copied().unwrap_or(match line.kind {
                MediaKind::Audio => Source::Microphone,
                MediaKind::Video => Source::Camera,
            });
            let allowed = match source {
                Source::Screen => p.may_screenshare && line.kind == MediaKind::Video,
                Source::Microphone => p.may_broadcast && line.kind == MediaKind::Audio,
                Source::Camera => p.may_broadcast && line.kind == MediaKind::Video,
            };
            if !allowed {
                let message = match source {
                    Source::Screen => "your role may not share the screen in this room",
                    _ => "your role may not publish camera or microphone (no broadcast permission)",
                };
                tracing::info!(participant = %participant_id, source = source.as_str(), "publish refused");
                p.send(
                    MediaNotice::OfferRejected {
                        code: "FORBIDDEN",
                        message: message.into(),
                    },
                    &self.counters,
                );
                return;
            }
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                p.send(
                    MediaNotice::OfferRejected {
                        code: "BAD_MESSAGE",
                        message: format!("the offer is not valid SDP: {e}"),
                    },
                    &self.counters,
                );
                return;
            }
        };
        p.offered_sources.extend(declared);
        let before = p.rtc.direct_api().local_ice_credentials();
        // The own write path's streams are str0m's again while it answers
        // (`own/`: the answer signals their SSRCs).
        if let Some(own) = &p.own {
            own.declare(&mut p.rtc);
        }
        let accepted = p.rtc.sdp_api().accept_offer(offer);
        if let Some(own) = p.own.as_deref_mut() {
            own.adopt(&mut p.rtc, &p.outs);
        }
        match accepted {
            Ok(answer) => {
                let after = p.rtc.direct_api().local_ice_credentials();
                if after.ufrag != before.ufrag {
                    // The client restarted ICE (a network change) and str0m
                    // answered with new credentials of its choosing: the
                    // routers learn where their ufrag goes.
                    self.by_ufrag.remove(&p.ufrag);
                    self.ufrags.remove(&p.ufrag);
                    self.by_ufrag.insert(after.ufrag.clone(), slot);
                    self.ufrags.insert(&after.ufrag, self.index);
                    p.ufrag = after.ufrag;
                    tracing::info!(participant = %participant_id, "ICE restarted by the client");
                    self.counters
                        .ice_restarts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let sdp = answer.to_sdp_string();
                p.send(MediaNotice::Answer { sdp }, &self.counters);
            }
            Err(e) => {
                tracing::info!(participant = %participant_id, error = %e, "offer refused");
                p.send(
                    MediaNotice::OfferRejected {
                        code: "BAD_MESSAGE",
                        message: format!("the offer could not be accepted: {e}"),
                    },
                    &self.counters,
                );
                return;
            }
        }
        // Mids the client stopped sending are unpublished.
        let still: Vec<String> = sdp_scan::sending_lines(sdp)
            .into_iter()
            .map(|l| l.mid)
            .collect();
        let gone: Vec<Mid> = p
            .published
            .keys()
            .copied()
            .filter(|m| !still.contains(&m.to_string()))
            .collect();
        self.mark_dirty(slot);
        self.poll_peer(slot, Instant::now());
        for mid in gone {
            self.unpublish_mid(slot, mid);
        }
        self.renegotiate(slot);
    }

    pub(super) fn client_answer(&mut self, participant_id: &str, sdp: &str) {
        let Some(&slot) = self.by_participant.get(participant_id) else {
            return;
        };
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let Some(pending) = p.pending_offer.take() else {
            tracing::debug!(participant = %participant_id, "answer without an offer; ignored");
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                p.send(
                    MediaNotice::Error {
                        code: "BAD_MESSAGE",
                        message: format!("the answer is not valid SDP: {e}"),
                    },
                    &self.counters,
                );
                return;
            }
        };
        if let Some(own) = &p.own {
            own.declare(&mut p.rtc);
        }
        let accepted = p.rtc.sdp_api().accept_answer(pending, answer);
        if let Some(own) = p.own.as_deref_mut() {
            own.adopt(&mut p.rtc, &p.outs);
        }
        if let Err(e) = accepted {
            tracing::info!(participant = %participant_id, error = %e, "answer refused");
            p.send(
                MediaNotice::Error {
                    code: "BAD_MESSAGE",
                    message: format!("the answer could not be applied: {e}"),
                },
                &self.counters,
            );
            return;
        }
        let mut newly_active = Vec::new();
        for (i, o) in p.outs.iter_mut().enumerate() {
            o.state = match o.state {
                OutState::Offered => {
                    newly_active.push((o.track_key, i as u32));
                    if o.kind == MediaKind::Video {
                        prepare_video_out(&mut p.rtc, o.mid, p.nack.current());
                    }
                    OutState::Active
                }
                OutState::ClosingOffered => OutState::Closed,
                s => s,
            };
        }
        // Closed m-lines' streams are let go (no more sender reports).
        if let Some(own) = p.own.as_deref_mut() {
            own.adopt(&mut p.rtc, &p.outs);
        }
        let room_id = p.room_id.clone();
        self.mark_dirty(slot);
        if let Some(room) = self.rooms.get_mut(&room_id) {
            for &(key, i) in &newly_active {
                if let Some(t) = room.tracks.get_mut(&key) {
                    t.fanout.set_active((slot, i), true);
                }
            }
        }
        for (key, _) in newly_active {
            self.request_keyframe(
                &room_id,
                key,
                KeyframeRequestKind::Pli,
                Instant::now(),
                true,
            );
        }
        self.renegotiate(slot);
    }

    /// Offers the peer the room's current tracks when they differ from what
    /// it receives, unless an offer is already outstanding.
    pub(super) fn renegotiate(&mut self, slot: Slot) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.pending_offer.is_some() || !p.receives {
            return;
        }
        let Some(room) = self.rooms.get(&p.room_id) else {
            return;
        };
        let mut to_add: Vec<&Track> = room
            .tracks
            .values()
            .filter(|t| t.publisher() != Some(slot) && !p.outs.iter().any(|o| o.track_key == t.key))
            .collect();
        to_add.sort_by_key(|t| t.key);
        let closing: Vec<Mid> = p
            .outs
            .iter()
            .filter(|o| o.state == OutState::Closing)
            .map(|o| o.mid)
            .collect();
        if to_add.is_empty() && closing.is_empty() {
            return;
        }
        if let Some(own) = &p.own {
            own.declare(&mut p.rtc);
        }
        let mut change = p.rtc.sdp_api();
        let mut added = Vec::new();
        for t in &to_add {
            let mid = change.add_media(
                t.kind,
                Direction::SendOnly,
                Some(t.participant_id.clone()),
                Some(t.id.clone()),
                None,
            );
            added.push((mid, t.key, t.kind));
        }
        for mid in &closing {
            change.set_direction(*mid, Direction::Inactive);
        }
        let applied = change.apply();
        if let Some(own) = p.own.as_deref_mut() {
            own.adopt(&mut p.rtc, &p.outs);
        }
        let Some((offer, pending)) = applied else {
            return;
        };
        let mut subscribed: Vec<(TrackKey, Sub)> = Vec::with_capacity(added.len());
        for (mid, key, kind) in added {
            subscribed.push((key, (slot, p.outs.len() as u32)));
            p.outs.push(OutTrack {
                mid,
                track_key: key,
                state: OutState::Offered,
                subscribed: true,
                paused: false,
                kind,
                nacks_seen: 0,
                pt: None,
            });
        }
        for o in p.outs.iter_mut() {
            if o.state == OutState::Closing {
                o.state = OutState::ClosingOffered;
            }
        }
        let tracks: Vec<OfferedTrack> = p
            .outs
            .iter()
            .filter(|o| matches!(o.state, OutState::Offered | OutState::Active))
            .filter_map(|o| {
                let t = room.tracks.get(&o.track_key)?;
                Some(OfferedTrack {
                    mid: o.mid.to_string(),
                    track_id: t.id.clone(),
                    participant_id: t.participant_id.clone(),
                    kind: kind_str(t.kind),
                    source: t.source,
                })
            })
            .collect();
        p.pending_offer = Some(pending);
        p.send(
            MediaNotice::Offer {
                sdp: offer.to_sdp_string(),
                tracks,
            },
            &self.counters,
        );
        // Each offered track gets this subscriber's forwarder now (the
        // client may set preferences before it answers); packets flow once
        // the answer makes it active.
        let room_id = p.room_id.clone();
        if let Some(room) = self.rooms.get_mut(&room_id) {
            for (key, sub) in subscribed {
                if let Some(t) = room.tracks.get_mut(&key) {
                    t.fanout.subscribe(sub);
                }
            }
        }
        self.mark_dirty(slot);
    }
}

/// Sets up an outgoing video stream once it is negotiated; `nack_window`:
/// the peer's (`convene_sfu::NackWindow`).
pub(super) fn prepare_video_out(rtc: &mut str0m::Rtc, mid: Mid, nack_window: Duration) {
    if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        // The bounded per-stream packet cache NACKs are answered from
        // (rewritten packets, as sent).
        set_nack_cache(tx, nack_window);
        // Forwarded video leaves as it arrives, like audio: the publisher
        // already paced it, and str0m's pacer (1.1 x the estimate) held
        // keyframe bursts back for tens of milliseconds. The estimate still
        // comes from TWCC feedback; it drives the layer allocation and, when
        // it falls far below what is sent, whole-frame drops
        // (`allocate_layers`). Probes and padding stay paced.
        tx.set_unpaced(true);
    }
}

/// Sizes the cache of sent packets NACKs are answered from: what was sent
/// in `window`, at most `convene_sfu::nack_cache_packets(window)` packets.
/// It starts empty.
pub(super) fn set_nack_cache(tx: &mut str0m::rtp::StreamTx, window: Duration) {
    tx.set_rtx_cache(convene_sfu::nack_cache_packets(window), window, Some(0.15));
}

impl Worker {
    /// A peer's round trip was measured: its outgoing video's NACK caches
    /// follow its window when that moves (`convene_sfu::NackWindow`).
    pub(super) fn on_rtt(&mut self, slot: Slot, rtt: Duration, now: Instant) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let Some(window) = p.nack.on_rtt(rtt, now) else {
            return;
        };
        if let Some(own) = p.own.as_deref_mut() {
            own.set_nack_window(window);
        }
        for o in &p.outs {
            if o.kind == MediaKind::Video
                && o.state == OutState::Active
                && let Some(tx) = p.rtc.direct_api().stream_tx_by_mid(o.mid, None)
            {
                set_nack_cache(tx, window);
            }
        }
        metrics::counter!("convene_nack_window_changes_total").increment(1);
        tracing::debug!(participant = %p.participant_id, ?rtt, ?window, "NACK window changed");
    }
}
