//! A turn's forwarded copies, written one subscriber at a time.
//!
//! `fan_out` decides, packet by packet in arrival order, which subscribers
//! get a copy (the `sfu` fan-out: layer, sequence and timestamp rewrite).
//! The copies are not written into the subscribers' str0m there: they are
//! queued here, in one list per subscriber, and written once the turn's
//! packets have all been decided, subscriber by subscriber. Each
//! subscriber's copies go into its str0m in packet order, and it is polled
//! after every [`CHUNK`] of them, so that:
//!
//! - its str0m send queue never holds more than a chunk (str0m's queue
//!   keeps the capacity of its largest burst: written packet by packet
//!   across all subscribers, a keyframe of 43 packets grew every
//!   subscriber's queue to 64 slots of ~400 bytes for good);
//! - its datagrams of the turn follow each other in the send batch, so a
//!   frame to one subscriber leaves as one GSO send (`batch.rs`);
//! - the first subscribers' copies leave while the later ones are still
//!   being written, where a packet-major order wrote every copy of the
//!   turn before the first datagram was built;
//! - one subscriber's str0m state is touched once per turn, not once per
//!   packet and then again to poll it.
//!
//! Nothing is allocated per copy: the lists are indices into vectors that
//! keep their capacity, and a packet is queued once (its `Outgoing`: Arcs
//! and a few words) however many subscribers get it.

use std::time::Instant;

use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};

use super::Worker;
use super::state::{Outgoing, Peer, Slot};

/// A subscriber is polled after this many copies written into its str0m.
/// A delta frame of a 2.5 Mbit/s camera is ~9 packets, a keyframe ~43.
const CHUNK: usize = 16;

/// No next copy (the end of a subscriber's list).
const END: u32 = u32::MAX;

/// One subscriber's copy of a packet, as the fan-out decided it: where it
/// goes in the subscriber's str0m and its rewritten numbering.
#[derive(Clone, Copy)]
pub(super) struct CopyPlan {
    pub(super) mid: Mid,
    /// The subscriber's outgoing track (its index in `Peer::outs`).
    pub(super) out: u32,
    pub(super) pt: Pt,
    pub(super) seq: u64,
    pub(super) ts: u32,
    pub(super) nackable: bool,
}

/// A copy waiting to be written.
#[derive(Clone, Copy)]
pub(super) struct Queued {
    pub(super) copy: CopyPlan,
    /// The packet, an index into `Copies::packets`.
    pub(super) packet: u32,
    /// The subscriber's next copy (`END`: none).
    next: u32,
}

/// The copies decided this turn and not yet written.
#[derive(Default)]
pub(super) struct Copies {
    pub(super) items: Vec<Queued>,
    pub(super) packets: Vec<Outgoing>,
    /// Subscribers with copies queued, in the order of their first.
    subs: Vec<Slot>,
}

/// A subscriber's queued copies: (first, last) indices into `items`.
pub(super) type CopyList = Option<(u32, u32)>;

impl Copies {
    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Keeps a packet for the copies about to be queued; the index to
    /// pass to [`Copies::push`].
    pub(super) fn packet(&mut self, out: &Outgoing) -> u32 {
        self.packets.push(out.clone());
        (self.packets.len() - 1) as u32
    }

    /// Queues a copy of `packet` for the subscriber in `sub`, whose list
    /// (its peer's `copies`) is `list`.
    pub(super) fn push(&mut self, sub: Slot, list: &mut CopyList, copy: CopyPlan, packet: u32) {
        let at = self.items.len() as u32;
        self.items.push(Queued {
            copy,
            packet,
            next: END,
        });
        *list = match *list {
            Some((first, last)) => {
                self.items[last as usize].next = at;
                Some((first, at))
            }
            None => {
                self.subs.push(sub);
                Some((at, at))
            }
        };
    }
}

/// Up to [`CHUNK`] copies taken off the front of a subscriber's list.
pub(super) struct Chunk<'a> {
    items: &'a [Queued],
    at: u32,
    left: usize,
}

impl<'a> Iterator for Chunk<'a> {
    type Item = &'a Queued;

    fn next(&mut self) -> Option<&'a Queued> {
        if self.left == 0 {
            return None;
        }
        let c = self.items.get(self.at as usize)?;
        self.at = c.next;
        self.left -= 1;
        Some(c)
    }
}

/// Takes the next [`CHUNK`] copies (fewer at the end) off `list`, in the
/// order they were queued; the list keeps the rest (`None` once empty).
pub(super) fn take_chunk<'a>(list: &mut CopyList, items: &'a [Queued]) -> Chunk<'a> {
    let Some((first, last)) = list.take() else {
        return Chunk {
            items,
            at: END,
            left: 0,
        };
    };
    let (mut at, mut n) = (first, 0);
    while n < CHUNK && at != END {
        n += 1;
        at = items.get(at as usize).map_or(END, |c| c.next);
    }
    if at != END {
        *list = Some((at, last));
    }
    Chunk {
        items,
        at: first,
        left: n,
    }
}

/// What one chunk of a subscriber's copies came to.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) copies: u64,
    pub(super) bytes: u64,
    /// Copies of this subscriber are left for the next chunk.
    pub(super) more: bool,
}

