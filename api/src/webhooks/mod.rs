//! Webhooks: the event names, the SSRF guard, request signing and the
//! delivery worker that drains the outbox (`webhook_deliveries`).
//!
//! Events are written to the outbox by the store, in the transaction of
//! their cause (`store::webhooks::enqueue_event`). [`spawn_delivery`] starts
//! the one task that sends them: per webhook in order, different webhooks
//! concurrently, with retries and exponential backoff.

pub mod delivery;
pub mod guard;
pub mod signing;

use std::time::Duration;

pub use delivery::spawn_delivery;

/// Webhook settings from the server's configuration.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Allow endpoints on loopback, private, link-local... addresses.
    pub allow_private: bool,
    /// Backoff before the second attempt; doubles per attempt.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// Timeout of one delivery request (connect + response).
    pub timeout: Duration,
    /// Deliveries in flight at once (each to a different webhook).
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_private: false,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            timeout: Duration::from_secs(5),
            concurrency: 32,
        }
    }
}

/// Something a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    SessionStarted,
    SessionEnded,
    ParticipantJoined,
    ParticipantLeft,
    RecordingStarted,
    RecordingStopped,
    RecordingReady,
    TranscriptReady,
    RoomCreated,
    RoomDeleted,
    ChatMessage,
    PollLaunched,
    PollEnded,
    RestreamingStarted,
    RestreamingStopped,
    RestreamingFailed,
}

impl Event {
    pub const ALL: &'static [Event] = &[
        Event::SessionStarted,
        Event::SessionEnded,
        Event::ParticipantJoined,
        Event::ParticipantLeft,
        Event::RecordingStarted,
        Event::RecordingStopped,
        Event::RecordingReady,
        Event::TranscriptReady,
        Event::RoomCreated,
        Event::RoomDeleted,
        Event::ChatMessage,
        Event::PollLaunched,
        Event::PollEnded,
        Event::RestreamingStarted,
        Event::RestreamingStopped,
        Event::RestreamingFailed,
    ];

    /// The dotted name (the seed's spelling), e.g. `participant.joined`.
    pub fn name(self) -> &'static str {
        match self {
            Event::SessionStarted => "session.started",
            Event::SessionEnded => "session.ended",
            Event::ParticipantJoined => "participant.joined",
            Event::ParticipantLeft => "participant.left",
            Event::RecordingStarted => "recording.started",
            Event::RecordingStopped => "recording.stopped",
            Event::RecordingReady => "recording.ready",
            Event::TranscriptReady => "transcript.ready",
            Event::RoomCreated => "room.created",
            Event::RoomDeleted => "room.deleted",
            Event::ChatMessage => "chat.message",
            Event::PollLaunched => "poll.launched",
            Event::PollEnded => "poll.ended",
            Event::RestreamingStarted => "restreaming.started",
            Event::RestreamingStopped => "restreaming.stopped",
            Event::RestreamingFailed => "restreaming.failed",
        }
    }

    /// Parses a dotted (`participant.joined`) or snake_case
    /// (`participant_joined`) name.
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL
            .iter()
            .copied()
            .find(|e| e.name() == s || e.name().replace('.', "_") == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        assert_eq!(
            Event::parse("participant.joined"),
            Some(Event::ParticipantJoined)
        );
        assert_eq!(
            Event::parse("participant_joined"),
            Some(Event::ParticipantJoined)
        );
        assert_eq!(Event::parse("participant-joined"), None);
        for e in Event::ALL {
            assert_eq!(Event::parse(e.name()), Some(*e));
        }
    }
}
