//! Per-subscriber forwarding state of one track: which simulcast layer is
//! sent, and the sequence-number/timestamp rewrite that keeps the outgoing
//! stream continuous across layer switches.

use std::time::Instant;

use str0m::format::Codec;
use str0m::media::Rid;

/// A simulcast layer (RIDs `q`, `h`, `f`, lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Q = 0,
    H = 1,
    F = 2,
}

impl Layer {
    pub fn from_rid(rid: &Rid) -> Layer {
        match rid.as_bytes().first() {
            Some(b'q') | Some(b'l') | Some(b'0') => Layer::Q,
            Some(b'h') | Some(b'm') | Some(b'1') => Layer::H,
            _ => Layer::F,
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        match s {
            "q" | "low" => Some(Layer::Q),
            "h" | "medium" => Some(Layer::H),
            "f" | "high" => Some(Layer::F),
            _ => None,
        }
    }
}

/// What the forwarder needs to know of an incoming packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketView {
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub layer: Option<Layer>,
    pub keyframe: bool,
    pub clock_rate: u32,
    pub arrival: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Forward { seq: u64, ts: u32 },
    Drop { wants_keyframe: bool },
}

#[derive(Debug, Default)]
pub struct Forward {
    max_layer: Option<Layer>,
    max_height: Option<u32>,
    current: Option<Layer>,
    seq_offset: i64,
    ts_offset: u32,
    last_out: Option<(u64, u32, Instant)>,
}

impl Forward {
    pub fn reset(&mut self) {
        self.current = None;
    }

    pub fn set_preference(&mut self, max_layer: Option<Layer>, max_height: Option<u32>) {
        self.max_layer = max_layer;
        self.max_height = max_height;
    }

    fn target(&self) -> Layer {
        let by_height = match self.max_height {
            Some(h) if h <= 180 => Layer::Q,
            Some(h) if h <= 360 => Layer::H,
            _ => Layer::F,
        };
        self.max_layer.unwrap_or(Layer::F).min(by_height)
    }

    pub fn decide(&mut self, p: &PacketView, simulcast: bool) -> Decision {
        let layer = if simulcast {
            p.layer.unwrap_or(Layer::F)
        } else {
            Layer::F
        };
        let target = if simulcast { self.target() } else { Layer::F };
        let switch = match self.current {
            None => !simulcast || layer <= target,
            Some(cur) if cur == layer => false,
            Some(cur) => layer <= target && (layer > cur || cur > target),
        };
        if switch {
            if !p.keyframe
                && (simulcast || self.current.is_some())
                && self.needs_keyframe_to_start(p)
            {
                return Decision::Drop {
                    wants_keyframe: true,
                };
            }
            self.rebase(p);
            self.current = Some(layer);
        } else if self.current != Some(layer) {
            return Decision::Drop {
                wants_keyframe: false,
            };
        }
        let seq = (p.seq as i64 + self.seq_offset).max(0) as u64;
        let ts = p.ts.wrapping_add(self.ts_offset);
        if self.last_out.is_none_or(|(s, _, _)| seq > s) {
            self.last_out = Some((seq, ts, p.arrival));
        }
        Decision::Forward { seq, ts }
    }

    fn needs_keyframe_to_start(&self, p: &PacketView) -> bool {
        // Audio (clock 48 kHz) never waits for a keyframe.
        p.clock_rate != 48_000
    }

    fn rebase(&mut self, p: &PacketView) {
        match self.last_out {
            None => {
                // Start below 65536 so the receiver's SRTP rollover counter is 0.
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
    }
}

/// Whether an RTP payload starts a keyframe.
pub fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => convene_media::vp8::is_keyframe(payload),
        Codec::Vp9 => convene_media::vp9::is_keyframe(payload),
        Codec::H264 => convene_media::h264::is_keyframe(payload),
        Codec::Av1 => convene_media::av1::is_keyframe(payload),
        _ => false,
    }
}
