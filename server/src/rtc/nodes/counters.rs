//! Session media counters across nodes: a node that keeps peers for
//! another node's room reports their counters over the link about once a
//! second while they change (`LinkMsg::Counters`, cumulative), and the
//! room's node adds the difference since the last report to the room's
//! `RoomCounters`. Both ends run on a connection's reader (`ingress.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::gateway::{GwIn, RemoteRooms, locked};
use crate::rtc::{RoomCounters, RoomCountersSnapshot};

/// Reports the counters of the hosted rooms that changed since the last
/// report, and forgets the rooms no worker holds any more (after their last
/// report).
pub(super) fn report(
    rooms: &mut HashMap<String, Arc<RoomCounters>>,
    reported: &mut HashMap<String, RoomCountersSnapshot>,
    to_egress: &Sender<GwIn>,
) {
    rooms.retain(|room, counters| {
        let now = counters.snapshot();
        if reported.get(room) != Some(&now) {
            let sent = to_egress.try_send(GwIn::Counters {
                room: room.clone(),
                totals: now,
            });
            if sent.is_ok() {
                reported.insert(room.clone(), now);
            }
        }
        // Only this map holds it: the room's last peer here is gone.
        let held = Arc::strong_count(counters) > 1;
        if !held {
            reported.remove(room);
        }
        held
    });
}

/// Adds what the other node counted for this node's `room` since its last
/// report to the room's counters here.
pub(super) fn counted(
    received: &mut HashMap<String, RoomCountersSnapshot>,
    remote_rooms: &RemoteRooms,
    room: &str,
    totals: &RoomCountersSnapshot,
) {
    let mut rooms = locked(remote_rooms);
    let Some(counters) = rooms.get(room) else {
        received.remove(room);
        return;
    };
    let before = received.get(room).copied().unwrap_or_default();
    // A restart of the other node's count (its peers left and came back).
    let delta = if totals.restarted_since(&before) {
        *totals
    } else {
        totals.since(&before)
    };
    counters.add(&delta);
    // The room's session ended here: forget it with its last report.
    if Arc::strong_count(counters) == 1 {
        rooms.remove(room);
        received.remove(room);
    } else {
        received.insert(room.to_string(), *totals);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    fn totals(rtp_in: u64) -> RoomCountersSnapshot {
        RoomCountersSnapshot {
            rtp_in,
            bytes_in: rtp_in * 100,
            ..RoomCountersSnapshot::default()
        }
    }

    #[test]
    fn reports_add_their_difference_once_and_survive_a_restarted_count() {
        let room = Arc::new(RoomCounters::default());
        let remote: RemoteRooms = Arc::default();
        locked(&remote).insert("r".into(), room.clone());
        let mut received = HashMap::new();
        counted(&mut received, &remote, "r", &totals(10));
        counted(&mut received, &remote, "r", &totals(25));
        // The same report again adds nothing.
        counted(&mut received, &remote, "r", &totals(25));
        assert_eq!(room.snapshot().rtp_in, 25);
        assert_eq!(room.snapshot().bytes_in, 2500);
        // The other node counts from zero again: all of it is new.
        counted(&mut received, &remote, "r", &totals(4));
        assert_eq!(room.snapshot().rtp_in, 29);
        // A room this node does not know is ignored.
        counted(&mut received, &remote, "other", &totals(7));
        assert_eq!(room.snapshot().rtp_in, 29);
        // The room's session ended here: its last report is the end of it.
        drop(room);
        counted(&mut received, &remote, "r", &totals(9));
        assert!(locked(&remote).is_empty() && received.is_empty());
    }

    #[test]
    fn hosted_rooms_are_reported_when_they_change_and_forgotten_when_unheld() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let held = Arc::new(RoomCounters::default());
        let mut rooms = HashMap::from([("r".to_string(), held.clone())]);
        let mut reported = HashMap::new();
        held.rtp_in.fetch_add(3, Relaxed);
        report(&mut rooms, &mut reported, &tx);
        // Unchanged: nothing more is sent.
        report(&mut rooms, &mut reported, &tx);
        held.rtp_in.fetch_add(2, Relaxed);
        // The worker let the room go: its last count is still reported.
        drop(held);
        report(&mut rooms, &mut reported, &tx);
        let sent: Vec<u64> = rx
            .try_iter()
            .map(|m| match m {
                GwIn::Counters { totals, .. } => totals.rtp_in,
                _ => panic!("only counters are sent"),
            })
            .collect();
        assert_eq!(sent, vec![3, 5]);
        assert!(rooms.is_empty() && reported.is_empty());
    }
}
