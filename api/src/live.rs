//! The seam between the REST API and live rooms.
//!
//! REST handlers that must reach participants in a running session (chat sent
//! as the API, eyeson-style messages, published poll results, raised hands...)
//! call [`LiveRooms`]. The server's signaling layer implements it; the API
//! crate never depends on the server.

use std::fmt::Debug;

/// Delivery of events into live rooms.
pub trait LiveRooms: Send + Sync + Debug {
    /// Sends `event` (a signaling server message: a JSON object with a `type`,
    /// see docs/signaling.md) to every participant connected to the room's
    /// live session. Returns `false` when the room has no live session in this
    /// process, so the caller can answer 409.
    fn broadcast(&self, room_id: &str, event: serde_json::Value) -> bool;
}

/// The default when no signaling layer is attached: no room is ever live.
#[derive(Debug, Default)]
pub struct NoLiveRooms;

impl LiveRooms for NoLiveRooms {
    fn broadcast(&self, _room_id: &str, _event: serde_json::Value) -> bool {
        false
    }
}
