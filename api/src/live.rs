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

    /// Ends the room's live session now (every participant is disconnected
    /// with `SESSION_ENDED`). Returns `false` when no session is live in
    /// this process.
    fn end_session(&self, _room_id: &str) -> bool {
        false
    }

    /// Raises or lowers a participant's hand in the room's live session.
    /// Returns `false` when no session is live in this process.
    fn set_hand(&self, _room_id: &str, _participant_id: &str, _raised: bool) -> bool {
        false
    }

    /// Media counters of the room's live session so far.
    fn media(&self, _room_id: &str) -> Option<LiveMedia> {
        None
    }
}

/// Media counted through the SFU for one room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LiveMedia {
    /// RTP packets received from publishers.
    pub packets_in: u64,
    /// RTP payload bytes received from publishers.
    pub bytes_in: u64,
    /// RTP packets forwarded to subscribers.
    pub packets_out: u64,
    /// RTP payload bytes forwarded to subscribers.
    pub bytes_out: u64,
}

/// The default when no signaling layer is attached: no room is ever live.
#[derive(Debug, Default)]
pub struct NoLiveRooms;

impl LiveRooms for NoLiveRooms {
    fn broadcast(&self, _room_id: &str, _event: serde_json::Value) -> bool {
        false
    }
}
