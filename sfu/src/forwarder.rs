//! Per-subscriber forwarding of one published track.
//!
//! A [`Forwarder`] sits between one publisher track and one subscriber. For
//! every incoming packet it decides whether the subscriber gets it and, if
//! so, with which sequence number and timestamp. The outgoing stream is one
//! continuous RTP stream whatever the publisher does: simulcast layer
//! switches (only at a keyframe of the new layer), pauses, and frames dropped
//! because this subscriber is congested all leave the sequence numbers
//! contiguous and the timestamps monotonic, so the receiver never sees a
//! gap it would NACK or a jump it would misread as loss.

use std::time::{Duration, Instant};

use crate::layer::Layer;

/// Media kind of the forwarded track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

/// What the forwarder needs to know of an incoming packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Extended (rollover-free) sequence number of the incoming stream.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// RTP marker bit (last packet of a video frame).
    pub marker: bool,
    /// Simulcast layer the packet belongs to ([`Layer::F`] without simulcast).
    pub layer: Layer,
    /// The packet starts a keyframe.
    pub keyframe: bool,
    /// RTP clock rate of the codec (48000 for Opus, 90000 for video).
    pub clock_rate: u32,
    /// When the packet arrived.
    pub arrival: Instant,
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber paused or unsubscribed the track.
    Paused,
    /// The packet belongs to a simulcast layer the subscriber is not on.
    OtherLayer,
    /// Video cannot (re)start before a keyframe.
    WaitingKeyframe,
    /// The subscriber is congested: the rest of this frame is dropped.
    Congested,
    /// A late packet from before the last rewrite point: forwarding it
    /// could reuse an outgoing sequence number.
    Stale,
}

/// The decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send with this (extended) sequence number and timestamp.
    Forward {
        seq: u64,
        ts: u32,
    },
    Drop(DropReason),
}

/// After this long without a packet on the current layer, the publisher is
/// taken to have stopped sending it, and any other layer may take over.
pub const LAYER_TIMEOUT: Duration = Duration::from_secs(1);

/// Forwarding state of one track towards one subscriber.
#[derive(Debug)]
pub struct Forwarder {
    kind: Kind,
    /// The subscriber's preferred highest layer.
    preferred: Layer,
    /// The highest layer the subscriber's bandwidth carries.
    cap: Layer,
    paused: bool,
    congested: bool,
    /// The layer being forwarded; `None` before the first packet and after
    /// a pause.
    current: Option<Layer>,
    /// Last arrival of a packet of the current layer.
    current_seen: Option<Instant>,
    /// Video: drop packets of the current layer until a keyframe.
    waiting_keyframe: bool,
    /// The timestamp of a frame being dropped for congestion.
    dropping_ts: Option<u32>,
    /// out = in + seq_offset, for the current layer.
    seq_offset: i64,
    /// out = in + ts_offset (wrapping), for the current layer.
    ts_offset: u32,
    /// Highest incoming sequence number seen on the current layer.
    highest_in: u64,
    /// Incoming sequence numbers up to this one are stale: the offset changed
    /// after them.
    stale_upto: Option<u64>,
    /// The last forwarded (highest) outgoing seq, its timestamp and when.
    last_out: Option<(u64, u32, Instant)>,
    /// A keyframe of the publisher would help (switch or recovery).
    wants_keyframe: bool,
    /// A keyframe for the pending layer switch was already asked for.
    switch_requested: bool,
    /// Last arrival per layer `[q, h, f]`: which layers the publisher sends.
    seen: [Option<Instant>; 3],
}

impl Forwarder {
    pub fn new(kind: Kind) -> Forwarder {
        Forwarder {
            kind,
            preferred: Layer::F,
            cap: Layer::F,
            paused: false,
            congested: false,
            current: None,
            current_seen: None,
            waiting_keyframe: kind == Kind::Video,
            dropping_ts: None,
            seq_offset: 0,
            ts_offset: 0,
            highest_in: 0,
            stale_upto: None,
            last_out: None,
            wants_keyframe: false,
            switch_requested: false,
            seen: [None; 3],
        }
    }

    /// The subscriber's preference: highest layer and/or maximum height.
    pub fn set_preference(&mut self, max_layer: Option<Layer>, max_height: Option<u32>) {
        let by_height = max_height.map_or(Layer::F, Layer::for_max_height);
        self.preferred = max_layer.unwrap_or(Layer::F).min(by_height);
        self.switch_requested = false;
    }

    /// The preferred highest layer.
    pub fn preferred(&self) -> Layer {
        self.preferred
    }

