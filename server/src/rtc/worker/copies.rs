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
pub(super) const CHUNK: usize = 16;

/// No next copy (the end of a subscriber's list).
const END: u32 = u32::MAX;

/// One copy waiting to be written.
#[derive(Clone, Copy)]
struct Queued {
    mid: Mid,
    pt: Pt,
    seq: u64,
    ts: u32,
    nackable: bool,
    /// The packet, an index into `Copies::packets`.
    packet: u32,
    /// The subscriber's next copy (`END`: none).
    next: u32,
}

/// The copies decided this turn and not yet written.
#[derive(Default)]
pub(super) struct Copies {
    items: Vec<Queued>,
    packets: Vec<Outgoing>,
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

    /// Queues a copy of `packet` for the subscriber `peer` (in `sub`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        sub: Slot,
        peer: &mut Peer,
        mid: Mid,
        pt: Pt,
        seq: u64,
        ts: u32,
        nackable: bool,
        packet: u32,
    ) {
        let at = self.items.len() as u32;
        self.items.push(Queued {
            mid,
            pt,
            seq,
            ts,
            nackable,
            packet,
            next: END,
        });
        peer.copies = match peer.copies {
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

/// What one chunk of a subscriber's copies came to.
struct Written {
    copies: u64,
    bytes: u64,
    /// Copies of this subscriber are left for the next chunk.
    more: bool,
}

/// Writes up to [`CHUNK`] of `peer`'s queued copies into its str0m.
fn write_chunk(peer: &mut Peer, items: &[Queued], packets: &[Outgoing], now: Instant) -> Written {
    let mut w = Written {
        copies: 0,
        bytes: 0,
        more: false,
    };
    let Some((mut at, last)) = peer.copies.take() else {
        return w;
    };
    for n in 1..=CHUNK {
        let Some(c) = items.get(at as usize).copied() else {
            break;
        };
        if let Some(out) = packets.get(c.packet as usize) {
            let mut api = peer.rtc.direct_api();
            if let Some(tx) = api.stream_tx_by_mid(c.mid, None) {
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
        }
        if c.next == END {
            break;
        }
        at = c.next;
        if n == CHUNK {
            peer.copies = Some((at, last));
            w.more = true;
        }
    }
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
            while let Some(peer) = self.peers.get_mut(s) {
                let w = write_chunk(peer, &self.copies.items, &self.copies.packets, now);
                copies += w.copies;
                bytes += w.bytes;
                self.poll_peer(s, now);
                if !w.more {
                    break;
                }
            }
            if copies == 0 {
                continue;
            }
            self.counters.rtp_forwarded.fetch_add(copies, Relaxed);
            self.counters.rtp_bytes_forwarded.fetch_add(bytes, Relaxed);
            if let Some(room) = self.peers.get(s).and_then(|p| self.rooms.get(&p.room_id)) {
                room.counters.rtp_forwarded.fetch_add(copies, Relaxed);
                room.counters.bytes_forwarded.fetch_add(bytes, Relaxed);
            }
        }
        subs.clear();
        // Nothing queues copies while they are written (polling a peer
        // only queues its incoming RTP for the next round), so every list
        // has been consumed; the check keeps any that were not valid.
        if self.copies.subs.is_empty() {
            self.copies.subs = subs;
            self.copies.items.clear();
            self.copies.packets.clear();
        }
    }
}
