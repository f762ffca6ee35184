//! Polling one peer: what str0m gives out (datagrams to send, events,
//! its next deadline) applied by the worker, and the timeouts served
//! within the poll instead of through the timer heap.

use std::time::Instant;

use str0m::bwe::BweKind;
use str0m::net::Protocol;
use str0m::{Event, IceConnectionState, Input, Output};

use super::Worker;
use super::state::Slot;

/// Guard against a peer that keeps asking for an immediate timeout: after
/// this many in one poll, the rest waits for the next turn of the loop.
const MAX_IMMEDIATE_TIMEOUTS: u32 = 4096;

/// Whether a peer's poll serves the timeout `t` str0m asked for at once
/// (`at` is now) rather than leaving it to the timer heap.
///
/// str0m asks for a timeout "now" between two packets of the same send
/// queue (and after each input): serving it in the poll drains a burst in
/// one call instead of one packet per turn of the worker loop. And once
/// right after DTLS completes (`keys_ready`, set at `Connected`): media
/// written before the keys existed (a joiner's first keyframe, asked for
/// when its answer was applied) is readied only by a timeout, and the
/// deadline str0m gives at `Connected` is a later one (~25 ms), so the
/// keyframe used to wait for the peer's next timer or next write.
/// The flag is spent by the first timeout after `Connected`, due or not.
pub(super) fn serve_at_once(t: Instant, at: Instant, keys_ready: &mut bool) -> bool {
    let just_connected = std::mem::take(keys_ready);
    t <= at || just_connected
}

/// Whether a datagram str0m gives to send is RTP rather than RTCP, STUN
/// or DTLS (RFC 7983's first byte; RFC 5761's payload types for RTCP).
pub(super) fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && d[0] >> 6 == 2 && !(192..=223).contains(&d[1])
}

/// Whether a datagram is RTCP (RFC 5761: payload types 192-223 after the
/// version).
pub(super) fn is_rtcp(d: &[u8]) -> bool {
    d.len() >= 8 && d[0] >> 6 == 2 && (192..=223).contains(&d[1])
}