    /// The highest layer bandwidth allows (set by the layer allocator).
    pub fn set_cap(&mut self, cap: Layer) {
        if cap != self.cap {
            self.cap = cap;
            self.switch_requested = false;
        }
    }

    pub fn cap(&self) -> Layer {
        self.cap
    }

    /// The layer the forwarder aims for.
    pub fn target(&self) -> Layer {
        self.preferred.min(self.cap)
    }

    /// The layer currently forwarded, if any.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// What [`Forwarder::set_paused`] last set.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pauses (nothing is sent) or resumes; resuming video waits for a
    /// keyframe and asks for one.
    pub fn set_paused(&mut self, paused: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        if paused {
            self.current = None;
        } else if self.kind == Kind::Video {
            self.waiting_keyframe = true;
            self.wants_keyframe = true;
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether the subscriber's path is congested (the caller decides how it
    /// knows: the server compares its bandwidth estimate with what the
    /// allocated layers need). While it is, each new video frame is dropped
    /// whole, and video resumes at a keyframe.
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// What [`Forwarder::set_congested`] last set.
    pub fn is_congested(&self) -> bool {
        self.congested
    }

    /// Takes the "a keyframe would help" flag. The caller asks the publisher
    /// (through its own rate limit).
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.wants_keyframe)
    }

    /// The next packets of this outgoing stream come from another source
    /// (a viewer that follows the active speaker is handed from one
    /// publisher's track to another's). The outgoing numbering goes on: at
    /// the new source's first packet (video: its first keyframe, asked for
    /// here) the offsets are rebased on the last packet sent, exactly as for
    /// a simulcast layer switch, so the receiver sees one continuous stream.
    pub fn handover(&mut self) {
        self.current = None;
        self.current_seen = None;
        self.seen = [None; 3];
        self.highest_in = 0;
        self.stale_upto = None;
        self.dropping_ts = None;
        self.switch_requested = false;
        self.waiting_keyframe = self.kind == Kind::Video;
        self.wants_keyframe = self.kind == Kind::Video;
    }

    /// Decides the fate of one packet.
    pub fn decide(&mut self, p: &Packet) -> Decision {
        if self.paused {
            return Decision::Drop(DropReason::Paused);
        }
        if self.kind == Kind::Audio {
            return self.decide_audio(p);
        }
        let li = p.layer.index();
        self.seen[li] = Some(p.arrival);
        let alive = |t: Option<Instant>| {
            t.is_some_and(|t| p.arrival.saturating_duration_since(t) < LAYER_TIMEOUT)
        };
        let current_alive = self.current.is_some() && alive(self.current_seen);
        let best = self.best_layer(p.arrival);
        if Some(p.layer) == self.current && (current_alive || p.layer == best) {
            if current_alive && p.layer != best {
                // Moving to `best` needs its keyframe; until then this layer
                // keeps the picture going.
                self.wants_keyframe |= !self.switch_requested;
                self.switch_requested = true;
            }
            return self.on_current_layer(p);
        }
        if p.layer != best {
            return Decision::Drop(DropReason::OtherLayer);
        }
        if !p.keyframe {
            self.wants_keyframe |= !self.switch_requested;
            self.switch_requested = true;
            return Decision::Drop(DropReason::OtherLayer);
        }
        self.switch_to(p);
        self.forward(p)
    }

    /// The layer to be on: the highest one at or below the target that the
    /// publisher is sending, else the lowest one it is sending.
    fn best_layer(&self, now: Instant) -> Layer {
        let alive = |l: Layer| {
            self.seen[l.index()].is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
        };
        let target = self.target();
        Layer::ALL
            .into_iter()
            .rev()
            .find(|l| *l <= target && alive(*l))
            .or_else(|| Layer::ALL.into_iter().find(|l| alive(*l)))
            .unwrap_or(target)
    }

    fn decide_audio(&mut self, p: &Packet) -> Decision {
        if self.current.is_none() {
            self.switch_to(p);
        } else if p.seq + 1000 < self.highest_in || p.seq > self.highest_in + 1000 {
            // Not plausible as reordering or loss: the publisher restarted
            // its stream. Rebase so the outgoing stream stays continuous.
            self.switch_to(p);
        } else if self.stale_upto.is_some_and(|s| p.seq <= s) {
            return Decision::Drop(DropReason::Stale);
        }
        self.forward(p)
    }

