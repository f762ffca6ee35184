//! A received datagram to its peer: found by remote address (or the ufrag
//! of a binding request), a new address accepted once (a TURN relay address
//! only for its own room), handed to str0m (which decrypts SRTP, and whose
//! panics on one peer's input close that peer only), then the peer drained.

use std::time::Instant;

use str0m::Input;
use str0m::net::{Protocol, Receive};

use super::Worker;
use crate::rtc::udp::Datagram;

impl Worker {
    pub(super) fn on_datagram(&mut self, d: Datagram) {
        let slot = self.by_addr.get(&d.from).copied().or_else(|| {
            let ufrag = crate::rtc::stun::binding_request_ufrag(d.bytes())?;
            self.by_ufrag.get(ufrag).copied()
        });
        if let Some(slot) = slot
            && let Some(peer) = self.peers.get_mut(slot)
        {
            let now = Instant::now();
            let known = self.by_addr.contains_key(&d.from);
            let proto = if d.tcp.is_some() {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            match Receive::new(proto, d.from, self.arrived_at, d.bytes()) {
                Ok(recv) => {
                    let input = Input::Receive(now, recv);
                    // A relay address of the built-in TURN may only reach
                    // peers of the room its credential was minted for;
                    // checked once, when the address is first accepted. A
                    // breakout's media room is `room/breakout`: its room
                    // is the part before the slash.
                    let room = peer.room_id.split('/').next().unwrap_or_default();
                    let accept = known
                        || (peer.rtc.accepts(&input)
                            && match self.relay_rooms.check(d.from, room) {
                                crate::rtc::RelayCheck::OtherRoom => {
                                    metrics::counter!("convene_turn_refusals_total", "reason" => "other_room")
                                        .increment(1);
                                    false
                                }
                                _ => true,
                            });
                    if accept {
                        self.by_addr.insert(d.from, slot);
                        if let Some(w) = &d.tcp
                            && !self.tcp.contains_key(&d.from)
                        {
                            self.tcp.insert(d.from, w.clone());
                        }
                        // The own write path reads the peer's feedback on
                        // what it sends from a copy; str0m still gets the
                        // datagram (its receiver reports, the SRs of the
                        // peer's published streams).
                        if peer.own.is_some() && super::poll::is_rtcp(d.bytes()) {
                            self.own_rtcp(slot, d.bytes(), now);
                        }
                        let Some(peer) = self.peers.get_mut(slot) else {
                            let _ = self.pool.try_send(d.buf);
                            return;
                        };
                        // str0m 0.25 has panics reachable from a peer's own
                        // (authenticated) input, e.g. `panic!("Incorrect small
                        // delta size")` on a hostile TWCC report (found by the
                        // `rtc_keyed` fuzz target): one packet must not take
                        // down the worker and every room on it. The panicking
                        // peer is closed (its state is not trusted after) and
                        // told `MEDIA_LOST`, like a failed connection.
                        let handled =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                peer.rtc.handle_input(input)
                            }));
                        match handled {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                tracing::debug!(participant = %peer.participant_id, error = %e, "input refused");
                            }
                            Err(_) => {
                                let pid = peer.participant_id.clone();
                                tracing::warn!(participant = %pid, "the peer's input made str0m panic; peer closed");
                                metrics::counter!("convene_peer_panics_total").increment(1);
                                self.peer_failed(&pid);
                                let _ = self.pool.try_send(d.buf);
                                return;
                            }
                        }
                        // str0m holds one received RTP packet at a time: drain
                        // it before the next input.
                        self.poll_peer(slot, now);
                    }
                }
                Err(_) => {
                    self.counters
                        .malformed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        } else {
            self.counters
                .unroutable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.pool.try_send(d.buf);
    }
}