/// Writes the next chunk of `peer`'s queued copies into its str0m.
fn write_chunk(peer: &mut Peer, items: &[Queued], packets: &[Outgoing], now: Instant) -> Written {
    let mut w = Written {
        copies: 0,
        bytes: 0,
        more: false,
    };
    for q in take_chunk(&mut peer.copies, items) {
        let Some(out) = packets.get(q.packet as usize) else {
            continue;
        };
        let c = &q.copy;
        let mut api = peer.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(c.mid, None) else {
            continue;
        };
        let ext = ExtensionValues {
            audio_level: out.audio_level,
            voice_activity: out.voice_activity,
            ..Default::default()
        };
        tx.write_rtp(
            RtpWrite::new(c.pt, SeqNo::from(c.seq), c.ts, now, out.payload.clone())
                .marker(out.view.marker)
                .nackable(c.nackable)
                .ext_vals(ext),
        );
        w.copies += 1;
        w.bytes += out.payload.len() as u64;
    }
    w.more = peer.copies.is_some();
    w
}

impl Worker {
    /// Writes the turn's queued copies, subscriber by subscriber, each
    /// polled after every chunk (its datagrams go to the send batch).
    pub(super) fn write_copies(&mut self, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.copies.is_empty() {
            return;
        }
        let mut subs = std::mem::take(&mut self.copies.subs);
        for &s in &subs {
            let (mut copies, mut bytes) = (0u64, 0u64);
            let own = self.peers.get(s).is_some_and(|p| p.own.is_some());
            while let Some(peer) = self.peers.get_mut(s) {
                let w = if own {
                    // Written, sealed and queued here: nothing for str0m.
                    self.write_own_chunk(s, now)
                } else {
                    let w = write_chunk(peer, &self.copies.items, &self.copies.packets, now);
                    self.poll_peer(s, now);
                    w
                };
                copies += w.copies;
                bytes += w.bytes;
                if !w.more {
                    break;
                }
            }
            if copies == 0 {
                continue;
            }
            self.counters.rtp_forwarded.fetch_add(copies, Relaxed);
            if own {
                self.counters.rtp_own_written.fetch_add(copies, Relaxed);
            }
            self.counters.rtp_bytes_forwarded.fetch_add(bytes, Relaxed);
            if let Some(room) = self.peers.get(s).and_then(|p| self.rooms.get(&p.room_id)) {
                room.counters.rtp_forwarded.fetch_add(copies, Relaxed);
                room.counters.bytes_forwarded.fetch_add(bytes, Relaxed);
            }
        }
        subs.clear();
        // Nothing queues copies while they are written (polling a peer
        // only queues its incoming RTP for the next round), so every list
        // has been consumed and the vectors start over; should a copy ever
        // be queued meanwhile, they are kept until its list is written.
        if self.copies.subs.is_empty() {
            self.copies.subs = subs;
            self.copies.items.clear();
            self.copies.packets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::PeerTable;
    use super::*;

    fn copy(copies: &mut Copies, sub: Slot, list: &mut CopyList, seq: u64) {
        let c = CopyPlan {
            mid: Mid::from("1"),
            out: 0,
            pt: Pt::from(96),
            seq,
            ts: 0,
            nackable: true,
        };
        copies.push(sub, list, c, 0);
    }

    /// Three subscribers get copies of 40 packets interleaved, as a turn's
    /// fan-out queues them (the second only every other packet): each
    /// list gives back its own copies in packet order, a chunk at a time,
    /// and the subscribers come in the order of their first copy.
    #[test]
    fn each_subscribers_copies_come_back_in_packet_order_a_chunk_at_a_time() {
        let mut table = PeerTable::default();
        let (a, b, c) = (table.reserve(), table.reserve(), table.reserve());
        let mut copies = Copies::default();
        let (mut la, mut lb, mut lc) = (None, None, None);
        for seq in 0..40u64 {
            copy(&mut copies, c, &mut lc, seq);
            if seq % 2 == 1 {
                copy(&mut copies, b, &mut lb, seq);
            }
            copy(&mut copies, a, &mut la, seq);
        }
        assert_eq!(copies.subs, vec![c, a, b]);
        let drain = |list: &mut CopyList| {
            let mut chunks = Vec::new();
            while list.is_some() {
                let chunk: Vec<u64> = take_chunk(list, &copies.items)
                    .map(|q| q.copy.seq)
                    .collect();
                assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
                chunks.push(chunk);
            }
            chunks
        };
        let all: Vec<u64> = (0..40).collect();
        let odd: Vec<u64> = (0..40).filter(|s| s % 2 == 1).collect();
        for (list, want) in [(&mut la, &all), (&mut lc, &all)] {
            let chunks = drain(list);
            assert_eq!(
                chunks.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![CHUNK, CHUNK, 40 - 2 * CHUNK]
            );
            assert_eq!(&chunks.concat(), want);
        }
        let chunks = drain(&mut lb);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![CHUNK, 4]
        );
        assert_eq!(chunks.concat(), odd);
        // An empty list gives an empty chunk and stays empty.
        let mut none: CopyList = None;
        assert_eq!(take_chunk(&mut none, &copies.items).count(), 0);
        assert!(none.is_none());
    }

    /// A list of exactly one chunk is emptied by it (no empty chunk after).
    #[test]
    fn a_list_of_exactly_one_chunk_is_done_after_it() {
        let mut table = PeerTable::default();
        let a = table.reserve();
        let mut copies = Copies::default();
        let mut list = None;
        for seq in 0..CHUNK as u64 {
            copy(&mut copies, a, &mut list, seq);
        }
        assert_eq!(take_chunk(&mut list, &copies.items).count(), CHUNK);
        assert!(list.is_none());
    }
}
