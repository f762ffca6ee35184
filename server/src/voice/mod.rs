//! The server-side voice path (docs/transcripts.md): the signal processing
//! of live transcription ([`dsp`]: 48 → 16 kHz resampling, energy-based
//! voice-activity segmentation into utterances, WAV) and the recognition
//! engines ([`engine`]: PocketSphinx as a bounded child process).
//!
//! Not wired yet: the per-room transcriber thread that would tap a room
//! through the media worker's `tap_room` (as recordings and restreams do),
//! decode each participant's Opus to 48 kHz mono PCM and feed [`dsp`].
//! A room mix-minus encoder for a phone bridge would sit beside [`dsp`]
//! (it needs the same decode and resample steps).

pub mod dsp;
pub mod engine;
