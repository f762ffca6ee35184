//! Who receives one published track: its subscribers, each behind its own
//! [`Forwarder`], and the per-packet fan-out over them.
//!
//! A [`Fanout`] belongs to the track, so a packet visits exactly the
//! subscribers of its track (no search through every subscriber's tracks).
//! It decides; the caller applies: [`Fanout::decide`] fills a caller-owned
//! list of `(subscriber, seq, ts)` to send, which the caller writes to each
//! subscriber's connection. The subscriber handle `S` is whatever the caller
//! finds a subscriber by (the server: a peer slot and the index of its
//! outgoing track).

use crate::forwarder::{Decision, Forwarder, Kind, Packet};

/// One subscriber of the track.
#[derive(Debug)]
struct Subscription<S> {
    sub: S,
    /// Only active subscriptions receive packets (the server: the m-line is
    /// negotiated and not closing).
    active: bool,
    forward: Forwarder,
}

/// What one packet's fan-out decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutCount {
    /// Subscribers the packet goes to.
    pub forwarded: usize,
    /// Active subscribers that dropped it (paused, other layer, waiting
    /// for a keyframe, congested, stale).
    pub dropped: usize,
    /// Some forwarder needs a keyframe of the track.
    pub keyframe_needed: bool,
}

/// The subscribers of one track.
#[derive(Debug)]
pub struct Fanout<S> {
    kind: Kind,
    subs: Vec<Subscription<S>>,
}

impl<S: Copy + PartialEq> Fanout<S> {
    pub fn new(kind: Kind) -> Fanout<S> {
        Fanout {
            kind,
            subs: Vec::new(),
        }
    }

    /// Adds a subscriber (inactive until [`Fanout::set_active`]) with a
    /// fresh forwarder; an existing subscription of `sub` is replaced.
    pub fn subscribe(&mut self, sub: S) -> &mut Forwarder {
        self.unsubscribe(sub);
        self.subs.push(Subscription {
            sub,
            active: false,
            forward: Forwarder::new(self.kind),
        });
        let last = self.subs.len() - 1;
        &mut self.subs[last].forward
    }

    /// Adds a subscriber (inactive until [`Fanout::set_active`]) with a
    /// forwarder it brings along (see [`Forwarder::handover`]).
    pub fn subscribe_with(&mut self, sub: S, forward: Forwarder) {
        self.unsubscribe(sub);
        self.subs.push(Subscription {
            sub,
            active: false,
            forward,
        });
    }

    /// Removes a subscriber and gives back its forwarder.
    pub fn take(&mut self, sub: S) -> Option<Forwarder> {
        let i = self.subs.iter().position(|s| s.sub == sub)?;
        Some(self.subs.remove(i).forward)
    }

    /// Removes a subscriber; false when it was not subscribed.
    pub fn unsubscribe(&mut self, sub: S) -> bool {
        let before = self.subs.len();
        self.subs.retain(|s| s.sub != sub);
        self.subs.len() != before
    }

    /// Removes every subscription `gone` names.
    pub fn unsubscribe_where(&mut self, mut gone: impl FnMut(S) -> bool) {
        self.subs.retain(|s| !gone(s.sub));
    }

    /// Starts or stops sending to a subscriber.
    pub fn set_active(&mut self, sub: S, active: bool) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.sub == sub) {
            s.active = active;
        }
    }

    /// The forwarder of a subscriber (preferences, pauses, layer caps).
    pub fn forwarder_mut(&mut self, sub: S) -> Option<&mut Forwarder> {
        self.subs
            .iter_mut()
            .find(|s| s.sub == sub)
            .map(|s| &mut s.forward)
    }

    pub fn forwarder(&self, sub: S) -> Option<&Forwarder> {
        self.subs.iter().find(|s| s.sub == sub).map(|s| &s.forward)
    }

    /// How many subscribers there are (active or not).
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// One incoming packet through every active subscriber's forwarder, in
    /// subscription order: `sends` (cleared first) gets `(subscriber, seq,
    /// ts)` for each one the packet goes to. Allocates only when `sends`
    /// must grow.
    pub fn decide(&mut self, packet: &Packet, sends: &mut Vec<(S, u64, u32)>) -> FanoutCount {
        sends.clear();
        let mut count = FanoutCount::default();
        for s in self.subs.iter_mut().filter(|s| s.active) {
            let decision = s.forward.decide(packet);
            count.keyframe_needed |= s.forward.take_keyframe_request();
            match decision {
                Decision::Forward { seq, ts } => {
                    sends.push((s.sub, seq, ts));
                    count.forwarded += 1;
                }
                Decision::Drop(_) => count.dropped += 1,
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::layer::Layer;

    fn audio(seq: u64, at: Instant) -> Packet {
        Packet {
            seq,
            ts: seq as u32 * 960,
            marker: false,
            layer: Layer::F,
            keyframe: false,
            clock_rate: 48_000,
            arrival: at,
        }
    }

    #[test]
    fn only_active_subscribers_get_packets_in_their_own_numbering() {
        let t0 = Instant::now();
        let mut f: Fanout<u8> = Fanout::new(Kind::Audio);
        let mut sends = Vec::new();
        f.subscribe(1);
        f.subscribe(2);
        f.set_active(1, true);
        let c = f.decide(&audio(100, t0), &mut sends);
        assert_eq!(c.forwarded, 1);
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].0, 1);
        f.set_active(2, true);
        if let Some(fwd) = f.forwarder_mut(1) {
            fwd.set_paused(true);
        }
        assert!(f.forwarder(1).is_some_and(|fwd| fwd.is_paused()));
        let c = f.decide(&audio(101, t0), &mut sends);
        assert_eq!((c.forwarded, c.dropped), (1, 1), "1 paused, 2 gets it");
        assert_eq!(sends.iter().map(|s| s.0).collect::<Vec<_>>(), vec![2]);
        assert!(f.unsubscribe(2));
        assert!(!f.unsubscribe(2));
        let c = f.decide(&audio(102, t0), &mut sends);
        assert_eq!(
            c,
            FanoutCount {
                forwarded: 0,
                dropped: 1,
                keyframe_needed: false
            }
        );
        assert!(sends.is_empty());
    }

    #[test]
    fn a_new_video_subscriber_waits_for_a_keyframe_and_asks_for_one() {
        let t0 = Instant::now();
        let mut f: Fanout<u8> = Fanout::new(Kind::Video);
        let mut sends = Vec::new();
        f.subscribe(7);
        f.set_active(7, true);
        let delta = Packet {
            seq: 5,
            ts: 3000,
            marker: true,
            layer: Layer::F,
            keyframe: false,
            clock_rate: 90_000,
            arrival: t0,
        };
        let c = f.decide(&delta, &mut sends);
        assert_eq!(c.forwarded, 0);
        assert!(c.keyframe_needed);
        let key = Packet {
            seq: 6,
            keyframe: true,
            ts: 6000,
            ..delta
        };
        let c = f.decide(&key, &mut sends);
        assert_eq!(c.forwarded, 1);
        f.unsubscribe_where(|s| s == 7);
        assert!(f.is_empty());
    }
}
