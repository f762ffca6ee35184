//! `convene-appliance`: the room-appliance agent. Captures a camera (V4L2) and
//! microphone (ALSA), joins Convene rooms as a WebRTC peer through the same
//! signaling as browsers, and serves the device API (Croom-style) and the
//! camera API (Rotoclear-style) on one HTTP port.

pub mod calendar;
pub mod capture;
pub mod config;
pub mod convert;
pub mod display;
pub mod dsp;
pub mod encode;
pub mod files;
pub mod fleet;
pub mod http;
pub mod ice_tcp;
pub mod logs;
pub mod m2m;
pub mod meeting;
pub mod onvif;
pub mod peer;
pub mod processing;
pub mod record;
pub mod sources;
pub mod system;
pub mod tls;