    fn on_current_layer(&mut self, p: &Packet) -> Decision {
        if self.stale_upto.is_some_and(|s| p.seq <= s) {
            return Decision::Drop(DropReason::Stale);
        }
        if let Some(ts) = self.dropping_ts {
            if p.ts == ts {
                return self.drop_in_stream(p, DropReason::Congested);
            }
            self.dropping_ts = None;
        }
        let new_frame = self.last_out.is_none_or(|(_, ts, _)| {
            // Compare in the outgoing timeline.
            p.ts.wrapping_add(self.ts_offset) != ts
        });
        if self.congested && new_frame && p.seq > self.highest_in {
            self.dropping_ts = Some(p.ts);
            // Ask once when the drops start, not for every dropped frame:
            // a keyframe sent while congested is dropped too, and everyone
            // else pays for it. Waiting for a keyframe asks again once the
            // congestion is over.
            self.wants_keyframe |= !self.waiting_keyframe;
            self.waiting_keyframe = true;
            return self.drop_in_stream(p, DropReason::Congested);
        }
        if self.waiting_keyframe {
            if p.keyframe {
                self.waiting_keyframe = false;
            } else {
                self.wants_keyframe = true;
                return self.drop_in_stream(p, DropReason::WaitingKeyframe);
            }
        }
        self.forward(p)
    }

    /// Drops a packet of the forwarded stream so that the outgoing sequence
    /// numbers stay contiguous: an in-order drop shifts the offset; anything
    /// older than the shift point becomes stale.
    fn drop_in_stream(&mut self, p: &Packet, reason: DropReason) -> Decision {
        if self.current == Some(p.layer) && p.seq == self.highest_in + 1 {
            self.seq_offset -= 1;
            self.highest_in = p.seq;
            self.stale_upto = Some(p.seq);
        }
        self.current_seen = Some(p.arrival);
        Decision::Drop(reason)
    }

    fn switch_to(&mut self, p: &Packet) {
        match self.last_out {
            None => {
                // Start below 65536 so the receiver's SRTP rollover counter
                // is 0 (str0m derives the ROC from the extended seq).
                self.seq_offset = (p.seq & 0xffff) as i64 - p.seq as i64;
                self.ts_offset = 0;
            }
            Some((seq, ts, at)) => {
                self.seq_offset = seq as i64 + 1 - p.seq as i64;
                let elapsed = p.arrival.saturating_duration_since(at);
                let ticks = (elapsed.as_secs_f64() * f64::from(p.clock_rate)).max(1.0) as u32;
                self.ts_offset = ts.wrapping_add(ticks).wrapping_sub(p.ts);
            }
        }
        self.current = Some(p.layer);
        self.switch_requested = false;
        self.highest_in = p.seq;
        self.stale_upto = p.seq.checked_sub(1);
        self.dropping_ts = None;
        self.waiting_keyframe = false;
    }

    fn forward(&mut self, p: &Packet) -> Decision {
        let seq = (p.seq as i64 + self.seq_offset).max(0) as u64;
        let ts = p.ts.wrapping_add(self.ts_offset);
        if p.seq > self.highest_in {
            self.highest_in = p.seq;
        }
        self.current_seen = Some(p.arrival);
        if self.last_out.is_none_or(|(s, _, _)| seq > s) {
            self.last_out = Some((seq, ts, p.arrival));
        }
        Decision::Forward { seq, ts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Feed {
        t0: Instant,
        seq: [u64; 3],
        ts: [u32; 3],
        frame: u32,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                t0: Instant::now(),
                seq: [1000, 50_000, 65_530],
                ts: [7, 900_000, u32::MAX - 6000],
                frame: 0,
            }
        }
        /// One frame of `n` packets on `layer`.
        fn frame(&mut self, layer: Layer, n: usize, key: bool) -> Vec<Packet> {
            let i = layer.index();
            let at = self.t0 + Duration::from_millis(33 * u64::from(self.frame));
            let mut out = Vec::new();
            for k in 0..n {
                out.push(Packet {
                    seq: self.seq[i],
                    ts: self.ts[i],
                    marker: k + 1 == n,
                    layer,
                    keyframe: key && k == 0,
                    clock_rate: 90_000,
                    arrival: at,
                });
                self.seq[i] += 1;
            }
            self.ts[i] = self.ts[i].wrapping_add(3000);
            out
        }
        /// One frame on every layer (simulcast), returns all packets.
        fn all(&mut self, key: bool) -> Vec<Packet> {
            let mut v = Vec::new();
            for l in Layer::ALL {
                v.extend(self.frame(l, 2, key));
            }
            self.frame += 1;
            v
        }
    }

    fn run(f: &mut Forwarder, pkts: &[Packet]) -> Vec<(u64, u32, Layer)> {
        pkts.iter()
            .filter_map(|p| match f.decide(p) {
                Decision::Forward { seq, ts } => Some((seq, ts, p.layer)),
                Decision::Drop(_) => None,
            })
            .collect()
    }

