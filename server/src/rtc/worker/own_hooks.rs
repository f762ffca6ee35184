//! Where the own write path (`own/`) hooks into the worker: the keys at
//! DTLS completion, its timers, the subscriber's RTCP, and the turn's
//! copies written and sealed here instead of through str0m.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};

use super::copies::{Copies, Written, take_chunk};
use super::own::{self, OwnPath};
use super::state::{OutState, Peer, Slot};
use super::{Io, Worker};

/// The least wait before an own-path timer runs again (guards against a
/// deadline that stays in the past).
const MIN_WAIT: Duration = Duration::from_micros(200);

/// The connection quality a subscriber's estimate means (the same bounds
/// for str0m's estimate, `poll.rs`).
pub(super) fn quality_of(estimate_bps: u64) -> &'static str {
    if estimate_bps < 250_000 {
        "poor"
    } else if estimate_bps < 1_000_000 {
        "good"
    } else {
        "excellent"
    }
}

/// An own-path peer and what its path needs of the worker, borrowed
/// apart (`Worker::own_parts`).
struct OwnParts<'a> {
    peer: &'a mut Peer,
    io: Io<'a>,
    copies: &'a Copies,
    scratch_rtcp: &'a mut Vec<u8>,
}

impl Worker {
    /// The peer in `slot`, if it runs the own write path, with the
    /// worker's ways out beside it.
    fn own_parts(&mut self, slot: Slot) -> Option<OwnParts<'_>> {
        let Worker {
            peers,
            copies,
            batch,
            socket,
            counters,
            tcp,
            scratch_rtcp,
            ..
        } = self;
        let peer = peers.get_mut(slot).filter(|p| p.own.is_some())?;
        Some(OwnParts {
            peer,
            io: Io {
                batch,
                socket,
                counters,
                tcp,
            },
            copies,
            scratch_rtcp,
        })
    }

    /// A new peer's own write path, when the worker runs it.
    pub(super) fn new_own_path(&self, now: Instant, nack_window: Duration) -> Option<Box<OwnPath>> {
        self.own_write
            .then(|| Box::new(OwnPath::new(now, nack_window)))
    }

    /// Arms the peer's own-path timer at `at`, unless it is armed earlier.
    pub(super) fn arm_own(&mut self, slot: Slot, at: Instant) {
        let Some(own) = self.peers.get_mut(slot).and_then(|p| p.own.as_deref_mut()) else {
            return;
        };
        if own.next_timeout.is_some_and(|t| t <= at) {
            return;
        }
        own.next_timeout = Some(at);
        self.own_timers.push(Reverse((at, slot)));
        if self.own_timers.len() > 4 * self.peers.capacity() + 64 {
            let peers = &self.peers;
            self.own_timers.retain(|Reverse((t, slot))| {
                peers
                    .get(*slot)
                    .and_then(|p| p.own.as_deref())
                    .is_some_and(|o| o.next_timeout == Some(*t))
            });
        }
    }

    /// Runs the own-path timers that are due: sender reports, the
    /// estimator's timeout and probes (`OwnPath::on_timeout`).
    pub(super) fn own_timeouts(&mut self, now: Instant) {
        let bwe = self.bwe;
        while let Some(&Reverse((t, slot))) = self.own_timers.peek() {
            if t > now {
                break;
            }
            self.own_timers.pop();
            let Some(OwnParts {
                peer: p, mut io, ..
            }) = self.own_parts(slot)
            else {
                continue;
            };
            let Some(own) = p.own.as_deref_mut() else {
                continue;
            };
            if own.next_timeout != Some(t) {
                continue;
            }
            own.next_timeout = None;
            let rtc = &p.rtc;
            let outs = &p.outs;
            let wanted = |i: usize| {
                outs.get(i)
                    .is_some_and(|o| o.state == OutState::Active && o.subscribed && !o.paused)
            };
            own.on_timeout(now, bwe, &wanted, &|pt| own::rtx_pt_of(rtc, pt), &mut io);
            let next = own.next_deadline(bwe);
            let quality = (bwe && own.estimating).then(|| quality_of(own.bwe.estimate_bps()));
            if let Some(next) = next {
                self.arm_own(slot, next.max(now + MIN_WAIT));
            }
            if let Some(q) = quality {
                self.set_quality(slot, q);
            }
        }
    }

    /// Hands the keys a handshake on this thread has just exported to the
    /// peer whose str0m was last driven (`slot`): called after each call
    /// into a peer's str0m that can complete its handshake.
    pub(super) fn claim_keys(&mut self, slot: Slot, now: Instant) {
        if !self.own_write {
            return;
        }
        let Some(keys) = crate::rtc::dtls::take_exported_keys() else {
            return;
        };
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let Some(own) = p.own.as_deref_mut() else {
            return;
        };
        if let Err(e) = own.set_keys(&keys, now) {
            tracing::warn!(participant = %p.participant_id, error = %e, "the handshake's keys do not fit its profile; the peer gets no media");
            return;
        }
        self.arm_own(slot, now);
    }

    /// Ends an own-path peer's hold once its keys are in
    /// (`OwnPath::release_early`): what was held goes out, counted as
    /// forwarded now. Called at the end of the peer's poll, after str0m's
    /// datagrams (the handshake's last flight among them) are in the batch.
    pub(super) fn release_early(&mut self, slot: Slot, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(OwnParts {
            peer: p, mut io, ..
        }) = self.own_parts(slot)
        else {
            return;
        };
        let Some(own) = p.own.as_deref_mut() else {
            return;
        };
        let rtc = &p.rtc;
        let (copies, bytes) = own.release_early(&|pt| own::rtx_pt_of(rtc, pt), now, &mut io);
        if copies == 0 {
            return;
        }
        let counters = io.counters;
        counters.rtp_forwarded.fetch_add(copies, Relaxed);
        counters.rtp_own_written.fetch_add(copies, Relaxed);
        counters.rtp_bytes_forwarded.fetch_add(bytes, Relaxed);
        let room_id = p.room_id.clone();
        if let Some(room) = self.rooms.get(&room_id) {
            room.counters.rtp_forwarded.fetch_add(copies, Relaxed);
            room.counters.bytes_forwarded.fetch_add(bytes, Relaxed);
        }
    }

    /// DTLS completed for an own-path peer. The copies held before the
    /// keys were in go out at the end of this poll (`release_early`); a
    /// video track with none sent or held (none decided yet, or the hold
    /// overflowed) is asked for a keyframe. One that has them began at a
    /// keyframe (a new subscriber's forwarder waits for one), so its
    /// publisher is not asked again: in a join storm every joiner asking
    /// at `Connected` made as many keyframes as joiners.
    pub(super) fn own_connected(&mut self, slot: Slot, now: Instant) {
        let Some(p) = self.peers.get(slot) else {
            return;
        };
        let Some(own) = p.own.as_deref() else {
            return;
        };
        let room_id = p.room_id.clone();
        let keys: Vec<_> = p
            .outs
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                o.kind == MediaKind::Video && o.state == OutState::Active && !own.has_started(*i)
            })
            .map(|(_, o)| o.track_key)
            .collect();
        for key in keys {
            self.request_keyframe(&room_id, key, KeyframeRequestKind::Pli, now, true);
        }
    }

    /// An RTCP datagram from an own-path peer, before str0m gets it: its
    /// feedback on the streams sent to it (`OwnPath::on_rtcp`).
    pub(super) fn own_rtcp(&mut self, slot: Slot, datagram: &[u8], now: Instant) {
        let Some(OwnParts {
            peer: p,
            mut io,
            scratch_rtcp,
            ..
        }) = self.own_parts(slot)
        else {
            return;
        };
        let Some(own) = p.own.as_deref_mut() else {
            return;
        };
        if !own.has_keys() {
            return;
        }
        scratch_rtcp.clear();
        scratch_rtcp.extend_from_slice(datagram);
        let rtc = &p.rtc;
        let fb = own.on_rtcp(
            scratch_rtcp,
            datagram.len(),
            now,
            &|pt| own::rtx_pt_of(rtc, pt),
            &mut io,
        );
        {
            use std::sync::atomic::Ordering::Relaxed;
            let counters = io.counters;
            if fb.nacked > 0 {
                counters.nacks.fetch_add(fb.nacked, Relaxed);
                counters.rtx_resent.fetch_add(fb.resent, Relaxed);
            }
            if fb.twcc_reports > 0 {
                counters.twcc_reports.fetch_add(fb.twcc_reports, Relaxed);
            }
        }
        let mids: Vec<_> = fb
            .keyframes
            .iter()
            .filter_map(|&i| p.outs.get(i as usize).map(|o| o.mid))
            .collect();
        for mid in mids {
            self.on_keyframe_request(slot, mid, KeyframeRequestKind::Pli, now);
        }
        // New feedback may start a probe.
        self.arm_own(slot, now);
    }

    /// Writes the next chunk of an own-path subscriber's queued copies:
    /// written and sealed here, queued in the send batch.
    pub(super) fn write_own_chunk(&mut self, slot: Slot, now: Instant) -> Written {
        let mut w = Written::default();
        let Some(OwnParts {
            peer: p,
            mut io,
            copies,
            ..
        }) = self.own_parts(slot)
        else {
            return w;
        };
        let Some(own) = p.own.as_deref_mut() else {
            return w;
        };
        let rtc = &p.rtc;
        let dest = own.dest;
        for q in take_chunk(&mut p.copies, &copies.items) {
            let Some(out) = copies.packets.get(q.packet as usize) else {
                continue;
            };
            if own.holding() {
                own.hold_early(&q.copy, out);
                continue;
            }
            let mut buf = own::Datagrams::spare(&mut io);
            match own.write_copy(&q.copy, out, &|pt| own::rtx_pt_of(rtc, pt), now, &mut buf) {
                Ok(()) => {
                    w.copies += 1;
                    w.bytes += out.payload.len() as u64;
                    if let Some(dest) = dest {
                        own::Datagrams::send(&mut io, dest, buf);
                    }
                }
                Err(_) => own::Datagrams::recycle(&mut io, buf),
            }
        }
        w.more = p.copies.is_some();
        w
    }
}
