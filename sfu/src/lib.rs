//! Convene's sans-IO forwarding core.
//!
//! This crate holds the per-packet forwarding decisions of the SFU, free of any
//! I/O and of tokio: which simulcast layer a subscriber receives
//! ([`forwarder`], [`allocator`]), how sequence numbers and timestamps are
//! rewritten so that layer switches, pauses and congestion drops leave each
//! outgoing stream continuous, when to ask a publisher for a keyframe
//! ([`keyframe`]), per-layer bitrates ([`rate`]) and who is speaking
//! ([`speakers`]), how long sent video is kept for NACKs ([`nack`]), and whom a viewer that cannot renegotiate is shown
//! ([`follow`]), and, for a forwarding write path of Convene's own not yet
//! used by the workers (which run str0m's), a send-side bandwidth estimate
//! from TWCC feedback ([`bwe`]) and the RTCP feedback readers
//! ([`feedback`]), and that write path's other sans-IO pieces: RTP headers
//! with their extensions, transport-wide sequence numbers, NACKs answered
//! with RTX and sender reports ([`writer`]). Time comes in as `Instant`s, so
//! every decision is unit tested without sockets. The server's media workers
//! own the str0m peers and the socket and call into this crate for every
//! packet; nothing here allocates per packet.

pub mod allocator;
pub mod bwe;
pub mod fanout;
pub mod feedback;
pub mod follow;
pub mod forwarder;
pub mod keyframe;
pub mod layer;
pub mod nack;
pub mod rate;
pub mod speakers;
pub mod writer;

pub use allocator::{AUDIO_BPS, Allocator, CONGESTION_FACTOR, Plan, SteeredTrack, TrackDemand};
pub use bwe::{BweConfig, ProbeRequest, Reported, SendSideBwe};
pub use fanout::{Fanout, FanoutCount};
pub use follow::follow;
pub use forwarder::{Decision, DropReason, Forwarder, Kind, Packet};
pub use keyframe::{KeyframeLimiter, KeyframeRoute, Publisher, route_keyframe};
pub use layer::Layer;
pub use nack::{NackWindow, nack_cache_packets, nack_window};
pub use rate::RateMeter;
pub use speakers::{LevelMeter, SpeakerDetector};
pub use writer::{
    ExtIds, ExtValues, ResendCache, RtpHeader, RtxStream, SenderClock, SenderInfo, SentPacket,
    TransportSeq, WriteError,
};