impl Worker {
    pub(super) fn poll_peer(&mut self, slot: Slot, now: Instant) {
        let mut dead = false;
        let mut immediate = 0u32;
        loop {
            let Some(peer) = self.peers.get_mut(slot) else {
                return;
            };
            if !peer.rtc.is_alive() {
                dead = true;
                break;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    if immediate < MAX_IMMEDIATE_TIMEOUTS {
                        let at = Instant::now();
                        if serve_at_once(t, at, &mut peer.keys_ready) {
                            immediate += 1;
                            let _ = peer.rtc.handle_input(Input::Timeout(at));
                            continue;
                        }
                    }
                    if peer.next_timeout != Some(t) {
                        peer.next_timeout = Some(t);
                        self.timers.push(std::cmp::Reverse((t, slot)));
                        if self.timers.len() > 4 * self.peers.capacity() + 64 {
                            self.compact_timers();
                        }
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    // With the estimator, str0m's leaky pacer lets one media
                    // packet out per timeout: the next poll would only ask
                    // for one at once, after a pass over every subsystem's
                    // events and deadlines. Serve it right away instead.
                    let paced = self.bwe && is_rtp(&t.contents);
                    if t.proto == Protocol::Tcp {
                        if let Some(own) =
                            self.peers.get_mut(slot).and_then(|p| p.own.as_deref_mut())
                            && let Some(dest) = super::own::dest_of(&t)
                        {
                            own.dest = Some(dest);
                        }
                        if self
                            .tcp
                            .get(&t.destination)
                            .is_some_and(|w| w.send(&t.contents))
                        {
                            self.counters.bytes_out.fetch_add(
                                t.contents.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            self.counters
                                .packets_out
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            tracing::trace!(dest = %t.destination, "send failed");
                        }
                    } else {
                        if let Some(own) =
                            self.peers.get_mut(slot).and_then(|p| p.own.as_deref_mut())
                            && let Some(dest) = super::own::dest_of(&t)
                        {
                            own.dest = Some(dest);
                        }
                        if self.batch.flush_before(t.destination) {
                            self.flush_sends();
                        }
                        self.batch.push(t.destination, t.contents.into());
                    }
                    if paced && immediate < MAX_IMMEDIATE_TIMEOUTS {
                        immediate += 1;
                        if let Some(peer) = self.peers.get_mut(slot) {
                            let _ = peer.rtc.handle_input(Input::Timeout(Instant::now()));
                        }
                    }
                }
                Ok(Output::Event(e)) => self.on_event(slot, e, now),
                Err(e) => {
                    tracing::info!(participant = %peer.participant_id, error = %e, "peer connection failed");
                    dead = true;
                    break;
                }
            }
        }
        self.claim_keys(slot, now);
        // str0m's datagrams are all in the batch now, the handshake's last
        // flight among them: what an own-path peer held may follow.
        self.release_early(slot, now);
        if dead && let Some(peer) = self.peers.get(slot) {
            let pid = peer.participant_id.clone();
            self.peer_failed(&pid);
        }
    }

    fn on_event(&mut self, slot: Slot, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(pkt) => self.rtp_queue.push((slot, pkt)),
            Event::IceConnectionStateChange(state) => {
                if let Some(p) = self.peers.get_mut(slot) {
                    p.ice_state = state;
                    tracing::debug!(participant = %p.participant_id, ?state, "ice state");
                    p.lost_since = match state {
                        IceConnectionState::Disconnected if p.connected_logged => {
                            p.lost_since.or(Some(now))
                        }
                        IceConnectionState::Disconnected => None,
                        IceConnectionState::Connected | IceConnectionState::Completed => None,
                        _ => p.lost_since,
                    };
                }
                if state == IceConnectionState::Disconnected {
                    self.set_quality(slot, "lost");
                }
            }
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(slot) {
                    p.keys_ready = true;
                    if !p.connected_logged {
                        p.connected_logged = true;
                        metrics::histogram!("convene_join_media_seconds")
                            .record(now.duration_since(p.joined_at).as_secs_f64());
                        tracing::info!(
                            participant = %p.participant_id,
                            room = %p.room_id,
                            ms_since_join = now.duration_since(p.joined_at).as_millis() as u64,
                            "media connected (ICE + DTLS)"
                        );
                    }
                }
                self.set_quality(slot, "excellent");
                self.claim_keys(slot, now);
                self.own_connected(slot, now);
            }
            Event::MediaAdded(m) => {
                self.on_media_added(slot, m.mid, m.kind, m.direction, m.simulcast.is_some())
            }
            Event::MediaChanged(m) if !m.direction.is_receiving() => {
                self.unpublish_mid(slot, m.mid);
            }
            Event::KeyframeRequest(req) => self.on_keyframe_request(slot, req.mid, req.kind, now),
            // Every STATS_INTERVAL per peer, not per packet.
            Event::PeerStats(st) => {
                if let Some(pair) = &st.selected_candidate_pair
                    && let Some(own) = self.peers.get_mut(slot).and_then(|p| p.own.as_deref_mut())
                {
                    own.dest = Some(super::own::Dest {
                        addr: pair.remote.addr,
                        tcp: pair.protocol == Protocol::Tcp,
                    });
                }
                // str0m reads both figures from its TWCC register, which
                // sees nothing the own write path sends: for such a peer
                // they are its estimator's (`own/`), from the same feedback.
                let (own_rtt, own_loss) =
                    match self.peers.get_mut(slot).and_then(|p| p.own.as_deref_mut()) {
                        Some(o) => (o.bwe.rtt(), o.egress_loss()),
                        None => (None, None),
                    };
                let rtt = st.rtt.or(own_rtt);
                let egress_loss = st.egress_loss_fraction.or(own_loss);
                self.on_peer_stats(slot, &st, rtt, egress_loss);
                if let Some(rtt) = rtt {
                    metrics::histogram!("convene_peer_rtt_seconds").record(rtt.as_secs_f64());
                    self.on_rtt(slot, rtt, now);
                }
                if let Some(l) = st.ingress_loss_fraction {
                    metrics::histogram!("convene_peer_loss_ratio", "direction" => "ingress")
                        .record(f64::from(l));
                }
                if let Some(l) = egress_loss {
                    metrics::histogram!("convene_peer_loss_ratio", "direction" => "egress")
                        .record(f64::from(l));
                }
            }
            Event::MediaIngressStats(st) => {
                let kind = self
                    .peers
                    .get(slot)
                    .and_then(|p| p.rtc.media(st.mid))
                    .map(|m| m.kind());
                let (label, clock) = match kind {
                    Some(str0m::media::MediaKind::Audio) => ("audio", 48_000.0),
                    Some(str0m::media::MediaKind::Video) => ("video", 90_000.0),
                    None => return,
                };
                metrics::histogram!("convene_peer_jitter_seconds", "kind" => label)
                    .record(f64::from(st.jitter) / clock);
                self.on_peer_jitter(slot, f64::from(st.jitter) / clock, now);
            }
            Event::MediaEgressStats(st) => {
                if let Some(p) = self.peers.get_mut(slot)
                    && let Some(o) = p.outs.iter_mut().find(|o| o.mid == st.mid)
                    && st.nacks > o.nacks_seen
                {
                    self.counters.nacks.fetch_add(
                        st.nacks - o.nacks_seen,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    o.nacks_seen = st.nacks;
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
            | Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                if let Some(p) = self.peers.get_mut(slot) {
                    p.bwe = Some(estimate);
                }
                self.set_quality(slot, super::own_hooks::quality_of(estimate.as_u64()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_rtp;

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls_by_its_first_bytes() {
        let mut d = [0u8; 12];
        // RTP: version 2, Opus (111) and VP8 (96) with and without the marker.
        for pt in [111u8, 96, 111 | 0x80, 96 | 0x80] {
            d[0] = 0x80;
            d[1] = pt;
            assert!(is_rtp(&d), "payload type byte {pt}");
        }
        // RTCP: SR, RR, SDES, BYE, transport and payload feedback, XR.
        for pt in [200u8, 201, 202, 203, 205, 206, 207] {
            d[0] = 0x81;
            d[1] = pt;
            assert!(!is_rtp(&d), "RTCP {pt}");
        }
        // STUN (first byte 0-3) and DTLS (20-63).
        d[0] = 0x00;
        d[1] = 0x01;
        assert!(!is_rtp(&d));
        d[0] = 22;
        d[1] = 0xfe;
        assert!(!is_rtp(&d));
        // Shorter than an RTP header.
        assert!(!is_rtp(&[0x80, 96, 0, 1]));
    }
}