    fn assert_continuous(out: &[(u64, u32, Layer)]) {
        for w in out.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "sequence gap in {out:?}");
            let dt = w[1].1.wrapping_sub(w[0].1);
            assert!(dt < 1 << 31, "timestamp went backwards: {w:?}");
        }
    }

    #[test]
    fn a_handover_to_another_source_keeps_the_outgoing_stream_continuous() {
        // Two publishers with unrelated numbering; the viewer's stream shows
        // the first, then the second.
        let mut a = Feed::new();
        let mut b = Feed::new();
        b.seq = [9, 9, 40_000];
        b.ts = [5, 5, 123_456];
        b.t0 = a.t0;
        let mut f = Forwarder::new(Kind::Video);
        let mut out = run(&mut f, &a.frame(Layer::F, 3, true));
        out.extend(run(&mut f, &a.frame(Layer::F, 2, false)));
        assert_eq!(out.len(), 5);
        f.handover();
        assert!(
            f.take_keyframe_request(),
            "the new source's keyframe is asked for"
        );
        // The new source's delta frames cannot start the picture.
        b.frame = 2;
        assert!(run(&mut f, &b.frame(Layer::F, 2, false)).is_empty());
        // Packets of the old source that are still in flight go nowhere.
        assert!(run(&mut f, &a.frame(Layer::F, 2, false)).is_empty());
        b.frame = 3;
        out.extend(run(&mut f, &b.frame(Layer::F, 3, true)));
        out.extend(run(&mut f, &b.frame(Layer::F, 2, false)));
        assert_eq!(out.len(), 10);
        assert_continuous(&out);

        // Audio rebases at the new source's first packet.
        let audio = |seq: u64, ts: u32, ms: u64| Packet {
            seq,
            ts,
            marker: false,
            layer: Layer::F,
            keyframe: false,
            clock_rate: 48_000,
            arrival: a.t0 + Duration::from_millis(ms),
        };
        let mut f = Forwarder::new(Kind::Audio);
        let mut out = run(&mut f, &[audio(100, 960, 0), audio(101, 1920, 20)]);
        f.handover();
        assert!(!f.take_keyframe_request());
        out.extend(run(&mut f, &[audio(60_000, 7, 40), audio(60_001, 967, 60)]));
        assert_eq!(out.len(), 4);
        assert_continuous(&out);
    }

    #[test]
    fn video_starts_at_a_keyframe_and_asks_for_one() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        let out = run(&mut f, &feed.frame(Layer::F, 3, false));
        assert!(out.is_empty());
        assert!(f.take_keyframe_request());
        assert!(!f.take_keyframe_request(), "the flag is taken once");
        let out = run(&mut f, &feed.frame(Layer::F, 3, true));
        assert_eq!(out.len(), 3);
        assert!(out[0].0 < 65_536, "starts with ROC 0");
    }

    #[test]
    fn layer_switch_only_at_keyframe_and_stays_continuous() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        // At the start every layer's keyframe is taken on the way up.
        let mut out = run(&mut f, &feed.all(true));
        assert_eq!(f.current(), Some(Layer::F));
        let step = run(&mut f, &feed.all(false));
        assert!(step.iter().all(|o| o.2 == Layer::F));
        out.extend(step);
        // The subscriber asks for the half layer: nothing changes until a
        // keyframe of h arrives; f keeps flowing meanwhile.
        f.set_preference(Some(Layer::H), None);
        let step = run(&mut f, &feed.all(false));
        assert!(step.iter().all(|o| o.2 == Layer::F));
        assert!(f.take_keyframe_request());
        out.extend(step);
        let step = run(&mut f, &feed.all(true));
        assert!(step.iter().all(|o| o.2 == Layer::H), "{step:?}");
        out.extend(step);
        out.extend(run(&mut f, &feed.all(false)));
        assert_eq!(f.current(), Some(Layer::H));
        // Up again by max_height.
        f.set_preference(None, Some(720));
        out.extend(run(&mut f, &feed.all(false)));
        out.extend(run(&mut f, &feed.all(true)));
        assert_eq!(f.current(), Some(Layer::F));
        assert_continuous(&out);
    }

    #[test]
    fn bandwidth_cap_steps_down_and_back_up() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        let mut out = run(&mut f, &feed.all(true));
        f.set_cap(Layer::Q);
        assert_eq!(f.target(), Layer::Q);
        out.extend(run(&mut f, &feed.all(true)));
        assert_eq!(f.current(), Some(Layer::Q));
        f.set_cap(Layer::F);
        out.extend(run(&mut f, &feed.all(false)));
        assert_eq!(f.current(), Some(Layer::Q), "waits for a keyframe");
        out.extend(run(&mut f, &feed.all(true)));
        assert_eq!(f.current(), Some(Layer::F));
        assert_continuous(&out);
    }

    #[test]
    fn congestion_drops_to_end_of_frame_then_resumes_at_keyframe() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        let mut out = run(&mut f, &feed.frame(Layer::F, 4, true));
        f.set_congested(true);
        let frame = feed.frame(Layer::F, 4, false);
        // Every packet of the frame is dropped, whole.
        for p in &frame {
            assert_eq!(f.decide(p), Decision::Drop(DropReason::Congested));
        }
        assert!(f.take_keyframe_request());
        f.set_congested(false);
        // Delta frames after the dropped one cannot be decoded: dropped.
        assert!(run(&mut f, &feed.frame(Layer::F, 3, false)).is_empty());
        let resumed = run(&mut f, &feed.frame(Layer::F, 3, true));
        assert_eq!(resumed.len(), 3);
        out.extend(resumed);
        assert_continuous(&out);
    }

    #[test]
    fn late_packets_from_before_a_rewrite_are_stale() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        let first = feed.frame(Layer::F, 3, true);
        // Packet 1 of the keyframe is lost for now.
        assert!(matches!(f.decide(&first[0]), Decision::Forward { .. }));
        assert!(matches!(f.decide(&first[2]), Decision::Forward { .. }));
        // It arrives late (a retransmission): forwarded into its own slot.
        match f.decide(&first[1]) {
            Decision::Forward { seq, .. } => {
                let Decision::Forward { seq: s0, .. } =
                    Forwarder::new(Kind::Video).decide(&first[0])
                else {
                    panic!()
                };
                assert_eq!(seq, s0 + 1);
            }
            d => panic!("late packet not forwarded: {d:?}"),
        }
        // Now a congestion drop shifts the offset; older packets are stale.
        f.set_congested(true);
        let dropped = feed.frame(Layer::F, 2, false);
        for p in &dropped {
            f.decide(p);
        }
        assert_eq!(f.decide(&first[1]), Decision::Drop(DropReason::Stale));
    }

    #[test]
    fn pause_and_resume_keep_the_stream_continuous() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        let mut out = run(&mut f, &feed.frame(Layer::F, 2, true));
        f.set_paused(true);
        for p in feed.frame(Layer::F, 5, true) {
            assert_eq!(f.decide(&p), Decision::Drop(DropReason::Paused));
        }
        f.set_paused(false);
        assert!(f.take_keyframe_request());
        assert!(run(&mut f, &feed.frame(Layer::F, 2, false)).is_empty());
        out.extend(run(&mut f, &feed.frame(Layer::F, 2, true)));
        assert_eq!(out.len(), 4);
        assert_continuous(&out);
    }

    #[test]
    fn publisher_stopping_a_layer_lets_another_take_over() {
        let mut feed = Feed::new();
        let mut f = Forwarder::new(Kind::Video);
        run(&mut f, &feed.all(true));
        assert_eq!(f.current(), Some(Layer::F));
        // The publisher stops sending f (its own bandwidth dropped). After
        // the layer timeout, h takes over at its next keyframe.
        for _ in 0..40 {
            let h = feed.frame(Layer::H, 2, false);
            feed.frame += 1;
            run(&mut f, &h);
        }
        let h = feed.frame(Layer::H, 2, true);
        let out = run(&mut f, &h);
        assert_eq!(out.len(), 2);
        assert_eq!(f.current(), Some(Layer::H));
    }

    #[test]
    fn audio_is_forwarded_continuously_and_survives_a_restart() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(Kind::Audio);
        let pkt = |seq: u64, ts: u32, ms: u64| Packet {
            seq,
            ts,
            marker: false,
            layer: Layer::F,
            keyframe: false,
            clock_rate: 48_000,
            arrival: t0 + Duration::from_millis(ms),
        };
        let mut out = Vec::new();
        for i in 0..10u64 {
            if let Decision::Forward { seq, ts } =
                f.decide(&pkt(70_000 + i, 960 * i as u32, 20 * i))
            {
                out.push((seq, ts, Layer::F));
            }
        }
        // The publisher's stream restarts with new numbers.
        for i in 0..10u64 {
            if let Decision::Forward { seq, ts } =
                f.decide(&pkt(5 + i, 123 + 960 * i as u32, 200 + 20 * i))
            {
                out.push((seq, ts, Layer::F));
            }
        }
        assert_eq!(out.len(), 20);
        assert_continuous(&out);
    }
}
