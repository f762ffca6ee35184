//! The room actor's side of media: which worker a member's peer goes to
//! (placement by load when a room spreads over workers), attaching the peer
//! with its permissions, and the room's published tracks as the workers
//! report them.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::room::{Member, RoomActor};
use super::wire::{ParticipantInfo, TrackInfo};
use crate::rtc::{Command, NewPeer, WorkerId};

impl RoomActor {
    /// The media worker for a new member: the gateway of the node it came
    /// through (`via`) when that node is linked to this one, so its media
    /// stays there (`rtc::nodes`); else the room's home worker, or with
    /// sharding the next one with room to spare (`MediaPlane::place`).
    pub(super) fn place_member(&self, via: Option<&str>) -> WorkerId {
        let gateway = via_gateway(
            via,
            |n| self.sig.media_node_usable(n),
            |n| self.sig.media.node_links().and_then(|l| l.gateway_of(n)),
        );
        gateway.unwrap_or_else(|| self.sig.media.place(self.worker, &self.worker_load()))
    }

    /// How many members each media worker holds.
    pub(super) fn worker_load(&self) -> Vec<usize> {
        let mut load = vec![0usize; self.sig.media.worker_count()];
        for m in self.members.values() {
            if let Some(n) = load.get_mut(m.worker.index()) {
                *n += 1;
            }
        }
        load
    }

    /// The worker that feeds the room's recorder, restreams and transcriber:
    /// the one of this node's workers holding most of the room's members
    /// (the home worker first among equals, and when every member's peer is
    /// on another node: it then holds the room for the tap alone, and the
    /// other nodes relay the room's tracks to it). Never a gateway: a tap
    /// does not cross nodes.
    pub(super) fn tap_worker(&self) -> WorkerId {
        let load = self.worker_load();
        let local = self.sig.media.worker_count();
        self.member_workers()
            .into_iter()
            .filter(|w| w.index() < local)
            .max_by_key(|&w| (load.get(w.index()).copied().unwrap_or(0), w == self.worker))
            .unwrap_or(self.worker)
    }

    /// The workers holding members of this room (the home worker when
    /// there are none), each once.
    pub(super) fn member_workers(&self) -> Vec<WorkerId> {
        let mut ws: Vec<WorkerId> = self.members.values().map(|m| m.worker).collect();
        ws.sort_unstable();
        ws.dedup();
        if ws.is_empty() {
            ws.push(self.worker);
        }
        ws
    }

    pub(super) fn attach_media(&self, pid: &str, m: &Member) -> Result<(), (&'static str, String)> {
        let screenshare_enabled = self
            .settings
            .get("screenshare_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        self.sig
            .media
            .send(
                m.worker,
                Command::AddPeer(Box::new(NewPeer {
                    participant_id: pid.to_string(),
                    room_id: self.media_room(m.breakout.as_deref()),
                    out: Box::new(m.out.clone()),
                    may_broadcast: m.may("broadcast"),
                    may_screenshare: m.may("screenshare") && screenshare_enabled,
                    receives: m.receives,
                    view: m.view.clone(),
                    room_counters: self.counters.clone(),
                })),
            )
            .map_err(|e| ("SERVER_BUSY", e.to_string()))
    }

    /// The media room of the main room (`None`) or of a breakout: its own
    /// room in the media workers, so that media never crosses between them.
    pub(super) fn media_room(&self, breakout: Option<&str>) -> String {
        match breakout {
            None => self.room_id.clone(),
            Some(b) => format!("{}/{b}", self.room_id),
        }
    }

    /// The published tracks of the room (the main room and every breakout)
    /// by participant: each worker holding the room answers for its own
    /// publishers.
    pub(super) async fn room_tracks(&self) -> HashMap<String, Vec<TrackInfo>> {
        let mut tracks: HashMap<String, Vec<TrackInfo>> = HashMap::new();
        let mut media_rooms = vec![self.media_room(None)];
        if let Some(b) = &self.breakouts {
            media_rooms.extend(b.rooms.iter().map(|r| self.media_room(Some(&r.id))));
        }
        for w in self.member_workers() {
            for room_id in &media_rooms {
                let (tx, rx) = oneshot::channel();
                let cmd = Command::RoomTracks {
                    room_id: room_id.clone(),
                    reply: tx,
                };
                if self.sig.media.send(w, cmd).is_err() {
                    continue;
                }
                let part = tokio::time::timeout(Duration::from_secs(2), rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                for (pid, t) in part {
                    tracks.entry(pid).or_default().extend(t);
                }
            }
        }
        tracks
    }

    /// Every member but `except`, with its tracks (listed only for members
    /// in the same breakout, or both in the main room: the others' media
    /// does not reach `except`).
    pub(super) fn others(
        &self,
        tracks: &HashMap<String, Vec<TrackInfo>>,
        except: &str,
        breakout: Option<&str>,
    ) -> Vec<ParticipantInfo> {
        self.members
            .iter()
            .filter(|(id, _)| id.as_str() != except)
            .map(|(id, m)| {
                let mut info = self.participant_info(id, m);
                let visible = m.breakout.as_deref() == breakout;
                info.tracks = Some(
                    tracks
                        .get(id)
                        .filter(|_| visible)
                        .cloned()
                        .unwrap_or_default(),
                );
                info
            })
            .collect()
    }
}

/// The gateway of the node a member came `via`, when its peer may be kept
/// there: another node that is not draining (`usable`) and is linked to
/// this one (`gateway_of`).
fn via_gateway(
    via: Option<&str>,
    usable: impl Fn(&str) -> bool,
    gateway_of: impl Fn(&str) -> Option<WorkerId>,
) -> Option<WorkerId> {
    via.filter(|n| usable(n)).and_then(gateway_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_keeps_its_media_only_on_a_usable_linked_node() {
        let gw = WorkerId::from_index(3).unwrap();
        let usable = |n: &str| n == "n2" || n == "n3";
        let linked = |n: &str| (n == "n2" || n == "n4").then_some(gw);
        assert_eq!(via_gateway(Some("n2"), usable, linked), Some(gw));
        assert_eq!(via_gateway(None, usable, linked), None);
        // Draining (or this node itself): not usable.
        assert_eq!(via_gateway(Some("n4"), usable, linked), None);
        // Usable but not linked (its link is down).
        assert_eq!(via_gateway(Some("n3"), usable, linked), None);
    }
}
