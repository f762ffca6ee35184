//! Peer lifecycle: a participant's peer connection is built (one str0m
//! `Rtc`, ICE-lite, RTP mode, the worker's DTLS certificate), joins its
//! room, is told of the room's tracks, and is torn down; connection quality
//! and room-wide notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use convene_sfu::{Allocator, LevelMeter};
use str0m::bwe::Bitrate;
use str0m::net::Protocol;
use str0m::{IceConnectionState, IceCreds, Output, Rtc};

use super::relay::{Relay, send_ctl};
use super::state::{Peer, Room, Slot, ice_credentials};
use super::{DTLS_CERT_LIFETIME, NewPeer, STATS_INTERVAL, Worker};
use crate::rtc::TrackKey;
use crate::rtc::notice::MediaNotice;

/// How every peer connection of a worker is configured (ICE-lite, RTP
/// mode, the codecs it forwards, str0m's estimator when `bwe`); the
/// worker adds the peer's ICE credentials and its DTLS certificate. Public
/// so the fuzz harness builds its SFU side the same way.
pub fn peer_config(bwe: bool) -> str0m::RtcConfig {
    Rtc::builder()
        .set_crypto_provider(crate::rtc::dtls::provider())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .enable_bwe(bwe.then(|| Bitrate::kbps(1500)))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true)
        .enable_av1(true)
        .set_send_buffer_video(1000)
        // Egress stats carry the NACK counts for the metrics.
        .set_stats_interval(Some(STATS_INTERVAL))
}

impl Worker {
    /// The DTLS certificate for a new peer: one per worker, remade after
    /// [`DTLS_CERT_LIFETIME`]. Making one (a P-256 key pair, a self-signed
    /// certificate, fresh entropy) costs more than the rest of a peer's
    /// setup together; every peer presenting the same certificate is what
    /// other SFUs do too (peers check it by its fingerprint in the SDP).
    /// `None` only if generation fails, and str0m then makes its own.
    pub(super) fn dtls_cert(&mut self, now: Instant) -> Option<str0m::config::DtlsCert> {
        let fresh = self
            .dtls_cert
            .as_ref()
            .is_some_and(|(_, made)| now.saturating_duration_since(*made) < DTLS_CERT_LIFETIME);
        if !fresh {
            match crate::rtc::dtls::provider()
                .dtls_provider
                .generate_certificate()
            {
                Some(cert) => self.dtls_cert = Some((cert, now)),
                None => tracing::warn!(worker = %self.index, "could not make a DTLS certificate"),
            }
        }
        self.dtls_cert.as_ref().map(|(cert, _)| cert.clone())
    }

