//! Viewers that negotiate once (WHEP players): the m-lines of their offer
//! are filled with the room's tracks — the active speakers, or one chosen
//! participant, as `sfu::follow` decides — and handed from track to track
//! as speakers change or tracks come and go. Each outgoing stream stays
//! continuous across a handover (`Forwarder::handover`), so a player sees
//! one stream whose picture changes at a keyframe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use convene_sfu::follow;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};

use super::negotiation::prepare_video_out;
use super::state::{OutState, OutTrack, Slot};
use super::{View, Worker};
use crate::rtc::TrackKey;
use crate::rtc::notice::Source;

impl Worker {
    /// A viewer's offer receives on `mid`: one more m-line to fill.
    pub(super) fn add_viewer_slot(&mut self, slot: Slot, mid: Mid, kind: MediaKind) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.outs.iter().any(|o| o.mid == mid) {
            return;
        }
        if kind == MediaKind::Video {
            prepare_video_out(&mut p.rtc, mid, p.nack.current());
        }
        p.outs.push(OutTrack {
            mid,
            track_key: TrackKey::UNBOUND,
            state: OutState::Active,
            subscribed: true,
            paused: false,
            kind,
            nacks_seen: 0,
            pt: None,
        });
        if let Some(own) = p.own.as_deref_mut() {
            own.adopt(&mut p.rtc, &p.outs);
        }
        let room_id = p.room_id.clone();
        self.bind_viewers(&room_id);
    }

    /// Decides again what each viewer of the room is shown, and hands the
    /// m-lines whose track changes to the new track.
    pub(super) fn bind_viewers(&mut self, room_id: &Arc<str>) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let viewers: Vec<Slot> = room
            .peers
            .iter()
            .copied()
            .filter(|&s| self.peers.get(s).is_some_and(|p| p.view.is_some()))
            .collect();
        if viewers.is_empty() {
            return;
        }
        let speakers = room.speakers.current().to_vec();
        let mut keyframes: Vec<TrackKey> = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            // Each publisher of this kind and the track of theirs to show (a
            // camera before a screen), publishers in the order they began.
            let mut best: HashMap<&str, (u8, TrackKey)> = HashMap::new();
            for t in room.tracks.values().filter(|t| t.kind == kind) {
                let rank = u8::from(t.source == Source::Screen);
                let e = best
                    .entry(t.participant_id.as_str())
                    .or_insert((rank, t.key));
                if (rank, t.key) < *e {
                    *e = (rank, t.key);
                }
            }
            let mut publishing: Vec<(&str, TrackKey)> =
                best.iter().map(|(p, (_, k))| (*p, *k)).collect();
            publishing.sort_by_key(|(_, k)| *k);
            let names: Vec<String> = publishing.iter().map(|(p, _)| p.to_string()).collect();
            let track_of: HashMap<String, TrackKey> = publishing
                .iter()
                .map(|(p, k)| (p.to_string(), *k))
                .collect();
            for &v in &viewers {
                let Some(p) = self.peers.get_mut(v) else {
                    continue;
                };
                let lines: Vec<usize> = (0..p.outs.len())
                    .filter(|&i| p.outs[i].kind == kind)
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                let current: Vec<Option<String>> = lines
                    .iter()
                    .map(|&i| {
                        room.tracks
                            .get(&p.outs[i].track_key)
                            .map(|t| t.participant_id.clone())
                    })
                    .collect();
                let pin = match &p.view {
                    Some(View::Participant(id)) => Some(id),
                    _ => None,
                };
                // A viewer that also publishes (a phone call's room leg) is
                // never shown its own tracks.
                let others: Vec<String> = names
                    .iter()
                    .filter(|n| **n != p.participant_id)
                    .cloned()
                    .collect();
                let next = follow(pin, &speakers, &others, &current);
                for (j, &i) in lines.iter().enumerate() {
                    let want = next
                        .get(j)
                        .and_then(|n| n.as_ref())
                        .and_then(|n| track_of.get(n))
                        .copied()
                        .unwrap_or(TrackKey::UNBOUND);
                    let old = p.outs[i].track_key;
                    if old == want {
                        continue;
                    }
                    let sub = (v, i as u32);
                    let mut forward = room
                        .tracks
                        .get_mut(&old)
                        .and_then(|t| t.fanout.take(sub))
                        .or_else(|| {
                            let k = p.parked.iter().position(|(at, _)| *at == i as u32)?;
                            Some(p.parked.swap_remove(k).1)
                        });
                    if let Some(f) = forward.as_mut() {
                        f.handover();
                    }
                    p.outs[i].track_key = want;
                    match (room.tracks.get_mut(&want), forward) {
                        (Some(t), Some(f)) => {
                            t.fanout.subscribe_with(sub, f);
                            t.fanout.set_active(sub, true);
                        }
                        (Some(t), None) => {
                            t.fanout.subscribe(sub);
                            t.fanout.set_active(sub, true);
                        }
                        (None, Some(f)) => p.parked.push((i as u32, f)),
                        (None, None) => {}
                    }
                    tracing::debug!(viewer = %p.participant_id, mid = %p.outs[i].mid, track = %want, "viewer shown another track");
                    if kind == MediaKind::Video && want != TrackKey::UNBOUND {
                        keyframes.push(want);
                    }
                }
            }
        }
        let now = Instant::now();
        for key in keyframes {
            self.request_keyframe(room_id, key, KeyframeRequestKind::Pli, now, true);
        }
    }
}
