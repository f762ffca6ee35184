//! Convene's sans-IO forwarding core.
//!
//! This crate holds the per-packet forwarding decisions of the SFU, free of any
//! I/O: which simulcast layer a subscriber receives, how sequence numbers and
//! timestamps are rewritten so that layer switches stay continuous, and when a
//! keyframe is needed. The server's media workers own the sockets and str0m
//! peers and call into it for each packet.