    pub(super) fn add_peer(&mut self, new: NewPeer) {
        if self.by_participant.contains_key(&new.participant_id) {
            self.remove_peer(&new.participant_id);
        }
        let now = Instant::now();
        let IceCreds { ufrag, pass } = ice_credentials(self.index);
        // The own write path runs its own estimator: str0m's is off (no
        // pacer gate, no TWCC register), as it is without `--media-bwe`.
        let mut config =
            peer_config(self.bwe && !self.own_write).set_local_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass,
            });
        if let Some(cert) = self.dtls_cert(now) {
            config = config.set_dtls_cert(cert);
        }
        let mut rtc = config.build(now);
        rtc.add_local_candidate(self.candidate.clone());
        if let Some(c) = &self.tcp_candidate {
            rtc.add_local_candidate(c.clone());
        }
        let nack = convene_sfu::NackWindow::new();
        let own = self.new_own_path(now, nack.current());
        let slot = self.peers.reserve();
        tracing::debug!(participant = %new.participant_id, worker = %self.index, slot = %slot, "peer added");
        self.by_ufrag.insert(ufrag.clone(), slot);
        self.by_participant.insert(new.participant_id.clone(), slot);
        self.counters
            .peers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let room_key = self.hold_room(&new.room_id, &new.room_counters);
        let Some(room) = self.rooms.get_mut(&room_key) else {
            return;
        };
        if room.peers.is_empty() {
            // A room held only for a tap counted into a placeholder.
            room.counters = new.room_counters.clone();
        }
        room.peers.push(slot);
        // The `joined` snapshot of others' tracks was taken before this
        // command: a track published since would reach nobody's list here.
        // Tell the new peer of every track in the room now (clients replace
        // tracks they already know by id).
        for t in room.tracks.values() {
            let _ = new.out.notify(MediaNotice::TrackPublished {
                participant_id: t.participant_id.clone(),
                track: t.info(),
            });
        }
        self.peers.put(
            slot,
            Peer {
                participant_id: new.participant_id,
                room_id: room_key,
                rtc,
                out: new.out,
                ufrag,
                may_broadcast: new.may_broadcast,
                may_screenshare: new.may_screenshare,
                receives: new.receives,
                view: new.view,
                parked: Vec::new(),
                next_timeout: None,
                dirty: false,
                copies: None,
                offered_sources: HashMap::new(),
                published: HashMap::new(),
                ssrcs: HashMap::new(),
                outs: Vec::new(),
                pending_offer: None,
                ice_state: IceConnectionState::New,
                joined_at: now,
                connected_logged: false,
                keys_ready: false,
                lost_since: None,
                bwe: None,
                levels: LevelMeter::default(),
                quality: "good",
                alloc: Allocator::default(),
                nack,
                own,
            },
        );
        self.mark_dirty(slot);
        // Offer what the room already publishes.
        self.renegotiate(slot);
    }

    pub(super) fn remove_peer(&mut self, participant_id: &str) {
        let Some(slot) = self.by_participant.remove(participant_id) else {
            return;
        };
        let Some(mut peer) = self.peers.remove(slot) else {
            return;
        };
        if !peer.connected_logged {
            metrics::counter!("convene_peer_connect_failures_total").increment(1);
        }
        peer.rtc.disconnect();
        // Flush what disconnect produced (nothing critical if it fails).
        while let Ok(Output::Transmit(t)) = peer.rtc.poll_output() {
            if t.proto == Protocol::Udp {
                let _ = self.socket.send_to(&t.contents, t.destination);
            }
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.ufrags.remove(&peer.ufrag);
        let tcp = &mut self.tcp;
        self.by_addr.retain(|addr, s| {
            if *s == slot {
                tcp.remove(addr);
                false
            } else {
                true
            }
        });
        self.counters
            .peers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let keys: Vec<TrackKey> = peer.published.values().copied().collect();
        if let Some(room) = self.rooms.get_mut(&peer.room_id) {
            room.peers.retain(|&s| s != slot);
            // Its subscriptions go with it (the slot will be reused).
            for o in &peer.outs {
                if let Some(t) = room.tracks.get_mut(&o.track_key) {
                    t.fanout.unsubscribe_where(|(s, _)| s == slot);
                }
            }
        }
        for key in keys {
            self.remove_track(&peer.room_id, key);
        }
        // A room still recorded, restreamed or transcribed stays (packets
        // relayed by the room's other workers and nodes keep feeding it)
        // until its taps end (`drop_room_if_unused`).
        self.drop_room_if_unused(&peer.room_id);
        tracing::debug!(participant = %participant_id, "peer removed");
    }

    /// The room's key, after making this worker hold it if it did not: the
    /// room's other workers (and the gateways of other nodes) hear `Hello`
    /// and answer with their tracks.
    pub(super) fn hold_room(
        &mut self,
        room_id: &str,
        counters: &Arc<crate::rtc::RoomCounters>,
    ) -> Arc<str> {
        if let Some((k, _)) = self.rooms.get_key_value(room_id) {
            return k.clone();
        }
        let key: Arc<str> = Arc::from(room_id);
        for w in crate::rtc::all_workers(self.ctl_links.len()).filter(|&w| w != self.index) {
            send_ctl(
                &self.ctl_links,
                &self.counters,
                w,
                Relay::Hello {
                    room: key.clone(),
                    from: self.index,
                },
            );
        }
        self.rooms.insert(
            key.clone(),
            Room {
                counters: counters.clone(),
                ..Room::default()
            },
        );
        key
    }

    /// Forgets a room that has no peer and no tap (recorder, restream or
    /// transcriber) left here; the room's other workers and nodes hear
    /// `Goodbye` and stop relaying to this one.
    pub(super) fn drop_room_if_unused(&mut self, room_id: &Arc<str>) {
        if !self
            .rooms
            .get(room_id)
            .is_some_and(|r| r.peers.is_empty() && r.recorder.is_none() && r.restreams.is_empty())
        {
            return;
        }
        let Some(room) = self.rooms.remove(room_id) else {
            return;
        };
        for &w in &room.shards {
            send_ctl(
                &self.ctl_links,
                &self.counters,
                w,
                Relay::Goodbye {
                    room: room_id.clone(),
                    from: self.index,
                },
            );
        }
    }

    /// Drops the peers whose consent lapsed (see `MEDIA_LOST_AFTER`): no
    /// more media is kept for them, the room stops forwarding their tracks,
    /// and the participant hears `MEDIA_LOST` so its client can rebuild.
    pub(super) fn drop_silent_peers(&mut self, now: Instant) {
        let silent: Vec<String> = self
            .peers
            .slots()
            .filter_map(|s| self.peers.get(s))
            .filter(|p| {
                p.lost_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= super::MEDIA_LOST_AFTER)
            })
            .map(|p| p.participant_id.clone())
            .collect();
        for pid in silent {
            tracing::info!(participant = %pid, "media connection silent for 30 s; peer dropped");
            self.peer_failed(&pid);
        }
    }

    /// A peer connection that failed or lapsed: the participant hears
    /// `MEDIA_LOST` (its client rebuilds the connection by resuming),
    /// signaling hears of it, and the peer is removed.
    pub(super) fn peer_failed(&mut self, participant_id: &str) {
        if let Some(&slot) = self.by_participant.get(participant_id)
            && let Some(p) = self.peers.get(slot)
        {
            p.send(
                MediaNotice::Error {
                    code: "MEDIA_LOST",
                    message: "the media connection was lost and closed; resume to get a new one"
                        .into(),
                },
                &self.counters,
            );
        }
        let event = crate::rtc::MediaEvent::PeerFailed {
            participant_id: participant_id.to_string(),
        };
        if self.events.try_send(event).is_err() {
            self.counters
                .events_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.remove_peer(participant_id);
    }

    pub(super) fn set_quality(&mut self, slot: Slot, quality: &'static str) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.quality == quality {
            return;
        }
        p.quality = quality;
        let pid = p.participant_id.clone();
        let room_id = p.room_id.clone();
        self.broadcast(&room_id, None, || MediaNotice::ConnectionQuality {
            participant_id: pid.clone(),
            quality,
        });
        if let Some(room) = self.rooms.get(&room_id) {
            for &w in &room.shards {
                send_ctl(
                    &self.ctl_links,
                    &self.counters,
                    w,
                    Relay::Quality {
                        room: room_id.clone(),
                        participant_id: pid.clone(),
                        quality,
                    },
                );
            }
        }
    }

    /// Sends a message to every peer of the room except `except`.
    pub(super) fn broadcast(
        &self,
        room_id: &str,
        except: Option<Slot>,
        msg: impl Fn() -> MediaNotice,
    ) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        for &s in &room.peers {
            if Some(s) == except {
                continue;
            }
            if let Some(p) = self.peers.get(s) {
                p.send(msg(), &self.counters);
            }
        }
    }
}
