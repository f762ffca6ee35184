//! Shared pieces of the fuzz targets: an in-memory pair of str0m peers
//! (the SFU side built as the media worker builds a participant's `Rtc`,
//! and a client) on virtual time.
pub mod pair;
